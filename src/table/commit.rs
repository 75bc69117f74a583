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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, MAIN_BRANCH, ManifestContentType, ManifestEntryRef,
    ManifestFile, ManifestListWriter, ManifestStatus, ManifestWriter, ManifestWriterBuilder,
    Snapshot, Summary, TableMetadata, TableMetadataBuilder,
};
use iceberg::{MetadataLocation, TableIdent};
use uuid::Uuid;

use super::TableError;
use super::evolution::{self, SchemaChange, StepRules};
use super::index::{Map, events_partition, read_position_deletes};
use super::manifests::{MergePolicy, has_live_entries, plan_merge};
use super::schema::{SCHEMA_FILES_PROPERTY, SchemaChain, SchemaFile, TableLayout};
use super::summary::{FileDelta, standard_summary};
use super::writer::Partition;
use crate::catalog::{Catalog, SwapOutcome, TableName};
use crate::checkpoint::{CHECKPOINT_PROPERTY, CHECKPOINT_SUMMARY_KEY, Checkpoint, SourcePosition};
use crate::failpoint::{self, FailPoint};

mod rewrite;
pub use rewrite::ManifestRewrite;

/// The table property naming the newest schema file applied.
const SCHEMA_FILE_PROPERTY: &str = "floe.schema-file";

/// How many times a commit is tried before giving up on conflicts.
const MAX_ATTEMPTS: u32 = 25;

/// Where tables live: the catalog that points at them and the storage that
/// holds their files.
#[derive(Clone)]
pub struct TableStore {
    catalog: Arc<Catalog>,
    file_io: FileIO,
    /// Warehouse root as a URI (`file:///...`), without a trailing slash.
    warehouse: String,
    /// Called on each commit attempt the catalog did not answer: the caller
    /// counts it (the table layer reports to no metrics registry itself).
    on_unreachable: fn(&TableName),
}

/// A table as loaded from the catalog: its metadata and where that metadata is.
#[derive(Debug, Clone)]
pub struct LoadedTable {
    /// The table's name.
    pub name: TableName,
    /// Parsed metadata.
    pub metadata: Arc<TableMetadata>,
    /// The metadata file the catalog points at.
    pub metadata_location: String,
}

impl LoadedTable {
    /// The checkpoint stored in the table's properties.
    pub fn checkpoint(&self) -> Result<Checkpoint, TableError> {
        Checkpoint::from_properties(self.metadata.properties()).map_err(|source| {
            TableError::Checkpoint {
                table: self.name.clone(),
                source,
            }
        })
    }

    /// The table's root location.
    pub fn location(&self) -> &str {
        self.metadata.location()
    }

    /// A read-only iceberg `Table` for scans and manifest reads.
    pub fn to_iceberg(&self, file_io: &FileIO) -> Result<iceberg::table::Table, TableError> {
        let ident = TableIdent::from_strs([&self.name.namespace, &self.name.name])?;
        Ok(iceberg::table::Table::builder()
            .metadata(self.metadata.clone())
            .metadata_location(self.metadata_location.clone())
            .identifier(ident)
            .file_io(file_io.clone())
            .readonly(true)
            .runtime(iceberg::Runtime::try_current()?)
            .build()?)
    }
}

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

/// What the snapshots committed since a table state changed (see
/// [`TableStore::changed_since`]).
#[derive(Debug, Default)]
pub struct ChangedSince {
    /// Data files they added, with their events-table partition.
    pub added_data: Vec<(String, Partition)>,
    /// Data files they removed (rewritten or deleted).
    pub removed: HashSet<String>,
    /// Row positions their position deletes remove, by data file.
    pub deleted: Map<String, Vec<i64>>,
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
    /// A store over `catalog` with files under `warehouse` (a URI).
    pub fn new(catalog: Arc<Catalog>, file_io: FileIO, warehouse: &str) -> Self {
        Self {
            catalog,
            file_io,
            warehouse: warehouse.trim_end_matches('/').to_string(),
            on_unreachable: |_| {},
        }
    }

    /// Calls `hook` on every commit attempt the catalog does not answer,
    /// while the commit waits the outage out.
    pub fn on_unreachable(mut self, hook: fn(&TableName)) -> Self {
        self.on_unreachable = hook;
        self
    }

    /// Logs a commit attempt the catalog did not answer (or answered busy,
    /// as SQLite does under a lock) and tells the hook.
    fn unreachable_catalog(&self, table: &TableName, e: &dyn std::fmt::Display) {
        (self.on_unreachable)(table);
        tracing::warn!(table = %table, error = %e, "the catalog cannot be reached (or is busy); retrying the commit until it answers");
    }

    /// The catalog that points at the tables.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The storage all table files go through.
    pub fn file_io(&self) -> &FileIO {
        &self.file_io
    }

    /// The location of a table Floe creates: `<warehouse>/<namespace>/<table>`.
    pub fn table_location(&self, name: &TableName) -> String {
        format!("{}/{}/{}", self.warehouse, name.namespace, name.name)
    }

    /// Every live file entry (data and delete files) of the table's current
    /// snapshot, read from its manifests.
    pub async fn live_entries(
        &self,
        table: &LoadedTable,
    ) -> Result<Vec<ManifestEntryRef>, TableError> {
        let mut out = Vec::new();
        for manifest_file in self.current_manifests(table).await? {
            let manifest = manifest_file.load_manifest(&self.file_io).await?;
            out.extend(manifest.entries().iter().filter(|e| e.is_alive()).cloned());
        }
        Ok(out)
    }

    /// What the snapshots of `current` committed after `previous`'s current
    /// snapshot added and removed, read from the manifests they added;
    /// the snapshots in `skip` (the caller's own) are not read.
    pub async fn changed_since(
        &self,
        previous: &LoadedTable,
        current: &LoadedTable,
        skip: &HashSet<i64>,
    ) -> Result<ChangedSince, TableError> {
        let mut new = snapshots_since(previous, current);
        new.retain(|id| !skip.contains(id));
        let mut out = ChangedSince::default();
        // Each snapshot's own list names the manifests it wrote: a later
        // commit may merge them (their entries then `EXISTING`) or drop them
        // (only `DELETED` entries left), so the current list cannot tell.
        let mut own = Vec::new();
        for id in &new {
            let Some(snapshot) = current.metadata.snapshot_by_id(*id) else {
                continue;
            };
            own.extend(
                self.snapshot_manifests(current, snapshot)
                    .await?
                    .into_iter()
                    .filter(|m| m.added_snapshot_id == *id),
            );
        }
        for manifest_file in own {
            let manifest = manifest_file.load_manifest(&self.file_io).await?;
            for entry in manifest.entries() {
                if entry.snapshot_id() != Some(manifest_file.added_snapshot_id) {
                    continue;
                }
                let file = entry.data_file();
                match (entry.status(), file.content_type()) {
                    (ManifestStatus::Deleted, DataContentType::Data) => {
                        out.removed.insert(file.file_path().to_string());
                    }
                    (ManifestStatus::Added, DataContentType::Data) => {
                        if let Some(partition) = events_partition(file.partition().iter()) {
                            out.added_data
                                .push((file.file_path().to_string(), partition));
                        }
                    }
                    (ManifestStatus::Added, DataContentType::PositionDeletes) => {
                        read_position_deletes(self, file.file_path(), &mut out.deleted).await?;
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Loads a table, `None` when the catalog has no such table.
    pub async fn load(&self, name: &TableName) -> Result<Option<LoadedTable>, TableError> {
        let Some(location) = self.catalog.load(name).await? else {
            return Ok(None);
        };
        let metadata = TableMetadata::read_from(&self.file_io, &location)
            .await
            .map_err(|source| TableError::Metadata {
                table: name.clone(),
                location: location.clone(),
                source: Box::new(source),
            })?;
        Ok(Some(LoadedTable {
            name: name.clone(),
            metadata: Arc::new(metadata),
            metadata_location: location,
        }))
    }

    /// Loads a table, creating it from `layout` when absent. A table created
    /// by a concurrent writer in between is loaded, not overwritten.
    pub async fn load_or_create(
        &self,
        name: &TableName,
        layout: &TableLayout,
    ) -> Result<LoadedTable, TableError> {
        let table = match self.load(name).await? {
            Some(table) => table,
            None => self.create(name, layout).await?,
        };
        let table = self.evolve(table, layout).await?;
        check_compatible(&table, layout)?;
        Ok(table)
    }

    /// Creates a table from the first file of `layout`'s schema chain (later
    /// files are applied by [`TableStore::evolve`], keeping their field ids).
    /// A table created by a concurrent writer in between is loaded instead.
    async fn create(
        &self,
        name: &TableName,
        layout: &TableLayout,
    ) -> Result<LoadedTable, TableError> {
        self.catalog.ensure_namespace(&name.namespace).await?;
        let location = self.table_location(name);
        let first = &layout.chain.files[0];
        let metadata = TableMetadataBuilder::new(
            first.schema.clone(),
            layout.partition.clone(),
            layout.sort.clone(),
            location.clone(),
            FormatVersion::V2,
            default_properties(layout, first),
        )?
        .build()?
        .metadata;
        // The builder renumbers field ids in schema order; the schema file's
        // ids must survive unchanged (they are the table's contract).
        if metadata.current_schema().as_struct() != first.schema.as_struct() {
            return Err(TableError::Schema {
                origin: first.origin.clone(),
                message: "field ids must be numbered 1, 2, 3... in the order the fields appear"
                    .into(),
            });
        }
        let metadata_location = MetadataLocation::new_with_metadata(&location, &metadata);
        metadata.write_to(&self.file_io, &metadata_location).await?;
        let metadata_location = metadata_location.to_string();
        match self
            .catalog
            .create(name, &metadata_location, &metadata)
            .await?
        {
            SwapOutcome::Swapped => {
                tracing::info!(table = %name, metadata_location, "created table");
                Ok(LoadedTable {
                    name: name.clone(),
                    metadata: Arc::new(metadata),
                    metadata_location,
                })
            }
            SwapOutcome::Conflict => {
                // Another writer created it first; use theirs.
                let _ = self.file_io.delete(&metadata_location).await;
                self.load(name)
                    .await?
                    .ok_or_else(|| TableError::Incompatible {
                        table: name.clone(),
                        message: "created concurrently, then vanished".into(),
                    })
            }
        }
    }

    /// Brings the table's schema to the newest file of `layout`'s chain, in
    /// one metadata commit (add the schema, make it current, record the
    /// applied files), retried on conflicts. Data files are not touched:
    /// files written under earlier schemas stay valid, read by field id.
    pub async fn evolve(
        &self,
        table: LoadedTable,
        layout: &TableLayout,
    ) -> Result<LoadedTable, TableError> {
        let mut applied = None;
        let (table, committed) = self
            .update_metadata(table, |table| {
                let plan = SchemaPlan::of(table, &layout.chain)?;
                if plan.changes.is_none() {
                    return Ok(None);
                }
                let newest = layout.chain.newest();
                let last = layout.chain.files.len() - 1;
                let next = table
                    .metadata
                    .as_ref()
                    .clone()
                    .into_builder(Some(table.metadata_location.clone()))
                    .add_current_schema(newest.schema.clone())?
                    .set_properties(HashMap::from([
                        (
                            SCHEMA_FILES_PROPERTY.to_string(),
                            layout.chain.applied_property(last),
                        ),
                        (SCHEMA_FILE_PROPERTY.to_string(), newest.origin.clone()),
                    ]))?
                    .build()?
                    .metadata;
                applied = Some(plan);
                Ok(Some(next))
            })
            .await?;
        if let Some(plan) = applied.filter(|_| committed) {
            tracing::info!(
                table = %table.name,
                from = %plan.table_file,
                to = %layout.chain.newest().origin,
                changes = %plan.describe(),
                "applied schema file"
            );
        }
        Ok(table)
    }

    /// A metadata-only commit (schema, snapshot expiry): `next` plans the
    /// new metadata from the table as it is, or `None` when there is nothing
    /// to do; a lost swap reloads the table and plans again. Returns the
    /// table and whether a commit landed.
    pub async fn update_metadata(
        &self,
        table: LoadedTable,
        mut next: impl FnMut(&LoadedTable) -> Result<Option<TableMetadata>, TableError>,
    ) -> Result<(LoadedTable, bool), TableError> {
        let mut table = table;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
                table = self.reload(&table.name).await?;
            }
            let Some(metadata) = next(&table)? else {
                return Ok((table, false));
            };
            if let Swap::Done(updated) = self.swap_metadata(&table, metadata).await? {
                return Ok((updated, true));
            }
        }
        Err(TableError::TooManyConflicts {
            table: table.name.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Loads a table that must exist (it did a moment ago).
    pub async fn reload(&self, name: &TableName) -> Result<LoadedTable, TableError> {
        self.load(name)
            .await?
            .ok_or_else(|| TableError::Incompatible {
                table: name.clone(),
                message: "dropped while Floe was committing to it".into(),
            })
    }

    /// Writes `next` as the table's next metadata file and swaps the catalog
    /// pointer to it: the new table, or why the caller should reload and retry.
    async fn swap_metadata(
        &self,
        table: &LoadedTable,
        next: TableMetadata,
    ) -> Result<Swap, TableError> {
        let location = table
            .metadata_location
            .parse::<MetadataLocation>()?
            .with_next_version()
            .with_new_metadata(&next);
        next.write_to(&self.file_io, &location).await?;
        failpoint::hit(FailPoint::AfterMetadataFile);
        let location = location.to_string();
        match self
            .catalog
            .swap(&table.name, &table.metadata_location, &location, &next)
            .await
        {
            Ok(SwapOutcome::Swapped) => {
                failpoint::hit(FailPoint::AfterCatalogSwap);
                self.delete_expired_metadata(table, &next, &location).await;
                Ok(Swap::Done(LoadedTable {
                    name: table.name.clone(),
                    metadata: Arc::new(next),
                    metadata_location: location,
                }))
            }
            Ok(SwapOutcome::Conflict) => {
                tracing::info!(table = %table.name, "commit lost to another writer; reloading and retrying");
                // Nothing points at the orphaned metadata file.
                let _ = self.file_io.delete(&location).await;
                Ok(Swap::Conflict)
            }
            Err(e) if e.is_retryable() => {
                // The swap may have landed (an answer lost on the way back):
                // the retry's reload finds out by the snapshot id.
                self.unreachable_catalog(&table.name, &e);
                Ok(Swap::Unreachable)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After a commit landed: deletes the metadata files that fell out of the
    /// metadata log (`write.metadata.previous-versions-max`), when the table
    /// asks for it (`write.metadata.delete-after-commit.enabled`). Never the
    /// file the catalog now names, nor the one it named before (both are in
    /// the new log or are it). A file that cannot be deleted is left for
    /// orphan removal.
    async fn delete_expired_metadata(
        &self,
        before: &LoadedTable,
        next: &TableMetadata,
        location: &str,
    ) {
        let enabled = next
            .properties()
            .get(DELETE_AFTER_COMMIT_PROPERTY)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if !enabled {
            return;
        }
        let kept: HashSet<&str> = next
            .metadata_log()
            .iter()
            .map(|l| l.metadata_file.as_str())
            .chain([location])
            .collect();
        let expired = before
            .metadata
            .metadata_log()
            .iter()
            .map(|l| l.metadata_file.as_str())
            .chain([before.metadata_location.as_str()])
            .filter(|f| !kept.contains(f));
        for file in expired {
            if let Err(e) = self.file_io.delete(file).await {
                tracing::warn!(table = %before.name, file, error = %e, "an old metadata file could not be deleted; orphan removal will");
            }
        }
    }

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

    /// A writer of a new v2 manifest of `content` for the commit of
    /// `snapshot_id`, under the table's `metadata/`.
    fn manifest_writer(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        spec: iceberg::spec::PartitionSpec,
        content: ManifestContentType,
    ) -> Result<ManifestWriter, TableError> {
        let suffix = match content {
            ManifestContentType::Data => "m0",
            ManifestContentType::Deletes => "d0",
        };
        let path = format!(
            "{}/metadata/{}-{suffix}.avro",
            table.location(),
            Uuid::new_v4()
        );
        let builder = ManifestWriterBuilder::new(
            self.file_io.new_output(path)?,
            Some(snapshot_id),
            table.metadata.current_schema().clone(),
            spec,
        );
        Ok(match content {
            ManifestContentType::Data => builder.build_v2_data(),
            ManifestContentType::Deletes => builder.build_v2_deletes(),
        })
    }

    /// A manifest adding `files`: data files, or delete files when `deletes`.
    async fn write_manifest(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        files: &[DataFile],
        deletes: bool,
    ) -> Result<Option<ManifestFile>, TableError> {
        if files.is_empty() {
            return Ok(None);
        }
        let content = if deletes {
            ManifestContentType::Deletes
        } else {
            ManifestContentType::Data
        };
        let spec = table.metadata.default_partition_spec().as_ref().clone();
        let mut writer = self.manifest_writer(table, snapshot_id, spec, content)?;
        for file in files {
            // A negative sequence number leaves it unset: the entry inherits the
            // snapshot's sequence number, whichever attempt lands.
            writer.add_file(file.clone(), -1)?;
        }
        Ok(Some(writer.write_manifest_file().await?))
    }

    /// `manifests` with `removed` marked deleted: each manifest holding one
    /// of them is rewritten (its other live entries kept as existing, with
    /// their sequence numbers; entries deleted by earlier snapshots dropped),
    /// every other manifest is reused as is.
    async fn without_files(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        manifests: Vec<ManifestFile>,
        removed: &[DataFile],
        reuse: &mut Reuse,
    ) -> Result<Vec<ManifestFile>, TableError> {
        reuse.removing(removed);
        let wanted: HashSet<&str> = removed.iter().map(DataFile::file_path).collect();
        let mut found: HashSet<String> = HashSet::new();
        let mut out = Vec::with_capacity(manifests.len());
        for manifest_file in manifests {
            if !reuse.removal.contains_key(&manifest_file.manifest_path) {
                let rewrite = self
                    .mark_removed(table, snapshot_id, &manifest_file, &wanted)
                    .await?;
                reuse
                    .removal
                    .insert(manifest_file.manifest_path.clone(), rewrite);
            }
            match &reuse.removal[&manifest_file.manifest_path] {
                Some((rewritten, held)) => {
                    found.extend(held.iter().cloned());
                    out.push(rewritten.clone());
                }
                None => out.push(manifest_file),
            }
        }
        if found.len() < wanted.len() {
            let gone: Vec<&str> = wanted
                .iter()
                .filter(|p| !found.contains(**p))
                .copied()
                .collect();
            return Err(TableError::Stale {
                table: table.name.clone(),
                reason: format!(
                    "{} file(s) this commit removes are no longer in the table (e.g. {}): \
                     another writer rewrote them first",
                    gone.len(),
                    gone[0]
                ),
            });
        }
        Ok(out)
    }

    /// `manifest_file` rewritten with the `wanted` files it holds marked
    /// deleted, and which those are; `None` when it holds none.
    async fn mark_removed(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        manifest_file: &ManifestFile,
        wanted: &HashSet<&str>,
    ) -> Result<Option<(ManifestFile, Vec<String>)>, TableError> {
        let manifest = manifest_file.load_manifest(&self.file_io).await?;
        let alive = || manifest.entries().iter().filter(|e| e.is_alive());
        if !alive().any(|e| wanted.contains(e.file_path())) {
            return Ok(None);
        }
        let mut writer = self.manifest_writer(
            table,
            snapshot_id,
            spec_of(table, manifest_file)?,
            manifest_file.content,
        )?;
        let mut held = Vec::new();
        for entry in alive() {
            if wanted.contains(entry.file_path()) {
                held.push(entry.file_path().to_string());
                let (sequence, file_sequence) = sequence_numbers(entry, manifest_file);
                writer.add_delete_file(entry.data_file().clone(), sequence, file_sequence)?;
            } else {
                carry_existing(&mut writer, entry, manifest_file)?;
            }
        }
        Ok(Some((writer.write_manifest_file().await?, held)))
    }

    /// `manifests` with the bins [`plan_merge`] picks merged: each bin
    /// becomes one manifest whose live entries keep their numbers and the
    /// snapshot that added them (status `EXISTING`); `DELETED` entries go.
    async fn merge_small(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        manifests: Vec<ManifestFile>,
        reuse: &mut Reuse,
    ) -> Result<Vec<ManifestFile>, TableError> {
        let bins = plan_merge(&manifests, MergePolicy::of(table.metadata.properties()));
        if bins.is_empty() {
            return Ok(manifests);
        }
        let mut merged: HashMap<usize, ManifestFile> = HashMap::new();
        let mut taken = HashSet::new();
        for bin in &bins {
            taken.extend(bin.iter().copied());
            let key: Vec<String> = bin
                .iter()
                .map(|&i| manifests[i].manifest_path.clone())
                .collect();
            if let Some(done) = reuse.merged.get(&key) {
                merged.insert(bin[0], done.clone());
                continue;
            }
            let first = &manifests[bin[0]];
            let mut writer =
                self.manifest_writer(table, snapshot_id, spec_of(table, first)?, first.content)?;
            // Read a few at a time: on S3 each is a round trip.
            let loaded: Vec<_> = futures::stream::iter(bin.iter().map(|&i| {
                let manifest_file = &manifests[i];
                async move {
                    let manifest = manifest_file.load_manifest(&self.file_io).await?;
                    Ok::<_, TableError>((manifest_file, manifest))
                }
            }))
            .buffered(MANIFEST_READS_IN_FLIGHT)
            .try_collect()
            .await?;
            for (manifest_file, manifest) in &loaded {
                for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                    carry_existing(&mut writer, entry, manifest_file)?;
                }
            }
            let done = writer.write_manifest_file().await?;
            reuse.merged.insert(key, done.clone());
            merged.insert(bin[0], done);
        }
        Ok(manifests
            .into_iter()
            .enumerate()
            .filter_map(|(i, m)| match merged.remove(&i) {
                Some(merged) => Some(merged),
                None if taken.contains(&i) => None,
                None => Some(m),
            })
            .collect())
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

/// The partition spec a manifest's entries were written with.
fn spec_of(
    table: &LoadedTable,
    manifest: &ManifestFile,
) -> Result<iceberg::spec::PartitionSpec, TableError> {
    table
        .metadata
        .partition_spec_by_id(manifest.partition_spec_id)
        .map(|spec| spec.as_ref().clone())
        .ok_or_else(|| TableError::Incompatible {
            table: table.name.clone(),
            message: format!(
                "manifest {} names partition spec {}, which the table lacks",
                manifest.manifest_path, manifest.partition_spec_id
            ),
        })
}

/// An entry's data and file sequence numbers, the inherited ones filled in.
fn sequence_numbers(entry: &ManifestEntryRef, manifest: &ManifestFile) -> (i64, Option<i64>) {
    // Loaded entries carry their inherited numbers.
    let sequence = entry.sequence_number().unwrap_or(manifest.sequence_number);
    (sequence, entry.file_sequence_number.or(Some(sequence)))
}

/// Writes a live entry of `manifest` into a new manifest as `EXISTING`, with
/// its sequence numbers and the snapshot that added it.
fn carry_existing(
    writer: &mut ManifestWriter,
    entry: &ManifestEntryRef,
    manifest: &ManifestFile,
) -> Result<(), TableError> {
    let (sequence, file_sequence) = sequence_numbers(entry, manifest);
    let added_by = entry.snapshot_id().unwrap_or(manifest.added_snapshot_id);
    writer.add_existing_file(entry.data_file().clone(), added_by, sequence, file_sequence)?;
    Ok(())
}

/// Manifests read at once while merging.
const MANIFEST_READS_IN_FLIGHT: usize = 8;

/// The manifests earlier attempts of one commit wrote, reused by the next
/// attempt when its inputs are the same: manifests are immutable, so an
/// attempt after a lost swap only reads and writes what the winner changed.
/// A long commit (a compaction removing thousands of files) thus gets
/// shorter with each retry instead of losing every race to a writer that
/// commits every few hundred milliseconds.
#[derive(Default)]
struct Reuse {
    /// The removed paths `removal` was computed for.
    removed: Vec<String>,
    /// Per manifest path: the removed files it holds and its rewrite
    /// marking them deleted (`None` when it holds none).
    removal: HashMap<String, Option<(ManifestFile, Vec<String>)>>,
    /// Per bin of manifest paths: the manifest they were merged into.
    merged: HashMap<Vec<String>, ManifestFile>,
}

impl Reuse {
    /// Forgets the removal rewrites when the removed files changed.
    fn removing(&mut self, removed: &[DataFile]) {
        let removed = paths(removed);
        if removed != self.removed {
            self.removal.clear();
            self.removed = removed;
        }
    }
}

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

/// The snapshots of `current` committed after `previous`'s current
/// snapshot: its ancestors back to that one. When an expiry removed that
/// one, the walk stops at the first snapshot whose sequence number
/// `previous` had already given out (format v2): older snapshots are never
/// counted new.
fn snapshots_since(previous: &LoadedTable, current: &LoadedTable) -> HashSet<i64> {
    let mut out = HashSet::new();
    let stop = previous.metadata.current_snapshot_id();
    let given_out = previous.metadata.last_sequence_number();
    let mut cursor = current.metadata.current_snapshot().cloned();
    while let Some(s) = cursor {
        if Some(s.snapshot_id()) == stop || (given_out > 0 && s.sequence_number() <= given_out) {
            break;
        }
        out.insert(s.snapshot_id());
        cursor = s
            .parent_snapshot_id()
            .and_then(|p| current.metadata.snapshot_by_id(p).cloned());
    }
    out
}

/// The paths of a change's files, to notice a rebase changing them.
fn paths(files: &[DataFile]) -> Vec<String> {
    files.iter().map(|f| f.file_path().to_string()).collect()
}

/// Table property: delete metadata files that leave the metadata log.
pub const DELETE_AFTER_COMMIT_PROPERTY: &str = "write.metadata.delete-after-commit.enabled";
/// Table property: how many earlier metadata files the log keeps.
pub const PREVIOUS_VERSIONS_MAX_PROPERTY: &str = "write.metadata.previous-versions-max";
/// The log length Floe sets on the tables it creates (Iceberg's default).
const PREVIOUS_VERSIONS_MAX: usize = 100;

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

/// How a compare-and-swap of the table pointer ended.
enum Swap {
    /// The pointer names the new metadata: the table as committed.
    Done(LoadedTable),
    /// Another writer moved the pointer first.
    Conflict,
    /// The catalog did not answer (or said it was busy).
    Unreachable,
}

/// Exponential backoff with jitter: 10 ms doubling, capped at 2 s.
fn backoff(attempt: u32) -> Duration {
    let base = 10u64.saturating_mul(1 << attempt.min(8)).min(2_000);
    let jitter = Uuid::new_v4().as_u128() as u64 % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

fn default_properties(layout: &TableLayout, first: &SchemaFile) -> HashMap<String, String> {
    let mut props = HashMap::from([
        ("write.format.default".to_string(), "parquet".to_string()),
        (
            "write.parquet.compression-codec".to_string(),
            "zstd".to_string(),
        ),
        // Engines that update this table must write position deletes, the one
        // delete representation every reader supports.
        ("write.delete.mode".to_string(), "merge-on-read".to_string()),
        ("write.update.mode".to_string(), "merge-on-read".to_string()),
        ("write.merge.mode".to_string(), "merge-on-read".to_string()),
        // Old metadata files go once they leave the log, not days later.
        (DELETE_AFTER_COMMIT_PROPERTY.to_string(), "true".to_string()),
        (
            PREVIOUS_VERSIONS_MAX_PROPERTY.to_string(),
            PREVIOUS_VERSIONS_MAX.to_string(),
        ),
        (SCHEMA_FILE_PROPERTY.to_string(), first.origin.clone()),
        (
            SCHEMA_FILES_PROPERTY.to_string(),
            layout.chain.applied_property(0),
        ),
    ]);
    for column in &layout.bloom_filter_columns {
        props.insert(
            format!("write.parquet.bloom-filter-enabled.column.{column}"),
            "true".to_string(),
        );
    }
    props
}

/// Refuses to write a table whose schema lacks a column Floe fills.
fn check_compatible(table: &LoadedTable, layout: &TableLayout) -> Result<(), TableError> {
    let current = table.metadata.current_schema();
    for field in layout.schema.as_struct().fields() {
        match current.field_by_id(field.id) {
            Some(f) if f.name == field.name && f.field_type == field.field_type => {}
            _ => {
                return Err(TableError::Incompatible {
                    table: table.name.clone(),
                    message: format!(
                        "column {} (id {}) of {} is missing or different in the table",
                        field.name, field.id, layout.schema_origin
                    ),
                });
            }
        }
    }
    if table.metadata.format_version() != FormatVersion::V2 {
        return Err(TableError::Incompatible {
            table: table.name.clone(),
            message: "Floe writes format v2 tables only".into(),
        });
    }
    Ok(())
}

/// Where a table's schema stands against a schema chain.
#[derive(Debug, Clone)]
pub struct SchemaPlan {
    /// The file the table's current schema is (`schemas/events/0001-initial.json`).
    pub table_file: String,
    /// What applying the newest file changes; `None` when the table is at it.
    pub changes: Option<Vec<SchemaChange>>,
}

impl SchemaPlan {
    /// Compares `table` with `chain`: the table's schema must be one of the
    /// chain's files, and every file recorded as applied must be unchanged.
    pub fn of(table: &LoadedTable, chain: &SchemaChain) -> Result<Self, TableError> {
        if let Some(applied) = table.metadata.properties().get(SCHEMA_FILES_PROPERTY) {
            chain.check_applied(applied)?;
        }
        let current = table.metadata.current_schema();
        let folder = chain.kind.schema_folder();
        let at = chain
            .position_of(current)
            .ok_or_else(|| TableError::Incompatible {
                table: table.name.clone(),
                message: format!(
                    "its current schema (schema id {}) is none of the files in schemas/{folder}/: \
                     it was changed outside Floe, or by a newer chain than this one. Commit a \
                     schema file equal to it, or pass --schema-dir with the folder of that chain \
                     (or run a Floe built with it)",
                    current.schema_id()
                ),
            })?;
        let table_file = chain.files[at].origin.clone();
        if at == chain.files.len() - 1 {
            return Ok(Self {
                table_file,
                changes: None,
            });
        }
        let newest = chain.newest();
        let rules = StepRules {
            kind: chain.kind,
            highest_id_before: table.metadata.last_column_id(),
        };
        let changes = evolution::check_step(current, &newest.schema, &rules).map_err(|p| {
            TableError::Schema {
                origin: newest.origin.clone(),
                message: format!(
                    "cannot be applied to table {}: {}",
                    table.name,
                    p.join("; ")
                ),
            }
        })?;
        Ok(Self {
            table_file,
            changes: Some(changes),
        })
    }

    /// The changes as one line: `add amount double (id 12), rename ...`.
    pub fn describe(&self) -> String {
        match &self.changes {
            None => "none".into(),
            Some(c) if c.is_empty() => "none (same fields)".into(),
            Some(c) => evolution::describe_changes(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SqlCatalog;
    use crate::table::{SchemaSource, TableKind};

    #[tokio::test]
    async fn a_corrupt_metadata_file_is_named_with_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqlCatalog::open(&dir.path().join("catalog.db"), "floe").unwrap();
        let store = TableStore::new(
            Arc::new(Catalog::Sql(catalog)),
            FileIO::new_with_fs(),
            &format!("file://{}", dir.path().display()),
        );
        let name = TableName::parse("analytics.events").unwrap();
        let layout = TableLayout::load(TableKind::Events, &SchemaSource::Embedded).unwrap();
        let table = store.load_or_create(&name, &layout).await.unwrap();
        let path = table
            .metadata_location
            .strip_prefix("file://")
            .unwrap()
            .to_string();
        std::fs::write(&path, "{\"format-version\": 2, trunc").unwrap();

        let err = store.load(&name).await.unwrap_err();
        assert!(matches!(err, TableError::Metadata { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "table analytics.events: metadata file {} cannot be read",
                table.metadata_location
            )
        );
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(!cause.is_empty(), "the parse error is kept as the source");
    }
}
