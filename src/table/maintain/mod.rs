//! Table maintenance (`floe maintain`): compaction, snapshot expiry and
//! orphan file removal.
//!
//! Each is a commit through the snapshot producer, a compare-and-swap like
//! any ingest commit, so it never overwrites a writer's commit and a running
//! `floe run` reconciles with it (its rebase moves the key index to the
//! compacted files; see `pipeline::upsert`).
//!
//! - **Compaction** rewrites, per partition, the small data files and every
//!   file a position delete points into, with the deletes applied, into
//!   files near the target size, and removes the partition's delete files in
//!   the same `replace` commit. A writer that commits deletes against those
//!   files meanwhile makes the plan stale: the commit is refused and the
//!   partition planned anew from the table as it then is (the Iceberg spec's
//!   rule that a rewrite must not drop deletes added after it began).
//! - **Expiry** removes snapshots older than an age, keeping a number of the
//!   newest and always the current one, then deletes the files only they
//!   referenced. Checkpoints live in table properties, so resuming never
//!   needs an old snapshot.
//! - **Orphan removal** deletes files under the table's location that no
//!   metadata references (the leftovers of crashed commits), when older than
//!   a safety age: a file a writer is about to commit is younger.
//!
//! One file per operation: `compaction/`, `expiry.rs` and `orphans.rs`;
//! `referenced.rs` lists the files a table's metadata references (what
//! expiry keeps and orphan removal spares) and `lister.rs` the files
//! actually under its location.

use std::time::Duration;

mod compaction;
mod expiry;
mod lister;
mod orphans;
mod referenced;

pub use compaction::{CompactionReport, MaintainProgress, compact};
pub use expiry::{ExpiryReport, expire_snapshots};
pub use lister::{FileLister, ListedFile};
pub use orphans::{OrphanReport, remove_orphans};

/// How maintenance treats a table.
#[derive(Debug, Clone)]
pub struct MaintainSettings {
    /// Size compacted files aim at; data files under 3/4 of it are "small".
    pub target_file_size: u64,
    /// Snapshots older than this may be expired.
    pub expire_older_than: Duration,
    /// The newest snapshots kept whatever their age (at least 1).
    pub keep_snapshots: usize,
    /// Unreferenced files younger than this are left alone.
    pub orphan_older_than: Duration,
}
