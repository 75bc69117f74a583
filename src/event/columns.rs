//! Events held as columns: text in blocks and a few fixed-width vectors,
//! instead of one struct and one allocation per event. The buffer of a
//! flush keeps its rows here (a row costs its text plus about 90 bytes,
//! all counted by [`EventColumns::memory`]), and a record batch is
//! gathered from any selection of rows, so a flush copies a slice of one
//! file's rows at a time into Arrow, never the whole buffer.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::{Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, SchemaRef};

use super::batch::{field_id, timestamps, unknown_column};
use super::decode::{self, DecodeLimits, Rejection};
use super::typed::{self, Value};
use super::{Event, Origin, RecordPosition, Row};
use crate::contract::ids;

/// Rows of events in columns. Row `i` is appended by [`EventColumns::push`]
/// and read back by slot `i`.
#[derive(Debug, Default)]
pub struct EventColumns {
    /// Per row: `event_uuid`, `event_name`, `payload` and the
    /// `_source_position` text, one after the other, rows in slot order.
    /// A row lies in one block, and a block is never grown: a full one is
    /// followed by a new one, so text is never copied to grow and the
    /// unused capacity is at most the last block's rest.
    blocks: Vec<String>,
    /// Capacity of all blocks, kept as they are opened and written so that
    /// [`EventColumns::memory`] does not walk them.
    block_capacity: usize,
    /// Per row, its block.
    block: Vec<u32>,
    /// Text bytes in all blocks.
    text_len: usize,
    /// Per row, the end in its block of its uuid, name, payload and
    /// position (the row starts where the previous one ends, or at 0 when
    /// it opens a block). An empty payload is no payload: a payload is
    /// never empty text.
    ends: Vec<[u32; 4]>,
    /// Per row, `event_type` and `event_subtype` as ranges in its name; an
    /// empty subtype range is no subtype (a subtype is never empty).
    name_parts: Vec<[u32; 4]>,
    created_at: Vec<f64>,
    created_micros: Vec<i64>,
    content_hash: Vec<i64>,
    keys: Vec<u128>,
    ingested_micros: Vec<i64>,
    /// Per row, its `_source_id` as an index in `sources`.
    source: Vec<u32>,
    sources: Vec<Arc<str>>,
    /// Typed column values, row after row (`typed_width` per row).
    typed: Vec<Value>,
    typed_width: usize,
    /// Heap bytes the typed values hold beyond `typed` itself.
    typed_heap: usize,
}

/// What a row is, beside its payload and its origin.
struct Head<'a> {
    uuid: &'a str,
    name: &'a str,
    /// Byte ranges of `event_type` and `event_subtype` in `name`.
    event_type: (u32, u32),
    subtype: Option<(u32, u32)>,
    created_at: f64,
    created_micros: i64,
    key: u128,
}

/// The first text block's capacity; each next one doubles, up to
/// [`MAX_BLOCK`] (a partition of few rows takes little).
const FIRST_BLOCK: usize = 16 << 10;
/// The largest text block but for a row that is larger alone.
const MAX_BLOCK: usize = 1 << 20;

impl EventColumns {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Text bytes held.
    pub fn text_len(&self) -> usize {
        self.text_len
    }

    /// Makes room in the per-row vectors for `rows` more rows, so that
    /// filling them does not grow them step by step (a decoded chunk knows
    /// its line count).
    pub fn reserve(&mut self, rows: usize) {
        self.block.reserve(rows);
        self.ends.reserve(rows);
        self.name_parts.reserve(rows);
        self.created_at.reserve(rows);
        self.created_micros.reserve(rows);
        self.content_hash.reserve(rows);
        self.keys.reserve(rows);
        self.ingested_micros.reserve(rows);
        self.source.reserve(rows);
    }

    /// The block with room for `need` more bytes, opened if needed.
    fn block_for(&mut self, need: usize) -> usize {
        let room = |b: &String| b.capacity() - b.len() >= need;
        if !self.blocks.last().is_some_and(room) {
            let size = match self.blocks.last() {
                Some(last) => (2 * last.capacity()).min(MAX_BLOCK),
                None => FIRST_BLOCK,
            };
            let block = String::with_capacity(size.max(need));
            self.block_capacity += block.capacity();
            self.blocks.push(block);
        }
        self.blocks.len() - 1
    }

    /// Appends `event` from `origin` as the next slot.
    pub fn push(&mut self, event: &Event, origin: &Origin) {
        let head = Head {
            uuid: event.event_uuid(),
            name: event.event_name(),
            event_type: event.event_type,
            subtype: event.subtype,
            created_at: event.created_at,
            created_micros: event.created_micros,
            key: event.key,
        };
        let payload = event.payload().unwrap_or("");
        self.append(
            &head,
            payload.len(),
            |text| {
                text.push_str(payload);
                event.content_hash
            },
            &origin.position,
            &origin.source,
            origin.ingested_micros,
            &event.typed,
        );
    }

    /// Decodes `line` from `origin` straight into the next slot: its text
    /// is written once, here, with no event in between. A rejected record
    /// leaves the columns as they were. Pushes the index of every typed
    /// column whose value did not fit onto `mismatched`.
    pub fn decode(
        &mut self,
        line: &[u8],
        limits: &DecodeLimits,
        mismatched: &mut Vec<usize>,
        origin: &Origin,
    ) -> Result<(), Rejection> {
        let valid = decode::parse(line, limits, mismatched)?;
        let head = Head {
            uuid: &valid.event_uuid,
            name: &valid.event_name,
            event_type: valid.event_type,
            subtype: valid.subtype,
            created_at: valid.created_at,
            created_micros: valid.created_micros,
            key: valid.key(),
        };
        self.append(
            &head,
            valid.payload_capacity(),
            |text| valid.push_payload(text),
            &origin.position,
            &origin.source,
            origin.ingested_micros,
            &valid.typed,
        );
        Ok(())
    }

    /// Appends row `slot` of `other` as the next slot: its text, which
    /// lies in one piece, in one copy.
    pub fn push_row(&mut self, other: &EventColumns, slot: usize) {
        let row = other.row_text(slot);
        let b = self.block_for(row.text.len());
        let text = &mut self.blocks[b];
        let start = text.len();
        let capacity_before = text.capacity();
        text.push_str(row.text);
        self.text_len += row.text.len();
        self.block_capacity = self.block_capacity + text.capacity() - capacity_before;
        self.ends.push(row.ends.map(|e| (start + e) as u32));
        self.block.push(b as u32);
        self.name_parts.push(other.name_parts[slot]);
        self.created_at.push(other.created_at[slot]);
        self.created_micros.push(other.created_micros[slot]);
        self.content_hash.push(other.content_hash[slot]);
        self.keys.push(other.keys[slot]);
        self.ingested_micros.push(other.ingested_micros[slot]);
        self.push_source(&other.sources[other.source[slot] as usize]);
        self.push_typed(other.typed(slot));
    }

    /// Appends a row: its head, then a payload of at most `payload_max`
    /// bytes that `payload` appends to the text, returning the content
    /// hash, then its position.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        head: &Head<'_>,
        payload_max: usize,
        payload: impl FnOnce(&mut String) -> i64,
        position: &RecordPosition,
        source: &Arc<str>,
        ingested_micros: i64,
        typed: &[Value],
    ) {
        // The position's text: at most 20 digits, or the sequence number
        // and `:` with at most 10 digits.
        let position_max = match position {
            RecordPosition::Line { .. } => 20,
            RecordPosition::Record { seq, .. } => seq.len() + 11,
        };
        let need = head.uuid.len() + head.name.len() + payload_max + position_max;
        let b = self.block_for(need);
        let text = &mut self.blocks[b];
        let before = text.len();
        let capacity_before = text.capacity();
        let end = |text: &String| text.len() as u32;
        text.push_str(head.uuid);
        let uuid_end = end(text);
        text.push_str(head.name);
        let name_end = end(text);
        let content_hash = payload(text);
        let payload_end = end(text);
        // Written once, when the row is first taken in, not per row at
        // every flush.
        match position {
            RecordPosition::Line { line, .. } => text.push_str(itoa::Buffer::new().format(*line)),
            RecordPosition::Record { seq, index } => {
                text.push_str(seq);
                if let Some(i) = index {
                    text.push(':');
                    text.push_str(itoa::Buffer::new().format(*i));
                }
            }
        }
        self.text_len += text.len() - before;
        // Not grown when `need` was right, but counted whatever happened.
        self.block_capacity = self.block_capacity + text.capacity() - capacity_before;
        self.ends.push([uuid_end, name_end, payload_end, end(text)]);
        self.block.push(b as u32);
        let (s0, s1) = head.subtype.unwrap_or((0, 0));
        self.name_parts
            .push([head.event_type.0, head.event_type.1, s0, s1]);
        self.created_at.push(head.created_at);
        self.created_micros.push(head.created_micros);
        self.content_hash.push(content_hash);
        self.keys.push(head.key);
        self.ingested_micros.push(ingested_micros);
        self.push_source(source);
        self.push_typed(typed);
    }

    /// The `_source_id` of the row just appended.
    fn push_source(&mut self, source: &Arc<str>) {
        let known = |s: &Arc<str>| Arc::ptr_eq(s, source) || *s == *source;
        let source = match self.sources.iter().rposition(known) {
            Some(i) => i,
            None => {
                self.sources.push(source.clone());
                self.sources.len() - 1
            }
        };
        self.source.push(source as u32);
    }

    /// The typed column values of the row just appended.
    fn push_typed(&mut self, typed: &[Value]) {
        // Every event of a run has the same typed columns.
        if self.ends.len() == 1 {
            self.typed_width = typed.len();
        }
        for v in typed.iter().take(self.typed_width) {
            self.typed_heap += v.heap_size() - std::mem::size_of::<Value>();
            self.typed.push(v.clone());
        }
        for _ in typed.len()..self.typed_width {
            self.typed.push(Value::Null);
        }
    }

    /// The typed column values of a row.
    pub fn typed(&self, slot: usize) -> &[Value] {
        &self.typed[slot * self.typed_width..(slot + 1) * self.typed_width]
    }

    /// The text of a row's block.
    fn text(&self, slot: usize) -> &str {
        &self.blocks[self.block[slot] as usize]
    }

    /// Where a row starts in its block.
    fn start(&self, slot: usize) -> usize {
        match slot.checked_sub(1) {
            Some(prev) if self.block[prev] == self.block[slot] => self.ends[prev][3] as usize,
            _ => 0,
        }
    }

    /// `event_uuid` of a row.
    pub fn event_uuid(&self, slot: usize) -> &str {
        &self.text(slot)[self.start(slot)..self.ends[slot][0] as usize]
    }

    /// `event_name` of a row.
    pub fn event_name(&self, slot: usize) -> &str {
        &self.text(slot)[self.ends[slot][0] as usize..self.ends[slot][1] as usize]
    }

    /// `event_type` of a row.
    pub fn event_type(&self, slot: usize) -> &str {
        let [a, b, ..] = self.name_parts[slot];
        &self.event_name(slot)[a as usize..b as usize]
    }

    /// `event_subtype` of a row, when it has one.
    pub fn event_subtype(&self, slot: usize) -> Option<&str> {
        let [_, _, a, b] = self.name_parts[slot];
        (a < b).then(|| &self.event_name(slot)[a as usize..b as usize])
    }

    /// The `_source_position` text of a row.
    pub fn position(&self, slot: usize) -> &str {
        let [_, _, a, b] = self.ends[slot];
        &self.text(slot)[a as usize..b as usize]
    }

    /// The key of a row ([`Event::key`]).
    pub fn key(&self, slot: usize) -> u128 {
        self.keys[slot]
    }

    /// The content hash of a row ([`Event::content_hash`]).
    pub fn content_hash(&self, slot: usize) -> i64 {
        self.content_hash[slot]
    }

    /// Day of a row's `created_datetime` since 1970-01-01 (its partition
    /// value).
    pub fn day(&self, slot: usize) -> i32 {
        crate::contract::partition_day(self.created_micros[slot])
    }

    /// `_source_id` of a row.
    pub fn source_id(&self, slot: usize) -> &str {
        &self.sources[self.source[slot] as usize]
    }

    /// `_ingested_at` of a row, in microseconds.
    pub fn ingested_micros(&self, slot: usize) -> i64 {
        self.ingested_micros[slot]
    }

    /// `created_datetime` of a row, in microseconds.
    pub fn created_micros(&self, slot: usize) -> i64 {
        self.created_micros[slot]
    }

    /// Bytes a row holds, for sizing files.
    pub fn row_bytes(&self, slot: usize) -> usize {
        ROW_FIXED_BYTES + self.ends[slot][3] as usize - self.start(slot)
            + self.typed_width * std::mem::size_of::<Value>()
    }

    /// Bytes held, capacity counted (what the allocator gave, slack
    /// included). Constant time: the buffer asks after every row.
    pub fn memory(&self) -> usize {
        self.block_capacity + self.fixed_memory()
    }

    /// [`memory`](Self::memory) counted again from every block.
    #[cfg(test)]
    pub fn memory_recounted(&self) -> usize {
        self.blocks.iter().map(String::capacity).sum::<usize>() + self.fixed_memory()
    }

    /// Bytes held beside the blocks' text.
    fn fixed_memory(&self) -> usize {
        fn cap<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        cap(&self.blocks)
            + cap(&self.block)
            + cap(&self.ends)
            + cap(&self.name_parts)
            + cap(&self.created_at)
            + cap(&self.created_micros)
            + cap(&self.content_hash)
            + cap(&self.keys)
            + cap(&self.ingested_micros)
            + cap(&self.source)
            + cap(&self.sources)
            + cap(&self.typed)
            + self.typed_heap
    }

    /// One record batch in `schema` of the rows at `slots`, in that order.
    /// Columns are matched by field id (see [`super::events_batch`]).
    pub fn batch(&self, schema: &SchemaRef, slots: &[u32]) -> Result<RecordBatch, ArrowError> {
        let rows = || slots.iter().map(|&s| s as usize);
        // Each row's text found once for all its string columns: finding
        // it in its block is most of a gather's cost.
        let texts: Vec<RowText<'_>> = rows().map(|s| self.row_text(s)).collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        let mut typed_index = 0;
        for field in schema.fields() {
            let column: ArrayRef = match field_id(field) {
                Some(ids::EVENT_UUID) => gather(&texts, |r| Some(r.part(0)))?,
                Some(ids::EVENT_NAME) => gather(&texts, |r| Some(r.part(1)))?,
                Some(ids::EVENT_TYPE) => gather(&texts, |r| {
                    let [a, b, ..] = self.name_parts[r.slot];
                    Some(&r.part(1)[a as usize..b as usize])
                })?,
                Some(ids::EVENT_SUBTYPE) => gather(&texts, |r| {
                    let [_, _, a, b] = self.name_parts[r.slot];
                    (a < b).then(|| &r.part(1)[a as usize..b as usize])
                })?,
                Some(ids::CREATED_AT) => Arc::new(Float64Array::from_iter_values(
                    rows().map(|s| self.created_at[s]),
                )),
                Some(ids::CREATED_DATETIME) => timestamps(
                    field.data_type(),
                    rows().map(|s| self.created_micros[s]).collect(),
                ),
                Some(ids::PAYLOAD) => {
                    gather(&texts, |r| Some(r.part(2)).filter(|p| !p.is_empty()))?
                }
                Some(ids::INGESTED_AT) => timestamps(
                    field.data_type(),
                    rows().map(|s| self.ingested_micros[s]).collect(),
                ),
                Some(ids::SOURCE_ID) => gather(&texts, |r| {
                    Some(self.sources[self.source[r.slot] as usize].as_bytes())
                })?,
                Some(ids::SOURCE_POSITION) => gather(&texts, |r| Some(r.part(3)))?,
                Some(ids::CONTENT_HASH) => Arc::new(Int64Array::from_iter_values(
                    rows().map(|s| self.content_hash[s]),
                )),
                _ if field.is_nullable() => {
                    let i = typed_index;
                    typed_index += 1;
                    let values: Vec<&Value> = rows()
                        .map(|s| match i < self.typed_width {
                            true => &self.typed[s * self.typed_width + i],
                            false => &Value::Null,
                        })
                        .collect();
                    typed::to_array(field.data_type(), &values)?
                }
                _ => return Err(unknown_column(field.name())),
            };
            columns.push(column);
        }
        RecordBatch::try_new(schema.clone(), columns)
    }

    /// Row `slot`'s text: its uuid, name, payload and position, one after
    /// the other.
    fn row_text(&self, slot: usize) -> RowText<'_> {
        let start = self.start(slot);
        let text = &self.text(slot)[start..self.ends[slot][3] as usize];
        let ends = self.ends[slot].map(|e| e as usize - start);
        RowText { slot, text, ends }
    }
}

/// A row's text, as [`EventColumns::row_text`] finds it.
struct RowText<'a> {
    slot: usize,
    text: &'a str,
    /// Where its uuid, name, payload and position end in `text`.
    ends: [usize; 4],
}

impl<'a> RowText<'a> {
    /// Part `i`: 0 the uuid, 1 the name, 2 the payload, 3 the position.
    fn part(&self, i: usize) -> &'a [u8] {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1],
        };
        &self.text.as_bytes()[start..self.ends[i]]
    }
}

/// Builds one record batch of event rows in `schema`.
pub fn events_batch(schema: &SchemaRef, rows: &[&Row]) -> Result<RecordBatch, ArrowError> {
    let mut columns = EventColumns::default();
    for row in rows {
        columns.push(&row.event, &row.origin);
    }
    let slots: Vec<u32> = (0..rows.len() as u32).collect();
    columns.batch(schema, &slots)
}

/// A string column of `value(row)` for each of `rows`, built straight
/// from the bytes (checked as UTF-8 once, as a whole, by Arrow).
fn gather<'a, T>(
    rows: &[T],
    value: impl Fn(&T) -> Option<&'a [u8]>,
) -> Result<ArrayRef, ArrowError> {
    let bytes = rows.iter().map(|r| value(r).map_or(0, <[u8]>::len)).sum();
    let mut values: Vec<u8> = Vec::with_capacity(bytes);
    let mut offsets: Vec<i32> = Vec::with_capacity(rows.len() + 1);
    let mut nulls = NullBufferBuilder::new(rows.len());
    let offset = |len: usize| {
        i32::try_from(len).map_err(|_| {
            ArrowError::ComputeError(format!(
                "{len} bytes of text are too many for a string column"
            ))
        })
    };
    offsets.push(0);
    for row in rows {
        match value(row) {
            Some(v) => {
                values.extend_from_slice(v);
                nulls.append_non_null();
            }
            None => nulls.append_null(),
        }
        offsets.push(offset(values.len())?);
    }
    let array = StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from_vec(values),
        nulls.finish(),
    )?;
    Ok(Arc::new(array))
}

/// Fixed bytes per row in [`EventColumns`] beside its text.
pub const ROW_FIXED_BYTES: usize = 2 * 16 + 4 * 8 + 16 + 2 * 4;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_array::{Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn field(name: &str, id: i32, data_type: DataType) -> Field {
        Field::new(name, data_type, true).with_metadata(HashMap::from([(
            parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_string(),
            id.to_string(),
        )]))
    }

    fn event(uuid: &str, name: &str, extra: &str) -> Event {
        crate::event::test_event(uuid, name, 1_780_000_000.0, extra)
    }

    fn strings(batch: &RecordBatch, i: usize) -> Vec<Option<String>> {
        let array = batch
            .column(i)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        (0..array.len())
            .map(|r| array.is_valid(r).then(|| array.value(r).to_string()))
            .collect()
    }

    /// Rows come back from any selection of slots with their own values:
    /// no subtype and no payload are nulls, positions are the text written
    /// at push (a line, a sequence number, `seq:index`).
    #[test]
    fn a_selection_of_rows_becomes_a_batch() {
        let origin = |source: &str, position| Origin {
            source: Arc::from(source),
            position,
            ingested_micros: 5,
        };
        let mut columns = EventColumns::default();
        columns.push(
            &event("a", "x : y", r#","v":1"#),
            &origin(
                "f.jsonl",
                RecordPosition::Line {
                    line: 12,
                    offset: 0,
                },
            ),
        );
        columns.push(
            &event("b", "x", ""),
            &origin(
                "kinesis:s/1",
                RecordPosition::Record {
                    seq: Arc::from("4960"),
                    index: None,
                },
            ),
        );
        columns.push(
            &event("c", "x:", ""),
            &origin(
                "kinesis:s/1",
                RecordPosition::Record {
                    seq: Arc::from("4961"),
                    index: Some(3),
                },
            ),
        );
        assert_eq!(columns.len(), 3);
        let schema = Arc::new(Schema::new(vec![
            field("event_uuid", ids::EVENT_UUID, DataType::Utf8),
            field("event_type", ids::EVENT_TYPE, DataType::Utf8),
            field("event_subtype", ids::EVENT_SUBTYPE, DataType::Utf8),
            field("payload", ids::PAYLOAD, DataType::Utf8),
            field("_source_id", ids::SOURCE_ID, DataType::Utf8),
            field("_source_position", ids::SOURCE_POSITION, DataType::Utf8),
        ]));
        let batch = columns.batch(&schema, &[2, 0, 1]).unwrap();
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(strings(&batch, 0), some(&["c", "a", "b"]));
        assert_eq!(strings(&batch, 1), some(&["x", "x", "x"]));
        assert_eq!(strings(&batch, 2), [None, Some("y".to_string()), None]);
        assert_eq!(
            strings(&batch, 3),
            [None, Some(r#"{"v":1}"#.to_string()), None]
        );
        assert_eq!(
            strings(&batch, 4),
            some(&["kinesis:s/1", "f.jsonl", "kinesis:s/1"])
        );
        assert_eq!(strings(&batch, 5), some(&["4961:3", "12", "4960"]));
        assert_eq!(columns.batch(&schema, &[]).unwrap().num_rows(), 0);
    }

    /// A line decoded straight into columns, the event decoded from it
    /// and pushed, and the row copied from other columns are the same
    /// row; a rejected line leaves the columns as they were.
    #[test]
    fn decoding_into_columns_pushing_and_copying_give_the_same_rows() {
        let limits = DecodeLimits {
            max_record_size: 1 << 20,
            now_seconds: 1_790_000_000.0,
            ..Default::default()
        };
        let lines = [
            r#"{"event_uuid":"a","event_name":"x : y","created_at":1780000000,"v":1}"#,
            "not json",
            r#"{ "created_at" : 1780000000.5 , "event_name":"p\u0041y:", "event_uuid":"b\"c", "n":{"k": [1, 2]} }"#,
            r#"{"event_uuid":"e","event_name":"x"}"#,
            r#"{"event_uuid":"d","event_name":"z","created_at":1780000001}"#,
        ];
        let origin = |line: usize| Origin {
            source: Arc::from("f.jsonl"),
            position: RecordPosition::Line {
                line: line as u64,
                offset: 0,
            },
            ingested_micros: 9,
        };
        let (mut direct, mut pushed) = (EventColumns::default(), EventColumns::default());
        for (i, line) in lines.iter().enumerate() {
            let decoded = direct.decode(line.as_bytes(), &limits, &mut Vec::new(), &origin(i));
            match crate::event::decode(line.as_bytes(), &limits) {
                Ok(event) => {
                    assert_eq!(decoded, Ok(()), "{line}");
                    pushed.push(&event, &origin(i));
                }
                Err(rejection) => assert_eq!(decoded, Err(rejection), "{line}"),
            }
            assert_eq!(
                (direct.len(), direct.text_len(), direct.memory()),
                (pushed.len(), pushed.text_len(), pushed.memory()),
                "{line}"
            );
        }
        assert_eq!(direct.len(), 3);
        let mut copied = EventColumns::default();
        for slot in (0..direct.len()).rev() {
            copied.push_row(&direct, slot);
        }
        let timestamp =
            DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("+00:00".into()));
        let schema = Arc::new(Schema::new(vec![
            field("event_uuid", ids::EVENT_UUID, DataType::Utf8),
            field("event_name", ids::EVENT_NAME, DataType::Utf8),
            field("event_type", ids::EVENT_TYPE, DataType::Utf8),
            field("event_subtype", ids::EVENT_SUBTYPE, DataType::Utf8),
            field("created_at", ids::CREATED_AT, DataType::Float64),
            field("created_datetime", ids::CREATED_DATETIME, timestamp.clone()),
            field("payload", ids::PAYLOAD, DataType::Utf8),
            field("_ingested_at", ids::INGESTED_AT, timestamp),
            field("_source_id", ids::SOURCE_ID, DataType::Utf8),
            field("_source_position", ids::SOURCE_POSITION, DataType::Utf8),
            field("_content_hash", ids::CONTENT_HASH, DataType::Int64),
        ]));
        let batch = direct.batch(&schema, &[0, 1, 2]).unwrap();
        assert_eq!(batch, pushed.batch(&schema, &[0, 1, 2]).unwrap());
        assert_eq!(batch, copied.batch(&schema, &[2, 1, 0]).unwrap());
        assert_eq!(strings(&batch, 1)[1].as_deref(), Some("pAy:"));
        assert_eq!(strings(&batch, 3), [Some("y".to_string()), None, None]);
        assert_eq!(
            strings(&batch, 6)[1].as_deref(),
            Some(r#"{"n":{"k":[1,2]}}"#)
        );
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(strings(&batch, 9), some(&["0", "2", "4"]));
        assert_eq!(copied.memory(), copied.memory_recounted());
    }

    /// What the columns hold is counted, slack included, and grows with
    /// the rows' text; the running count of the blocks is their sum.
    #[test]
    fn memory_counts_text_and_fixed_bytes() {
        let mut columns = EventColumns::default();
        let origin = Origin {
            source: Arc::from("f"),
            position: RecordPosition::Line { line: 1, offset: 0 },
            ingested_micros: 0,
        };
        let payload = format!(r#","p":"{}""#, "z".repeat(200));
        for i in 0..1000 {
            columns.push(&event(&format!("u{i}"), "x", &payload), &origin);
        }
        let text = columns.text_len();
        assert!(text > 1000 * 200, "{text}");
        assert!(columns.memory() >= text + 1000 * ROW_FIXED_BYTES);
        assert!(columns.memory() <= 2 * (text + 1000 * ROW_FIXED_BYTES) + 4096);
        // Kept as blocks open (several by now), and for a row larger than
        // a block alone.
        assert!(columns.blocks.len() > 3, "{}", columns.blocks.len());
        assert_eq!(columns.memory(), columns.memory_recounted());
        let large = format!(r#","p":"{}""#, "z".repeat(MAX_BLOCK + 10));
        columns.push(&event("big", "x", &large), &origin);
        assert!(columns.blocks.last().unwrap().capacity() > MAX_BLOCK);
        assert_eq!(columns.memory(), columns.memory_recounted());
    }
}
