//! The key index: where the live row of each recent `event_uuid` is.
//!
//! It maps the key (a 128-bit XXH3 of `event_uuid`, so a collision is out of
//! reach even at billions of keys) to the data file, the row position in it,
//! the row's content hash and its day. With it a flush decides, without
//! reading the table, whether a record is new, an identical duplicate (skip),
//! or a changed one (position delete on the old row, insert the new).
//!
//! It covers rows whose `created_datetime` day is at or after `oldest_day`
//! (the dedup window). At startup it is rebuilt from the current snapshot by
//! reading only the `event_uuid` and `_content_hash` columns of the data files
//! of those days, minus the rows their position deletes remove. Between
//! commits it is updated only after a commit lands, so it never names a row
//! that is not in the table.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use iceberg::spec::{DataContentType, Literal, PrimitiveLiteral};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use super::writer::Partition;
use super::{LoadedTable, TableError, TableStore};

/// Hash maps of the index: keys are already hashes, so foldhash's fast
/// mixing is plenty.
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Where one live row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Index into `KeyIndex::files`.
    file: u32,
    /// Row position in that file.
    pos: u32,
    /// The row's `_content_hash`.
    hash: i64,
}

/// A data file the index points into.
#[derive(Debug, Clone)]
struct IndexedFile {
    path: String,
    partition: Partition,
    /// Every live row of the file has its key here, pointing at it (or at
    /// the row that replaced it): a key the index lacks is not in this
    /// file, so the table probe skips it. Cleared when the file's day is
    /// evicted, when the file leaves the table, or when a rebuild finds a
    /// key live both here and in a newer file.
    complete: bool,
}

/// The live row of a key, as the index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located<'a> {
    /// The data file.
    pub path: &'a str,
    /// Its partition (a position delete must be written in the same one).
    pub partition: &'a Partition,
    /// The row's position in the file.
    pub pos: i64,
    /// The row's content hash.
    pub hash: i64,
}

/// Key to entry, split by the key's top bits into [`Keys::SHARDS`] maps.
///
/// A hash map grows by moving into one twice its size, holding both while
/// it does: as one map, the index needed three times its keys' room at that
/// moment (about 830 MiB for 10M keys). Shards grow one at a time, so the
/// extra is one shard's.
#[derive(Debug)]
struct Keys {
    shards: Vec<Map<u128, Entry>>,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            shards: (0..Self::SHARDS).map(|_| Map::default()).collect(),
        }
    }
}

impl Keys {
    const SHARDS: usize = 64;

    /// Keys are XXH3 hashes: their top bits are as even as any.
    fn shard(key: u128) -> usize {
        (key >> (128 - Self::SHARDS.trailing_zeros())) as usize
    }

    fn get(&self, key: &u128) -> Option<&Entry> {
        self.shards[Self::shard(*key)].get(key)
    }

    /// Sets the key's entry; returns the one it replaces.
    fn insert(&mut self, key: u128, entry: Entry) -> Option<Entry> {
        self.shards[Self::shard(key)].insert(key, entry)
    }

    /// Drops the key's entry, if any.
    fn remove(&mut self, key: &u128) {
        self.shards[Self::shard(*key)].remove(key);
    }

    /// Keeps the entries `keep` accepts, then gives back the room of the
    /// others.
    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        for shard in &mut self.shards {
            shard.retain(|_, e| keep(e));
            shard.shrink_to_fit();
        }
    }

    fn values(&self) -> impl Iterator<Item = &Entry> {
        self.shards.iter().flat_map(|s| s.values())
    }

    fn len(&self) -> usize {
        self.shards.iter().map(Map::len).sum()
    }

    /// Bytes the maps hold: every bucket, full or not (a map of capacity c
    /// has c·8/7 buckets, each an entry and a control byte).
    fn memory(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.capacity() * 8 / 7 * KeyIndex::BUCKET_BYTES)
            .sum()
    }
}

/// Key to live row, for the rows of the dedup window.
#[derive(Debug, Default)]
pub struct KeyIndex {
    entries: Keys,
    files: Vec<IndexedFile>,
    /// First day (since the epoch) the index covers.
    oldest_day: i32,
    /// Most keys the memory budget allows; older days are dropped past it.
    max_keys: usize,
}

/// What a rebuild read.
#[derive(Debug, Clone, Copy, Default)]
pub struct RebuildStats {
    /// Data files read.
    pub data_files: usize,
    /// Position delete files read.
    pub delete_files: usize,
    /// Keys indexed.
    pub keys: usize,
    /// Seconds it took.
    pub seconds: f64,
}

impl KeyIndex {
    /// An empty index covering days from `oldest_day` on, holding at most
    /// `memory_budget` bytes of keys.
    pub fn new(oldest_day: i32, memory_budget: usize) -> Self {
        Self {
            oldest_day,
            max_keys: (memory_budget / Self::bytes_per_key()).max(1),
            ..Self::default()
        }
    }

    /// First day covered.
    pub fn oldest_day(&self) -> i32 {
        self.oldest_day
    }

    /// Drops whole days, oldest first, until the keys fit the memory budget
    /// (the newest day stays whatever its size). Returns the days dropped.
    pub fn evict_to_budget(&mut self) -> u32 {
        let mut dropped = 0;
        while self.entries.len() > self.max_keys {
            let files = &self.files;
            let day_of = |e: &Entry| files[e.file as usize].partition.day.unwrap_or(i32::MIN);
            let (Some(oldest), Some(newest)) = (
                self.entries.values().map(day_of).min(),
                self.entries.values().map(day_of).max(),
            ) else {
                break;
            };
            if oldest >= newest {
                break;
            }
            // Keys of late rows (days before the covered ones) go first;
            // the covered range never grows back over days never loaded.
            self.oldest_day = self.oldest_day.max(oldest + 1);
            let keep_from = oldest + 1;
            self.entries.retain(|e| day_of(e) >= keep_from);
            for file in &mut self.files {
                if file.partition.day.unwrap_or(i32::MIN) < keep_from {
                    file.complete = false;
                }
            }
            dropped += 1;
        }
        dropped
    }

    /// Whether rows of `day` are covered (older ones are not looked up).
    pub fn covers(&self, day: i32) -> bool {
        day >= self.oldest_day
    }

    /// The live row of the key ([`event_key`](crate::contract::event_key) of an `event_uuid`), if
    /// the index has one.
    pub fn get(&self, key: u128) -> Option<Located<'_>> {
        let entry = self.entries.get(&key)?;
        let file = &self.files[entry.file as usize];
        Some(Located {
            path: &file.path,
            partition: &file.partition,
            pos: i64::from(entry.pos),
            hash: entry.hash,
        })
    }

    /// Registers a data file; returns its id for [`insert`](Self::insert).
    pub fn add_file(&mut self, path: &str, partition: Partition) -> u32 {
        self.files.push(IndexedFile {
            path: path.to_string(),
            partition,
            complete: true,
        });
        (self.files.len() - 1) as u32
    }

    /// Records that the live row of `key` is row `pos` of file `file`.
    ///
    /// A late row's key (its day is older than the covered ones) is taken
    /// only while the index has room: past the budget,
    /// [`evict_to_budget`](Self::evict_to_budget) would drop it first
    /// anyway, and taking keys in only to drop them grew and shrank every
    /// map at every flush of a backfill. Its file is then incomplete (the
    /// table probe reads it), and the key's older entry goes: it names the
    /// row this one replaced.
    pub fn insert(&mut self, key: u128, file: u32, pos: u32, hash: i64) {
        let day = self.files[file as usize].partition.day;
        let late = !self.covers(day.unwrap_or(i32::MIN));
        if late && self.entries.len() >= self.max_keys {
            self.files[file as usize].complete = false;
            self.entries.remove(&key);
            return;
        }
        self.entries.insert(key, Entry { file, pos, hash });
    }

    /// Paths of the data files whose every live row the index holds (see
    /// `IndexedFile::complete`): a key the index lacks is in none of them.
    pub fn complete_files(&self) -> HashSet<&str> {
        let mut partial = HashSet::new();
        let mut complete = HashSet::new();
        for file in &self.files {
            if file.complete {
                complete.insert(file.path.as_str());
            } else {
                partial.insert(file.path.as_str());
            }
        }
        complete.retain(|p| !partial.contains(p));
        complete
    }

    /// Forgets the rows of data files a commit removed (their rows were
    /// rewritten into other files, or deleted); returns the keys dropped.
    pub fn forget_files(&mut self, removed: &HashSet<String>) -> usize {
        let gone: HashSet<u32> = (0..self.files.len() as u32)
            .filter(|&i| removed.contains(&self.files[i as usize].path))
            .collect();
        for &i in &gone {
            self.files[i as usize].complete = false;
        }
        if gone.is_empty() {
            return 0;
        }
        let before = self.entries.len();
        self.entries.retain(|e| !gone.contains(&e.file));
        before - self.entries.len()
    }

    /// Keys indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One bucket of the key maps: an entry and its control byte.
    const BUCKET_BYTES: usize = std::mem::size_of::<(u128, Entry)>() + 1;

    /// Memory one key may cost, at most: a bucket, in a map that has just
    /// doubled and is 7/16 full. The budget counts keys at this rate, so it
    /// is a bound, not an average (a map is 7/8 full just before it
    /// doubles, at half this).
    pub fn bytes_per_key() -> usize {
        (Self::BUCKET_BYTES * 16).div_ceil(7)
    }

    /// Bytes the index's key maps hold now.
    pub fn memory(&self) -> usize {
        self.entries.memory()
    }

    /// Rebuilds the index from the table's current snapshot.
    pub async fn rebuild(
        store: &TableStore,
        table: &LoadedTable,
        oldest_day: i32,
        memory_budget: usize,
    ) -> Result<(Self, RebuildStats), TableError> {
        let started = Instant::now();
        let mut index = Self::new(oldest_day, memory_budget);
        let mut stats = RebuildStats::default();
        let mut data = Vec::new();
        let mut delete_files = Vec::new();
        let mut rows_per_day: std::collections::BTreeMap<i32, u64> = Default::default();
        for entry in store.live_entries(table).await? {
            let file = entry.data_file();
            let Some(partition) = events_partition(file.partition().iter()) else {
                continue;
            };
            if partition.day.is_none_or(|d| d < oldest_day) {
                continue;
            }
            let day = partition.day.unwrap_or(i32::MIN);
            match file.content_type() {
                DataContentType::Data => {
                    *rows_per_day.entry(day).or_default() += file.record_count();
                    data.push((
                        entry.sequence_number().unwrap_or(0),
                        file.file_path().to_string(),
                        partition,
                        file.file_size_in_bytes(),
                    ));
                }
                DataContentType::PositionDeletes => {
                    delete_files.push((day, file.file_path().to_string()));
                }
                // Floe never writes equality deletes (not every engine reads them).
                DataContentType::EqualityDeletes => {
                    return Err(TableError::Incompatible {
                        table: table.name.clone(),
                        message: format!(
                            "{} is an equality delete file; Floe's tables hold position deletes only",
                            file.file_path()
                        ),
                    });
                }
            }
        }
        // Keep the newest days that fit the budget (rows counted before
        // deletes: a slight overestimate, on the safe side).
        let mut rows = 0;
        for (day, n) in rows_per_day.iter().rev() {
            rows += n;
            if rows as usize > index.max_keys
                && *day < *rows_per_day.keys().next_back().unwrap_or(day)
            {
                index.oldest_day = index.oldest_day.max(day + 1);
                break;
            }
        }
        let oldest_day = index.oldest_day;
        let mut deleted: Map<String, Vec<i64>> = Map::default();
        for (_, path) in delete_files.iter().filter(|(day, _)| *day >= oldest_day) {
            stats.delete_files += 1;
            read_position_deletes(store, path, &mut deleted).await?;
        }
        // Older rows first: should a key be live twice (written by a tool
        // other than Floe), the newest row wins, as it does for readers.
        data.retain(|(_, _, p, _)| p.day.is_some_and(|d| d >= oldest_day));
        data.sort_by_key(|(sequence, _, _, _)| *sequence);
        for (_, path, partition, size) in data {
            let mut gone = deleted.remove(&path).unwrap_or_default();
            gone.sort_unstable();
            let file = index.add_file(&path, partition);
            read_keys(store, &path, size, |pos, key, hash| {
                if gone.binary_search(&(pos as i64)).is_err() {
                    // A key live in an older file too: that file's row is
                    // not in the index, so the file is no longer complete.
                    if let Some(older) = index.entries.insert(key, Entry { file, pos, hash })
                        && older.file != file
                    {
                        index.files[older.file as usize].complete = false;
                    }
                }
            })
            .await?;
            stats.data_files += 1;
        }
        stats.keys = index.len();
        stats.seconds = started.elapsed().as_secs_f64();
        Ok((index, stats))
    }
}

/// The events-table partition of a data file's partition tuple.
pub(crate) fn events_partition<'a>(
    mut values: impl Iterator<Item = Option<&'a Literal>>,
) -> Option<Partition> {
    match (values.next(), values.next()) {
        (
            Some(Some(Literal::Primitive(PrimitiveLiteral::Int(day)))),
            Some(Some(Literal::Primitive(PrimitiveLiteral::String(t)))),
        ) => Some(Partition::events(*day, t)),
        _ => None,
    }
}

fn parquet_err(path: &str, e: parquet::errors::ParquetError) -> TableError {
    TableError::Iceberg(iceberg::Error::new(
        iceberg::ErrorKind::DataInvalid,
        format!("reading {path}: {e}"),
    ))
}

/// Calls `each(position, key, content_hash)` for every row of a data file
/// of `size` bytes, `key` being the [`event_key`](crate::contract::event_key)
/// of its `event_uuid`.
///
/// The file is fetched on the caller's task, by range: its last 512 KiB
/// first (the footer, parsed there, and all of a file that small: one
/// request), then the chunks of the two key columns not in them, a third of a file's bytes
/// (a 128 MiB file is not read whole for them). Decoding the key columns
/// and hashing the keys, the CPU work, runs on tokio's blocking pool and
/// hands back owned vectors (24 bytes a row, sized from the footer's row
/// count), which `each` then reads on the caller's task.
pub(crate) async fn read_keys(
    store: &TableStore,
    path: &str,
    size: u64,
    mut each: impl FnMut(u32, u128, i64),
) -> Result<(), TableError> {
    let fetched = fetch_key_columns(store, path, size).await?;
    let owned_path = path.to_string();
    let keys = crate::blocking::run(move || decode_keys(&owned_path, fetched)).await?;
    for (pos, (key, hash)) in (0u32..).zip(keys.keys.into_iter().zip(keys.hashes)) {
        each(pos, key, hash);
    }
    Ok(())
}

/// The columns [`read_keys`] decodes.
const KEY_COLUMNS: [&str; 2] = ["event_uuid", "_content_hash"];

/// Bytes a data file is first read from its end: its footer, and all of a
/// file this small.
const TAIL_BYTES: u64 = 512 << 10;

/// The parts of a data file [`fetch_key_columns`] read, which are all the
/// Parquet reader asks for when it decodes the key columns: the footer and
/// those columns' chunks.
struct Fetched {
    /// The file's size.
    size: u64,
    /// (offset in the file, bytes).
    parts: Vec<(u64, bytes::Bytes)>,
    /// The footer, parsed (to find the key columns' chunks; the decoder
    /// does not parse it again).
    metadata: std::sync::Arc<parquet::file::metadata::ParquetMetaData>,
}

impl Fetched {
    /// The part holding byte `start`, and `start`'s index in it.
    fn part_at(&self, start: u64) -> parquet::errors::Result<(&bytes::Bytes, usize)> {
        self.parts
            .iter()
            .find(|(offset, bytes)| (*offset..offset + bytes.len() as u64).contains(&start))
            .map(|(offset, bytes)| (bytes, (start - offset) as usize))
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "byte {start} of the file was not fetched"
                ))
            })
    }
}

impl parquet::file::reader::Length for Fetched {
    fn len(&self) -> u64 {
        self.size
    }
}

impl parquet::file::reader::ChunkReader for Fetched {
    type T = bytes::buf::Reader<bytes::Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        let (bytes, from) = self.part_at(start)?;
        Ok(bytes.slice(from..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let (bytes, from) = self.part_at(start)?;
        if from + length > bytes.len() {
            return Err(parquet::errors::ParquetError::General(format!(
                "bytes {start}..{} of the file were not fetched",
                start + length as u64
            )));
        }
        Ok(bytes.slice(from..from + length))
    }
}

/// Reads the end of the data file `path` (`size` bytes), then the chunks of
/// its key columns that lie before it.
async fn fetch_key_columns(
    store: &TableStore,
    path: &str,
    size: u64,
) -> Result<Fetched, TableError> {
    let reader = store.file_io().new_input(path)?.reader().await?;
    let mut tail_start = size.saturating_sub(TAIL_BYTES);
    let mut tail = reader.read(tail_start..size).await?;
    // The footer's length is in its last 8 bytes; a longer one is read whole.
    if let Some(end) = tail.len().checked_sub(8)
        && tail_start > 0
    {
        let footer = u64::from(u32::from_le_bytes(
            tail[end..end + 4].try_into().unwrap_or_default(),
        )) + 8;
        if footer > tail.len() as u64 {
            tail_start = size.saturating_sub(footer);
            tail = reader.read(tail_start..size).await?;
        }
    }
    // The footer is at the tail's end, whatever the tail's offset.
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&tail)
        .map_err(|e| parquet_err(path, e))?;
    let schema = metadata.file_metadata().schema_descr();
    let columns: Vec<usize> = (0..schema.num_columns())
        .filter(|&i| KEY_COLUMNS.contains(&schema.column(i).path().string().as_str()))
        .collect();
    let mut ranges = Vec::new();
    for group in metadata.row_groups() {
        for &i in &columns {
            let chunk = group.column(i);
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or_else(|| chunk.data_page_offset());
            let (Ok(start), Ok(len)) =
                (u64::try_from(start), u64::try_from(chunk.compressed_size()))
            else {
                return Err(parquet_err(
                    path,
                    parquet::errors::ParquetError::General(format!(
                        "column {} has a negative offset or size",
                        schema.column(i).path()
                    )),
                ));
            };
            if start < tail_start {
                ranges.push(start..(start + len).min(size));
            }
        }
    }
    let chunks =
        futures::future::try_join_all(ranges.iter().map(|r| reader.read(r.clone()))).await?;
    let mut parts = vec![(tail_start, tail)];
    parts.extend(ranges.into_iter().map(|r| r.start).zip(chunks));
    Ok(Fetched {
        size,
        parts,
        metadata: std::sync::Arc::new(metadata),
    })
}

/// The key columns of a data file: row `pos` has key `keys[pos]` and
/// content hash `hashes[pos]` (two vectors: a `(u128, i64)` pair would be
/// padded to 32 bytes).
struct FileKeys {
    keys: Vec<u128>,
    hashes: Vec<i64>,
}

/// Decodes the key columns of the data file `path` from what was fetched
/// of it, and hashes the keys.
fn decode_keys(path: &str, fetched: Fetched) -> Result<FileKeys, TableError> {
    let metadata =
        ArrowReaderMetadata::try_new(fetched.metadata.clone(), ArrowReaderOptions::default())
            .map_err(|e| parquet_err(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(fetched, metadata);
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mask = ProjectionMask::columns(builder.parquet_schema(), KEY_COLUMNS);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| parquet_err(path, e))?;
    let mut out = FileKeys {
        keys: Vec::with_capacity(rows),
        hashes: Vec::with_capacity(rows),
    };
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(path, e.into()))?;
        let [uuids, hashes] = KEY_COLUMNS.map(|name| batch.column_by_name(name));
        let (Some(uuids), Some(hashes)) = (uuids, hashes) else {
            return Err(parquet_err(
                path,
                parquet::errors::ParquetError::General(
                    "no event_uuid or _content_hash column".into(),
                ),
            ));
        };
        let uuids = uuids.as_string::<i32>();
        out.keys.extend(
            uuids
                .iter()
                .map(|u| crate::contract::event_key(u.unwrap_or_default())),
        );
        out.hashes
            .extend(hashes.as_primitive::<Int64Type>().values().iter().copied());
    }
    Ok(out)
}

/// Adds the (data file, position) pairs of a position delete file to `deleted`.
pub(crate) async fn read_position_deletes(
    store: &TableStore,
    path: &str,
    deleted: &mut Map<String, Vec<i64>>,
) -> Result<(), TableError> {
    let bytes = store.file_io().new_input(path)?.read().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| parquet_err(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(path, e.into()))?;
        let paths = batch.column(0).as_string::<i32>();
        let positions = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            deleted
                .entry(paths.value(i).to_string())
                .or_default()
                .push(positions.value(i));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Parquet file of `rows` rows in row groups of `group` rows: the key
    /// columns between two wide ones, so their chunks lie far from the
    /// footer.
    fn wide_file(path: &std::path::Path, rows: usize, group: usize) {
        use std::sync::Arc;
        let schema = Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("before", arrow_schema::DataType::Utf8, false),
            arrow_schema::Field::new("event_uuid", arrow_schema::DataType::Utf8, false),
            arrow_schema::Field::new("_content_hash", arrow_schema::DataType::Int64, false),
            arrow_schema::Field::new("after", arrow_schema::DataType::Utf8, false),
        ]));
        // Text that neither a dictionary nor a codec shrinks.
        let noise = |i: usize| -> String {
            let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'a' + (x % 26) as u8)
                })
                .collect()
        };
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(group))
            .set_dictionary_enabled(false)
            .build();
        let file = std::fs::File::create(path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        let batch = arrow_array::RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow_array::StringArray::from_iter_values(
                    (0..rows).map(noise),
                )),
                Arc::new(arrow_array::StringArray::from_iter_values(
                    (0..rows).map(|i| format!("uuid-{i}")),
                )),
                Arc::new(arrow_array::Int64Array::from_iter_values(
                    (0..rows as i64).map(|i| i * 7),
                )),
                Arc::new(arrow_array::StringArray::from_iter_values(
                    (0..rows).map(|i| noise(i + rows)),
                )),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    #[tokio::test]
    async fn keys_are_read_by_range_from_a_large_file_and_whole_from_a_small_one() {
        let dir = tempfile::tempdir().unwrap();
        let catalog =
            crate::catalog::SqlCatalog::open(&dir.path().join("catalog.db"), "floe").unwrap();
        let store = TableStore::new(
            std::sync::Arc::new(crate::catalog::Catalog::Sql(catalog)),
            iceberg::io::FileIO::new_with_fs(),
            &format!("file://{}", dir.path().display()),
        );
        for (rows, group, ranged) in [(10_000, 2_000, true), (500, 200, false)] {
            let path = dir.path().join(format!("{rows}.parquet"));
            wide_file(&path, rows, group);
            let size = std::fs::metadata(&path).unwrap().len();
            assert_eq!(size > TAIL_BYTES, ranged, "{size} bytes");
            let uri = format!("file://{}", path.display());

            let fetched = fetch_key_columns(&store, &uri, size).await.unwrap();
            let read: u64 = fetched.parts.iter().map(|(_, b)| b.len() as u64).sum();
            if ranged {
                // The end, then the key columns' chunks of the row groups
                // before it: far less than the file.
                assert!(fetched.parts.len() >= 5, "{} parts", fetched.parts.len());
                assert!(read < size / 2, "{read} of {size} bytes");
            } else {
                assert_eq!((fetched.parts.len(), read), (1, size));
            }

            let mut seen = Vec::new();
            read_keys(&store, &uri, size, |pos, key, hash| {
                seen.push((pos, key, hash))
            })
            .await
            .unwrap();
            let want: Vec<_> = (0..rows as u32)
                .map(|i| {
                    let key = crate::contract::event_key(&format!("uuid-{i}"));
                    (i, key, i64::from(i) * 7)
                })
                .collect();
            assert_eq!(seen, want, "{rows} rows");
        }
    }

    #[test]
    fn the_budget_bounds_the_memory_the_maps_hold() {
        // As many keys as a 16 MiB budget allows, as a commit inserts them.
        let budget = 16 << 20;
        let mut index = KeyIndex::new(0, budget);
        let file = index.add_file("a.parquet", Partition::events(0, "t"));
        let keys = budget / KeyIndex::bytes_per_key();
        let mut peak = 0;
        for i in 0..keys {
            index.insert(
                crate::contract::event_key(&i.to_string()),
                file,
                i as u32,
                0,
            );
            peak = peak.max(index.memory());
        }
        assert_eq!(index.len(), keys);
        assert!(peak <= budget, "{peak} bytes held for a budget of {budget}");
        // Every shard holds keys: none is left empty by the split.
        assert!(index.entries.shards.iter().all(|s| s.len() > keys / 128));
        // Dropping keys gives their room back.
        index.entries.retain(|e| e.pos % 2 == 0);
        assert!(
            index.memory() <= budget / 2 + budget / 8,
            "{}",
            index.memory()
        );
    }

    #[test]
    fn lookups_return_the_latest_location() {
        let mut index = KeyIndex::new(100, 1 << 20);
        let a = index.add_file("a.parquet", Partition::events(100, "pay"));
        let b = index.add_file("b.parquet", Partition::events(101, "cart"));
        index.insert(crate::contract::event_key("k1"), a, 3, 7);
        index.insert(crate::contract::event_key("k1"), b, 0, 8);
        let got = index.get(crate::contract::event_key("k1")).unwrap();
        assert_eq!((got.path, got.pos, got.hash), ("b.parquet", 0, 8));
        assert_eq!(got.partition, &Partition::events(101, "cart"));
        assert_eq!(index.get(crate::contract::event_key("k2")), None);
        assert_eq!(index.len(), 1);
        assert!(index.covers(100) && !index.covers(99));
        assert_eq!(KeyIndex::bytes_per_key(), 76);
    }

    #[test]
    fn the_memory_budget_drops_oldest_days_first() {
        // Room for 3 keys.
        let mut index = KeyIndex::new(10, 3 * KeyIndex::bytes_per_key());
        for (day, keys) in [(10, ["a", "b"]), (11, ["c", "d"]), (12, ["e", "f"])] {
            let file = index.add_file(&format!("{day}.parquet"), Partition::events(day, "t"));
            for (pos, key) in keys.iter().enumerate() {
                index.insert(crate::contract::event_key(key), file, pos as u32, 0);
            }
        }
        assert_eq!(index.evict_to_budget(), 2);
        assert_eq!(index.oldest_day(), 12);
        assert!(!index.covers(11));
        assert_eq!(index.len(), 2, "the newest day stays even over budget");
        assert!(
            index.get(crate::contract::event_key("e")).is_some()
                && index.get(crate::contract::event_key("a")).is_none()
        );
    }

    #[test]
    fn late_keys_over_budget_never_widen_the_covered_days() {
        // Covers day 20 on, with room for 2 keys; a backfill wrote a row of
        // day 3, whose key the index holds beside today's.
        let mut index = KeyIndex::new(20, 2 * KeyIndex::bytes_per_key());
        for (day, keys) in [(3, &["late"][..]), (20, &["a", "b"][..])] {
            let file = index.add_file(&format!("{day}.parquet"), Partition::events(day, "t"));
            for (pos, key) in keys.iter().enumerate() {
                index.insert(crate::contract::event_key(key), file, pos as u32, 0);
            }
        }
        assert_eq!(index.evict_to_budget(), 1);
        // Days 4 to 19 were never loaded: they stay with the table probe.
        assert_eq!(index.oldest_day(), 20);
        assert!(!index.covers(19) && !index.covers(4));
        assert_eq!(index.len(), 2);
        assert!(index.get(crate::contract::event_key("late")).is_none());
    }

    #[test]
    fn late_keys_past_the_budget_are_left_to_the_table() {
        // Covers day 20 on, with room for 3 keys.
        let key = crate::contract::event_key;
        let mut index = KeyIndex::new(20, 3 * KeyIndex::bytes_per_key());
        let first = index.add_file("3a.parquet", Partition::events(3, "t"));
        index.insert(key("x"), first, 0, 1);
        let today = index.add_file("20.parquet", Partition::events(20, "t"));
        index.insert(key("a"), today, 0, 0);
        index.insert(key("b"), today, 1, 0);
        // Full: a late row replacing `x` is not taken, and `x`'s entry,
        // naming the row it replaced, goes.
        let second = index.add_file("3b.parquet", Partition::events(3, "t"));
        index.insert(key("x"), second, 0, 2);
        assert_eq!(index.len(), 2);
        assert!(index.get(key("x")).is_none());
        // That made room for one more; then it is full again.
        index.insert(key("y"), second, 1, 2);
        index.insert(key("z"), second, 2, 2);
        assert_eq!(index.len(), 3);
        assert_eq!(index.get(key("y")).map(|l| l.pos), Some(1));
        assert!(index.get(key("z")).is_none());
        assert_eq!(
            index.complete_files(),
            HashSet::from(["3a.parquet", "20.parquet"])
        );
        // A covered day's key is taken whatever the room; the budget then
        // drops older covered days (none here).
        index.insert(key("c"), today, 2, 0);
        index.insert(key("d"), today, 3, 0);
        assert_eq!(index.len(), 5);
        assert_eq!(index.evict_to_budget(), 1, "day 3's key goes");
        assert_eq!(index.len(), 4);
        assert_eq!(index.get(key("d")).map(|l| l.pos), Some(3));
    }

    #[test]
    fn files_lose_completeness_when_their_keys_may_be_missing() {
        // Room for 3 keys; a late file of day 3, two of days 20 and 21.
        let mut index = KeyIndex::new(20, 3 * KeyIndex::bytes_per_key());
        for (day, keys) in [(3, &["late"][..]), (20, &["a"][..]), (21, &["b", "c"][..])] {
            let file = index.add_file(&format!("{day}.parquet"), Partition::events(day, "t"));
            for (pos, key) in keys.iter().enumerate() {
                index.insert(crate::contract::event_key(key), file, pos as u32, 0);
            }
        }
        let all = HashSet::from(["3.parquet", "20.parquet", "21.parquet"]);
        assert_eq!(index.complete_files(), all);
        // Over budget: day 3 goes, and its file may hold keys the index lacks.
        assert_eq!(index.evict_to_budget(), 1);
        assert_eq!(
            index.complete_files(),
            HashSet::from(["20.parquet", "21.parquet"])
        );
        // A removed file is complete no more, even if added again.
        index.forget_files(&HashSet::from(["20.parquet".to_string()]));
        index.add_file("20.parquet", Partition::events(20, "t"));
        assert_eq!(index.complete_files(), HashSet::from(["21.parquet"]));
    }
}
