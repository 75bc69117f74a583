//! Reading a table back: files and rows per partition from the manifests, and
//! rows per (day, event_type) from a real scan (the numbers a reader sees).

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use futures::TryStreamExt;
use iceberg::spec::{DataContentType, Literal, PrimitiveLiteral};

use super::writer::format_day;
use super::{LoadedTable, TableError, TableStore};

/// Live files of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionFiles {
    /// Data files.
    pub data_files: u64,
    /// Rows in them (before deletes).
    pub rows: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Delete files.
    pub delete_files: u64,
}

/// Live files per partition (label like `2026-05-28/payment`), from the
/// current snapshot's manifests.
pub async fn files_by_partition(
    store: &TableStore,
    table: &LoadedTable,
) -> Result<BTreeMap<String, PartitionFiles>, TableError> {
    let mut out: BTreeMap<String, PartitionFiles> = BTreeMap::new();
    for entry in store.live_entries(table).await? {
        let file = entry.data_file();
        let label = partition_label(file.partition().iter());
        let stats = out.entry(label).or_default();
        match file.content_type() {
            DataContentType::Data => {
                stats.data_files += 1;
                stats.rows += file.record_count();
                stats.bytes += file.file_size_in_bytes();
            }
            _ => stats.delete_files += 1,
        }
    }
    Ok(out)
}

fn partition_label<'a>(values: impl Iterator<Item = Option<&'a Literal>>) -> String {
    let parts: Vec<String> = values
        .map(|v| match v {
            None => "null".to_string(),
            Some(Literal::Primitive(PrimitiveLiteral::Int(day))) => format_day(*day),
            Some(Literal::Primitive(PrimitiveLiteral::String(s))) => s.clone(),
            Some(other) => format!("{other:?}"),
        })
        .collect();
    if parts.is_empty() {
        "(unpartitioned)".to_string()
    } else {
        parts.join("/")
    }
}

/// Rows per (day of `created_datetime`, `event_type`), read with a table scan
/// (deletes applied), so it counts what every reader sees.
pub async fn rows_by_day_and_type(
    store: &TableStore,
    table: &LoadedTable,
) -> Result<BTreeMap<(String, String), u64>, TableError> {
    let mut counts: BTreeMap<(i32, String), u64> = BTreeMap::new();
    if table.metadata.current_snapshot().is_some() {
        let scan = table
            .to_iceberg(store.file_io())?
            .scan()
            .select(["created_datetime", "event_type"])
            .build()?;
        let mut batches = scan.to_arrow().await?;
        while let Some(batch) = batches.try_next().await? {
            let (Some(times), Some(types)) = (
                batch.column_by_name("created_datetime"),
                batch.column_by_name("event_type"),
            ) else {
                continue;
            };
            let times = times.as_primitive::<TimestampMicrosecondType>();
            let types = types.as_string::<i32>();
            for i in 0..batch.num_rows() {
                let day = crate::contract::partition_day(times.value(i));
                *counts.entry((day, types.value(i).to_string())).or_default() += 1;
            }
        }
    }
    Ok(counts
        .into_iter()
        .map(|((day, t), n)| ((format_day(day), t), n))
        .collect())
}
