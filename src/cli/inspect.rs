//! `floe inspect`: describes one table of an existing warehouse.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use floe::catalog::TableName;
use floe::config::{ConfigError, LogFormat, defaults};
use floe::{report, telemetry};

use super::run::runtime;
use super::{StoreArgs, open_existing};

#[derive(Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Table to describe.
    #[arg(long, env = "FLOE_TABLE", default_value = defaults::TABLE)]
    table: String,
}

/// `floe inspect`: schema, partition spec, snapshots and files of the table.
pub(crate) fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
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
