//! Where records come from: files and stdin ([`file`]), objects in S3
//! buckets ([`s3`]) or the shards of a Kinesis data stream ([`kinesis`]). A source hands out chunks of records
//! with exact positions and never decides what is committed: positions
//! advance only through the checkpoint committed with the data.
//!
//! Every source is a [`Source`]: started with the sender of the pipeline's
//! bounded chunk channel and the events table's committed checkpoint, it
//! reads on its own thread or tasks and returns a [`Reading`], the handle
//! the run loop watches, stops and joins. The pipeline cannot tell a file
//! from a stream (or from a test's fake) but by the chunks.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};

use crate::checkpoint::Checkpoint;
use crate::supervise::StageFailure;
use crate::telemetry::{join_error_message, panic_message};

pub mod file;
pub mod kinesis;
pub mod kpl;
pub mod lease;
pub mod s3;

/// Where a source sends its chunks: the pipeline's bounded channel to the
/// decoder. A fatal error is the last item sent; reading has ended once
/// every clone of the sender is dropped.
pub type ChunkSender = mpsc::Sender<Result<SourceChunk, SourceError>>;

/// Something the pipeline reads records from.
pub trait Source: Send {
    /// Starts reading into `tx`. `committed` holds the events table's
    /// checkpoint as loaded at the start, then as of each commit: where each
    /// source resumes, and for a stream when a closed shard's end is
    /// committed. Fails only when the reading stage cannot start.
    fn start(
        self: Box<Self>,
        tx: ChunkSender,
        committed: watch::Receiver<Checkpoint>,
    ) -> Result<Reading, StageFailure>;
}

/// A started source: the stage the run loop watches while it reads, stops
/// at the end and joins to learn whether it ended cleanly.
#[derive(Debug)]
pub struct Reading {
    /// Its name in the run's errors (`file reader`, `Kinesis consumer`).
    stage: &'static str,
    worker: Worker,
}

#[derive(Debug)]
enum Worker {
    /// A thread of blocking reads. Its end shows as its channel closing; it
    /// stops when the channel's receiver is gone, and is joined once the
    /// input ended.
    Thread(std::thread::JoinHandle<()>),
    /// A task that may end by itself (drained, or after sending a fatal
    /// error): its end is watched while the run goes on (`None` once
    /// seen), and it is aborted at the end of the run.
    Task(Option<JoinHandle<()>>),
}

impl Reading {
    /// A source read by a thread.
    pub fn thread(stage: &'static str, thread: std::thread::JoinHandle<()>) -> Self {
        Reading {
            stage,
            worker: Worker::Thread(thread),
        }
    }

    /// A source read by a task.
    pub fn task(stage: &'static str, task: JoinHandle<()>) -> Self {
        Reading {
            stage,
            worker: Worker::Task(Some(task)),
        }
    }

    /// The stage's name, as in the run's errors.
    pub fn stage(&self) -> &'static str {
        self.stage
    }

    /// The end of a task source: `Ok` when it returned, its panic
    /// otherwise. Pending for ever for a thread source (its end shows as
    /// its channel closing) and once a task's end was returned. Cancel
    /// safe.
    pub async fn ended(&mut self) -> Result<(), JoinError> {
        match &mut self.worker {
            Worker::Task(Some(task)) => {
                let ended = task.await;
                self.worker = Worker::Task(None);
                ended
            }
            _ => std::future::pending().await,
        }
    }

    /// Stops a task source. A thread source stops by itself once the
    /// channel's receiver is gone.
    pub fn abort(&self) {
        if let Worker::Task(Some(task)) = &self.worker {
            task.abort();
        }
    }

    /// Waits for the source once its channel has closed (every sender is
    /// gone, so it has returned or is unwinding): its panic's message
    /// (`it panicked: ...`) if it panicked. A task whose end
    /// [`Reading::ended`] already returned is not waited for again.
    pub async fn join(self) -> Result<(), String> {
        match self.worker {
            Worker::Thread(thread) => thread
                .join()
                .map_err(|payload| format!("it panicked: {}", panic_message(payload.as_ref()))),
            Worker::Task(Some(task)) => task.await.map_err(join_error_message),
            Worker::Task(None) => Ok(()),
        }
    }
}

/// A source as the checkpoint knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Checkpoint key: `file:<canonical path>#<first-line hash>`,
    /// `kinesis:<stream>:<consumer>:<shard id>`, `stdin`, or for objects
    /// the `s3://bucket/pattern` they match, as given.
    pub key: String,
    /// The source for people (`_source_id`): the input as given,
    /// `s3://bucket/key` for an object, or `kinesis:<stream>/<shard id>`.
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
    /// Lines of an object in a bucket.
    Object(s3::ObjectChunk),
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
    /// An object changed (or was deleted) after part of it was committed:
    /// resuming at the committed offset could skip or cut records.
    #[error(
        "{object} changed since its first {offset} bytes (line {line}) were committed: \
         its ETag was {etag_then} then and {now}. Resuming at that offset could skip or cut \
         records; give the new content another key to ingest it as a new object"
    )]
    ObjectChanged {
        /// The object, `s3://bucket/key`.
        object: String,
        /// The committed offset (decompressed bytes).
        offset: u64,
        /// The committed line count.
        line: u64,
        /// Its ETag when it was read.
        etag_then: String,
        /// What it is now: `is "..." now`, `it is deleted now`, or that it
        /// was overwritten while it was read.
        now: String,
    },
    /// The checkpoint entry of an `s3://` input is not an object position.
    #[error(
        "the committed checkpoint of {input} is {position}, not a position among objects: \
         was it written by another version of Floe?"
    )]
    NotAnObjectPosition {
        /// The input pattern.
        input: String,
        /// The entry, described.
        position: String,
    },
    /// Listing or reading objects failed (after the store's retries).
    #[error("{input}: {operation}")]
    Store {
        /// The input pattern or object.
        input: String,
        /// What was asked (`listing the keys after ...`, `reading`).
        operation: String,
        /// The store's error (boxed: it is large, and errors are rare).
        #[source]
        source: Box<opendal::Error>,
    },
    /// A bucket's listing came back out of key order (S3 directory
    /// buckets do not list in order): resuming by key would skip objects.
    #[error(
        "the listing of {input} is not in key order ({previous} came before {key}): \
         only buckets that list keys in ascending order (S3 general purpose buckets) can be read"
    )]
    NotInKeyOrder {
        /// The input pattern.
        input: String,
        /// The key listed before.
        previous: String,
        /// The key listed after it.
        key: String,
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
