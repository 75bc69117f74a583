//! Snapshot expiry ([`expire_snapshots`]): which snapshots go, and the
//! deletion of the files only they referenced.

use std::collections::HashSet;
use std::time::SystemTime;

use super::MaintainSettings;
use super::referenced::{collect_snapshot_files, referenced_files};
use crate::table::{LoadedTable, TableError, TableStore};

/// What an expiry did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Snapshots removed.
    pub snapshots_removed: usize,
    /// Snapshots left.
    pub snapshots_kept: usize,
    /// Files deleted (manifest lists, manifests, data and delete files).
    pub files_deleted: usize,
}

/// Removes old snapshots and the files only they referenced.
pub async fn expire_snapshots(
    store: &TableStore,
    table: LoadedTable,
    settings: &MaintainSettings,
    now: SystemTime,
) -> Result<(LoadedTable, ExpiryReport), TableError> {
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let oldest_kept_ms = now_ms - settings.expire_older_than.as_millis() as i64;
    let mut before = table.clone();
    let mut expired = Vec::new();
    let (table, committed) = store
        .update_metadata(table, |table| {
            before = table.clone();
            let metadata = &table.metadata;
            expired = expirable(
                metadata
                    .snapshots()
                    .map(|s| (s.timestamp_ms(), s.snapshot_id())),
                metadata.current_snapshot_id(),
                oldest_kept_ms,
                settings.keep_snapshots,
            );
            if expired.is_empty() {
                return Ok(None);
            }
            let next = table
                .metadata
                .as_ref()
                .clone()
                .into_builder(Some(table.metadata_location.clone()))
                .remove_snapshots(&expired)
                .build()?
                .metadata;
            Ok(Some(next))
        })
        .await?;
    let mut report = ExpiryReport {
        snapshots_kept: table.metadata.snapshots().len(),
        ..ExpiryReport::default()
    };
    if !committed {
        return Ok((table, report));
    }
    report.snapshots_removed = expired.len();
    // Files the expired snapshots referenced, minus those still referenced.
    let mut seen = HashSet::new();
    let kept = referenced_files(store, &table, &mut seen).await?;
    // Manifests read for `kept` are not read again: their live files are
    // kept, and a file one of them marks deleted is live in a manifest of
    // the snapshot that had it, read here if only expired snapshots use it.
    let mut gone = HashSet::new();
    for id in &expired {
        if let Some(snapshot) = before.metadata.snapshot_by_id(*id) {
            collect_snapshot_files(store, &before, snapshot, false, &mut gone, &mut seen).await?;
        }
    }
    for path in gone.difference(&kept) {
        store.file_io().delete(path).await?;
        report.files_deleted += 1;
    }
    tracing::info!(
        table = %table.name,
        snapshots_removed = report.snapshots_removed,
        snapshots_kept = report.snapshots_kept,
        files_deleted = report.files_deleted,
        "expired snapshots"
    );
    Ok((table, report))
}

/// The snapshots (timestamp in ms, id) older than `oldest_kept_ms`, except
/// `current` and the `keep` newest (at least one).
fn expirable(
    snapshots: impl Iterator<Item = (i64, i64)>,
    current: Option<i64>,
    oldest_kept_ms: i64,
    keep: usize,
) -> Vec<i64> {
    let mut snapshots: Vec<(i64, i64)> = snapshots.collect();
    snapshots.sort_unstable_by(|a, b| b.cmp(a));
    let mut out: Vec<i64> = snapshots
        .into_iter()
        .skip(keep.max(1))
        .filter(|(at, id)| *at < oldest_kept_ms && Some(*id) != current)
        .map(|(_, id)| id)
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_keeps_the_current_the_newest_and_the_young() {
        // Snapshots 1..=5 at 100, 200, ..., 500 ms.
        let all = || (1..=5).map(|i| (i * 100, i));
        assert_eq!(expirable(all(), Some(5), 350, 1), vec![1, 2, 3]);
        assert_eq!(expirable(all(), Some(5), 350, 4), vec![1]);
        assert_eq!(expirable(all(), Some(5), 0, 1), Vec::<i64>::new());
        // At least one is kept, and the current one even when not the newest
        // (a rollback).
        assert_eq!(expirable(all(), Some(5), i64::MAX, 0), vec![1, 2, 3, 4]);
        assert_eq!(expirable(all(), Some(2), i64::MAX, 1), vec![1, 3, 4]);
    }
}
