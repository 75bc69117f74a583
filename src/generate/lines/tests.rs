//! Tests of bad lines: every variant of every reason code, and the exact
//! size of `too_large` lines.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::generate::tests::{classify, is_uuid_v4, kind_tag, lines, opts, run};
use crate::generate::{GenerateOptions, MIN_OVERSIZE_BYTES};

/// Which variant of its kind a bad line is, e.g. `bad_event_name:empty_first`.
fn variant(line: &[u8]) -> String {
    let kind = classify(line, 4096);
    if kind == "too_large" {
        return kind.to_string();
    }
    let v = match serde_json::from_slice::<Value>(line) {
        Err(_) if std::str::from_utf8(line).is_err() => "utf8".to_string(),
        Err(_) if line.starts_with(b"{\"event_uuid\":\"") => "truncated".to_string(),
        Err(_) => "garbage".to_string(),
        Ok(Value::Object(o)) => {
            let field = match kind {
                "bad_event_uuid" => "event_uuid",
                "bad_event_name" => "event_name",
                _ => "created_at",
            };
            match o.get(field) {
                None => "missing".to_string(),
                Some(Value::String(s)) if s.is_empty() => "empty".to_string(),
                Some(Value::String(s)) if s.starts_with(':') => "empty_first".to_string(),
                Some(Value::Number(n)) if kind != "bad_event_uuid" => n.to_string(),
                Some(other) => kind_tag(other).to_string(),
            }
        }
        Ok(other) if other.is_number() => "number".to_string(),
        Ok(other) => kind_tag(&other).to_string(),
    };
    format!("{kind}:{v}")
}

#[test]
fn bad_lines_cover_every_variant() {
    let o = GenerateOptions {
        dup_rate: 0.0,
        changed_dup_rate: 0.0,
        bad_rate: 1.0,
        ..opts(400, 21)
    };
    let (out, _) = run(&o);
    let seen: BTreeMap<String, usize> =
        lines(&out)
            .into_iter()
            .skip(1)
            .fold(BTreeMap::new(), |mut m, l| {
                *m.entry(variant(l)).or_default() += 1;
                m
            });
    let expected = [
        "invalid_json:utf8",
        "invalid_json:truncated",
        "invalid_json:garbage",
        "not_object:array",
        "not_object:string",
        "not_object:number",
        "not_object:null",
        "bad_event_uuid:missing",
        "bad_event_uuid:int",
        "bad_event_uuid:empty",
        "bad_event_name:missing",
        "bad_event_name:42",
        "bad_event_name:object",
        "bad_event_name:empty_first",
        "bad_event_name:empty",
        "bad_created_at:missing",
        "bad_created_at:string",
        "bad_created_at:null",
        "bad_created_at:bool",
        "created_at_out_of_range:946684799",
        "created_at_out_of_range:12",
        "created_at_out_of_range:4102444800",
        "too_large",
    ];
    let mut want = expected.to_vec();
    want.sort_unstable();
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        want,
        "{seen:?}"
    );
}

#[test]
fn too_large_has_exact_default_size() {
    let o = GenerateOptions {
        bad_rate: 0.5,
        ..GenerateOptions {
            events: 20,
            seed: 3,
            ..Default::default()
        }
    };
    let (out, s) = run(&o);
    assert_eq!(s.bad_by_kind["too_large"], 1);
    let big: Vec<_> = lines(&out)
        .into_iter()
        .filter(|l| l.len() > 100_000)
        .collect();
    assert_eq!(big.len(), 1);
    assert_eq!(big[0].len(), 1_048_576 + 1024);
    let v: Value = serde_json::from_slice(big[0]).expect("json");
    assert!(v["event_uuid"].as_str().is_some_and(is_uuid_v4));
}

#[test]
fn minimum_oversize_still_exact() {
    let o = GenerateOptions {
        bad_rate: 0.5,
        oversize_bytes: MIN_OVERSIZE_BYTES,
        ..opts(40, 8)
    };
    let (out, _) = run(&o);
    // Ordinary events are longer than 256 bytes, so find it by its pad.
    let padded: Vec<_> = lines(&out)
        .into_iter()
        .filter(|l| l.windows(11).any(|w| w == b"\"padding\":\""))
        .collect();
    assert_eq!(padded.len(), 1);
    assert_eq!(padded[0].len(), MIN_OVERSIZE_BYTES);
    serde_json::from_slice::<Value>(padded[0]).expect("json");
}
