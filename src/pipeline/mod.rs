//! The run loop: wires the stages with bounded channels and commits.
//!
//! ```text
//! source ──chunks──▶ decode (N blocking tasks, order kept) ──▶ buffer ──▶ flush
//!         (bounded)                                   (bounded)      write files, commit
//! ```
//!
//! The source is a [`Source`](crate::source::Source): the files' (or the
//! `s3://` objects') reader thread, the Kinesis consumer's tasks (with the lease keeper when the
//! stream is shared), or a test's fake. The run loop watches it, the
//! decoder and the supervised stages; a panic of any fails the run after
//! what was handed over before it is committed.
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
//! Here: the stages and their wiring, and the order of shutdown.
//! `tables.rs` opens the two tables, `decode.rs` decodes chunks (the
//! decoder stage), `buffer.rs` batches and dedups them, `flush.rs` plans,
//! writes and commits a batch (`upsert.rs` holds the upsert decision and the
//! rebase after a lost race).

mod buffer;
mod decode;
mod flush;
mod held;
mod shared;
mod tables;
mod upsert;

#[cfg(test)]
mod tests;

pub use tables::open_store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::catalog::CatalogError;
use crate::config::{KinesisConfig, RunConfig};
use crate::event::DecodeLimits;
use crate::event::typed::TypedColumns;
use crate::failpoint::{self, FailPoint};
use crate::source::file::FileSource;
use crate::source::kinesis::{self, KinesisSource};
use crate::source::lease::{self, Claims, LeaseHandle};
use crate::source::s3::{S3Source, is_object_input};
use crate::source::{ChunkSender, Reading, Source, SourceError};
use crate::supervise::{Failures, StageFailure, Supervisor};
use crate::table::summary::QualityCounts;
use crate::table::{TableError, TableStore};
use crate::telemetry::events::{self, CatalogAnswer};
use crate::telemetry::{Progress, ShardLag, ShardLags};
use buffer::Buffer;
use decode::{Decoded, spawn_decoder};
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
    /// `s3://` inputs: objects read to their end in this run.
    pub objects_read: u64,
    /// `s3://` inputs: bytes of objects read, as stored (compressed).
    pub object_bytes_read: u64,
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
    shutdown: watch::Receiver<bool>,
    supervisor: Supervisor,
    failures: Failures,
) -> Result<RunReport, RunError> {
    let input = match &config.kinesis {
        Some(stream) => Input::Stream(stream.clone()),
        // Objects: the configuration refused a mix with files.
        None if config.inputs.iter().any(|i| is_object_input(i)) => Input::Objects(S3Source::new(
            &config.inputs,
            &crate::aws::sdk_config().await,
            &config.store.s3,
            config.max_record_size.get(),
            progress.clone(),
        )?),
        // Expanded before anything is opened: a pattern naming nothing
        // fails the run before it creates a table.
        None => Input::Files(FileSource::new(
            &config.inputs,
            config.max_record_size.get(),
        )?),
    };
    run_input(config, input, progress, shutdown, supervisor, failures).await
}

/// What a run reads.
enum Input {
    /// Files or stdin.
    Files(FileSource),
    /// Objects in S3 buckets.
    Objects(S3Source),
    /// A Kinesis stream, shared with other tasks when it has leases.
    Stream(KinesisConfig),
    /// A source a test brings.
    #[cfg(test)]
    Given(Box<dyn Source>),
}

/// [`run`], reading `input`: opens the tables, starts the source and the
/// decoder, fills and flushes buffers until the input ends, a stage fails or
/// a shutdown is asked for, then stops the stages in order.
async fn run_input(
    config: &RunConfig,
    input: Input,
    progress: Arc<Progress>,
    shutdown: watch::Receiver<bool>,
    supervisor: Supervisor,
    failures: Failures,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let tables = Tables::open(config).await?;
    let metrics = crate::telemetry::metrics();
    metrics.started();
    if config.metrics_addr.is_some() {
        spawn_catalog_probe(&tables.store, &config.table, &supervisor);
    }
    // The source's thread or tasks send chunks into a bounded channel.
    let (chunk_tx, chunk_rx) = mpsc::channel(4);
    let lags = ShardLags::default();
    metrics.watch_shards(lags.clone());
    let reader = start_reading(input, chunk_tx, config, &tables, &lags, &supervisor).await?;
    let (decoded, decoder) = spawn_decoder(
        chunk_rx,
        decode_limits(config, &tables),
        config.decode_threads.get(),
    );
    let run = RunLoop {
        config,
        progress,
        tables,
        decoded,
        decoder,
        reading: reader.reading,
        keeper: reader.keeper,
        claims: reader.claims,
        lags,
        shutdown,
        failures,
        buffer: Buffer::new(config.dedup_mode),
        report: RunReport {
            inputs: reader.inputs,
            ..Default::default()
        },
        source_error: None,
        input_ended: false,
        stop: false,
        due: false,
    };
    run.run(started).await
}

/// A started source, with what the run loop needs of its leases.
struct Reader {
    reading: Reading,
    /// Inputs to read (files, or `s3://` patterns).
    inputs: usize,
    /// Under shard leases: the keeper, released at the end.
    keeper: Option<LeaseHandle>,
    /// Under shard leases: which shards this task may commit.
    claims: Option<Arc<Claims>>,
}

/// Starts reading `input` into `tx`: for a stream with leases, first the
/// lease keeper.
async fn start_reading(
    input: Input,
    tx: ChunkSender,
    config: &RunConfig,
    tables: &Tables,
    lags: &ShardLags,
    supervisor: &Supervisor,
) -> Result<Reader, RunError> {
    let mut inputs = 0;
    let mut keeper = None;
    let mut claims = None;
    let source: Box<dyn Source> = match input {
        Input::Files(files) => {
            inputs = files.inputs();
            Box::new(files)
        }
        Input::Objects(objects) => {
            inputs = objects.inputs();
            Box::new(objects)
        }
        Input::Stream(stream) => {
            let sharing = match &stream.leases {
                Some(leases) => {
                    let (lease_keeper, sharing) =
                        shared::start_leases(&stream, leases, tables, config, supervisor).await?;
                    keeper = Some(lease_keeper);
                    claims = Some(sharing.claims.clone());
                    Some(sharing)
                }
                None => None,
            };
            let client = kinesis::client().await;
            Box::new(KinesisSource::new(&stream, client, lags.clone(), sharing))
        }
        #[cfg(test)]
        Input::Given(source) => source,
    };
    Ok(Reader {
        reading: source.start(tx, tables.committed.subscribe())?,
        inputs,
        keeper,
        claims,
    })
}

/// What every decode task needs: the record limit, the time now and the
/// events table's typed columns.
fn decode_limits(config: &RunConfig, tables: &Tables) -> DecodeLimits {
    DecodeLimits {
        max_record_size: config.max_record_size.get(),
        now_seconds: chrono::Utc::now().timestamp() as f64,
        columns: Arc::new(TypedColumns::of_schema(
            tables.events.table.metadata.current_schema(),
            config.strict_types,
        )),
    }
}

/// The run loop's stages and state, from the decoder's channel to the last
/// commit.
struct RunLoop<'a> {
    config: &'a RunConfig,
    progress: Arc<Progress>,
    tables: Tables,
    /// Decoded chunks, in input order.
    decoded: mpsc::Receiver<Result<Decoded, RunError>>,
    decoder: JoinHandle<()>,
    /// The source, watched while it reads.
    reading: Reading,
    keeper: Option<LeaseHandle>,
    claims: Option<Arc<Claims>>,
    lags: ShardLags,
    shutdown: watch::Receiver<bool>,
    failures: Failures,
    /// The buffer filling now.
    buffer: Buffer,
    report: RunReport,
    /// What fails the run once what was read is committed.
    source_error: Option<RunError>,
    /// The decoder's channel closed: every input was read to its end (or a
    /// stage died, which its join tells).
    input_ended: bool,
    /// The input ended or failed, or a shutdown was asked for, while a flush ran.
    stop: bool,
    /// The buffer is due for a flush (full, or holding a chunk to commit soon).
    due: bool,
}

impl RunLoop<'_> {
    /// Fills a buffer and flushes it, again and again, until the run stops;
    /// then [`RunLoop::finish`].
    async fn run(mut self, started: Instant) -> Result<RunReport, RunError> {
        while !self.stop {
            if !self.due && !self.fill().await {
                break;
            }
            self.due = false;
            let next = self.buffer.successor();
            let full = std::mem::replace(&mut self.buffer, next);
            if self.claims.is_some() {
                // A shard may move while its records wait: the next buffer
                // fills only once this flush has checked the claims.
                let claims = self.claims.as_deref();
                shared::flush_held(
                    &mut self.tables,
                    full,
                    &mut self.report,
                    &self.progress,
                    claims,
                )
                .await?;
                continue;
            }
            self.flush_filling(full).await?;
        }
        self.finish(started).await
    }

    /// Fills the buffer until it is due for a flush (`true`: full, its
    /// oldest record `flush_interval` old, or holding a chunk to commit
    /// soon) or the run stops (`false`: the input ended or failed, a stage
    /// failed, or a shutdown was asked for).
    async fn fill(&mut self) -> bool {
        loop {
            let deadline = self
                .buffer
                .since
                .map(|t| tokio::time::Instant::from_std(t + self.config.flush_interval));
            tokio::select! {
                next = self.decoded.recv() => match next {
                    Some(Ok(decoded)) => {
                        if !shared::accepts(self.claims.as_deref(), &decoded.source) {
                            // Read under a lease claim given up since: whoever
                            // holds the shard now reads it from the checkpoint.
                            continue;
                        }
                        if take_chunk(&mut self.buffer, decoded, &self.progress, self.config) {
                            return true;
                        }
                    }
                    Some(Err(e)) => {
                        self.source_error = Some(e);
                        return false;
                    }
                    None => {
                        self.input_ended = true;
                        return false;
                    }
                },
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => return true,
                finished = self.reading.ended() => {
                    // A source's task returns by itself once drained or
                    // after reporting a fatal error; a panic fails the run.
                    if let Err(e) = finished {
                        self.source_error = Some(stage_failed(self.reading.stage(), e));
                        return false;
                    }
                }
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        self.report.interrupted = true;
                        return false;
                    }
                }
                failure = self.failures.next() => {
                    self.source_error = Some(failure.into());
                    return false;
                }
            }
        }
    }

    /// Writes and commits `full` while the next buffer fills into the
    /// memory the flush frees: the two together hold at most `flush_size`
    /// (then reading waits for the flush to free some), however long the
    /// flush takes. What stops the run meanwhile sets `stop`.
    async fn flush_filling(&mut self, full: Buffer) -> Result<(), RunError> {
        let mut interrupted = false;
        let held = self.tables.held.clone();
        let ceiling = self.config.flush_size.get();
        {
            let flushing = flush(&mut self.tables, full, &mut self.report, &self.progress);
            tokio::pin!(flushing);
            loop {
                let filling = !self.stop && !self.due;
                let room = self.buffer.memory() + held.bytes() < ceiling;
                tokio::select! {
                    done = &mut flushing => {
                        done?;
                        break;
                    }
                    _ = held.freed(), if filling && !room => {}
                    next = self.decoded.recv(), if filling && room => match next {
                        Some(Ok(decoded)) => {
                            self.due = take_chunk(&mut self.buffer, decoded, &self.progress, self.config);
                        }
                        Some(Err(e)) => {
                            self.source_error = Some(e);
                            self.stop = true;
                        }
                        None => {
                            self.input_ended = true;
                            self.stop = true;
                        }
                    },
                    changed = self.shutdown.changed(), if !self.stop => {
                        if changed.is_err() || *self.shutdown.borrow() {
                            interrupted = true;
                            self.stop = true;
                        }
                    }
                    failure = self.failures.next(), if !self.stop => {
                        self.source_error = Some(failure.into());
                        self.stop = true;
                    }
                }
            }
        }
        self.report.interrupted |= interrupted;
        Ok(())
    }

    /// Stops the stages, in order: the lease keeper stops taking shards
    /// (on a shutdown), the decoder and the source end, the last buffer is
    /// committed, then the leases are released and the source joined.
    async fn finish(self, started: Instant) -> Result<RunReport, RunError> {
        let RunLoop {
            progress,
            mut tables,
            decoded,
            decoder,
            reading,
            keeper,
            claims,
            lags,
            buffer,
            mut report,
            mut source_error,
            input_ended,
            ..
        } = self;
        if report.interrupted {
            tracing::info!("shutdown requested: committing what was read, then stopping");
            if let Some(keeper) = &keeper {
                keeper.stop_taking();
            }
        }
        // Stop the stages before the last flush: dropping the receiver ends the
        // decoder, whose end closes the reader's channel.
        drop(decoded);
        if input_ended && source_error.is_none() {
            // Its channel closed, so it has returned: a panic of its own (not
            // of a decode task, which it reports) shows here.
            if let Err(e) = decoder.await {
                source_error = Some(stage_failed("decoder", e));
            }
        } else {
            decoder.abort();
        }
        if !input_ended {
            // Still reading: stopped here. Once the input ended, a task
            // source has returned or is unwinding, and is joined below.
            reading.abort();
        }
        let claims = claims.as_deref();
        let last = shared::flush_held(&mut tables, buffer, &mut report, &progress, claims).await;
        if let Some(keeper) = keeper {
            // Released only once what was read is committed: the next owner
            // starts where this task's final commit left each shard.
            keeper.finish(last.is_ok(), LEASE_RELEASE_WITHIN).await;
        }
        last?;
        report.shards = lags.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if input_ended {
            // The reader has finished (its channel closed): a panic means the
            // input was not read to its end, whatever was committed.
            let stage = reading.stage();
            if let Err(message) = reading.join().await
                && source_error.is_none()
            {
                source_error = Some(RunError::Stage { stage, message });
            }
        }
        report.bytes_read = progress.bytes_read.load(Ordering::Relaxed);
        report.objects_read = progress.objects_done.load(Ordering::Relaxed);
        report.object_bytes_read = progress.object_bytes_done.load(Ordering::Relaxed);
        report.elapsed = started.elapsed();
        match source_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
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
    commit_soon || buffer.memory() >= config.flush_size.get()
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
            match answered {
                Ok(Ok(_)) => events::catalog_probed(CatalogAnswer::Answered),
                Ok(Err(e)) => events::catalog_probed(CatalogAnswer::Failed(&e)),
                Err(_) => events::catalog_probed(CatalogAnswer::TimedOut),
            }
        }
    });
    supervisor.watch_lasting("catalog probe", probe);
}
