//! The files a table's metadata references: metadata files, statistics,
//! and each snapshot's manifest list, manifests and content files. Expiry
//! keeps them; orphan removal deletes only what is not among them.

use std::collections::HashSet;

use crate::table::{LoadedTable, TableError, TableStore};

/// Every file the table's metadata references: metadata files in its log,
/// statistics, and each snapshot's manifest list, manifests and live content
/// files. (A file a snapshot marks deleted is live in its parent's manifests
/// while the parent is kept.) Manifests in `seen` are skipped; those read
/// are added to it.
pub(super) async fn referenced_files(
    store: &TableStore,
    table: &LoadedTable,
    seen: &mut HashSet<String>,
) -> Result<HashSet<String>, TableError> {
    let metadata = &table.metadata;
    let mut out: HashSet<String> = metadata
        .metadata_log()
        .iter()
        .map(|m| m.metadata_file.clone())
        .collect();
    out.extend(
        metadata
            .statistics_iter()
            .map(|s| s.statistics_path.clone()),
    );
    out.extend(
        metadata
            .partition_statistics_iter()
            .map(|s| s.statistics_path.clone()),
    );
    for snapshot in metadata.snapshots() {
        collect_snapshot_files(store, table, snapshot, true, &mut out, seen).await?;
    }
    Ok(out)
}

/// Adds a snapshot's manifest list, its manifests and their content files
/// (only the live ones when `alive_only`) to `out`, reading each manifest
/// not in `seen` yet.
pub(super) async fn collect_snapshot_files(
    store: &TableStore,
    table: &LoadedTable,
    snapshot: &iceberg::spec::SnapshotRef,
    alive_only: bool,
    out: &mut HashSet<String>,
    seen: &mut HashSet<String>,
) -> Result<(), TableError> {
    out.insert(snapshot.manifest_list().to_string());
    for manifest_file in store.snapshot_manifests(table, snapshot).await? {
        if !seen.insert(manifest_file.manifest_path.clone()) {
            continue;
        }
        out.insert(manifest_file.manifest_path.clone());
        let manifest = manifest_file.load_manifest(store.file_io()).await?;
        out.extend(
            manifest
                .entries()
                .iter()
                .filter(|e| e.is_alive() || !alive_only)
                .map(|e| e.file_path().to_string()),
        );
    }
    Ok(())
}
