//! Where records come from. Step 1 has files and stdin ([`file`]); Kinesis
//! shards join here later. A source hands out chunks of records with exact
//! positions and never decides what is committed: positions advance only
//! through the checkpoint committed with the data.

pub mod file;

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
