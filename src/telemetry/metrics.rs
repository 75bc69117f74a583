//! The process's metrics: one registry of counters and gauges that the
//! pipeline updates through named functions, rendered in the Prometheus text
//! format for `/metrics`, and (when a namespace is set) sent to CloudWatch as
//! Embedded Metric Format lines, one per commit.
//!
//! Labels are low-cardinality by construction: table names (two), reject
//! reasons (nine), duplicate kinds (three), typed column names and event
//! types from the data (about a hundred), shard ids. This module keeps
//! numbers only; it must not do I/O but for the EMF line it prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::ShardLags;
use crate::table::summary::QualityCounts;

/// Upper bounds of the commit latency histogram, in seconds.
const COMMIT_BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A table's commit statistics.
#[derive(Debug, Default, Clone)]
struct TableStats {
    snapshots: u64,
    conflicts: u64,
    failures: u64,
    files: u64,
    bytes: u64,
    /// Cumulative counts per bucket of [`COMMIT_BUCKETS`], then `+Inf`.
    latency_buckets: [u64; COMMIT_BUCKETS.len() + 1],
    latency_sum: f64,
    /// Bytes of the current metadata file, after the last commit.
    metadata_bytes: u64,
    /// Manifests of the current snapshot, after the last commit.
    manifests: u64,
}

/// A metadata file this large is logged as a warning: AWS Glue refuses
/// tables whose metadata exceeds 20 MB, and every reader loads it to plan.
pub const METADATA_WARN_BYTES: u64 = 10 << 20;

/// A per-table metric: name, type, help, and its value in [`TableStats`].
type PerTable = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TableStats) -> u64,
);

/// Counts kept under a lock: labelled by data values.
#[derive(Debug, Default)]
struct Labelled {
    counts: QualityCounts,
    tables: BTreeMap<String, TableStats>,
    shards: Option<ShardLags>,
    /// Shard leases, when the stream is shared (`--lease-table`).
    leases: Option<LeaseStats>,
    /// Restarts of supervised stages, by stage ([`RESTARTABLE_STAGES`]).
    stage_restarts: BTreeMap<&'static str, u64>,
}

/// The stages a supervisor restarts rather than failing the run (the others
/// fail it): each has a `floe_stage_restarts_total` sample, 0 until then.
pub const RESTARTABLE_STAGES: [&str; 1] = ["shard-reader"];

/// How a shard lease came or went, for `floe_lease_changes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeaseChange {
    /// Taken free, expired or handed over.
    Taken,
    /// Taken from an owner that left a hand-off request unanswered.
    Stolen,
    /// Given up: handed over, released at shutdown, or its shard finished.
    Released,
    /// Found to be another worker's, or not renewed for a lease duration.
    Lost,
}

impl LeaseChange {
    const ALL: [LeaseChange; 4] = [
        LeaseChange::Taken,
        LeaseChange::Stolen,
        LeaseChange::Released,
        LeaseChange::Lost,
    ];

    fn label(self) -> &'static str {
        match self {
            LeaseChange::Taken => "taken",
            LeaseChange::Stolen => "stolen",
            LeaseChange::Released => "released",
            LeaseChange::Lost => "lost",
        }
    }
}

/// Shard lease numbers.
#[derive(Debug, Default, Clone)]
struct LeaseStats {
    owned: usize,
    workers: usize,
    changes: BTreeMap<LeaseChange, u64>,
}

/// Readiness: serving traffic makes sense only when all three hold.
#[derive(Debug, Default)]
struct Health {
    /// The tables are loaded and their schema applied.
    started: AtomicBool,
    /// The last catalog call (commit or probe) succeeded.
    catalog_reachable: AtomicBool,
    /// A shutdown was requested.
    stopping: AtomicBool,
}

/// The registry. One per process: [`metrics()`].
#[derive(Debug)]
pub struct Metrics {
    records_read: AtomicU64,
    bytes_read: AtomicU64,
    buffered_bytes: AtomicU64,
    buffered_records: AtomicU64,
    /// Newest `created_datetime` committed, Unix microseconds (`i64::MIN`: none yet).
    newest_committed_micros: AtomicI64,
    labelled: Mutex<Labelled>,
    health: Health,
    /// CloudWatch namespace of the EMF lines, when they are wanted.
    emf_namespace: OnceLock<String>,
}

/// The process's registry.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::empty)
}

/// What one commit to a table did, for [`Metrics::committed`].
#[derive(Debug, Clone)]
pub struct CommitRecord<'a> {
    /// The table.
    pub table: &'a str,
    /// The records behind the commit (for the rejected table: rejects only).
    pub counts: &'a QualityCounts,
    /// Files the commit added (data and delete files).
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Swaps lost to other writers before this one won.
    pub conflicts: u32,
    /// From the first attempt to the catalog's answer.
    pub latency: Duration,
    /// Newest `created_datetime` among the committed rows, Unix microseconds.
    pub newest_micros: Option<i64>,
    /// Whether these are the events table's counts (the rejected table's
    /// commit carries only its rejects, which the events commit counts too).
    pub events: bool,
    /// Bytes of the new metadata file and manifests of the new snapshot
    /// (unknown when an earlier attempt was found to have landed).
    pub health: Option<(u64, usize)>,
}

impl Metrics {
    /// A registry with every count at zero, not ready.
    fn empty() -> Self {
        Metrics {
            records_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            buffered_bytes: AtomicU64::new(0),
            buffered_records: AtomicU64::new(0),
            newest_committed_micros: AtomicI64::new(i64::MIN),
            labelled: Mutex::new(Labelled::default()),
            health: Health::default(),
            emf_namespace: OnceLock::new(),
        }
    }

    /// Records and input bytes read by the source.
    pub fn read(&self, records: u64, bytes: u64) {
        self.records_read.fetch_add(records, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// What the buffer holds now (not yet committed).
    pub fn buffered(&self, bytes: usize, records: usize) {
        self.buffered_bytes.store(bytes as u64, Ordering::Relaxed);
        self.buffered_records
            .store(records as u64, Ordering::Relaxed);
    }

    /// A commit landed: counts, files, latency; the catalog answered.
    pub fn committed(&self, c: &CommitRecord<'_>) {
        {
            let mut l = self.lock();
            if c.events {
                l.counts.add_capped(c.counts);
            }
            let t = l.tables.entry(c.table.to_string()).or_default();
            t.snapshots += 1;
            t.conflicts += u64::from(c.conflicts);
            t.files += c.files;
            t.bytes += c.bytes;
            let secs = c.latency.as_secs_f64();
            t.latency_sum += secs;
            for (i, le) in COMMIT_BUCKETS.iter().enumerate() {
                if secs <= *le {
                    t.latency_buckets[i] += 1;
                }
            }
            t.latency_buckets[COMMIT_BUCKETS.len()] += 1;
            if let Some((metadata_bytes, manifests)) = c.health {
                if metadata_bytes >= METADATA_WARN_BYTES && t.metadata_bytes < METADATA_WARN_BYTES {
                    tracing::warn!(
                        table = c.table,
                        metadata_bytes,
                        "the table's metadata file passed 10 MiB (AWS Glue refuses 20 MB): expire snapshots (floe maintain --expire)"
                    );
                }
                t.metadata_bytes = metadata_bytes;
                t.manifests = manifests as u64;
            }
        }
        if let Some(newest) = c.newest_micros {
            self.newest_committed_micros
                .fetch_max(newest, Ordering::Relaxed);
        }
        self.catalog_answered(true);
        if c.events
            && let Some(namespace) = self.emf_namespace.get()
        {
            for line in self.emf_lines(namespace, c) {
                print_emf(&line);
            }
        }
    }

    /// A commit attempt failed because the catalog could not be reached; it
    /// will be tried again.
    pub fn commit_failed(&self, table: &str) {
        self.lock()
            .tables
            .entry(table.to_string())
            .or_default()
            .failures += 1;
        self.catalog_answered(false);
        if let Some(namespace) = self.emf_namespace.get() {
            print_emf(&emf(
                namespace,
                &[("Table", table)],
                &[("CommitFailures", "Count", 1.0)],
                chrono::Utc::now().timestamp_millis(),
            ));
        }
    }

    /// Whether the catalog answered the last call made to it.
    pub fn catalog_answered(&self, reachable: bool) {
        let was = self
            .health
            .catalog_reachable
            .swap(reachable, Ordering::Relaxed);
        if was != reachable && self.health.started.load(Ordering::Relaxed) {
            if reachable {
                tracing::info!("the catalog answers again: ready");
            } else {
                tracing::warn!("the catalog cannot be reached: not ready until it answers");
            }
        }
    }

    /// The tables are loaded and the catalog answered: ready to ingest.
    pub fn started(&self) {
        self.health.catalog_reachable.store(true, Ordering::Relaxed);
        self.health.started.store(true, Ordering::Relaxed);
    }

    /// A shutdown was requested: no longer ready.
    pub fn stopping(&self) {
        self.health.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether the process is ready: started, catalog reachable, not stopping.
    pub fn ready(&self) -> bool {
        self.health.started.load(Ordering::Relaxed)
            && self.health.catalog_reachable.load(Ordering::Relaxed)
            && !self.health.stopping.load(Ordering::Relaxed)
    }

    /// Why the process is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.health.stopping.load(Ordering::Relaxed) {
            Some("shutting down")
        } else if !self.health.started.load(Ordering::Relaxed) {
            Some("starting: loading the tables")
        } else if !self.health.catalog_reachable.load(Ordering::Relaxed) {
            Some("the catalog cannot be reached")
        } else {
            None
        }
    }

    /// Kinesis shards whose lag `/metrics` reports.
    pub fn watch_shards(&self, lags: ShardLags) {
        self.lock().shards = Some(lags);
    }

    /// How many shard leases this worker holds.
    pub fn leases_owned(&self, n: usize) {
        self.lock()
            .leases
            .get_or_insert_with(LeaseStats::default)
            .owned = n;
    }

    /// How many workers (this one included) have a live heartbeat.
    pub fn lease_workers(&self, n: usize) {
        self.lock()
            .leases
            .get_or_insert_with(LeaseStats::default)
            .workers = n;
    }

    /// A shard lease came or went.
    pub fn lease_changed(&self, change: LeaseChange) {
        *self
            .lock()
            .leases
            .get_or_insert_with(LeaseStats::default)
            .changes
            .entry(change)
            .or_default() += 1;
    }

    /// A supervised stage ended abnormally and was started again.
    pub fn stage_restarted(&self, stage: &'static str) {
        *self.lock().stage_restarts.entry(stage).or_default() += 1;
        if let Some(namespace) = self.emf_namespace.get() {
            print_emf(&emf(
                namespace,
                &[("Stage", stage)],
                &[("StageRestarts", "Count", 1.0)],
                chrono::Utc::now().timestamp_millis(),
            ));
        }
    }

    /// Turns on one EMF line per commit in this CloudWatch namespace.
    pub fn send_emf(&self, namespace: &str) {
        let _ = self.emf_namespace.set(namespace.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Labelled> {
        // Counters stay usable after a panic elsewhere.
        self.labelled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds from the newest committed `created_datetime` to `now_micros`.
    fn freshness(&self, now_micros: i64) -> Option<f64> {
        let newest = self.newest_committed_micros.load(Ordering::Relaxed);
        (newest != i64::MIN).then(|| (now_micros - newest).max(0) as f64 / 1e6)
    }

    /// The EMF lines of an events commit: its counts and health by table,
    /// then its rejects by table and reason (one line per reason it has).
    fn emf_lines(&self, namespace: &str, c: &CommitRecord<'_>) -> Vec<String> {
        let now = chrono::Utc::now();
        let millis = now.timestamp_millis();
        let mut values = vec![
            ("RecordsRead", "Count", c.counts.records_read as f64),
            ("RowsCommitted", "Count", c.counts.rows_written as f64),
            ("Rejected", "Count", c.counts.rejected_total() as f64),
            ("Duplicates", "Count", c.counts.duplicates_dropped() as f64),
            ("CommitSeconds", "Seconds", c.latency.as_secs_f64()),
            ("CommitConflicts", "Count", f64::from(c.conflicts)),
        ];
        if let Some(fresh) = self.freshness(now.timestamp_micros()) {
            values.push(("FreshnessSeconds", "Seconds", fresh));
        }
        if let Some((metadata_bytes, manifests)) = c.health {
            values.push(("MetadataBytes", "Bytes", metadata_bytes as f64));
            values.push(("Manifests", "Count", manifests as f64));
        }
        let mut lines = vec![emf(namespace, &[("Table", c.table)], &values, millis)];
        for reason in crate::event::RejectReason::ALL {
            let n = c.counts.rejected.get(&reason).copied().unwrap_or(0);
            if n > 0 {
                lines.push(emf(
                    namespace,
                    &[("Table", c.table), ("Reason", reason.code())],
                    &[("Rejected", "Count", n as f64)],
                    millis,
                ));
            }
        }
        lines
    }

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

/// Writes an EMF line to stdout; a closed stdout loses the line, not the run.
fn print_emf(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// One CloudWatch Embedded Metric Format line: the values as metrics of
/// `namespace` with one dimension set, `dimensions` (name, value).
fn emf(
    namespace: &str,
    dimensions: &[(&str, &str)],
    values: &[(&str, &str, f64)],
    millis: i64,
) -> String {
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let metrics: Vec<_> = values
        .iter()
        .map(|(name, unit, _)| serde_json::json!({ "Name": name, "Unit": unit }))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [names],
                "Metrics": metrics,
            }],
        },
    });
    for (name, value) in dimensions {
        line[*name] = serde_json::json!(value);
    }
    for (name, _, value) in values {
        line[*name] = serde_json::json!(value);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RejectReason;

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

    #[test]
    fn readiness_follows_start_catalog_and_shutdown() {
        let m = Metrics::empty();
        assert_eq!(m.not_ready_reason(), Some("starting: loading the tables"));
        m.started();
        assert!(m.ready());
        m.catalog_answered(false);
        assert_eq!(m.not_ready_reason(), Some("the catalog cannot be reached"));
        m.catalog_answered(true);
        assert!(m.ready());
        m.stopping();
        assert_eq!(m.not_ready_reason(), Some("shutting down"));
    }

    #[test]
    fn emf_lines_name_namespace_dimension_and_values() {
        let line = emf(
            "Floe",
            &[("Table", "analytics.events")],
            &[
                ("Rejected", "Count", 3.0),
                ("CommitSeconds", "Seconds", 0.5),
            ],
            1_700_000_000_000,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "Floe");
        assert_eq!(m["Dimensions"], serde_json::json!([["Table"]]));
        assert_eq!(m["Metrics"][1]["Name"], "CommitSeconds");
        assert_eq!(m["Metrics"][1]["Unit"], "Seconds");
        assert_eq!(v["Table"], "analytics.events");
        assert_eq!(v["Rejected"], 3.0);
        assert_eq!(v["CommitSeconds"], 0.5);
    }

    #[test]
    fn emf_lines_of_a_commit_carry_health_and_rejects_by_reason() {
        let m = Metrics::empty();
        let mut counts = QualityCounts {
            records_read: 7,
            ..QualityCounts::default()
        };
        counts.rejected.insert(RejectReason::InvalidJson, 2);
        counts.rejected.insert(RejectReason::TooLarge, 1);
        let record = CommitRecord {
            table: "analytics.events",
            counts: &counts,
            files: 1,
            bytes: 10,
            conflicts: 2,
            latency: Duration::from_millis(250),
            newest_micros: None,
            events: true,
            health: Some((4096, 3)),
        };
        let lines: Vec<serde_json::Value> = m
            .emf_lines("Floe", &record)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["CommitConflicts"], 2.0);
        assert_eq!(lines[0]["MetadataBytes"], 4096.0);
        assert_eq!(lines[0]["Manifests"], 3.0);
        assert_eq!(lines[0]["Rejected"], 3.0);
        let by_reason: Vec<(String, f64)> = lines[1..]
            .iter()
            .map(|l| {
                assert_eq!(
                    l["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                    serde_json::json!([["Table", "Reason"]])
                );
                (
                    l["Reason"].as_str().unwrap().to_string(),
                    l["Rejected"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_reason,
            [
                ("invalid_json".to_string(), 2.0),
                ("too_large".to_string(), 1.0)
            ]
        );
    }
}
