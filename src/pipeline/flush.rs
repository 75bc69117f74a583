//! One flush: a full buffer becomes two commits, rejected records first
//! (with the rejected table's own checkpoint), then the events.
//!
//! The events go through three steps:
//! 1. [`plan`]: which rows are inserted, skipped as duplicates, or replace a
//!    live row (a position delete), decided against the key index; rows older
//!    than the index covers are set aside for the table probe ([`probe_late`]).
//! 2. [`write`]: one or more Parquet files per partition, encoded in parallel
//!    (at most `write_parallelism` at a time), and the position-delete files.
//! 3. [`commit_events`]: the snapshot with the checkpoint, rebased on a lost
//!    race; then the key index learns the new rows.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use iceberg::spec::DataFile;

use super::buffer::{Buffer, PartitionRows};
use super::held::Holding;
use super::tables::Tables;
use super::upsert::{Deletes, KeyRebase, Written, upsert_against_index, upsert_against_table};
use super::{RunError, RunReport};
use crate::checkpoint::{Checkpoint, SourcePosition};
use crate::config::DedupMode;
use crate::event::{EventColumns, RecordPosition, rejected_batch};
use crate::failpoint::{self, FailPoint};
use crate::table::index::KeyIndex;
use crate::table::probe::Lookup;
use crate::table::summary::QualityCounts;
use crate::table::writer::Partition;
use crate::table::{Change, TableError};
use crate::telemetry::Progress;
use crate::telemetry::events;
use crate::telemetry::metrics::CommitRecord;

/// Writes and commits one batch: rejected records first, then events.
pub(super) async fn flush(
    tables: &mut Tables,
    mut buffer: Buffer,
    report: &mut RunReport,
    progress: &Progress,
) -> Result<(), RunError> {
    // Nothing read moves no position: there is nothing to commit (a
    // hand-off's stop marker alone, say).
    if !buffer.spans.values().any(|s| s.to.is_after(&s.from)) {
        return Ok(());
    }
    let held = tables.held.clone();
    held.set(buffer.memory());
    let _holding = Holding(&held);
    commit_rejects(tables, &mut buffer, report, progress).await?;
    let mut plan = plan(&mut buffer, &tables.index, tables.dedup_mode);
    held.set(plan.partitions.iter().map(|p| p.rows.memory()).sum());
    probe_late(&mut plan, tables).await?;
    let written = write(tables, plan.partitions, &mut plan.deletes, report).await?;
    commit_events(
        tables,
        &buffer,
        written,
        plan.deletes,
        plan.counts,
        report,
        progress,
    )
    .await?;
    tables.expire_if_due().await;
    Ok(())
}

/// Commits the buffer's rejected records that the rejected table does not
/// hold yet (a resumed run re-reads records after the events checkpoint;
/// some of its rejects may be stored).
async fn commit_rejects(
    tables: &mut Tables,
    buffer: &mut Buffer,
    report: &mut RunReport,
    progress: &Progress,
) -> Result<(), RunError> {
    let rejected_checkpoint = tables.rejected.table.checkpoint()?;
    let rejects: Vec<_> = buffer
        .take_rejects()
        .into_iter()
        .filter(|(source, r)| {
            rejected_checkpoint
                .get(&source.key)
                .is_none_or(|p| !already_stored(&source.display, &r.origin.position, p))
        })
        .map(|(_, r)| r)
        .collect();
    if rejects.is_empty() {
        return Ok(());
    }
    let batch = rejected_batch(&tables.rejected.schema, &rejects).map_err(TableError::from)?;
    let file = tables
        .rejected
        .writer
        .write(
            &Partition::none(),
            batch.num_rows(),
            std::iter::once(Ok(batch)),
        )
        .await?;
    report.files_written += 1;
    report.bytes_written += file.file_size_in_bytes();
    failpoint::hit(FailPoint::AfterDataFiles);
    let mut counts = QualityCounts::default();
    for r in &rejects {
        counts.reject(r.reason);
    }
    let change = checkpointed_change(
        buffer,
        &rejected_checkpoint,
        vec![file],
        counts.rejected_summary(),
        false,
    );
    let commit_started = Instant::now();
    let outcome = tables.store.commit(&tables.rejected.table, &change).await?;
    let record = CommitRecord {
        table: &tables.rejected.table.name.to_string(),
        counts: &counts,
        files: 1,
        bytes: change.added_data_files[0].file_size_in_bytes(),
        conflicts: outcome.conflicts,
        latency: commit_started.elapsed(),
        newest_micros: None,
        events: false,
        health: outcome.health.map(|h| (h.metadata_bytes, h.manifests)),
    };
    events::committed(&record, outcome.snapshot_id);
    report.rejected_snapshots += 1;
    report.commit_conflicts += u64::from(outcome.conflicts);
    progress
        .rejected_committed
        .fetch_add(rejects.len() as u64, Ordering::Relaxed);
    tables.rejected.table = outcome.table;
    Ok(())
}

/// What a flush does with the buffered events, decided before anything is
/// written.
pub(super) struct FlushPlan {
    /// The rows of each partition, and the slots of those to insert.
    pub partitions: Vec<Planned>,
    /// Rows older than the key index covers, as (index in `partitions`,
    /// slot): the table decides them ([`probe_late`]).
    pub late: Vec<(usize, u32)>,
    /// Live rows the inserted ones replace.
    pub deletes: Deletes,
    /// The buffer's counts, with the duplicates the plan found.
    pub counts: QualityCounts,
}

/// One partition of a [`FlushPlan`].
pub(super) struct Planned {
    /// The partition.
    pub partition: Partition,
    /// Its buffered rows.
    pub rows: PartitionRows,
    /// Slots of the rows to insert.
    pub insert: Vec<u32>,
}

/// Decides every buffered row against the key index: insert, skip (a
/// duplicate), or insert and delete the live row it replaces. Touches
/// neither the table nor the files.
pub(super) fn plan(buffer: &mut Buffer, index: &KeyIndex, mode: DedupMode) -> FlushPlan {
    let mut deletes = Deletes::new();
    let mut counts = buffer.counts.clone();
    buffer.forget_keys();
    let taken = buffer.take_partitions();
    let mut partitions = Vec::with_capacity(taken.len());
    let mut late = Vec::new();
    for (i, (partition, rows)) in taken.into_iter().enumerate() {
        let live = rows.live_slots();
        // A partition is one day: the index covers all its rows or none.
        let insert = match partition.day.is_none_or(|day| index.covers(day)) {
            true => live
                .into_iter()
                .filter(|&s| {
                    let (key, hash) = (
                        rows.columns.key(s as usize),
                        rows.columns.content_hash(s as usize),
                    );
                    upsert_against_index(index, mode, key, hash, &mut deletes, &mut counts)
                })
                .collect(),
            false => {
                late.extend(live.into_iter().map(|s| (i, s)));
                Vec::new()
            }
        };
        partitions.push(Planned {
            partition,
            rows,
            insert,
        });
    }
    FlushPlan {
        partitions,
        late,
        deletes,
        counts,
    }
}

/// Decides the plan's late rows: by the key index when it holds the key
/// (the rows this run committed, late days included: a hit is as
/// authoritative as for recent rows), otherwise by looking the key up in
/// the table (bloom filters, then the files), skipping files whose every
/// key the index holds. The rows kept join their partitions.
async fn probe_late(plan: &mut FlushPlan, tables: &mut Tables) -> Result<(), RunError> {
    if plan.late.is_empty() {
        return Ok(());
    }
    let mode = tables.dedup_mode;
    let index = &tables.index;
    let mut probe = tables
        .probe
        .probe(&tables.store, &tables.events.table, index)
        .await?;
    // Late rows come partition by partition: each partition's rows the
    // index lacks are looked up in the table at once.
    let late = std::mem::take(&mut plan.late);
    for group in late.chunk_by(|a, b| a.0 == b.0) {
        let planned = &mut plan.partitions[group[0].0];
        let columns = &planned.rows.columns;
        let asked: Vec<bool> = group
            .iter()
            .map(|&(_, s)| index.get(columns.key(s as usize)).is_none())
            .collect();
        let lookups: Vec<Lookup> = group
            .iter()
            .zip(&asked)
            .filter(|(_, asked)| **asked)
            .map(|(&(_, s), _)| Lookup {
                event_uuid: columns.event_uuid(s as usize),
                key: columns.key(s as usize),
                created_micros: columns.created_micros(s as usize),
            })
            .collect();
        let mut answers = probe
            .find_many(&planned.partition, &lookups)
            .await?
            .into_iter();
        for (&(_, slot), asked) in group.iter().zip(asked) {
            let (key, hash) = (
                columns.key(slot as usize),
                columns.content_hash(slot as usize),
            );
            let keep = if asked {
                let live = answers.next().flatten();
                upsert_against_table(live, mode, hash, &mut plan.deletes, &mut plan.counts)
            } else {
                probe.stats.index_hits += 1;
                upsert_against_index(index, mode, key, hash, &mut plan.deletes, &mut plan.counts)
            };
            if keep {
                planned.insert.push(slot);
            }
        }
    }
    let stats = probe.stats;
    tracing::info!(
        index_hits = stats.index_hits,
        lookups = stats.lookups,
        skipped_complete = stats.skipped_complete,
        bloom_checks = stats.bloom_checks,
        blooms_read = stats.blooms_read,
        files_read = stats.files_read,
        reloaded = stats.reloaded,
        snapshots_applied = stats.snapshots_applied,
        cache_bytes = tables.probe.bytes(),
        "probed the table for events older than the dedup window"
    );
    Ok(())
}

/// What [`write`] wrote of the events.
pub(super) struct Encoded {
    /// The data files, with the keys of their rows in file order.
    written: Vec<Written>,
    /// The position-delete files.
    delete_files: Vec<DataFile>,
    /// Rows in the data files.
    rows: u64,
    /// The newest `created_datetime` written (freshness).
    newest_micros: Option<i64>,
}

/// Writes the planned rows, one file per partition or more when a
/// partition exceeds the target file size, in parallel but at most
/// `write_parallelism` at a time (so only that many encoders are alive);
/// then the position-delete files. A file's rows are copied into Arrow
/// [`SLICE_ROWS`] at a time as it is encoded, and a partition's columns are
/// freed once its files are.
async fn write(
    tables: &mut Tables,
    partitions: Vec<Planned>,
    deletes: &mut Deletes,
    report: &mut RunReport,
) -> Result<Encoded, RunError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(tables.write_parallelism));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rows_written = 0u64;
    let mut heap_bytes = 0usize;
    let mut newest_micros = None;
    for Planned {
        partition,
        rows,
        mut insert,
    } in partitions
    {
        let bytes = rows.memory();
        if insert.is_empty() {
            // Nothing to write (all duplicates): its rows go now.
            drop(rows);
            tables.held.release(bytes);
            continue;
        }
        let columns = Arc::new(rows.columns);
        rows_written += insert.len() as u64;
        newest_micros = insert
            .iter()
            .map(|&s| columns.created_micros(s as usize))
            .max()
            .max(newest_micros);
        let partition_bytes: usize = insert.iter().map(|&s| columns.row_bytes(s as usize)).sum();
        heap_bytes += partition_bytes;
        let files = (partition_bytes as f64 * tables.file_bytes_per_heap_byte
            / tables.target_file_size as f64)
            .ceil()
            .max(1.0) as usize;
        let per_file = insert.len().div_ceil(files);
        let writer = tables.events.writer.clone();
        let schema = tables.events.schema.clone();
        let permits = permits.clone();
        let held = tables.held.clone();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            // Sort order: event_type (constant in a partition), created_datetime.
            // Split after sorting, so files of a partition cover disjoint
            // time ranges and scans prune by created_datetime bounds. The
            // sort is stable: equal times stay in arrival order.
            insert.sort_by_key(|&s| columns.created_micros(s as usize));
            let insert: Arc<[u32]> = insert.into();
            let mut files = Vec::new();
            for start in (0..insert.len()).step_by(per_file) {
                let part = start..(start + per_file).min(insert.len());
                // Row i of the file is slot part[i]: what the index learns after the commit.
                let keys: Vec<(u128, i64)> = insert[part.clone()]
                    .iter()
                    .map(|&s| (columns.key(s as usize), columns.content_hash(s as usize)))
                    .collect();
                let batches = slices(columns.clone(), schema.clone(), insert.clone(), part);
                let file = writer.write(&partition, keys.len(), batches).await?;
                files.push(Written {
                    file,
                    partition: partition.clone(),
                    keys,
                });
            }
            drop(columns);
            held.release(bytes);
            Ok::<_, TableError>(files)
        });
    }
    let mut written = Vec::with_capacity(tasks.len());
    while let Some(done) = tasks.join_next().await {
        let done = done.map_err(|e| {
            TableError::Iceberg(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("writing a data file panicked: {e}"),
            ))
        })??;
        written.extend(done);
    }
    let mut delete_files = Vec::with_capacity(deletes.len());
    for (partition, positions) in deletes.iter_mut() {
        let file = tables
            .events
            .writer
            .write_position_deletes(partition, positions)
            .await?;
        report.bytes_written += file.file_size_in_bytes();
        delete_files.push(file);
    }
    report.files_written += delete_files.len() as u64;
    let flushed_bytes: u64 = written.iter().map(|w| w.file.file_size_in_bytes()).sum();
    report.bytes_written += flushed_bytes;
    if heap_bytes > 0 && flushed_bytes > 0 {
        // Learn how much a buffered byte weighs on disk, to size the next files.
        tables.file_bytes_per_heap_byte = flushed_bytes as f64 / heap_bytes as f64;
    }
    report.files_written += written.len() as u64;
    Ok(Encoded {
        written,
        delete_files,
        rows: rows_written,
        newest_micros,
    })
}

/// Rows in one record batch of a data file: about 3 MiB of Arrow for
/// events of 400 bytes, however large the file.
pub(super) const SLICE_ROWS: usize = 8192;

/// The rows at `slots[part]` of `columns`, as record batches of at most
/// [`SLICE_ROWS`] rows, each built when the file's writer takes it.
fn slices(
    columns: Arc<EventColumns>,
    schema: SchemaRef,
    slots: Arc<[u32]>,
    part: std::ops::Range<usize>,
) -> impl Iterator<Item = Result<RecordBatch, ArrowError>> + Send + 'static {
    let end = part.end;
    part.step_by(SLICE_ROWS)
        .map(move |s| columns.batch(&schema, &slots[s..(s + SLICE_ROWS).min(end)]))
}

/// Commits the written events with the buffer's checkpoint, rebasing the
/// deletes on whatever another writer committed meanwhile; then the key
/// index learns the rows, and the commit is counted and logged.
async fn commit_events(
    tables: &mut Tables,
    buffer: &Buffer,
    encoded: Encoded,
    deletes: Deletes,
    mut counts: QualityCounts,
    report: &mut RunReport,
    progress: &Progress,
) -> Result<(), RunError> {
    let Encoded {
        written,
        delete_files,
        rows,
        newest_micros,
    } = encoded;
    let events_checkpoint = tables.events.table.checkpoint()?;
    counts.rows_written = rows;
    let files: Vec<DataFile> = written.iter().map(|w| w.file.clone()).collect();
    let mut change =
        checkpointed_change(buffer, &events_checkpoint, files, counts.to_summary(), true);
    change.added_delete_files = delete_files;
    failpoint::hit(FailPoint::AfterDataFiles);
    let mut rebase = KeyRebase {
        store: &tables.store,
        writer: &tables.events.writer,
        index: &mut tables.index,
        mode: tables.dedup_mode,
        written: &written,
        deletes,
        withdrawn: HashSet::new(),
        counts: &mut counts,
    };
    let commit_started = Instant::now();
    let outcome = tables
        .store
        .commit_rebasing(&tables.events.table, &mut change, Some(&mut rebase))
        .await?;
    let commit_latency = commit_started.elapsed();
    let withdrawn = std::mem::take(&mut rebase.withdrawn);
    failpoint::hit(FailPoint::BeforePositionsAdvance);
    // The rows are in the table now: the index may point at them.
    for (i, w) in written.iter().enumerate() {
        let id = tables
            .index
            .add_file(w.file.file_path(), w.partition.clone());
        for (pos, (key, hash)) in w.keys.iter().enumerate() {
            if !withdrawn.contains(&(i, pos as u32)) {
                tables.index.insert(*key, id, pos as u32, *hash);
            }
        }
    }
    let dropped = tables.index.evict_to_budget();
    if dropped > 0 {
        tracing::warn!(
            days = dropped,
            oldest_day = %crate::table::writer::format_day(tables.index.oldest_day()),
            "the key index reached its memory budget: older days are now checked in the table"
        );
    }
    report.event_snapshots += 1;
    report.commit_conflicts += u64::from(outcome.conflicts);
    report.counts.add_capped(&counts);
    let record = CommitRecord {
        table: &tables.events.table.name.to_string(),
        counts: &counts,
        files: (change.added_data_files.len() + change.added_delete_files.len()) as u64,
        bytes: change
            .added_data_files
            .iter()
            .chain(&change.added_delete_files)
            .map(|f| f.file_size_in_bytes())
            .sum(),
        conflicts: outcome.conflicts,
        latency: commit_latency,
        newest_micros,
        events: true,
        health: outcome.health.map(|h| (h.metadata_bytes, h.manifests)),
    };
    events::committed(&record, outcome.snapshot_id);
    progress
        .rows_committed
        .fetch_add(counts.rows_written, Ordering::Relaxed);
    tables.events.table = outcome.table;
    tables
        .committed
        .send_replace(tables.events.table.checkpoint()?);
    crate::telemetry::metrics().buffered(0, 0);
    Ok(())
}

/// Whether a record at `position` of `source` (its display name) is at or
/// before the committed `checkpoint` of its source.
fn already_stored(source: &str, position: &RecordPosition, checkpoint: &SourcePosition) -> bool {
    match (position, checkpoint) {
        (RecordPosition::Line { offset, .. }, SourcePosition::File(p)) => *offset < p.offset,
        // An object's records: its key is its name after the bucket
        // (`s3://bucket/key`); keys before the checkpoint's are done.
        (RecordPosition::Line { offset, .. }, SourcePosition::Object(p)) => {
            let key = object_key(source);
            (key, *offset) < (p.key.as_str(), p.offset) || (p.done && key == p.key)
        }
        (RecordPosition::Record { seq, .. }, SourcePosition::Shard(p)) => {
            crate::checkpoint::sequence_cmp(Some(seq), p.seq.as_deref())
                != std::cmp::Ordering::Greater
        }
        _ => false,
    }
}

/// The key of an object from its display name `s3://bucket/key`.
fn object_key(display: &str) -> &str {
    display
        .strip_prefix(crate::source::s3::SCHEME)
        .and_then(|rest| rest.split_once('/'))
        .map_or(display, |(_, key)| key)
}

/// A change adding `files`, moving every source of `buffer` from where
/// `committed` says it stands to the end of the buffer.
///
/// With `from_reads` (the events table), a shard moves from where its
/// records were read from, so that the commit is refused if the table's
/// checkpoint is anywhere else by then (another task committed the shard).
fn checkpointed_change(
    buffer: &Buffer,
    committed: &Checkpoint,
    files: Vec<DataFile>,
    summary: BTreeMap<String, String>,
    from_reads: bool,
) -> Change {
    let mut checkpoint_from = BTreeMap::new();
    let mut checkpoint_to = Checkpoint::new();
    for (key, span) in &buffer.spans {
        if !span.source.checkpointed {
            continue;
        }
        if from_reads && matches!(span.from, SourcePosition::Shard(_)) {
            if span.to.is_after(&span.from) {
                checkpoint_from.insert(key.clone(), span.from.as_committed());
                checkpoint_to.set(key, span.to.clone());
            }
            continue;
        }
        let stored = committed.get(key);
        // The rejected table's checkpoint may lag (no rejects lately) or lead
        // (a crash after its commit); either way it moves to the batch's end.
        if stored.is_none_or(|p| span.to.is_after(p)) {
            checkpoint_from.insert(key.clone(), stored.cloned());
            checkpoint_to.set(key, span.to.clone());
        }
    }
    Change {
        added_data_files: files,
        added_delete_files: Vec::new(),
        removed_files: Vec::new(),
        summary,
        checkpoint_from,
        checkpoint_to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::ObjectPosition;

    #[test]
    fn an_objects_rejects_below_the_checkpoint_are_already_stored() {
        let at = |key: &str, offset, done| {
            SourcePosition::Object(ObjectPosition {
                key: key.into(),
                etag: "\"e\"".into(),
                offset,
                line: 0,
                done,
            })
        };
        let line = |offset| RecordPosition::Line { line: 1, offset };
        let partway = at("p/b.jsonl", 100, false);
        let cases = [
            ("s3://raw/p/a.json.gz", 5000, &partway, true),
            ("s3://raw/p/b.jsonl", 99, &partway, true),
            ("s3://raw/p/b.jsonl", 100, &partway, false),
            ("s3://raw/p/c.jsonl", 0, &partway, false),
        ];
        for (source, offset, checkpoint, stored) in cases {
            assert_eq!(
                already_stored(source, &line(offset), checkpoint),
                stored,
                "{source} at {offset}"
            );
        }
        let done = at("p/b.jsonl", 100, true);
        assert!(already_stored("s3://raw/p/b.jsonl", &line(100), &done));
        assert!(!already_stored("s3://raw/p/c.jsonl", &line(0), &done));
    }
}
