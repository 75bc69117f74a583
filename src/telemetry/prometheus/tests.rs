//! The `/metrics` text of registries with a few values set.

use std::time::Duration;

use crate::event::RejectReason;
use crate::table::summary::QualityCounts;
use crate::telemetry::metrics::{CommitRecord, LeaseChange, Metrics};

#[test]
fn renders_counts_labels_and_histograms() {
    let m = Metrics::empty();
    m.read(10, 1000);
    let mut counts = QualityCounts {
        records_read: 10,
        rows_written: 6,
        duplicates_identical: 2,
        ..Default::default()
    };
    counts.reject(RejectReason::InvalidJson);
    counts.reject(RejectReason::InvalidJson);
    counts
        .missing
        .insert(("pay\"ment".to_string(), "event_subtype".to_string()), 3);
    m.started();
    m.committed(&CommitRecord {
        table: "analytics.events",
        counts: &counts,
        files: 2,
        bytes: 4096,
        conflicts: 1,
        latency: Duration::from_millis(300),
        newest_micros: Some(1_700_000_000_000_000),
        events: true,
        health: Some((12_345, 7)),
    });
    let text = m.render(1_700_000_060_000_000);
    for line in [
        "floe_ready 1",
        "floe_records_read_total 10",
        "floe_rows_written_total 6",
        "floe_duplicates_total{kind=\"identical\"} 2",
        "floe_rejected_total{reason=\"invalid_json\"} 2",
        "floe_rejected_total{reason=\"too_large\"} 0",
        "floe_missing_fields_total{event_type=\"pay\\\"ment\",field=\"event_subtype\"} 3",
        "floe_freshness_seconds 60",
        "floe_commit_conflicts_total{table=\"analytics.events\"} 1",
        "floe_files_written_total{table=\"analytics.events\"} 2",
        "floe_commit_duration_seconds_bucket{table=\"analytics.events\",le=\"0.25\"} 0",
        "floe_commit_duration_seconds_bucket{table=\"analytics.events\",le=\"0.5\"} 1",
        "floe_commit_duration_seconds_bucket{table=\"analytics.events\",le=\"+Inf\"} 1",
        "floe_commit_duration_seconds_count{table=\"analytics.events\"} 1",
        "floe_metadata_bytes{table=\"analytics.events\"} 12345",
        "floe_manifests{table=\"analytics.events\"} 7",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
    // Every sample has a TYPE line before it.
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    for sample in text.lines().filter(|l| !l.starts_with('#')) {
        let name = sample.split(['{', ' ']).next().unwrap_or("");
        assert!(
            typed.iter().any(|t| name.starts_with(t)),
            "{name} has no TYPE"
        );
    }
}

#[test]
fn hostile_label_values_stay_inside_their_quotes() {
    let m = Metrics::empty();
    let mut counts = QualityCounts::default();
    for (event_type, n) in [
        ("a\\b", 1),
        ("say \"hi\"", 2),
        ("two\nlines", 3),
        ("x\\\"\n}", 4),
    ] {
        counts
            .missing
            .insert((event_type.to_string(), "event_subtype".to_string()), n);
    }
    m.committed(&CommitRecord {
        table: "analytics.events",
        counts: &counts,
        files: 1,
        bytes: 1,
        conflicts: 0,
        latency: Duration::from_millis(1),
        newest_micros: None,
        events: true,
        health: None,
    });
    let text = m.render(0);
    let missing: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("floe_missing_fields_total{"))
        .collect();
    assert_eq!(
        missing,
        [
            r#"floe_missing_fields_total{event_type="a\\b",field="event_subtype"} 1"#,
            r#"floe_missing_fields_total{event_type="say \"hi\"",field="event_subtype"} 2"#,
            r#"floe_missing_fields_total{event_type="two\nlines",field="event_subtype"} 3"#,
            r#"floe_missing_fields_total{event_type="x\\\"\n}",field="event_subtype"} 4"#,
        ]
    );
    // No value breaks a line: every line is a comment or a whole sample.
    for line in text.lines() {
        assert!(
            line.starts_with("# ") || line.starts_with("floe_"),
            "stray line {line:?}"
        );
    }
}

#[test]
fn lease_metrics_appear_once_leases_are_used() {
    let m = Metrics::empty();
    assert!(!m.render(0).contains("floe_leases_owned"));
    m.leases_owned(3);
    m.lease_workers(2);
    m.lease_changed(LeaseChange::Taken);
    m.lease_changed(LeaseChange::Taken);
    m.lease_changed(LeaseChange::Lost);
    let text = m.render(0);
    for line in [
        "floe_leases_owned 3",
        "floe_lease_workers 2",
        "floe_lease_changes_total{kind=\"taken\"} 2",
        "floe_lease_changes_total{kind=\"stolen\"} 0",
        "floe_lease_changes_total{kind=\"released\"} 0",
        "floe_lease_changes_total{kind=\"lost\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
}

#[test]
fn stage_restarts_are_counted_by_stage() {
    let m = Metrics::empty();
    let line = "floe_stage_restarts_total{stage=\"shard-reader\"}";
    assert!(m.render(0).lines().any(|l| l == format!("{line} 0")));
    m.stage_restarted("shard-reader");
    m.stage_restarted("shard-reader");
    assert!(m.render(0).lines().any(|l| l == format!("{line} 2")));
}
