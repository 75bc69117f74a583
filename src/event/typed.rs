//! Typed payload columns: a top-level payload field whose name matches a
//! column of the schema that Floe does not fill itself goes into that column
//! instead of `payload`, when its value fits the column's type.
//!
//! Coercions (a value fits only when nothing is lost):
//!
//! | column type | JSON value |
//! |---|---|
//! | int, long | a number with an integral value in range (`3`, `3.0`, `3e2`) |
//! | float, double | any number (rounded to the nearest float or double) |
//! | decimal(p, s) | a number with at most `s` decimals and `p` digits |
//! | string | a string |
//! | boolean | `true` or `false` |
//! | date | a string `YYYY-MM-DD` |
//! | timestamp | a string `YYYY-MM-DDTHH:MM:SS[.ffffff]` without offset |
//! | timestamptz | an RFC 3339 string with `Z` or an offset |
//! | struct | an object whose members are all fields of the struct |
//! | list | an array whose elements all fit the element type |
//!
//! `null` fits any optional column. A value that does not fit stays in
//! `payload` and is counted as a type mismatch of its column, or rejects
//! the record in strict mode.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array,
    Int64Array, ListArray, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, DataType, TimeUnit};
use iceberg::spec::{PrimitiveType, Schema, Type};
use serde_json::value::RawValue;

use crate::contract::{TableKind, core_column};

/// One typed value of a promoted column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An int or long.
    Int(i64),
    /// A float or double.
    Float(f64),
    /// A decimal's unscaled value.
    Decimal(i128),
    /// A string.
    Str(Box<str>),
    /// A date: days since 1970-01-01.
    Date(i32),
    /// A timestamp: microseconds since the epoch.
    Micros(i64),
    /// A struct's fields, in schema order.
    Struct(Box<[Value]>),
    /// A list's elements.
    List(Box<[Value]>),
}

const NULL: Value = Value::Null;

impl Value {
    /// Rough bytes held, for flush thresholds.
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                Value::Str(s) => s.len(),
                Value::Struct(xs) | Value::List(xs) => xs.iter().map(Value::heap_size).sum(),
                _ => 0,
            }
    }
}

/// A column of the events table filled from a payload field of its name.
#[derive(Debug, Clone)]
pub struct TypedColumn {
    /// Its field id.
    pub id: i32,
    /// Its name: the payload field it takes.
    pub name: String,
    /// Its type.
    pub ty: Type,
}

/// The typed columns of the events table's schema, and what to do with a
/// value that does not fit.
#[derive(Debug, Clone, Default)]
pub struct TypedColumns {
    columns: Vec<TypedColumn>,
    by_name: HashMap<String, usize>,
    /// Reject a record with a value that does not fit, instead of keeping
    /// the value in `payload`.
    pub strict: bool,
    /// The `event_subtype` column's name in the schema (a schema file may
    /// rename it), for the missing-field counters; empty: `event_subtype`.
    subtype_name: String,
}

impl TypedColumns {
    /// The top-level columns of `schema` (an events table schema) that Floe
    /// does not fill itself.
    pub fn of_schema(schema: &Schema, strict: bool) -> Self {
        let columns: Vec<TypedColumn> = schema
            .as_struct()
            .fields()
            .iter()
            .filter(|f| core_column(TableKind::Events, f.id).is_none())
            .map(|f| TypedColumn {
                id: f.id,
                name: f.name.clone(),
                ty: f.field_type.as_ref().clone(),
            })
            .collect();
        let by_name = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let subtype_name = schema
            .field_by_id(crate::contract::ids::EVENT_SUBTYPE)
            .map(|f| f.name.clone())
            .unwrap_or_default();
        Self {
            columns,
            by_name,
            strict,
            subtype_name,
        }
    }

    /// The name of the `event_subtype` column (renamed or not).
    pub fn subtype_name(&self) -> &str {
        match self.subtype_name.as_str() {
            "" => "event_subtype",
            name => name,
        }
    }

    /// Whether there are none (every payload field stays in `payload`).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// The columns, in schema order.
    pub fn columns(&self) -> &[TypedColumn] {
        &self.columns
    }

    /// The index of the column taking payload field `name`.
    pub fn index_of_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The index of the column with field id `id`.
    pub fn index_of_id(&self, id: i32) -> Option<usize> {
        self.columns.iter().position(|c| c.id == id)
    }
}

/// Shared by the decoder threads.
pub type TypedColumnsRef = Arc<TypedColumns>;

/// Per-column counts of values that did not fit, by column name.
pub type MismatchCounts = BTreeMap<String, u64>;

/// `raw` as a value of type `ty`, or `None` when it does not fit.
pub fn coerce(raw: &RawValue, ty: &Type, required: bool) -> Option<Value> {
    let text = raw.get();
    if text == "null" {
        return (!required).then_some(Value::Null);
    }
    match ty {
        Type::Primitive(p) => primitive(text, p),
        Type::Struct(s) => {
            let members: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
            if members.keys().any(|k| s.field_by_name(k).is_none()) {
                // A member the struct has no field for would be lost.
                return None;
            }
            let mut values = Vec::with_capacity(s.fields().len());
            for f in s.fields() {
                values.push(match members.get(&f.name) {
                    Some(v) => coerce(v, &f.field_type, f.required)?,
                    None if f.required => return None,
                    None => Value::Null,
                });
            }
            Some(Value::Struct(values.into()))
        }
        Type::List(l) => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            let element = &l.element_field;
            items
                .into_iter()
                .map(|v| coerce(v, &element.field_type, element.required))
                .collect::<Option<Vec<_>>>()
                .map(|xs| Value::List(xs.into()))
        }
        Type::Map(_) => None,
    }
}

fn primitive(text: &str, ty: &PrimitiveType) -> Option<Value> {
    let is_number = matches!(text.as_bytes().first(), Some(b'-' | b'0'..=b'9'));
    match ty {
        PrimitiveType::Boolean => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        PrimitiveType::Int => integer(text)
            .filter(|v| i32::try_from(*v).is_ok())
            .map(|v| Value::Int(v as i64)),
        PrimitiveType::Long => integer(text)
            .filter(|v| i64::try_from(*v).is_ok())
            .map(|v| Value::Int(v as i64)),
        PrimitiveType::Float if is_number => text
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| Value::Float(f64::from(v))),
        PrimitiveType::Double if is_number => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Value::Float),
        PrimitiveType::Decimal { precision, scale } => {
            decimal(text, *precision, *scale).map(Value::Decimal)
        }
        PrimitiveType::String => string(text).map(|s| Value::Str(s.into())),
        PrimitiveType::Date => {
            let s = string(text)?;
            let date = chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok()?;
            let days = date
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days();
            i32::try_from(days).ok().map(Value::Date)
        }
        PrimitiveType::Timestamp => {
            let s = string(text)?;
            let t = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| chrono::NaiveDateTime::parse_from_str(&s, f).ok())?;
            exact_micros(t.and_utc()).map(Value::Micros)
        }
        PrimitiveType::Timestamptz => {
            let s = string(text)?;
            let t = chrono::DateTime::parse_from_rfc3339(&s).ok()?;
            exact_micros(t.to_utc()).map(Value::Micros)
        }
        _ => None,
    }
}

/// Microseconds since the epoch, when no finer digits are lost.
fn exact_micros(t: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    t.timestamp_subsec_nanos()
        .is_multiple_of(1_000)
        .then(|| t.timestamp_micros())
}

/// A JSON string's text.
fn string(text: &str) -> Option<String> {
    text.starts_with('"')
        .then(|| serde_json::from_str(text).ok())
        .flatten()
}

/// A JSON number as an exact decimal: `mantissa * 10^exponent`.
struct Exact {
    negative: bool,
    mantissa: i128,
    exponent: i32,
}

fn exact(text: &str) -> Option<Exact> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (number, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let mut mantissa: i128 = 0;
    let mut significant = 0;
    for b in int.bytes().chain(frac.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        if mantissa > 0 || b != b'0' {
            significant += 1;
            if significant > 38 {
                return None;
            }
        }
        mantissa = mantissa * 10 + i128::from(b - b'0');
    }
    let exponent = exp.checked_sub(i32::try_from(frac.len()).ok()?)?;
    Some(Exact {
        negative,
        mantissa,
        exponent,
    })
}

/// `value * 10^shift` when that is a whole number that fits an i128.
fn shifted(value: &Exact, shift: i32) -> Option<i128> {
    let m = if shift >= 0 {
        value
            .mantissa
            .checked_mul(10i128.checked_pow(shift as u32)?)?
    } else if value.mantissa == 0 {
        0
    } else {
        let d = 10i128.checked_pow(shift.unsigned_abs())?;
        if value.mantissa % d != 0 {
            return None;
        }
        value.mantissa / d
    };
    Some(if value.negative { -m } else { m })
}

fn integer(text: &str) -> Option<i128> {
    let e = exact(text)?;
    shifted(&e, e.exponent)
}

fn decimal(text: &str, precision: u32, scale: u32) -> Option<i128> {
    let e = exact(text)?;
    let v = shifted(&e, e.exponent.checked_add(i32::try_from(scale).ok()?)?)?;
    (v.unsigned_abs() < 10u128.checked_pow(precision)?).then_some(v)
}

/// How a value of type `ty` is described in messages: `an int`, `a struct`.
pub fn describe(ty: &Type) -> String {
    let name = crate::contract::type_name(ty);
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// Builds the Arrow array of type `data_type` holding `values`.
pub fn to_array(data_type: &DataType, values: &[&Value]) -> Result<ArrayRef, ArrowError> {
    fn each<'a, T>(
        values: &'a [&'a Value],
        f: impl Fn(&Value) -> Option<T> + 'a,
    ) -> impl Iterator<Item = Option<T>> + 'a {
        values.iter().map(move |v| f(v))
    }
    Ok(match data_type {
        DataType::Boolean => Arc::new(
            each(values, |v| match v {
                Value::Bool(b) => Some(*b),
                _ => None,
            })
            .collect::<BooleanArray>(),
        ),
        DataType::Int32 => Arc::new(
            each(values, |v| match v {
                Value::Int(x) => i32::try_from(*x).ok(),
                _ => None,
            })
            .collect::<Int32Array>(),
        ),
        DataType::Int64 => Arc::new(
            each(values, |v| match v {
                Value::Int(x) => Some(*x),
                _ => None,
            })
            .collect::<Int64Array>(),
        ),
        DataType::Float32 => Arc::new(
            each(values, |v| match v {
                Value::Float(x) => Some(*x as f32),
                _ => None,
            })
            .collect::<Float32Array>(),
        ),
        DataType::Float64 => Arc::new(
            each(values, |v| match v {
                Value::Float(x) => Some(*x),
                _ => None,
            })
            .collect::<Float64Array>(),
        ),
        DataType::Decimal128(p, s) => Arc::new(
            each(values, |v| match v {
                Value::Decimal(x) => Some(*x),
                _ => None,
            })
            .collect::<Decimal128Array>()
            .with_precision_and_scale(*p, *s)?,
        ),
        DataType::Utf8 => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Some(s.as_ref()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        DataType::Date32 => Arc::new(
            each(values, |v| match v {
                Value::Date(d) => Some(*d),
                _ => None,
            })
            .collect::<Date32Array>(),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => Arc::new(
            each(values, |v| match v {
                Value::Micros(t) => Some(*t),
                _ => None,
            })
            .collect::<TimestampMicrosecondArray>()
            .with_timezone_opt(tz.clone()),
        ),
        DataType::Struct(fields) => {
            let nulls = NullBuffer::from(
                values
                    .iter()
                    .map(|v| matches!(v, Value::Struct(_)))
                    .collect::<Vec<_>>(),
            );
            let mut children = Vec::with_capacity(fields.len());
            for (i, field) in fields.iter().enumerate() {
                let child: Vec<&Value> = values
                    .iter()
                    .map(|v| match v {
                        Value::Struct(xs) => xs.get(i).unwrap_or(&NULL),
                        _ => &NULL,
                    })
                    .collect();
                children.push(to_array(field.data_type(), &child)?);
            }
            Arc::new(StructArray::try_new(fields.clone(), children, Some(nulls))?)
        }
        DataType::List(field) => {
            let mut lengths = Vec::with_capacity(values.len());
            let mut items: Vec<&Value> = Vec::new();
            for v in values {
                match v {
                    Value::List(xs) => {
                        lengths.push(xs.len());
                        items.extend(xs.iter());
                    }
                    _ => lengths.push(0),
                }
            }
            let nulls = NullBuffer::from(
                values
                    .iter()
                    .map(|v| matches!(v, Value::List(_)))
                    .collect::<Vec<_>>(),
            );
            Arc::new(ListArray::try_new(
                field.clone(),
                OffsetBuffer::from_lengths(lengths),
                to_array(field.data_type(), &items)?,
                Some(nulls),
            )?)
        }
        other => {
            return Err(ArrowError::NotYetImplemented(format!(
                "typed column of Arrow type {other}"
            )));
        }
    })
}

#[cfg(test)]
mod tests;
