//! Table maintenance (`floe maintain`): compaction, snapshot expiry and
//! orphan file removal.
//!
//! Each is a commit through the snapshot producer, a compare-and-swap like
//! any ingest commit, so it never overwrites a writer's commit and a running
//! `floe run` reconciles with it (its rebase moves the key index to the
//! compacted files; see `pipeline::upsert`).
//!
//! - **Compaction** rewrites, per partition, the small data files and every
//!   file a position delete points into, with the deletes applied, into
//!   files near the target size, and removes the partition's delete files in
//!   the same `replace` commit. A writer that commits deletes against those
//!   files meanwhile makes the plan stale: the commit is refused and the
//!   partition planned anew from the table as it then is (the Iceberg spec's
//!   rule that a rewrite must not drop deletes added after it began).
//! - **Expiry** removes snapshots older than an age, keeping a number of the
//!   newest and always the current one, then deletes the files only they
//!   referenced. Checkpoints live in table properties, so resuming never
//!   needs an old snapshot.
//! - **Orphan removal** deletes files under the table's location that no
//!   metadata references (the leftovers of crashed commits), when older than
//!   a safety age: a file a writer is about to commit is younger.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use futures::future::BoxFuture;
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::scan::{FileScanTask, FileScanTaskDeleteFile};
use iceberg::spec::{DataContentType, DataFile, DataFileBuilder};

use super::index::{Map, events_partition, read_position_deletes};
use super::writer::{DataWriter, FileSettings, Partition};
use super::{Change, LoadedTable, Rebase, TableError, TableLayout, TableStore};

/// How maintenance treats a table.
#[derive(Debug, Clone)]
pub struct MaintainSettings {
    /// Size compacted files aim at; data files under 3/4 of it are "small".
    pub target_file_size: u64,
    /// Snapshots older than this may be expired.
    pub expire_older_than: Duration,
    /// The newest snapshots kept whatever their age (at least 1).
    pub keep_snapshots: usize,
    /// Unreferenced files younger than this are left alone.
    pub orphan_older_than: Duration,
}

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

/// What an orphan removal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Files found under the table's location.
    pub files_listed: usize,
    /// Unreferenced ones deleted.
    pub orphans_deleted: usize,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Unreferenced ones left because they are younger than the safety age.
    pub too_young: usize,
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

/// One partition's rewrite.
#[derive(Debug, Clone)]
struct PartitionPlan {
    partition: Partition,
    /// Data files to rewrite (entries without column statistics: a backlog
    /// of 100,000 small files must not be held with all of theirs).
    data: Vec<DataFile>,
    /// Position delete files to remove (every one of the partition).
    deletes: Vec<DataFile>,
    /// Positions those deletes remove from `data`.
    deleted_rows: u64,
    /// The partition spec of its files.
    spec_id: i32,
}

impl PartitionPlan {
    fn live_rows(&self) -> u64 {
        self.data.iter().map(DataFile::record_count).sum::<u64>() - self.deleted_rows
    }

    fn input_files(&self) -> usize {
        self.data.len() + self.deletes.len()
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

/// Commits one batch of rewritten partitions planned on `planned_at`:
/// first drops the partitions that changed since (earlier batches' commits
/// included), then commits the rest, dropping more after each lost swap.
/// Dropped partitions go to `stale`; the table as it then is comes back.
async fn commit_batch(
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

/// Deletes files no metadata references (a rewrite that did not land).
async fn delete_files<'a>(store: &TableStore, files: impl IntoIterator<Item = &'a DataFile>) {
    for file in files {
        let _ = store.file_io().delete(file.file_path()).await;
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
async fn plan(
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

/// The scan tasks of `plan`'s data files, each with every delete file of
/// the partition (a position delete names the files it applies to).
fn scan_tasks(table: &LoadedTable, plan: &PartitionPlan) -> Result<Vec<FileScanTask>, TableError> {
    if table.metadata.partition_spec_by_id(plan.spec_id).is_none() {
        return Err(TableError::Incompatible {
            table: table.name.clone(),
            message: format!(
                "partition {} names partition spec {}, which the table lacks",
                plan.partition.path(),
                plan.spec_id
            ),
        });
    }
    let schema = table.metadata.current_schema().clone();
    let field_ids: Vec<i32> = schema.as_struct().fields().iter().map(|f| f.id).collect();
    let deletes: Vec<FileScanTaskDeleteFile> = plan
        .deletes
        .iter()
        .map(|d| FileScanTaskDeleteFile {
            file_path: d.file_path().to_string(),
            file_size_in_bytes: d.file_size_in_bytes(),
            file_type: d.content_type(),
            partition_spec_id: plan.spec_id,
            equality_ids: None,
        })
        .collect();
    Ok(plan
        .data
        .iter()
        .map(|file| FileScanTask {
            file_size_in_bytes: file.file_size_in_bytes(),
            start: 0,
            length: file.file_size_in_bytes(),
            record_count: Some(file.record_count()),
            data_file_path: file.file_path().to_string(),
            data_file_format: file.file_format(),
            project_field_ids: field_ids.clone(),
            schema: schema.clone(),
            predicate: None,
            deletes: deletes.clone(),
            // Every column is read from the file (Floe writes the partition
            // source columns), not filled in from the partition tuple.
            partition: None,
            partition_spec: None,
            name_mapping: None,
            case_sensitive: true,
        })
        .collect())
}

/// Rewrites one partition's files, deletes applied, into new files.
async fn rewrite_partition(
    store: &TableStore,
    base: &LoadedTable,
    writer: &DataWriter,
    plan: &PartitionPlan,
    settings: &MaintainSettings,
) -> Result<Vec<DataFile>, TableError> {
    let selected: Vec<_> = scan_tasks(base, plan)?.into_iter().map(Ok).collect();
    let reader = ArrowReaderBuilder::new(store.file_io().clone(), iceberg::Runtime::try_current()?)
        .with_data_file_concurrency_limit(1)
        .build();
    let mut batches = reader
        .read(Box::pin(futures::stream::iter(selected)))?
        .stream();
    let schema = writer.arrow_schema()?;
    let rows_hint = plan.live_rows() as usize;
    let mut written = Vec::new();
    let mut open = None;
    let mut rows = 0u64;
    while let Some(batch) = batches.try_next().await? {
        if batch.num_rows() == 0 {
            continue;
        }
        // Same columns, with the writer's field metadata.
        let batch = arrow_array::RecordBatch::try_new(schema.clone(), batch.columns().to_vec())?;
        let file = match &mut open {
            Some(file) => file,
            None => open.insert(writer.open(&plan.partition, rows_hint).await?),
        };
        file.write(&batch).await?;
        rows += batch.num_rows() as u64;
        if file.written_bytes() as u64 >= settings.target_file_size
            && let Some(file) = open.take()
        {
            written.push(file.close().await?);
        }
    }
    if let Some(file) = open.take() {
        written.push(file.close().await?);
    }
    if rows != plan.live_rows() {
        delete_files(store, &written).await;
        return Err(TableError::Incompatible {
            table: base.name.clone(),
            message: format!(
                "compacting partition {} read {rows} rows where its files hold {} live rows; \
                 nothing was committed",
                plan.partition.path(),
                plan.live_rows()
            ),
        });
    }
    Ok(written)
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

/// Every file the table's metadata references: metadata files in its log,
/// statistics, and each snapshot's manifest list, manifests and live content
/// files. (A file a snapshot marks deleted is live in its parent's manifests
/// while the parent is kept.) Manifests in `seen` are skipped; those read
/// are added to it.
async fn referenced_files(
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
async fn collect_snapshot_files(
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

/// A file found under a table's location.
#[derive(Debug, Clone)]
pub struct ListedFile {
    /// Its full URI, as metadata names it (`file:///...`, `s3://...`).
    pub uri: String,
    /// Bytes.
    pub size: u64,
    /// Last modified.
    pub modified: SystemTime,
}

/// Lists the files of a warehouse (local folder or S3 bucket).
pub struct FileLister {
    operator: opendal::Operator,
    /// What turns an operator path into a URI: `file:///` or `s3://bucket/`.
    uri_root: String,
}

impl FileLister {
    /// A lister over the local file system.
    pub fn local() -> Result<Self, TableError> {
        let operator = opendal::Operator::new(opendal::services::Fs::default().root("/"))
            .map_err(listing_err)?
            .finish();
        Ok(Self {
            operator,
            uri_root: "file:///".into(),
        })
    }

    /// A lister over an S3 bucket through `operator`.
    pub fn s3(operator: opendal::Operator, bucket: &str) -> Self {
        Self {
            operator,
            uri_root: format!("s3://{bucket}/"),
        }
    }

    /// Every file under `uri` (a folder URI this lister serves).
    pub async fn list(&self, uri: &str) -> Result<Vec<ListedFile>, TableError> {
        let Some(relative) = uri.strip_prefix(&self.uri_root) else {
            return Err(listing_err(format!(
                "{uri} is not under {}, which this warehouse lists",
                self.uri_root
            )));
        };
        let folder = format!("{}/", relative.trim_end_matches('/'));
        let entries = self
            .operator
            .list_with(&folder)
            .recursive(true)
            .await
            .map_err(listing_err)?;
        let mut out = Vec::new();
        for entry in entries {
            if !entry.metadata().is_file() {
                continue;
            }
            let path = entry.path().to_string();
            let metadata = match entry.metadata().last_modified() {
                Some(_) => entry.metadata().clone(),
                None => self.operator.stat(&path).await.map_err(listing_err)?,
            };
            out.push(ListedFile {
                uri: format!("{}{path}", self.uri_root),
                size: metadata.content_length(),
                modified: metadata
                    .last_modified()
                    .map_or(SystemTime::UNIX_EPOCH, SystemTime::from),
            });
        }
        Ok(out)
    }
}

/// A URI without its `file:` scheme and slashes (`file:/a`, `file:///a`
/// and `/a` name the same local file), so spellings compare equal.
fn path_key(uri: &str) -> &str {
    match uri.strip_prefix("file:") {
        Some(rest) => rest.trim_start_matches('/'),
        None if uri.starts_with('/') => uri.trim_start_matches('/'),
        None => uri,
    }
}

fn listing_err(e: impl std::fmt::Display) -> TableError {
    TableError::Iceberg(iceberg::Error::new(
        iceberg::ErrorKind::Unexpected,
        format!("listing files: {e}"),
    ))
}

/// Deletes files under the table's location that nothing references and
/// that are older than the safety age.
pub async fn remove_orphans(
    store: &TableStore,
    lister: &FileLister,
    table: &LoadedTable,
    settings: &MaintainSettings,
    now: SystemTime,
) -> Result<OrphanReport, TableError> {
    let mut referenced = referenced_files(store, table, &mut HashSet::new()).await?;
    referenced.insert(table.metadata_location.clone());
    let listed = lister.list(table.location()).await?;
    let mut report = OrphanReport {
        files_listed: listed.len(),
        ..OrphanReport::default()
    };
    let referenced: HashSet<&str> = referenced.iter().map(|u| path_key(u)).collect();
    for file in listed {
        if referenced.contains(path_key(&file.uri)) {
            continue;
        }
        let age = now.duration_since(file.modified).unwrap_or_default();
        if age < settings.orphan_older_than {
            report.too_young += 1;
            continue;
        }
        store.file_io().delete(&file.uri).await?;
        report.orphans_deleted += 1;
        report.bytes_deleted += file.size;
    }
    tracing::info!(
        table = %table.name,
        listed = report.files_listed,
        deleted = report.orphans_deleted,
        bytes = report.bytes_deleted,
        too_young = report.too_young,
        "removed orphan files"
    );
    Ok(report)
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
