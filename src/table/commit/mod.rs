//! The snapshot producer: the one path by which Floe changes a table.
//!
//! A [`Change`] (data files, summary counters, checkpoint) becomes a commit in
//! four steps, as DESIGN section 5 lays out:
//!
//! 1. write a manifest for the new files (once: its entries inherit their
//!    sequence number, so it stays valid whatever the final sequence number is);
//! 2. write a manifest list that carries the parent's manifests over, less
//!    those without a live entry and with small ones merged
//!    ([`super::manifests`]);
//! 3. write the next metadata file (snapshot, `main` ref, checkpoint property);
//! 4. swap the catalog pointer from the metadata this commit was built on,
//!    then delete the metadata files that fell out of the metadata log (when
//!    the table asks for it).
//!
//! When the swap loses (another writer committed first) the table is reloaded,
//! the checkpoint is checked (another writer must not have committed the same
//! source positions), and steps 2 to 4 are redone on the new parent, with
//! backoff. A commit is idempotent: its snapshot id is chosen once, and a
//! reload that finds it already in the table counts as success.

use std::collections::{BTreeMap, HashMap};

use iceberg::spec::{
    DataFile, MAIN_BRANCH, ManifestFile, ManifestListWriter, Snapshot, Summary, TableMetadata,
};
use uuid::Uuid;

use super::TableError;
use super::manifests::has_live_entries;
use super::store::{LoadedTable, MAX_ATTEMPTS, Swap, TableStore, backoff};
use super::summary::{FileDelta, standard_summary};
use crate::checkpoint::{CHECKPOINT_PROPERTY, CHECKPOINT_SUMMARY_KEY, Checkpoint, SourcePosition};
use crate::failpoint::{self, FailPoint};
use manifest::Reuse;

mod manifest;
mod rewrite;
pub use rewrite::ManifestRewrite;

/// What one commit adds to a table.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// New data files.
    pub added_data_files: Vec<DataFile>,
    /// New position delete files (rows of earlier files they remove).
    pub added_delete_files: Vec<DataFile>,
    /// Live data and delete files this commit removes (a compaction, whose
    /// added data files hold the same rows). Each must still be live in the
    /// table the commit lands on, or it fails with [`TableError::Stale`].
    pub removed_files: Vec<DataFile>,
    /// `floe.*` summary keys (quality counters).
    pub summary: BTreeMap<String, String>,
    /// Positions this commit's records start from, per source: the commit is
    /// refused if the table's checkpoint no longer says so.
    pub checkpoint_from: BTreeMap<String, Option<SourcePosition>>,
    /// Positions after this commit's records, per source.
    pub checkpoint_to: Checkpoint,
}

/// Reconciles a pending change with commits that landed first.
pub trait Rebase: Send {
    /// `previous` is the table the change was built on, `current` the table
    /// now; the change's delete files may be added to or replaced (and its
    /// summary given new counts).
    fn rebase<'a>(
        &'a mut self,
        previous: &'a LoadedTable,
        current: &'a LoadedTable,
        change: &'a mut Change,
    ) -> futures::future::BoxFuture<'a, Result<(), TableError>>;
}

/// What a successful commit produced.
#[derive(Debug, Clone)]
pub struct CommitOutcome {
    /// The table after the commit.
    pub table: LoadedTable,
    /// The new snapshot's id.
    pub snapshot_id: i64,
    /// Swaps lost to other writers before this one won.
    pub conflicts: u32,
    /// The size of what the table's readers plan through, after the commit
    /// (unknown when an earlier attempt was found to have landed).
    pub health: Option<TableHealth>,
}

/// What every reader of the table pays to plan a query, for the operator
/// to watch as the table ages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableHealth {
    /// Bytes of the current metadata file (AWS Glue refuses 20 MB).
    pub metadata_bytes: u64,
    /// Manifests the current snapshot lists.
    pub manifests: usize,
}

impl TableStore {
    /// Commits `change` on top of `base`, retrying on conflicts.
    pub async fn commit(
        &self,
        base: &LoadedTable,
        change: &Change,
    ) -> Result<CommitOutcome, TableError> {
        let mut change = change.clone();
        self.commit_rebasing(base, &mut change, None).await
    }

    /// Commits `change` on top of `base`; after each lost swap, `rebase`
    /// sees the table as it now is and may change the change: add delete
    /// files (a row-level writer reconciling with rows another writer
    /// committed) or drop files (a compaction leaving out partitions that
    /// changed). The manifests of what it changed are written anew.
    pub async fn commit_rebasing(
        &self,
        base: &LoadedTable,
        change: &mut Change,
        mut rebase: Option<&mut dyn Rebase>,
    ) -> Result<CommitOutcome, TableError> {
        let snapshot_id = new_snapshot_id(&base.metadata);
        // Manifests of the new files are written once: their entries inherit
        // the snapshot's sequence number, whichever attempt lands. Only a
        // rebase that adds delete files rewrites the delete manifest.
        let mut new_manifests = [
            self.write_manifest(base, snapshot_id, &change.added_data_files, false)
                .await?,
            self.write_manifest(base, snapshot_id, &change.added_delete_files, true)
                .await?,
        ];
        let mut table = base.clone();
        let mut conflicts = 0;
        let mut attempt = 0u32;
        let mut reuse = Reuse::default();
        loop {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
                let current = match self.reload(&base.name).await {
                    Ok(current) => current,
                    Err(e) if e.is_retryable() => {
                        // An outage: wait it out (the backoff grows to its
                        // cap); the data files stay written, nothing is lost.
                        self.unreachable_catalog(&base.name, &e);
                        attempt += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if current.metadata.snapshot_by_id(snapshot_id).is_some() {
                    // An earlier attempt whose outcome looked lost did land.
                    return Ok(CommitOutcome {
                        table: current,
                        snapshot_id,
                        conflicts,
                        health: None,
                    });
                }
                if let Some(rebase) = rebase.as_deref_mut() {
                    let before = (
                        paths(&change.added_data_files),
                        paths(&change.added_delete_files),
                    );
                    rebase.rebase(&table, &current, change).await?;
                    if paths(&change.added_data_files) != before.0 {
                        new_manifests[0] = self
                            .write_manifest(&current, snapshot_id, &change.added_data_files, false)
                            .await?;
                    }
                    if paths(&change.added_delete_files) != before.1 {
                        new_manifests[1] = self
                            .write_manifest(&current, snapshot_id, &change.added_delete_files, true)
                            .await?;
                    }
                }
                table = current;
            }
            let checkpoint = checked_checkpoint(&table, change)?;
            let (next, manifests) = self
                .next_metadata(
                    &table,
                    snapshot_id,
                    &new_manifests,
                    change,
                    &checkpoint,
                    attempt,
                    &mut reuse,
                )
                .await?;
            failpoint::hit(FailPoint::AfterManifests);
            // Serializing cannot fail for metadata the builder accepted.
            let metadata_bytes = serde_json::to_vec(&next).map_or(0, |v| v.len() as u64);
            match self.swap_metadata(&table, next).await? {
                Swap::Done(committed) => {
                    tracing::debug!(table = %table.name, snapshot_id, attempt, "committed snapshot");
                    return Ok(CommitOutcome {
                        table: committed,
                        snapshot_id,
                        conflicts,
                        health: Some(TableHealth {
                            metadata_bytes,
                            manifests,
                        }),
                    });
                }
                Swap::Conflict => {
                    conflicts += 1;
                    if conflicts >= MAX_ATTEMPTS {
                        return Err(TableError::TooManyConflicts {
                            table: base.name.clone(),
                            attempts: MAX_ATTEMPTS,
                        });
                    }
                }
                Swap::Unreachable => {}
            }
            attempt += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn next_metadata(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        new_manifests: &[Option<ManifestFile>],
        change: &Change,
        checkpoint: &Checkpoint,
        attempt: u32,
        reuse: &mut Reuse,
    ) -> Result<(TableMetadata, usize), TableError> {
        let mut manifests = self.current_manifests(table).await?;
        if !change.removed_files.is_empty() {
            manifests = self
                .without_files(table, snapshot_id, manifests, &change.removed_files, reuse)
                .await?;
        }
        // What this commit rewrote to mark its removals stays as written: its
        // own list is where its `DELETED` entries are found (by a concurrent
        // writer's rebase, by history readers). Only what it carries over
        // from earlier commits is pruned and merged.
        let (own, mut carried): (Vec<_>, Vec<_>) = manifests
            .into_iter()
            .partition(|m| m.added_snapshot_id == snapshot_id);
        carried.retain(has_live_entries);
        let carried_before = carried.len();
        let mut manifests = self.merge_small(table, snapshot_id, carried, reuse).await?;
        if manifests.len() < carried_before {
            tracing::info!(
                table = %table.name,
                before = carried_before,
                after = manifests.len(),
                "merged small manifests"
            );
        }
        manifests.extend(own);
        manifests.extend(new_manifests.iter().flatten().cloned());

        let delta = FileDelta::of_change(
            &change.added_data_files,
            &change.added_delete_files,
            &change.removed_files,
        );
        let parent = table.metadata.current_snapshot();
        let mut summary: HashMap<String, String> =
            standard_summary(parent.map(|p| &p.summary().additional_properties), &delta)
                .into_iter()
                .collect();
        summary.extend(change.summary.clone());
        if !change.checkpoint_to.is_empty() {
            summary.insert(CHECKPOINT_SUMMARY_KEY.into(), change.checkpoint_to.encode());
        }
        let checkpoint = (!change.checkpoint_to.is_empty()).then_some(checkpoint);
        self.snapshot_metadata(
            table,
            snapshot_id,
            attempt,
            manifests,
            Summary {
                operation: delta.operation(),
                additional_properties: summary,
            },
            checkpoint,
        )
        .await
    }

    /// The manifests the table's current snapshot lists (none for a table
    /// without snapshots).
    pub(crate) async fn current_manifests(
        &self,
        table: &LoadedTable,
    ) -> Result<Vec<ManifestFile>, TableError> {
        match table.metadata.current_snapshot() {
            Some(snapshot) => self.snapshot_manifests(table, snapshot).await,
            None => Ok(Vec::new()),
        }
    }

    /// The manifests `snapshot` of `table` lists, read from its manifest list.
    pub(crate) async fn snapshot_manifests(
        &self,
        table: &LoadedTable,
        snapshot: &iceberg::spec::SnapshotRef,
    ) -> Result<Vec<ManifestFile>, TableError> {
        let list = table
            .to_iceberg(&self.file_io)?
            .manifest_list_reader(snapshot)
            .load()
            .await?;
        Ok(list.entries().to_vec())
    }

    /// The table's next metadata: a snapshot listing `manifests` (written
    /// here as its manifest list) on top of the current one, made current,
    /// with the checkpoint property when given. Also returns how many
    /// manifests it lists.
    async fn snapshot_metadata(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        attempt: u32,
        manifests: Vec<ManifestFile>,
        summary: Summary,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(TableMetadata, usize), TableError> {
        let metadata = &table.metadata;
        let parent = metadata.current_snapshot();
        let sequence_number = metadata.next_sequence_number();
        let manifest_count = manifests.len();
        let list_path = format!(
            "{}/metadata/snap-{snapshot_id}-{attempt}-{}.avro",
            table.location(),
            Uuid::new_v4()
        );
        let mut list = ManifestListWriter::v2(
            self.file_io.new_output(&list_path)?.writer().await?,
            snapshot_id,
            parent.map(|p| p.snapshot_id()),
            sequence_number,
        );
        list.add_manifests(manifests.into_iter())?;
        list.close().await?;
        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(parent.map(|p| p.snapshot_id()))
            .with_sequence_number(sequence_number)
            .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
            .with_manifest_list(list_path)
            .with_summary(summary)
            .with_schema_id(metadata.current_schema_id())
            .build();
        let mut builder = metadata
            .as_ref()
            .clone()
            .into_builder(Some(table.metadata_location.clone()))
            .set_branch_snapshot(snapshot, MAIN_BRANCH)?;
        if let Some(checkpoint) = checkpoint {
            builder = builder.set_properties(HashMap::from([(
                CHECKPOINT_PROPERTY.to_string(),
                checkpoint.encode(),
            )]))?;
        }
        Ok((builder.build()?.metadata, manifest_count))
    }
}

/// Manifests read at once while merging.
pub(super) const MANIFEST_READS_IN_FLIGHT: usize = 8;

/// The table's checkpoint with this change applied, after checking that the
/// change starts where the table says each of its sources stands.
fn checked_checkpoint(table: &LoadedTable, change: &Change) -> Result<Checkpoint, TableError> {
    let mut checkpoint = table.checkpoint()?;
    let show = |p: Option<&SourcePosition>| {
        p.map_or_else(|| "the start".to_string(), SourcePosition::describe)
    };
    for (key, expected) in &change.checkpoint_from {
        let found = checkpoint.get(key);
        if found != expected.as_ref() {
            return Err(TableError::CheckpointMoved {
                table: table.name.clone(),
                source_key: key.clone(),
                expected: show(expected.as_ref()),
                found: show(found),
            });
        }
    }
    checkpoint.merge(&change.checkpoint_to);
    Ok(checkpoint)
}

/// The paths of a change's files, to notice a rebase changing them.
pub(super) fn paths(files: &[DataFile]) -> Vec<String> {
    files.iter().map(|f| f.file_path().to_string()).collect()
}

/// A positive snapshot id not yet used in the table.
fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let (hi, lo) = Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) & (i64::MAX as u64)) as i64;
        if id != 0 && metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}
