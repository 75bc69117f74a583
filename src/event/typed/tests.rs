//! Unit tests of `typed.rs`.

use super::*;
use arrow_array::Array;
use iceberg::spec::{ListType, NestedField, StructType};

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_string()).unwrap()
}

fn p(ty: PrimitiveType) -> Type {
    Type::Primitive(ty)
}

#[test]
fn the_subtype_column_is_known_by_its_name_in_the_schema() {
    let schema = |name: &str| {
        Schema::builder()
            .with_fields(vec![
                NestedField::optional(4, name, p(PrimitiveType::String)).into(),
            ])
            .build()
            .unwrap()
    };
    let renamed = TypedColumns::of_schema(&schema("event_action"), false);
    assert_eq!(renamed.subtype_name(), "event_action");
    assert!(renamed.is_empty(), "a core column is no typed column");
    let first = TypedColumns::of_schema(&schema("event_subtype"), false);
    assert_eq!(first.subtype_name(), "event_subtype");
    assert_eq!(TypedColumns::default().subtype_name(), "event_subtype");
}

#[test]
fn coercions_fit_exactly_or_not_at_all() {
    use PrimitiveType::*;
    let dec = |precision, scale| Decimal { precision, scale };
    let cases: Vec<(Type, &str, Option<Value>)> = vec![
        (p(Int), "3", Some(Value::Int(3))),
        (p(Int), "-3.0", Some(Value::Int(-3))),
        (p(Int), "3e2", Some(Value::Int(300))),
        (p(Int), "3.5", None),
        (p(Int), "2147483648", None),
        (p(Int), "\"3\"", None),
        (p(Long), "2147483648", Some(Value::Int(2_147_483_648))),
        (p(Long), "9223372036854775808", None),
        (p(Long), "1.5e1", Some(Value::Int(15))),
        (p(Double), "12.25", Some(Value::Float(12.25))),
        (p(Double), "1e400", None),
        (p(Double), "true", None),
        (p(Float), "0.5", Some(Value::Float(0.5))),
        (p(Float), "1e39", None),
        (p(dec(5, 2)), "123.45", Some(Value::Decimal(12_345))),
        (p(dec(5, 2)), "-1.5", Some(Value::Decimal(-150))),
        (p(dec(5, 2)), "123.456", None),
        (p(dec(5, 2)), "1234.5", None),
        (p(dec(5, 2)), "1.2e2", Some(Value::Decimal(12_000))),
        (p(String), "\"a\\\"b\"", Some(Value::Str("a\"b".into()))),
        (p(String), "7", None),
        (p(Boolean), "false", Some(Value::Bool(false))),
        (p(Boolean), "0", None),
        (p(Date), "\"1970-01-02\"", Some(Value::Date(1))),
        (p(Date), "\"1970-01-02T00:00:00Z\"", None),
        (
            p(Timestamp),
            "\"1970-01-01T00:00:01.5\"",
            Some(Value::Micros(1_500_000)),
        ),
        (p(Timestamp), "\"1970-01-01T00:00:01Z\"", None),
        (
            p(Timestamptz),
            "\"1970-01-01T01:00:01+01:00\"",
            Some(Value::Micros(1_000_000)),
        ),
        (p(Timestamptz), "\"1970-01-01T00:00:01.0000001Z\"", None),
        (p(Timestamptz), "\"1970-01-01T00:00:01\"", None),
        (p(Int), "null", Some(Value::Null)),
    ];
    for (ty, text, want) in cases {
        assert_eq!(coerce(&raw(text), &ty, false), want, "{ty} <- {text}");
    }
    assert_eq!(coerce(&raw("null"), &p(Int), true), None);
}

#[test]
fn structs_and_lists_fit_as_a_whole() {
    let point = Type::Struct(StructType::new(vec![
        NestedField::required(20, "x", p(PrimitiveType::Int)).into(),
        NestedField::optional(21, "label", p(PrimitiveType::String)).into(),
    ]));
    let list = Type::List(ListType::new(
        NestedField::list_element(22, point.clone(), true).into(),
    ));
    let pt = |x, label: Option<&str>| {
        Value::Struct(
            vec![
                Value::Int(x),
                label.map_or(Value::Null, |l| Value::Str(l.into())),
            ]
            .into(),
        )
    };
    assert_eq!(
        coerce(&raw(r#"{"x":1,"label":"a"}"#), &point, false),
        Some(pt(1, Some("a")))
    );
    assert_eq!(coerce(&raw(r#"{"x":1}"#), &point, false), Some(pt(1, None)));
    // A required member missing, a member the struct lacks, a wrong type.
    assert_eq!(coerce(&raw(r#"{"label":"a"}"#), &point, false), None);
    assert_eq!(coerce(&raw(r#"{"x":1,"y":2}"#), &point, false), None);
    assert_eq!(coerce(&raw(r#"{"x":"1"}"#), &point, false), None);
    assert_eq!(
        coerce(&raw(r#"[{"x":1},{"x":2,"label":"b"}]"#), &list, false),
        Some(Value::List(vec![pt(1, None), pt(2, Some("b"))].into()))
    );
    assert_eq!(coerce(&raw(r#"[{"x":1},{"x":1.5}]"#), &list, false), None);
    assert_eq!(coerce(&raw(r#"[{"x":1},null]"#), &list, false), None);

    // And back out as Arrow.
    let schema = iceberg::spec::Schema::builder()
        .with_fields(vec![NestedField::optional(1, "pts", list.clone()).into()])
        .build()
        .unwrap();
    let arrow = iceberg::arrow::schema_to_arrow_schema(&schema).unwrap();
    let values = [
        coerce(&raw(r#"[{"x":1},{"x":2,"label":"b"}]"#), &list, false).unwrap(),
        Value::Null,
        Value::List(Vec::new().into()),
    ];
    let refs: Vec<&Value> = values.iter().collect();
    let array = to_array(arrow.field(0).data_type(), &refs).unwrap();
    let list = array.as_any().downcast_ref::<ListArray>().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.is_valid(0) && list.is_null(1) && list.is_valid(2));
    assert_eq!(list.value(0).len(), 2);
    assert_eq!(list.value(2).len(), 0);
}
