//! The `floe` command line: the clap definition of the command and its
//! subcommands, the argument groups several commands share, and one module
//! per command (`run` holds both `run` and `demo`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use floe::catalog::TableName;
use floe::config::{AwsSettings, CatalogKind, ConfigError, StoreConfig, Warehouse, defaults};
use floe::pipeline;
use floe::table::{SchemaSource, TableKind};

mod check_config;
pub(crate) mod generate;
pub(crate) mod health;
pub(crate) mod inspect;
pub(crate) mod maintain;
pub(crate) mod run;
pub(crate) mod schema;

use generate::GenerateArgs;
use health::HealthArgs;
use inspect::InspectArgs;
use maintain::MaintainArgs;
use run::{DemoArgs, RunArgs};
use schema::SchemaCheckArgs;

/// Streams JSON events into an Apache Iceberg table, exactly once.
#[derive(Parser)]
#[command(name = "floe", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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

#[derive(Subcommand)]
pub(crate) enum SchemaCommand {
    /// Check every schema file and every step of each chain (offline: no catalog, no storage).
    Check(SchemaCheckArgs),
    /// Show which schema file each table is at and what applying the newest would change.
    Diff(SchemaTableArgs),
    /// Apply the newest schema file to each table (what `floe run` does at startup).
    Apply(SchemaTableArgs),
}

#[derive(Args)]
pub(crate) struct SchemaTableArgs {
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

/// Where existing tables are: warehouse, catalog and S3 options.
#[derive(Args)]
struct StoreArgs {
    /// Warehouse: a folder (holds catalog.db) or s3://bucket/prefix
    #[arg(long, short, env = "FLOE_WAREHOUSE")]
    warehouse: PathBuf,
    #[command(flatten)]
    aws: AwsSettings,
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
            self.aws.s3(),
        );
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// The store of a warehouse that must already exist: a local folder without
/// `catalog.db` is an error here, not a new warehouse.
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Clap's own checks of the whole command line: the settings' groups
    /// flattened into several commands must not clash (two args of one id,
    /// one short flag twice).
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
