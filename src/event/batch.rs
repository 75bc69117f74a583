//! Rows to Arrow: the events and rejected records of a flush as record batches
//! in the table's Arrow schema. Columns are matched by field id, so a schema
//! file may rename, order or drop them; the other top-level columns are the
//! typed columns, filled from [`Event::typed`] in schema order.

use std::sync::Arc;

use arrow_array::builder::LargeBinaryBuilder;
use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use arrow_schema::{ArrowError, DataType, SchemaRef};

use super::{Event, RejectReason};
use crate::contract::ids;

/// Where a record came from and when it was read: the ingestion columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The source: a file path as given, `-` for stdin, `kinesis:<stream>/<shard>`.
    pub source: Arc<str>,
    /// The record's place in the source.
    pub position: RecordPosition,
    /// When the record was read, microseconds since the epoch.
    pub ingested_micros: i64,
}

/// Where in its source a record is (the `_source_position` column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordPosition {
    /// A line of a file.
    Line {
        /// 1-based line number in the (decompressed) source.
        line: u64,
        /// Byte offset of the line's first byte in the (decompressed) source.
        offset: u64,
    },
    /// A Kinesis record, or one event of a record holding several.
    Record {
        /// The record's sequence number.
        seq: Arc<str>,
        /// The event's 0-based place in the record, when it holds several.
        index: Option<u32>,
    },
}

impl RecordPosition {
    /// The `_source_position` text: the line number; the sequence number,
    /// followed by `:<index>` for an event of a record holding several.
    pub fn text(&self) -> String {
        match self {
            RecordPosition::Line { line, .. } => line.to_string(),
            RecordPosition::Record { seq, index: None } => seq.to_string(),
            RecordPosition::Record {
                seq,
                index: Some(i),
            } => format!("{seq}:{i}"),
        }
    }
}

/// A valid event and its origin: one future table row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The decoded event.
    pub event: Event,
    /// Where it came from.
    pub origin: Origin,
}

/// A record that goes to the rejected table.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRecord {
    /// The reason code.
    pub reason: RejectReason,
    /// What is wrong.
    pub message: String,
    /// The record's bytes (the head only, for oversized records).
    pub raw: Vec<u8>,
    /// Where it came from.
    pub origin: Origin,
}

/// Longest prefix of an oversized record kept in the rejected table.
pub const MAX_RAW_KEPT: usize = 64 * 1024;

/// What the rejected table keeps of a rejected record's `bytes`: at most
/// the first [`MAX_RAW_KEPT`].
pub fn kept_raw(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len().min(MAX_RAW_KEPT)].to_vec()
}

pub(super) fn timestamps(data_type: &DataType, values: Vec<i64>) -> ArrayRef {
    let array = TimestampMicrosecondArray::from(values);
    match data_type {
        DataType::Timestamp(_, Some(tz)) => Arc::new(array.with_timezone(tz.clone())),
        _ => Arc::new(array),
    }
}

pub(super) fn unknown_column(name: &str) -> ArrowError {
    ArrowError::SchemaError(format!(
        "required column `{name}` has no source: Floe cannot fill it"
    ))
}

/// The Iceberg field id an Arrow field carries.
pub(super) fn field_id(field: &arrow_schema::Field) -> Option<i32> {
    field
        .metadata()
        .get(parquet::arrow::PARQUET_FIELD_ID_META_KEY)
        .and_then(|id| id.parse().ok())
}

/// Builds one record batch of rejected records in `schema`.
pub fn rejected_batch(
    schema: &SchemaRef,
    records: &[RejectedRecord],
) -> Result<RecordBatch, ArrowError> {
    let n = records.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column: ArrayRef = match field_id(field) {
            Some(ids::REJECTED_REASON) => Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.reason.code()),
            )),
            Some(ids::REJECTED_MESSAGE) => Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.message.as_str()),
            )),
            Some(ids::REJECTED_RAW) => {
                let bytes = records.iter().map(|r| r.raw.len()).sum();
                let mut builder = LargeBinaryBuilder::with_capacity(n, bytes);
                for r in records {
                    builder.append_value(&r.raw);
                }
                Arc::new(builder.finish())
            }
            Some(ids::REJECTED_INGESTED_AT) => timestamps(
                field.data_type(),
                records.iter().map(|r| r.origin.ingested_micros).collect(),
            ),
            Some(ids::REJECTED_SOURCE_ID) => Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.origin.source.as_ref()),
            )),
            Some(ids::REJECTED_SOURCE_POSITION) => Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.origin.position.text()),
            )),
            _ if field.is_nullable() => new_null_array(field.data_type(), n),
            _ => return Err(unknown_column(field.name())),
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns)
}
