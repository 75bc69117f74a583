//! [`RawRunConfig`]: the settings as given (flags, `FLOE_*` variables, a TOML
//! file), every one optional, and how the layers are merged: a higher layer's
//! value wins, an unset one falls through to the layer below.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

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
