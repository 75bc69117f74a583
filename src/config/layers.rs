//! [`RunSettings::with_file`]: the layers merged, generically. Highest first:
//! flag, `FLOE_*` variable, TOML file, default. Clap puts the first two into
//! one [`RunSettings`] (a flag beats its variable); this module lays that over
//! the file; `validate` fills in the defaults.
//!
//! No setting is named here. The given settings are serialized into a TOML
//! table, which leaves out the unset ones, and laid key by key over the file's
//! table; the merged table is read into [`RunSettings`] once. The file is
//! checked alone first, so that its problem is reported even where a flag
//! overrides the value, exactly as a flat struct with `deny_unknown_fields`
//! reports it: its first key (in the order serde reads a table) that is
//! unknown, with every known key, or whose value has the wrong type (read
//! from TOML text, as the file is: a TOML datetime is not a string). The
//! known keys are the ids of [`setting_args`], the same declaration.
//!
//! A path (`--warehouse`, `--schema-dir`) that is not UTF-8 cannot be
//! serialized, so it is a configuration error here; a TOML file cannot hold
//! one either, and an Iceberg location is text.

use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

use super::ConfigError;
use super::settings::{RunSettings, setting_args};

impl RunSettings {
    /// These settings (flags and `FLOE_*` variables) laid over those of a
    /// TOML `file`, if any. A switch that is off here counts as not given:
    /// the command line can only turn it on.
    pub fn with_file(self, file: Option<&Path>) -> Result<RunSettings, ConfigError> {
        let mut table = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        // Fails only on a path that is not UTF-8, which serde cannot write.
        let given = toml::Table::try_from(&self).map_err(|e| ConfigError {
            problems: vec![format!(
                "settings: {e} (a path given as a flag or FLOE_* variable must be UTF-8)"
            )],
        })?;
        for (key, value) in given {
            if value != toml::Value::Boolean(false) {
                table.insert(key, value);
            }
        }
        RunSettings::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError {
            problems: vec![format!("settings: {}", e.message())],
        })
    }
}

/// A TOML file's settings, checked (see the module docs).
fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let problem = |message: String| ConfigError {
        problems: vec![format!("config file {}: {message}", path.display())],
    };
    let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| problem(e.message().into()))?;
    check_keys(&table).map_err(|e| problem(e.message().into()))?;
    Ok(table)
}

/// The first key of `table` that is no setting, or whose value is not of
/// the setting's type.
fn check_keys(table: &toml::Table) -> Result<(), toml::de::Error> {
    let known = toml_keys();
    for (key, value) in table {
        if !known.contains(&key.as_str()) {
            return Err(serde::de::Error::unknown_field(key, known));
        }
        // Read back from text, as the file was: a `toml::Value` would give a
        // datetime to a string setting as text, the file's reader does not.
        let alone = toml::Table::from_iter([(key.clone(), value.clone())]);
        let alone = toml::to_string(&alone).map_err(serde::de::Error::custom)?;
        toml::from_str::<RunSettings>(&alone)?;
    }
    Ok(())
}

/// The TOML keys, in declaration order: the ids of [`setting_args`].
fn toml_keys() -> &'static [&'static str] {
    // serde's `unknown_field` takes `'static` names; clap's ids are owned by
    // its `Arg`s. The few names are leaked once, on first use.
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        setting_args()
            .iter()
            .map(|arg| &*String::leak(arg.get_id().to_string()))
            .collect()
    })
}
