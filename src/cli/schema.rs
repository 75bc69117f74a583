//! `floe schema`: `check` validates the schema files offline; `diff` and
//! `apply` compare each table with the newest file and evolve it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use floe::config::{ConfigError, LogFormat};
use floe::table::schema::{LOCAL_SCHEMA_DIR, announce_source};
use floe::table::{SchemaChain, SchemaPlan, SchemaSource, TableKind, TableLayout};
use floe::{report, telemetry};

use super::run::runtime;
use super::{SchemaTableArgs, open_existing};

#[derive(Args)]
pub(crate) struct SchemaCheckArgs {
    /// Folder of schema files (schemas/<table>/NNNN-slug.json): the checkout's by default, which
    /// this command validates (the others use the files built in unless given --schema-dir)
    #[arg(long, env = "FLOE_SCHEMA_DIR", default_value = LOCAL_SCHEMA_DIR)]
    schema_dir: PathBuf,
    /// Git revision (e.g. origin/main): every schema file it has must be unchanged here.
    #[arg(long)]
    since: Option<String>,
}

/// `floe schema check`: every file of both chains, and with `--since`, that
/// none of the revision's files changed.
pub(crate) fn check(args: SchemaCheckArgs) -> anyhow::Result<ExitCode> {
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

/// `floe schema diff` (`apply` false) and `floe schema apply`.
pub(crate) fn schema_tables(args: SchemaTableArgs, apply: bool) -> anyhow::Result<ExitCode> {
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
