//! `floe run` and `floe demo`: their flags (each setting is declared once,
//! in `floe::config::RunSettings`, which also lays it over the `--config`
//! file), the ingest with its signal handling and shutdown deadline, and the
//! async runtime (which the other commands that do I/O use too).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;

use floe::config::{ConfigError, RunConfig, RunSettings, Tuning};
use floe::generate::GenerateOptions;
use floe::pipeline::{self, RunReport};
use floe::table::SchemaSource;
use floe::table::schema::{LOCAL_SCHEMA_DIR, announce_source};
use floe::telemetry::Progress;
use floe::{report, telemetry};

use super::check_config::checked_settings;
use super::generate::write_events;

/// `floe run`'s flags: the settings (declared in `floe::config`), the file
/// they are laid over, and `--check-config`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// TOML file with settings (same names, snake_case); flags and FLOE_* override it.
    #[arg(long, env = "FLOE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: RunSettings,
    /// Check the settings (flags, FLOE_* variables, config file) without touching anything, print them and exit; an unknown FLOE_* variable is an error here
    #[arg(long)]
    check_config: bool,
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
/// run summary; `--check-config` only prints the settings. It does not read
/// the table back: on a table of months that is a scan of every data file
/// at every stop (`floe inspect` gives the rows per partition from the
/// table's metadata).
pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let settings = args.settings.with_file(args.config.as_deref())?;
    if args.check_config {
        print!("{}", checked_settings(settings)?);
        return Ok(ExitCode::SUCCESS);
    }
    let config = settings.validate()?;
    floe::failpoint::init().map_err(|e| ConfigError { problems: vec![e] })?;
    telemetry::init_logging(config.log_format, "info");
    announce_source(
        &SchemaSource::from(config.schema_dir.clone()),
        Path::new(LOCAL_SCHEMA_DIR),
    );
    let rt = runtime()?;
    let report = rt.block_on(ingest(&config))?;
    print!("{}", report::run_summary(&report));
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
    let config = RunSettings {
        input: Some(vec![input.display().to_string()]),
        warehouse: Some(dir.join("warehouse")),
        tuning: args.tuning,
        ..RunSettings::default()
    }
    .with_file(None)?
    .validate()?;
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
