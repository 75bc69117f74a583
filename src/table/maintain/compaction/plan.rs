//! What a compaction rewrites: the partitions with small files or position
//! deletes, read from the current manifests one at a time, each with the
//! data files to rewrite and the delete files to remove.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use iceberg::spec::{DataContentType, DataFile, DataFileBuilder};

use crate::table::index::{Map, events_partition, read_position_deletes};
use crate::table::writer::Partition;
use crate::table::{LoadedTable, TableError, TableStore};

/// One partition's rewrite.
#[derive(Debug, Clone)]
pub(super) struct PartitionPlan {
    pub(super) partition: Partition,
    /// Data files to rewrite (entries without column statistics: a backlog
    /// of 100,000 small files must not be held with all of theirs).
    pub(super) data: Vec<DataFile>,
    /// Position delete files to remove (every one of the partition).
    pub(super) deletes: Vec<DataFile>,
    /// Positions those deletes remove from `data`.
    pub(super) deleted_rows: u64,
    /// The partition spec of its files.
    pub(super) spec_id: i32,
}

impl PartitionPlan {
    pub(super) fn live_rows(&self) -> u64 {
        self.data.iter().map(DataFile::record_count).sum::<u64>() - self.deleted_rows
    }

    pub(super) fn input_files(&self) -> usize {
        self.data.len() + self.deletes.len()
    }
}

/// A manifest entry's file with what compaction needs of it (path, format,
/// size, rows, partition, content) and none of its column statistics.
fn stripped(file: &DataFile, spec_id: i32) -> Result<DataFile, TableError> {
    DataFileBuilder::default()
        .content(file.content_type())
        .file_path(file.file_path().to_string())
        .file_format(file.file_format())
        .partition(file.partition().clone())
        .record_count(file.record_count())
        .file_size_in_bytes(file.file_size_in_bytes())
        .partition_spec_id(spec_id)
        .build()
        .map_err(|e| {
            TableError::Iceberg(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("entry of {}: {e}", file.file_path()),
            ))
        })
}

/// The partitions worth compacting (only `only`, when given): those with two
/// or more files to rewrite, or with deletes. Reads one manifest at a time.
pub(super) async fn plan(
    store: &TableStore,
    table: &LoadedTable,
    target_file_size: u64,
    only: Option<&BTreeSet<Partition>>,
) -> Result<Vec<PartitionPlan>, TableError> {
    let small = target_file_size / 4 * 3;
    type Files = (Vec<DataFile>, Vec<DataFile>, i32);
    let mut by_partition: BTreeMap<Partition, Files> = BTreeMap::new();
    for manifest_file in store.current_manifests(table).await? {
        let manifest = manifest_file.load_manifest(store.file_io()).await?;
        for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
            let file = entry.data_file();
            let partition = if file.partition().fields().is_empty() {
                Partition::none()
            } else {
                match events_partition(file.partition().iter()) {
                    Some(p) => p,
                    None => continue,
                }
            };
            if only.is_some_and(|o| !o.contains(&partition)) {
                continue;
            }
            let (data, deletes, spec_id) = by_partition.entry(partition).or_default();
            *spec_id = manifest_file.partition_spec_id;
            let kept = stripped(file, manifest_file.partition_spec_id)?;
            match file.content_type() {
                DataContentType::Data => data.push(kept),
                DataContentType::PositionDeletes => deletes.push(kept),
                DataContentType::EqualityDeletes => {
                    return Err(TableError::Incompatible {
                        table: table.name.clone(),
                        message: format!(
                            "{} is an equality delete file; Floe compacts tables with position \
                             deletes only",
                            file.file_path()
                        ),
                    });
                }
            }
        }
    }
    let mut plans = Vec::new();
    for (partition, (data, deletes, spec_id)) in by_partition {
        let mut deleted: Map<String, Vec<i64>> = Map::default();
        for file in &deletes {
            read_position_deletes(store, file.file_path(), &mut deleted).await?;
        }
        let rewrite: Vec<DataFile> = data
            .into_iter()
            .filter(|f| f.file_size_in_bytes() < small || deleted.contains_key(f.file_path()))
            .collect();
        if rewrite.len() < 2 && deletes.is_empty() {
            continue;
        }
        let deleted_rows = rewrite
            .iter()
            .filter_map(|f| deleted.get(f.file_path()))
            .map(|positions| positions.iter().collect::<HashSet<_>>().len() as u64)
            .sum();
        plans.push(PartitionPlan {
            partition,
            data: rewrite,
            deletes,
            deleted_rows,
            spec_id,
        });
    }
    Ok(plans)
}
