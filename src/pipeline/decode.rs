//! The CPU-parallel stage: one chunk of lines in, rows and rejected records
//! out, with exact line numbers and byte offsets. [`spawn_decoder`] runs it
//! between the source's channel and the run loop.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{RunError, stage_failed};
use crate::checkpoint::SourcePosition;
use crate::event::typed::{MismatchCounts, Value};
use crate::event::{
    self, DecodeLimits, EventColumns, Origin, RecordPosition, RejectReason, RejectedRecord,
};
use crate::source::file::{BOM, Chunk, ChunkBody};
use crate::source::kinesis::ShardBatch;
use crate::source::kpl;
use crate::source::{SourceChunk, SourceError, SourceInfo};
use crate::table::summary::MissingCounts;

/// A decoded chunk.
#[derive(Debug)]
pub struct Decoded {
    /// The source it came from.
    pub source: Arc<SourceInfo>,
    /// Position before its first record.
    pub start: SourcePosition,
    /// Position after its last record.
    pub end: SourcePosition,
    /// Valid events, in input order, decoded straight into columns.
    pub rows: EventColumns,
    /// Rejected records, in input order.
    pub rejects: Vec<RejectedRecord>,
    /// Non-blank lines read.
    pub records: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Values kept in `payload` because they did not fit their typed column,
    /// by column name.
    pub type_mismatches: MismatchCounts,
    /// Valid records without an optional field (`event_subtype` or a typed
    /// column), by (event_type, field).
    pub missing: MissingCounts,
    /// Per event type, records without `event_subtype` (index 0) or typed
    /// column `i` (index `i + 1`): counted without allocating per record,
    /// turned into `missing` when the chunk is done.
    pub(super) missing_by_type: HashMap<String, Vec<u64>>,
    /// Input bytes the chunk covered.
    pub bytes: u64,
    /// Commit soon: the chunk ends a closed shard (so its children can
    /// start), or its reader stopped to hand the shard over (so the lease
    /// can go).
    pub commit_soon: bool,
}

/// Starts the decoder: chunks from `chunks` are decoded on the blocking
/// pool, up to `threads` at once, and handed on in input order through a
/// channel of 2. A source's error is handed on after what was decoded
/// before it, and so is a decode task's panic (a bug: the `decoder` stage
/// fails); the decoder ends after either, at the end of the input, or when
/// the receiver is gone.
pub fn spawn_decoder(
    mut chunks: mpsc::Receiver<Result<SourceChunk, SourceError>>,
    limits: DecodeLimits,
    threads: usize,
) -> (mpsc::Receiver<Result<Decoded, RunError>>, JoinHandle<()>) {
    let (decoded_tx, decoded_rx) = mpsc::channel::<Result<Decoded, RunError>>(2);
    let decoder = tokio::spawn(async move {
        let mut in_flight = FuturesOrdered::new();
        let mut input_open = true;
        loop {
            tokio::select! {
                chunk = chunks.recv(), if input_open && in_flight.len() < threads => {
                    match chunk {
                        Some(Ok(chunk)) => {
                            let ingested = chrono::Utc::now().timestamp_micros();
                            let limits = limits.clone();
                            in_flight.push_back(tokio::task::spawn_blocking(move || {
                                decode_source_chunk(chunk, &limits, ingested)
                            }));
                        }
                        Some(Err(e)) => {
                            // Hand over what was decoded before the error, then the error.
                            while let Some(done) = in_flight.next().await {
                                let decoded = done.map_err(|e| stage_failed("decoder", e));
                                let failed = decoded.is_err();
                                if decoded_tx.send(decoded).await.is_err() || failed {
                                    return;
                                }
                            }
                            let _ = decoded_tx.send(Err(e.into())).await;
                            return;
                        }
                        None => input_open = false,
                    }
                }
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    // A decode task only fails by panicking, a bug: the run
                    // fails, after committing what was decoded before it.
                    let decoded = done.map_err(|e| stage_failed("decoder", e));
                    let failed = decoded.is_err();
                    if decoded_tx.send(decoded).await.is_err() || failed {
                        return;
                    }
                }
                else => return,
            }
        }
    });
    (decoded_rx, decoder)
}

/// Decodes a chunk of any source.
pub fn decode_source_chunk(
    chunk: SourceChunk,
    limits: &DecodeLimits,
    ingested_micros: i64,
) -> Decoded {
    crate::failpoint::hit(crate::failpoint::FailPoint::DecodeChunk);
    match chunk {
        SourceChunk::File(chunk) => decode_chunk(chunk, limits, ingested_micros),
        SourceChunk::Shard(batch) => decode_shard_batch(batch, limits, ingested_micros),
        SourceChunk::Object(object) => decode_object_chunk(object, limits, ingested_micros),
    }
}

/// Decodes the lines of an object's chunk as a file's, with the object's
/// positions; an object's end marker holds no line at all.
fn decode_object_chunk(
    object: crate::source::s3::ObjectChunk,
    limits: &DecodeLimits,
    ingested_micros: i64,
) -> Decoded {
    let (start, end) = object.positions();
    let mut out = if object.done && object.chunk.body == ChunkBody::Lines(Vec::new()) {
        Decoded::empty(object.chunk.source.clone(), start.clone(), end.clone())
    } else {
        decode_chunk(object.chunk, limits, ingested_micros)
    };
    out.start = start;
    out.end = end;
    out
}

/// Decodes the records of a shard batch: each record holds one event, or
/// several as JSON Lines.
pub fn decode_shard_batch(
    batch: ShardBatch,
    limits: &DecodeLimits,
    ingested_micros: i64,
) -> Decoded {
    let mut out = Decoded {
        commit_soon: batch.end.end || batch.handoff,
        bytes: batch.data.decoded_len() as u64,
        ..Decoded::empty(
            batch.source.clone(),
            SourcePosition::Shard(batch.start),
            SourcePosition::Shard(batch.end),
        )
    };
    // Reused for every record: where its data is decoded.
    let mut scratch = Vec::new();
    for record in &batch.records {
        let origin = |index: Option<u32>| Origin {
            source: batch.source.display.clone(),
            position: RecordPosition::Record {
                seq: record.seq.clone(),
                index,
            },
            ingested_micros,
        };
        let whole = match batch.data.of(record, &mut scratch) {
            Ok(whole) => whole,
            Err(message) => {
                // Kept as it came (the base64 text), as far as any raw
                // record is kept.
                out.records += 1;
                out.rejects.push(RejectedRecord {
                    reason: RejectReason::InvalidJson,
                    message,
                    raw: event::kept_raw(batch.data.raw(record)),
                    origin: origin(None),
                });
                continue;
            }
        };
        // A plain record is its own single part: no allocation for it.
        let user_records;
        let parts: &[&[u8]] = match kpl::deaggregate(whole) {
            Ok(None) => std::slice::from_ref(&whole),
            Ok(Some(records)) => {
                user_records = records;
                &user_records
            }
            Err(message) => {
                out.records += 1;
                out.rejects.push(RejectedRecord {
                    reason: RejectReason::BadAggregate,
                    message,
                    raw: event::kept_raw(whole),
                    origin: origin(None),
                });
                continue;
            }
        };
        let mut lines = parts.iter().flat_map(|part| {
            lines_of(part.strip_suffix(b"\n").unwrap_or(part))
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        });
        match (lines.next(), lines.next()) {
            (None, _) => out.blank_lines += 1,
            (Some(line), None) => decode_line(line, limits, origin(None), &mut out),
            // The i-th event of a record holding several (for a KPL
            // aggregate of one event per user record, i is the sub-sequence
            // number).
            (Some(first), Some(second)) => {
                for (i, line) in [first, second].into_iter().chain(lines).enumerate() {
                    decode_line(line, limits, origin(Some(i as u32)), &mut out);
                }
            }
        }
    }
    out.finish_missing(limits);
    out
}

/// The lines of `body`, split at every `\n` as `body.split` would (the
/// last one whatever follows the last `\n`), but found with SIMD.
fn lines_of(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    let mut start = 0;
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let line = &body[start..end];
        start = end + 1;
        Some(line)
    })
}

/// Decodes one record into a row or a rejected record.
fn decode_line(line: &[u8], limits: &DecodeLimits, origin: Origin, out: &mut Decoded) {
    out.records += 1;
    let mut mismatched = Vec::new();
    let verdict = out.rows.decode(line, limits, &mut mismatched, &origin);
    for &c in &mismatched {
        let name = &limits.columns.columns()[c].name;
        *out.type_mismatches.entry(name.clone()).or_default() += 1;
    }
    match verdict {
        Ok(()) => out.count_missing(out.rows.len() - 1, &mismatched),
        Err(rejection) => {
            out.rejects.push(RejectedRecord {
                reason: rejection.reason,
                message: rejection.message,
                raw: event::kept_raw(line),
                origin,
            });
        }
    }
}

/// Bytes of the shortest record that can be valid:
/// `{"event_uuid":"u","event_name":"t","created_at":1e9}`.
const MIN_RECORD_BYTES: usize = 52;

/// Decodes every line of `chunk`.
pub fn decode_chunk(chunk: Chunk, limits: &DecodeLimits, ingested_micros: i64) -> Decoded {
    let origin = |line: u64, offset: u64| Origin {
        source: chunk.source.display.clone(),
        position: RecordPosition::Line { line, offset },
        ingested_micros,
    };
    let mut out = Decoded {
        bytes: chunk.end.offset - chunk.start.offset,
        ..Decoded::empty(
            chunk.source.clone(),
            SourcePosition::File(chunk.start),
            SourcePosition::File(chunk.end),
        )
    };
    match &chunk.body {
        ChunkBody::Oversized { len, head } => {
            let rejection = event::too_large(*len as usize, limits.max_record_size);
            out.records = 1;
            out.rejects.push(RejectedRecord {
                reason: rejection.reason,
                message: rejection.message,
                raw: head.clone(),
                origin: origin(chunk.start.line + 1, chunk.start.offset),
            });
        }
        ChunkBody::Lines(data) => {
            // Room for a row per line, but no more rows than the shortest
            // valid record could fill: a producer's megabyte of blank
            // lines must not reserve a megabyte of rows.
            let lines = (chunk.end.line - chunk.start.line) as usize;
            out.rows.reserve(lines.min(data.len() / MIN_RECORD_BYTES));
            let mut offset = chunk.start.offset;
            let mut line_no = chunk.start.line;
            let body = data.strip_suffix(b"\n").unwrap_or(data);
            for raw_line in lines_of(body) {
                line_no += 1;
                let line_offset = offset;
                offset += raw_line.len() as u64 + 1;
                let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
                // A byte order mark starts the input, not its first record.
                let line = match line_offset {
                    0 => line.strip_prefix(BOM).unwrap_or(line),
                    _ => line,
                };
                if line.iter().all(u8::is_ascii_whitespace) {
                    out.blank_lines += 1;
                    continue;
                }
                decode_line(line, limits, origin(line_no, line_offset), &mut out);
            }
        }
    }
    out.finish_missing(limits);
    out
}

impl Decoded {
    /// Nothing decoded yet, between `start` and `end` of `source`.
    fn empty(source: Arc<SourceInfo>, start: SourcePosition, end: SourcePosition) -> Self {
        Decoded {
            source,
            start,
            end,
            rows: EventColumns::default(),
            rejects: Vec::new(),
            records: 0,
            blank_lines: 0,
            type_mismatches: MismatchCounts::new(),
            missing: MissingCounts::new(),
            missing_by_type: HashMap::new(),
            bytes: 0,
            commit_soon: false,
        }
    }

    /// Counts the optional fields row `slot` lacks: no `event_subtype`, or
    /// a typed column with no value that was not a mismatch (those are
    /// counted as mismatches).
    fn count_missing(&mut self, slot: usize, mismatched: &[usize]) {
        let rows = &self.rows;
        let no_subtype = rows.event_subtype(slot).is_none();
        let typed = rows.typed(slot);
        let absent = |i: usize, v: &Value| matches!(v, Value::Null) && !mismatched.contains(&i);
        if !no_subtype && !typed.iter().enumerate().any(|(i, v)| absent(i, v)) {
            return;
        }
        let event_type = rows.event_type(slot);
        let counts = match self.missing_by_type.get_mut(event_type) {
            Some(counts) => counts,
            None => self
                .missing_by_type
                .entry(event_type.to_string())
                .or_insert_with(|| vec![0; typed.len() + 1]),
        };
        counts[0] += u64::from(no_subtype);
        for (i, v) in typed.iter().enumerate() {
            counts[i + 1] += u64::from(absent(i, v));
        }
    }

    /// Names the fields of the per-type counts.
    fn finish_missing(&mut self, limits: &DecodeLimits) {
        let columns = limits.columns.columns();
        for (event_type, counts) in std::mem::take(&mut self.missing_by_type) {
            for (i, n) in counts.into_iter().enumerate().filter(|(_, n)| *n > 0) {
                let field = match i {
                    0 => limits.columns.subtype_name(),
                    _ => &columns[i - 1].name,
                };
                *self
                    .missing
                    .entry((event_type.clone(), field.to_string()))
                    .or_default() += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FilePosition, ShardPosition};
    use crate::event::MAX_RAW_KEPT;
    use crate::source::kinesis::{AnswerBody, ShardData, ShardRecord};

    /// A chunk of `data` from the file `f.jsonl`: `lines` lines read from
    /// `start` on.
    fn file_chunk(data: Vec<u8>, start: FilePosition, lines: u64) -> Chunk {
        let end = FilePosition {
            offset: start.offset + data.len() as u64,
            line: start.line + lines,
            ..Default::default()
        };
        Chunk {
            source: Arc::new(SourceInfo {
                key: "k".into(),
                display: Arc::from("f.jsonl"),
                lease: None,
                checkpointed: true,
            }),
            body: ChunkBody::Lines(data),
            start,
            end,
        }
    }

    /// A batch of shard `shardId-1` holding `records` (sequence number,
    /// data) from `start` to `end`: as decoded bytes, or as base64 text in
    /// an answer's body when `base64`.
    fn shard_batch(
        records: &[(&str, &str)],
        base64: bool,
        start: ShardPosition,
        end: ShardPosition,
    ) -> ShardBatch {
        let mut bytes = Vec::new();
        let records: Vec<ShardRecord> = records
            .iter()
            .map(|(seq, text)| {
                let from = bytes.len();
                bytes.extend_from_slice(text.as_bytes());
                ShardRecord {
                    seq: Arc::from(*seq),
                    data: from..bytes.len(),
                }
            })
            .collect();
        let data = match base64 {
            false => ShardData::Decoded(bytes),
            true => ShardData::Base64 {
                decoded: records
                    .iter()
                    .map(|r| {
                        base64_simd::STANDARD
                            .decoded_length(&bytes[r.data.clone()])
                            .unwrap_or(0)
                    })
                    .sum(),
                body: AnswerBody::detached(&bytes),
            },
        };
        ShardBatch {
            source: Arc::new(SourceInfo {
                key: "kinesis:s:floe:shardId-1".into(),
                display: Arc::from("kinesis:s/shardId-1"),
                lease: None,
                checkpointed: true,
            }),
            records,
            data,
            start,
            end,
            handoff: false,
        }
    }

    #[test]
    fn shard_records_hold_one_event_or_several_lines() {
        let at = |seq: &str, end| ShardPosition {
            seq: Some(seq.into()),
            end,
        };
        let batch = shard_batch(
            &[
                (
                    "7",
                    r#"{"event_uuid":"a","event_name":"x:y","created_at":1780000000}"#,
                ),
                (
                    "9",
                    "{\"event_uuid\":\"b\",\"event_name\":\"x\",\"created_at\":1780000000}\nnope\n",
                ),
                ("12", " \n"),
            ],
            false,
            at("5", false),
            at("12", true),
        );
        let limits = DecodeLimits {
            max_record_size: 1000,
            now_seconds: 1_780_000_000.0,
            ..Default::default()
        };
        let d = decode_shard_batch(batch, &limits, 1);
        assert!(d.commit_soon);
        assert_eq!((d.records, d.blank_lines), (3, 1));
        let positions: Vec<_> = (0..d.rows.len()).map(|s| d.rows.position(s)).collect();
        assert_eq!(positions, ["7", "9:0"]);
        assert_eq!(d.rejects.len(), 1);
        assert_eq!(d.rejects[0].origin.position.text(), "9:1");
        assert_eq!(d.rejects[0].reason, RejectReason::InvalidJson);
        assert_eq!(d.rows.source_id(0), "kinesis:s/shardId-1");
        assert_eq!(d.end, SourcePosition::Shard(at("12", true)));
    }

    /// A record whose base64 data does not decode is rejected alone, with
    /// its text as it came; the records beside it are read.
    #[test]
    fn a_record_that_is_not_base64_is_rejected_as_it_came() {
        let event = r#"{"event_uuid":"a","event_name":"x:y","created_at":1780000000}"#;
        let at = |seq: &str| ShardPosition {
            seq: Some(seq.into()),
            end: false,
        };
        let encoded = base64_simd::STANDARD.encode_to_string(event);
        // Of base64's length, not its characters, and longer than any raw
        // record kept.
        let long = "!".repeat(MAX_RAW_KEPT + 4);
        let batch = shard_batch(
            &[("7", "no base64!!!"), ("8", &encoded), ("9", &long)],
            true,
            at("5"),
            at("9"),
        );
        let limits = DecodeLimits {
            max_record_size: 1000,
            now_seconds: 1_780_000_000.0,
            ..Default::default()
        };
        let d = decode_shard_batch(batch, &limits, 1);
        assert_eq!((d.records, d.rows.len()), (3, 1));
        assert_eq!(d.rows.position(0), "8");
        assert_eq!(d.rejects.len(), 2);
        let reject = &d.rejects[0];
        assert_eq!(reject.reason, RejectReason::InvalidJson);
        assert_eq!(reject.raw, b"no base64!!!");
        assert!(
            reject.message.starts_with("its data is not base64"),
            "{}",
            reject.message
        );
        assert_eq!(reject.origin.position.text(), "7");
        // A long one keeps its head only, as any rejected record does.
        let long_reject = &d.rejects[1];
        assert_eq!(long_reject.raw, long.as_bytes()[..MAX_RAW_KEPT]);
        assert_eq!(long_reject.origin.position.text(), "9");
    }

    #[test]
    fn a_chunk_of_blank_lines_reserves_no_rows() {
        let chunk = file_chunk(vec![b'\n'; 1 << 20], FilePosition::default(), 1 << 20);
        let d = decode_chunk(chunk, &DecodeLimits::default(), 0);
        assert_eq!((d.blank_lines, d.rows.len()), (1 << 20, 0));
        // A row per 52 bytes at most: 20,164 rows' fixed fields, not a
        // million rows'.
        assert!(d.rows.memory() < 2 << 20, "{}", d.rows.memory());
    }

    #[test]
    fn lines_split_as_slices_split() {
        // Every text of up to 12 bytes of `a` and `\n`.
        for len in 0..=12 {
            for bits in 0..1u32 << len {
                let text: Vec<u8> = (0..len)
                    .map(|i| if bits >> i & 1 == 1 { b'\n' } else { b'a' })
                    .collect();
                let expected: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
                assert_eq!(lines_of(&text).collect::<Vec<_>>(), expected, "{text:?}");
            }
        }
    }

    #[test]
    fn lines_get_numbers_offsets_and_verdicts() {
        let data = b"{\"event_uuid\":\"a\",\"event_name\":\"x\",\"created_at\":1780000000}\r\n\n  \nnot json\n{\"event_uuid\":\"b\",\"event_name\":\"y:z\",\"created_at\":1780000001}";
        let start = FilePosition {
            offset: 100,
            line: 10,
            ..Default::default()
        };
        let chunk = file_chunk(data.to_vec(), start, 5);
        let limits = DecodeLimits {
            max_record_size: 1000,
            now_seconds: 1_780_000_000.0,
            ..Default::default()
        };
        let d = decode_chunk(chunk, &limits, 7);
        assert_eq!((d.records, d.blank_lines), (3, 2));
        let rows: Vec<_> = (0..d.rows.len())
            .map(|s| (d.rows.event_uuid(s), d.rows.position(s)))
            .collect();
        assert_eq!(rows, [("a", "11"), ("b", "15")]);
        let line = |line, offset| RecordPosition::Line { line, offset };
        assert_eq!(d.rejects.len(), 1);
        assert_eq!(d.rejects[0].reason, RejectReason::InvalidJson);
        assert_eq!(d.rejects[0].raw, b"not json");
        assert_eq!(d.rejects[0].origin.position, line(14, 165));
        assert_eq!(d.rows.ingested_micros(0), 7);
    }
}
