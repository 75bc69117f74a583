//! The CPU-parallel stage: one chunk of lines in, rows and rejected records
//! out, with exact line numbers and byte offsets.

use std::sync::Arc;

use crate::event::{self, DecodeLimits, MAX_RAW_KEPT, Origin, RejectedRecord, Row};
use crate::source::file::{Chunk, ChunkBody, SourceInfo};
use crate::table::checkpoint::SourcePosition;

/// A decoded chunk.
#[derive(Debug)]
pub struct Decoded {
    /// The source it came from.
    pub source: Arc<SourceInfo>,
    /// Position before its first record.
    pub start: SourcePosition,
    /// Position after its last record.
    pub end: SourcePosition,
    /// Valid events, in input order.
    pub rows: Vec<Row>,
    /// Rejected records, in input order.
    pub rejects: Vec<RejectedRecord>,
    /// Non-blank lines read.
    pub records: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Input bytes the chunk covered.
    pub bytes: u64,
}

/// Decodes every line of `chunk`.
pub fn decode_chunk(chunk: Chunk, limits: &DecodeLimits, ingested_micros: i64) -> Decoded {
    let origin = |line: u64, offset: u64| Origin {
        source: chunk.source.display.clone(),
        line,
        offset,
        ingested_micros,
    };
    let mut out = Decoded {
        source: chunk.source.clone(),
        start: chunk.start,
        end: chunk.end,
        rows: Vec::new(),
        rejects: Vec::new(),
        records: 0,
        blank_lines: 0,
        bytes: chunk.end.offset - chunk.start.offset,
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
            out.rows.reserve(data.len() / 256);
            let mut offset = chunk.start.offset;
            let mut line_no = chunk.start.line;
            let body = data.strip_suffix(b"\n").unwrap_or(data);
            for raw_line in body.split(|b| *b == b'\n') {
                line_no += 1;
                let line_offset = offset;
                offset += raw_line.len() as u64 + 1;
                let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    out.blank_lines += 1;
                    continue;
                }
                out.records += 1;
                match event::decode(line, limits) {
                    Ok(event) => out.rows.push(Row {
                        event,
                        origin: origin(line_no, line_offset),
                    }),
                    Err(rejection) => {
                        let kept = line.len().min(MAX_RAW_KEPT);
                        out.rejects.push(RejectedRecord {
                            reason: rejection.reason,
                            message: rejection.message,
                            raw: line[..kept].to_vec(),
                            origin: origin(line_no, line_offset),
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RejectReason;

    #[test]
    fn lines_get_numbers_offsets_and_verdicts() {
        let data = b"{\"event_uuid\":\"a\",\"event_name\":\"x\",\"created_at\":1780000000}\r\n\n  \nnot json\n{\"event_uuid\":\"b\",\"event_name\":\"y:z\",\"created_at\":1780000001}";
        let chunk = Chunk {
            source: Arc::new(SourceInfo {
                key: "k".into(),
                display: Arc::from("f.jsonl"),
            }),
            body: ChunkBody::Lines(data.to_vec()),
            start: SourcePosition {
                offset: 100,
                line: 10,
            },
            end: SourcePosition {
                offset: 100 + data.len() as u64,
                line: 15,
            },
        };
        let limits = DecodeLimits {
            max_record_size: 1000,
            now_seconds: 1_780_000_000.0,
        };
        let d = decode_chunk(chunk, &limits, 7);
        assert_eq!((d.records, d.blank_lines), (3, 2));
        let rows: Vec<_> = d
            .rows
            .iter()
            .map(|r| (r.event.event_uuid.as_str(), r.origin.line, r.origin.offset))
            .collect();
        assert_eq!(rows, [("a", 11, 100), ("b", 15, 174)]);
        assert_eq!(d.rejects.len(), 1);
        assert_eq!(d.rejects[0].reason, RejectReason::InvalidJson);
        assert_eq!(d.rejects[0].raw, b"not json");
        assert_eq!(
            (d.rejects[0].origin.line, d.rejects[0].origin.offset),
            (14, 165)
        );
        assert_eq!(d.rows[0].origin.ingested_micros, 7);
    }
}
