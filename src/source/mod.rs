//! Where records come from: files and stdin ([`file`]) or the shards of a
//! Kinesis data stream ([`kinesis`]). A source hands out chunks of records
//! with exact positions and never decides what is committed: positions
//! advance only through the checkpoint committed with the data.

use std::sync::Arc;

pub mod file;
pub mod kinesis;
pub mod kpl;
pub mod lease;

/// A source as the checkpoint knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Checkpoint key: `file:<canonical path>#<first-line hash>`,
    /// `kinesis:<stream>:<consumer>:<shard id>`, or `stdin`.
    pub key: String,
    /// The source for people (`_source_id`): the input as given, or
    /// `kinesis:<stream>/<shard id>`.
    pub display: Arc<str>,
    /// The generation of the lease claim a shard is read under (Kinesis
    /// with shard leases; see [`lease::Claims`]): records of a claim the
    /// task no longer holds are dropped, never committed.
    pub lease: Option<u64>,
    /// Whether commits record this source's position so that a later run
    /// resumes after it. Not for stdin: a pipe cannot be read again, and a
    /// later run's stdin is another stream, never to be resumed by offset.
    pub checkpointed: bool,
}

/// Records from some source, with the positions they cover.
#[derive(Debug)]
pub enum SourceChunk {
    /// Lines of a file.
    File(file::Chunk),
    /// Records of a shard.
    Shard(kinesis::ShardBatch),
}

/// What can go wrong reading a source (not a record: bad records are values).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An input path or pattern names nothing readable.
    #[error("input {pattern}: {reason}")]
    NotFound {
        /// The path or pattern as given.
        pattern: String,
        /// Why it does not count.
        reason: &'static str,
    },
    /// A glob pattern is malformed.
    #[error("input pattern {pattern}: {message}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// Reading an input failed (I/O error, corrupt gzip stream).
    #[error("reading {input}")]
    Io {
        /// The input.
        input: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Kinesis refused a request for a reason retrying cannot fix.
    #[error("Kinesis stream {stream}: {operation}: {message}")]
    Kinesis {
        /// The stream.
        stream: String,
        /// What was asked (`ListShards`, `GetRecords on shardId-...`).
        operation: String,
        /// The service's answer.
        message: String,
    },
    /// The input no longer starts with the bytes committed from it: it was
    /// rewritten in place, and resuming by offset could skip or cut records.
    #[error(
        "{input} changed since its first {offset} bytes (line {line}) were committed: \
         it was rewritten in place, and resuming at that offset could skip or cut records. \
         Give the new content another path to ingest it as a new input"
    )]
    Changed {
        /// The input.
        input: String,
        /// The committed offset.
        offset: u64,
        /// The committed line count.
        line: u64,
    },
    /// The input is shorter than the committed checkpoint: it was truncated or
    /// replaced since it was ingested.
    #[error("{input} has {len} bytes, less than the {offset} already committed: was it truncated?")]
    Shrunk {
        /// The input.
        input: String,
        /// The committed offset.
        offset: u64,
        /// Bytes actually there.
        len: u64,
    },
}
