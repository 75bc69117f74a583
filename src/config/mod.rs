//! Configuration: the settings of `floe run` from flags, `FLOE_*`
//! environment variables and an optional TOML file, validated once into a
//! typed [`RunConfig`] before any I/O. Every problem is reported at once,
//! each naming the setting.
//!
//! Precedence, highest first: command-line flag, environment variable, TOML
//! file, default.
//!
//! Each setting is declared once, as a field of [`RunSettings`]: that field
//! is its flag, its variable, its TOML key and its `--help` text. The rest is
//! generic or typed:
//! - `settings`: [`RunSettings`] and its groups, [`Tuning`] (shared with
//!   `floe demo`) and [`AwsSettings`] (shared with every command that opens
//!   a warehouse); [`setting_args`] lists them as clap declares them.
//! - `layers`: [`RunSettings::with_file`], flags and variables laid over the
//!   TOML file without naming a setting, and the file's checks (unknown
//!   keys, wrong types).
//! - `validate`: [`RunSettings::validate`], into a [`RunConfig`], every
//!   problem at once.
//! - `choices`: the names of the enum settings and how a name is read.
//! - `units`: byte sizes and durations, and the checks `run` and `maintain`
//!   share.
//! - `env`: [`RunConfig::settings`] and [`RunConfig::env_values`], what
//!   `floe run --check-config` prints.
//!
//! This file holds the typed settings, their defaults and [`ConfigError`].

mod choices;
mod env;
mod layers;
mod settings;
mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use crate::catalog::TableName;
pub use crate::telemetry::{LogFormat, ProgressMode};
pub use settings::{AwsSettings, RunSettings, Tuning, setting_args};
pub use units::{check_zstd_level, parse_size, target_file_size_setting};

/// What a duplicate `event_uuid` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupMode {
    /// Last writer wins: a changed body replaces the live row (position
    /// delete plus insert); an identical body is skipped.
    Upsert,
    /// The first row stays: every duplicate is skipped.
    KeepFirst,
}

/// Where a shard without a checkpoint starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record kept.
    TrimHorizon,
    /// Records arriving from now on.
    Latest,
    /// Records arriving at or after this instant (Unix seconds).
    AtTimestamp(i64),
}

/// The Kinesis source's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisConfig {
    /// Stream name or ARN as given.
    pub stream: String,
    /// Checkpoints are kept per stream and consumer name.
    pub consumer_name: String,
    /// Start of a shard without a checkpoint.
    pub start_position: StartPosition,
    /// Stop when caught up (for backfills and tests) instead of running on.
    pub drain: bool,
    /// Shard leases shared with other tasks; `None`: this task reads every shard.
    pub leases: Option<LeaseConfig>,
}

/// How this task shares the stream's shards with others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The DynamoDB table of leases.
    pub table: String,
    /// This task's name there; `None`: a unique one is generated at start.
    pub worker_id: Option<String>,
    /// A lease whose counter stood still this long (on the observer's
    /// clock) may be taken by another task.
    pub duration: Duration,
}

/// Where the tables' files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warehouse {
    /// A local folder.
    Local(PathBuf),
    /// An S3 prefix, `s3://bucket/prefix` (no trailing slash).
    S3(String),
}

impl std::fmt::Display for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warehouse::Local(path) => write!(f, "{}", path.display()),
            Warehouse::S3(uri) => f.write_str(uri),
        }
    }
}

/// Which catalog points at the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    /// `catalog.db` (SQLite) in the warehouse folder.
    Sql,
    /// The AWS Glue data catalog of the account and region.
    Glue,
}

/// Where the tables are: catalog, warehouse, storage access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The catalog.
    pub catalog: CatalogKind,
    /// Catalog name inside `catalog.db` (SQLite only).
    pub catalog_name: String,
    /// The warehouse.
    pub warehouse: Warehouse,
    /// S3 access.
    pub s3: crate::aws::S3Settings,
}

/// Validated settings of `floe run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Input paths, globs, `-` (empty when reading Kinesis).
    pub inputs: Vec<String>,
    /// The Kinesis stream to read instead of inputs.
    pub kinesis: Option<KinesisConfig>,
    /// Catalog and warehouse.
    pub store: StoreConfig,
    /// Events table.
    pub table: TableName,
    /// Rejected-records table.
    pub rejected_table: TableName,
    /// Schema folder, `None` for the built-in files.
    pub schema_dir: Option<PathBuf>,
    /// Flush when the buffer holds this many bytes of memory.
    pub flush_size: NonZeroUsize,
    /// Flush when the oldest buffered record is this old.
    pub flush_interval: Duration,
    /// Data file size to aim for: a partition's rows of one flush are split
    /// into files of about this size.
    pub target_file_size: NonZeroUsize,
    /// Largest accepted record in bytes.
    pub max_record_size: NonZeroUsize,
    /// zstd level.
    pub zstd_level: i32,
    /// Duplicate handling.
    pub dedup_mode: DedupMode,
    /// Reject a record whose payload field does not fit its typed column
    /// (instead of keeping the value in `payload`).
    pub strict_types: bool,
    /// Reach of the key index in `created_datetime`, whole days.
    pub dedup_window: Duration,
    /// Memory budget of the key index: past it, its oldest days are dropped.
    pub index_memory: NonZeroUsize,
    /// Decoding threads.
    pub decode_threads: NonZeroUsize,
    /// Event types with counts of their own (summaries, metric labels).
    pub event_type_limit: NonZeroUsize,
    /// After a shutdown signal, the last commit must land within this.
    pub shutdown_deadline: Duration,
    /// How often the run expires old snapshots (`None`: never).
    pub expire_every: Option<Duration>,
    /// Snapshots older than this may be expired.
    pub expire_older_than: Duration,
    /// Progress display.
    pub progress: ProgressMode,
    /// Log format.
    pub log_format: LogFormat,
    /// Where to serve `/metrics`, `/health/live` and `/health/ready`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// CloudWatch namespace of the per-commit EMF lines on stdout.
    pub emf_namespace: Option<String>,
}

/// Defaults, in one place (README's option table repeats them).
pub mod defaults {
    /// Catalog name.
    pub const CATALOG_NAME: &str = "floe";
    /// Events table.
    pub const TABLE: &str = "analytics.events";
    /// Rejected table.
    pub const REJECTED_TABLE: &str = "analytics.events_rejected";
    /// Flush size.
    pub const FLUSH_SIZE: &str = "192MiB";
    /// Flush interval.
    pub const FLUSH_INTERVAL: &str = "60s";
    /// Reach of the key index.
    pub const DEDUP_WINDOW: &str = "7d";
    /// Memory budget of the key index (at least 14M keys at 76 bytes each).
    pub const INDEX_MEMORY: &str = "1GiB";
    /// Target data file size.
    pub const TARGET_FILE_SIZE: &str = "128MiB";
    /// Shutdown deadline: under the 120 s ECS waits before SIGKILL.
    pub const SHUTDOWN_DEADLINE: &str = "90s";
    /// How often `floe run` expires snapshots.
    pub const EXPIRE_EVERY: &str = "1h";
    /// Age past which a snapshot may be expired (`floe run` and `floe maintain`).
    pub const EXPIRE_OLDER_THAN: &str = "5d";
    /// The newest snapshots every expiry keeps, whatever their age.
    pub const KEEP_SNAPSHOTS: usize = 10;
    /// Name shard checkpoints are kept under.
    pub const CONSUMER_NAME: &str = "floe";
    /// Lease duration: a dead task's shards move after about this long.
    pub const LEASE_DURATION: &str = "10s";
    /// Record size limit.
    pub const MAX_RECORD_SIZE: &str = "1MiB";
    /// zstd level: on the benchmark data level 1 takes ~10% less CPU than 3
    /// and its files are no larger (pages are small; see docs/performance.md).
    pub const ZSTD_LEVEL: i32 = 1;
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", problems.join("\n  - "))]
pub struct ConfigError {
    /// One sentence per problem, each naming the setting.
    pub problems: Vec<String>,
}
