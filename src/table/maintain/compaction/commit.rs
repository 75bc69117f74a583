//! Committing a batch of rewritten partitions without losing deletes: a
//! partition that another writer changed since it was planned (its files
//! removed, or position deletes added to them) is dropped from the commit
//! and left to be planned anew.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::future::BoxFuture;
use iceberg::spec::DataFile;

use super::{CompactionReport, Rewritten, delete_files};
use crate::table::writer::Partition;
use crate::table::{Change, LoadedTable, Rebase, TableError, TableStore};

/// Commits one batch of rewritten partitions planned on `planned_at`:
/// first drops the partitions that changed since (earlier batches' commits
/// included), then commits the rest, dropping more after each lost swap.
/// Dropped partitions go to `stale`; the table as it then is comes back.
pub(super) async fn commit_batch(
    store: &TableStore,
    planned_at: &LoadedTable,
    rewritten: Vec<Rewritten>,
    report: &mut CompactionReport,
    stale: &mut BTreeMap<Partition, String>,
    own: &mut HashSet<i64>,
) -> Result<LoadedTable, TableError> {
    crate::failpoint::hit(crate::failpoint::FailPoint::AfterDataFiles);
    let mut check = NoNewDeletes {
        store,
        rewritten,
        stale: BTreeMap::new(),
        own: std::mem::take(own),
    };
    let mut change = check.change();
    let current = match store.reload(&planned_at.name).await {
        Ok(current) => current,
        Err(e) => {
            delete_files(store, &change.added_data_files).await;
            return Err(e);
        }
    };
    let mut outcome = Ok(());
    if current.metadata_location != planned_at.metadata_location {
        outcome = check.check(planned_at, &current, &mut change).await;
    }
    if outcome.is_ok() {
        outcome = store
            .commit_rebasing(&current, &mut change, Some(&mut check))
            .await
            .map(|done| {
                check.own.insert(done.snapshot_id);
            });
    }
    *own = std::mem::take(&mut check.own);
    match outcome {
        Ok(()) => {}
        Err(TableError::Stale { .. }) if check.rewritten.is_empty() => {}
        Err(e) => {
            delete_files(store, &change.added_data_files).await;
            return Err(e);
        }
    }
    for r in &check.rewritten {
        report.partitions += 1;
        report.data_files_before += r.plan.data.len();
        report.data_files_after += r.files.len();
        report.delete_files_removed += r.plan.deletes.len();
        report.rows += r.plan.live_rows();
        report.deleted_rows_dropped += r.plan.deleted_rows;
    }
    if !check.rewritten.is_empty() {
        tracing::info!(
            table = %planned_at.name,
            partitions = check.rewritten.len(),
            files_before = check.rewritten.iter().map(|r| r.plan.input_files()).sum::<usize>(),
            files_after = check.rewritten.iter().map(|r| r.files.len()).sum::<usize>(),
            "committed compacted partitions"
        );
    }
    stale.append(&mut check.stale);
    store.reload(&planned_at.name).await
}

/// Keeps a compaction commit from losing deletes: after a lost swap, a
/// partition whose rewritten files got position deletes, or were removed,
/// by the snapshots that landed since is dropped from the change (its new
/// files deleted) and recorded as stale, to be planned anew.
struct NoNewDeletes<'a> {
    store: &'a TableStore,
    /// The partitions still in the change.
    rewritten: Vec<Rewritten>,
    /// Partitions dropped, with why.
    stale: BTreeMap<Partition, String>,
    /// Snapshots of this compaction's earlier batches, not read again.
    own: HashSet<i64>,
}

impl NoNewDeletes<'_> {
    /// The change replacing every partition still in.
    fn change(&self) -> Change {
        let mut summary = BTreeMap::new();
        summary.insert("floe.maintenance".to_string(), "compaction".to_string());
        Change {
            added_data_files: self
                .rewritten
                .iter()
                .flat_map(|r| r.files.clone())
                .collect(),
            removed_files: self
                .rewritten
                .iter()
                .flat_map(|r| r.plan.data.iter().chain(&r.plan.deletes).cloned())
                .collect(),
            summary,
            ..Change::default()
        }
    }

    async fn check(
        &mut self,
        previous: &LoadedTable,
        current: &LoadedTable,
        change: &mut Change,
    ) -> Result<(), TableError> {
        let since = self
            .store
            .changed_since(previous, current, &self.own)
            .await?;
        // Data file -> partition, for the files this change rewrites.
        let ours: HashMap<&str, &Partition> = self
            .rewritten
            .iter()
            .flat_map(|r| {
                r.plan
                    .data
                    .iter()
                    .map(|f| (f.file_path(), &r.plan.partition))
            })
            .collect();
        let mut stale = BTreeMap::new();
        for path in &since.removed {
            if let Some(partition) = ours.get(path.as_str()) {
                stale.insert((*partition).clone(), format!("{path} was removed"));
            }
        }
        for target in since.deleted.keys() {
            if let Some(partition) = ours.get(target.as_str()) {
                stale.insert(
                    (*partition).clone(),
                    format!("position deletes committed since remove rows of {target}"),
                );
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        let (dropped, kept): (Vec<Rewritten>, Vec<Rewritten>) = std::mem::take(&mut self.rewritten)
            .into_iter()
            .partition(|r| stale.contains_key(&r.plan.partition));
        self.rewritten = kept;
        let orphaned: Vec<DataFile> = dropped.into_iter().flat_map(|r| r.files).collect();
        delete_files(self.store, &orphaned).await;
        self.stale.extend(stale);
        if self.rewritten.is_empty() {
            // Nothing left to commit.
            return Err(TableError::Stale {
                table: current.name.clone(),
                reason: "every partition of this compaction changed".into(),
            });
        }
        *change = self.change();
        Ok(())
    }
}

impl Rebase for NoNewDeletes<'_> {
    fn rebase<'a>(
        &'a mut self,
        previous: &'a LoadedTable,
        current: &'a LoadedTable,
        change: &'a mut Change,
    ) -> BoxFuture<'a, Result<(), TableError>> {
        Box::pin(self.check(previous, current, change))
    }
}
