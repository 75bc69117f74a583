//! Schema files and table layouts.
//!
//! `schemas/<table>/NNNN-<slug>.json` holds one Iceberg schema per file, as the
//! spec serializes it, with explicit field ids. The files ship inside the binary
//! (so `floe` runs from anywhere) and can be read from a folder instead. The
//! newest file of a chain is the table's schema; a layout adds what the schema
//! files do not say: partition spec, sort order and Parquet column settings.
//!
//! Which files a command uses is easy to get wrong (the built-in ones unless
//! `--schema-dir` is given, while a checkout has its own `schemas/`), so every
//! command says which through [`announce_source`], and warns when the
//! built-in chain differs from the checkout's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iceberg::spec::{
    NullOrder, Schema, SchemaRef, SortDirection, SortField, SortOrder, Transform, Type,
    UnboundPartitionSpec,
};

use super::TableError;
use super::evolution::{self, SchemaChange, StepRules};
use crate::contract::{TableKind, core_column, core_columns};

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

/// Every schema file of a table, each step checked.
#[derive(Debug, Clone)]
pub struct SchemaChain {
    /// Which table.
    pub kind: TableKind,
    /// The files in order; at least one.
    pub files: Vec<SchemaFile>,
    /// What each step changes: `steps[i]` goes from `files[i]` to `files[i + 1]`.
    pub steps: Vec<Vec<SchemaChange>>,
}

/// The table property listing the schema files applied to a table with
/// their digests: `0001-initial.json=<hex>,0002-add-amount.json=<hex>`.
pub const SCHEMA_FILES_PROPERTY: &str = "floe.schema-files";

impl SchemaChain {
    /// Reads and checks the chain of `kind` from `source`: every file parses,
    /// the first defines the columns Floe fills, every file can be written,
    /// and every step follows the evolution rules.
    pub fn load(kind: TableKind, source: &SchemaSource) -> Result<Self, TableError> {
        let files = source.chain(kind)?;
        Self::check(kind, files)
    }

    /// Checks parsed files (see [`SchemaChain::load`]).
    pub fn check(kind: TableKind, files: Vec<SchemaFile>) -> Result<Self, TableError> {
        let fail = |file: &SchemaFile, problems: Vec<String>| TableError::Schema {
            origin: file.origin.clone(),
            message: problems.join("; "),
        };
        let first = files.first().ok_or_else(|| TableError::Schema {
            origin: format!("schemas/{}/", kind.schema_folder()),
            message: "no schema file".into(),
        })?;
        let problems = first_file_problems(kind, &first.schema);
        if !problems.is_empty() {
            return Err(fail(first, problems));
        }
        let mut steps = Vec::with_capacity(files.len().saturating_sub(1));
        let mut highest = 0;
        for (i, file) in files.iter().enumerate() {
            let problems = unfillable_columns(kind, &file.schema);
            if !problems.is_empty() {
                return Err(fail(file, problems));
            }
            if i > 0 {
                let rules = StepRules {
                    kind,
                    highest_id_before: highest,
                };
                let changes = evolution::check_step(&files[i - 1].schema, &file.schema, &rules)
                    .map_err(|p| fail(file, p))?;
                steps.push(changes);
            }
            TableLayout::parts(kind, &file.schema, &file.origin)?;
            highest = highest.max(file.schema.highest_field_id());
        }
        Ok(Self { kind, files, steps })
    }

    /// The newest file: the schema the table should have.
    pub fn newest(&self) -> &SchemaFile {
        // `check` refuses an empty chain.
        &self.files[self.files.len() - 1]
    }

    /// The newest file whose schema is `schema` (fields, ids, docs and
    /// identifier fields; the schema id does not count).
    pub fn position_of(&self, schema: &Schema) -> Option<usize> {
        self.files.iter().rposition(|f| {
            f.schema.as_struct() == schema.as_struct()
                && f.schema
                    .identifier_field_ids()
                    .eq(schema.identifier_field_ids())
        })
    }

    /// The [`SCHEMA_FILES_PROPERTY`] value once files `0..=last` are applied.
    pub fn applied_property(&self, last: usize) -> String {
        self.files[..=last]
            .iter()
            .map(|f| format!("{}={}", f.name, f.digest))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Checks the files a table says were applied to it against this chain:
    /// an applied file must still exist, unchanged.
    pub fn check_applied(&self, property: &str) -> Result<(), TableError> {
        for entry in property.split(',').filter(|e| !e.is_empty()) {
            let (name, digest) = entry.split_once('=').unwrap_or((entry, ""));
            let origin = format!("schemas/{}/{name}", self.kind.schema_folder());
            match self.files.iter().find(|f| f.name == name) {
                None => {
                    return Err(TableError::Schema {
                        origin,
                        message: "was applied to the table but is missing from the schema files \
                                  in use: the table was evolved with a newer chain than this one \
                                  (the chain is append-only, files are never removed); pass \
                                  --schema-dir with the folder that holds it"
                            .into(),
                    });
                }
                Some(f) if f.digest != digest => {
                    return Err(TableError::Schema {
                        origin: f.origin.clone(),
                        message: "was edited after it was applied to the table: the chain is \
                                  append-only, add a new file instead"
                            .into(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl SchemaChain {
    /// Checks that every file of this chain's folder at git revision
    /// `git_ref` is still here, byte for byte (the chain is append-only).
    /// `dir` is the `schemas/` folder inside a git work tree.
    pub fn check_unchanged_since(&self, dir: &Path, git_ref: &str) -> Result<(), TableError> {
        let folder = self.kind.schema_folder();
        let git = |args: &[&str]| -> Result<Vec<u8>, TableError> {
            let output = std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .output()
                .map_err(|source| TableError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            if !output.status.success() {
                return Err(TableError::Schema {
                    origin: dir.display().to_string(),
                    message: format!(
                        "git {}: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                });
            }
            Ok(output.stdout)
        };
        let listing = git(&["ls-tree", "--name-only", git_ref, &format!("{folder}/")])?;
        for path in String::from_utf8_lossy(&listing).lines() {
            let name = path.rsplit('/').next().unwrap_or(path);
            if !name.ends_with(".json") {
                continue;
            }
            let then = git(&["show", &format!("{git_ref}:./{folder}/{name}")])?;
            let digest = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&then));
            let origin = format!("{}/{folder}/{name}", dir.display());
            match self.files.iter().find(|f| f.name == name) {
                None => {
                    return Err(TableError::Schema {
                        origin,
                        message: format!(
                            "exists at {git_ref} but not here: the chain is append-only, files are \
                             never removed"
                        ),
                    });
                }
                Some(f) if f.digest != digest => {
                    return Err(TableError::Schema {
                        origin,
                        message: format!(
                            "differs from its version at {git_ref}: a merged schema file never \
                             changes; revert it and add a new file instead"
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// What the first file of a chain gets wrong about the columns Floe fills.
fn first_file_problems(kind: TableKind, schema: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for c in core_columns(kind) {
        match schema.as_struct().field_by_id(c.id) {
            Some(f) if f.name == c.name && *f.field_type == Type::Primitive(c.ty.clone()) => {}
            _ => problems.push(format!(
                "the first schema file must define column {} as id {} of type {}: Floe fills it",
                c.name, c.id, c.ty
            )),
        }
    }
    for f in schema.as_struct().fields() {
        if f.required && core_column(kind, f.id).is_none() {
            problems.push(format!(
                "column {} (id {}) is required, but Floe does not fill it: make it optional",
                f.name, f.id
            ));
        }
    }
    problems
}

/// Top-level columns of the events table Floe could not fill from JSON.
fn unfillable_columns(kind: TableKind, schema: &Schema) -> Vec<String> {
    if kind != TableKind::Events {
        return Vec::new();
    }
    schema
        .as_struct()
        .fields()
        .iter()
        .filter(|f| core_column(kind, f.id).is_none())
        .filter_map(|f| {
            evolution::fillable(&f.field_type)
                .err()
                .map(|e| format!("column {} (id {}): {e}", f.name, f.id))
        })
        .collect()
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

/// Partition spec, sort order, bloom-filter columns, no-statistics columns,
/// no-dictionary columns.
type LayoutParts = (
    UnboundPartitionSpec,
    SortOrder,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// Everything needed to create and write one of Floe's tables.
#[derive(Debug, Clone)]
pub struct TableLayout {
    /// Which table.
    pub kind: TableKind,
    /// The newest schema file's schema.
    pub schema: SchemaRef,
    /// The schema file it came from, for messages.
    pub schema_origin: String,
    /// Partition spec: `day(created_datetime)`, `identity(event_type)` for events.
    pub partition: UnboundPartitionSpec,
    /// Sort order inside files.
    pub sort: SortOrder,
    /// Columns with a Parquet bloom filter (point lookups by key).
    pub bloom_filter_columns: Vec<String>,
    /// Columns whose min/max statistics are useless (free-form text) and skipped.
    pub no_statistics_columns: Vec<String>,
    /// Columns with about one distinct value per row, written without a
    /// dictionary: it would only fill up and fall back to plain, costing
    /// time and leaving its dictionary-coded first pages behind (about 8%
    /// of the events table's bytes).
    pub no_dictionary_columns: Vec<String>,
    /// The schema files, for creating the table and evolving it.
    pub chain: SchemaChain,
}

impl TableLayout {
    /// The layout of `kind`, with the newest schema of `source`'s checked chain.
    pub fn load(kind: TableKind, source: &SchemaSource) -> Result<Self, TableError> {
        let chain = SchemaChain::load(kind, source)?;
        let newest = chain.newest();
        let (partition, sort, bloom, no_stats, no_dictionary) =
            Self::parts(kind, &newest.schema, &newest.origin)?;
        Ok(Self {
            kind,
            schema: Arc::new(newest.schema.clone()),
            schema_origin: newest.origin.clone(),
            partition,
            sort,
            bloom_filter_columns: bloom,
            no_statistics_columns: no_stats,
            no_dictionary_columns: no_dictionary,
            chain,
        })
    }

    /// Partition spec, sort order, bloom-filter, no-statistics and
    /// no-dictionary columns of `schema`, or what keeps Floe from writing it.
    fn parts(kind: TableKind, schema: &Schema, origin: &str) -> Result<LayoutParts, TableError> {
        let schema_err = |message: String| TableError::Schema {
            origin: origin.to_string(),
            message,
        };
        let field_id = |name: &str| {
            schema
                .field_by_name(name)
                .map(|f| f.id)
                .ok_or_else(|| schema_err(format!("required column `{name}` is missing")))
        };
        let (partition, sort, bloom, no_stats, no_dictionary) = match kind {
            TableKind::Events => {
                let uuid = field_id("event_uuid")?;
                if schema.identifier_field_ids().collect::<Vec<_>>() != vec![uuid] {
                    return Err(schema_err(
                        "identifier-field-ids must be exactly [the id of event_uuid]".into(),
                    ));
                }
                let created = field_id("created_datetime")?;
                let event_type = field_id("event_type")?;
                let partition = UnboundPartitionSpec::builder()
                    .add_partition_field(created, "created_datetime_day", Transform::Day)
                    .and_then(|b| {
                        b.add_partition_field(event_type, "event_type", Transform::Identity)
                    })
                    .map_err(|e| schema_err(format!("partition spec: {e}")))?
                    .build();
                let sort = SortOrder::builder()
                    .with_order_id(1)
                    .with_sort_field(ascending(event_type))
                    .with_sort_field(ascending(created))
                    .build(schema)
                    .map_err(|e| schema_err(format!("sort order: {e}")))?;
                (
                    partition,
                    sort,
                    vec!["event_uuid".to_string()],
                    vec!["payload".to_string()],
                    [
                        "created_at",
                        "created_datetime",
                        "_source_position",
                        "_content_hash",
                    ]
                    .into_iter()
                    .filter(|c| schema.field_by_name(c).is_some())
                    .map(String::from)
                    .collect(),
                )
            }
            TableKind::Rejected => {
                field_id("raw")?;
                (
                    UnboundPartitionSpec::builder().build(),
                    SortOrder::unsorted_order(),
                    vec![],
                    vec!["raw".to_string(), "message".to_string()],
                    vec![],
                )
            }
        };
        Ok((partition, sort, bloom, no_stats, no_dictionary))
    }
}

fn ascending(source_id: i32) -> SortField {
    SortField {
        source_id,
        transform: Transform::Identity,
        direction: SortDirection::Ascending,
        null_order: NullOrder::First,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_layouts_load() {
        let events = TableLayout::load(TableKind::Events, &SchemaSource::Embedded).unwrap();
        assert_eq!(events.schema.as_struct().fields().len(), 11);
        assert_eq!(events.schema_origin, "schemas/events/0001-initial.json");
        assert_eq!(events.partition.fields().len(), 2);
        assert_eq!(events.sort.fields.len(), 2);
        let ids: Vec<i32> = events
            .schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(ids, (1..=11).collect::<Vec<_>>());
        let rejected = TableLayout::load(TableKind::Rejected, &SchemaSource::Embedded).unwrap();
        assert!(rejected.partition.fields().is_empty());
    }

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
        let good = include_str!("../../schemas/events/0001-initial.json");
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

    #[test]
    fn events_schema_needs_its_identifier() {
        let text = include_str!("../../schemas/events/0001-initial.json").replace(
            "\"identifier-field-ids\": [1]",
            "\"identifier-field-ids\": []",
        );
        let err = TableLayout::parts(
            TableKind::Events,
            &serde_json::from_str(&text).unwrap(),
            "x.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("x.json") && err.contains("identifier-field-ids"),
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

    #[test]
    fn refusals_of_the_applied_files_read_as_sentences() {
        let chain = SchemaChain::load(TableKind::Events, &SchemaSource::Embedded).unwrap();
        let first = &chain.files[0];
        let missing = chain
            .check_applied(&format!(
                "{}={},0002-newer.json=00",
                first.name, first.digest
            ))
            .unwrap_err()
            .to_string();
        let edited = chain
            .check_applied(&format!("{}=0000000000000000", first.name))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("0002-newer.json: was applied"),
            "{missing}"
        );
        assert!(missing.contains("--schema-dir"), "{missing}");
        assert!(
            edited.contains("was edited after it was applied"),
            "{edited}"
        );
        for message in [missing, edited] {
            assert!(!message.contains("  "), "a run of spaces: {message:?}");
        }
    }
}
