//! `floe maintain`: compaction, manifest rewrite, snapshot expiry and
//! orphan removal on both tables, with the progress line and one report line
//! per task and table.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use floe::config::{ConfigError, LogFormat, Warehouse, defaults};
use floe::table::TableLayout;
use floe::table::schema::{LOCAL_SCHEMA_DIR, announce_source};
use floe::{report, telemetry};

use super::run::runtime;
use super::{SchemaTableArgs, open_existing};

#[derive(Args)]
pub(crate) struct MaintainArgs {
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

/// `floe maintain`: the chosen tasks (all three when none is chosen) on
/// both tables, in the order compact, expire, remove orphans (so expiry
/// deletes what compaction replaced once it is old enough).
pub(crate) fn maintain(args: MaintainArgs) -> anyhow::Result<ExitCode> {
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
