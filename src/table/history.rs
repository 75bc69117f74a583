//! Reading a table's history: the live entries of a snapshot's manifests,
//! and what the snapshots committed since an earlier state changed (what a
//! writer that lost a swap must reconcile with).

use std::collections::HashSet;

use iceberg::spec::{DataContentType, ManifestEntryRef, ManifestStatus};

use crate::table::TableError;
use crate::table::index::{Map, events_partition, read_position_deletes};
use crate::table::store::{LoadedTable, TableStore};
use crate::table::writer::Partition;

/// What the snapshots committed since a table state changed (see
/// [`TableStore::changed_since`]).
#[derive(Debug, Default)]
pub struct ChangedSince {
    /// Data files they added, with their events-table partition and size.
    pub added_data: Vec<(String, Partition, u64)>,
    /// Data files they removed (rewritten or deleted).
    pub removed: HashSet<String>,
    /// Row positions their position deletes remove, by data file.
    pub deleted: Map<String, Vec<i64>>,
}

impl TableStore {
    /// Every live file entry (data and delete files) of the table's current
    /// snapshot, read from its manifests.
    pub async fn live_entries(
        &self,
        table: &LoadedTable,
    ) -> Result<Vec<ManifestEntryRef>, TableError> {
        let mut out = Vec::new();
        for manifest_file in self.current_manifests(table).await? {
            let manifest = manifest_file.load_manifest(&self.file_io).await?;
            out.extend(manifest.entries().iter().filter(|e| e.is_alive()).cloned());
        }
        Ok(out)
    }

    /// What the snapshots of `current` committed after `previous`'s current
    /// snapshot added and removed, read from the manifests they added;
    /// the snapshots in `skip` (the caller's own) are not read.
    pub async fn changed_since(
        &self,
        previous: &LoadedTable,
        current: &LoadedTable,
        skip: &HashSet<i64>,
    ) -> Result<ChangedSince, TableError> {
        let mut new = snapshots_since(previous, current);
        new.retain(|id| !skip.contains(id));
        let mut out = ChangedSince::default();
        // Each snapshot's own list names the manifests it wrote: a later
        // commit may merge them (their entries then `EXISTING`) or drop them
        // (only `DELETED` entries left), so the current list cannot tell.
        let mut own = Vec::new();
        for id in &new {
            let Some(snapshot) = current.metadata.snapshot_by_id(*id) else {
                continue;
            };
            own.extend(
                self.snapshot_manifests(current, snapshot)
                    .await?
                    .into_iter()
                    .filter(|m| m.added_snapshot_id == *id),
            );
        }
        for manifest_file in own {
            let manifest = manifest_file.load_manifest(&self.file_io).await?;
            for entry in manifest.entries() {
                if entry.snapshot_id() != Some(manifest_file.added_snapshot_id) {
                    continue;
                }
                let file = entry.data_file();
                match (entry.status(), file.content_type()) {
                    (ManifestStatus::Deleted, DataContentType::Data) => {
                        out.removed.insert(file.file_path().to_string());
                    }
                    (ManifestStatus::Added, DataContentType::Data) => {
                        if let Some(partition) = events_partition(file.partition().iter()) {
                            out.added_data.push((
                                file.file_path().to_string(),
                                partition,
                                file.file_size_in_bytes(),
                            ));
                        }
                    }
                    (ManifestStatus::Added, DataContentType::PositionDeletes) => {
                        read_position_deletes(self, file.file_path(), &mut out.deleted).await?;
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }
}

/// The snapshots of `current` committed after `previous`'s current
/// snapshot: its ancestors back to that one. When an expiry removed that
/// one, the walk stops at the first snapshot whose sequence number
/// `previous` had already given out (format v2): older snapshots are never
/// counted new.
fn snapshots_since(previous: &LoadedTable, current: &LoadedTable) -> HashSet<i64> {
    let mut out = HashSet::new();
    let stop = previous.metadata.current_snapshot_id();
    let given_out = previous.metadata.last_sequence_number();
    let mut cursor = current.metadata.current_snapshot().cloned();
    while let Some(s) = cursor {
        if Some(s.snapshot_id()) == stop || (given_out > 0 && s.sequence_number() <= given_out) {
            break;
        }
        out.insert(s.snapshot_id());
        cursor = s
            .parent_snapshot_id()
            .and_then(|p| current.metadata.snapshot_by_id(p).cloned());
    }
    out
}
