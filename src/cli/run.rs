//! `floe run` and `floe demo`: their settings (flags and `FLOE_*`
//! variables, laid over the `--config` file), the ingest with its signal
//! handling and shutdown deadline, and the async runtime (which the other
//! commands that do I/O use too).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;

use floe::config::{ConfigError, RawRunConfig, RunConfig};
use floe::generate::GenerateOptions;
use floe::pipeline::{self, RunReport};
use floe::table::SchemaSource;
use floe::table::schema::{LOCAL_SCHEMA_DIR, announce_source};
use floe::telemetry::Progress;
use floe::{report, telemetry};

use super::AwsArgs;
use super::check_config::checked_settings;
use super::generate::write_events;

/// Every `run` setting; each can also come from `FLOE_*` or the `--config` file.
#[derive(Args, Clone, Default)]
pub(crate) struct RunArgs {
    /// TOML file with settings (same names, snake_case); flags and FLOE_* override it.
    #[arg(long, env = "FLOE_CONFIG")]
    config: Option<PathBuf>,
    /// Input files or globs, `-` for stdin; repeat the flag or separate with commas.
    #[arg(long, short, env = "FLOE_INPUT", value_delimiter = ',', num_args = 1..)]
    input: Vec<String>,
    /// Kinesis data stream to read (name or ARN) instead of input files
    #[arg(long, env = "FLOE_STREAM")]
    stream: Option<String>,
    /// Name the stream's shard checkpoints are kept under [default: floe]
    #[arg(long, env = "FLOE_CONSUMER_NAME")]
    consumer_name: Option<String>,
    /// Where a shard without a checkpoint starts: trim-horizon, latest, at-timestamp:<RFC 3339 or Unix seconds> [default: trim-horizon]
    #[arg(long, env = "FLOE_START_POSITION")]
    start_position: Option<String>,
    /// Stop once every shard is read to its tip and committed, instead of running on
    #[arg(long, env = "FLOE_DRAIN")]
    drain: bool,
    /// DynamoDB table of shard leases: several tasks share the stream's shards [default: off, this task reads every shard]
    #[arg(long, env = "FLOE_LEASE_TABLE")]
    lease_table: Option<String>,
    /// This task's name in the lease table [default: generated, unique per start]
    #[arg(long, env = "FLOE_WORKER_ID")]
    worker_id: Option<String>,
    /// A lease not renewed for this long (on the reader's own clock) is taken by another task [default: 10s]
    #[arg(long, env = "FLOE_LEASE_DURATION")]
    lease_duration: Option<String>,
    /// Warehouse: a folder (holds catalog.db and the tables' files; created if absent) or s3://bucket/prefix
    #[arg(long, short, env = "FLOE_WAREHOUSE")]
    warehouse: Option<PathBuf>,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    tuning: Tuning,
    /// Serve /metrics, /health/live and /health/ready on this address, e.g. 0.0.0.0:9464 [default: off]
    #[arg(long, env = "FLOE_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// Print one CloudWatch Embedded Metric Format line per commit to stdout, in this namespace [default: off]
    #[arg(long, env = "FLOE_EMF_NAMESPACE")]
    emf_namespace: Option<String>,
    /// Check the settings (flags, FLOE_* variables, config file) without touching anything, print them and exit; an unknown FLOE_* variable is an error here
    #[arg(long)]
    check_config: bool,
}

/// Settings shared by `run` and `demo`.
#[derive(Args, Clone, Default)]
struct Tuning {
    /// Catalog name inside catalog.db [default: floe]
    #[arg(long, env = "FLOE_CATALOG_NAME")]
    catalog_name: Option<String>,
    /// Events table, namespace.table [default: analytics.events]
    #[arg(long, env = "FLOE_TABLE")]
    table: Option<String>,
    /// Rejected-records table [default: analytics.events_rejected]
    #[arg(long, env = "FLOE_REJECTED_TABLE")]
    rejected_table: Option<String>,
    /// Folder of schema files (schemas/<table>/NNNN-slug.json) [default: built in]
    #[arg(long, env = "FLOE_SCHEMA_DIR")]
    schema_dir: Option<PathBuf>,
    /// Flush (write files and commit) when this much input is buffered; the next batch fills
    /// while one is written, so memory holds about two [default: 128MiB]
    #[arg(long, env = "FLOE_FLUSH_SIZE")]
    flush_size: Option<String>,
    /// Flush when the oldest buffered record is this old [default: 60s]
    #[arg(long, env = "FLOE_FLUSH_INTERVAL")]
    flush_interval: Option<String>,
    /// Data file size to aim for; bigger partitions are split into several files [default: 128MiB]
    #[arg(long, env = "FLOE_TARGET_FILE_SIZE")]
    target_file_size: Option<String>,
    /// Longest accepted record; longer ones are rejected as too_large [default: 1MiB]
    #[arg(long, env = "FLOE_MAX_RECORD_SIZE")]
    max_record_size: Option<String>,
    /// zstd level of data files, 1 to 22 [default: 1]
    #[arg(long, env = "FLOE_ZSTD_LEVEL")]
    zstd_level: Option<i32>,
    /// Duplicate event_uuid: upsert (last writer wins, position delete) or keep-first [default: upsert]
    #[arg(long, env = "FLOE_DEDUP_MODE")]
    dedup_mode: Option<String>,
    /// A payload value that does not fit its typed column: payload (keep it there, count it) or reject the record [default: payload]
    #[arg(long, env = "FLOE_TYPE_MISMATCH")]
    type_mismatch: Option<String>,
    /// How far back in created_datetime the key index reaches, whole days [default: 7d]
    #[arg(long, env = "FLOE_DEDUP_WINDOW")]
    dedup_window: Option<String>,
    /// Memory the key index may use; past it, its oldest days are dropped [default: 1GiB]
    #[arg(long, env = "FLOE_INDEX_MEMORY")]
    index_memory: Option<String>,
    /// Threads decoding records [default: number of cores]
    #[arg(long, env = "FLOE_DECODE_THREADS")]
    decode_threads: Option<usize>,
    /// Event types with counts of their own in snapshot summaries and metric labels; the rest are summed under _other [default: 100]
    #[arg(long, env = "FLOE_EVENT_TYPE_LIMIT")]
    event_type_limit: Option<usize>,
    /// After SIGTERM or SIGINT, exit within this: the last commit must land by then [default: 90s]
    #[arg(long, env = "FLOE_SHUTDOWN_DEADLINE")]
    shutdown_deadline: Option<String>,
    /// How often to expire snapshots older than --expire-older-than (keeping the newest 10) of both tables; off leaves it to floe maintain [default: 1h]
    #[arg(long, env = "FLOE_EXPIRE_EVERY")]
    expire_every: Option<String>,
    /// Snapshots older than this may be expired [default: 5d]
    #[arg(long, env = "FLOE_EXPIRE_OLDER_THAN")]
    expire_older_than: Option<String>,
    /// Live progress on stderr: auto (on a terminal), always, never [default: auto]
    #[arg(long, env = "FLOE_PROGRESS")]
    progress: Option<String>,
    /// Log format: text or json [default: text]; the level comes from FLOE_LOG
    #[arg(long, env = "FLOE_LOG_FORMAT")]
    log_format: Option<String>,
}

impl RunArgs {
    fn raw(self) -> RawRunConfig {
        let t = self.tuning;
        RawRunConfig {
            input: (!self.input.is_empty()).then_some(self.input),
            stream: self.stream,
            consumer_name: self.consumer_name,
            start_position: self.start_position,
            drain: self.drain.then_some(true),
            lease_table: self.lease_table,
            worker_id: self.worker_id,
            lease_duration: self.lease_duration,
            warehouse: self.warehouse,
            catalog: self.aws.catalog,
            s3_endpoint: self.aws.s3_endpoint,
            s3_path_style: self.aws.s3_path_style.then_some(true),
            catalog_name: t.catalog_name,
            table: t.table,
            rejected_table: t.rejected_table,
            schema_dir: t.schema_dir,
            flush_size: t.flush_size,
            flush_interval: t.flush_interval,
            target_file_size: t.target_file_size,
            max_record_size: t.max_record_size,
            zstd_level: t.zstd_level,
            dedup_mode: t.dedup_mode,
            type_mismatch: t.type_mismatch,
            dedup_window: t.dedup_window,
            index_memory: t.index_memory,
            decode_threads: t.decode_threads,
            event_type_limit: t.event_type_limit,
            shutdown_deadline: t.shutdown_deadline,
            expire_every: t.expire_every,
            expire_older_than: t.expire_older_than,
            progress: t.progress,
            log_format: t.log_format,
            metrics_addr: self.metrics_addr,
            emf_namespace: self.emf_namespace,
        }
    }
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Folder for the sample events and the warehouse [default: ./floe-demo]
    dir: Option<PathBuf>,
    /// How many sample events to generate.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Seed of the sample events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    tuning: Tuning,
}

/// `floe run`: ingests until the input ends (or a signal), then prints the
/// run summary and the rows by day; `--check-config` only prints the settings.
pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => RawRunConfig::from_file(path)?,
        None => RawRunConfig::default(),
    };
    if args.check_config {
        print!("{}", checked_settings(args.raw().or(file))?);
        return Ok(ExitCode::SUCCESS);
    }
    let config = args.raw().or(file).validate()?;
    floe::failpoint::init().map_err(|e| ConfigError { problems: vec![e] })?;
    telemetry::init_logging(config.log_format, "info");
    announce_source(
        &SchemaSource::from(config.schema_dir.clone()),
        Path::new(LOCAL_SCHEMA_DIR),
    );
    let rt = runtime()?;
    let report = rt.block_on(ingest(&config))?;
    print!("{}", report::run_summary(&report));
    rt.block_on(print_rows_by_day(&config))?;
    Ok(ExitCode::SUCCESS)
}

/// `floe demo`: generates sample events (once) into a folder, ingests them
/// into a warehouse beside them and prints what landed.
pub(crate) fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("floe-demo"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let input = dir.join("sample-events.jsonl");
    let options = GenerateOptions {
        events: args.events,
        seed: args.seed,
        ..GenerateOptions::default()
    };
    let raw = RunArgs {
        config: None,
        input: vec![input.display().to_string()],
        warehouse: Some(dir.join("warehouse")),
        tuning: args.tuning,
        ..RunArgs::default()
    }
    .raw();
    let config = raw.validate()?;
    telemetry::init_logging(config.log_format, "warn");
    announce_source(
        &SchemaSource::from(config.schema_dir.clone()),
        Path::new(LOCAL_SCHEMA_DIR),
    );
    if !input.exists() {
        let stats = write_events(&options, &input.display().to_string())?;
        println!(
            "Generated {} sample events in {}",
            report::thousands(stats.lines),
            input.display()
        );
    }
    let rt = runtime()?;
    let report = rt.block_on(ingest(&config))?;
    println!(
        "Ingested into {} under {}",
        config.table, config.store.warehouse
    );
    print!("{}", report::run_summary(&report));
    rt.block_on(print_rows_by_day(&config))?;
    println!(
        "\nNext: floe inspect --warehouse {}  (README: query it from DuckDB, PyIceberg, Spark)",
        config.store.warehouse
    );
    Ok(ExitCode::SUCCESS)
}

/// The async runtime, of tokio's default size (a worker per core). The
/// heavy CPU work (decoding records, encoding Parquet files, decoding key
/// columns) and the blocking calls (SQLite) run on tokio's blocking pool,
/// not on workers, so a flush never holds up the decoder's dispatching
/// task, uploads or lease renewals, and no extra workers are needed to
/// make up for it.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs the pipeline with progress and signal handling.
async fn ingest(config: &RunConfig) -> anyhow::Result<RunReport> {
    let (supervisor, failures) = floe::supervise::supervisor();
    if let Some(addr) = config.metrics_addr {
        let (_, server) = telemetry::http::serve(addr)
            .await
            .map_err(|e| ConfigError {
                problems: vec![format!("metrics_addr: cannot listen on {addr}: {e}")],
            })?;
        supervisor.watch_lasting("operations server", server);
    }
    floe::table::summary::set_event_type_limit(config.event_type_limit);
    if let Some(namespace) = &config.emf_namespace {
        telemetry::metrics().send_emf(namespace);
    }
    let progress = Arc::new(Progress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let deadline = config.shutdown_deadline;
    tokio::spawn(async move {
        wait_for_signal().await;
        telemetry::metrics().stopping();
        let _ = stop_tx.send(true);
        // A thread, not a task: it fires even if the runtime is stuck.
        std::thread::spawn(move || {
            std::thread::sleep(deadline);
            eprintln!(
                "floe: the last commit did not land within the shutdown deadline ({}); \
                 records after the committed checkpoint will be read again on the next start",
                humantime::format_duration(deadline)
            );
            std::process::exit(1);
        });
    });
    let drawer = telemetry::spawn_progress(config.progress, progress.clone());
    let result = pipeline::run(config, progress, stop_rx, supervisor, failures).await;
    if let Some(drawer) = drawer {
        drawer.abort();
        telemetry::clear_progress(config.progress);
    }
    Ok(result?)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn print_rows_by_day(config: &RunConfig) -> anyhow::Result<()> {
    let store = pipeline::open_store(&config.store).await?;
    if let Some(table) = store.load(&config.table).await? {
        println!();
        print!(
            "{}",
            report::rows_by_day_and_type_table(&store, &table).await?
        );
    }
    Ok(())
}
