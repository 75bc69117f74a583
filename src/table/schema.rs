//! Schema files and table layouts.
//!
//! `schemas/<table>/NNNN-<slug>.json` holds one Iceberg schema per file, as the
//! spec serializes it, with explicit field ids. The files ship inside the binary
//! (so `floe` runs from anywhere) and can be read from a folder instead. The
//! newest file of a chain is the table's schema; a layout adds what the schema
//! files do not say: partition spec, sort order and Parquet column settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use iceberg::spec::{
    NullOrder, Schema, SchemaRef, SortDirection, SortField, SortOrder, Transform,
    UnboundPartitionSpec,
};

use super::TableError;

/// The schema files compiled into the binary: `(table, file name, text)`.
const EMBEDDED: &[(&str, &str, &str)] = &[
    (
        "events",
        "0001-initial.json",
        include_str!("../../schemas/events/0001-initial.json"),
    ),
    (
        "events_rejected",
        "0001-initial.json",
        include_str!("../../schemas/events_rejected/0001-initial.json"),
    ),
];

/// Which of Floe's two tables a layout describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// The events table (`analytics.events`).
    Events,
    /// The rejected-records table (`analytics.events_rejected`).
    Rejected,
}

impl TableKind {
    /// The folder name under `schemas/`.
    pub fn schema_folder(self) -> &'static str {
        match self {
            TableKind::Events => "events",
            TableKind::Rejected => "events_rejected",
        }
    }
}

/// One parsed schema file.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// Where it came from, for messages: `schemas/events/0001-initial.json`.
    pub origin: String,
    /// Its number (`0001` is 1).
    pub number: u32,
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
}

impl TableLayout {
    /// The layout of `kind`, with the newest schema of `source`.
    pub fn load(kind: TableKind, source: &SchemaSource) -> Result<Self, TableError> {
        let chain = source.chain(kind)?;
        // `chain` returns at least one file.
        let newest = chain.last().ok_or_else(|| TableError::Schema {
            origin: kind.schema_folder().into(),
            message: "no schema file".into(),
        })?;
        Self::for_schema(kind, newest.schema.clone(), newest.origin.clone())
    }

    fn for_schema(kind: TableKind, schema: Schema, origin: String) -> Result<Self, TableError> {
        let schema_err = |message: String| TableError::Schema {
            origin: origin.clone(),
            message,
        };
        let field_id = |name: &str| {
            schema
                .field_by_name(name)
                .map(|f| f.id)
                .ok_or_else(|| schema_err(format!("required column `{name}` is missing")))
        };
        let (partition, sort, bloom, no_stats) = match kind {
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
                    .build(&schema)
                    .map_err(|e| schema_err(format!("sort order: {e}")))?;
                (
                    partition,
                    sort,
                    vec!["event_uuid".to_string()],
                    vec!["payload".to_string()],
                )
            }
            TableKind::Rejected => {
                field_id("raw")?;
                (
                    UnboundPartitionSpec::builder().build(),
                    SortOrder::unsorted_order(),
                    vec![],
                    vec!["raw".to_string(), "message".to_string()],
                )
            }
        };
        Ok(Self {
            kind,
            schema: Arc::new(schema),
            schema_origin: origin,
            partition,
            sort,
            bloom_filter_columns: bloom,
            no_statistics_columns: no_stats,
        })
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
        let schema: Schema = serde_json::from_str(&text).unwrap();
        let err = TableLayout::for_schema(TableKind::Events, schema, "x.json".into())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.json") && err.contains("identifier-field-ids"),
            "{err}"
        );
    }
}
