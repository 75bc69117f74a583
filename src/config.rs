//! Configuration: raw settings from flags, `FLOE_*` environment variables and
//! an optional TOML file, validated once into a typed [`RunConfig`] before any
//! I/O. Every problem is reported at once, each naming the setting.
//!
//! Precedence, highest first: command-line flag, environment variable, TOML
//! file, default. Flags and environment variables are merged by the CLI parser
//! (see `src/cli/run.rs`); this module layers the file and the defaults under them.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::TableName;
pub use crate::telemetry::{LogFormat, ProgressMode};

/// Settings as given, before validation. Every field is optional so that the
/// layers can be merged; the TOML file uses the same names in snake_case.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRunConfig {
    /// Input paths, globs, `-` for stdin.
    pub input: Option<Vec<String>>,
    /// Kinesis data stream, name or ARN (instead of `input`).
    pub stream: Option<String>,
    /// Name this reader's shard checkpoints are kept under.
    pub consumer_name: Option<String>,
    /// Where a shard without a checkpoint starts: `trim-horizon`, `latest`,
    /// `at-timestamp:<RFC 3339 or Unix seconds>`.
    pub start_position: Option<String>,
    /// Stop once every shard is read to its tip and all of it is committed.
    pub drain: Option<bool>,
    /// DynamoDB table of shard leases, so that several tasks share the stream.
    pub lease_table: Option<String>,
    /// This task's name in the lease table (default: generated, unique).
    pub worker_id: Option<String>,
    /// A lease not renewed for this long may be taken, e.g. `10s`.
    pub lease_duration: Option<String>,
    /// Warehouse: a folder (holds `catalog.db` and the tables' files) or an
    /// `s3://bucket/prefix` URI.
    pub warehouse: Option<PathBuf>,
    /// `sql` (SQLite file in the warehouse folder) or `glue` (AWS Glue).
    pub catalog: Option<String>,
    /// Endpoint of an S3-compatible store.
    pub s3_endpoint: Option<String>,
    /// Path-style S3 addressing.
    pub s3_path_style: Option<bool>,
    /// Catalog name inside `catalog.db`.
    pub catalog_name: Option<String>,
    /// Events table, `namespace.table`.
    pub table: Option<String>,
    /// Rejected-records table, `namespace.table`.
    pub rejected_table: Option<String>,
    /// Folder with schema files (default: the files built into the binary).
    pub schema_dir: Option<PathBuf>,
    /// Buffered input size that triggers a flush, e.g. `128MiB`.
    pub flush_size: Option<String>,
    /// Age of the oldest buffered record that triggers a flush, e.g. `60s`.
    pub flush_interval: Option<String>,
    /// Data file size to aim for, e.g. `128MiB`.
    pub target_file_size: Option<String>,
    /// Largest accepted record, e.g. `1MiB`.
    pub max_record_size: Option<String>,
    /// zstd level for data files.
    pub zstd_level: Option<i32>,
    /// `upsert` or `keep-first`.
    pub dedup_mode: Option<String>,
    /// `payload` (keep a value that does not fit its typed column in
    /// `payload`) or `reject` (reject the record).
    pub type_mismatch: Option<String>,
    /// How far back (in `created_datetime`) the key index reaches, e.g. `7d`.
    pub dedup_window: Option<String>,
    /// Memory the key index may use, e.g. `1GiB`.
    pub index_memory: Option<String>,
    /// Threads decoding records (default: the number of cores).
    pub decode_threads: Option<usize>,
    /// Event types with counts of their own in snapshot summaries, the run
    /// summary and metric labels; the rest are summed under `_other`.
    pub event_type_limit: Option<usize>,
    /// Longest time from a shutdown signal to exit, e.g. `90s`.
    pub shutdown_deadline: Option<String>,
    /// How often the run expires old snapshots of both tables, e.g. `1h`;
    /// `off` leaves it to `floe maintain`.
    pub expire_every: Option<String>,
    /// Snapshots older than this may be expired, e.g. `5d`.
    pub expire_older_than: Option<String>,
    /// `auto`, `always` or `never`.
    pub progress: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// `host:port` of the operations port (`/metrics`, `/health/*`).
    pub metrics_addr: Option<String>,
    /// CloudWatch namespace for one Embedded Metric Format line per commit.
    pub emf_namespace: Option<String>,
}

impl RawRunConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("config file {}: {e}", path.display())],
        })?;
        toml::from_str(&text).map_err(|e| ConfigError {
            problems: vec![format!("config file {}: {}", path.display(), e.message())],
        })
    }

    /// Fills every unset field of `self` from `lower`.
    pub fn or(self, lower: RawRunConfig) -> RawRunConfig {
        RawRunConfig {
            input: self.input.or(lower.input),
            stream: self.stream.or(lower.stream),
            consumer_name: self.consumer_name.or(lower.consumer_name),
            start_position: self.start_position.or(lower.start_position),
            drain: self.drain.or(lower.drain),
            lease_table: self.lease_table.or(lower.lease_table),
            worker_id: self.worker_id.or(lower.worker_id),
            lease_duration: self.lease_duration.or(lower.lease_duration),
            warehouse: self.warehouse.or(lower.warehouse),
            catalog: self.catalog.or(lower.catalog),
            s3_endpoint: self.s3_endpoint.or(lower.s3_endpoint),
            s3_path_style: self.s3_path_style.or(lower.s3_path_style),
            catalog_name: self.catalog_name.or(lower.catalog_name),
            table: self.table.or(lower.table),
            rejected_table: self.rejected_table.or(lower.rejected_table),
            schema_dir: self.schema_dir.or(lower.schema_dir),
            flush_size: self.flush_size.or(lower.flush_size),
            flush_interval: self.flush_interval.or(lower.flush_interval),
            target_file_size: self.target_file_size.or(lower.target_file_size),
            max_record_size: self.max_record_size.or(lower.max_record_size),
            zstd_level: self.zstd_level.or(lower.zstd_level),
            dedup_mode: self.dedup_mode.or(lower.dedup_mode),
            type_mismatch: self.type_mismatch.or(lower.type_mismatch),
            dedup_window: self.dedup_window.or(lower.dedup_window),
            index_memory: self.index_memory.or(lower.index_memory),
            decode_threads: self.decode_threads.or(lower.decode_threads),
            event_type_limit: self.event_type_limit.or(lower.event_type_limit),
            shutdown_deadline: self.shutdown_deadline.or(lower.shutdown_deadline),
            expire_every: self.expire_every.or(lower.expire_every),
            expire_older_than: self.expire_older_than.or(lower.expire_older_than),
            progress: self.progress.or(lower.progress),
            log_format: self.log_format.or(lower.log_format),
            metrics_addr: self.metrics_addr.or(lower.metrics_addr),
            emf_namespace: self.emf_namespace.or(lower.emf_namespace),
        }
    }
}

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

impl StoreConfig {
    /// Checks a warehouse and catalog pair; `problems` gets what is wrong.
    pub fn new(
        problems: &mut Vec<String>,
        warehouse: Option<PathBuf>,
        catalog: Option<&str>,
        catalog_name: String,
        s3: crate::aws::S3Settings,
    ) -> StoreConfig {
        let warehouse = warehouse.unwrap_or_default();
        let text = warehouse.to_string_lossy();
        let warehouse = if text.is_empty() {
            problems.push(
                "warehouse: a folder or s3:// URI is required (--warehouse, FLOE_WAREHOUSE)".into(),
            );
            Warehouse::Local(warehouse)
        } else if let Some(rest) = text.strip_prefix("s3://") {
            if rest.is_empty() || rest.starts_with('/') {
                problems.push(format!(
                    "warehouse: `{text}` names no bucket (s3://bucket/prefix)"
                ));
            }
            Warehouse::S3(text.trim_end_matches('/').to_string())
        } else if text.contains("://") {
            problems.push(format!(
                "warehouse: `{text}`: only local folders and s3:// URIs are supported"
            ));
            Warehouse::Local(warehouse)
        } else {
            Warehouse::Local(warehouse)
        };
        let catalog = choice(problems, "catalog", catalog, &CATALOGS);
        if catalog == CatalogKind::Sql && matches!(warehouse, Warehouse::S3(_)) {
            problems.push(
                "warehouse: an s3:// warehouse needs the Glue catalog (--catalog glue); the SQLite catalog lives in a local warehouse folder"
                    .into(),
            );
        }
        if catalog_name.is_empty() {
            problems.push("catalog_name: must not be empty".into());
        }
        StoreConfig {
            catalog,
            catalog_name,
            warehouse,
            s3,
        }
    }
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
    /// Flush when this many input bytes are buffered.
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

impl RunConfig {
    /// Each setting's `FLOE_*` variable with its value as validated (sizes in
    /// bytes, durations in humantime form), empty when unset: what
    /// `floe run --check-config` prints. `FLOE_CONFIG` is not here: the file
    /// is read into the other settings.
    pub fn env_values(&self) -> BTreeMap<&'static str, String> {
        let kinesis = self.kinesis.as_ref();
        let start_position = kinesis.map(|k| match k.start_position {
            StartPosition::TrimHorizon => "trim-horizon".to_string(),
            StartPosition::Latest => "latest".to_string(),
            StartPosition::AtTimestamp(t) => format!("at-timestamp:{t}"),
        });
        let text = |d: Duration| humantime::format_duration(d).to_string();
        let leases = kinesis.and_then(|k| k.leases.as_ref());
        BTreeMap::from([
            ("FLOE_INPUT", self.inputs.join(",")),
            (
                "FLOE_STREAM",
                kinesis.map(|k| k.stream.clone()).unwrap_or_default(),
            ),
            (
                "FLOE_CONSUMER_NAME",
                kinesis.map(|k| k.consumer_name.clone()).unwrap_or_default(),
            ),
            ("FLOE_START_POSITION", start_position.unwrap_or_default()),
            (
                "FLOE_DRAIN",
                kinesis.map(|k| k.drain.to_string()).unwrap_or_default(),
            ),
            (
                "FLOE_LEASE_TABLE",
                leases.map(|l| l.table.clone()).unwrap_or_default(),
            ),
            (
                "FLOE_WORKER_ID",
                leases.and_then(|l| l.worker_id.clone()).unwrap_or_default(),
            ),
            (
                "FLOE_LEASE_DURATION",
                leases.map(|l| text(l.duration)).unwrap_or_default(),
            ),
            ("FLOE_WAREHOUSE", self.store.warehouse.to_string()),
            ("FLOE_CATALOG", choice_name(&CATALOGS, &self.store.catalog)),
            (
                "FLOE_S3_ENDPOINT",
                self.store.s3.endpoint.clone().unwrap_or_default(),
            ),
            ("FLOE_S3_PATH_STYLE", self.store.s3.path_style.to_string()),
            ("FLOE_CATALOG_NAME", self.store.catalog_name.clone()),
            ("FLOE_TABLE", self.table.to_string()),
            ("FLOE_REJECTED_TABLE", self.rejected_table.to_string()),
            (
                "FLOE_SCHEMA_DIR",
                self.schema_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
            ("FLOE_FLUSH_SIZE", self.flush_size.to_string()),
            ("FLOE_FLUSH_INTERVAL", text(self.flush_interval)),
            ("FLOE_TARGET_FILE_SIZE", self.target_file_size.to_string()),
            ("FLOE_MAX_RECORD_SIZE", self.max_record_size.to_string()),
            ("FLOE_ZSTD_LEVEL", self.zstd_level.to_string()),
            (
                "FLOE_DEDUP_MODE",
                choice_name(&DEDUP_MODES, &self.dedup_mode),
            ),
            (
                "FLOE_TYPE_MISMATCH",
                choice_name(&TYPE_MISMATCH, &self.strict_types),
            ),
            ("FLOE_DEDUP_WINDOW", text(self.dedup_window)),
            ("FLOE_INDEX_MEMORY", self.index_memory.to_string()),
            ("FLOE_DECODE_THREADS", self.decode_threads.to_string()),
            ("FLOE_EVENT_TYPE_LIMIT", self.event_type_limit.to_string()),
            ("FLOE_SHUTDOWN_DEADLINE", text(self.shutdown_deadline)),
            (
                "FLOE_EXPIRE_EVERY",
                self.expire_every.map_or_else(|| "off".to_string(), text),
            ),
            ("FLOE_EXPIRE_OLDER_THAN", text(self.expire_older_than)),
            (
                "FLOE_PROGRESS",
                choice_name(&PROGRESS_MODES, &self.progress),
            ),
            (
                "FLOE_LOG_FORMAT",
                choice_name(&LOG_FORMATS, &self.log_format),
            ),
            (
                "FLOE_METRICS_ADDR",
                self.metrics_addr.map(|a| a.to_string()).unwrap_or_default(),
            ),
            (
                "FLOE_EMF_NAMESPACE",
                self.emf_namespace.clone().unwrap_or_default(),
            ),
        ])
    }
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
    pub const FLUSH_SIZE: &str = "128MiB";
    /// Flush interval.
    pub const FLUSH_INTERVAL: &str = "60s";
    /// Reach of the key index.
    pub const DEDUP_WINDOW: &str = "7d";
    /// Memory budget of the key index (about 24M keys).
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

impl RawRunConfig {
    /// Checks every setting and returns the typed configuration, or all problems.
    pub fn validate(self) -> Result<RunConfig, ConfigError> {
        let mut problems = Vec::new();
        let inputs = self.input.unwrap_or_default();
        let consumer_name_set = self.consumer_name.is_some();
        let lease_table_set = self.lease_table.is_some();
        let leases = self.lease_table.map(|table| {
            let valid_name = (3..=255).contains(&table.len())
                && table
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid_name {
                problems.push(format!(
                    "lease_table: `{table}` is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)"
                ));
            }
            if let Some(id) = &self.worker_id
                && (id.is_empty()
                    || id.len() > 128
                    || id.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                problems.push(format!(
                    "worker_id: `{id}` must be 1 to 128 characters without spaces"
                ));
            }
            let duration = duration_setting(
                &mut problems,
                "lease_duration",
                self.lease_duration.clone(),
                defaults::LEASE_DURATION,
                (Duration::from_secs(1), "1s"),
                "`10s`",
            );
            LeaseConfig {
                table,
                worker_id: self.worker_id.clone(),
                duration,
            }
        });
        if !lease_table_set {
            for (key, set) in [
                ("worker_id", self.worker_id.is_some()),
                ("lease_duration", self.lease_duration.is_some()),
            ] {
                if set {
                    problems.push(format!(
                        "{key}: only applies with a lease table (--lease-table)"
                    ));
                }
            }
        }
        if lease_table_set && self.drain == Some(true) {
            problems.push(
                "drain: cannot be combined with lease_table: each task would stop once its own shards are drained"
                    .into(),
            );
        }
        let kinesis = self.stream.map(|stream| {
            if stream.is_empty() {
                problems.push("stream: must not be empty".into());
            }
            let consumer_name = self
                .consumer_name
                .unwrap_or_else(|| defaults::CONSUMER_NAME.into());
            if consumer_name.is_empty() || consumer_name.contains([':', '/']) {
                problems.push(format!(
                    "consumer_name: `{consumer_name}` must be non-empty without `:` or `/`"
                ));
            }
            let start_position = self
                .start_position
                .as_deref()
                .map_or(Ok(StartPosition::TrimHorizon), parse_start_position)
                .unwrap_or_else(|e| {
                    problems.push(format!("start_position: {e}"));
                    StartPosition::TrimHorizon
                });
            KinesisConfig {
                stream,
                consumer_name,
                start_position,
                drain: self.drain.unwrap_or(false),
                leases,
            }
        });
        match (inputs.is_empty(), &kinesis) {
            (true, None) => problems.push(
                "input: give input files (--input, FLOE_INPUT) or a Kinesis stream (--stream, FLOE_STREAM)"
                    .into(),
            ),
            (false, Some(_)) => problems.push(
                "stream: give either input files or a Kinesis stream, not both".into(),
            ),
            _ => {}
        }
        if kinesis.is_none() {
            for (key, set) in [
                ("consumer_name", consumer_name_set),
                ("start_position", self.start_position.is_some()),
                ("drain", self.drain.is_some()),
                ("lease_table", lease_table_set),
            ] {
                if set {
                    problems.push(format!(
                        "{key}: only applies to a Kinesis stream (--stream)"
                    ));
                }
            }
        }
        if inputs.iter().filter(|i| *i == "-").count() > 1 {
            problems.push("input: `-` (stdin) may be given once".into());
        }
        let store = StoreConfig::new(
            &mut problems,
            self.warehouse,
            self.catalog.as_deref(),
            self.catalog_name
                .unwrap_or_else(|| defaults::CATALOG_NAME.into()),
            crate::aws::S3Settings {
                endpoint: self.s3_endpoint,
                path_style: self.s3_path_style.unwrap_or(false),
            },
        );
        let mut table_name = |key: &str, value: Option<String>, default: &str| {
            TableName::parse(value.as_deref().unwrap_or(default)).unwrap_or_else(|e| {
                problems.push(format!("{key}: {e}"));
                TableName {
                    namespace: String::new(),
                    name: String::new(),
                }
            })
        };
        let table = table_name("table", self.table, defaults::TABLE);
        let rejected_table = table_name(
            "rejected_table",
            self.rejected_table,
            defaults::REJECTED_TABLE,
        );
        if table == rejected_table {
            problems.push(format!("rejected_table: must differ from table ({table})"));
        }
        let flush_size = size_setting(
            &mut problems,
            "flush_size",
            self.flush_size,
            defaults::FLUSH_SIZE,
            1,
        );
        let target_file_size = target_file_size_setting(&mut problems, self.target_file_size);
        let max_record_size = size_setting(
            &mut problems,
            "max_record_size",
            self.max_record_size,
            defaults::MAX_RECORD_SIZE,
            1,
        );
        if max_record_size.get() > 64 << 20 {
            problems.push(format!(
                "max_record_size: {} bytes is over the 64 MiB a record may have",
                max_record_size
            ));
        }
        let flush_interval = duration_setting(
            &mut problems,
            "flush_interval",
            self.flush_interval,
            defaults::FLUSH_INTERVAL,
            (Duration::from_millis(100), "100ms"),
            "`60s`, `5m`",
        );
        let shutdown_deadline = duration_setting(
            &mut problems,
            "shutdown_deadline",
            self.shutdown_deadline,
            defaults::SHUTDOWN_DEADLINE,
            (Duration::from_secs(1), "1s"),
            "`90s`",
        );
        let expire_every = match self.expire_every.as_deref() {
            Some("off") => None,
            value => Some(duration_setting(
                &mut problems,
                "expire_every",
                value.map(str::to_string),
                defaults::EXPIRE_EVERY,
                (Duration::from_secs(1), "1s"),
                "`1h`, or `off`",
            )),
        };
        let expire_older_than = duration_setting(
            &mut problems,
            "expire_older_than",
            self.expire_older_than,
            defaults::EXPIRE_OLDER_THAN,
            (Duration::from_secs(1), "1s"),
            "`5d`",
        );
        let dedup_mode = choice(
            &mut problems,
            "dedup_mode",
            self.dedup_mode.as_deref(),
            &DEDUP_MODES,
        );
        let strict_types = choice(
            &mut problems,
            "type_mismatch",
            self.type_mismatch.as_deref(),
            &TYPE_MISMATCH,
        );
        let dedup_window = duration_setting(
            &mut problems,
            "dedup_window",
            self.dedup_window,
            defaults::DEDUP_WINDOW,
            (
                Duration::from_secs(86_400),
                "1 day (the index keeps whole days)",
            ),
            "`7d`",
        );
        let index_memory = size_setting(
            &mut problems,
            "index_memory",
            self.index_memory,
            defaults::INDEX_MEMORY,
            1,
        );
        let zstd_level = self.zstd_level.unwrap_or(defaults::ZSTD_LEVEL);
        check_zstd_level(&mut problems, zstd_level);
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let decode_threads = match self.decode_threads {
            None => NonZeroUsize::new(cores).unwrap_or(NonZeroUsize::MIN),
            Some(n) => NonZeroUsize::new(n).unwrap_or_else(|| {
                problems.push("decode_threads: must be at least 1".into());
                NonZeroUsize::MIN
            }),
        };
        let event_type_limit = match self.event_type_limit {
            None => crate::table::summary::DEFAULT_EVENT_TYPE_LIMIT,
            Some(n) if (1..=MAX_EVENT_TYPE_LIMIT).contains(&n) => n,
            Some(n) => {
                problems.push(format!(
                    "event_type_limit: {n} is out of range: 1 to {MAX_EVENT_TYPE_LIMIT} event types (each adds keys to every snapshot summary)"
                ));
                crate::table::summary::DEFAULT_EVENT_TYPE_LIMIT
            }
        };
        let event_type_limit = NonZeroUsize::new(event_type_limit).unwrap_or(NonZeroUsize::MIN);
        let progress = choice(
            &mut problems,
            "progress",
            self.progress.as_deref(),
            &PROGRESS_MODES,
        );
        let log_format = choice(
            &mut problems,
            "log_format",
            self.log_format.as_deref(),
            &LOG_FORMATS,
        );
        let metrics_addr = self.metrics_addr.as_deref().and_then(|text| {
            text.parse()
                .map_err(|_| {
                    problems.push(format!(
                        "metrics_addr: `{text}` is not an IP address and port such as `0.0.0.0:9464`"
                    ))
                })
                .ok()
        });
        if let Some(namespace) = &self.emf_namespace
            && (namespace.is_empty()
                || namespace.len() > 255
                || namespace.starts_with(':')
                || !namespace
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/#:".contains(c)))
        {
            problems.push(format!(
                "emf_namespace: `{namespace}` is not a CloudWatch namespace (1 to 255 of A-Z a-z 0-9 . _ - / # :)"
            ));
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(RunConfig {
            inputs,
            kinesis,
            store,
            table,
            rejected_table,
            schema_dir: self.schema_dir,
            flush_size,
            flush_interval,
            target_file_size,
            max_record_size,
            zstd_level,
            dedup_mode,
            strict_types,
            dedup_window,
            index_memory,
            decode_threads,
            event_type_limit,
            shutdown_deadline,
            expire_every,
            expire_older_than,
            progress,
            log_format,
            metrics_addr,
            emf_namespace: self.emf_namespace,
        })
    }
}

/// The option of a setting named by `value`; the first option when unset.
/// An unknown value is a problem naming the options, and counts as the first.
/// The names of the enum settings, default first: [`choice`] reads them, and
/// [`RunConfig::env_values`] names a value with [`choice_name`].
/// Most event types `event_type_limit` may give counts of their own: each
/// adds a key per missing field to every snapshot summary.
const MAX_EVENT_TYPE_LIMIT: usize = 10_000;
const CATALOGS: [(&str, CatalogKind); 2] = [("sql", CatalogKind::Sql), ("glue", CatalogKind::Glue)];
const DEDUP_MODES: [(&str, DedupMode); 2] = [
    ("upsert", DedupMode::Upsert),
    ("keep-first", DedupMode::KeepFirst),
];
/// `type_mismatch`: whether a value that does not fit its column rejects the record.
const TYPE_MISMATCH: [(&str, bool); 2] = [("payload", false), ("reject", true)];
const PROGRESS_MODES: [(&str, ProgressMode); 3] = [
    ("auto", ProgressMode::Auto),
    ("always", ProgressMode::Always),
    ("never", ProgressMode::Never),
];
const LOG_FORMATS: [(&str, LogFormat); 2] = [("text", LogFormat::Text), ("json", LogFormat::Json)];

/// The name of `value` in an option table of [`choice`].
fn choice_name<T: PartialEq>(options: &[(&'static str, T)], value: &T) -> String {
    options
        .iter()
        .find(|(_, option)| option == value)
        .map_or("", |(name, _)| name)
        .to_string()
}

fn choice<T: Copy>(
    problems: &mut Vec<String>,
    name: &str,
    value: Option<&str>,
    options: &[(&str, T)],
) -> T {
    let default = options[0].1;
    let Some(value) = value else {
        return default;
    };
    match options.iter().find(|(text, _)| *text == value) {
        Some((_, option)) => *option,
        None => {
            let names: Vec<&str> = options.iter().map(|(text, _)| *text).collect();
            problems.push(format!(
                "{name}: `{value}` is not one of {}",
                names.join(", ")
            ));
            default
        }
    }
}

/// `trim-horizon`, `latest`, `at-timestamp:<RFC 3339 or Unix seconds>`.
fn parse_start_position(text: &str) -> Result<StartPosition, String> {
    match text {
        "trim-horizon" => return Ok(StartPosition::TrimHorizon),
        "latest" => return Ok(StartPosition::Latest),
        _ => {}
    }
    let Some(when) = text.strip_prefix("at-timestamp:") else {
        return Err(format!(
            "`{text}` is not one of trim-horizon, latest, at-timestamp:<time>"
        ));
    };
    if let Ok(seconds) = when.parse::<i64>() {
        return Ok(StartPosition::AtTimestamp(seconds));
    }
    chrono::DateTime::parse_from_rfc3339(when)
        .map(|t| StartPosition::AtTimestamp(t.timestamp()))
        .map_err(|e| {
            format!("`{when}` is neither Unix seconds nor an RFC 3339 time like 2026-11-01T00:00:00Z ({e})")
        })
}

/// The data file size to aim for (`run` and `maintain`): at least 1 KiB.
pub fn target_file_size_setting(problems: &mut Vec<String>, value: Option<String>) -> NonZeroUsize {
    size_setting(
        problems,
        "target_file_size",
        value,
        defaults::TARGET_FILE_SIZE,
        1024,
    )
}

/// Checks a zstd level (`run` and `maintain`): 1 to 22.
pub fn check_zstd_level(problems: &mut Vec<String>, level: i32) {
    if !(1..=22).contains(&level) {
        problems.push(format!("zstd_level: {level} is not between 1 and 22"));
    }
}

fn size_setting(
    problems: &mut Vec<String>,
    key: &str,
    value: Option<String>,
    default: &str,
    min: usize,
) -> NonZeroUsize {
    let text = value.as_deref().unwrap_or(default);
    match parse_size(text) {
        Ok(n) if n >= min => NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN),
        Ok(_) => {
            problems.push(format!("{key}: must be at least {min} byte(s)"));
            NonZeroUsize::MIN
        }
        Err(e) => {
            problems.push(format!("{key}: {e}"));
            NonZeroUsize::MIN
        }
    }
}

fn duration_setting(
    problems: &mut Vec<String>,
    key: &str,
    value: Option<String>,
    default: &str,
    (min, min_text): (Duration, &str),
    example: &str,
) -> Duration {
    match humantime::parse_duration(value.as_deref().unwrap_or(default)) {
        Ok(d) if d >= min => d,
        Ok(_) => {
            problems.push(format!("{key}: must be at least {min_text}"));
            min
        }
        Err(e) => {
            problems.push(format!("{key}: {e} (write e.g. {example})"));
            min
        }
    }
}

/// Parses a byte size: `4096`, `64KiB`, `128MiB`, `1GiB`, `10MB`, `1.5GiB`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit_bytes: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (write e.g. `128MiB`)"))?;
    let bytes = value * unit_bytes;
    if bytes > (1u64 << 48) as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RawRunConfig {
        RawRunConfig {
            input: Some(vec!["a.jsonl".into()]),
            warehouse: Some("wh".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_a_minimal_config() {
        let c = base().validate().unwrap();
        assert_eq!(c.table.to_string(), "analytics.events");
        assert_eq!(c.rejected_table.to_string(), "analytics.events_rejected");
        assert_eq!(c.flush_size.get(), 128 << 20);
        assert_eq!(c.max_record_size.get(), 1 << 20);
        assert_eq!(c.flush_interval, Duration::from_secs(60));
        assert_eq!(c.zstd_level, 1);
        assert_eq!(c.store.catalog_name, "floe");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let raw = RawRunConfig {
            table: Some("events".into()),
            flush_size: Some("12 parsecs".into()),
            flush_interval: Some("soon".into()),
            zstd_level: Some(40),
            progress: Some("loud".into()),
            decode_threads: Some(0),
            ..Default::default()
        };
        let e = raw.validate().unwrap_err();
        let text = e.to_string();
        for part in [
            "input: give input files (--input, FLOE_INPUT) or a Kinesis stream",
            "warehouse: a folder or s3:// URI is required",
            "table: table name `events`",
            "flush_size: `12 parsecs`: unknown unit",
            "flush_interval:",
            "zstd_level: 40",
            "progress: `loud`",
            "decode_threads: must be at least 1",
        ] {
            assert!(text.contains(part), "missing {part:?} in:\n{text}");
        }
        assert_eq!(e.problems.len(), 8, "{text}");
    }

    #[test]
    fn kinesis_settings_are_checked() {
        let raw = RawRunConfig {
            stream: Some("arn:aws:kinesis:us-east-1:123456789012:stream/clicks".into()),
            warehouse: Some("w".into()),
            start_position: Some("at-timestamp:2026-11-01T00:00:00Z".into()),
            drain: Some(true),
            ..Default::default()
        };
        let k = raw.validate().unwrap().kinesis.unwrap();
        assert_eq!(k.consumer_name, "floe");
        assert_eq!(k.start_position, StartPosition::AtTimestamp(1_793_491_200));
        assert!(k.drain);
        for (position, want) in [
            ("latest", Ok(StartPosition::Latest)),
            ("trim-horizon", Ok(StartPosition::TrimHorizon)),
            (
                "at-timestamp:1700000000",
                Ok(StartPosition::AtTimestamp(1_700_000_000)),
            ),
        ] {
            assert_eq!(parse_start_position(position), want);
        }
        let e = parse_start_position("at-timestamp:yesterday").unwrap_err();
        assert!(
            e.contains("neither Unix seconds nor an RFC 3339 time"),
            "{e}"
        );

        let raw = RawRunConfig {
            input: Some(vec!["x.jsonl".into()]),
            warehouse: Some("w".into()),
            consumer_name: Some("a:b".into()),
            drain: Some(true),
            ..Default::default()
        };
        let text = raw.validate().unwrap_err().to_string();
        assert!(
            text.contains("consumer_name: only applies to a Kinesis stream"),
            "{text}"
        );
        assert!(
            text.contains("drain: only applies to a Kinesis stream"),
            "{text}"
        );
    }

    #[test]
    fn lease_settings_are_checked() {
        let shared = |lease_table: &str, extra: RawRunConfig| RawRunConfig {
            stream: Some("clicks".into()),
            warehouse: Some("w".into()),
            lease_table: Some(lease_table.into()),
            ..extra
        };
        let c = shared("floe-leases", RawRunConfig::default())
            .validate()
            .unwrap();
        let leases = c.kinesis.unwrap().leases.unwrap();
        assert_eq!(leases.table, "floe-leases");
        assert_eq!(leases.worker_id, None, "generated at start, not here");
        assert_eq!(leases.duration, Duration::from_secs(10));

        let raw = shared(
            "no",
            RawRunConfig {
                worker_id: Some("a b".into()),
                lease_duration: Some("500ms".into()),
                drain: Some(true),
                ..Default::default()
            },
        );
        let text = raw.validate().unwrap_err().to_string();
        for part in [
            "lease_table: `no` is not a DynamoDB table name",
            "worker_id: `a b` must be 1 to 128 characters without spaces",
            "lease_duration: must be at least 1s",
            "drain: cannot be combined with lease_table",
        ] {
            assert!(text.contains(part), "missing {part:?} in:\n{text}");
        }

        let raw = RawRunConfig {
            input: Some(vec!["x.jsonl".into()]),
            warehouse: Some("w".into()),
            lease_table: Some("floe-leases".into()),
            worker_id: Some("w1".into()),
            ..Default::default()
        };
        let text = raw.validate().unwrap_err().to_string();
        assert!(
            text.contains("lease_table: only applies to a Kinesis stream"),
            "{text}"
        );
        let raw = RawRunConfig {
            lease_table: None,
            worker_id: Some("w1".into()),
            ..shared("floe-leases", RawRunConfig::default())
        };
        let text = raw.validate().unwrap_err().to_string();
        assert!(
            text.contains("worker_id: only applies with a lease table"),
            "{text}"
        );
    }

    #[test]
    fn layers_merge_with_flags_first() {
        let flags = RawRunConfig {
            zstd_level: Some(5),
            ..Default::default()
        };
        let file: RawRunConfig = toml::from_str(
            "input = [\"x.jsonl\"]\nwarehouse = \"w\"\nzstd_level = 9\nflush_size = \"1MiB\"\n",
        )
        .unwrap();
        let c = flags.or(file).validate().unwrap();
        assert_eq!(c.zstd_level, 5);
        assert_eq!(c.flush_size.get(), 1 << 20);
        assert_eq!(c.inputs, ["x.jsonl"]);
        let err = toml::from_str::<RawRunConfig>("flush_sise = \"1MiB\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `flush_sise`"),
            "{err}"
        );
    }

    #[test]
    fn sizes_parse() {
        let cases = [
            ("4096", Ok(4096)),
            ("64KiB", Ok(65536)),
            ("128MiB", Ok(128 << 20)),
            ("1.5GiB", Ok(3 << 29)),
            ("10MB", Ok(10_000_000)),
            ("2 mib", Ok(2 << 20)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), want, "{text}");
        }
        assert!(parse_size("MiB").is_err());
        assert!(
            parse_size("5 furlongs")
                .unwrap_err()
                .contains("unknown unit")
        );
    }
}
