//! Validation: [`RunSettings::validate`] turns the settings as given into a
//! typed [`RunConfig`], or reports every problem at once, each naming its
//! setting. Sizes and durations are parsed here, not by clap (see
//! `config::settings` for why).
//! [`StoreConfig::new`] checks the warehouse and catalog pair (also used by
//! the commands that take no `RunConfig`).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::choices::{CATALOGS, DEDUP_MODES, LOG_FORMATS, PROGRESS_MODES, TYPE_MISMATCH, choice};
use super::settings::{RunSettings, Tuning};
use super::units::{check_zstd_level, duration_setting, size_setting, target_file_size_setting};
use super::{
    CatalogKind, ConfigError, KinesisConfig, LeaseConfig, RunConfig, StartPosition, StoreConfig,
    Warehouse, defaults,
};
use crate::catalog::TableName;

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

impl RunSettings {
    /// Checks every setting and returns the typed configuration, or all problems.
    pub fn validate(self) -> Result<RunConfig, ConfigError> {
        // Every field by name: a setting that is declared but not checked
        // here does not compile.
        let RunSettings {
            input,
            stream,
            consumer_name,
            start_position,
            drain,
            lease_table,
            worker_id,
            lease_duration,
            warehouse,
            aws,
            tuning:
                Tuning {
                    catalog_name,
                    table,
                    rejected_table,
                    schema_dir,
                    flush_size,
                    flush_interval,
                    target_file_size,
                    max_record_size,
                    zstd_level,
                    dedup_mode,
                    type_mismatch,
                    dedup_window,
                    index_memory,
                    decode_threads,
                    event_type_limit,
                    shutdown_deadline,
                    expire_every,
                    expire_older_than,
                    progress,
                    log_format,
                },
            metrics_addr,
            emf_namespace,
        } = self;
        let mut problems = Vec::new();
        let inputs = input.unwrap_or_default();
        let consumer_name_set = consumer_name.is_some();
        let lease_table_set = lease_table.is_some();
        let leases = lease_table.map(|table| {
            let valid_name = (3..=255).contains(&table.len())
                && table
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid_name {
                problems.push(format!(
                    "lease_table: `{table}` is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)"
                ));
            }
            if let Some(id) = &worker_id
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
                lease_duration.clone(),
                defaults::LEASE_DURATION,
                (Duration::from_secs(1), "1s"),
                "`10s`",
            );
            LeaseConfig {
                table,
                worker_id: worker_id.clone(),
                duration,
            }
        });
        if !lease_table_set {
            for (key, set) in [
                ("worker_id", worker_id.is_some()),
                ("lease_duration", lease_duration.is_some()),
            ] {
                if set {
                    problems.push(format!(
                        "{key}: only applies with a lease table (--lease-table)"
                    ));
                }
            }
        }
        if lease_table_set && drain == Some(true) {
            problems.push(
                "drain: cannot be combined with lease_table: each task would stop once its own shards are drained"
                    .into(),
            );
        }
        let kinesis = stream.map(|stream| {
            if stream.is_empty() {
                problems.push("stream: must not be empty".into());
            }
            let consumer_name = consumer_name.unwrap_or_else(|| defaults::CONSUMER_NAME.into());
            if consumer_name.is_empty() || consumer_name.contains([':', '/']) {
                problems.push(format!(
                    "consumer_name: `{consumer_name}` must be non-empty without `:` or `/`"
                ));
            }
            let start_position = start_position
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
                drain: drain.unwrap_or(false),
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
                ("start_position", start_position.is_some()),
                ("drain", drain.is_some()),
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
        // The object source parses the patterns themselves before anything
        // is opened (the configuration knows no source).
        let objects: Vec<&String> = inputs.iter().filter(|i| i.starts_with("s3://")).collect();
        if !objects.is_empty() && objects.len() < inputs.len() {
            problems.push(format!(
                "input: s3:// objects ({}) and local files or stdin cannot be read in one run: run them separately",
                objects[0]
            ));
        }
        let store = StoreConfig::new(
            &mut problems,
            warehouse,
            aws.catalog.as_deref(),
            catalog_name.unwrap_or_else(|| defaults::CATALOG_NAME.into()),
            aws.s3(),
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
        let table = table_name("table", table, defaults::TABLE);
        let rejected_table = table_name("rejected_table", rejected_table, defaults::REJECTED_TABLE);
        if table == rejected_table {
            problems.push(format!("rejected_table: must differ from table ({table})"));
        }
        let flush_size = size_setting(
            &mut problems,
            "flush_size",
            flush_size,
            defaults::FLUSH_SIZE,
            1,
        );
        let target_file_size = target_file_size_setting(&mut problems, target_file_size);
        let max_record_size = size_setting(
            &mut problems,
            "max_record_size",
            max_record_size,
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
            flush_interval,
            defaults::FLUSH_INTERVAL,
            (Duration::from_millis(100), "100ms"),
            "`60s`, `5m`",
        );
        let shutdown_deadline = duration_setting(
            &mut problems,
            "shutdown_deadline",
            shutdown_deadline,
            defaults::SHUTDOWN_DEADLINE,
            (Duration::from_secs(1), "1s"),
            "`90s`",
        );
        let expire_every = match expire_every.as_deref() {
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
            expire_older_than,
            defaults::EXPIRE_OLDER_THAN,
            (Duration::from_secs(1), "1s"),
            "`5d`",
        );
        let dedup_mode = choice(
            &mut problems,
            "dedup_mode",
            dedup_mode.as_deref(),
            &DEDUP_MODES,
        );
        let strict_types = choice(
            &mut problems,
            "type_mismatch",
            type_mismatch.as_deref(),
            &TYPE_MISMATCH,
        );
        let dedup_window = duration_setting(
            &mut problems,
            "dedup_window",
            dedup_window,
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
            index_memory,
            defaults::INDEX_MEMORY,
            1,
        );
        let zstd_level = zstd_level.unwrap_or(defaults::ZSTD_LEVEL);
        check_zstd_level(&mut problems, zstd_level);
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let decode_threads = match decode_threads {
            None => NonZeroUsize::new(cores).unwrap_or(NonZeroUsize::MIN),
            Some(n) => NonZeroUsize::new(n).unwrap_or_else(|| {
                problems.push("decode_threads: must be at least 1".into());
                NonZeroUsize::MIN
            }),
        };
        let event_type_limit = match event_type_limit {
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
            progress.as_deref(),
            &PROGRESS_MODES,
        );
        let log_format = choice(
            &mut problems,
            "log_format",
            log_format.as_deref(),
            &LOG_FORMATS,
        );
        let metrics_addr = metrics_addr.as_deref().and_then(|text| {
            text.parse()
                .map_err(|_| {
                    problems.push(format!(
                        "metrics_addr: `{text}` is not an IP address and port such as `0.0.0.0:9464`"
                    ))
                })
                .ok()
        });
        if let Some(namespace) = &emf_namespace
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
            schema_dir,
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
            emf_namespace,
        })
    }
}

/// Most event types `event_type_limit` may give counts of their own: each
/// adds a key per missing field to every snapshot summary.
const MAX_EVENT_TYPE_LIMIT: usize = 10_000;

/// `trim-horizon`, `latest`, `at-timestamp:<RFC 3339 or Unix seconds>`.
pub(super) fn parse_start_position(text: &str) -> Result<StartPosition, String> {
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
