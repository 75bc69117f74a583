//! Tests of the configuration: defaults, every problem reported at once,
//! Kinesis and lease settings, layering, sizes.

use std::time::Duration;

use super::validate::parse_start_position;
use super::*;

fn base() -> RawRunConfig {
    RawRunConfig {
        input: Some(vec!["a.jsonl".into()]),
        warehouse: Some("wh".into()),
        ..Default::default()
    }
}

#[test]
fn defaults_fill_a_minimal_config() {
    let c = base().validate().unwrap();
    assert_eq!(c.table.to_string(), "analytics.events");
    assert_eq!(c.rejected_table.to_string(), "analytics.events_rejected");
    assert_eq!(c.flush_size.get(), 128 << 20);
    assert_eq!(c.max_record_size.get(), 1 << 20);
    assert_eq!(c.flush_interval, Duration::from_secs(60));
    assert_eq!(c.zstd_level, 1);
    assert_eq!(c.store.catalog_name, "floe");
}

#[test]
fn every_problem_is_reported_at_once() {
    let raw = RawRunConfig {
        table: Some("events".into()),
        flush_size: Some("12 parsecs".into()),
        flush_interval: Some("soon".into()),
        zstd_level: Some(40),
        progress: Some("loud".into()),
        decode_threads: Some(0),
        ..Default::default()
    };
    let e = raw.validate().unwrap_err();
    let text = e.to_string();
    for part in [
        "input: give input files (--input, FLOE_INPUT) or a Kinesis stream",
        "warehouse: a folder or s3:// URI is required",
        "table: table name `events`",
        "flush_size: `12 parsecs`: unknown unit",
        "flush_interval:",
        "zstd_level: 40",
        "progress: `loud`",
        "decode_threads: must be at least 1",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    assert_eq!(e.problems.len(), 8, "{text}");
}

#[test]
fn kinesis_settings_are_checked() {
    let raw = RawRunConfig {
        stream: Some("arn:aws:kinesis:us-east-1:123456789012:stream/clicks".into()),
        warehouse: Some("w".into()),
        start_position: Some("at-timestamp:2026-11-01T00:00:00Z".into()),
        drain: Some(true),
        ..Default::default()
    };
    let k = raw.validate().unwrap().kinesis.unwrap();
    assert_eq!(k.consumer_name, "floe");
    assert_eq!(k.start_position, StartPosition::AtTimestamp(1_793_491_200));
    assert!(k.drain);
    for (position, want) in [
        ("latest", Ok(StartPosition::Latest)),
        ("trim-horizon", Ok(StartPosition::TrimHorizon)),
        (
            "at-timestamp:1700000000",
            Ok(StartPosition::AtTimestamp(1_700_000_000)),
        ),
    ] {
        assert_eq!(parse_start_position(position), want);
    }
    let e = parse_start_position("at-timestamp:yesterday").unwrap_err();
    assert!(
        e.contains("neither Unix seconds nor an RFC 3339 time"),
        "{e}"
    );

    let raw = RawRunConfig {
        input: Some(vec!["x.jsonl".into()]),
        warehouse: Some("w".into()),
        consumer_name: Some("a:b".into()),
        drain: Some(true),
        ..Default::default()
    };
    let text = raw.validate().unwrap_err().to_string();
    assert!(
        text.contains("consumer_name: only applies to a Kinesis stream"),
        "{text}"
    );
    assert!(
        text.contains("drain: only applies to a Kinesis stream"),
        "{text}"
    );
}

#[test]
fn lease_settings_are_checked() {
    let shared = |lease_table: &str, extra: RawRunConfig| RawRunConfig {
        stream: Some("clicks".into()),
        warehouse: Some("w".into()),
        lease_table: Some(lease_table.into()),
        ..extra
    };
    let c = shared("floe-leases", RawRunConfig::default())
        .validate()
        .unwrap();
    let leases = c.kinesis.unwrap().leases.unwrap();
    assert_eq!(leases.table, "floe-leases");
    assert_eq!(leases.worker_id, None, "generated at start, not here");
    assert_eq!(leases.duration, Duration::from_secs(10));

    let raw = shared(
        "no",
        RawRunConfig {
            worker_id: Some("a b".into()),
            lease_duration: Some("500ms".into()),
            drain: Some(true),
            ..Default::default()
        },
    );
    let text = raw.validate().unwrap_err().to_string();
    for part in [
        "lease_table: `no` is not a DynamoDB table name",
        "worker_id: `a b` must be 1 to 128 characters without spaces",
        "lease_duration: must be at least 1s",
        "drain: cannot be combined with lease_table",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }

    let raw = RawRunConfig {
        input: Some(vec!["x.jsonl".into()]),
        warehouse: Some("w".into()),
        lease_table: Some("floe-leases".into()),
        worker_id: Some("w1".into()),
        ..Default::default()
    };
    let text = raw.validate().unwrap_err().to_string();
    assert!(
        text.contains("lease_table: only applies to a Kinesis stream"),
        "{text}"
    );
    let raw = RawRunConfig {
        lease_table: None,
        worker_id: Some("w1".into()),
        ..shared("floe-leases", RawRunConfig::default())
    };
    let text = raw.validate().unwrap_err().to_string();
    assert!(
        text.contains("worker_id: only applies with a lease table"),
        "{text}"
    );
}

#[test]
fn layers_merge_with_flags_first() {
    let flags = RawRunConfig {
        zstd_level: Some(5),
        ..Default::default()
    };
    let file: RawRunConfig = toml::from_str(
        "input = [\"x.jsonl\"]\nwarehouse = \"w\"\nzstd_level = 9\nflush_size = \"1MiB\"\n",
    )
    .unwrap();
    let c = flags.or(file).validate().unwrap();
    assert_eq!(c.zstd_level, 5);
    assert_eq!(c.flush_size.get(), 1 << 20);
    assert_eq!(c.inputs, ["x.jsonl"]);
    let err = toml::from_str::<RawRunConfig>("flush_sise = \"1MiB\"").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `flush_sise`"),
        "{err}"
    );
}

#[test]
fn sizes_parse() {
    let cases = [
        ("4096", Ok(4096)),
        ("64KiB", Ok(65536)),
        ("128MiB", Ok(128 << 20)),
        ("1.5GiB", Ok(3 << 29)),
        ("10MB", Ok(10_000_000)),
        ("2 mib", Ok(2 << 20)),
    ];
    for (text, want) in cases {
        assert_eq!(parse_size(text), want, "{text}");
    }
    assert!(parse_size("MiB").is_err());
    assert!(
        parse_size("5 furlongs")
            .unwrap_err()
            .contains("unknown unit")
    );
}
