//! Compaction ([`compact`]) and what it reports.
//!
//! It works in rounds. Each plans the partitions worth rewriting (`plan.rs`),
//! rewrites them one at a time (`rewrite.rs`) and commits them in batches of
//! about [`COMMIT_EVERY_FILES`] input files (`commit.rs`); partitions that
//! another writer changed meanwhile are planned anew in the next round, for
//! up to [`ROUNDS`] rounds.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use iceberg::spec::DataFile;

use super::MaintainSettings;
use crate::table::writer::{DataWriter, FileSettings, Partition};
use crate::table::{LoadedTable, TableError, TableLayout, TableStore};

mod commit;
mod plan;
mod rewrite;

use commit::commit_batch;
use plan::{PartitionPlan, plan};
use rewrite::rewrite_partition;

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Partitions rewritten.
    pub partitions: usize,
    /// Data files they had before.
    pub data_files_before: usize,
    /// Data files written in their place.
    pub data_files_after: usize,
    /// Position delete files removed with them.
    pub delete_files_removed: usize,
    /// Live rows moved.
    pub rows: u64,
    /// Deleted rows dropped for good.
    pub deleted_rows_dropped: u64,
    /// Partitions planned anew after another writer changed them.
    pub replanned: usize,
    /// Partitions given up after changing under every attempt.
    pub abandoned: usize,
}

/// Rounds of compaction: partitions that another writer changed during a
/// round are planned anew in the next.
const ROUNDS: u32 = 4;

/// Input files (data and delete) rewritten before they are committed: each
/// commit's size stays bounded whatever the backlog. Each commit rewrites
/// every manifest holding one of its files (after a merge, most of the
/// table's), so batches are large: on 108k small files, 2,000 a commit had
/// done 24 of 54 batches after 10 minutes; 20,000 a commit take 76 s.
const COMMIT_EVERY_FILES: usize = 20_000;

/// How far a maintenance run has got, for a progress line.
#[derive(Debug, Default)]
pub struct MaintainProgress {
    /// Partitions to rewrite in this round.
    pub partitions: AtomicU64,
    /// Partitions rewritten so far.
    pub partitions_done: AtomicU64,
    /// Input files to rewrite in this round.
    pub files: AtomicU64,
    /// Input files rewritten so far.
    pub files_done: AtomicU64,
    /// Compaction commits landed.
    pub commits: AtomicU64,
}

impl MaintainProgress {
    /// One line: partitions and files done of all, and commits.
    pub fn line(&self) -> String {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        if get(&self.partitions) == 0 {
            return "compacting: reading the manifests for small files".into();
        }
        let commits = get(&self.commits);
        format!(
            "compacting: {} of {} partitions, {} of {} small files, {commits} commit{}",
            get(&self.partitions_done),
            get(&self.partitions),
            get(&self.files_done),
            get(&self.files),
            if commits == 1 { "" } else { "s" },
        )
    }
}

/// A partition rewritten, not yet committed.
struct Rewritten {
    plan: PartitionPlan,
    files: Vec<DataFile>,
}

/// Compacts every partition of `table` that has small files or deletes,
/// partition by partition, committing (a `replace`) every
/// [`COMMIT_EVERY_FILES`] input files.
pub async fn compact(
    store: &TableStore,
    table: LoadedTable,
    layout: Arc<TableLayout>,
    files: FileSettings,
    settings: &MaintainSettings,
    progress: &MaintainProgress,
) -> Result<(LoadedTable, CompactionReport), TableError> {
    let mut report = CompactionReport::default();
    let mut table = table;
    let mut only: Option<BTreeSet<Partition>> = None;
    for round in 1..=ROUNDS {
        // The table the plan reads: every batch's commit checks what landed
        // since, so no delete committed meanwhile is lost.
        let planned_at = table.clone();
        let plans = plan(store, &planned_at, settings.target_file_size, only.as_ref()).await?;
        if plans.is_empty() {
            break;
        }
        let total = plans.len();
        progress.partitions.store(total as u64, Ordering::Relaxed);
        progress.partitions_done.store(0, Ordering::Relaxed);
        progress.files.store(
            plans.iter().map(|p| p.input_files() as u64).sum(),
            Ordering::Relaxed,
        );
        progress.files_done.store(0, Ordering::Relaxed);
        let writer = DataWriter::new(&planned_at, layout.clone(), store.file_io().clone(), files);
        let mut stale = BTreeMap::new();
        // This round's own commits: a batch's check skips them (they hold
        // only other batches' partitions), so no batch reads them again.
        let mut own = HashSet::new();
        let mut batch: Vec<Rewritten> = Vec::new();
        let mut batch_files = 0;
        for (i, plan) in plans.into_iter().enumerate() {
            let files = match rewrite_partition(store, &planned_at, &writer, &plan, settings).await
            {
                Ok(files) => files,
                Err(e) => {
                    delete_files(store, batch.iter().flat_map(|r| &r.files)).await;
                    return Err(e);
                }
            };
            tracing::debug!(
                table = %planned_at.name,
                partition = %plan.partition.path(),
                files_before = plan.data.len(),
                files_after = files.len(),
                delete_files = plan.deletes.len(),
                rows = plan.live_rows(),
                done = i + 1,
                of = total,
                "rewrote partition"
            );
            progress.partitions_done.fetch_add(1, Ordering::Relaxed);
            progress
                .files_done
                .fetch_add(plan.input_files() as u64, Ordering::Relaxed);
            batch_files += plan.input_files();
            batch.push(Rewritten { plan, files });
            if batch_files >= COMMIT_EVERY_FILES || i + 1 == total {
                table = commit_batch(
                    store,
                    &planned_at,
                    std::mem::take(&mut batch),
                    &mut report,
                    &mut stale,
                    &mut own,
                )
                .await?;
                progress.commits.fetch_add(1, Ordering::Relaxed);
                batch_files = 0;
            }
        }
        if stale.is_empty() {
            break;
        }
        for (partition, reason) in &stale {
            tracing::info!(
                table = %table.name,
                partition = %partition.path(),
                reason,
                "partition changed while being compacted; planning it anew"
            );
        }
        if round == ROUNDS {
            report.abandoned = stale.len();
            tracing::warn!(
                table = %table.name,
                partitions = stale.len(),
                rounds = ROUNDS,
                "partitions kept changing while being compacted; left for the next run"
            );
        } else {
            report.replanned += stale.len();
            only = Some(stale.into_keys().collect());
        }
    }
    Ok((table, report))
}

/// Deletes files no metadata references (a rewrite that did not land).
async fn delete_files<'a>(store: &TableStore, files: impl IntoIterator<Item = &'a DataFile>) {
    for file in files {
        let _ = store.file_io().delete(file.file_path()).await;
    }
}
