//! `floe run --check-config`: the settings as `FLOE_NAME=value` lines, or
//! every problem, a `FLOE_*` variable that no command reads among them (with
//! the nearest real name, found by edit distance).

use floe::config::{ConfigError, RunSettings};

use super::Cli;

/// Variables named `FLOE_*` that are read but are no command's flags.
const OTHER_FLOE_VARIABLES: [&str; 2] = ["FLOE_LOG", "FLOE_FAILPOINT"];

/// The `FLOE_*` variables of `floe run`'s settings, from its flags.
fn run_setting_variables() -> Vec<String> {
    flag_variables(Some("run"))
}

/// The `FLOE_*` variables of one subcommand's flags, or of every
/// subcommand's (`None`).
fn flag_variables(subcommand: Option<&str>) -> Vec<String> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let mut out: Vec<String> = cli
        .get_subcommands()
        .filter(|c| subcommand.is_none_or(|name| c.get_name() == name))
        .flat_map(|c| c.get_subcommands().chain([c]).collect::<Vec<_>>())
        .flat_map(|c| c.get_arguments())
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `floe run --check-config`: every setting as `FLOE_NAME=value`, or all
/// the problems, any `FLOE_*` variable that no command reads among them (a
/// variable of another command, say `floe maintain`'s, is not a typo).
pub(super) fn checked_settings(settings: RunSettings) -> Result<String, ConfigError> {
    let known = run_setting_variables();
    let any_command = flag_variables(None);
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("FLOE_"))
        .filter(|name| {
            !any_command.contains(name) && !OTHER_FLOE_VARIABLES.contains(&name.as_str())
        })
        .collect();
    unknown.sort();
    let mut problems: Vec<String> = unknown
        .iter()
        .map(|name| {
            let near = known
                .iter()
                .map(|k| (edit_distance(name, k), k))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, k)| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            format!("{name} is not a Floe setting{near}")
        })
        .collect();
    let config = settings.validate();
    let config = match config {
        Ok(config) if problems.is_empty() => config,
        Ok(_) => return Err(ConfigError { problems }),
        Err(e) => {
            problems.extend(e.problems);
            return Err(ConfigError { problems });
        }
    };
    Ok(config
        .env_values()?
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect())
}

/// Levenshtein distance: single-character insertions, deletions and
/// substitutions from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_character_edits() {
        for (a, b, d) in [
            ("FLOE_FLUSH_SIZE", "FLOE_FLUSH_SIZE", 0),
            ("FLOE_FLUSH_SIZ", "FLOE_FLUSH_SIZE", 1),
            ("FLOE_WAREHOSE", "FLOE_WAREHOUSE", 1),
            ("FLOE_TABEL", "FLOE_TABLE", 2),
            ("", "abc", 3),
            ("kitten", "sitting", 3),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} -> {b}");
            assert_eq!(edit_distance(b, a), d, "{b} -> {a}");
        }
    }

    #[test]
    fn check_config_prints_every_run_setting_and_nothing_else() {
        let config = RunSettings {
            input: Some(vec!["events.jsonl".into()]),
            warehouse: Some("w".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let mut printed: Vec<String> = config.env_values().unwrap().into_keys().collect();
        printed.sort();
        let mut flags = run_setting_variables();
        flags.retain(|n| n != "FLOE_CONFIG");
        flags.sort();
        assert_eq!(printed, flags);
    }
}
