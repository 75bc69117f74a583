//! [`RunConfig::env_values`]: the validated settings listed by their `FLOE_*`
//! variables, as `floe run --check-config` prints them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::choices::{
    CATALOGS, DEDUP_MODES, LOG_FORMATS, PROGRESS_MODES, TYPE_MISMATCH, choice_name,
};
use super::{RunConfig, StartPosition};

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
