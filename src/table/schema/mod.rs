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
//!
//! This file holds [`TableLayout`], which joins the parts below; lowest first
//! (each uses only those before it):
//! - `source`: where schema files come from ([`SchemaSource`]: built in or a
//!   folder), reading and numbering them, and the built-in-vs-checkout
//!   difference.
//! - `layout`: what a schema file does not say: partition spec, sort order
//!   and Parquet column settings.
//! - `chain`: [`SchemaChain`], the files of a table with every step checked
//!   against the evolution rules, and the files applied to a table.

mod chain;
mod layout;
mod source;

use std::sync::Arc;

use iceberg::spec::{SchemaRef, SortOrder, UnboundPartitionSpec};

use super::TableError;
use crate::contract::TableKind;
pub use chain::{SCHEMA_FILES_PROPERTY, SchemaChain};
pub use source::{
    LOCAL_SCHEMA_DIR, SchemaFile, SchemaSource, announce_source, built_in_difference,
};

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
            layout::parts(kind, &newest.schema, &newest.origin)?;
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
}
