//! Tests of the generator as a whole: determinism, exact counts, the shape
//! and kind of every line, line length, options; and the helpers the tests
//! beside each part (`lines/tests.rs`, `history.rs`, `vocab.rs`) share.

use super::lines::{TOO_LARGE_EVERY, TOO_LARGE_SLOT};
use super::*;
use serde_json::Value;
use std::collections::HashMap;

/// Small oversize so most tests stay fast; one test uses the default.
pub(super) fn opts(events: u64, seed: u64) -> GenerateOptions {
    GenerateOptions {
        events,
        seed,
        oversize_bytes: 4096,
        ..GenerateOptions::default()
    }
}

pub(super) fn run(o: &GenerateOptions) -> (Vec<u8>, GenerateStats) {
    let mut out = Vec::new();
    let stats = generate(o, &mut out).expect("generate");
    (out, stats)
}

pub(super) fn lines(out: &[u8]) -> Vec<&[u8]> {
    assert!(out.is_empty() || out.ends_with(b"\n"));
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

pub(super) fn valid_name(n: &str) -> bool {
    let parts: Vec<&str> = n.split(':').collect();
    (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

pub(super) fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'4'
        && b"89ab".contains(&b[19])
}

/// The ingester's verdict, re-derived independently.
pub(super) fn classify(line: &[u8], oversize: usize) -> &'static str {
    if line.len() >= oversize {
        return "too_large";
    }
    let Ok(v) = serde_json::from_slice::<Value>(line) else {
        return "invalid_json";
    };
    let Some(obj) = v.as_object() else {
        return "not_object";
    };
    match obj.get("event_uuid").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => assert!(is_uuid_v4(s), "{s}"),
        _ => return "bad_event_uuid",
    }
    match obj.get("event_name").and_then(Value::as_str) {
        Some(n) if !n.split(':').next().unwrap_or("").is_empty() => {}
        _ => return "bad_event_name",
    }
    let Some(ts) = obj.get("created_at").and_then(Value::as_f64) else {
        return "bad_created_at";
    };
    if !(946_684_800.0..4_102_444_800.0).contains(&ts) {
        return "created_at_out_of_range";
    }
    "valid"
}

/// Splits a valid line into (uuid, name, created_at text, payload object).
pub(super) fn envelope(line: &[u8]) -> (String, String, String, serde_json::Map<String, Value>) {
    let text = std::str::from_utf8(line).expect("utf8");
    assert!(text.starts_with("{\"event_uuid\":\""), "{text}");
    assert_eq!(&text[51..66], "\",\"event_name\":", "{text}");
    let rest = &text[66..];
    let name_end = rest[1..].find('"').expect("name end") + 1;
    let name = rest[1..name_end].to_string();
    let rest = rest[name_end + 1..]
        .strip_prefix(",\"created_at\":")
        .expect("created_at third");
    let ts = rest[..rest.find(',').expect("payload")].to_string();
    let mut obj = match serde_json::from_str::<Value>(text).expect("json") {
        Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    };
    for k in ["event_uuid", "event_name", "created_at"] {
        obj.remove(k);
    }
    (text[15..51].to_string(), name, ts, obj)
}

pub(super) fn kind_tag(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Null => "null",
    }
}

#[test]
fn same_options_same_bytes_and_seed_matters() {
    let cases = [
        (opts(3000, 1), opts(3000, 1), true),
        (opts(3000, 1), opts(3000, 2), false),
    ];
    for (a, b, same) in cases {
        assert_eq!(run(&a).0 == run(&b).0, same, "{a:?} vs {b:?}");
    }
    // Determinism must not depend on how the writer is chunked.
    let big = opts(20_000, 9);
    let (out, _) = run(&big);
    let mut buffered = io::BufWriter::with_capacity(7, Vec::new());
    generate(&big, &mut buffered).expect("generate");
    assert_eq!(buffered.into_inner().expect("flush"), out);
}

/// Pins the exact output, so a change to the stream (an extra random draw,
/// a new pool word) is a deliberate decision: update the constant then,
/// knowing every generated file and benchmark baseline changes with it.
#[test]
fn output_is_pinned() {
    let (out, _) = run(&GenerateOptions {
        bad_rate: 0.01,
        ..opts(5_000, 1)
    });
    let fnv = out.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    assert_eq!(fnv, 0x6f21_e91a_e4f6_0be6, "output changed: {fnv:#018x}");
}

#[test]
fn counts_are_exact_and_first_line_is_valid() {
    // (events, dup, changed, bad) -> expected (exact, changed, bad)
    let cases = [
        (0, 0.02, 0.01, 0.001, [0, 0, 0]),
        (1, 0.5, 0.5, 0.0, [0, 0, 0]),
        (10_000, 0.02, 0.01, 0.001, [200, 100, 10]),
        (5_000, 0.1, 0.05, 0.05, [500, 250, 250]),
        (100, 0.0, 0.0, 1.0, [0, 0, 99]),
        (100, 0.5, 0.5, 0.0, [49, 50, 0]),
        (1000, 0.0, 0.0, 0.0, [0, 0, 0]),
    ];
    for (events, dup_rate, changed_dup_rate, bad_rate, [e, c, b]) in cases {
        let o = GenerateOptions {
            dup_rate,
            changed_dup_rate,
            bad_rate,
            ..opts(events, 5)
        };
        let (out, s) = run(&o);
        let ls = lines(&out);
        assert_eq!(ls.len() as u64, events);
        assert_eq!(s.lines, events);
        assert_eq!(s.bytes, out.len() as u64);
        assert_eq!(
            [s.exact_duplicates, s.changed_duplicates, s.bad],
            [e, c, b],
            "{o:?}"
        );
        assert_eq!(s.valid, events - e - c - b);
        assert_eq!(s.bad_by_kind.values().sum::<u64>(), b);
        assert_eq!(s.bad_by_kind.len(), 7);
        if let Some(first) = ls.first() {
            assert_eq!(classify(first, o.oversize_bytes), "valid");
        }
    }
}

#[test]
fn every_line_has_the_stated_shape_and_kind() {
    for (events, bad_rate) in [(20_000, 0.05), (3_000, 0.5), (50, 0.2)] {
        let o = GenerateOptions {
            bad_rate,
            ..opts(events, 77)
        };
        let (out, s) = run(&o);
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        let mut schemas: HashMap<String, HashMap<String, &str>> = HashMap::new();
        let mut seen_uuids: HashMap<String, Vec<u8>> = HashMap::new();
        let (mut exact, mut changed, mut fractions, mut valid) = (0, 0, 0, 0);
        for line in lines(&out) {
            let kind = classify(line, o.oversize_bytes);
            if kind != "valid" {
                *kinds.entry(kind).or_default() += 1;
                if kind == "too_large" {
                    assert_eq!(line.len(), o.oversize_bytes);
                    serde_json::from_slice::<Value>(line).expect("too_large is JSON");
                } else if kind != "invalid_json" {
                    serde_json::from_slice::<Value>(line).expect("bad lines are JSON");
                }
                continue;
            }
            let (uuid, name, ts, payload) = envelope(line);
            assert!(valid_name(&name), "{name}");
            let (secs, frac) = ts.split_once('.').unwrap_or((&ts, ""));
            let secs: i64 = secs.parse().expect("secs");
            assert!((o.start..o.start + 7 * 86_400).contains(&secs));
            assert!(
                frac.len() <= 6 && frac.bytes().all(|b| b.is_ascii_digit()),
                "{ts}"
            );
            assert!((2..=12).contains(&payload.len()), "{}", payload.len());
            let schema = schemas.entry(name.clone()).or_default();
            for (k, v) in &payload {
                assert_eq!(
                    *schema.entry(k.clone()).or_insert(kind_tag(v)),
                    kind_tag(v),
                    "{k}"
                );
            }
            match seen_uuids.get(&uuid) {
                None => {
                    valid += 1;
                    fractions += u64::from(!frac.is_empty());
                    seen_uuids.insert(uuid, line.to_vec());
                }
                Some(orig) if orig == line => exact += 1,
                Some(orig) => {
                    let (_, n0, ts0, p0) = envelope(orig);
                    assert_eq!(
                        (n0, ts0),
                        (name, ts),
                        "changed duplicate keeps the envelope"
                    );
                    assert_ne!(p0, payload);
                    changed += 1;
                }
            }
        }
        assert_eq!(
            (valid, exact, changed),
            (s.valid, s.exact_duplicates, s.changed_duplicates)
        );
        // Bad kinds: one in 100 is too_large, the rest cycle evenly.
        let large = (s.bad + TOO_LARGE_EVERY - 1 - TOO_LARGE_SLOT) / TOO_LARGE_EVERY;
        let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
        for (i, k) in ROTATING_KINDS.iter().enumerate() {
            let share = (s.bad - large) / 6 + u64::from((i as u64) < (s.bad - large) % 6);
            expected.insert(k, share);
        }
        expected.insert(TOO_LARGE, large);
        expected.retain(|_, n| *n > 0);
        assert_eq!(kinds, expected, "classified");
        let reported: BTreeMap<_, _> = s.bad_by_kind.into_iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(reported, expected, "reported");
        if valid > 1000 {
            let share = fractions as f64 / valid as f64;
            assert!((0.65..0.75).contains(&share), "fraction share {share}");
        }
    }
}

#[test]
fn average_line_length_is_realistic() {
    let (out, s) = run(&GenerateOptions {
        bad_rate: 0.0,
        ..opts(50_000, 4)
    });
    let avg = out.len() as f64 / s.lines as f64;
    assert!((300.0..=460.0).contains(&avg), "average {avg}");
}

#[test]
fn validate_options_rejects_bad_values() {
    let ok = GenerateOptions::default();
    let cases: [(GenerateOptions, bool); 10] = [
        (ok.clone(), true),
        (
            GenerateOptions {
                dup_rate: 1.0,
                changed_dup_rate: 0.0,
                bad_rate: 0.0,
                ..ok.clone()
            },
            true,
        ),
        (
            GenerateOptions {
                dup_rate: -0.1,
                ..ok.clone()
            },
            false,
        ),
        (
            GenerateOptions {
                changed_dup_rate: 1.5,
                ..ok.clone()
            },
            false,
        ),
        (
            GenerateOptions {
                bad_rate: f64::NAN,
                ..ok.clone()
            },
            false,
        ),
        (
            GenerateOptions {
                dup_rate: 0.5,
                changed_dup_rate: 0.4,
                bad_rate: 0.2,
                ..ok.clone()
            },
            false,
        ),
        (
            GenerateOptions {
                days: 0,
                ..ok.clone()
            },
            false,
        ),
        (
            GenerateOptions {
                start: i64::MAX - 10,
                ..ok.clone()
            },
            false,
        ),
        (
            GenerateOptions {
                oversize_bytes: 100,
                ..ok.clone()
            },
            false,
        ),
        (
            GenerateOptions {
                oversize_bytes: MIN_OVERSIZE_BYTES,
                ..ok.clone()
            },
            true,
        ),
    ];
    for (o, valid) in cases {
        assert_eq!(validate_options(&o).is_ok(), valid, "{o:?}");
        let err = generate(&GenerateOptions { events: 10, ..o }, &mut Vec::new()).err();
        assert_eq!(err.is_none(), valid);
    }
}
