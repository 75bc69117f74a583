//! The Iceberg side: schema files and layouts, Parquet data files, checkpoints,
//! summaries, and the snapshot producer that commits them.
//!
//! Floe owns its commit path ([`commit`]): iceberg-rust supplies the spec
//! types, the Parquet writer with column statistics, and the manifest and
//! manifest-list writers; this module decides what goes into a snapshot and
//! swaps the catalog pointer. Every table change goes through it.

pub mod commit;
pub mod evolution;
pub mod history;
pub mod index;
pub mod inspect;
pub mod maintain;
pub mod manifests;
pub mod probe;
pub mod schema;
pub mod store;
pub mod summary;
pub mod writer;

use std::path::PathBuf;

use crate::catalog::{CatalogError, TableName};
use crate::checkpoint::CheckpointError;

pub use crate::contract::TableKind;
pub use commit::{Change, CommitOutcome, ManifestRewrite, Rebase, TableHealth};
pub use history::ChangedSince;
pub use schema::{SchemaChain, SchemaSource, TableLayout};
pub use store::{LoadedTable, SchemaPlan, TableStore};

/// What can go wrong on the table side.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// An error from iceberg-rust (metadata, manifests, Parquet writing, I/O).
    #[error(transparent)]
    Iceberg(#[from] iceberg::Error),
    /// An error from the catalog.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The metadata file the catalog points a table at could not be read or
    /// parsed (missing, corrupt, unreachable).
    #[error("table {table}: metadata file {location} cannot be read")]
    Metadata {
        /// The table.
        table: TableName,
        /// The metadata file.
        location: String,
        /// The storage or parse error (boxed: it would double the size of
        /// every `Result` carrying a `TableError`).
        #[source]
        source: Box<iceberg::Error>,
    },
    /// Rows could not be turned into Arrow.
    #[error("building Arrow data")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A local file or folder could not be read or written.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A schema file is wrong.
    #[error("{origin}: {message}")]
    Schema {
        /// The schema file (or folder).
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// The table exists but does not look like one Floe can write.
    #[error("table {table}: {message}")]
    Incompatible {
        /// The table.
        table: TableName,
        /// What does not fit.
        message: String,
    },
    /// A table's checkpoint could not be read.
    #[error("table {table}")]
    Checkpoint {
        /// The table.
        table: TableName,
        /// The codec error.
        #[source]
        source: CheckpointError,
    },
    /// Another writer committed records of a source this commit also holds:
    /// committing would duplicate them.
    #[error(
        "table {table}: source {source_key} was committed up to {found} by another writer while \
         this one read it from {expected}; refusing to commit the same records twice"
    )]
    CheckpointMoved {
        /// The table.
        table: TableName,
        /// The source key.
        source_key: String,
        /// The position this commit started from.
        expected: String,
        /// The position found in the table.
        found: String,
    },
    /// What a change was planned on moved under it (another writer removed
    /// files it removes, or added deletes to rows it rewrites): committing
    /// it would lose data, so it must be planned anew.
    #[error("table {table}: {reason}; the change must be planned anew")]
    Stale {
        /// The table.
        table: TableName,
        /// What moved.
        reason: String,
    },
    /// The process is shutting down: work handed to the blocking pool was
    /// not done.
    #[error("the Parquet work was not done: the process is shutting down")]
    ShuttingDown,
    /// Commit conflicts went on longer than the retry budget.
    #[error("table {table}: gave up after {attempts} commit attempts, each lost to another writer")]
    TooManyConflicts {
        /// The table.
        table: TableName,
        /// Attempts made.
        attempts: u32,
    },
}

impl TableError {
    /// Whether the same operation may succeed when tried again.
    pub fn is_retryable(&self) -> bool {
        match self {
            TableError::Catalog(e) => e.is_retryable(),
            TableError::Iceberg(e) => e.retryable(),
            TableError::Metadata { source, .. } => source.retryable(),
            _ => false,
        }
    }
}

impl From<crate::blocking::ShutDown> for TableError {
    fn from(_: crate::blocking::ShutDown) -> Self {
        TableError::ShuttingDown
    }
}
