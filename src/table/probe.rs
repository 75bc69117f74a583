//! Late events: keys older than the key index's window, looked up in the
//! table itself.
//!
//! A duplicate carries its original's `created_at` and `event_type`, so it
//! can only match rows of the same partition whose `created_datetime` bounds
//! (from the manifests) contain its time. Of those files, the Parquet bloom
//! filter on `event_uuid` rules out nearly all; only a file whose filter
//! says "maybe" has its key columns read. Position deletes of the partition
//! are applied, so only live rows match.

use std::collections::HashMap;

use iceberg::spec::{DataContentType, PrimitiveLiteral};
use parquet::bloom_filter::Sbbf;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};

use super::index::{Map, events_partition, read_keys, read_position_deletes};
use super::writer::Partition;
use super::{LoadedTable, TableError, TableStore};

/// Field id of `created_datetime` in the events schema files.
const CREATED_DATETIME_ID: i32 = 6;

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
struct Candidate {
    path: String,
    lower: i64,
    upper: i64,
}

/// Looks up keys in one snapshot of the table; caches what it reads.
pub struct Probe<'a> {
    store: &'a TableStore,
    /// Data files per partition.
    files: HashMap<Partition, Vec<Candidate>>,
    /// Deleted positions per data file, loaded per partition on first use.
    deleted: Map<String, Vec<i64>>,
    /// Delete files per partition, not yet read.
    delete_files: HashMap<Partition, Vec<String>>,
    /// Key columns of the files read so far: key -> (pos, hash).
    keys: HashMap<String, Map<u128, (i64, i64)>>,
    /// Bloom filters of `event_uuid` per file, one per row group (`None`:
    /// a row group without one, so the file must be read).
    blooms: HashMap<String, Option<Vec<Sbbf>>>,
    /// Files whose bloom filter was consulted, and files read.
    pub stats: ProbeStats,
}

/// What probing cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeStats {
    /// Keys looked up.
    pub lookups: u64,
    /// Files whose bounds contained a key's time (bloom filters checked).
    pub bloom_checks: u64,
    /// Files whose key columns were read.
    pub files_read: u64,
}

fn bound_micros(datum: Option<&iceberg::spec::Datum>) -> Option<i64> {
    match datum?.literal() {
        PrimitiveLiteral::Long(v) => Some(*v),
        _ => None,
    }
}

impl<'a> Probe<'a> {
    /// Lists the data and delete files of the table's current snapshot.
    pub async fn new(store: &'a TableStore, table: &LoadedTable) -> Result<Self, TableError> {
        let mut probe = Self {
            store,
            files: HashMap::new(),
            deleted: Map::default(),
            delete_files: HashMap::new(),
            keys: HashMap::new(),
            blooms: HashMap::new(),
            stats: ProbeStats::default(),
        };
        for entry in store.live_entries(table).await? {
            let file = entry.data_file();
            let Some(partition) = events_partition(file.partition().iter()) else {
                continue;
            };
            match file.content_type() {
                DataContentType::Data => {
                    probe.files.entry(partition).or_default().push(Candidate {
                        path: file.file_path().to_string(),
                        lower: bound_micros(file.lower_bounds().get(&CREATED_DATETIME_ID))
                            .unwrap_or(i64::MIN),
                        upper: bound_micros(file.upper_bounds().get(&CREATED_DATETIME_ID))
                            .unwrap_or(i64::MAX),
                    });
                }
                DataContentType::PositionDeletes => {
                    probe
                        .delete_files
                        .entry(partition)
                        .or_default()
                        .push(file.file_path().to_string());
                }
                DataContentType::EqualityDeletes => {}
            }
        }
        Ok(probe)
    }

    /// The live row of `event_uuid` in `partition` around `created_micros`.
    pub async fn find(
        &mut self,
        partition: &Partition,
        event_uuid: &str,
        created_micros: i64,
    ) -> Result<Option<Found>, TableError> {
        self.stats.lookups += 1;
        let key = crate::contract::event_key(event_uuid);
        let candidates: Vec<String> = self
            .files
            .get(partition)
            .map(|files| {
                files
                    .iter()
                    .filter(|f| f.lower <= created_micros && created_micros <= f.upper)
                    .map(|f| f.path.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut found = None;
        for path in candidates {
            if !self.keys.contains_key(&path) {
                self.stats.bloom_checks += 1;
                if !self.blooms.contains_key(&path) {
                    let blooms = self.load_blooms(&path).await?;
                    self.blooms.insert(path.clone(), blooms);
                }
                let may_contain = match &self.blooms[&path] {
                    Some(filters) => filters.iter().any(|f| f.check(event_uuid)),
                    None => true,
                };
                if !may_contain {
                    continue;
                }
                self.load_keys(partition, &path).await?;
            }
            if let Some(&(pos, hash)) = self.keys.get(&path).and_then(|k| k.get(&key)) {
                // Files are not ordered here; a key lives in one file at most.
                found = Some(Found {
                    path: path.clone(),
                    partition: partition.clone(),
                    pos,
                    hash,
                });
            }
        }
        Ok(found)
    }

    /// Reads a file's `event_uuid` bloom filters (once per file and probe).
    async fn load_blooms(&self, path: &str) -> Result<Option<Vec<Sbbf>>, TableError> {
        let bytes = self.store.file_io().new_input(path)?.read().await?;
        let options = ReadOptionsBuilder::new()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build();
        let err = |e: parquet::errors::ParquetError| {
            TableError::Iceberg(iceberg::Error::new(
                iceberg::ErrorKind::DataInvalid,
                format!("reading {path}: {e}"),
            ))
        };
        let reader = SerializedFileReader::new_with_options(bytes, options).map_err(err)?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let Some(column) =
            (0..schema.num_columns()).find(|&i| schema.column(i).name() == "event_uuid")
        else {
            return Ok(None);
        };
        let mut filters = Vec::with_capacity(reader.num_row_groups());
        for i in 0..reader.num_row_groups() {
            let group = reader.get_row_group(i).map_err(err)?;
            match group.get_column_bloom_filter(column) {
                Some(filter) => filters.push(filter.clone()),
                // No filter: the file must be read to know.
                None => return Ok(None),
            }
        }
        Ok(Some(filters))
    }

    async fn load_keys(&mut self, partition: &Partition, path: &str) -> Result<(), TableError> {
        self.stats.files_read += 1;
        if let Some(delete_files) = self.delete_files.remove(partition) {
            for delete_file in delete_files {
                read_position_deletes(self.store, &delete_file, &mut self.deleted).await?;
            }
        }
        let gone = self.deleted.get(path).cloned().unwrap_or_default();
        let mut keys = Map::default();
        read_keys(self.store, path, |pos, key, hash| {
            if !gone.contains(&i64::from(pos)) {
                keys.insert(key, (i64::from(pos), hash));
            }
        })
        .await?;
        self.keys.insert(path.to_string(), keys);
        Ok(())
    }
}
