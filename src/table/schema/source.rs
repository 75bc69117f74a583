//! Where schema files come from: the set built into the binary or a
//! `schemas/` folder. Reads a table's files in order, checks their numbering
//! and parses them into [`SchemaFile`]s; says which set a command uses, and
//! how a checkout's folder differs from the built-in set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use iceberg::spec::Schema;

use crate::contract::TableKind;
use crate::table::TableError;

/// The schema files compiled into the binary: `(table, file name, text)`,
/// every file under `schemas/` (listed by `build.rs`).
const EMBEDDED: &[(&str, &str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));

/// One parsed schema file.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// Where it came from, for messages: `schemas/events/0001-initial.json`.
    pub origin: String,
    /// Its file name: `0001-initial.json`.
    pub name: String,
    /// Its number (`0001` is 1).
    pub number: u32,
    /// XXH3-64 of its bytes, in hex: recorded in the table when applied, so
    /// an edit of an applied file is noticed.
    pub digest: String,
    /// The schema.
    pub schema: Schema,
}

/// Where schema files are read from.
#[derive(Debug, Clone, Default)]
pub enum SchemaSource {
    /// The files compiled into the binary.
    #[default]
    Embedded,
    /// A `schemas/` folder on disk.
    Dir(PathBuf),
}

impl SchemaSource {
    /// Every schema file of a table, in order, checked for numbering and parse
    /// errors; at least one.
    pub fn chain(&self, kind: TableKind) -> Result<Vec<SchemaFile>, TableError> {
        let folder = kind.schema_folder();
        let mut files: Vec<(String, String, String)> = match self {
            SchemaSource::Embedded => EMBEDDED
                .iter()
                .filter(|(table, _, _)| *table == folder)
                .map(|(_, name, text)| {
                    (
                        name.to_string(),
                        format!("schemas/{folder}/{name}"),
                        text.to_string(),
                    )
                })
                .collect(),
            SchemaSource::Dir(dir) => read_folder(&dir.join(folder))?,
        };
        files.sort();
        let mut chain = Vec::with_capacity(files.len());
        for (i, (name, origin, text)) in files.into_iter().enumerate() {
            let number = parse_file_name(&name).ok_or_else(|| TableError::Schema {
                origin: origin.clone(),
                message: "file name must look like NNNN-slug.json (four digits, a dash, a slug)"
                    .into(),
            })?;
            if number as usize != i + 1 {
                return Err(TableError::Schema {
                    origin,
                    message: format!("expected file number {:04}: the chain has a gap", i + 1),
                });
            }
            let schema: Schema = serde_json::from_str(&text).map_err(|e| TableError::Schema {
                origin: origin.clone(),
                message: format!("not an Iceberg schema: {e}"),
            })?;
            chain.push(SchemaFile {
                origin,
                number,
                digest: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes())),
                name,
                schema,
            });
        }
        if chain.is_empty() {
            return Err(TableError::Schema {
                origin: format!("schemas/{folder}/"),
                message: "no schema file".into(),
            });
        }
        Ok(chain)
    }
}

impl From<Option<PathBuf>> for SchemaSource {
    /// `--schema-dir` when given, else the built-in files.
    fn from(dir: Option<PathBuf>) -> Self {
        dir.map_or(SchemaSource::Embedded, SchemaSource::Dir)
    }
}

impl std::fmt::Display for SchemaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaSource::Embedded => f.write_str("the built-in schema files"),
            SchemaSource::Dir(dir) => write!(f, "the schema files in {}", dir.display()),
        }
    }
}

/// The schema folder of a checkout, relative to the current directory: what
/// `floe schema check` reads by default, and what the built-in chain is
/// compared with.
pub const LOCAL_SCHEMA_DIR: &str = "schemas";

/// Logs which schema files a command uses and, when they are the built-in
/// ones while `local` (a checkout's `schemas/`) holds different files, a
/// warning naming the difference: a forgotten `--schema-dir` would
/// otherwise leave the table on an older schema without a word. Every
/// command that reads schema files calls this.
pub fn announce_source(source: &SchemaSource, local: &Path) {
    match source {
        SchemaSource::Dir(dir) => {
            tracing::info!(schema_dir = %dir.display(), "using the schema files in a folder");
        }
        SchemaSource::Embedded => {
            tracing::info!("using the built-in schema files (--schema-dir reads a folder instead)");
            if let Some(difference) = built_in_difference(local) {
                tracing::warn!(schema_dir = %local.display(), "{difference}");
            }
        }
    }
}

/// How the schema files in folder `dir` differ from the built-in ones, for
/// both tables (file names, and contents of files of the same name), as one
/// sentence; `None` when `dir` does not exist or holds the same files.
pub fn built_in_difference(dir: &Path) -> Option<String> {
    if !dir.is_dir() {
        return None;
    }
    let digest = |text: &str| xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    let mut differences = Vec::new();
    for kind in [TableKind::Events, TableKind::Rejected] {
        let folder = kind.schema_folder();
        let here = dir.join(folder);
        let built_in: BTreeMap<String, u64> = EMBEDDED
            .iter()
            .filter(|(table, _, _)| *table == folder)
            .map(|(_, name, text)| (name.to_string(), digest(text)))
            .collect();
        let local: BTreeMap<String, u64> = if here.is_dir() {
            match read_folder(&here) {
                Ok(files) => files
                    .into_iter()
                    .map(|(name, _, text)| (name, digest(&text)))
                    .collect(),
                Err(e) => {
                    let cause = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    differences.push(format!("{e} cannot be read{cause}"));
                    continue;
                }
            }
        } else {
            BTreeMap::new()
        };
        let names = |from: &BTreeMap<String, u64>, missing_in: &BTreeMap<String, u64>| {
            from.keys()
                .filter(|n| !missing_in.contains_key(*n))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        let here = here.display();
        let extra = names(&local, &built_in);
        if !extra.is_empty() {
            differences.push(format!("{here} has {extra} that the built-in chain lacks"));
        }
        let lacking = names(&built_in, &local);
        if !lacking.is_empty() {
            differences.push(format!(
                "{here} lacks {lacking} that the built-in chain has"
            ));
        }
        let changed: Vec<&str> = local
            .iter()
            .filter(|(name, d)| built_in.get(*name).is_some_and(|b| b != *d))
            .map(|(name, _)| name.as_str())
            .collect();
        if !changed.is_empty() {
            differences.push(format!(
                "{here} has {} with contents other than the built-in file's",
                changed.join(", ")
            ));
        }
    }
    (!differences.is_empty()).then(|| {
        format!(
            "{}: this command uses the built-in schema files, not those in {dir}; pass \
             --schema-dir {dir} to use them",
            differences.join("; "),
            dir = dir.display()
        )
    })
}

fn read_folder(dir: &Path) -> Result<Vec<(String, String, String)>, TableError> {
    let io_err = |source| TableError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).map_err(|source| TableError::Io {
                path: path.clone(),
                source,
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, path.display().to_string(), text));
        }
    }
    Ok(out)
}

/// `0001-initial.json` -> 1.
fn parse_file_name(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".json")?;
    let (digits, slug) = stem.split_once('-')?;
    let valid_slug = !slug.is_empty()
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    (digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit()) && valid_slug)
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_numbered() {
        let cases = [
            ("0001-initial.json", Some(1)),
            ("0012-add-amount.json", Some(12)),
            ("1-initial.json", None),
            ("0001.json", None),
            ("0001-Initial.json", None),
            ("0001-initial.txt", None),
        ];
        for (name, want) in cases {
            assert_eq!(parse_file_name(name), want, "{name}");
        }
    }

    #[test]
    fn folder_chain_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        std::fs::create_dir(&events).unwrap();
        let good = include_str!("../../../schemas/events/0001-initial.json");
        std::fs::write(events.join("0001-initial.json"), good).unwrap();
        std::fs::write(events.join("0003-skip.json"), good).unwrap();
        let err = SchemaSource::Dir(dir.path().into())
            .chain(TableKind::Events)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0003-skip.json") && err.contains("gap"),
            "{err}"
        );

        std::fs::remove_file(events.join("0003-skip.json")).unwrap();
        std::fs::write(events.join("0002-broken.json"), "{\"type\":\"struct\"").unwrap();
        let err = SchemaSource::Dir(dir.path().into())
            .chain(TableKind::Events)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0002-broken.json") && err.contains("not an Iceberg schema"),
            "{err}"
        );
    }

    /// A copy of the built-in chain in a folder, as a checkout has it.
    fn built_in_copy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (table, name, text) in EMBEDDED {
            let folder = dir.path().join(table);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_folder_differing_from_the_built_in_chain_is_named() {
        let dir = built_in_copy();
        let root = dir.path();
        assert_eq!(built_in_difference(root), None, "an exact copy");
        assert_eq!(built_in_difference(&root.join("absent")), None);

        let events = root.join("events");
        let first = std::fs::read_to_string(events.join("0001-initial.json")).unwrap();
        std::fs::write(events.join("0002-x.json"), &first).unwrap();
        std::fs::write(events.join("0003-y.json"), &first).unwrap();
        std::fs::remove_file(root.join("events_rejected/0001-initial.json")).unwrap();
        let text = built_in_difference(root).unwrap();
        let want = [
            format!(
                "{}/events has 0002-x.json, 0003-y.json that the built-in chain lacks",
                root.display()
            ),
            format!(
                "{}/events_rejected lacks 0001-initial.json that the built-in chain has",
                root.display()
            ),
            format!("pass --schema-dir {} to use them", root.display()),
        ];
        for part in want {
            assert!(text.contains(&part), "{part:?} not in {text:?}");
        }
        assert!(!text.contains("contents other"), "{text}");

        std::fs::write(events.join("0001-initial.json"), format!("{first}\n")).unwrap();
        let text = built_in_difference(root).unwrap();
        assert!(
            text.contains("events has 0001-initial.json with contents other than the built-in"),
            "{text}"
        );
    }

    #[test]
    fn a_source_says_which_files_it_is() {
        assert_eq!(
            SchemaSource::from(None).to_string(),
            "the built-in schema files"
        );
        assert_eq!(
            SchemaSource::from(Some(PathBuf::from("x/schemas"))).to_string(),
            "the schema files in x/schemas"
        );
    }
}
