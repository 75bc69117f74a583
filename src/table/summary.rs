//! Snapshot summaries: the spec's standard totals and Floe's quality counters.
//!
//! Totals are the parent's totals plus what a commit adds (minus what it
//! removes, from step 2 on), so `total-records` and friends stay exact without
//! reading any manifest. Floe's own keys are prefixed `floe.` and hold the
//! counts of the records behind that one commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use iceberg::spec::{DataContentType, DataFile, Operation};

use crate::event::RejectReason;

/// What one commit did to the data, per the spec's summary fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileDelta {
    /// Data files added.
    pub added_data_files: u64,
    /// Rows in those files.
    pub added_records: u64,
    /// Bytes of those files.
    pub added_files_size: u64,
    /// Distinct partitions touched.
    pub changed_partitions: u64,
    /// Position delete files added.
    pub added_position_delete_files: u64,
    /// Row positions those files delete.
    pub added_position_deletes: u64,
    /// Bytes of those files.
    pub added_delete_files_size: u64,
    /// Data files removed (rewritten by a compaction).
    pub removed_data_files: u64,
    /// Rows in those files.
    pub removed_records: u64,
    /// Bytes of those files.
    pub removed_files_size: u64,
    /// Position delete files removed.
    pub removed_position_delete_files: u64,
    /// Row positions those files deleted.
    pub removed_position_deletes: u64,
    /// Bytes of those files.
    pub removed_delete_files_size: u64,
}

impl FileDelta {
    /// The delta of adding these data and position delete files and
    /// removing `removed` (data and delete files alike).
    pub fn of_change(data: &[DataFile], deletes: &[DataFile], removed: &[DataFile]) -> Self {
        let mut partitions: Vec<_> = data
            .iter()
            .chain(deletes)
            .chain(removed)
            .map(|f| f.partition())
            .collect();
        partitions.sort_by_key(|p| format!("{p:?}"));
        partitions.dedup();
        let positional = |files: &[DataFile]| -> (u64, u64) {
            let files = files
                .iter()
                .filter(|f| f.content_type() == DataContentType::PositionDeletes);
            files.fold((0, 0), |(n, rows), f| (n + 1, rows + f.record_count()))
        };
        let data_only = |files: &[DataFile]| -> (u64, u64, u64) {
            let files = files
                .iter()
                .filter(|f| f.content_type() == DataContentType::Data);
            files.fold((0, 0, 0), |(n, rows, bytes), f| {
                (
                    n + 1,
                    rows + f.record_count(),
                    bytes + f.file_size_in_bytes(),
                )
            })
        };
        let (added_data_files, added_records, added_files_size) = data_only(data);
        let (added_position_delete_files, added_position_deletes) = positional(deletes);
        let (removed_data_files, removed_records, removed_files_size) = data_only(removed);
        let (removed_position_delete_files, removed_position_deletes) = positional(removed);
        let delete_bytes = |files: &[DataFile]| -> u64 {
            files
                .iter()
                .filter(|f| f.content_type() != DataContentType::Data)
                .map(|f| f.file_size_in_bytes())
                .sum()
        };
        Self {
            added_data_files,
            added_records,
            added_files_size,
            changed_partitions: partitions.len() as u64,
            added_position_delete_files,
            added_position_deletes,
            added_delete_files_size: delete_bytes(deletes),
            removed_data_files,
            removed_records,
            removed_files_size,
            removed_position_delete_files,
            removed_position_deletes,
            removed_delete_files_size: delete_bytes(removed),
        }
    }

    /// The spec's operation for this delta: `append` adds data only,
    /// `delete` adds deletes only, `overwrite` does both (a row-level
    /// upsert), `replace` removes files and adds their rows anew (a
    /// compaction: the table's rows stay the same).
    pub fn operation(&self) -> Operation {
        if self.removed_data_files + self.removed_position_delete_files > 0 {
            return Operation::Replace;
        }
        match (
            self.added_data_files > 0,
            self.added_position_delete_files > 0,
        ) {
            (_, false) => Operation::Append,
            (false, true) => Operation::Delete,
            (true, true) => Operation::Overwrite,
        }
    }
}

/// The standard totals a snapshot summary carries.
const TOTALS: [&str; 6] = [
    "total-records",
    "total-files-size",
    "total-data-files",
    "total-delete-files",
    "total-position-deletes",
    "total-equality-deletes",
];

/// The spec's summary fields for a commit applying `delta` on a parent with
/// summary `parent` (`None` for the first snapshot). When the parent lacks a
/// total (written by a tool that does not keep them), that total is left out
/// rather than guessed.
pub fn standard_summary(
    parent: Option<&HashMap<String, String>>,
    delta: &FileDelta,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: u64| {
        out.insert(k.to_string(), v.to_string());
    };
    put("added-data-files", delta.added_data_files);
    put("added-records", delta.added_records);
    put("added-files-size", delta.added_files_size);
    put("changed-partition-count", delta.changed_partitions);
    if delta.added_position_delete_files > 0 {
        put("added-delete-files", delta.added_position_delete_files);
        put(
            "added-position-delete-files",
            delta.added_position_delete_files,
        );
        put("added-position-deletes", delta.added_position_deletes);
    }
    if delta.removed_data_files > 0 {
        put("deleted-data-files", delta.removed_data_files);
        put("deleted-records", delta.removed_records);
    }
    if delta.removed_data_files + delta.removed_position_delete_files > 0 {
        put(
            "removed-files-size",
            delta.removed_files_size + delta.removed_delete_files_size,
        );
    }
    if delta.removed_position_delete_files > 0 {
        put("removed-delete-files", delta.removed_position_delete_files);
        put(
            "removed-position-delete-files",
            delta.removed_position_delete_files,
        );
        put("removed-position-deletes", delta.removed_position_deletes);
    }
    let added = |key: &str| match key {
        "total-records" => delta.added_records,
        "total-files-size" => delta.added_files_size + delta.added_delete_files_size,
        "total-data-files" => delta.added_data_files,
        "total-delete-files" => delta.added_position_delete_files,
        "total-position-deletes" => delta.added_position_deletes,
        _ => 0,
    };
    let removed = |key: &str| match key {
        "total-records" => delta.removed_records,
        "total-files-size" => delta.removed_files_size + delta.removed_delete_files_size,
        "total-data-files" => delta.removed_data_files,
        "total-delete-files" => delta.removed_position_delete_files,
        "total-position-deletes" => delta.removed_position_deletes,
        _ => 0,
    };
    for key in TOTALS {
        let before = match parent {
            None => Some(0),
            Some(p) => p.get(key).and_then(|v| v.parse::<u64>().ok()),
        };
        if let Some(before) = before {
            put(key, (before + added(key)).saturating_sub(removed(key)));
        }
    }
    out
}

/// Summary key prefix of the type-mismatch count of a column.
const TYPE_MISMATCH_PREFIX: &str = "floe.type-mismatch.";

/// Summary key prefix of a missing-field count: `floe.missing.<event_type>:<field>`
/// (an event type never holds a `:`).
const MISSING_PREFIX: &str = "floe.missing.";

/// Records without an optional field, by (event_type, field).
pub type MissingCounts = BTreeMap<(String, String), u64>;

/// How many event types get counts of their own in a snapshot summary, in
/// the run summary and in metric labels. `event_type` comes from the data:
/// a producer that invents names must not grow every snapshot's metadata
/// (Glue refuses metadata over 20 MB) or the metrics without bound.
/// Set once at start (`event_type_limit`), before the first commit.
static EVENT_TYPE_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_EVENT_TYPE_LIMIT);
/// The default of [`event_type_limit`].
pub const DEFAULT_EVENT_TYPE_LIMIT: usize = 100;

/// How many event types get counts of their own (the `event_type_limit`
/// setting; [`DEFAULT_EVENT_TYPE_LIMIT`] unless set).
pub fn event_type_limit() -> usize {
    EVENT_TYPE_LIMIT.load(Ordering::Relaxed)
}

/// Sets [`event_type_limit`], for the whole process.
pub fn set_event_type_limit(limit: std::num::NonZeroUsize) {
    EVENT_TYPE_LIMIT.store(limit.get(), Ordering::Relaxed);
}

/// The event type under which the counts of the types past the limit are
/// summed (totals stay exact).
pub const OTHER_EVENT_TYPES: &str = "_other";

/// `missing` with at most `limit` event types of their own: those with the
/// largest counts (ties by name); the others' counts are summed per field
/// under [`OTHER_EVENT_TYPES`]. For one commit's counts.
pub fn top_event_types(missing: &MissingCounts, limit: usize) -> MissingCounts {
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    for ((event_type, _), n) in missing {
        *by_type.entry(event_type).or_default() += n;
    }
    if by_type.len() <= limit {
        return missing.clone();
    }
    let mut ranked: Vec<(&str, u64)> = by_type.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let kept: std::collections::BTreeSet<&str> =
        ranked.iter().take(limit).map(|(t, _)| *t).collect();
    let mut out = MissingCounts::new();
    for ((event_type, field), n) in missing {
        let label = if kept.contains(event_type.as_str()) {
            event_type.as_str()
        } else {
            OTHER_EVENT_TYPES
        };
        *out.entry((label.to_string(), field.clone())).or_default() += n;
    }
    out
}

/// Adds `from` to `into`, an accumulation that lives long (a run's report,
/// the metrics): the first `limit` event types seen keep counts of their own
/// for good, so a label never moves; every later type is summed under
/// [`OTHER_EVENT_TYPES`].
pub fn add_missing_capped(into: &mut MissingCounts, from: &MissingCounts, limit: usize) {
    let mut known: std::collections::BTreeSet<String> = into
        .keys()
        .map(|(t, _)| t.clone())
        .filter(|t| t != OTHER_EVENT_TYPES)
        .collect();
    for ((event_type, field), n) in from {
        let own =
            known.contains(event_type) || (known.len() < limit && known.insert(event_type.clone()));
        let label = if own {
            event_type.as_str()
        } else {
            OTHER_EVENT_TYPES
        };
        *into.entry((label.to_string(), field.clone())).or_default() += n;
    }
}

/// Adds each count of `from` to the same key's count in `into`.
pub fn add_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (key, n) in from {
        *into.entry(key.clone()).or_default() += n;
    }
}

/// Data-quality counts of the records behind a commit (or a whole run).
///
/// Every record read is exactly one of: a new row, a rejected record, an
/// identical duplicate, a skipped duplicate (`keep-first`), or an older
/// version replaced before it was ever written. So
/// `records_read = rows_written + rejected + duplicates_dropped()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QualityCounts {
    /// Records read (non-blank lines).
    pub records_read: u64,
    /// Rows written to the events table (new keys and new versions).
    pub rows_written: u64,
    /// Duplicates with the same body as the live row: not written.
    pub duplicates_identical: u64,
    /// Older versions replaced by a changed duplicate (last writer wins).
    pub duplicates_replaced: u64,
    /// Changed duplicates skipped in `keep-first` mode.
    pub duplicates_skipped: u64,
    /// Of the replaced versions, those already in the table: rows removed by
    /// a position delete (the others were replaced before being written).
    pub rows_deleted: u64,
    /// Records sent to the rejected table, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Blank lines skipped (not records).
    pub blank_lines: u64,
    /// Values that did not fit their typed column and stayed in `payload`,
    /// by column name.
    pub type_mismatches: BTreeMap<String, u64>,
    /// Valid records without an optional field (`event_subtype` or a typed
    /// column), by (event_type, field).
    pub missing: MissingCounts,
}

impl QualityCounts {
    /// All rejected records.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Valid records that did not become a new row.
    pub fn duplicates_dropped(&self) -> u64 {
        self.duplicates_identical + self.duplicates_skipped + self.duplicates_replaced
            - self.rows_deleted
    }

    /// Adds another set of counts to this one, for an accumulation that
    /// lives long: missing-field counts keep at most [`event_type_limit`]
    /// event types of their own ([`add_missing_capped`]).
    pub fn add_capped(&mut self, other: &QualityCounts) {
        let missing = std::mem::take(&mut self.missing);
        let mut rest = other.clone();
        let from = std::mem::take(&mut rest.missing);
        self.add(&rest);
        self.missing = missing;
        add_missing_capped(&mut self.missing, &from, event_type_limit());
    }

    /// Adds another set of counts to this one.
    pub fn add(&mut self, other: &QualityCounts) {
        self.records_read += other.records_read;
        self.rows_written += other.rows_written;
        self.duplicates_identical += other.duplicates_identical;
        self.duplicates_replaced += other.duplicates_replaced;
        self.duplicates_skipped += other.duplicates_skipped;
        self.rows_deleted += other.rows_deleted;
        self.blank_lines += other.blank_lines;
        add_counts(&mut self.rejected, &other.rejected);
        add_counts(&mut self.type_mismatches, &other.type_mismatches);
        add_counts(&mut self.missing, &other.missing);
    }

    /// Counts one rejected record.
    pub fn reject(&mut self, reason: RejectReason) {
        *self.rejected.entry(reason).or_default() += 1;
    }

    /// The `floe.*` summary keys.
    pub fn to_summary(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = [
            ("floe.records-read", self.records_read),
            ("floe.rows-written", self.rows_written),
            ("floe.duplicates-dropped", self.duplicates_dropped()),
            ("floe.duplicates-identical", self.duplicates_identical),
            ("floe.duplicates-replaced", self.duplicates_replaced),
            ("floe.duplicates-skipped", self.duplicates_skipped),
            ("floe.rows-deleted", self.rows_deleted),
            ("floe.rejected", self.rejected_total()),
            ("floe.blank-lines", self.blank_lines),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (reason, n) in &self.rejected {
            out.insert(format!("floe.rejected.{}", reason.code()), n.to_string());
        }
        for (column, n) in &self.type_mismatches {
            out.insert(format!("{TYPE_MISMATCH_PREFIX}{column}"), n.to_string());
        }
        for ((event_type, field), n) in &top_event_types(&self.missing, event_type_limit()) {
            out.insert(
                format!("{MISSING_PREFIX}{event_type}:{field}"),
                n.to_string(),
            );
        }
        out
    }

    /// The `floe.rejected*` keys only: the summary of a rejected-table commit,
    /// where the other counts belong to the events table's commit.
    pub fn rejected_summary(&self) -> BTreeMap<String, String> {
        let mut out = self.to_summary();
        out.retain(|k, _| k.starts_with("floe.rejected"));
        out
    }

    /// Reads the `floe.*` keys back (absent keys count 0).
    pub fn from_summary(summary: &HashMap<String, String>) -> Self {
        let get = |k: &str| summary.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        let rejected = RejectReason::ALL
            .into_iter()
            .filter_map(|r| {
                let n: u64 = get(&format!("floe.rejected.{}", r.code()));
                (n > 0).then_some((r, n))
            })
            .collect();
        Self {
            records_read: get("floe.records-read"),
            rows_written: get("floe.rows-written"),
            duplicates_identical: get("floe.duplicates-identical"),
            duplicates_replaced: get("floe.duplicates-replaced"),
            duplicates_skipped: get("floe.duplicates-skipped"),
            rows_deleted: get("floe.rows-deleted"),
            rejected,
            blank_lines: get("floe.blank-lines"),
            type_mismatches: summary
                .iter()
                .filter_map(|(k, v)| {
                    let column = k.strip_prefix(TYPE_MISMATCH_PREFIX)?;
                    Some((column.to_string(), v.parse().ok()?))
                })
                .collect(),
            missing: summary
                .iter()
                .filter_map(|(k, v)| {
                    let (event_type, field) = k.strip_prefix(MISSING_PREFIX)?.split_once(':')?;
                    Some(((event_type.into(), field.into()), v.parse().ok()?))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
