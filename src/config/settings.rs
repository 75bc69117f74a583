//! [`RunSettings`]: every `floe run` setting, declared once. Each field is at
//! the same time a flag (its long name is the field's in kebab-case), a
//! `FLOE_*` variable (clap's `env`), a key of the TOML file (the field's name)
//! and a line of `floe run --check-config` (the variable and the validated
//! value, see `config::env`). Its doc comment is its `--help` text; the
//! default in that text is the one `validate` applies and README's settings
//! table repeats (`tests/test_docs.py` compares the two).
//!
//! Every field is optional: an unset value falls through to the layer below
//! (`config::layers`), and what is left unset gets its default in
//! `validate`. A switch (`--drain`) can only turn a setting on from the
//! command line: off there or in `FLOE_*` counts as not given.
//!
//! # Why sizes and durations are text here
//!
//! Sizes (`128MiB`) and durations (`60s`) are kept as the text given and
//! parsed in `validate`, not by clap value parsers. Clap parses flags and
//! `FLOE_*` variables as it reads them and stops at the first bad value, in
//! its own words; `floe run` reports every problem at once, each naming the
//! setting (`flush_size: ...`), wherever the value came from. Parsing after
//! the layers are merged also parses a value from the TOML file the same
//! way as one from a flag, and reads only the value that wins. The parsers
//! are in `config::units`, one per unit. Numbers (`zstd_level`) and
//! switches are typed here, as before: clap rejects `--zstd-level nine`.
//!
//! Groups are flattened (clap's `flatten` and serde's): [`Tuning`] is shared
//! with `floe demo`, [`AwsSettings`] with every command that opens a
//! warehouse. A new setting is one field here (in the group of the
//! commands that take it), its check in `validate`, its typed field in
//! `RunConfig`, its line in `RunConfig::settings`, and a row of README's
//! settings table.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Every `run` setting; each can also come from `FLOE_*` or the `--config` file.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Input files or globs, `-` for stdin, or objects `s3://bucket/prefix/**/*.json.gz` (not both); repeat the flag or separate with commas.
    #[arg(long, short, env = "FLOE_INPUT", value_delimiter = ',', num_args = 1..)]
    pub input: Option<Vec<String>>,
    /// Kinesis data stream to read (name or ARN) instead of input files
    #[arg(long, env = "FLOE_STREAM")]
    pub stream: Option<String>,
    /// Name the stream's shard checkpoints are kept under [default: floe]
    #[arg(long, env = "FLOE_CONSUMER_NAME")]
    pub consumer_name: Option<String>,
    /// Where a shard without a checkpoint starts: trim-horizon, latest, at-timestamp:<RFC 3339 or Unix seconds> [default: trim-horizon]
    #[arg(long, env = "FLOE_START_POSITION")]
    pub start_position: Option<String>,
    /// Stop once every shard is read to its tip and committed, instead of running on
    #[arg(long, env = "FLOE_DRAIN", action = clap::ArgAction::SetTrue)]
    pub drain: Option<bool>,
    /// DynamoDB table of shard leases: several tasks share the stream's shards [default: off, this task reads every shard]
    #[arg(long, env = "FLOE_LEASE_TABLE")]
    pub lease_table: Option<String>,
    /// This task's name in the lease table [default: generated, unique per start]
    #[arg(long, env = "FLOE_WORKER_ID")]
    pub worker_id: Option<String>,
    /// A lease not renewed for this long (on the reader's own clock) is taken by another task [default: 10s]
    #[arg(long, env = "FLOE_LEASE_DURATION")]
    pub lease_duration: Option<String>,
    /// Warehouse: a folder (holds catalog.db and the tables' files; created if absent) or s3://bucket/prefix
    #[arg(long, short, env = "FLOE_WAREHOUSE")]
    pub warehouse: Option<PathBuf>,
    /// Catalog and S3 access.
    #[command(flatten)]
    #[serde(flatten)]
    pub aws: AwsSettings,
    /// The settings `floe demo` takes too.
    #[command(flatten)]
    #[serde(flatten)]
    pub tuning: Tuning,
    /// Serve /metrics, /health/live and /health/ready on this address, e.g. 0.0.0.0:9464 [default: off]
    #[arg(long, env = "FLOE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Print one CloudWatch Embedded Metric Format line per commit to stdout, in this namespace [default: off]
    #[arg(long, env = "FLOE_EMF_NAMESPACE")]
    pub emf_namespace: Option<String>,
}

/// Where the catalog is and how S3 is reached: `run` and every command that
/// opens a warehouse (`inspect`, `maintain`, `schema diff` and `apply`).
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AwsSettings {
    /// Catalog: sql (catalog.db in the warehouse folder) or glue (AWS Glue) [default: sql]
    #[arg(long, env = "FLOE_CATALOG")]
    pub catalog: Option<String>,
    /// Endpoint of an S3-compatible store [default: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL]
    #[arg(long, env = "FLOE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Path-style S3 addressing (endpoint/bucket/key), for S3-compatible stores
    #[arg(long, env = "FLOE_S3_PATH_STYLE", action = clap::ArgAction::SetTrue)]
    pub s3_path_style: Option<bool>,
}

impl AwsSettings {
    /// The S3 access these settings give (path style off unless turned on).
    pub fn s3(&self) -> crate::aws::S3Settings {
        crate::aws::S3Settings {
            endpoint: self.s3_endpoint.clone(),
            path_style: self.s3_path_style.unwrap_or(false),
        }
    }
}

/// Settings shared by `run` and `demo`.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// Catalog name inside catalog.db [default: floe]
    #[arg(long, env = "FLOE_CATALOG_NAME")]
    pub catalog_name: Option<String>,
    /// Events table, namespace.table [default: analytics.events]
    #[arg(long, env = "FLOE_TABLE")]
    pub table: Option<String>,
    /// Rejected-records table [default: analytics.events_rejected]
    #[arg(long, env = "FLOE_REJECTED_TABLE")]
    pub rejected_table: Option<String>,
    /// Folder of schema files (schemas/<table>/NNNN-slug.json) [default: built in]
    #[arg(long, env = "FLOE_SCHEMA_DIR")]
    pub schema_dir: Option<PathBuf>,
    /// Flush (write files and commit) when the buffered rows hold this much memory; the next
    /// batch fills while one is written, into the memory it frees: the two hold at most this
    /// much together [default: 192MiB]
    #[arg(long, env = "FLOE_FLUSH_SIZE")]
    pub flush_size: Option<String>,
    /// Flush when the oldest buffered record is this old [default: 60s]
    #[arg(long, env = "FLOE_FLUSH_INTERVAL")]
    pub flush_interval: Option<String>,
    /// Data file size to aim for; bigger partitions are split into several files [default: 128MiB]
    #[arg(long, env = "FLOE_TARGET_FILE_SIZE")]
    pub target_file_size: Option<String>,
    /// Longest accepted record; longer ones are rejected as too_large [default: 1MiB]
    #[arg(long, env = "FLOE_MAX_RECORD_SIZE")]
    pub max_record_size: Option<String>,
    /// zstd level of data files, 1 to 22 [default: 1]
    #[arg(long, env = "FLOE_ZSTD_LEVEL")]
    pub zstd_level: Option<i32>,
    /// Duplicate event_uuid: upsert (last writer wins, position delete) or keep-first [default: upsert]
    #[arg(long, env = "FLOE_DEDUP_MODE")]
    pub dedup_mode: Option<String>,
    /// A payload value that does not fit its typed column: payload (keep it there, count it) or reject the record [default: payload]
    #[arg(long, env = "FLOE_TYPE_MISMATCH")]
    pub type_mismatch: Option<String>,
    /// How far back in created_datetime the key index reaches, whole days [default: 7d]
    #[arg(long, env = "FLOE_DEDUP_WINDOW")]
    pub dedup_window: Option<String>,
    /// Memory the key index may use; past it, its oldest days are dropped [default: 1GiB]
    #[arg(long, env = "FLOE_INDEX_MEMORY")]
    pub index_memory: Option<String>,
    /// Threads decoding records [default: number of cores]
    #[arg(long, env = "FLOE_DECODE_THREADS")]
    pub decode_threads: Option<usize>,
    /// Event types with counts of their own in snapshot summaries and metric labels; the rest are summed under _other [default: 100]
    #[arg(long, env = "FLOE_EVENT_TYPE_LIMIT")]
    pub event_type_limit: Option<usize>,
    /// After SIGTERM or SIGINT, exit within this: the last commit must land by then [default: 90s]
    #[arg(long, env = "FLOE_SHUTDOWN_DEADLINE")]
    pub shutdown_deadline: Option<String>,
    /// How often to expire snapshots older than --expire-older-than (keeping the newest 10) of both tables; off leaves it to floe maintain [default: 1h]
    #[arg(long, env = "FLOE_EXPIRE_EVERY")]
    pub expire_every: Option<String>,
    /// Snapshots older than this may be expired [default: 5d]
    #[arg(long, env = "FLOE_EXPIRE_OLDER_THAN")]
    pub expire_older_than: Option<String>,
    /// Live progress on stderr: auto (on a terminal), always, never [default: auto]
    #[arg(long, env = "FLOE_PROGRESS")]
    pub progress: Option<String>,
    /// Log format: text or json [default: text]; the level comes from FLOE_LOG
    #[arg(long, env = "FLOE_LOG_FORMAT")]
    pub log_format: Option<String>,
}

/// Every setting of [`RunSettings`] as clap declares it, in declaration
/// order: its id (the TOML key), flags and `FLOE_*` variable.
pub fn setting_args() -> Vec<clap::Arg> {
    use clap::Args as _;
    RunSettings::augment_args(clap::Command::new("run"))
        .get_arguments()
        .cloned()
        .collect()
}
