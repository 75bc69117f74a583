//! The enum settings' names: each option table lists a setting's names with
//! their values, default first. [`choice`] reads a name, [`choice_name`]
//! gives the name of a value back (for `--check-config`).

use super::{CatalogKind, DedupMode, LogFormat, ProgressMode};

/// The names of the enum settings, default first: [`choice`] reads them, and
/// [`RunConfig::settings`](super::RunConfig::settings) names a value with
/// [`choice_name`].
pub(super) const CATALOGS: [(&str, CatalogKind); 2] =
    [("sql", CatalogKind::Sql), ("glue", CatalogKind::Glue)];
pub(super) const DEDUP_MODES: [(&str, DedupMode); 2] = [
    ("upsert", DedupMode::Upsert),
    ("keep-first", DedupMode::KeepFirst),
];
/// `type_mismatch`: whether a value that does not fit its column rejects the record.
pub(super) const TYPE_MISMATCH: [(&str, bool); 2] = [("payload", false), ("reject", true)];
pub(super) const PROGRESS_MODES: [(&str, ProgressMode); 3] = [
    ("auto", ProgressMode::Auto),
    ("always", ProgressMode::Always),
    ("never", ProgressMode::Never),
];
pub(super) const LOG_FORMATS: [(&str, LogFormat); 2] =
    [("text", LogFormat::Text), ("json", LogFormat::Json)];

/// The name of `value` in an option table of [`choice`].
pub(super) fn choice_name<T: PartialEq>(options: &[(&'static str, T)], value: &T) -> String {
    options
        .iter()
        .find(|(_, option)| option == value)
        .map_or("", |(name, _)| name)
        .to_string()
}

/// The option of a setting named by `value`; the first option when unset.
/// An unknown value is a problem naming the options, and counts as the first.
pub(super) fn choice<T: Copy>(
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
