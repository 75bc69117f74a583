//! The two tables a run writes, opened once at its start: each a [`Side`]
//! (the table as last committed, its data writer and Arrow schema), with the
//! store, the key index and the tuning every flush shares, and the run's own
//! snapshot expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use iceberg::io::FileIO;
use tokio::sync::watch;

use super::RunError;
use super::held::Held;
use crate::catalog::{Catalog, GlueCatalog, TableName};
use crate::checkpoint::Checkpoint;
use crate::config::{CatalogKind, DedupMode, RunConfig, StoreConfig, Warehouse};
use crate::table::index::KeyIndex;
use crate::table::maintain::{self, MaintainSettings};
use crate::table::probe::{ProbeCache, cache_budget};
use crate::table::writer::{DataWriter, FileSettings};
use crate::table::{LoadedTable, SchemaSource, TableKind, TableLayout, TableStore};

/// One table as the run writes it.
pub(super) struct Side {
    /// The table as last committed (or loaded).
    pub table: LoadedTable,
    /// Writes its data files.
    pub writer: DataWriter,
    /// The Arrow schema of its data files.
    pub schema: arrow_schema::SchemaRef,
}

impl Side {
    /// Loads the table (creating it from the layout when absent) and its writer.
    async fn open(
        store: &TableStore,
        name: &TableName,
        kind: TableKind,
        schemas: &SchemaSource,
        settings: FileSettings,
    ) -> Result<Self, RunError> {
        let layout = Arc::new(TableLayout::load(kind, schemas)?);
        let table = store.load_or_create(name, &layout).await?;
        let writer = DataWriter::new(&table, layout, store.file_io().clone(), settings);
        Ok(Side {
            schema: writer.arrow_schema()?,
            table,
            writer,
        })
    }
}

/// Everything a flush needs from the tables.
pub(super) struct Tables {
    pub store: TableStore,
    /// The events table.
    pub events: Side,
    /// The rejected-records table.
    pub rejected: Side,
    /// Data files encoded at the same time.
    pub write_parallelism: usize,
    /// Target size of a data file.
    pub target_file_size: usize,
    /// File bytes per buffered (in-memory) byte, learnt from the last flush.
    pub file_bytes_per_heap_byte: f64,
    /// Where the live row of each recent key is.
    pub index: KeyIndex,
    /// What the table probe read for late rows, kept across flushes.
    pub probe: ProbeCache,
    /// What a duplicate does.
    pub dedup_mode: DedupMode,
    /// Memory the running flush still holds of its batch.
    pub held: Arc<Held>,
    /// The events table's checkpoint after each commit (the Kinesis
    /// consumer starts a closed shard's children once its end is committed).
    pub committed: watch::Sender<Checkpoint>,
    /// The run's own snapshot expiry (`expire_every`), when on.
    expiry: Option<Expiry>,
}

/// When and how `floe run` expires old snapshots of its tables.
struct Expiry {
    every: Duration,
    settings: MaintainSettings,
    /// The next expiry is due after this.
    due: Instant,
}

impl Tables {
    /// Opens the store and both tables (creating them when absent, evolving
    /// them to the schema files) and rebuilds the key index from the table.
    pub(super) async fn open(config: &RunConfig) -> Result<Self, RunError> {
        let schemas: SchemaSource = config.schema_dir.clone().into();
        let store = open_store(&config.store)
            .await?
            .on_unreachable(|table| crate::telemetry::metrics().commit_failed(&table.to_string()));
        let settings = FileSettings {
            zstd_level: config.zstd_level,
        };
        let events =
            Side::open(&store, &config.table, TableKind::Events, &schemas, settings).await?;
        let rejected = Side::open(
            &store,
            &config.rejected_table,
            TableKind::Rejected,
            &schemas,
            settings,
        )
        .await?;
        let window_days = (config.dedup_window.as_secs() / 86_400) as i32;
        let today = crate::contract::partition_day(chrono::Utc::now().timestamp_micros());
        let (index, rebuilt) = KeyIndex::rebuild(
            &store,
            &events.table,
            today - window_days + 1,
            config.index_memory.get(),
        )
        .await?;
        tracing::info!(
            keys = rebuilt.keys,
            data_files = rebuilt.data_files,
            delete_files = rebuilt.delete_files,
            seconds = rebuilt.seconds,
            bytes = index.memory(),
            oldest_day = %crate::table::writer::format_day(index.oldest_day()),
            "rebuilt the key index from the table"
        );
        Ok(Tables {
            write_parallelism: config.decode_threads.get(),
            target_file_size: config.target_file_size.get(),
            // A first guess (zstd on JSON-ish text); corrected after every flush.
            file_bytes_per_heap_byte: 0.3,
            index,
            probe: ProbeCache::new(cache_budget(config.index_memory.get())),
            dedup_mode: config.dedup_mode,
            held: Arc::default(),
            committed: watch::Sender::new(events.table.checkpoint()?),
            expiry: config.expire_every.map(|every| Expiry {
                every,
                settings: MaintainSettings {
                    target_file_size: config.target_file_size.get() as u64,
                    expire_older_than: config.expire_older_than,
                    keep_snapshots: crate::config::defaults::KEEP_SNAPSHOTS,
                    orphan_older_than: Duration::MAX,
                },
                // The first one soon after the start: a table left alone for
                // a while may be due already.
                due: Instant::now(),
            }),
            store,
            events,
            rejected,
        })
    }

    /// Expires the old snapshots of both tables (and the files only they
    /// used) when `expire_every` has passed since the last time, so that a
    /// deployment without the scheduled `floe maintain` does not grow
    /// without bound. What it removes no checkpoint needs (checkpoints are
    /// table properties) and no writer builds on (the newest snapshots are
    /// kept, and a writer whose base went rebases on the current one). A
    /// failure is logged and tried again at the next due time: the data is
    /// committed already.
    pub(super) async fn expire_if_due(&mut self) {
        let Some(expiry) = &mut self.expiry else {
            return;
        };
        if Instant::now() < expiry.due {
            return;
        }
        expiry.due = Instant::now() + expiry.every;
        let now = std::time::SystemTime::now();
        for side in [&mut self.events, &mut self.rejected] {
            let table = &mut side.table;
            match maintain::expire_snapshots(&self.store, table.clone(), &expiry.settings, now)
                .await
            {
                // Taken only when nobody committed in between: otherwise the
                // next commit must find the other writer's snapshots new, and
                // rebase on them.
                Ok((expired, _)) => {
                    if expired.metadata.current_snapshot_id()
                        == table.metadata.current_snapshot_id()
                    {
                        *table = expired;
                    }
                }
                Err(e) => tracing::warn!(
                    table = %table.name,
                    error = %e,
                    "expiring old snapshots failed: trying again in {}",
                    humantime::format_duration(expiry.every)
                ),
            }
        }
    }
}

/// Opens the warehouse's catalog and storage (creating a local folder).
pub async fn open_store(config: &StoreConfig) -> Result<TableStore, RunError> {
    match &config.warehouse {
        Warehouse::Local(warehouse) => {
            std::fs::create_dir_all(warehouse).map_err(|source| RunError::Warehouse {
                path: warehouse.to_path_buf(),
                source,
            })?;
            let root = std::fs::canonicalize(warehouse).map_err(|source| RunError::Warehouse {
                path: warehouse.to_path_buf(),
                source,
            })?;
            let catalog = match config.catalog {
                CatalogKind::Sql => {
                    Catalog::open_sql(root.join("catalog.db"), config.catalog_name.clone()).await?
                }
                CatalogKind::Glue => Catalog::Glue(GlueCatalog::new(aws_sdk_glue::Client::new(
                    &crate::aws::sdk_config().await,
                ))),
            };
            let uri = format!("file://{}", root.display());
            Ok(TableStore::new(
                Arc::new(catalog),
                FileIO::new_with_fs(),
                &uri,
            ))
        }
        Warehouse::S3(uri) => {
            let sdk = crate::aws::sdk_config().await;
            let catalog = Catalog::Glue(GlueCatalog::new(aws_sdk_glue::Client::new(&sdk)));
            let file_io = crate::aws::s3_file_io(&sdk, &config.s3);
            Ok(TableStore::new(Arc::new(catalog), file_io, uri))
        }
    }
}
