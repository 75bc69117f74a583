//! The process's metrics: one registry of counters and gauges that the
//! pipeline updates through named functions. Its state is rendered in the
//! Prometheus text format for `/metrics` by `prometheus.rs`, and (when a
//! namespace is set) sent to CloudWatch as Embedded Metric Format lines by
//! `emf.rs`; both read the registry, which knows them only as an
//! [`EventSink`].
//!
//! Labels are low-cardinality by construction: table names (two), reject
//! reasons (nine), duplicate kinds (three), typed column names and event
//! types from the data (about a hundred), shard ids. This module keeps
//! numbers only; it does no I/O.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::ShardLags;
use crate::table::summary::QualityCounts;

/// Upper bounds of the commit latency histogram, in seconds.
pub(super) const COMMIT_BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A table's commit statistics.
#[derive(Debug, Default, Clone)]
pub(super) struct TableStats {
    pub(super) snapshots: u64,
    pub(super) conflicts: u64,
    pub(super) failures: u64,
    pub(super) files: u64,
    pub(super) bytes: u64,
    /// Cumulative counts per bucket of [`COMMIT_BUCKETS`], then `+Inf`.
    pub(super) latency_buckets: [u64; COMMIT_BUCKETS.len() + 1],
    pub(super) latency_sum: f64,
    /// Bytes of the current metadata file, after the last commit.
    pub(super) metadata_bytes: u64,
    /// Manifests of the current snapshot, after the last commit.
    pub(super) manifests: u64,
}

/// A metadata file this large is logged as a warning: AWS Glue refuses
/// tables whose metadata exceeds 20 MB, and every reader loads it to plan.
pub const METADATA_WARN_BYTES: u64 = 10 << 20;

/// Counts kept under a lock: labelled by data values.
#[derive(Debug, Default)]
pub(super) struct Labelled {
    pub(super) counts: QualityCounts,
    pub(super) tables: BTreeMap<String, TableStats>,
    pub(super) shards: Option<ShardLags>,
    /// Shard leases, when the stream is shared (`--lease-table`).
    pub(super) leases: Option<LeaseStats>,
    /// Restarts of supervised stages, by stage ([`RESTARTABLE_STAGES`]).
    pub(super) stage_restarts: BTreeMap<&'static str, u64>,
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
    pub(super) const ALL: [LeaseChange; 4] = [
        LeaseChange::Taken,
        LeaseChange::Stolen,
        LeaseChange::Released,
        LeaseChange::Lost,
    ];

    pub(super) fn label(self) -> &'static str {
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
pub(super) struct LeaseStats {
    pub(super) owned: usize,
    pub(super) workers: usize,
    pub(super) changes: BTreeMap<LeaseChange, u64>,
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
    pub(super) records_read: AtomicU64,
    pub(super) bytes_read: AtomicU64,
    pub(super) buffered_bytes: AtomicU64,
    pub(super) buffered_records: AtomicU64,
    /// Newest `created_datetime` committed, Unix microseconds (`i64::MIN`: none yet).
    pub(super) newest_committed_micros: AtomicI64,
    labelled: Mutex<Labelled>,
    health: Health,
    /// Who hears of events as they happen (the EMF lines), when wanted.
    sink: OnceLock<Box<dyn EventSink>>,
}

/// Where the registry reports events as they happen, besides counting them:
/// the EMF lines of `emf.rs`, once turned on. The registry calls it and does
/// not know what it writes.
pub(super) trait EventSink: std::fmt::Debug + Send + Sync {
    /// A commit landed and was counted.
    fn committed(&self, metrics: &Metrics, c: &CommitRecord<'_>);
    /// A commit attempt failed: the catalog could not be reached.
    fn commit_failed(&self, table: &str);
    /// A supervised stage was restarted.
    fn stage_restarted(&self, stage: &str);
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
    pub(super) fn empty() -> Self {
        Metrics {
            records_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            buffered_bytes: AtomicU64::new(0),
            buffered_records: AtomicU64::new(0),
            newest_committed_micros: AtomicI64::new(i64::MIN),
            labelled: Mutex::new(Labelled::default()),
            health: Health::default(),
            sink: OnceLock::new(),
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
        if let Some(sink) = self.sink.get() {
            sink.committed(self, c);
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
        if let Some(sink) = self.sink.get() {
            sink.commit_failed(table);
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
        if let Some(sink) = self.sink.get() {
            sink.stage_restarted(stage);
        }
    }

    /// Reports events to `sink` from now on (the first sink set stays).
    pub(super) fn report_to(&self, sink: Box<dyn EventSink>) {
        let _ = self.sink.set(sink);
    }

    /// The counts kept under the lock, for updating or reading them.
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Labelled> {
        // Counters stay usable after a panic elsewhere.
        self.labelled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds from the newest committed `created_datetime` to `now_micros`.
    pub(super) fn freshness(&self, now_micros: i64) -> Option<f64> {
        let newest = self.newest_committed_micros.load(Ordering::Relaxed);
        (newest != i64::MIN).then(|| (now_micros - newest).max(0) as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A sink that records what it heard.
    #[derive(Debug, Default)]
    struct Heard(Mutex<Vec<String>>);

    impl EventSink for std::sync::Arc<Heard> {
        fn committed(&self, metrics: &Metrics, c: &CommitRecord<'_>) {
            let snapshots = metrics.lock().tables[c.table].snapshots;
            self.0
                .lock()
                .unwrap()
                .push(format!("committed {} {snapshots}", c.table));
        }
        fn commit_failed(&self, table: &str) {
            self.0.lock().unwrap().push(format!("failed {table}"));
        }
        fn stage_restarted(&self, stage: &str) {
            self.0.lock().unwrap().push(format!("restarted {stage}"));
        }
    }

    #[test]
    fn the_sink_hears_events_after_they_are_counted() {
        let m = Metrics::empty();
        let counts = QualityCounts::default();
        let record = CommitRecord {
            table: "analytics.events",
            counts: &counts,
            files: 1,
            bytes: 10,
            conflicts: 0,
            latency: Duration::from_millis(5),
            newest_micros: None,
            events: true,
            health: None,
        };
        m.committed(&record); // no sink yet: nothing heard
        let heard = std::sync::Arc::new(Heard::default());
        m.report_to(Box::new(heard.clone()));
        m.report_to(Box::new(std::sync::Arc::new(Heard::default()))); // ignored
        m.committed(&record);
        m.commit_failed("analytics.rejected");
        m.stage_restarted("shard-reader");
        assert_eq!(
            *heard.0.lock().unwrap(),
            [
                "committed analytics.events 2",
                "failed analytics.rejected",
                "restarted shard-reader"
            ]
        );
    }
}
