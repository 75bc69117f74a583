//! The run loop: wires the stages with bounded channels and commits.
//!
//! ```text
//! reader thread ──chunks──▶ decode (N blocking tasks, order kept) ──▶ buffer ──▶ flush
//!                 (bounded)                                   (bounded)      write files, commit
//! ```
//!
//! A flush commits the rejected records first (with the rejected table's own
//! checkpoint), then the events with the events table's checkpoint, in the same
//! Iceberg commit as the data. After a crash the events checkpoint says where
//! to resume; rejected records below the rejected table's checkpoint are
//! already stored and are skipped, so both tables hold each record once.
//!
//! Shutdown (a signal) stops reading; what was read is flushed and committed.
//! A task sharing the stream through shard leases then releases its leases,
//! so that other tasks take its shards at once (`shared.rs` has what else
//! changes then).

mod buffer;
mod decode;
mod shared;
mod upsert;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use iceberg::io::FileIO;
use iceberg::spec::DataFile;
use tokio::sync::{mpsc, watch};

use crate::catalog::{Catalog, CatalogError, GlueCatalog};
use crate::checkpoint::{Checkpoint, SourcePosition};
use crate::config::DedupMode;
use crate::config::RunConfig;
use crate::config::{CatalogKind, StoreConfig, Warehouse};
use crate::event::RecordPosition;
use crate::event::typed::TypedColumns;
use crate::event::{DecodeLimits, events_batch, rejected_batch};
use crate::failpoint::{self, FailPoint};
use crate::source::file::{OpenInput, expand_inputs};
use crate::source::kinesis;
use crate::source::lease::{self, Claims, LeaseHandle};
use crate::source::{SourceChunk, SourceError};
use crate::supervise::{Failures, StageFailure, Supervisor};
use crate::table::index::KeyIndex;
use crate::table::maintain::{self, MaintainSettings};
use crate::table::probe::Probe;
use crate::table::summary::QualityCounts;
use crate::table::writer::{DataWriter, FileSettings, Partition};
use crate::table::{
    Change, LoadedTable, SchemaSource, TableError, TableKind, TableLayout, TableStore,
};
use crate::telemetry::metrics::CommitRecord;
use crate::telemetry::panic_message;
use crate::telemetry::{Progress, ShardLag, ShardLags};
use buffer::Buffer;
use decode::{Decoded, decode_source_chunk};
use upsert::{Deletes, KeyRebase, Written, upsert_against_index, upsert_against_table};

/// Why a run stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading input failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The table side failed.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The shard lease table cannot be used.
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    /// A stage of the pipeline ended abnormally (a panic, a bug): the run
    /// fails rather than pass a partial ingest off as complete.
    #[error("the {stage} stage failed: {message}")]
    Stage {
        /// The stage (`file reader`, `decoder`, `Kinesis consumer`,
        /// `lease keeper`, `catalog probe`, `operations server`).
        stage: &'static str,
        /// What happened (the panic's message).
        message: String,
    },
    /// The warehouse folder could not be created.
    #[error("warehouse {path}")]
    Warehouse {
        /// The folder.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Record counts.
    pub counts: QualityCounts,
    /// Data files written (both tables).
    pub files_written: u64,
    /// Bytes of those files.
    pub bytes_written: u64,
    /// Snapshots committed to the events table.
    pub event_snapshots: u64,
    /// Snapshots committed to the rejected table.
    pub rejected_snapshots: u64,
    /// Commit attempts lost to other writers (then retried).
    pub commit_conflicts: u64,
    /// Inputs read, and inputs skipped because fully committed before.
    pub inputs: usize,
    /// Input bytes read in this run.
    pub bytes_read: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether a shutdown signal ended the run early.
    pub interrupted: bool,
    /// Kinesis shards read, with their lag at the end.
    pub shards: BTreeMap<String, ShardLag>,
}

/// Everything the run needs from the tables.
struct Tables {
    store: TableStore,
    events: LoadedTable,
    rejected: LoadedTable,
    events_writer: DataWriter,
    rejected_writer: DataWriter,
    events_schema: arrow_schema::SchemaRef,
    rejected_schema: arrow_schema::SchemaRef,
    /// Data files encoded at the same time.
    write_parallelism: usize,
    /// Target size of a data file.
    target_file_size: usize,
    /// File bytes per buffered (in-memory) byte, learnt from the last flush.
    file_bytes_per_heap_byte: f64,
    /// Where the live row of each recent key is.
    index: KeyIndex,
    /// What a duplicate does.
    dedup_mode: DedupMode,
    /// The events table's checkpoint after each commit (the Kinesis
    /// consumer starts a closed shard's children once its end is committed).
    committed: watch::Sender<Checkpoint>,
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

/// Runs ingestion until the inputs end or `shutdown` turns true.
pub async fn run(
    config: &RunConfig,
    progress: Arc<Progress>,
    mut shutdown: watch::Receiver<bool>,
    supervisor: Supervisor,
    mut failures: Failures,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let schemas: SchemaSource = config.schema_dir.clone().into();
    let events_layout = Arc::new(TableLayout::load(TableKind::Events, &schemas)?);
    let rejected_layout = Arc::new(TableLayout::load(TableKind::Rejected, &schemas)?);
    let inputs = if config.kinesis.is_some() {
        Vec::new()
    } else {
        expand_inputs(&config.inputs)?
    };

    let store = open_store(&config.store)
        .await?
        .on_unreachable(|table| crate::telemetry::metrics().commit_failed(&table.to_string()));
    let events = store.load_or_create(&config.table, &events_layout).await?;
    let rejected = store
        .load_or_create(&config.rejected_table, &rejected_layout)
        .await?;
    let settings = FileSettings {
        zstd_level: config.zstd_level,
    };
    let window_days = (config.dedup_window.as_secs() / 86_400) as i32;
    let today = chrono::Utc::now().timestamp().div_euclid(86_400) as i32;
    let (index, rebuilt) = KeyIndex::rebuild(
        &store,
        &events,
        today - window_days + 1,
        config.index_memory.get(),
    )
    .await?;
    tracing::info!(
        keys = rebuilt.keys,
        data_files = rebuilt.data_files,
        delete_files = rebuilt.delete_files,
        seconds = rebuilt.seconds,
        bytes = rebuilt.keys * KeyIndex::bytes_per_key(),
        oldest_day = %crate::table::writer::format_day(index.oldest_day()),
        "rebuilt the key index from the table"
    );
    let events_writer = DataWriter::new(&events, events_layout, store.file_io().clone(), settings);
    let rejected_writer = DataWriter::new(
        &rejected,
        rejected_layout,
        store.file_io().clone(),
        settings,
    );
    let mut tables = Tables {
        events_schema: events_writer.arrow_schema()?,
        rejected_schema: rejected_writer.arrow_schema()?,
        write_parallelism: config.decode_threads.get(),
        target_file_size: config.target_file_size.get(),
        // A first guess (zstd on JSON-ish text); corrected after every flush.
        file_bytes_per_heap_byte: 0.3,
        index,
        dedup_mode: config.dedup_mode,
        committed: watch::Sender::new(events.checkpoint()?),
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
        events_writer,
        rejected_writer,
    };
    let resume_from = tables.events.checkpoint()?;
    let metrics = crate::telemetry::metrics();
    metrics.started();
    if config.metrics_addr.is_some() {
        spawn_catalog_probe(&tables.store, &config.table, &supervisor);
    }

    // Reader: one thread, inputs in order, or the Kinesis consumer's shard
    // tasks; chunks into a bounded channel.
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<Result<SourceChunk, SourceError>>(4);
    let max_record_size = config.max_record_size.get();
    let input_count = inputs.len();
    let lags = ShardLags::default();
    metrics.watch_shards(lags.clone());
    let mut lease_keeper: Option<LeaseHandle> = None;
    let mut claims: Option<Arc<Claims>> = None;
    let mut consumer = match &config.kinesis {
        Some(kinesis_config) => {
            let sharing = match &kinesis_config.leases {
                Some(leases) => {
                    let (keeper, sharing) =
                        shared::start_leases(kinesis_config, leases, &tables, config, &supervisor)
                            .await?;
                    lease_keeper = Some(keeper);
                    claims = Some(sharing.claims.clone());
                    Some(sharing)
                }
                None => None,
            };
            Some(kinesis::start(
                kinesis_config,
                kinesis::client().await,
                tables.committed.subscribe(),
                chunk_tx.clone(),
                lags.clone(),
                sharing,
            ))
        }
        None => None,
    };
    let claims = claims.as_deref();
    let reader = std::thread::Builder::new()
        .name("floe-reader".into())
        .spawn(move || {
            for input in &inputs {
                let result = OpenInput::open(input).and_then(|open| {
                    let from = resume_from
                        .get(&open.info.key)
                        .filter(|_| open.info.checkpointed)
                        .and_then(SourcePosition::file)
                        .unwrap_or_default();
                    if from.offset > 0 {
                        tracing::info!(input = %input.display, offset = from.offset, line = from.line, "resuming after the committed checkpoint");
                    }
                    open.read_chunks(from, max_record_size, |chunk| {
                        failpoint::hit(FailPoint::ReadChunk);
                        chunk_tx.blocking_send(Ok(SourceChunk::File(chunk))).is_ok()
                    })
                });
                if let Err(e) = result {
                    let _ = chunk_tx.blocking_send(Err(e));
                    return;
                }
            }
        })
        .map_err(|e| RunError::Stage {
            stage: "file reader",
            message: format!("the thread cannot start: {e}"),
        })?;

    // Decoders: up to `decode_threads` chunks in flight, results in input order.
    let (decoded_tx, mut decoded_rx) = mpsc::channel::<Result<Decoded, RunError>>(2);
    let threads = config.decode_threads.get();
    let limits = DecodeLimits {
        max_record_size,
        now_seconds: chrono::Utc::now().timestamp() as f64,
        columns: Arc::new(TypedColumns::of_schema(
            tables.events.metadata.current_schema(),
            config.strict_types,
        )),
    };
    let decoder = tokio::spawn(async move {
        let mut in_flight = FuturesOrdered::new();
        let mut input_open = true;
        loop {
            tokio::select! {
                chunk = chunk_rx.recv(), if input_open && in_flight.len() < threads => {
                    match chunk {
                        Some(Ok(chunk)) => {
                            let ingested = chrono::Utc::now().timestamp_micros();
                            let limits = limits.clone();
                            in_flight.push_back(tokio::task::spawn_blocking(move || {
                                decode_source_chunk(chunk, &limits, ingested)
                            }));
                        }
                        Some(Err(e)) => {
                            // Hand over what was decoded before the error, then the error.
                            while let Some(done) = in_flight.next().await {
                                let decoded = done.map_err(|e| stage_failed("decoder", e));
                                let failed = decoded.is_err();
                                if decoded_tx.send(decoded).await.is_err() || failed {
                                    return;
                                }
                            }
                            let _ = decoded_tx.send(Err(e.into())).await;
                            return;
                        }
                        None => input_open = false,
                    }
                }
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    // A decode task only fails by panicking, a bug: the run
                    // fails, after committing what was decoded before it.
                    let decoded = done.map_err(|e| stage_failed("decoder", e));
                    let failed = decoded.is_err();
                    if decoded_tx.send(decoded).await.is_err() || failed {
                        return;
                    }
                }
                else => return,
            }
        }
    });

    let mut report = RunReport {
        inputs: input_count,
        ..Default::default()
    };
    let mut buffer = Buffer::new(config.dedup_mode);
    let mut source_error: Option<RunError> = None;
    // The decoder's channel closed: every input was read to its end (or a
    // stage died, which its join tells).
    let mut input_ended = false;
    // The input ended or failed, or a shutdown was asked for, while a flush ran.
    let mut stop = false;
    // The buffer is due for a flush (full, or holding a chunk to commit soon).
    let mut due = false;
    while !stop {
        if !due {
            let deadline = buffer
                .since
                .map(|t| tokio::time::Instant::from_std(t + config.flush_interval));
            tokio::select! {
                next = decoded_rx.recv() => match next {
                    Some(Ok(decoded)) => {
                        if !shared::accepts(claims, &decoded.source) {
                            // Read under a lease claim given up since: whoever
                            // holds the shard now reads it from the checkpoint.
                            continue;
                        }
                        due = take_chunk(&mut buffer, decoded, &progress, config);
                        if !due {
                            continue;
                        }
                    }
                    Some(Err(e)) => {
                        source_error = Some(e);
                        break;
                    }
                    None => {
                        input_ended = true;
                        break;
                    }
                },
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {}
                finished = async { match consumer.as_mut() { Some(task) => task.await, None => std::future::pending().await } } => {
                    // The Kinesis consumer returns by itself once drained or
                    // after reporting a fatal error; a panic fails the run.
                    consumer = None;
                    if let Err(e) = finished {
                        source_error = Some(stage_failed("Kinesis consumer", e));
                        break;
                    }
                    continue;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        report.interrupted = true;
                        break;
                    }
                    continue;
                }
                failure = failures.next() => {
                    source_error = Some(failure.into());
                    break;
                }
            }
        }
        due = false;
        let full = std::mem::replace(&mut buffer, Buffer::new(config.dedup_mode));
        if claims.is_some() {
            // A shard may move while its records wait: the next buffer
            // fills only once this flush has checked the claims.
            shared::flush_held(&mut tables, full, &mut report, &progress, claims).await?;
            continue;
        }
        // The next buffer fills while this one is written and committed
        // (up to `flush_size`; then reading waits for the commit).
        let mut interrupted = false;
        {
            let flushing = flush(&mut tables, full, &mut report, &progress);
            tokio::pin!(flushing);
            loop {
                tokio::select! {
                    done = &mut flushing => {
                        done?;
                        break;
                    }
                    next = decoded_rx.recv(), if !stop && !due => match next {
                        Some(Ok(decoded)) => due = take_chunk(&mut buffer, decoded, &progress, config),
                        Some(Err(e)) => {
                            source_error = Some(e);
                            stop = true;
                        }
                        None => {
                            input_ended = true;
                            stop = true;
                        }
                    },
                    changed = shutdown.changed(), if !stop => {
                        if changed.is_err() || *shutdown.borrow() {
                            interrupted = true;
                            stop = true;
                        }
                    }
                    failure = failures.next(), if !stop => {
                        source_error = Some(failure.into());
                        stop = true;
                    }
                }
            }
        }
        report.interrupted |= interrupted;
    }
    if report.interrupted {
        tracing::info!("shutdown requested: committing what was read, then stopping");
        if let Some(keeper) = &lease_keeper {
            keeper.stop_taking();
        }
    }
    // Stop the stages before the last flush: dropping the receiver ends the
    // decoder, whose end closes the reader's channel.
    drop(decoded_rx);
    if input_ended && source_error.is_none() {
        // Its channel closed, so it has returned: a panic of its own (not
        // of a decode task, which it reports) shows here.
        if let Err(e) = decoder.await {
            source_error = Some(stage_failed("decoder", e));
        }
    } else {
        decoder.abort();
    }
    if let Some(consumer) = consumer {
        consumer.abort();
    }
    let last = shared::flush_held(&mut tables, buffer, &mut report, &progress, claims).await;
    if let Some(keeper) = lease_keeper {
        // Released only once what was read is committed: the next owner
        // starts where this task's final commit left each shard.
        keeper.finish(last.is_ok(), LEASE_RELEASE_WITHIN).await;
    }
    last?;
    report.shards = lags.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if input_ended {
        // The reader has finished (its channel closed): a panic means the
        // input was not read to its end, whatever was committed.
        if let Err(payload) = reader.join()
            && source_error.is_none()
        {
            source_error = Some(RunError::Stage {
                stage: "file reader",
                message: format!("it panicked: {}", panic_message(payload.as_ref())),
            });
        }
    }
    report.bytes_read = progress.bytes_read.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    match source_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

impl From<StageFailure> for RunError {
    fn from(failure: StageFailure) -> Self {
        RunError::Stage {
            stage: failure.stage,
            message: failure.message,
        }
    }
}

/// The error for a stage task that did not return: its panic, or its
/// cancellation.
fn stage_failed(stage: &'static str, e: tokio::task::JoinError) -> RunError {
    let message = crate::telemetry::join_error_message(e);
    tracing::error!(stage, message = %message, "a stage of the pipeline failed: stopping the run after committing what it handed over");
    RunError::Stage { stage, message }
}

/// Adds a decoded chunk to the buffer and counts it; returns whether the
/// buffer is due for a flush (full, or the chunk asks to commit soon).
fn take_chunk(
    buffer: &mut Buffer,
    decoded: Decoded,
    progress: &Progress,
    config: &RunConfig,
) -> bool {
    progress
        .records_read
        .fetch_add(decoded.records, Ordering::Relaxed);
    progress
        .bytes_read
        .fetch_add(decoded.bytes, Ordering::Relaxed);
    let metrics = crate::telemetry::metrics();
    metrics.read(decoded.records, decoded.bytes);
    let commit_soon = decoded.commit_soon;
    buffer.add(decoded);
    metrics.buffered(buffer.bytes, buffer.counts.records_read as usize);
    commit_soon || buffer.bytes >= config.flush_size.get()
}

/// How long releasing the leases at the end may take.
const LEASE_RELEASE_WITHIN: Duration = Duration::from_secs(5);

/// Writes and commits one batch: rejected records first, then events.
async fn flush(
    tables: &mut Tables,
    mut buffer: Buffer,
    report: &mut RunReport,
    progress: &Progress,
) -> Result<(), RunError> {
    // Nothing read moves no position: there is nothing to commit (a
    // hand-off's stop marker alone, say).
    if !buffer.spans.values().any(|s| s.to.is_after(&s.from)) {
        return Ok(());
    }
    let events_checkpoint = tables.events.checkpoint()?;
    let rejected_checkpoint = tables.rejected.checkpoint()?;

    // Rejected records not yet in the rejected table (a resumed run re-reads
    // records after the events checkpoint; some of its rejects may be stored).
    let stored: HashMap<&str, &SourcePosition> = buffer
        .spans
        .values()
        .filter_map(|s| Some((&*s.source.display, rejected_checkpoint.get(&s.source.key)?)))
        .collect();
    let rejects: Vec<_> = std::mem::take(&mut buffer.rejects)
        .into_iter()
        .filter(|r| {
            stored
                .get(&*r.origin.source)
                .is_none_or(|p| !already_stored(&r.origin.position, p))
        })
        .collect();
    if !rejects.is_empty() {
        let batch = rejected_batch(&tables.rejected_schema, &rejects).map_err(TableError::from)?;
        let file = tables
            .rejected_writer
            .write(&Partition::none(), &batch)
            .await?;
        report.files_written += 1;
        report.bytes_written += file.file_size_in_bytes();
        failpoint::hit(FailPoint::AfterDataFiles);
        let mut counts = QualityCounts::default();
        for r in &rejects {
            counts.reject(r.reason);
        }
        let change = checkpointed_change(
            &buffer,
            &rejected_checkpoint,
            vec![file],
            counts.rejected_summary(),
            false,
        );
        let commit_started = Instant::now();
        let outcome = tables.store.commit(&tables.rejected, &change).await?;
        crate::telemetry::metrics().committed(&CommitRecord {
            table: &tables.rejected.name.to_string(),
            counts: &counts,
            files: 1,
            bytes: change.added_data_files[0].file_size_in_bytes(),
            conflicts: outcome.conflicts,
            latency: commit_started.elapsed(),
            newest_micros: None,
            events: false,
            health: outcome.health.map(|h| (h.metadata_bytes, h.manifests)),
        });
        report.rejected_snapshots += 1;
        report.commit_conflicts += u64::from(outcome.conflicts);
        progress
            .rejected_committed
            .fetch_add(rejects.len() as u64, Ordering::Relaxed);
        tracing::info!(table = %tables.rejected.name, snapshot_id = outcome.snapshot_id, records = rejects.len(), "committed rejected records");
        tables.rejected = outcome.table;
    }

    // Events: one file per partition, written in parallel but at most one per
    // core at a time, so only that many Arrow batches and encoders are alive.
    let permits = Arc::new(tokio::sync::Semaphore::new(tables.write_parallelism));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rows_written = 0u64;
    let mut heap_bytes = 0usize;
    let mut deletes = Deletes::new();
    let mut counts = buffer.counts.clone();
    buffer.forget_keys();
    let mut partitions = Vec::with_capacity(buffer.partitions.len());
    let mut late = Vec::new();
    for (i, (partition, rows)) in std::mem::take(&mut buffer.partitions)
        .into_iter()
        .enumerate()
    {
        let rows: Vec<_> = rows
            .rows
            .into_iter()
            .flatten()
            .filter_map(|row| {
                if !tables.index.covers(row.event.day()) {
                    late.push((i, row));
                    return None;
                }
                upsert_against_index(
                    &tables.index,
                    tables.dedup_mode,
                    &row,
                    &mut deletes,
                    &mut counts,
                )
                .then_some(row)
            })
            .collect();
        partitions.push((partition, rows));
    }
    if !late.is_empty() {
        let mut probe = Probe::new(&tables.store, &tables.events).await?;
        for (i, row) in late {
            let partition = &partitions[i].0;
            let live = probe
                .find(partition, row.event.event_uuid(), row.event.created_micros)
                .await?;
            if upsert_against_table(live, tables.dedup_mode, &row, &mut deletes, &mut counts) {
                partitions[i].1.push(row);
            }
        }
        let stats = probe.stats;
        tracing::info!(
            lookups = stats.lookups,
            bloom_checks = stats.bloom_checks,
            files_read = stats.files_read,
            "probed the table for events older than the dedup window"
        );
    }
    let mut newest_micros = None;
    for (partition, mut rows) in partitions {
        if rows.is_empty() {
            continue;
        }
        rows_written += rows.len() as u64;
        newest_micros = rows
            .iter()
            .map(|r| r.event.created_micros)
            .max()
            .max(newest_micros);
        let partition_bytes: usize = rows.iter().map(|r| r.event.heap_size()).sum();
        heap_bytes += partition_bytes;
        let files = (partition_bytes as f64 * tables.file_bytes_per_heap_byte
            / tables.target_file_size as f64)
            .ceil()
            .max(1.0) as usize;
        let per_file = rows.len().div_ceil(files);
        let writer = tables.events_writer.clone();
        let schema = tables.events_schema.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            // Sort order: event_type (constant in a partition), created_datetime.
            // Split after sorting, so files of a partition cover disjoint
            // time ranges and scans prune by created_datetime bounds.
            rows.sort_by_key(|r| r.event.created_micros);
            let mut files = Vec::new();
            while !rows.is_empty() {
                let rest = rows.split_off(per_file.min(rows.len()));
                let part = std::mem::replace(&mut rows, rest);
                let refs: Vec<_> = part.iter().collect();
                let batch = events_batch(&schema, &refs)?;
                // Row i of the file is part[i]: what the index learns after the commit.
                let keys: Vec<(u128, i64)> = part
                    .iter()
                    .map(|r| (r.event.key, r.event.content_hash))
                    .collect();
                // The batch holds copies of the values: free the rows before encoding.
                drop(refs);
                drop(part);
                let file = writer.write(&partition, &batch).await?;
                files.push(Written {
                    file,
                    partition: partition.clone(),
                    keys,
                });
            }
            Ok::<_, TableError>(files)
        });
    }
    let mut written = Vec::with_capacity(tasks.len());
    while let Some(done) = tasks.join_next().await {
        let done = done.map_err(|e| {
            TableError::Iceberg(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("writing a data file panicked: {e}"),
            ))
        })??;
        written.extend(done);
    }
    let files: Vec<DataFile> = written.iter().map(|w| w.file.clone()).collect();
    let mut delete_files = Vec::with_capacity(deletes.len());
    for (partition, positions) in &mut deletes {
        let file = tables
            .events_writer
            .write_position_deletes(partition, positions)
            .await?;
        report.bytes_written += file.file_size_in_bytes();
        delete_files.push(file);
    }
    report.files_written += delete_files.len() as u64;
    let flushed_bytes: u64 = files.iter().map(|f| f.file_size_in_bytes()).sum();
    report.bytes_written += flushed_bytes;
    if heap_bytes > 0 && flushed_bytes > 0 {
        // Learn how much a buffered byte weighs on disk, to size the next files.
        tables.file_bytes_per_heap_byte = flushed_bytes as f64 / heap_bytes as f64;
    }
    report.files_written += files.len() as u64;
    counts.rows_written = rows_written;
    let mut change = checkpointed_change(
        &buffer,
        &events_checkpoint,
        files,
        counts.to_summary(),
        true,
    );
    change.added_delete_files = delete_files;
    failpoint::hit(FailPoint::AfterDataFiles);
    let mut rebase = KeyRebase {
        store: &tables.store,
        writer: &tables.events_writer,
        index: &mut tables.index,
        mode: tables.dedup_mode,
        written: &written,
        deletes,
        withdrawn: HashSet::new(),
        counts: &mut counts,
    };
    let commit_started = Instant::now();
    let outcome = tables
        .store
        .commit_rebasing(&tables.events, &mut change, Some(&mut rebase))
        .await?;
    let commit_latency = commit_started.elapsed();
    let commit_ms = commit_latency.as_secs_f64() * 1e3;
    let withdrawn = std::mem::take(&mut rebase.withdrawn);
    failpoint::hit(FailPoint::BeforePositionsAdvance);
    // The rows are in the table now: the index may point at them.
    for (i, w) in written.iter().enumerate() {
        let id = tables
            .index
            .add_file(w.file.file_path(), w.partition.clone());
        for (pos, (key, hash)) in w.keys.iter().enumerate() {
            if !withdrawn.contains(&(i, pos as u32)) {
                tables.index.insert(*key, id, pos as u32, *hash);
            }
        }
    }
    let dropped = tables.index.evict_to_budget();
    if dropped > 0 {
        tracing::warn!(
            days = dropped,
            oldest_day = %crate::table::writer::format_day(tables.index.oldest_day()),
            "the key index reached its memory budget: older days are now checked in the table"
        );
    }
    report.event_snapshots += 1;
    report.commit_conflicts += u64::from(outcome.conflicts);
    report.counts.add_capped(&counts);
    crate::telemetry::metrics().committed(&CommitRecord {
        table: &tables.events.name.to_string(),
        counts: &counts,
        files: (change.added_data_files.len() + change.added_delete_files.len()) as u64,
        bytes: change
            .added_data_files
            .iter()
            .chain(&change.added_delete_files)
            .map(|f| f.file_size_in_bytes())
            .sum(),
        conflicts: outcome.conflicts,
        latency: commit_latency,
        newest_micros,
        events: true,
        health: outcome.health.map(|h| (h.metadata_bytes, h.manifests)),
    });
    progress
        .rows_committed
        .fetch_add(counts.rows_written, Ordering::Relaxed);
    tracing::info!(
        table = %tables.events.name,
        snapshot_id = outcome.snapshot_id,
        rows = counts.rows_written,
        files = change.added_data_files.len(),
        duplicates = counts.duplicates_dropped(),
        deleted = counts.rows_deleted,
        rejected = counts.rejected_total(),
        conflicts = outcome.conflicts,
        commit_ms,
        "committed events"
    );
    tables.events = outcome.table;
    tables.committed.send_replace(tables.events.checkpoint()?);
    crate::telemetry::metrics().buffered(0, 0);
    expire_if_due(tables).await;
    Ok(())
}

/// Expires the old snapshots of both tables (and the files only they used)
/// when `expire_every` has passed since the last time, so that a deployment
/// without the scheduled `floe maintain` does not grow without bound. What
/// it removes no checkpoint needs (checkpoints are table properties) and no
/// writer builds on (the newest snapshots are kept, and a writer whose base
/// went rebases on the current one). A failure is logged and tried again at
/// the next due time: the data is committed already.
async fn expire_if_due(tables: &mut Tables) {
    let Some(expiry) = &mut tables.expiry else {
        return;
    };
    if Instant::now() < expiry.due {
        return;
    }
    expiry.due = Instant::now() + expiry.every;
    let now = std::time::SystemTime::now();
    for table in [&mut tables.events, &mut tables.rejected] {
        match maintain::expire_snapshots(&tables.store, table.clone(), &expiry.settings, now).await
        {
            // Taken only when nobody committed in between: otherwise the
            // next commit must find the other writer's snapshots new, and
            // rebase on them.
            Ok((expired, _)) => {
                if expired.metadata.current_snapshot_id() == table.metadata.current_snapshot_id() {
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

/// How often the catalog is asked for the events table's pointer, so that
/// `/health/ready` notices an outage between commits.
const CATALOG_PROBE_EVERY: Duration = Duration::from_secs(5);

/// Asks the catalog for the events table every [`CATALOG_PROBE_EVERY`]
/// (with a timeout of the same length) and records whether it answered,
/// for as long as the run lasts.
/// It lasts as long as the run: its end is a failure `supervisor` reports.
fn spawn_catalog_probe(
    store: &TableStore,
    table: &crate::catalog::TableName,
    supervisor: &Supervisor,
) {
    let catalog = store.catalog().clone();
    let table = table.clone();
    let probe = tokio::spawn(async move {
        let mut tick = tokio::time::interval(CATALOG_PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            failpoint::hit(FailPoint::CatalogProbe);
            let answered = tokio::time::timeout(CATALOG_PROBE_EVERY, catalog.load(&table)).await;
            let reachable = match answered {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "catalog probe failed");
                    false
                }
                Err(_) => false,
            };
            crate::telemetry::metrics().catalog_answered(reachable);
        }
    });
    supervisor.watch_lasting("catalog probe", probe);
}

/// Whether a record at `position` is at or before the committed `checkpoint`
/// of its source.
fn already_stored(position: &RecordPosition, checkpoint: &SourcePosition) -> bool {
    match (position, checkpoint) {
        (RecordPosition::Line { offset, .. }, SourcePosition::File(p)) => *offset < p.offset,
        (RecordPosition::Record { seq, .. }, SourcePosition::Shard(p)) => {
            crate::checkpoint::sequence_cmp(Some(seq), p.seq.as_deref())
                != std::cmp::Ordering::Greater
        }
        _ => false,
    }
}

/// A change adding `files`, moving every source of `buffer` from where
/// `committed` says it stands to the end of the buffer.
///
/// With `from_reads` (the events table), a shard moves from where its
/// records were read from, so that the commit is refused if the table's
/// checkpoint is anywhere else by then (another task committed the shard).
fn checkpointed_change(
    buffer: &Buffer,
    committed: &Checkpoint,
    files: Vec<DataFile>,
    summary: BTreeMap<String, String>,
    from_reads: bool,
) -> Change {
    let mut checkpoint_from = BTreeMap::new();
    let mut checkpoint_to = Checkpoint::new();
    for (key, span) in &buffer.spans {
        if !span.source.checkpointed {
            continue;
        }
        if from_reads && matches!(span.from, SourcePosition::Shard(_)) {
            if span.to.is_after(&span.from) {
                checkpoint_from.insert(key.clone(), shared::as_committed(&span.from));
                checkpoint_to.set(key, span.to.clone());
            }
            continue;
        }
        let stored = committed.get(key);
        // The rejected table's checkpoint may lag (no rejects lately) or lead
        // (a crash after its commit); either way it moves to the batch's end.
        if stored.is_none_or(|p| span.to.is_after(p)) {
            checkpoint_from.insert(key.clone(), stored.cloned());
            checkpoint_to.set(key, span.to.clone());
        }
    }
    Change {
        added_data_files: files,
        added_delete_files: Vec::new(),
        removed_files: Vec::new(),
        summary,
        checkpoint_from,
        checkpoint_to,
    }
}
