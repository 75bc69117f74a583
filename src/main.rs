//! The `floe` command: parses flags, sets up logging, runs one command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use floe::aws::S3Settings;
use floe::config::{
    CatalogKind, ConfigError, LogFormat, RawRunConfig, RunConfig, StoreConfig, Warehouse, defaults,
};
use floe::generate::{GenerateOptions, generate, validate_options};
use floe::pipeline::{self, RunReport};
use floe::table::schema::{LOCAL_SCHEMA_DIR, announce_source};
use floe::table::{SchemaChain, SchemaPlan, SchemaSource, TableKind, TableLayout};
use floe::telemetry::Progress;
use floe::{catalog::TableName, report, telemetry};

/// Floe allocates and frees many small strings per record; mimalloc does
/// that at a fraction of glibc's cost (measured in `just bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Streams JSON events into an Apache Iceberg table, exactly once.
#[derive(Parser)]
#[command(name = "floe", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest JSON Lines files (plain or .gz, globs, `-` for stdin) or a Kinesis stream into the events table.
    Run(Box<RunArgs>),
    /// Generate sample events, ingest them into a local warehouse and print what landed.
    Demo(Box<DemoArgs>),
    /// Describe a table: schema, partition spec, snapshots with summaries, files per partition.
    Inspect(InspectArgs),
    /// Write deterministic, realistic sample events (with duplicates and bad lines) as JSON Lines.
    Generate(GenerateArgs),
    /// Check schema files offline, or compare a table with them and apply the newest.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Ask a running Floe whether it is live (or ready): exit 0 if so, 1 if not (the container health check).
    Health(HealthArgs),
    /// Compact small files, rewrite manifests, expire old snapshots and remove orphan files of both tables (safe while `floe run` writes).
    Maintain(Box<MaintainArgs>),
}

#[derive(Args)]
struct MaintainArgs {
    /// Store, tables, and the schema files whose column settings shape compacted files.
    #[command(flatten)]
    tables: SchemaTableArgs,
    /// Compact: rewrite each partition's small files, and the files its deletes point into, without the deleted rows
    #[arg(long)]
    compact: bool,
    /// Rewrite manifests clustered by partition (day first), so planning a query of a few days reads few of them
    #[arg(long)]
    rewrite_manifests: bool,
    /// Expire snapshots older than --expire-older-than (keeping --keep-snapshots) and delete the files only they used
    #[arg(long)]
    expire: bool,
    /// Delete unreferenced files older than --orphan-older-than under each table's location
    #[arg(long)]
    remove_orphans: bool,
    /// Size compacted files aim at; files under 3/4 of it count as small [default: 128MiB]
    #[arg(long, env = "FLOE_TARGET_FILE_SIZE")]
    target_file_size: Option<String>,
    /// zstd level of compacted files, 1 to 22
    #[arg(long, env = "FLOE_ZSTD_LEVEL", default_value_t = defaults::ZSTD_LEVEL)]
    zstd_level: i32,
    /// Snapshots older than this may be expired
    #[arg(long, env = "FLOE_EXPIRE_OLDER_THAN", default_value = defaults::EXPIRE_OLDER_THAN, value_parser = humantime::parse_duration)]
    expire_older_than: std::time::Duration,
    /// The newest snapshots kept whatever their age (at least 1)
    #[arg(long, env = "FLOE_KEEP_SNAPSHOTS", default_value_t = defaults::KEEP_SNAPSHOTS)]
    keep_snapshots: usize,
    /// Unreferenced files younger than this are kept: a running writer may be about to commit them
    #[arg(long, env = "FLOE_ORPHAN_OLDER_THAN", default_value = "3d", value_parser = humantime::parse_duration)]
    orphan_older_than: std::time::Duration,
}

#[derive(Args)]
struct HealthArgs {
    /// The running Floe's operations address (0.0.0.0 means this host).
    #[arg(long, env = "FLOE_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    metrics_addr: std::net::SocketAddr,
    /// Ask /health/ready instead of /health/live.
    #[arg(long)]
    ready: bool,
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Check every schema file and every step of each chain (offline: no catalog, no storage).
    Check(SchemaCheckArgs),
    /// Show which schema file each table is at and what applying the newest would change.
    Diff(SchemaTableArgs),
    /// Apply the newest schema file to each table (what `floe run` does at startup).
    Apply(SchemaTableArgs),
}

#[derive(Args)]
struct SchemaCheckArgs {
    /// Folder of schema files (schemas/<table>/NNNN-slug.json): the checkout's by default, which
    /// this command validates (the others use the files built in unless given --schema-dir)
    #[arg(long, env = "FLOE_SCHEMA_DIR", default_value = LOCAL_SCHEMA_DIR)]
    schema_dir: PathBuf,
    /// Git revision (e.g. origin/main): every schema file it has must be unchanged here.
    #[arg(long)]
    since: Option<String>,
}

#[derive(Args)]
struct SchemaTableArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Events table.
    #[arg(long, env = "FLOE_TABLE", default_value = defaults::TABLE)]
    table: String,
    /// Rejected-records table.
    #[arg(long, env = "FLOE_REJECTED_TABLE", default_value = defaults::REJECTED_TABLE)]
    rejected_table: String,
    /// Folder of schema files [default: built in]
    #[arg(long, env = "FLOE_SCHEMA_DIR")]
    schema_dir: Option<PathBuf>,
}

impl SchemaTableArgs {
    /// Both tables with their kinds (`None` for a name `problems` got).
    fn names(&self, problems: &mut Vec<String>) -> [Option<(TableKind, TableName)>; 2] {
        let mut parse = |kind, label: &str, text: &str| match TableName::parse(text) {
            Ok(name) => Some((kind, name)),
            Err(e) => {
                problems.push(format!("{label}: {e}"));
                None
            }
        };
        [
            parse(TableKind::Events, "table", &self.table),
            parse(TableKind::Rejected, "rejected_table", &self.rejected_table),
        ]
    }

    /// The schema files: `--schema-dir`, else the built-in ones.
    fn schema_source(&self) -> SchemaSource {
        SchemaSource::from(self.schema_dir.clone())
    }
}

/// Every `run` setting; each can also come from `FLOE_*` or the `--config` file.
#[derive(Args, Clone, Default)]
struct RunArgs {
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

/// Where the catalog is and how S3 is reached.
#[derive(Args, Clone, Default)]
struct AwsArgs {
    /// Catalog: sql (catalog.db in the warehouse folder) or glue (AWS Glue) [default: sql]
    #[arg(long, env = "FLOE_CATALOG")]
    catalog: Option<String>,
    /// Endpoint of an S3-compatible store [default: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL]
    #[arg(long, env = "FLOE_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Path-style S3 addressing (endpoint/bucket/key), for S3-compatible stores
    #[arg(long, env = "FLOE_S3_PATH_STYLE")]
    s3_path_style: bool,
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
struct DemoArgs {
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

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Table to describe.
    #[arg(long, env = "FLOE_TABLE", default_value = defaults::TABLE)]
    table: String,
}

/// Where existing tables are: warehouse, catalog and S3 options.
#[derive(Args)]
struct StoreArgs {
    /// Warehouse: a folder (holds catalog.db) or s3://bucket/prefix
    #[arg(long, short, env = "FLOE_WAREHOUSE")]
    warehouse: PathBuf,
    #[command(flatten)]
    aws: AwsArgs,
    /// Catalog name inside catalog.db.
    #[arg(long, env = "FLOE_CATALOG_NAME", default_value = defaults::CATALOG_NAME)]
    catalog_name: String,
}

impl StoreArgs {
    /// The store options, checked.
    fn config(&self) -> Result<StoreConfig, ConfigError> {
        let mut problems = Vec::new();
        let config = StoreConfig::new(
            &mut problems,
            Some(self.warehouse.clone()),
            self.aws.catalog.as_deref(),
            self.catalog_name.clone(),
            S3Settings {
                endpoint: self.aws.s3_endpoint.clone(),
                path_style: self.aws.s3_path_style,
            },
        );
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }
}

#[derive(Args)]
struct GenerateArgs {
    /// Number of lines to write (events, duplicates and bad lines together).
    #[arg(long)]
    events: u64,
    /// Seed: the same seed and options give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Days over which created_at is spread.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// First second of the time window (Unix seconds).
    #[arg(long, default_value_t = GenerateOptions::default().start)]
    start: i64,
    /// Share of lines that are exact copies of an earlier event.
    #[arg(long, default_value_t = 0.02)]
    dup_rate: f64,
    /// Share of lines that repeat an earlier event_uuid with a changed body.
    #[arg(long, default_value_t = 0.01)]
    changed_dup_rate: f64,
    /// Share of malformed lines (every reject reason in turn).
    #[arg(long, default_value_t = 0.001)]
    bad_rate: f64,
    /// Output file (`.gz` for gzip), `-` for stdout.
    #[arg(long, short)]
    out: String,
}

impl GenerateArgs {
    fn options(&self) -> GenerateOptions {
        GenerateOptions {
            events: self.events,
            seed: self.seed,
            days: self.days,
            start: self.start,
            dup_rate: self.dup_rate,
            changed_dup_rate: self.changed_dup_rate,
            bad_rate: self.bad_rate,
            ..GenerateOptions::default()
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_command(cli.command) {
        Ok(code) => code,
        Err(e) => {
            if let Some(config) = e.downcast_ref::<ConfigError>() {
                eprintln!("floe: {config}");
                return ExitCode::from(2);
            }
            eprintln!("floe: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its sources, each message once: a layer whose message
/// already holds its source's (`"writing x: disk full"` over `"disk full"`)
/// would otherwise print that text again for every layer below it.
fn error_chain(error: &anyhow::Error) -> String {
    let mut printed: Vec<String> = Vec::new();
    for message in error.chain().map(ToString::to_string) {
        if printed.last().is_some_and(|last| last.contains(&message)) {
            continue;
        }
        printed.push(message);
    }
    printed.join(": ")
}

/// The async runtime: a worker per core plus two, because `floe run` encodes
/// data files on workers (one per core at a time) and the decoder's
/// dispatching task must still run meanwhile, so that the next batch is
/// decoded while the last one is written.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores + 2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Generate(args) => {
            let options = args.options();
            validate_options(&options).map_err(|e| ConfigError { problems: vec![e] })?;
            let stats = write_events(&options, &args.out)?;
            eprintln!(
                "wrote {} lines ({} bytes): {} valid, {} exact duplicates, {} changed duplicates, {} bad",
                stats.lines,
                stats.bytes,
                stats.valid,
                stats.exact_duplicates,
                stats.changed_duplicates,
                stats.bad
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
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
        Command::Demo(args) => {
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
        Command::Schema(SchemaCommand::Check(args)) => {
            let source = SchemaSource::Dir(args.schema_dir.clone());
            let mut out = String::new();
            for kind in [TableKind::Events, TableKind::Rejected] {
                let chain = SchemaChain::load(kind, &source)?;
                if let Some(since) = &args.since {
                    chain.check_unchanged_since(&args.schema_dir, since)?;
                }
                out.push_str(&report::schema_chain(&chain, &args.schema_dir));
            }
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Health(args) => {
            let path = if args.ready {
                "/health/ready"
            } else {
                "/health/live"
            };
            match runtime()?.block_on(telemetry::http::check(args.metrics_addr, path)) {
                Ok(body) => {
                    println!("{body}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("floe health: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Schema(SchemaCommand::Diff(args)) => schema_tables(args, false),
        Command::Schema(SchemaCommand::Apply(args)) => schema_tables(args, true),
        Command::Maintain(args) => maintain(*args),
        Command::Inspect(args) => {
            telemetry::init_logging(LogFormat::Text, "warn");
            let table = TableName::parse(&args.table).map_err(|e| ConfigError {
                problems: vec![format!("table: {e}")],
            })?;
            let rt = runtime()?;
            rt.block_on(async {
                let config = args.store.config()?;
                let store = open_existing(&config).await?;
                let loaded = store
                    .load(&table)
                    .await?
                    .with_context(|| format!("no table {table} in {}", config.warehouse))?;
                print!("{}", report::inspect(&store, &loaded).await?);
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `floe maintain`: the chosen tasks (all three when none is chosen) on
/// both tables, in the order compact, expire, remove orphans (so expiry
/// deletes what compaction replaced once it is old enough).
fn maintain(args: MaintainArgs) -> anyhow::Result<ExitCode> {
    use floe::table::maintain::{self, FileLister, MaintainSettings};
    use floe::table::writer::FileSettings;
    telemetry::init_logging(LogFormat::Text, "info");
    let all = !(args.compact || args.rewrite_manifests || args.expire || args.remove_orphans);
    let mut problems = Vec::new();
    let names = args.tables.names(&mut problems);
    floe::config::check_zstd_level(&mut problems, args.zstd_level);
    let target_file_size =
        floe::config::target_file_size_setting(&mut problems, args.target_file_size.clone());
    if let Err(e) = floe::failpoint::init() {
        problems.push(e);
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems }.into());
    }
    let settings = MaintainSettings {
        target_file_size: target_file_size.get() as u64,
        expire_older_than: args.expire_older_than,
        keep_snapshots: args.keep_snapshots,
        orphan_older_than: args.orphan_older_than,
    };
    let source = args.tables.schema_source();
    announce_source(&source, Path::new(LOCAL_SCHEMA_DIR));
    let rt = runtime()?;
    rt.block_on(async {
        let config = args.tables.store.config()?;
        let store = open_existing(&config).await?;
        let lister = match &config.warehouse {
            Warehouse::Local(_) => FileLister::local()?,
            Warehouse::S3(uri) => {
                let bucket = uri
                    .trim_start_matches("s3://")
                    .split('/')
                    .next()
                    .unwrap_or_default();
                let sdk = floe::aws::sdk_config().await;
                let operator = floe::aws::s3_operator(&sdk, &config.s3, bucket)
                    .with_context(|| format!("listing {uri}"))?;
                FileLister::s3(operator, bucket)
            }
        };
        for (kind, name) in names.into_iter().flatten() {
            let Some(mut table) = store.load(&name).await? else {
                println!("{name}: no such table; nothing to maintain");
                continue;
            };
            let started = std::time::Instant::now();
            if all || args.compact {
                let layout = Arc::new(TableLayout::load(kind, &source)?);
                let files = FileSettings {
                    zstd_level: args.zstd_level,
                };
                let progress = Arc::new(maintain::MaintainProgress::default());
                let (shown, label) = (progress.clone(), name.to_string());
                let drawer =
                    telemetry::spawn_status_line(floe::config::ProgressMode::Auto, move |_| {
                        format!("{label}: {}", shown.line())
                    });
                let compacted =
                    maintain::compact(&store, table, layout, files, &settings, &progress).await;
                if let Some(drawer) = drawer {
                    drawer.abort();
                    telemetry::clear_progress(floe::config::ProgressMode::Auto);
                }
                let (compacted, done) = compacted?;
                table = compacted;
                println!("{name}: {}", report::compaction(&done));
            }
            if all || args.rewrite_manifests {
                let (rewritten, done) = store.rewrite_manifests(table).await?;
                table = rewritten;
                println!("{name}: {}", report::manifest_rewrite(&done));
            }
            if all || args.expire {
                let now = std::time::SystemTime::now();
                let (expired, done) =
                    maintain::expire_snapshots(&store, table, &settings, now).await?;
                table = expired;
                println!("{name}: {}", report::expiry(&done, &settings));
            }
            if all || args.remove_orphans {
                let now = std::time::SystemTime::now();
                let done =
                    maintain::remove_orphans(&store, &lister, &table, &settings, now).await?;
                println!("{name}: {}", report::orphans(&done, &settings));
            }
            tracing::debug!(table = %name, seconds = started.elapsed().as_secs_f64(), "maintained");
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Variables named `FLOE_*` that are read but are no command's flags.
const OTHER_FLOE_VARIABLES: [&str; 2] = ["FLOE_LOG", "FLOE_FAILPOINT"];

/// The `FLOE_*` variables of `floe run`'s settings, from its flags.
fn run_setting_variables() -> Vec<String> {
    flag_variables(Some("run"))
}

/// The `FLOE_*` variables of one subcommand's flags, or of every
/// subcommand's (`None`).
fn flag_variables(subcommand: Option<&str>) -> Vec<String> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let mut out: Vec<String> = cli
        .get_subcommands()
        .filter(|c| subcommand.is_none_or(|name| c.get_name() == name))
        .flat_map(|c| c.get_subcommands().chain([c]).collect::<Vec<_>>())
        .flat_map(|c| c.get_arguments())
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `floe run --check-config`: every setting as `FLOE_NAME=value`, or all
/// the problems, any `FLOE_*` variable that no command reads among them (a
/// variable of another command, say `floe maintain`'s, is not a typo).
fn checked_settings(raw: RawRunConfig) -> Result<String, ConfigError> {
    let known = run_setting_variables();
    let any_command = flag_variables(None);
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("FLOE_"))
        .filter(|name| {
            !any_command.contains(name) && !OTHER_FLOE_VARIABLES.contains(&name.as_str())
        })
        .collect();
    unknown.sort();
    let mut problems: Vec<String> = unknown
        .iter()
        .map(|name| {
            let near = known
                .iter()
                .map(|k| (edit_distance(name, k), k))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, k)| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            format!("{name} is not a Floe setting{near}")
        })
        .collect();
    let config = raw.validate();
    let config = match config {
        Ok(config) if problems.is_empty() => config,
        Ok(_) => return Err(ConfigError { problems }),
        Err(e) => {
            problems.extend(e.problems);
            return Err(ConfigError { problems });
        }
    };
    let values = config.env_values();
    let mut names = known;
    names.retain(|n| n != "FLOE_CONFIG");
    names.sort();
    Ok(names
        .iter()
        .map(|n| format!("{n}={}\n", values.get(n.as_str()).map_or("", |v| v)))
        .collect())
}

/// Levenshtein distance: single-character insertions, deletions and
/// substitutions from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// `floe schema diff` (`apply` false) and `floe schema apply`.
fn schema_tables(args: SchemaTableArgs, apply: bool) -> anyhow::Result<ExitCode> {
    telemetry::init_logging(LogFormat::Text, "warn");
    let mut problems = Vec::new();
    let names = args.names(&mut problems);
    if !problems.is_empty() {
        return Err(ConfigError { problems }.into());
    }
    let source = args.schema_source();
    announce_source(&source, Path::new(LOCAL_SCHEMA_DIR));
    println!("Using {source}.");
    let rt = runtime()?;
    rt.block_on(async {
        let config = args.store.config()?;
        let store = open_existing(&config).await?;
        for (kind, name) in names.into_iter().flatten() {
            let layout = TableLayout::load(kind, &source)?;
            let newest = &layout.chain.newest().origin;
            let Some(loaded) = store.load(&name).await? else {
                if apply {
                    store.load_or_create(&name, &layout).await?;
                    println!("{name}: created at {newest}");
                } else {
                    println!("{name}: no such table; `floe run` creates it at {newest}");
                }
                continue;
            };
            let plan = SchemaPlan::of(&loaded, &layout.chain)?;
            match (&plan.changes, apply) {
                (None, _) => println!("{name}: at {newest}, the newest file; nothing to apply"),
                (Some(_), false) => println!(
                    "{name}: at {}; applying {newest} would {}",
                    plan.table_file,
                    plan.describe()
                ),
                (Some(_), true) => {
                    store.evolve(loaded, &layout).await?;
                    println!(
                        "{name}: applied {newest} (was at {}): {}",
                        plan.table_file,
                        plan.describe()
                    );
                }
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn open_existing(config: &StoreConfig) -> anyhow::Result<floe::table::TableStore> {
    if let (Warehouse::Local(warehouse), CatalogKind::Sql) = (&config.warehouse, config.catalog) {
        anyhow::ensure!(
            warehouse.join("catalog.db").is_file(),
            "{} has no catalog.db: not a Floe warehouse (run `floe run` or `floe demo` first)",
            warehouse.display()
        );
    }
    Ok(pipeline::open_store(config).await?)
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

fn write_events(
    options: &GenerateOptions,
    out: &str,
) -> anyhow::Result<floe::generate::GenerateStats> {
    if out == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        return Ok(generate(options, &mut lock)?);
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {out}"))?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let stats = if out.ends_with(".gz") {
        let mut gz = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
        let stats = generate(options, &mut gz)?;
        gz.finish()?.flush()?;
        stats
    } else {
        let stats = generate(options, &mut writer)?;
        writer.flush()?;
        stats
    };
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional source.
    #[derive(Debug)]
    struct Layer(String, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|s| s as _)
        }
    }

    #[test]
    fn error_chains_print_each_message_once() {
        let layer = |text: &str, source: Option<Layer>| Layer(text.into(), source.map(Box::new));
        let disk = layer("No space left on device", None);
        let write = layer("Failed to write: No space left on device", Some(disk));
        let table = layer(
            "table a.b: Failed to write: No space left on device",
            Some(write),
        );
        assert_eq!(
            error_chain(&anyhow::Error::new(table)),
            "table a.b: Failed to write: No space left on device"
        );

        // A layer that does not repeat its source keeps it.
        let io = layer("permission denied", None);
        let path = layer("/w/catalog.db", Some(io));
        let catalog = layer("catalog database /w/catalog.db", Some(path));
        assert_eq!(
            error_chain(&anyhow::Error::new(catalog)),
            "catalog database /w/catalog.db: permission denied"
        );
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        for (a, b, d) in [
            ("FLOE_FLUSH_SIZE", "FLOE_FLUSH_SIZE", 0),
            ("FLOE_FLUSH_SIZ", "FLOE_FLUSH_SIZE", 1),
            ("FLOE_WAREHOSE", "FLOE_WAREHOUSE", 1),
            ("FLOE_TABEL", "FLOE_TABLE", 2),
            ("", "abc", 3),
            ("kitten", "sitting", 3),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} -> {b}");
            assert_eq!(edit_distance(b, a), d, "{b} -> {a}");
        }
    }

    #[test]
    fn check_config_prints_every_run_setting_and_nothing_else() {
        let config = RawRunConfig {
            input: Some(vec!["events.jsonl".into()]),
            warehouse: Some("w".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let mut printed: Vec<&str> = config.env_values().into_keys().collect();
        printed.sort();
        let mut flags = run_setting_variables();
        flags.retain(|n| n != "FLOE_CONFIG");
        flags.sort();
        assert_eq!(printed, flags);
    }
}
