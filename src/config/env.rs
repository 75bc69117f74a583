//! What `floe run --check-config` prints: [`RunConfig::settings`] gives the
//! validated settings back as [`RunSettings`] (sizes in bytes, durations in
//! humantime form, choices by name), and [`RunConfig::env_values`] lists
//! them by the `FLOE_*` variables that [`setting_args`] declares.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::choices::{
    CATALOGS, DEDUP_MODES, LOG_FORMATS, PROGRESS_MODES, TYPE_MISMATCH, choice_name,
};
use super::settings::{AwsSettings, RunSettings, Tuning, setting_args};
use super::{ConfigError, RunConfig, StartPosition};

impl RunConfig {
    /// The validated settings in the form a user writes them, every default
    /// filled in; a Kinesis setting is unset when reading files. Validating
    /// them again gives this configuration back.
    pub fn settings(&self) -> RunSettings {
        let kinesis = self.kinesis.as_ref();
        let leases = kinesis.and_then(|k| k.leases.as_ref());
        let text = |d: Duration| humantime::format_duration(d).to_string();
        // Through text, as printed: a path that is not UTF-8 is shown lossily.
        let path = |p: &dyn std::fmt::Display| PathBuf::from(p.to_string());
        RunSettings {
            input: (!self.inputs.is_empty()).then(|| self.inputs.clone()),
            stream: kinesis.map(|k| k.stream.clone()),
            consumer_name: kinesis.map(|k| k.consumer_name.clone()),
            start_position: kinesis.map(|k| match k.start_position {
                StartPosition::TrimHorizon => "trim-horizon".to_string(),
                StartPosition::Latest => "latest".to_string(),
                StartPosition::AtTimestamp(t) => format!("at-timestamp:{t}"),
            }),
            drain: kinesis.map(|k| k.drain),
            lease_table: leases.map(|l| l.table.clone()),
            worker_id: leases.and_then(|l| l.worker_id.clone()),
            lease_duration: leases.map(|l| text(l.duration)),
            warehouse: Some(path(&self.store.warehouse)),
            aws: AwsSettings {
                catalog: Some(choice_name(&CATALOGS, &self.store.catalog)),
                s3_endpoint: self.store.s3.endpoint.clone(),
                s3_path_style: Some(self.store.s3.path_style),
            },
            tuning: Tuning {
                catalog_name: Some(self.store.catalog_name.clone()),
                table: Some(self.table.to_string()),
                rejected_table: Some(self.rejected_table.to_string()),
                schema_dir: self.schema_dir.as_ref().map(|d| path(&d.display())),
                flush_size: Some(self.flush_size.to_string()),
                flush_interval: Some(text(self.flush_interval)),
                target_file_size: Some(self.target_file_size.to_string()),
                max_record_size: Some(self.max_record_size.to_string()),
                zstd_level: Some(self.zstd_level),
                dedup_mode: Some(choice_name(&DEDUP_MODES, &self.dedup_mode)),
                type_mismatch: Some(choice_name(&TYPE_MISMATCH, &self.strict_types)),
                dedup_window: Some(text(self.dedup_window)),
                index_memory: Some(self.index_memory.to_string()),
                decode_threads: Some(self.decode_threads.get()),
                event_type_limit: Some(self.event_type_limit.get()),
                shutdown_deadline: Some(text(self.shutdown_deadline)),
                expire_every: Some(self.expire_every.map_or_else(|| "off".to_string(), text)),
                expire_older_than: Some(text(self.expire_older_than)),
                progress: Some(choice_name(&PROGRESS_MODES, &self.progress)),
                log_format: Some(choice_name(&LOG_FORMATS, &self.log_format)),
            },
            metrics_addr: self.metrics_addr.map(|a| a.to_string()),
            emf_namespace: self.emf_namespace.clone(),
        }
    }

    /// Each setting's `FLOE_*` variable with its value as validated, empty
    /// when unset (a list is comma-separated, as `FLOE_INPUT` takes it):
    /// what `floe run --check-config` prints. `FLOE_CONFIG` is not here: the
    /// file is read into the other settings.
    pub fn env_values(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        let values = toml::Table::try_from(self.settings()).map_err(|e| ConfigError {
            problems: vec![format!("settings: {e}")],
        })?;
        Ok(setting_args()
            .iter()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_string_lossy().into_owned();
                let value = values.get(arg.get_id().as_str()).map(text);
                Some((env, value.unwrap_or_default()))
            })
            .collect())
    }
}

/// A value as a `FLOE_*` variable holds it.
fn text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
