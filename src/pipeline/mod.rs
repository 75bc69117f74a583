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
//!
//! Here: the stages and their wiring. `tables.rs` opens the two tables,
//! `decode.rs` decodes chunks, `buffer.rs` batches and dedups them,
//! `flush.rs` plans, writes and commits a batch (`upsert.rs` holds the
//! upsert decision and the rebase after a lost race).

mod buffer;
mod decode;
mod flush;
mod shared;
mod tables;
mod upsert;

pub use tables::open_store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::catalog::CatalogError;
use crate::checkpoint::SourcePosition;
use crate::config::RunConfig;
use crate::event::DecodeLimits;
use crate::event::typed::TypedColumns;
use crate::failpoint::{self, FailPoint};
use crate::source::file::{OpenInput, expand_inputs};
use crate::source::kinesis;
use crate::source::lease::{self, Claims, LeaseHandle};
use crate::source::{SourceChunk, SourceError};
use crate::supervise::{Failures, StageFailure, Supervisor};
use crate::table::summary::QualityCounts;
use crate::table::{TableError, TableStore};
use crate::telemetry::panic_message;
use crate::telemetry::{Progress, ShardLag, ShardLags};
use buffer::Buffer;
use decode::{Decoded, decode_source_chunk};
use flush::flush;
use tables::Tables;

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

/// Runs ingestion until the inputs end or `shutdown` turns true.
pub async fn run(
    config: &RunConfig,
    progress: Arc<Progress>,
    mut shutdown: watch::Receiver<bool>,
    supervisor: Supervisor,
    mut failures: Failures,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let inputs = if config.kinesis.is_some() {
        Vec::new()
    } else {
        expand_inputs(&config.inputs)?
    };

    let mut tables = Tables::open(config).await?;
    let resume_from = tables.events.table.checkpoint()?;
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
            tables.events.table.metadata.current_schema(),
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
