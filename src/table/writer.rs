//! Parquet data files: rows of one partition in, one [`DataFile`] (with the
//! column statistics manifests need) out.
//!
//! Files are written with iceberg-rust's Parquet writer, which records value
//! and null counts and lower/upper bounds per field id. Floe sets what that
//! writer leaves to the caller: zstd, a bloom filter sized for the file's keys,
//! no statistics for free-form text, and the partition path.
//!
//! Encoding is CPU work (seconds for a large file): a file written whole
//! ([`DataWriter::write`], [`DataWriter::write_position_deletes`]) is encoded
//! into memory on tokio's blocking pool, and only its upload runs on the
//! async workers. Compaction's output ([`DataWriter::open`]) is written batch
//! by batch straight to storage, as it may be larger than memory should hold.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::ArrowError;
use iceberg::io::{FileIO, MemoryStorage, OutputFile, Storage};
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, Literal, NestedField, PartitionSpecRef,
    PrimitiveType, Schema, SchemaRef, Struct, Type,
};
use iceberg::writer::CurrentFileStatus;
use iceberg::writer::file_writer::{
    FileWriter, FileWriterBuilder, ParquetWriter, ParquetWriterBuilder,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use uuid::Uuid;

use super::{LoadedTable, TableError, TableLayout};

/// A partition of a table: its values (in spec order) and its path segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// `day(created_datetime)` as days since the epoch, for the events table.
    pub day: Option<i32>,
    /// `identity(event_type)`, for the events table.
    pub event_type: Option<String>,
}

impl Partition {
    /// The single partition of an unpartitioned table.
    pub fn none() -> Self {
        Self {
            day: None,
            event_type: None,
        }
    }

    /// A partition of the events table.
    pub fn events(day: i32, event_type: &str) -> Self {
        Self {
            day: Some(day),
            event_type: Some(event_type.to_string()),
        }
    }

    fn values(&self) -> Struct {
        match (&self.day, &self.event_type) {
            (Some(day), Some(t)) => {
                Struct::from_iter([Some(Literal::date(*day)), Some(Literal::string(t))])
            }
            _ => Struct::empty(),
        }
    }

    /// `created_datetime_day=2026-05-28/event_type=payment`, Hive style, with
    /// characters outside `[A-Za-z0-9_.-]` percent-encoded.
    pub fn path(&self) -> String {
        match (&self.day, &self.event_type) {
            (Some(day), Some(t)) => format!(
                "created_datetime_day={}/event_type={}",
                format_day(*day),
                escape_path(t)
            ),
            _ => String::new(),
        }
    }
}

/// Days since 1970-01-01 as `YYYY-MM-DD`.
pub fn format_day(day: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0)
        .map_or_else(|| day.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

fn escape_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Settings for data files.
#[derive(Debug, Clone, Copy)]
pub struct FileSettings {
    /// zstd level (1 to 22).
    pub zstd_level: i32,
}

/// Writes data files for one table.
#[derive(Clone)]
pub struct DataWriter {
    file_io: FileIO,
    schema: SchemaRef,
    spec: PartitionSpecRef,
    /// `<table location>/data`.
    data_location: String,
    layout: Arc<TableLayout>,
    settings: FileSettings,
}

impl DataWriter {
    /// A writer for the current schema and spec of `table`.
    pub fn new(
        table: &LoadedTable,
        layout: Arc<TableLayout>,
        file_io: FileIO,
        settings: FileSettings,
    ) -> Self {
        Self {
            file_io,
            schema: table.metadata.current_schema().clone(),
            spec: table.metadata.default_partition_spec().clone(),
            data_location: format!("{}/data", table.location()),
            layout,
            settings,
        }
    }

    /// The table's Arrow schema (with field ids), for building batches.
    pub fn arrow_schema(&self) -> Result<arrow_schema::SchemaRef, TableError> {
        Ok(Arc::new(iceberg::arrow::schema_to_arrow_schema(
            &self.schema,
        )?))
    }

    fn properties(&self, rows: usize) -> Result<WriterProperties, TableError> {
        let level = zstd_level(self.settings.zstd_level)?;
        let mut builder = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_created_by(format!("floe {}", env!("CARGO_PKG_VERSION")));
        for column in &self.layout.bloom_filter_columns {
            let path = ColumnPath::from(column.as_str());
            builder = builder
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_fpp(path.clone(), 0.01)
                .set_column_bloom_filter_ndv(path.clone(), rows.max(1) as u64)
                // Keys are unique: a dictionary would only cost time.
                .set_column_dictionary_enabled(path, false);
        }
        for column in &self.layout.no_dictionary_columns {
            builder =
                builder.set_column_dictionary_enabled(ColumnPath::from(column.as_str()), false);
        }
        for column in &self.layout.no_statistics_columns {
            let path = ColumnPath::from(column.as_str());
            builder = builder
                .set_column_statistics_enabled(path.clone(), EnabledStatistics::None)
                .set_column_dictionary_enabled(path, false);
        }
        Ok(builder.build())
    }

    fn location(&self, partition: &Partition, suffix: &str) -> String {
        let path = partition.path();
        if path.is_empty() {
            format!("{}/{}{suffix}.parquet", self.data_location, Uuid::now_v7())
        } else {
            format!(
                "{}/{path}/{}{suffix}.parquet",
                self.data_location,
                Uuid::now_v7()
            )
        }
    }

    /// Writes `rows` rows of one partition, given as `batches`, as one
    /// Parquet file: encoded on a blocking thread, then uploaded. Each
    /// batch is taken from the iterator when the file is ready for it and
    /// freed once written, so a large file's rows need not be in Arrow all
    /// at once.
    pub async fn write(
        &self,
        partition: &Partition,
        rows: usize,
        batches: impl Iterator<Item = Result<RecordBatch, ArrowError>> + Send + 'static,
    ) -> Result<DataFile, TableError> {
        let location = self.location(partition, "");
        let props = self.properties(rows)?;
        let encoded = Encoded::new(location, props, self.schema.clone(), batches).await?;
        let (mut file, location) = encoded.upload(&self.file_io).await?;
        file.partition(partition.values())
            .partition_spec_id(self.spec.spec_id());
        build(file, &location)
    }

    /// Starts a data file of `partition` to be written batch by batch
    /// (compaction's output); `rows` sizes its bloom filter.
    pub async fn open(
        &self,
        partition: &Partition,
        rows: usize,
    ) -> Result<OpenDataFile, TableError> {
        let location = self.location(partition, "");
        let props = self.properties(rows)?;
        Ok(OpenDataFile {
            file: ParquetFile::open(
                self.file_io.new_output(&location)?,
                props,
                self.schema.clone(),
            )
            .await?,
            partition: partition.values(),
            spec_id: self.spec.spec_id(),
        })
    }

    /// Writes a position delete file: it removes row `pos` of data file
    /// `file_path` for each pair. Every target must be a data file of
    /// `partition` (the spec scopes position deletes to their partition).
    /// Pairs are sorted by path, then position, as the spec requires.
    pub async fn write_position_deletes(
        &self,
        partition: &Partition,
        deletes: &mut [(String, i64)],
    ) -> Result<DataFile, TableError> {
        deletes.sort_unstable();
        let schema = Arc::new(position_delete_schema()?);
        let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema)?);
        let paths: ArrayRef = Arc::new(StringArray::from_iter_values(
            deletes.iter().map(|d| d.0.as_str()),
        ));
        let positions: ArrayRef =
            Arc::new(Int64Array::from_iter_values(deletes.iter().map(|d| d.1)));
        let batch = RecordBatch::try_new(arrow_schema, vec![paths, positions])?;
        let location = self.location(partition, "-deletes");
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(zstd_level(self.settings.zstd_level)?))
            .set_created_by(format!("floe {}", env!("CARGO_PKG_VERSION")))
            .build();
        let encoded = Encoded::new(location, props, schema, std::iter::once(Ok(batch))).await?;
        let (mut file, location) = encoded.upload(&self.file_io).await?;
        let single_target = deletes
            .first()
            .filter(|first| deletes.iter().all(|d| d.0 == first.0));
        file.content(DataContentType::PositionDeletes)
            .partition(partition.values())
            .partition_spec_id(self.spec.spec_id())
            .referenced_data_file(single_target.map(|d| d.0.clone()));
        build(file, &location)
    }
}

/// The schema of position delete files, with the field ids the spec reserves.
fn position_delete_schema() -> Result<Schema, TableError> {
    let string = Type::Primitive(PrimitiveType::String);
    let long = Type::Primitive(PrimitiveType::Long);
    Ok(Schema::builder()
        .with_fields(vec![
            NestedField::required(2_147_483_546, "file_path", string).into(),
            NestedField::required(2_147_483_545, "pos", long).into(),
        ])
        .build()?)
}

fn zstd_level(level: i32) -> Result<ZstdLevel, TableError> {
    ZstdLevel::try_new(level).map_err(|e| {
        TableError::Iceberg(iceberg::Error::new(
            iceberg::ErrorKind::DataInvalid,
            format!("zstd level {level}: {e}"),
        ))
    })
}

/// A data file being written: batches in, a [`DataFile`] out.
pub struct OpenDataFile {
    file: ParquetFile,
    partition: Struct,
    spec_id: i32,
}

impl OpenDataFile {
    /// Appends rows (of the table's current schema).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        self.file.write(batch).await
    }

    /// Bytes written so far, counting what is still buffered (an estimate).
    pub fn written_bytes(&self) -> usize {
        self.file.writer.current_written_size()
    }

    /// Finishes the file.
    pub async fn close(self) -> Result<DataFile, TableError> {
        let (mut file, location) = self.file.close().await?;
        file.partition(self.partition)
            .partition_spec_id(self.spec_id);
        build(file, &location)
    }
}

/// A whole Parquet file encoded in memory, not yet uploaded.
struct Encoded {
    /// Its entry, with the column statistics manifests carry.
    file: DataFileBuilder,
    /// Where it goes.
    location: String,
    /// Holds its bytes (under `location`).
    memory: MemoryStorage,
}

impl Encoded {
    /// Encodes `batches` on tokio's blocking pool as the file `location`
    /// will hold: iceberg's writer writes into memory there, so nothing on
    /// that thread waits for I/O, and the upload stays on the async side.
    async fn new(
        location: String,
        props: WriterProperties,
        schema: SchemaRef,
        batches: impl Iterator<Item = Result<RecordBatch, ArrowError>> + Send + 'static,
    ) -> Result<Self, TableError> {
        crate::blocking::run(move || {
            let memory = MemoryStorage::new();
            let output = OutputFile::new(Arc::new(memory.clone()), location.clone());
            // In-memory storage never waits, so nothing here needs a runtime:
            // a plain executor drives the writer's futures to their end.
            futures::executor::block_on(async move {
                let mut parquet = ParquetFile::open(output, props, schema).await?;
                // The file holds copies of the values: each batch is freed
                // before the next is built.
                for batch in batches {
                    parquet.write(&batch?).await?;
                }
                let (file, location) = parquet.close().await?;
                Ok(Self {
                    file,
                    location,
                    memory,
                })
            })
        })
        .await
    }

    /// Uploads the file to `file_io`; returns its entry and location.
    async fn upload(self, file_io: &FileIO) -> Result<(DataFileBuilder, String), TableError> {
        let bytes = self.memory.read(&self.location).await?;
        drop(self.memory);
        file_io.new_output(&self.location)?.write(bytes).await?;
        Ok((self.file, self.location))
    }
}

/// A Parquet file written with iceberg's writer, which records the column
/// statistics manifests carry.
struct ParquetFile {
    writer: ParquetWriter,
    location: String,
}

impl ParquetFile {
    async fn open(
        output: OutputFile,
        props: WriterProperties,
        schema: SchemaRef,
    ) -> Result<Self, TableError> {
        let location = output.location().to_string();
        let writer = ParquetWriterBuilder::new(props, schema)
            .build(output)
            .await?;
        Ok(Self { writer, location })
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        Ok(self.writer.write(batch).await?)
    }

    async fn close(self) -> Result<(DataFileBuilder, String), TableError> {
        let location = self.location;
        let file = self.writer.close().await?.pop().ok_or_else(|| {
            TableError::Iceberg(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("Parquet writer wrote no file for {location}"),
            ))
        })?;
        Ok((file, location))
    }
}

fn build(file: DataFileBuilder, location: &str) -> Result<DataFile, TableError> {
    file.build().map_err(|e| {
        TableError::Iceberg(iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            format!("data file entry for {location}: {e}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_paths_are_hive_style_and_escaped() {
        assert_eq!(
            Partition::events(20601, "payment").path(),
            "created_datetime_day=2026-05-28/event_type=payment"
        );
        assert_eq!(
            Partition::events(0, "a b/c=d").path(),
            "created_datetime_day=1970-01-01/event_type=a%20b%2Fc%3Dd"
        );
        assert_eq!(Partition::none().path(), "");
        assert_eq!(format_day(-1), "1969-12-31");
    }
}
