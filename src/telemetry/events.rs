//! Named events: each function writes the event's log line and counts it in
//! the metrics, so that what an operator reads in the log and what a
//! dashboard counts cannot drift apart. Callers pass plain values.
//!
//! Gauges set from a state (leases owned, buffered bytes, shard lags) are
//! not events and stay on [`super::metrics::Metrics`]; so do counts that
//! have no log line of their own (records read).

use super::metrics::{CommitRecord, LeaseChange, metrics};

/// A commit landed as snapshot `snapshot_id`: the log line, and the
/// counts, files, latency and table health in the metrics.
pub fn committed(c: &CommitRecord<'_>, snapshot_id: i64) {
    metrics().committed(c);
    if c.events {
        tracing::info!(
            table = c.table,
            snapshot_id,
            rows = c.counts.rows_written,
            files = c.files,
            duplicates = c.counts.duplicates_dropped(),
            deleted = c.counts.rows_deleted,
            rejected = c.counts.rejected_total(),
            conflicts = c.conflicts,
            commit_ms = c.latency.as_secs_f64() * 1e3,
            "committed events"
        );
    } else {
        tracing::info!(
            table = c.table,
            snapshot_id,
            records = c.counts.rejected_total(),
            "committed rejected records"
        );
    }
}

/// How this task came to hold a shard's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseGain {
    /// Taken from no owner.
    Free,
    /// Taken from an owner that had not renewed it for a lease duration.
    Expired,
    /// Found to be this task's in the table: handed over to it, or held
    /// before a restart under the same worker id.
    Ours,
    /// Taken from an owner that left a hand-off request unanswered.
    Stolen,
}

/// This task holds a shard's lease now and reads the shard from its
/// checkpoint.
pub fn lease_gained(shard: &str, worker: &str, how: LeaseGain) {
    let (change, message) = match how {
        LeaseGain::Free => (LeaseChange::Taken, "took a free lease"),
        LeaseGain::Expired => (LeaseChange::Taken, "took an expired lease"),
        LeaseGain::Ours => (LeaseChange::Taken, "took over the lease of a shard"),
        LeaseGain::Stolen => (
            LeaseChange::Stolen,
            "stole a lease whose owner left a hand-off request unanswered",
        ),
    };
    metrics().lease_changed(change);
    tracing::info!(shard_id = %shard, worker_id = %worker, "{message}");
}

/// This task no longer holds a shard's lease and stops reading the shard.
pub fn lease_lost(shard: &str, reason: &str) {
    metrics().lease_changed(LeaseChange::Lost);
    tracing::warn!(shard_id = %shard, reason, "lost the lease of a shard: it is no longer read here");
}

/// Why this task gave a shard's lease up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRelease<'a> {
    /// Handed over after its last commit: to the task that asked for it
    /// (`Some`), or to anyone.
    HandedOver(Option<&'a str>),
    /// The shard was read to its end and committed; `deleted`: its lease
    /// item is gone from the table (or deleting it failed, logged apart).
    Finished {
        /// Whether the lease item was deleted.
        deleted: bool,
    },
    /// Released at shutdown after the final commit.
    Shutdown,
}

/// This task gave a shard's lease up.
pub fn lease_released(shard: &str, why: LeaseRelease<'_>) {
    metrics().lease_changed(LeaseChange::Released);
    match why {
        LeaseRelease::HandedOver(to) => {
            tracing::info!(shard_id = %shard, to = to.unwrap_or("anyone"), "handed the lease of a shard over");
        }
        LeaseRelease::Finished { deleted: true } => {
            tracing::info!(shard_id = %shard, "the shard is read to its end and committed: its lease is deleted");
        }
        LeaseRelease::Finished { deleted: false } => {}
        LeaseRelease::Shutdown => tracing::debug!(shard_id = %shard, "released the lease"),
    }
}

/// A shard reader panicked (a bug) and is started again after the last
/// batch it handed over (`from`: that batch's last sequence number).
pub fn shard_reader_restarted(shard: &str, message: &str, from: Option<&str>) {
    metrics().stage_restarted("shard-reader");
    tracing::error!(
        shard = %shard,
        message = %message,
        from = ?from,
        "a shard reader panicked: starting it again after the last batch it handed over"
    );
}

/// The catalog probe asked for the events table's pointer: it answered,
/// failed (`error`), or did not answer within the probe's timeout.
pub fn catalog_probed(answer: CatalogAnswer<'_>) {
    if let CatalogAnswer::Failed(error) = answer {
        tracing::debug!(error = %error, "catalog probe failed");
    }
    metrics().catalog_answered(matches!(answer, CatalogAnswer::Answered));
}

/// What the catalog probe heard back.
#[derive(Clone, Copy)]
pub enum CatalogAnswer<'a> {
    /// The table's pointer came back.
    Answered,
    /// The catalog refused or failed.
    Failed(&'a dyn std::fmt::Display),
    /// No answer within the probe's timeout.
    TimedOut,
}
