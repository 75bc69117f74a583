//! What the run shows while it goes on: the counters behind the progress
//! line, the per-shard lag of a Kinesis source, and the settings for logs
//! and progress. Plain values, filled by the stages that know them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

/// Live counters, read by the progress display while the run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    /// Records read.
    pub records_read: AtomicU64,
    /// Input bytes read.
    pub bytes_read: AtomicU64,
    /// Rows committed to the events table.
    pub rows_committed: AtomicU64,
    /// Records committed to the rejected table.
    pub rejected_committed: AtomicU64,
    /// `s3://` inputs: objects read to their end (not yet committed).
    pub objects_done: AtomicU64,
    /// `s3://` inputs: bytes of objects read, as stored (compressed).
    pub object_bytes_done: AtomicU64,
    /// `s3://` inputs: objects this run reads, as far as listed yet.
    pub objects_listed: AtomicU64,
    /// `s3://` inputs: their bytes, as stored (of the object a resume
    /// starts in, those the run reads: all of a gzip one, the rest of a
    /// plain one).
    pub object_bytes_listed: AtomicU64,
    /// `s3://` inputs: the listing is complete, so the totals are.
    pub listing_done: AtomicBool,
}

/// What the consumer knows of one shard, for logs and the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardLag {
    /// `MillisBehindLatest` of the last `GetRecords` answer.
    pub millis_behind: Option<i64>,
    /// Records read from it in this run.
    pub records: u64,
    /// The last call found nothing and the shard's tip was reached.
    pub caught_up: bool,
    /// Read to its end (closed shard).
    pub ended: bool,
}

/// Per-shard lag, shared by the readers and whoever reports it.
pub type ShardLags = Arc<Mutex<BTreeMap<String, ShardLag>>>;

/// When to draw live progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// When stderr is a terminal.
    Auto,
    /// Always (one line per update when not a terminal).
    Always,
    /// Never.
    Never,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
