//! What one schema file may change relative to the one before it.
//!
//! Fields are matched by id, never by name. A step may add an optional
//! field (top level or nested, with an id above every id used before),
//! rename a field, widen a type (int to long, float to double, decimal
//! precision up), make a required field optional, change docs and drop a
//! field. Everything else is refused with a message naming the field and the
//! rule: a reused or changed id, a narrowing or other type change, a new
//! required field, a field moved to another struct, and any change to the
//! identifier field, the partition source columns and the columns Floe
//! itself fills and reads back ([`Guard`]).

use std::collections::BTreeMap;
use std::fmt;

use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

use crate::contract::{Guard, TableKind, core_column, type_name};

/// One accepted change of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    /// A new field.
    Added {
        /// Its path (`a.b`).
        path: String,
        /// Its id.
        id: i32,
        /// Its type, as the spec writes it.
        ty: String,
    },
    /// A field's name changed; its id did not.
    Renamed {
        /// The old path.
        from: String,
        /// The new name.
        to: String,
    },
    /// A field's type widened.
    Widened {
        /// The field's path.
        path: String,
        /// The old type.
        from: String,
        /// The new type.
        to: String,
    },
    /// A required field became optional.
    MadeOptional {
        /// The field's path.
        path: String,
    },
    /// A field's doc changed.
    DocChanged {
        /// The field's path.
        path: String,
    },
    /// A field was dropped (old files keep its values; no engine shows them).
    Dropped {
        /// Its path in the old schema.
        path: String,
    },
}

impl fmt::Display for SchemaChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaChange::Added { path, id, ty } => write!(f, "add {path} {ty} (id {id})"),
            SchemaChange::Renamed { from, to } => write!(f, "rename {from} to {to}"),
            SchemaChange::Widened { path, from, to } => write!(f, "widen {path} {from} to {to}"),
            SchemaChange::MadeOptional { path } => write!(f, "make {path} optional"),
            SchemaChange::DocChanged { path } => write!(f, "change the doc of {path}"),
            SchemaChange::Dropped { path } => write!(f, "drop {path}"),
        }
    }
}

/// One field of a schema, flattened: where it sits and what it is.
struct Flat<'a> {
    path: String,
    /// Id of the struct, list or map holding it; 0 for the top level.
    parent: i32,
    field: &'a NestedField,
}

/// Every field of `schema` by id, nested ones included.
fn flatten(schema: &Schema) -> BTreeMap<i32, Flat<'_>> {
    fn walk<'a>(
        fields: &'a [std::sync::Arc<NestedField>],
        parent: i32,
        prefix: &str,
        out: &mut BTreeMap<i32, Flat<'a>>,
    ) {
        for field in fields {
            let path = if prefix.is_empty() {
                field.name.clone()
            } else {
                format!("{prefix}.{}", field.name)
            };
            children(field, &path, out);
            out.insert(
                field.id,
                Flat {
                    path,
                    parent,
                    field,
                },
            );
        }
    }
    fn children<'a>(field: &'a NestedField, path: &str, out: &mut BTreeMap<i32, Flat<'a>>) {
        match field.field_type.as_ref() {
            Type::Struct(s) => walk(s.fields(), field.id, path, out),
            Type::List(l) => {
                walk(std::slice::from_ref(&l.element_field), field.id, path, out);
            }
            Type::Map(m) => {
                walk(std::slice::from_ref(&m.key_field), field.id, path, out);
                walk(std::slice::from_ref(&m.value_field), field.id, path, out);
            }
            Type::Primitive(_) => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(schema.as_struct().fields(), 0, "", &mut out);
    out
}

/// Whether a primitive may change from `old` to `new` in place.
fn widens(old: &PrimitiveType, new: &PrimitiveType) -> bool {
    use PrimitiveType::*;
    match (old, new) {
        (Int, Long) | (Float, Double) => true,
        (
            Decimal {
                precision: p1,
                scale: s1,
            },
            Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s1 == s2 && p2 > p1,
        _ => false,
    }
}

/// What may change about a field Floe fills itself (a top-level core column).
fn guard(kind: TableKind, field: &Flat<'_>) -> Option<Guard> {
    if field.parent == 0 {
        core_column(kind, field.field.id).map(|c| c.guard)
    } else {
        None
    }
}

/// The changes of a step as one line: `add amount double (id 12), rename ...`.
pub fn describe_changes(changes: &[SchemaChange]) -> String {
    changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rules of one step, and the highest field id used by any file before it.
pub struct StepRules {
    /// Which table (for the columns Floe fills).
    pub kind: TableKind,
    /// Highest field id any earlier file of the chain used.
    pub highest_id_before: i32,
}

/// Compares `old` with `new`: the accepted changes, or every refused one.
pub fn check_step(
    old: &Schema,
    new: &Schema,
    rules: &StepRules,
) -> Result<Vec<SchemaChange>, Vec<String>> {
    let old_fields = flatten(old);
    let new_fields = flatten(new);
    let mut changes = Vec::new();
    let mut problems = Vec::new();

    let mut old_ids: Vec<i32> = old.identifier_field_ids().collect();
    let mut new_ids: Vec<i32> = new.identifier_field_ids().collect();
    old_ids.sort_unstable();
    new_ids.sort_unstable();
    if old_ids != new_ids {
        problems.push(format!(
            "identifier-field-ids changed from {old_ids:?} to {new_ids:?}: the upsert key never changes"
        ));
    }

    for (id, now) in &new_fields {
        let path = &now.path;
        let Some(was) = old_fields.get(id) else {
            if *id <= rules.highest_id_before {
                problems.push(format!(
                    "new field {path} has id {id}, which an earlier file already used (the highest id \
                     used so far is {}): ids are never reused, give it id {}",
                    rules.highest_id_before,
                    rules.highest_id_before + 1
                ));
            }
            let parent_is_new = now.parent != 0 && !old_fields.contains_key(&now.parent);
            if now.field.required && !parent_is_new {
                problems.push(format!(
                    "new field {path} is required: rows written before it have no value, so a new \
                     field must be optional"
                ));
            }
            if let Some(gone) = old_fields
                .values()
                .find(|f| f.parent == now.parent && f.field.name == now.field.name)
                .filter(|gone| !new_fields.contains_key(&gone.field.id))
            {
                problems.push(format!(
                    "field {path} changed its id from {} to {id}: a field id never changes; to \
                     replace a column, drop it in one file and add one under another name",
                    gone.field.id
                ));
            }
            if !parent_is_new {
                changes.push(SchemaChange::Added {
                    path: path.clone(),
                    id: *id,
                    ty: type_name(&now.field.field_type),
                });
            }
            continue;
        };
        let fixed = match guard(rules.kind, was) {
            Some(Guard::Fixed(reason)) => Some(reason),
            _ => None,
        };
        let mut refuse = |what: &str| match fixed {
            Some(reason) => problems.push(format!(
                "{} (id {id}) cannot {what}: {reason}; only its doc may change",
                was.path
            )),
            None => problems.push(format!("{} (id {id}) cannot {what}", was.path)),
        };
        if was.parent != now.parent {
            refuse(&format!(
                "move to {path}: a field stays in the struct it was added to"
            ));
            continue;
        }
        if was.field.name != now.field.name {
            if fixed.is_some() {
                refuse(&format!("be renamed to {}", now.field.name));
            } else {
                changes.push(SchemaChange::Renamed {
                    from: was.path.clone(),
                    to: now.field.name.clone(),
                });
            }
        }
        match (was.field.field_type.as_ref(), now.field.field_type.as_ref()) {
            (Type::Primitive(a), Type::Primitive(b)) if a == b => {}
            (Type::Primitive(a), Type::Primitive(b)) if widens(a, b) && fixed.is_none() => {
                changes.push(SchemaChange::Widened {
                    path: path.clone(),
                    from: a.to_string(),
                    to: b.to_string(),
                });
            }
            (Type::Struct(_), Type::Struct(_))
            | (Type::List(_), Type::List(_))
            | (Type::Map(_), Type::Map(_)) => {}
            (a, b) => refuse(&format!(
                "change type from {} to {}: only int to long, float to double and a larger \
                 decimal precision (same scale) are allowed",
                type_name(a),
                type_name(b)
            )),
        }
        match (was.field.required, now.field.required) {
            (true, false) if fixed.is_some() => refuse("become optional"),
            (true, false) => changes.push(SchemaChange::MadeOptional { path: path.clone() }),
            (false, true) => {
                refuse("become required: rows written while it was optional may have no value")
            }
            _ => {}
        }
        if was.field.doc != now.field.doc {
            changes.push(SchemaChange::DocChanged { path: path.clone() });
        }
    }

    for (id, was) in &old_fields {
        if new_fields.contains_key(id) {
            continue;
        }
        if was.parent != 0 && !new_fields.contains_key(&was.parent) {
            // Dropped along with the struct, list or map holding it.
            continue;
        }
        match guard(rules.kind, was) {
            Some(Guard::Fixed(reason) | Guard::NoDrop(reason)) => problems.push(format!(
                "{} (id {id}) cannot be dropped: {reason}",
                was.path
            )),
            _ if old_ids.contains(id) => problems.push(format!(
                "{} (id {id}) cannot be dropped: it is an identifier field",
                was.path
            )),
            _ => changes.push(SchemaChange::Dropped {
                path: was.path.clone(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(changes)
    } else {
        Err(problems)
    }
}

/// Types Floe can fill from a JSON value, for columns it does not fill itself.
pub fn fillable(ty: &Type) -> Result<(), String> {
    match ty {
        Type::Primitive(p) => match p {
            PrimitiveType::Boolean
            | PrimitiveType::Int
            | PrimitiveType::Long
            | PrimitiveType::Float
            | PrimitiveType::Double
            | PrimitiveType::Decimal { .. }
            | PrimitiveType::Date
            | PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::String => Ok(()),
            other => Err(format!(
                "type {other} is not one Floe fills from JSON (it fills boolean, int, long, float, \
                 double, decimal, date, timestamp, timestamptz, string, struct and list)"
            )),
        },
        Type::Struct(s) => s.fields().iter().try_for_each(|f| fillable(&f.field_type)),
        Type::List(l) => fillable(&l.element_field.field_type),
        Type::Map(_) => Err(
            "type map is not one Floe fills from JSON: use a struct (known keys) or keep the \
             object in payload"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests;
