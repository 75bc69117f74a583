//! Tests of the configuration: defaults, every problem reported at once,
//! Kinesis and lease settings, layering, the `--check-config` listing, sizes.

use std::time::Duration;

use super::validate::parse_start_position;
use super::*;

fn base() -> RunSettings {
    RunSettings {
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
    assert_eq!(c.flush_size.get(), 192 << 20);
    assert_eq!(c.max_record_size.get(), 1 << 20);
    assert_eq!(c.flush_interval, Duration::from_secs(60));
    assert_eq!(c.zstd_level, 1);
    assert_eq!(c.store.catalog_name, "floe");
}

#[test]
fn every_problem_is_reported_at_once() {
    let raw = RunSettings {
        tuning: Tuning {
            table: Some("events".into()),
            flush_size: Some("12 parsecs".into()),
            flush_interval: Some("soon".into()),
            zstd_level: Some(40),
            progress: Some("loud".into()),
            decode_threads: Some(0),
            ..Default::default()
        },
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
    let raw = RunSettings {
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

    let raw = RunSettings {
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
    let shared = |lease_table: &str, extra: RunSettings| RunSettings {
        stream: Some("clicks".into()),
        warehouse: Some("w".into()),
        lease_table: Some(lease_table.into()),
        ..extra
    };
    let c = shared("floe-leases", RunSettings::default())
        .validate()
        .unwrap();
    let leases = c.kinesis.unwrap().leases.unwrap();
    assert_eq!(leases.table, "floe-leases");
    assert_eq!(leases.worker_id, None, "generated at start, not here");
    assert_eq!(leases.duration, Duration::from_secs(10));

    let raw = shared(
        "no",
        RunSettings {
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

    let raw = RunSettings {
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
    let raw = RunSettings {
        lease_table: None,
        worker_id: Some("w1".into()),
        ..shared("floe-leases", RunSettings::default())
    };
    let text = raw.validate().unwrap_err().to_string();
    assert!(
        text.contains("worker_id: only applies with a lease table"),
        "{text}"
    );
}

/// A TOML file in a temporary folder, kept while the folder lives.
fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floe.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn layers_merge_with_flags_first() {
    let flags = RunSettings {
        tuning: Tuning {
            zstd_level: Some(5),
            ..Default::default()
        },
        ..Default::default()
    };
    let (_dir, path) =
        file("input = [\"x.jsonl\"]\nwarehouse = \"w\"\nzstd_level = 9\nflush_size = \"1MiB\"\n");
    let c = flags.with_file(Some(&path)).unwrap().validate().unwrap();
    assert_eq!(c.zstd_level, 5);
    assert_eq!(c.flush_size.get(), 1 << 20);
    assert_eq!(c.inputs, ["x.jsonl"]);
    let (_dir, path) = file("flush_sise = \"1MiB\"");
    let err = RunSettings::default()
        .with_file(Some(&path))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown field `flush_sise`, expected one of `input`, `stream`, "),
        "{err}"
    );
}

#[test]
fn the_file_lists_every_setting_when_a_key_is_unknown() {
    let (_dir, path) = file("warehouse = \"w\"\nflush_sise = \"1MiB\"");
    let e = RunSettings::default().with_file(Some(&path)).unwrap_err();
    let keys: Vec<String> = setting_args()
        .iter()
        .map(|a| format!("`{}`", a.get_id()))
        .collect();
    assert_eq!(keys.len(), 34);
    assert_eq!(
        e.problems,
        [format!(
            "config file {}: unknown field `flush_sise`, expected one of {}",
            path.display(),
            keys.join(", ")
        )]
    );
}

#[test]
fn a_bad_value_in_the_file_is_reported_though_a_flag_overrides_it() {
    // As a flat struct reads the file: keys in sorted order, the first
    // problem wins, a datetime is not a string.
    let cases = [
        (
            "zstd_level = \"nine\"",
            "invalid type: string \"nine\", expected i32",
        ),
        (
            "zstd_level = \"nine\"\naaa = 1",
            "unknown field `aaa`, expected one of",
        ),
        (
            "zzz = 1\nwarehouse = 3",
            "invalid type: integer `3`, expected path string",
        ),
        (
            "flush_interval = 1979-05-27",
            "invalid type: map, expected a string",
        ),
        (
            "input = \"a\"",
            "invalid type: string \"a\", expected a sequence",
        ),
        (
            "drain = \"yes\"",
            "invalid type: string \"yes\", expected a boolean",
        ),
        ("input = [", "unclosed array, expected `]`"),
    ];
    for (text, want) in cases {
        let (_dir, path) = file(text);
        let flags = RunSettings {
            input: Some(vec!["a".into()]),
            warehouse: Some("w".into()),
            drain: Some(true),
            tuning: Tuning {
                zstd_level: Some(3),
                flush_interval: Some("1s".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = flags.with_file(Some(&path)).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{text}: {e}");
        let prefix = format!("config file {}: {want}", path.display());
        assert!(e.problems[0].starts_with(&prefix), "{text}: {e}");
    }
}

#[test]
fn a_switch_off_on_the_command_line_leaves_the_file_value() {
    // Clap gives an unused `--drain` as `Some(false)`: not given.
    let (_dir, path) =
        file("stream = \"s\"\nwarehouse = \"w\"\ndrain = true\ns3_path_style = true");
    let flags = RunSettings {
        drain: Some(false),
        aws: AwsSettings {
            s3_path_style: Some(false),
            ..Default::default()
        },
        ..Default::default()
    };
    let layered = flags.with_file(Some(&path)).unwrap();
    assert_eq!(layered.drain, Some(true));
    assert_eq!(layered.aws.s3_path_style, Some(true));
    let alone = RunSettings {
        drain: Some(false),
        ..Default::default()
    };
    assert_eq!(alone.with_file(None).unwrap(), RunSettings::default());
}

#[test]
fn every_setting_is_a_flag_a_variable_and_a_key_of_one_name() {
    for arg in setting_args() {
        let id = arg.get_id().as_str();
        assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()), "{id}");
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        assert_eq!(env, Some(format!("FLOE_{}", id.to_uppercase())), "{id}");
    }
}

#[test]
fn the_listed_settings_validate_back_to_themselves() {
    let kinesis = RunSettings {
        stream: Some("clicks".into()),
        lease_table: Some("floe-leases".into()),
        worker_id: Some("w1".into()),
        start_position: Some("at-timestamp:2026-11-01T00:00:00Z".into()),
        warehouse: Some("s3://lake/w".into()),
        aws: AwsSettings {
            catalog: Some("glue".into()),
            s3_endpoint: Some("http://127.0.0.1:9000".into()),
            s3_path_style: Some(true),
        },
        metrics_addr: Some("0.0.0.0:9464".into()),
        emf_namespace: Some("Floe".into()),
        ..Default::default()
    };
    let files = RunSettings {
        tuning: Tuning {
            expire_every: Some("off".into()),
            flush_size: Some("1.5MiB".into()),
            dedup_mode: Some("keep-first".into()),
            schema_dir: Some("schemas".into()),
            ..Default::default()
        },
        ..base()
    };
    for given in [base(), files, kinesis] {
        let config = given.validate().unwrap();
        let listed = config.settings();
        let again = listed.clone().validate().unwrap();
        assert_eq!(again.settings(), listed);
        assert_eq!(again.env_values().unwrap(), config.env_values().unwrap());
    }
    let values = base().validate().unwrap().env_values().unwrap();
    assert_eq!(values["FLOE_FLUSH_SIZE"], "201326592");
    assert_eq!(values["FLOE_FLUSH_INTERVAL"], "1m");
    assert_eq!(values["FLOE_INPUT"], "a.jsonl");
    assert_eq!(
        values["FLOE_DRAIN"], "",
        "a Kinesis setting, unset for files"
    );
    assert_eq!(values["FLOE_S3_PATH_STYLE"], "false");
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
