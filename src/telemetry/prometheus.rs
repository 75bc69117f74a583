//! The `/metrics` text: the registry's state in the Prometheus text
//! exposition format (version 0.0.4), written by hand line by line. Every
//! metric has its `# HELP` and `# TYPE` lines, even before it has a sample;
//! label values are escaped as the format requires.
//!
//! Why by hand and not through `prometheus-client` (checked against its
//! 0.23 sources): that crate writes only OpenMetrics (a `# EOF` line,
//! counters typed without their `_total` suffix, bucket bounds as `1.0`,
//! families in hash-map order), so every line dashboards and alarms read
//! today would change; it does not escape label values, and `event_type`
//! labels come from producers; and the gauges computed at scrape time
//! (freshness, shard lag) would need a custom collector, which is hand
//! encoding again. This file is about 300 lines, and its tests pin the
//! format and the escaping of hostile label values.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::metrics::{COMMIT_BUCKETS, LeaseChange, Metrics, RESTARTABLE_STAGES, TableStats};

/// A per-table metric: name, type, help, and its value in [`TableStats`].
type PerTable = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TableStats) -> u64,
);

impl Metrics {
    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn render(&self, now_micros: i64) -> String {
        let mut out = Prom::default();
        let l = self.lock();
        let c = &l.counts;
        out.head(
            "floe_build_info",
            "gauge",
            "Always 1; the version label names the running build.",
        );
        out.sample(
            "floe_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        out.single(
            "floe_ready",
            "gauge",
            "1 when started, the catalog answers and no shutdown is under way (as /health/ready).",
            u8::from(self.ready()).into(),
        );
        out.single(
            "floe_records_read_total",
            "counter",
            "Records read from the source (non-blank lines or Kinesis user records).",
            self.records_read.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "floe_bytes_read_total",
            "counter",
            "Input bytes read from the source.",
            self.bytes_read.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "floe_records_committed_total",
            "counter",
            "Records whose outcome is committed: rows, duplicates and rejects.",
            c.records_read as f64,
        );
        out.single(
            "floe_rows_written_total",
            "counter",
            "Rows committed to the events table (new keys and new versions).",
            c.rows_written as f64,
        );
        out.single(
            "floe_rows_deleted_total",
            "counter",
            "Rows removed from the events table by position deletes (replaced versions).",
            c.rows_deleted as f64,
        );
        out.head(
            "floe_duplicates_total",
            "counter",
            "Duplicate event_uuid records, by kind: identical (same body, skipped), replaced (older version replaced), skipped (keep-first).",
        );
        for (kind, n) in [
            ("identical", c.duplicates_identical),
            ("replaced", c.duplicates_replaced),
            ("skipped", c.duplicates_skipped),
        ] {
            out.sample("floe_duplicates_total", &[("kind", kind)], n as f64);
        }
        out.head(
            "floe_rejected_total",
            "counter",
            "Records committed to the rejected table, by reason.",
        );
        for reason in crate::event::RejectReason::ALL {
            let n = c.rejected.get(&reason).copied().unwrap_or(0);
            out.sample(
                "floe_rejected_total",
                &[("reason", reason.code())],
                n as f64,
            );
        }
        out.single(
            "floe_blank_lines_total",
            "counter",
            "Blank lines skipped (not records).",
            c.blank_lines as f64,
        );
        out.head(
            "floe_type_mismatches_total",
            "counter",
            "Payload values that did not fit their typed column (kept in payload, or rejected with --type-mismatch reject), by column.",
        );
        for (column, n) in &c.type_mismatches {
            out.sample(
                "floe_type_mismatches_total",
                &[("column", column)],
                *n as f64,
            );
        }
        out.head(
            "floe_missing_fields_total",
            "counter",
            "Committed records without an optional field (event_subtype or a typed column), by event type and field.",
        );
        for ((event_type, field), n) in &c.missing {
            out.sample(
                "floe_missing_fields_total",
                &[("event_type", event_type), ("field", field)],
                *n as f64,
            );
        }
        out.head(
            "floe_freshness_seconds",
            "gauge",
            "Now minus the newest created_datetime committed (absent before the first commit).",
        );
        if let Some(fresh) = self.freshness(now_micros) {
            out.sample("floe_freshness_seconds", &[], fresh);
        }
        out.head(
            "floe_newest_committed_event_timestamp_seconds",
            "gauge",
            "The newest created_datetime committed, Unix seconds.",
        );
        let newest = self.newest_committed_micros.load(Ordering::Relaxed);
        if newest != i64::MIN {
            out.sample(
                "floe_newest_committed_event_timestamp_seconds",
                &[],
                newest as f64 / 1e6,
            );
        }
        out.single(
            "floe_buffered_bytes",
            "gauge",
            "Input bytes read but not yet committed.",
            self.buffered_bytes.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "floe_buffered_records",
            "gauge",
            "Records read but not yet committed.",
            self.buffered_records.load(Ordering::Relaxed) as f64,
        );
        out.head(
            "floe_iterator_age_seconds",
            "gauge",
            "Kinesis MillisBehindLatest of each shard's last GetRecords, in seconds.",
        );
        if let Some(shards) = &l.shards {
            let shards = shards.lock().unwrap_or_else(|e| e.into_inner());
            for (shard, lag) in shards.iter().filter(|(_, lag)| !lag.ended) {
                if let Some(ms) = lag.millis_behind {
                    out.sample(
                        "floe_iterator_age_seconds",
                        &[("shard", shard)],
                        ms as f64 / 1e3,
                    );
                }
            }
        }
        if let Some(leases) = &l.leases {
            out.single(
                "floe_leases_owned",
                "gauge",
                "Kinesis shard leases this worker holds (--lease-table).",
                leases.owned as f64,
            );
            out.single(
                "floe_lease_workers",
                "gauge",
                "Workers sharing the stream whose heartbeat is alive, this one included.",
                leases.workers as f64,
            );
            out.head(
                "floe_lease_changes_total",
                "counter",
                "Shard leases that came or went, by kind: taken (free, expired or handed over), stolen (an unanswered hand-off request), released (handed over, at shutdown, or the shard finished), lost.",
            );
            for change in LeaseChange::ALL {
                let n = leases.changes.get(&change).copied().unwrap_or(0);
                out.sample(
                    "floe_lease_changes_total",
                    &[("kind", change.label())],
                    n as f64,
                );
            }
        }
        out.head(
            "floe_stage_restarts_total",
            "counter",
            "Stages that ended abnormally (a panic) and were started again from the last position they handed over, by stage.",
        );
        for stage in RESTARTABLE_STAGES {
            let n = l.stage_restarts.get(stage).copied().unwrap_or(0);
            out.sample("floe_stage_restarts_total", &[("stage", stage)], n as f64);
        }
        let per_table: [PerTable; 7] = [
            (
                "floe_metadata_bytes",
                "gauge",
                "Bytes of the table's current metadata file, after Floe's last commit to it (AWS Glue refuses 20 MB).",
                |t| t.metadata_bytes,
            ),
            (
                "floe_manifests",
                "gauge",
                "Manifests the table's current snapshot lists, after Floe's last commit to it.",
                |t| t.manifests,
            ),
            (
                "floe_snapshots_total",
                "counter",
                "Snapshots committed, by table.",
                |t| t.snapshots,
            ),
            (
                "floe_commit_conflicts_total",
                "counter",
                "Commit attempts lost to another writer (then retried), by table.",
                |t| t.conflicts,
            ),
            (
                "floe_commit_failures_total",
                "counter",
                "Commit attempts that failed because the catalog could not be reached (then retried), by table.",
                |t| t.failures,
            ),
            (
                "floe_files_written_total",
                "counter",
                "Data and delete files committed, by table.",
                |t| t.files,
            ),
            (
                "floe_bytes_written_total",
                "counter",
                "Bytes of the files committed, by table.",
                |t| t.bytes,
            ),
        ];
        for (name, kind, help, value) in per_table {
            out.head(name, kind, help);
            for (table, t) in &l.tables {
                out.sample(name, &[("table", table)], value(t) as f64);
            }
        }
        let name = "floe_commit_duration_seconds";
        out.head(
            name,
            "histogram",
            "Time from writing a commit's metadata to the catalog's answer, retries included, by table.",
        );
        for (table, t) in &l.tables {
            for (i, n) in t.latency_buckets.iter().enumerate() {
                let le = COMMIT_BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                out.sample(
                    &format!("{name}_bucket"),
                    &[("table", table), ("le", &le)],
                    *n as f64,
                );
            }
            out.sample(&format!("{name}_sum"), &[("table", table)], t.latency_sum);
            let count = t.latency_buckets[COMMIT_BUCKETS.len()];
            out.sample(&format!("{name}_count"), &[("table", table)], count as f64);
        }
        out.text
    }
}

/// Prometheus text exposition, written line by line.
#[derive(Default)]
struct Prom {
    text: String,
}

impl Prom {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.head(name, kind, help);
        self.sample(name, &[], value);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests;
