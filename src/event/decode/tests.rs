//! Unit tests of `decode.rs`.

use super::*;

const NOW: f64 = 1_780_000_000.0;

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_record_size: 200,
        now_seconds: NOW,
        ..Default::default()
    }
}

/// Limits no test record reaches, and no typed columns.
fn roomy() -> DecodeLimits {
    DecodeLimits {
        max_record_size: 1 << 20,
        now_seconds: NOW,
        ..Default::default()
    }
}

fn reject(line: &str) -> (RejectReason, String) {
    let r = decode(line.as_bytes(), &limits()).expect_err(line);
    (r.reason, r.message)
}

#[test]
fn every_reject_reason_with_its_message() {
    use RejectReason::*;
    let long = format!(r#"{{"event_uuid":"a","pad":"{}"}}"#, "x".repeat(200));
    let cases: &[(&str, RejectReason, &str)] = &[
        (&long, TooLarge, "over the limit of 200 bytes"),
        (r#"{"event_uuid":"a""#, InvalidJson, "not valid JSON: EOF"),
        ("garbage", InvalidJson, "not valid JSON: expected value"),
        (r#"{"a":1} {"b":2}"#, InvalidJson, "trailing characters"),
        (r#"[1,2]"#, NotObject, "found an array"),
        (r#""text""#, NotObject, "found a string"),
        ("12", NotObject, "found a number"),
        ("null", NotObject, "found null"),
        (
            r#"{"event_name":"a","created_at":1780000000}"#,
            BadEventUuid,
            "event_uuid is missing",
        ),
        (
            r#"{"event_uuid":7,"event_name":"a","created_at":1780000000}"#,
            BadEventUuid,
            "must be a string, found a number",
        ),
        (
            r#"{"event_uuid":"","event_name":"a","created_at":1780000000}"#,
            BadEventUuid,
            "event_uuid is empty",
        ),
        (
            r#"{"event_uuid":"u","created_at":1780000000}"#,
            BadEventName,
            "event_name is missing",
        ),
        (
            r#"{"event_uuid":"u","event_name":{},"created_at":1780000000}"#,
            BadEventName,
            "found an object",
        ),
        (
            r#"{"event_uuid":"u","event_name":":created","created_at":1780000000}"#,
            BadEventName,
            "empty first part",
        ),
        (
            r#"{"event_uuid":"u","event_name":"","created_at":1780000000}"#,
            BadEventName,
            "empty first part",
        ),
        (
            r#"{"event_uuid":"u","event_name":"a"}"#,
            BadCreatedAt,
            "created_at is missing",
        ),
        (
            r#"{"event_uuid":"u","event_name":"a","created_at":"1780000000"}"#,
            BadCreatedAt,
            "found a string",
        ),
        (
            r#"{"event_uuid":"u","event_name":"a","created_at":true}"#,
            BadCreatedAt,
            "found a boolean",
        ),
        (
            r#"{"event_uuid":"u","event_name":"a","created_at":null}"#,
            BadCreatedAt,
            "found null",
        ),
        (
            r#"{"event_uuid":"u","event_name":"a","created_at":946684799}"#,
            CreatedAtOutOfRange,
            "outside",
        ),
        (
            r#"{"event_uuid":"u","event_name":"a","created_at":4102444800}"#,
            CreatedAtOutOfRange,
            "outside",
        ),
        (
            r#"{"event_uuid":"u","event_name":"a","created_at":-5}"#,
            CreatedAtOutOfRange,
            "outside",
        ),
    ];
    for (line, reason, part) in cases {
        let (got, message) = reject(line);
        assert_eq!(got, *reason, "{line}");
        assert!(message.contains(part), "{line}: {message}");
    }
    let bad_utf8 = b"{\"event_uuid\":\"\xff\xfe\"}";
    let r = decode(bad_utf8, &limits()).unwrap_err();
    assert_eq!(
        (r.reason, r.message.as_str()),
        (InvalidJson, "not valid UTF-8 at byte 15")
    );
}

#[test]
fn reason_codes_round_trip() {
    for r in RejectReason::ALL {
        assert_eq!(RejectReason::from_code(r.code()), Some(r));
    }
    assert_eq!(RejectReason::from_code("nope"), None);
}

#[test]
fn enriches_type_subtype_time_and_payload() {
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, i64, Option<&'a str>);
    let cases: &[Case] = &[
        (
            r#"{"event_uuid":"u1","event_name":"payment:order:completed","created_at":1780000000.25,"amount":12.50,"tags":["a", "b"]}"#,
            "payment",
            Some("order"),
            1_780_000_000_250_000,
            Some(r#"{"amount":12.50,"tags":["a","b"]}"#),
        ),
        (
            r#"{"event_uuid":"u2","event_name":"session","created_at":1780000000}"#,
            "session",
            None,
            1_780_000_000_000_000,
            None,
        ),
        (
            r#"{"event_uuid":"u3","event_name":"a::b","created_at":1780000000.5}"#,
            "a",
            None,
            1_780_000_000_500_000,
            None,
        ),
        (
            r#"{ "x" : { "y" : "a b" } , "event_uuid" : "u4", "event_name":"cart:item","created_at":1780000000.123456, "q\"k":1}"#,
            "cart",
            Some("item"),
            1_780_000_000_123_456,
            Some(r#"{"x":{"y":"a b"},"q\"k":1}"#),
        ),
    ];
    for (line, event_type, subtype, micros, payload) in cases {
        let e = decode(line.as_bytes(), &roomy()).unwrap();
        assert_eq!(e.event_type(), *event_type, "{line}");
        assert_eq!(e.event_subtype(), *subtype, "{line}");
        assert_eq!(e.created_micros, *micros, "{line}");
        assert_eq!(e.payload(), *payload, "{line}");
        if let Some(p) = payload {
            // The payload is valid JSON.
            serde_json::from_str::<serde_json::Value>(p).unwrap();
        }
    }
}

#[test]
fn event_name_parts_are_trimmed_and_event_type_is_a_safe_partition_value() {
    let name = |n: &str| {
        format!(
            r#"{{"event_uuid":"u","event_name":{},"created_at":1780000000}}"#,
            serde_json::to_string(n).unwrap()
        )
    };
    // (event_name, event_type, event_subtype): white space around parts goes.
    let kept: &[(&str, &str, Option<&str>)] = &[
        (" pay : x ", "pay", Some("x")),
        ("pay:  :x", "pay", None),
        ("\u{3000}注文\u{a0}:済", "注文", Some("済")),
        (
            &"t".repeat(MAX_EVENT_TYPE_BYTES),
            &"t".repeat(MAX_EVENT_TYPE_BYTES),
            None,
        ),
        ("a/b=c:d", "a/b=c", Some("d")),
    ];
    for (event_name, event_type, subtype) in kept {
        let e = decode(name(event_name).as_bytes(), &roomy()).unwrap();
        assert_eq!(e.event_name(), *event_name, "kept as sent");
        assert_eq!(e.event_type(), *event_type, "{event_name:?}");
        assert_eq!(e.event_subtype(), *subtype, "{event_name:?}");
    }
    let refused: &[(String, &str)] = &[
        ("   :x".into(), "empty first part"),
        ("a\tb:x".into(), "control character U+0009"),
        ("a\u{85}b".into(), "control character U+0085"),
        (
            "t".repeat(MAX_EVENT_TYPE_BYTES + 1),
            "is 65 bytes, over the limit of 64 bytes",
        ),
        // 22 CJK characters are 66 bytes.
        ("注".repeat(22), "is 66 bytes, over the limit of 64"),
    ];
    for (event_name, want) in refused {
        let r = decode(name(event_name).as_bytes(), &roomy()).unwrap_err();
        assert_eq!(r.reason, RejectReason::BadEventName, "{event_name:?}");
        assert!(r.message.contains(want), "{event_name:?}: {}", r.message);
    }
}

#[test]
fn a_key_sent_twice_takes_its_last_value_everywhere() {
    let line = r#"{"event_uuid":"a","amount":1,"event_name":"x:y","created_at":1780000000,"amount":999,"event_uuid":"b","note":"n"}"#;
    let e = decode(line.as_bytes(), &roomy()).unwrap();
    assert_eq!(e.event_uuid(), "b");
    assert_eq!(e.payload(), Some(r#"{"amount":999,"note":"n"}"#));
    let same =
        r#"{"event_uuid":"b","event_name":"x:y","created_at":1780000000,"amount":999,"note":"n"}"#;
    assert_eq!(
        decode(same.as_bytes(), &roomy()).unwrap().content_hash,
        e.content_hash,
        "the same event, however often a key was sent"
    );
    // Many keys, some of them sent twice or three times: up to 64 members
    // and past it (two ways of finding repeats).
    for count in [40, 100] {
        let mut members: Vec<String> = (0..count).map(|i| format!(r#""k{i}":{i}"#)).collect();
        members.extend([
            r#""k3":"x""#.into(),
            r#""k30":"y""#.into(),
            r#""k3":"z""#.into(),
        ]);
        let line = format!(
            r#"{{"event_uuid":"u","event_name":"t","created_at":1780000000,{}}}"#,
            members.join(",")
        );
        let e = decode(line.as_bytes(), &roomy()).unwrap();
        let payload: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(e.payload().unwrap()).unwrap();
        assert_eq!(payload.len(), count, "{count} keys");
        assert_eq!(payload["k3"], "z");
        assert_eq!(payload["k30"], "y");
        assert_eq!(payload["k7"], 7);
        assert_eq!(e.payload().unwrap().matches("\"k3\"").count(), 1);
    }
}

#[test]
fn created_at_out_of_range_is_echoed_as_sent() {
    for (sent, want) in [
        ("1e400", "created_at 1e400 is outside"),
        (
            "123456789012345678901234567890",
            "created_at 123456789012345678901234567890 is outside",
        ),
        ("-0.5", "created_at -0.5 is outside"),
    ] {
        let line = format!(r#"{{"event_uuid":"u","event_name":"a","created_at":{sent}}}"#);
        let r = decode(line.as_bytes(), &roomy()).unwrap_err();
        assert_eq!(r.reason, RejectReason::CreatedAtOutOfRange, "{sent}");
        assert!(r.message.starts_with(want), "{sent}: {}", r.message);
    }
}

#[test]
fn unicode_and_escaped_strings_survive() {
    let line = r#"{"event_uuid":"\u0075-1","event_name":"caf\u00e9:x","created_at":1780000000,"n":"café \"q\""}"#;
    let e = decode(line.as_bytes(), &roomy()).unwrap();
    assert_eq!(e.event_uuid(), "u-1");
    assert_eq!(e.event_type(), "café");
    assert_eq!(e.payload(), Some(r#"{"n":"café \"q\""}"#));
    assert_eq!(e.day(), 20601);

    // Keys: as sent when they had no escape, written back as JSON
    // literals when they had one.
    let line = r#"{"event_uuid":"u","event_name":"a","created_at":1780000000,"k\u0065y":1,"a\"b\\":2,"clé x":3}"#;
    let e = decode(line.as_bytes(), &roomy()).unwrap();
    assert_eq!(e.payload(), Some(r#"{"key":1,"a\"b\\":2,"clé x":3}"#));
}

#[test]
fn typed_columns_take_fitting_payload_fields() {
    use crate::event::typed::{TypedColumns, Value};
    use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
    use std::sync::Arc;

    let initial: Schema =
        serde_json::from_str(include_str!("../../../schemas/events/0001-initial.json")).unwrap();
    let mut fields: Vec<_> = initial.as_struct().fields().to_vec();
    fields.push(NestedField::optional(12, "amount", Type::Primitive(PrimitiveType::Double)).into());
    fields.push(NestedField::optional(13, "qty", Type::Primitive(PrimitiveType::Int)).into());
    let schema = Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids([1])
        .build()
        .unwrap();
    let limits = |strict| DecodeLimits {
        max_record_size: 1 << 20,
        now_seconds: NOW,
        columns: Arc::new(TypedColumns::of_schema(&schema, strict)),
    };
    let head = r#""event_uuid":"u","event_name":"shop:order","created_at":1780000000"#;

    // Both fit: both leave payload, the rest stays.
    let line = format!(r#"{{{head},"amount":12.5,"qty":3,"note":"hi"}}"#);
    let mut mismatched = Vec::new();
    let e = decode_counting(line.as_bytes(), &limits(false), &mut mismatched).unwrap();
    assert_eq!(e.typed, vec![Value::Float(12.5), Value::Int(3)]);
    assert_eq!(e.payload(), Some(r#"{"note":"hi"}"#));
    assert!(mismatched.is_empty());
    // The hash is the one of the whole payload, as without typed columns.
    let plain = decode(line.as_bytes(), &roomy()).unwrap();
    assert_eq!(e.content_hash, plain.content_hash);
    assert_eq!(
        plain.payload(),
        Some(r#"{"amount":12.5,"qty":3,"note":"hi"}"#)
    );

    // A promoted field between others splits the run copied whole.
    let line = format!(r#"{{"a":[1],{head},"amount":2.5,"note":"hi","qty":3,"x":{{"y":1}}}}"#);
    let e = decode(line.as_bytes(), &limits(false)).unwrap();
    assert_eq!(e.typed, vec![Value::Float(2.5), Value::Int(3)]);
    assert_eq!(e.payload(), Some(r#"{"a":[1],"note":"hi","x":{"y":1}}"#));

    // Only promoted fields: no payload at all.
    let line = format!(r#"{{{head},"amount":1}}"#);
    let e = decode(line.as_bytes(), &limits(false)).unwrap();
    assert_eq!((e.typed[0].clone(), e.payload()), (Value::Float(1.0), None));

    // A value that does not fit stays in payload and is reported...
    let line = format!(r#"{{{head},"amount":"12.5","qty":3.5}}"#);
    let mut mismatched = Vec::new();
    let e = decode_counting(line.as_bytes(), &limits(false), &mut mismatched).unwrap();
    assert_eq!(e.typed, vec![Value::Null, Value::Null]);
    assert_eq!(e.payload(), Some(r#"{"amount":"12.5","qty":3.5}"#));
    assert_eq!(mismatched, vec![0, 1]);

    // ...or rejects the record in strict mode, naming the field.
    let r = decode(line.as_bytes(), &limits(true)).unwrap_err();
    assert_eq!(r.reason, RejectReason::TypeMismatch);
    assert_eq!(
        r.message,
        r#"amount must be a double to fill its column, found "12.5""#
    );
}

/// What the fast scan accepts, serde_json accepts with the same members;
/// what serde_json refuses, the scan refuses (and leaves to serde_json).
fn scan_agrees_with_serde(text: &str) -> bool {
    let scanned = scan::members(text);
    let parsed = parse_members(text);
    if let Some(members) = &scanned {
        assert_eq!(parsed.as_ref().ok(), Some(members), "{text:?}");
    }
    scanned.is_some()
}

/// A JSON value of a few levels, with escapes, unicode and every kind of
/// number and literal.
fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "[a-z\"\\\\/\n\t é\u{1F600}\u{7f}]{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z\"é]{0,4}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(4000))]

    /// Objects as serde_json writes them, compact and pretty, then with one
    /// byte inserted, removed or replaced by a JSON-significant one.
    #[test]
    fn the_scan_reads_objects_as_serde_json_does(
        members in proptest::collection::vec(("[a-z_\"\\\\é]{0,6}", json_value()), 0..6),
        pretty in proptest::bool::ANY,
        at in 0usize..400,
        edit in 0u8..3,
        byte in proptest::sample::select(b"{}[]\",:\\ \t\n0123456789-+.eEtrufalsn\x01/".to_vec()),
    ) {
        let object = serde_json::Value::Object(members.into_iter().collect());
        let text = match pretty {
            true => serde_json::to_string_pretty(&object).unwrap(),
            false => serde_json::to_string(&object).unwrap(),
        };
        let plain_keys = object
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains(['"', '\\']));
        // The common shape, keys without escapes, takes the fast path.
        proptest::prop_assert_eq!(scan_agrees_with_serde(&text), plain_keys, "{}", text);
        let mut bytes = text.into_bytes();
        let at = at.min(bytes.len());
        match edit {
            0 => bytes.insert(at, byte),
            1 if at < bytes.len() => { bytes.remove(at); }
            _ if at < bytes.len() => bytes[at] = byte,
            _ => bytes.push(byte),
        }
        if let Ok(text) = String::from_utf8(bytes) {
            scan_agrees_with_serde(&text);
        }
    }

    /// The payload is the other members as compact JSON, in input order
    /// (a key sent twice keeps its last value), whatever white space,
    /// escaped keys and common fields lie between them (members lying one
    /// after the other are copied in one piece).
    #[test]
    fn the_payload_is_the_other_members_compact(
        members in proptest::collection::vec(("[a-z_\"\\\\é]{0,6}", json_value()), 0..8),
        common_at in proptest::collection::vec(0usize..9, 3),
        spaced in proptest::collection::vec(proptest::bool::ANY, 1..20),
    ) {
        // A key sent twice keeps its last value, where that one stands.
        let last: Vec<&(String, serde_json::Value)> = members
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| !members[i + 1..].iter().any(|(later, _)| later == k))
            .map(|(_, m)| m)
            .collect();
        let expected = (!last.is_empty()).then(|| {
            let joined: Vec<String> = last
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
                .collect();
            format!("{{{}}}", joined.join(","))
        });
        // Values written pretty too: white space inside arrays and objects.
        let mut all: Vec<(String, String)> = members
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                let v = match spaced[i % spaced.len()] {
                    true => serde_json::to_string_pretty(v).unwrap(),
                    false => v.to_string(),
                };
                (serde_json::to_string(k).unwrap(), v)
            })
            .collect();
        for ((key, value), at) in [("event_uuid", "\"u\""), ("event_name", "\"a:b\""), ("created_at", "1780000000")]
            .into_iter()
            .zip(common_at)
        {
            let at = at.min(all.len());
            all.insert(at, (format!("\"{key}\""), value.to_string()));
        }
        let space = |i: usize| if spaced[i % spaced.len()] { " " } else { "" };
        let text: Vec<String> = all
            .iter()
            .enumerate()
            .map(|(i, (k, v))| format!("{}{k}{}:{}{v}", space(3 * i), space(3 * i + 1), space(3 * i + 2)))
            .collect();
        let line = format!("{{{}}}", text.join(","));
        let event = decode(line.as_bytes(), &roomy()).unwrap();
        proptest::prop_assert_eq!(event.payload(), expected.as_deref(), "{}", line);
    }

    /// Any short text over JSON's significant characters.
    #[test]
    fn the_scan_refuses_what_serde_json_refuses(
        text in "[{}\\[\\]\",:\\\\ \t\n0-9eE.+\\-truefalsnxé\u{1}]{0,24}",
    ) {
        scan_agrees_with_serde(&text);
        scan_agrees_with_serde(&format!("{{\"k\":{text}}}"));
        scan_agrees_with_serde(&format!("{{{text}}}"));
    }
}

/// Lines of every shape the scan leaves to serde_json still decode, to
/// the same rejections as before.
#[test]
fn what_the_scan_leaves_is_read_by_serde_json() {
    let deep = format!(
        r#"{{"event_uuid":"u","event_name":"a","created_at":1780000000,"d":{}{}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    assert!(scan::members(&deep).is_none());
    assert_eq!(
        decode(deep.as_bytes(), &roomy())
            .unwrap()
            .payload()
            .map(str::len),
        Some(5 + 140 + 1)
    );
    for (line, reason) in [
        ("[1]", RejectReason::NotObject),
        (r#"{"a":1,}"#, RejectReason::InvalidJson),
        (r#"{"a":01}"#, RejectReason::InvalidJson),
        (r#"{"a":"\x"}"#, RejectReason::InvalidJson),
        ("{\"a\":\"\u{1}\"}", RejectReason::InvalidJson),
        (r#"{"a":1} x"#, RejectReason::InvalidJson),
    ] {
        assert!(scan::members(line).is_none(), "{line}");
        assert_eq!(
            decode(line.as_bytes(), &roomy()).unwrap_err().reason,
            reason,
            "{line}"
        );
    }
}
