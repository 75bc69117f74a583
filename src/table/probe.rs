//! Late events: keys older than the key index's window, looked up in the
//! table itself.
//!
//! A duplicate carries its original's `created_at` and `event_type`, so it
//! can only match rows of the same partition whose `created_datetime` bounds
//! (from the manifests) contain its time. Files whose every live row the key
//! index holds are skipped (the caller asked the index first). Of the
//! others, the Parquet bloom filter on `event_uuid` (read by range: the
//! footer and the filters, not the file) rules out nearly all; only a file
//! whose filter says "maybe" has its key columns read. A flush's late keys
//! of a partition are looked up together, so each file is read at most once
//! for all of them; one whose bounds hold many of them, with no room in the
//! cache for its keys, is read without asking its filter (a bulk backfill
//! with a small index). Position deletes of the partition are applied, so
//! only live rows match.
//!
//! What it reads is kept across flushes in a [`ProbeCache`], for one
//! snapshot of the table at a time. When the table moves on (this writer's
//! commits, another writer's, a compaction), the cache reads what the new
//! snapshots added and removed (their own manifests only) and applies it:
//! new data files become candidates, removed ones drop their candidates,
//! filters and keys, new position deletes take rows out of the cached keys.
//! When the new snapshots cannot be linked to the cached one (expired past
//! it, a rollback, another table), or one removed a delete file, the cache
//! starts over from the current snapshot. Filters and keys are bounded by a
//! byte budget, oldest first out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use iceberg::arrow::ArrowFileReader;
use iceberg::io::FileMetadata;
use iceberg::spec::{DataContentType, DataFile, ManifestStatus, PrimitiveLiteral};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::bloom_filter::Sbbf;

use super::index::{KeyIndex, Map, events_partition, read_keys, read_position_deletes};
use super::writer::Partition;
use super::{LoadedTable, TableError, TableStore};

/// Field id of `created_datetime` in the events schema files.
const CREATED_DATETIME_ID: i32 = 6;

/// Bytes of bloom filters and key columns the probe keeps across flushes:
/// a quarter of the key index's budget, at most 64 MiB (a filter costs
/// about 1.2 bytes a row, a file's keys about 44).
pub fn cache_budget(index_memory: usize) -> usize {
    (index_memory / 4).min(64 << 20)
}

/// New snapshots past which the cache starts over rather than reading
/// each one's manifests.
const MAX_SNAPSHOTS_APPLIED: usize = 64;

/// Memory one cached key costs (as in the key index: entry, control byte,
/// hash-table slack).
const BYTES_PER_CACHED_KEY: usize = (std::mem::size_of::<(u128, (i64, i64))>() + 1) * 4 / 3;

/// Keys looked up in one file's bounds at or past which the file is read
/// for all of them, rather than asked through its bloom filter, when the
/// cache has no room for its keys: at 1% false positives, a hundred keys
/// make a "maybe" likely anyway.
const READ_WHOLE_AT: usize = 100;

/// A key the probe looks for.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// Its `event_uuid`.
    pub event_uuid: &'a str,
    /// Its [`event_key`](crate::contract::event_key).
    pub key: u128,
    /// Its row's `created_datetime` (microseconds).
    pub created_micros: i64,
}

/// A live row found in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its data file.
    pub path: String,
    /// Its partition.
    pub partition: Partition,
    /// Its position in the file.
    pub pos: i64,
    /// Its content hash.
    pub hash: i64,
}

/// A data file of the snapshot, with its `created_datetime` bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    path: String,
    /// File size (the footer is read from its end).
    size: u64,
    /// Rows in the file.
    rows: u64,
    lower: i64,
    upper: i64,
}

/// The bloom filters of a file's `event_uuid`, one per row group; `None`:
/// a row group has none, so the file must be read.
type Blooms = Arc<Option<Vec<Sbbf>>>;

/// Key -> (position, content hash) of a file's live rows.
type Keys = Arc<Map<u128, (i64, i64)>>;

/// What probing cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeStats {
    /// Keys looked up in the table (late rows the key index lacked).
    pub lookups: u64,
    /// Late rows the key index decided (their key was indexed).
    pub index_hits: u64,
    /// Candidate files skipped because the key index holds all their keys.
    pub skipped_complete: u64,
    /// Files whose bounds contained a key's time (bloom filters checked).
    pub bloom_checks: u64,
    /// Bloom filters read from files (the others came from the cache).
    pub blooms_read: u64,
    /// Files whose key columns were read.
    pub files_read: u64,
    /// Whether the cache started over from the table (first use, or the
    /// table's history could not be followed).
    pub reloaded: bool,
    /// Snapshots whose changes were applied to the cache.
    pub snapshots_applied: u64,
}

fn bound_micros(datum: Option<&iceberg::spec::Datum>) -> Option<i64> {
    match datum?.literal() {
        PrimitiveLiteral::Long(v) => Some(*v),
        _ => None,
    }
}

fn candidate(file: &DataFile) -> Candidate {
    Candidate {
        path: file.file_path().to_string(),
        size: file.file_size_in_bytes(),
        rows: file.record_count(),
        lower: bound_micros(file.lower_bounds().get(&CREATED_DATETIME_ID)).unwrap_or(i64::MIN),
        upper: bound_micros(file.upper_bounds().get(&CREATED_DATETIME_ID)).unwrap_or(i64::MAX),
    }
}

/// What snapshots after the cached one changed.
#[derive(Debug, Default)]
struct SnapshotChange {
    /// Data files added.
    added: Vec<(Partition, Candidate)>,
    /// Data files removed.
    removed: HashSet<String>,
    /// Row positions the added position delete files remove, by data file.
    deleted: Map<String, Vec<i64>>,
    /// Whether a delete file was removed (its rows could be live again).
    removed_deletes: bool,
}

/// The table probe's state, kept across flushes (see the module docs).
pub struct ProbeCache {
    /// The table and snapshot the file lists reflect; `None`: nothing loaded.
    at: Option<(uuid::Uuid, Option<i64>)>,
    /// Data files per partition.
    files: HashMap<Partition, Vec<Candidate>>,
    /// Deleted positions per data file (from the delete files read so far).
    deleted: Map<String, Vec<i64>>,
    /// Delete files per partition, not yet read.
    delete_files: HashMap<Partition, Vec<String>>,
    /// Key columns of files read.
    keys: HashMap<String, Keys>,
    /// Bloom filters of files read.
    blooms: HashMap<String, Blooms>,
    /// Cached filters and keys, oldest first: (path, is keys, bytes).
    order: VecDeque<(String, bool, usize)>,
    /// Bytes of cached filters and keys.
    bytes: usize,
    /// Most bytes of filters and keys kept.
    budget: usize,
}

impl ProbeCache {
    /// An empty cache keeping at most `budget` bytes of filters and keys.
    pub fn new(budget: usize) -> Self {
        Self {
            at: None,
            files: HashMap::new(),
            deleted: Map::default(),
            delete_files: HashMap::new(),
            keys: HashMap::new(),
            blooms: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Forgets everything: the next probe reads the table again.
    pub fn clear(&mut self) {
        *self = Self::new(self.budget);
    }

    /// Bytes of filters and keys held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Brings the cache to the table's current snapshot.
    async fn sync(
        &mut self,
        store: &TableStore,
        table: &LoadedTable,
        stats: &mut ProbeStats,
    ) -> Result<(), TableError> {
        let now = (table.metadata.uuid(), table.metadata.current_snapshot_id());
        if self.at == Some(now) {
            return Ok(());
        }
        if let Some(new) = self.at.and_then(|at| snapshots_after(table, at)) {
            match self.read_changes(store, table, &new).await? {
                Some(change) if !change.removed_deletes => {
                    self.apply(change);
                    stats.snapshots_applied += new.len() as u64;
                    self.at = Some(now);
                    return Ok(());
                }
                _ => {}
            }
        }
        self.reload(store, table).await?;
        stats.reloaded = true;
        Ok(())
    }

    /// Lists the data and delete files of the table's current snapshot.
    async fn reload(&mut self, store: &TableStore, table: &LoadedTable) -> Result<(), TableError> {
        self.clear();
        for entry in store.live_entries(table).await? {
            let file = entry.data_file();
            let Some(partition) = events_partition(file.partition().iter()) else {
                continue;
            };
            match file.content_type() {
                DataContentType::Data => {
                    self.files
                        .entry(partition)
                        .or_default()
                        .push(candidate(file));
                }
                DataContentType::PositionDeletes => {
                    self.delete_files
                        .entry(partition)
                        .or_default()
                        .push(file.file_path().to_string());
                }
                DataContentType::EqualityDeletes => {}
            }
        }
        self.at = Some((table.metadata.uuid(), table.metadata.current_snapshot_id()));
        Ok(())
    }

    /// What the snapshots `new` of `table` (oldest first) added and removed,
    /// read from the manifests each one wrote.
    async fn read_changes(
        &self,
        store: &TableStore,
        table: &LoadedTable,
        new: &[i64],
    ) -> Result<Option<SnapshotChange>, TableError> {
        let mut change = SnapshotChange::default();
        for id in new {
            let Some(snapshot) = table.metadata.snapshot_by_id(*id) else {
                return Ok(None);
            };
            // A later commit may merge a snapshot's manifests: only entries
            // this snapshot itself added or deleted count (as in
            // `TableStore::changed_since`).
            for manifest_file in store.snapshot_manifests(table, snapshot).await? {
                if manifest_file.added_snapshot_id != *id {
                    continue;
                }
                let manifest = manifest_file.load_manifest(store.file_io()).await?;
                for entry in manifest.entries() {
                    if entry.snapshot_id() != Some(*id) {
                        continue;
                    }
                    let file = entry.data_file();
                    let partition = events_partition(file.partition().iter());
                    match (entry.status(), file.content_type(), partition) {
                        (ManifestStatus::Added, DataContentType::Data, Some(p)) => {
                            change.added.push((p, candidate(file)));
                        }
                        (ManifestStatus::Deleted, DataContentType::Data, _) => {
                            change.removed.insert(file.file_path().to_string());
                        }
                        (ManifestStatus::Added, DataContentType::PositionDeletes, _) => {
                            read_position_deletes(store, file.file_path(), &mut change.deleted)
                                .await?;
                        }
                        (ManifestStatus::Deleted, DataContentType::PositionDeletes, _) => {
                            change.removed_deletes = true;
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(Some(change))
    }

    /// Applies what new snapshots changed.
    fn apply(&mut self, change: SnapshotChange) {
        for (partition, file) in change.added {
            self.files.entry(partition).or_default().push(file);
        }
        if !change.removed.is_empty() {
            for files in self.files.values_mut() {
                files.retain(|f| !change.removed.contains(&f.path));
            }
            self.files.retain(|_, files| !files.is_empty());
            for path in &change.removed {
                self.deleted.remove(path);
                self.blooms.remove(path);
                self.keys.remove(path);
            }
            self.recount();
        }
        for (path, positions) in change.deleted {
            if let Some(keys) = self.keys.get_mut(&path) {
                let gone: HashSet<i64> = positions.iter().copied().collect();
                Arc::make_mut(keys).retain(|_, (pos, _)| !gone.contains(pos));
            }
            self.deleted.entry(path).or_default().extend(positions);
        }
    }

    /// Drops eviction entries of filters and keys no longer held, and
    /// recounts the bytes.
    fn recount(&mut self) {
        let (keys, blooms) = (&self.keys, &self.blooms);
        self.order.retain(|(path, is_keys, _)| {
            if *is_keys {
                keys.contains_key(path)
            } else {
                blooms.contains_key(path)
            }
        });
        self.bytes = self.order.iter().map(|(_, _, b)| b).sum();
    }

    /// Whether the keys of a file of `rows` rows fit in the budget beside
    /// what is cached.
    fn has_room(&self, rows: u64) -> bool {
        self.bytes + rows as usize * BYTES_PER_CACHED_KEY <= self.budget
    }

    /// Counts a new filter or key entry, and evicts the oldest past the budget.
    fn admit(&mut self, path: &str, is_keys: bool, bytes: usize) {
        self.order.push_back((path.to_string(), is_keys, bytes));
        self.bytes += bytes;
        while self.bytes > self.budget {
            let Some((path, is_keys, bytes)) = self.order.pop_front() else {
                break;
            };
            self.bytes -= bytes;
            if is_keys {
                self.keys.remove(&path);
            } else {
                self.blooms.remove(&path);
            }
        }
    }

    /// Starts a probe of the table's current snapshot (bringing the cache
    /// up to it); files whose keys `index` holds completely are skipped.
    pub async fn probe<'a>(
        &'a mut self,
        store: &'a TableStore,
        table: &LoadedTable,
        index: &'a KeyIndex,
    ) -> Result<Probe<'a>, TableError> {
        let mut stats = ProbeStats::default();
        self.sync(store, table, &mut stats).await?;
        Ok(Probe {
            cache: self,
            store,
            complete: index.complete_files(),
            stats,
        })
    }
}

/// The snapshots of `table` after `at` (its table uuid and snapshot id),
/// oldest first; `None` when the current snapshot does not descend from it
/// (another table, a rollback, history expired past it, too many).
fn snapshots_after(table: &LoadedTable, at: (uuid::Uuid, Option<i64>)) -> Option<Vec<i64>> {
    if table.metadata.uuid() != at.0 {
        return None;
    }
    let mut new = Vec::new();
    let mut cursor = table.metadata.current_snapshot().cloned();
    loop {
        let Some(snapshot) = cursor else {
            // The root: linked only if the cache saw the empty table.
            return at.1.is_none().then(|| {
                new.reverse();
                new
            });
        };
        if Some(snapshot.snapshot_id()) == at.1 {
            new.reverse();
            return Some(new);
        }
        if new.len() >= MAX_SNAPSHOTS_APPLIED {
            return None;
        }
        new.push(snapshot.snapshot_id());
        cursor = match snapshot.parent_snapshot_id() {
            // An expired parent: the history cannot be followed.
            Some(parent) => Some(table.metadata.snapshot_by_id(parent)?.clone()),
            None => None,
        };
    }
}

/// One flush's lookups against the cache's snapshot.
pub struct Probe<'a> {
    cache: &'a mut ProbeCache,
    store: &'a TableStore,
    /// Files whose every live key the key index holds.
    complete: HashSet<&'a str>,
    /// What this probe cost.
    pub stats: ProbeStats,
}

impl Probe<'_> {
    /// The live rows of `lookups`, keys of one partition the key index does
    /// not hold: the answer's `i`th entry is `lookups[i]`'s.
    ///
    /// A file that few of the keys may be in (by its time bounds) is asked
    /// through its bloom filter first, and its key columns are read, and
    /// cached, only on a "maybe". A file that many may be in, with no room
    /// in the cache for its keys, is read once for all of them instead:
    /// with hundreds of keys, a filter with 1% false positives says "maybe"
    /// anyway, and keys the cache cannot keep would be read again for the
    /// next key (a bulk backfill with a small index).
    pub async fn find_many(
        &mut self,
        partition: &Partition,
        lookups: &[Lookup<'_>],
    ) -> Result<Vec<Option<Found>>, TableError> {
        self.stats.lookups += lookups.len() as u64;
        // The partition's files the key index does not hold completely (the
        // others are skipped); copied, as reading them updates the cache.
        let mut open = Vec::new();
        for f in self.cache.files.get(partition).into_iter().flatten() {
            if self.complete.contains(f.path.as_str()) {
                self.stats.skipped_complete += lookups
                    .iter()
                    .filter(|l| (f.lower..=f.upper).contains(&l.created_micros))
                    .count() as u64;
            } else {
                open.push(f.clone());
            }
        }
        let mut found = vec![None; lookups.len()];
        for file in open {
            // The keys whose time the file's bounds contain.
            let mine: Vec<usize> = (0..lookups.len())
                .filter(|&i| (file.lower..=file.upper).contains(&lookups[i].created_micros))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let keys = match self.cache.keys.get(&file.path) {
                Some(keys) => keys.clone(),
                None if mine.len() >= READ_WHOLE_AT && !self.cache.has_room(file.rows) => {
                    self.read_for(partition, &file, lookups, &mine, &mut found)
                        .await?;
                    continue;
                }
                None => {
                    self.stats.bloom_checks += mine.len() as u64;
                    let blooms = self.blooms(&file).await?;
                    let may_contain = |i: &usize| match &*blooms {
                        Some(filters) => filters.iter().any(|f| f.check(lookups[*i].event_uuid)),
                        None => true,
                    };
                    if !mine.iter().any(may_contain) {
                        continue;
                    }
                    self.load_keys(partition, &file).await?
                }
            };
            for &i in &mine {
                if let Some(&(pos, hash)) = keys.get(&lookups[i].key) {
                    // Files are not ordered here; a key lives in one file at most.
                    found[i] = Some(Found {
                        path: file.path.clone(),
                        partition: partition.clone(),
                        pos,
                        hash,
                    });
                }
            }
        }
        Ok(found)
    }

    /// The bloom filters of `file`, from the cache or read (and cached).
    async fn blooms(&mut self, file: &Candidate) -> Result<Blooms, TableError> {
        if let Some(blooms) = self.cache.blooms.get(&file.path) {
            return Ok(blooms.clone());
        }
        self.stats.blooms_read += 1;
        let blooms = Arc::new(load_blooms(self.store, &file.path, file.size).await?);
        let bytes = blooms
            .iter()
            .flatten()
            .map(|f| f.num_blocks() * 32)
            .sum::<usize>()
            + file.path.len();
        self.cache.blooms.insert(file.path.clone(), blooms.clone());
        self.cache.admit(&file.path, false, bytes);
        Ok(blooms)
    }

    /// Reads the keys of `file` once and answers `lookups[i]` for each `i`
    /// of `mine` from them, keeping nothing.
    async fn read_for(
        &mut self,
        partition: &Partition,
        file: &Candidate,
        lookups: &[Lookup<'_>],
        mine: &[usize],
        found: &mut [Option<Found>],
    ) -> Result<(), TableError> {
        self.stats.files_read += 1;
        let path = file.path.as_str();
        let gone = self.deleted_in(partition, path).await?;
        let wanted: Map<u128, usize> = mine.iter().map(|&i| (lookups[i].key, i)).collect();
        read_keys(self.store, path, file.size, |pos, key, hash| {
            if let Some(&i) = wanted.get(&key)
                && !gone.contains(&i64::from(pos))
            {
                found[i] = Some(Found {
                    path: path.to_string(),
                    partition: partition.clone(),
                    pos: i64::from(pos),
                    hash,
                });
            }
        })
        .await
    }

    /// Row positions of `path` that position deletes removed (reading the
    /// partition's delete files not read yet).
    async fn deleted_in(
        &mut self,
        partition: &Partition,
        path: &str,
    ) -> Result<HashSet<i64>, TableError> {
        let cache = &mut *self.cache;
        if let Some(delete_files) = cache.delete_files.remove(partition) {
            for delete_file in delete_files {
                read_position_deletes(self.store, &delete_file, &mut cache.deleted).await?;
            }
        }
        Ok(cache
            .deleted
            .get(path)
            .map(|d| d.iter().copied().collect())
            .unwrap_or_default())
    }

    async fn load_keys(
        &mut self,
        partition: &Partition,
        file: &Candidate,
    ) -> Result<Keys, TableError> {
        self.stats.files_read += 1;
        let path = file.path.as_str();
        let gone = self.deleted_in(partition, path).await?;
        let cache = &mut *self.cache;
        let mut keys = Map::default();
        read_keys(self.store, path, file.size, |pos, key, hash| {
            if !gone.contains(&i64::from(pos)) {
                keys.insert(key, (i64::from(pos), hash));
            }
        })
        .await?;
        let keys = Arc::new(keys);
        let bytes = keys.len() * BYTES_PER_CACHED_KEY + path.len();
        cache.keys.insert(path.to_string(), keys.clone());
        cache.admit(path, true, bytes);
        Ok(keys)
    }
}

fn parquet_err(path: &str, e: parquet::errors::ParquetError) -> TableError {
    TableError::Iceberg(iceberg::Error::new(
        iceberg::ErrorKind::DataInvalid,
        format!("reading {path}: {e}"),
    ))
}

/// Reads a file's `event_uuid` bloom filters by range: the footer, then
/// each row group's filter.
async fn load_blooms(
    store: &TableStore,
    path: &str,
    size: u64,
) -> Result<Option<Vec<Sbbf>>, TableError> {
    let reader = store.file_io().new_input(path)?.reader().await?;
    let reader = ArrowFileReader::new(FileMetadata { size }, reader);
    let mut builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| parquet_err(path, e))?;
    let metadata = builder.metadata().clone();
    let schema = metadata.file_metadata().schema_descr();
    let Some(column) = (0..schema.num_columns()).find(|&i| schema.column(i).name() == "event_uuid")
    else {
        return Ok(None);
    };
    let mut filters = Vec::with_capacity(metadata.num_row_groups());
    for group in 0..metadata.num_row_groups() {
        match builder
            .get_row_group_column_bloom_filter(group, column)
            .await
            .map_err(|e| parquet_err(path, e))?
        {
            Some(filter) => filters.push(filter),
            // No filter: the file must be read to know.
            None => return Ok(None),
        }
    }
    Ok(Some(filters))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, lower: i64, upper: i64) -> Candidate {
        Candidate {
            path: path.into(),
            size: 100,
            rows: 10,
            lower,
            upper,
        }
    }

    fn keys(n: usize) -> Keys {
        Arc::new((0..n as u128).map(|k| (k, (k as i64, 0))).collect())
    }

    /// A cache holding files a and b of day 10, with a's keys and both filters.
    fn loaded(budget: usize) -> ProbeCache {
        let mut cache = ProbeCache::new(budget);
        let day = Partition::events(10, "t");
        cache
            .files
            .insert(day, vec![file("a", 0, 9), file("b", 5, 20)]);
        for path in ["a", "b"] {
            cache.blooms.insert(path.into(), Arc::new(None));
            cache.admit(path, false, 10);
        }
        cache.keys.insert("a".into(), keys(2));
        cache.admit("a", true, 100);
        cache
    }

    #[test]
    fn a_removed_file_is_no_candidate_and_its_filters_and_keys_go() {
        let mut cache = loaded(1 << 20);
        let day = Partition::events(10, "t");
        cache.apply(SnapshotChange {
            added: vec![(day.clone(), file("c", 0, 20))],
            removed: HashSet::from(["a".to_string()]),
            ..Default::default()
        });
        let paths: Vec<_> = cache.files[&day].iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["b", "c"]);
        assert!(!cache.keys.contains_key("a") && !cache.blooms.contains_key("a"));
        assert!(cache.blooms.contains_key("b"));
        assert_eq!(cache.bytes(), 10);
    }

    #[test]
    fn new_position_deletes_take_rows_out_of_cached_keys() {
        let mut cache = loaded(1 << 20);
        let deleted: Map<String, Vec<i64>> =
            [("a".to_string(), vec![1]), ("b".to_string(), vec![0])]
                .into_iter()
                .collect();
        cache.apply(SnapshotChange {
            deleted,
            ..Default::default()
        });
        // a's row 1 (key 1) is gone, row 0 stays; b's keys were not read,
        // so its deletes wait in `deleted` for when they are.
        assert_eq!(cache.keys["a"].get(&0), Some(&(0, 0)));
        assert_eq!(cache.keys["a"].get(&1), None);
        assert_eq!(cache.deleted["a"], [1]);
        assert_eq!(cache.deleted["b"], [0]);
    }

    #[test]
    fn the_byte_budget_evicts_oldest_first() {
        // Room for the two filters and a's keys (120 bytes), not more.
        let mut cache = loaded(130);
        assert_eq!(cache.bytes(), 120);
        cache.keys.insert("b".into(), keys(1));
        cache.admit("b", true, 30);
        // 150 bytes: both filters (the oldest entries) go, the keys stay.
        assert!(cache.blooms.is_empty());
        assert_eq!(cache.bytes(), 130);
        assert!(cache.keys.contains_key("a") && cache.keys.contains_key("b"));
        // A single entry over the budget evicts everything, itself included.
        cache.keys.insert("c".into(), keys(1));
        cache.admit("c", true, 1000);
        assert_eq!(cache.bytes(), 0);
        assert!(cache.keys.is_empty() && cache.blooms.is_empty());
    }

    #[test]
    fn clearing_keeps_the_budget_and_nothing_else() {
        let mut cache = loaded(4096);
        cache.at = Some((uuid::Uuid::nil(), Some(1)));
        cache.clear();
        assert!(cache.at.is_none() && cache.files.is_empty() && cache.keys.is_empty());
        assert_eq!((cache.bytes(), cache.budget), (0, 4096));
    }
}
