//! Where tables live and how they come to be: the [`TableStore`] (catalog
//! plus file storage), loading a table, creating it from the layout,
//! evolving its schema by the schema files (the [`SchemaPlan`]), and the
//! compare-and-swap of a table's pointer to its next metadata file that
//! every change ends with (the snapshot producer in [`super::commit`]
//! builds on it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use iceberg::io::FileIO;
use iceberg::spec::{FormatVersion, TableMetadata, TableMetadataBuilder};
use iceberg::{MetadataLocation, TableIdent};

use crate::catalog::{Catalog, SwapOutcome, TableName};
use crate::checkpoint::Checkpoint;
use crate::failpoint::{self, FailPoint};
use crate::table::TableError;
use crate::table::evolution::{self, SchemaChange, StepRules};
use crate::table::schema::{SCHEMA_FILES_PROPERTY, SchemaChain, SchemaFile, TableLayout};

/// The table property naming the newest schema file applied.
const SCHEMA_FILE_PROPERTY: &str = "floe.schema-file";

/// Where tables live: the catalog that points at them and the storage that
/// holds their files.
#[derive(Clone)]
pub struct TableStore {
    pub(super) catalog: Arc<Catalog>,
    pub(super) file_io: FileIO,
    /// Warehouse root as a URI (`file:///...`), without a trailing slash.
    pub(super) warehouse: String,
    /// Called on each commit attempt the catalog did not answer: the caller
    /// counts it (the table layer reports to no metrics registry itself).
    pub(super) on_unreachable: fn(&TableName),
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
    pub(in crate::table) fn unreachable_catalog(
        &self,
        table: &TableName,
        e: &dyn std::fmt::Display,
    ) {
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
    pub(super) async fn swap_metadata(
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

/// How many times a commit is tried before giving up on conflicts.
pub(in crate::table) const MAX_ATTEMPTS: u32 = 25;

/// Table property: delete metadata files that leave the metadata log.
pub const DELETE_AFTER_COMMIT_PROPERTY: &str = "write.metadata.delete-after-commit.enabled";
/// Table property: how many earlier metadata files the log keeps.
pub const PREVIOUS_VERSIONS_MAX_PROPERTY: &str = "write.metadata.previous-versions-max";
/// The log length Floe sets on the tables it creates (Iceberg's default).
pub(in crate::table) const PREVIOUS_VERSIONS_MAX: usize = 100;

/// How a compare-and-swap of the table pointer ended.
pub(in crate::table) enum Swap {
    /// The pointer names the new metadata: the table as committed.
    Done(LoadedTable),
    /// Another writer moved the pointer first.
    Conflict,
    /// The catalog did not answer (or said it was busy).
    Unreachable,
}

/// The wait before commit retry number `attempt` ([`crate::retry::COMMIT`]).
pub(in crate::table) fn backoff(attempt: u32) -> Duration {
    crate::retry::COMMIT.delay(attempt)
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
