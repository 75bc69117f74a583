//! JSON Lines files (plain or gzip, or stdin) as a stream of [`Chunk`]s.
//!
//! A file is known by its identity: its canonical path plus a hash of its
//! first line, so a file replaced by other content at the same path is a new
//! source, while a file that grew is the same one. Reading resumes at the
//! checkpoint's byte offset (seek for plain files, decompress and skip for
//! gzip and stdin). Memory stays bounded: a chunk is about [`CHUNK_BYTES`], and
//! a line longer than the record limit is not buffered but counted, its head
//! kept for the rejected table.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use super::{SourceError, SourceInfo};
use crate::event::MAX_RAW_KEPT;
use crate::table::checkpoint::FilePosition;

/// Target size of one chunk of lines.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Bytes of the first line hashed into a file's identity.
const IDENTITY_BYTES: usize = 4096;

/// One input as named on the command line, after glob expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInput {
    /// As shown in messages and stored in `_source_id`: the path as given, `-` for stdin.
    pub display: String,
    /// The file, `None` for stdin.
    pub path: Option<PathBuf>,
}

/// Expands paths and glob patterns, in order, without duplicates. A pattern
/// that matches nothing is an error (a typo must not pass as "nothing to do").
pub fn expand_inputs(patterns: &[String]) -> Result<Vec<FileInput>, SourceError> {
    let mut out: Vec<FileInput> = Vec::new();
    let mut push = |input: FileInput| {
        if !out.contains(&input) {
            out.push(input);
        }
    };
    for pattern in patterns {
        if pattern == "-" {
            push(FileInput {
                display: "-".into(),
                path: None,
            });
            continue;
        }
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            let path = PathBuf::from(pattern);
            if !path.is_file() {
                return Err(SourceError::NotFound {
                    pattern: pattern.clone(),
                    reason: if path.exists() {
                        "not a regular file"
                    } else {
                        "no such file"
                    },
                });
            }
            push(FileInput {
                display: pattern.clone(),
                path: Some(path),
            });
            continue;
        }
        let paths = glob::glob(pattern).map_err(|e| SourceError::BadPattern {
            pattern: pattern.clone(),
            message: e.to_string(),
        })?;
        let mut matched: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if matched.is_empty() {
            return Err(SourceError::NotFound {
                pattern: pattern.clone(),
                reason: "the pattern matches no file",
            });
        }
        matched.sort();
        for path in matched {
            push(FileInput {
                display: path.display().to_string(),
                path: Some(path),
            });
        }
    }
    Ok(out)
}

/// What a chunk holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkBody {
    /// Complete lines, each ending in `\n` except maybe the last line of the input.
    Lines(Vec<u8>),
    /// One line longer than the record limit: its length and first bytes.
    Oversized {
        /// Length of the line in bytes, without its newline.
        len: u64,
        /// Its first bytes (at most [`MAX_RAW_KEPT`]).
        head: Vec<u8>,
    },
}

/// A run of records from one source, with the positions around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The source.
    pub source: Arc<SourceInfo>,
    /// The records.
    pub body: ChunkBody,
    /// Position before the first record (its line number is `start.line + 1`).
    pub start: FilePosition,
    /// Position after the last record.
    pub end: FilePosition,
}

/// FNV-1a, 64 bit: stable across versions and platforms, unlike std's hasher.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An open input, positioned at its start, with its identity known.
pub struct OpenInput {
    /// Identity and display name.
    pub info: Arc<SourceInfo>,
    reader: Box<dyn Read + Send>,
    /// A plain file that can seek (resume without reading what is skipped).
    seekable: Option<File>,
}

impl OpenInput {
    /// Opens an input and reads its first line to learn its identity.
    pub fn open(input: &FileInput) -> Result<Self, SourceError> {
        let io_err = |source| SourceError::Io {
            input: input.display.clone(),
            source,
        };
        let (raw, canonical): (Box<dyn Read + Send>, String) = match &input.path {
            None => (Box::new(std::io::stdin()), "-".to_string()),
            Some(path) => {
                let file = File::open(path).map_err(io_err)?;
                let canonical = std::fs::canonicalize(path).map_err(io_err)?;
                (Box::new(file), canonical.display().to_string())
            }
        };
        let mut raw = BufReader::with_capacity(CHUNK_BYTES, raw);
        let gzip = is_gzip(&mut raw).map_err(io_err)?;
        let mut reader: Box<dyn Read + Send> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        // Hash the first line (or its first 4 KiB) into the identity, then put
        // those bytes back in front of the stream.
        let mut prefix = Vec::with_capacity(IDENTITY_BYTES);
        (&mut reader)
            .take(IDENTITY_BYTES as u64)
            .read_to_end(&mut prefix)
            .map_err(io_err)?;
        let first_line = prefix.split(|b| *b == b'\n').next().unwrap_or_default();
        let key = format!("file:{canonical}#{:016x}", fnv1a(first_line));
        let seekable = match (&input.path, gzip) {
            (Some(path), false) => Some(File::open(path).map_err(io_err)?),
            _ => None,
        };
        Ok(Self {
            info: Arc::new(SourceInfo {
                key,
                display: Arc::from(input.display.as_str()),
                lease: None,
            }),
            reader: Box::new(std::io::Cursor::new(prefix).chain(reader)),
            seekable,
        })
    }

    /// Reads the input from `from` to its end, handing each chunk to `emit`
    /// (which returns `false` to stop early, e.g. on shutdown).
    pub fn read_chunks(
        self,
        from: FilePosition,
        max_record_size: usize,
        mut emit: impl FnMut(Chunk) -> bool,
    ) -> Result<(), SourceError> {
        let display = self.info.display.to_string();
        let io_err = |source| SourceError::Io {
            input: display.clone(),
            source,
        };
        let mut reader = match self.seekable {
            Some(mut file) if from.offset > 0 => {
                let len = file.metadata().map_err(io_err)?.len();
                if len < from.offset {
                    return Err(SourceError::Shrunk {
                        input: display.clone(),
                        offset: from.offset,
                        len,
                    });
                }
                file.seek(SeekFrom::Start(from.offset)).map_err(io_err)?;
                Box::new(file) as Box<dyn Read + Send>
            }
            _ => {
                let mut reader = self.reader;
                let skipped =
                    std::io::copy(&mut (&mut reader).take(from.offset), &mut std::io::sink())
                        .map_err(io_err)?;
                if skipped < from.offset {
                    return Err(SourceError::Shrunk {
                        input: display.clone(),
                        offset: from.offset,
                        len: skipped,
                    });
                }
                reader
            }
        };
        let mut splitter = LineSplitter::new(self.info.clone(), from, max_record_size);
        let mut block = vec![0u8; CHUNK_BYTES];
        loop {
            let n = match reader.read(&mut block) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            for chunk in splitter.push(&block[..n]) {
                if !emit(chunk) {
                    return Ok(());
                }
            }
        }
        if let Some(chunk) = splitter.finish() {
            emit(chunk);
        }
        Ok(())
    }
}

fn is_gzip(reader: &mut BufReader<Box<dyn Read + Send>>) -> std::io::Result<bool> {
    use std::io::BufRead;
    let head = reader.fill_buf()?;
    Ok(head.starts_with(&[0x1f, 0x8b]))
}

/// Cuts a byte stream into chunks of whole lines, tracking positions and
/// setting oversized lines apart.
struct LineSplitter {
    source: Arc<SourceInfo>,
    /// Position after the last byte handed out in a chunk.
    position: FilePosition,
    /// Bytes of the current, unfinished line(s).
    pending: Vec<u8>,
    max_record_size: usize,
    /// Inside an oversized line: its length so far and its head.
    oversized: Option<(u64, Vec<u8>)>,
}

impl LineSplitter {
    fn new(source: Arc<SourceInfo>, position: FilePosition, max_record_size: usize) -> Self {
        Self {
            source,
            position,
            pending: Vec::with_capacity(2 * CHUNK_BYTES),
            max_record_size,
            oversized: None,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) -> Vec<Chunk> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            if let Some((len, head)) = &mut self.oversized {
                let end = memchr::memchr(b'\n', bytes);
                let part = &bytes[..end.unwrap_or(bytes.len())];
                let room = MAX_RAW_KEPT.saturating_sub(head.len());
                head.extend_from_slice(&part[..part.len().min(room)]);
                *len += part.len() as u64;
                match end {
                    None => bytes = &[],
                    Some(nl) => {
                        let chunk = self.oversized_chunk();
                        out.push(chunk);
                        bytes = &bytes[nl + 1..];
                    }
                }
                continue;
            }
            self.pending.extend_from_slice(bytes);
            bytes = &[];
            if let Some(last) = memchr::memrchr(b'\n', &self.pending) {
                // The unfinished tail moves to a fresh buffer sized for the next
                // chunk, so `pending` never grows by reallocating.
                let mut rest = Vec::with_capacity(2 * CHUNK_BYTES);
                rest.extend_from_slice(&self.pending[last + 1..]);
                self.pending.truncate(last + 1);
                let lines = std::mem::replace(&mut self.pending, rest);
                out.push(self.lines_chunk(lines));
            }
            // An unfinished line already longer than any record (plus a `\r`)
            // is too large whatever follows: stop buffering it.
            if self.pending.len() > self.max_record_size + 1 {
                let mut head = std::mem::take(&mut self.pending);
                let len = head.len() as u64;
                head.truncate(MAX_RAW_KEPT);
                self.oversized = Some((len, head));
            }
        }
        out
    }

    fn finish(&mut self) -> Option<Chunk> {
        if self.oversized.is_some() {
            return Some(self.oversized_chunk());
        }
        if self.pending.is_empty() {
            return None;
        }
        let lines = std::mem::take(&mut self.pending);
        Some(self.lines_chunk(lines))
    }

    fn lines_chunk(&mut self, lines: Vec<u8>) -> Chunk {
        let start = self.position;
        let newlines = memchr::memchr_iter(b'\n', &lines).count() as u64;
        // A final line without a newline is a line too.
        let count = newlines + u64::from(!lines.ends_with(b"\n"));
        self.position = FilePosition {
            offset: start.offset + lines.len() as u64,
            line: start.line + count,
        };
        Chunk {
            source: self.source.clone(),
            body: ChunkBody::Lines(lines),
            start,
            end: self.position,
        }
    }

    /// Closes the oversized line.
    fn oversized_chunk(&mut self) -> Chunk {
        let (len, head) = self.oversized.take().unwrap_or_default();
        let start = self.position;
        // The line's bytes plus its newline (absent only at the end of input,
        // where the offset past the newline does not matter).
        self.position = FilePosition {
            offset: start.offset + len + 1,
            line: start.line + 1,
        };
        Chunk {
            source: self.source.clone(),
            body: ChunkBody::Oversized { len, head },
            start,
            end: self.position,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> Arc<SourceInfo> {
        Arc::new(SourceInfo {
            key: "k".into(),
            display: Arc::from("t"),
            lease: None,
        })
    }

    fn split(input: &[u8], block: usize, max: usize) -> Vec<Chunk> {
        let mut s = LineSplitter::new(info(), FilePosition { offset: 0, line: 0 }, max);
        let mut out = Vec::new();
        for piece in input.chunks(block) {
            out.extend(s.push(piece));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn chunks_are_whole_lines_with_exact_positions() {
        let input = b"aa\nbbb\ncccc\nd";
        for block in [1, 2, 3, 5, 100] {
            let chunks = split(input, block, 100);
            let mut joined = Vec::new();
            let mut pos = FilePosition { offset: 0, line: 0 };
            for c in &chunks {
                assert_eq!(c.start, pos, "block {block}");
                let ChunkBody::Lines(lines) = &c.body else {
                    panic!()
                };
                joined.extend_from_slice(lines);
                pos = c.end;
            }
            assert_eq!(joined, input, "block {block}");
            assert_eq!(
                pos,
                FilePosition {
                    offset: 13,
                    line: 4
                },
                "block {block}"
            );
        }
    }

    #[test]
    fn oversized_lines_are_set_apart_or_left_whole() {
        // Depending on how reads fall, an oversized line is either set apart
        // (never buffered whole) or arrives whole inside a chunk of lines, where
        // the decoder rejects it; either way its number, offset and length are exact.
        let long = "x".repeat(50);
        let input = format!("a\n{long}\nb\n{long}");
        for block in [1, 7, 1000] {
            let chunks = split(input.as_bytes(), block, 10);
            let mut short = Vec::new();
            let mut long_lines = Vec::new();
            for c in &chunks {
                match &c.body {
                    ChunkBody::Oversized { len, head } => {
                        assert_eq!(head.len(), 50, "block {block}");
                        long_lines.push((c.start.line + 1, c.start.offset, *len));
                    }
                    ChunkBody::Lines(data) => {
                        let mut offset = c.start.offset;
                        for (i, l) in data
                            .strip_suffix(b"\n")
                            .unwrap_or(data)
                            .split(|b| *b == b'\n')
                            .enumerate()
                        {
                            let line = c.start.line + 1 + i as u64;
                            if l.len() > 10 {
                                long_lines.push((line, offset, l.len() as u64));
                            } else {
                                short.push((line, offset, l.to_vec()));
                            }
                            offset += l.len() as u64 + 1;
                        }
                    }
                }
            }
            assert_eq!(long_lines, vec![(2, 2, 50), (4, 55, 50)], "block {block}");
            assert_eq!(
                short,
                vec![(1, 0, b"a".to_vec()), (3, 53, b"b".to_vec())],
                "block {block}"
            );
        }
    }

    #[test]
    fn identity_depends_on_path_and_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(&a, "one\ntwo\n").unwrap();
        let input = FileInput {
            display: a.display().to_string(),
            path: Some(a.clone()),
        };
        let k1 = OpenInput::open(&input).unwrap().info.key.clone();
        std::fs::write(&a, "one\ntwo\nthree\n").unwrap();
        assert_eq!(
            OpenInput::open(&input).unwrap().info.key,
            k1,
            "a file that grew is the same"
        );
        std::fs::write(&a, "uno\n").unwrap();
        assert_ne!(
            OpenInput::open(&input).unwrap().info.key,
            k1,
            "new content is a new source"
        );
    }

    #[test]
    fn reads_plain_and_gzip_from_an_offset() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("e.jsonl");
        let gz = dir.path().join("e.jsonl.gz");
        let text = b"l1\nl2\nl3\n";
        std::fs::write(&plain, text).unwrap();
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(text).unwrap();
        enc.finish().unwrap();
        for path in [plain, gz] {
            let input = FileInput {
                display: path.display().to_string(),
                path: Some(path.clone()),
            };
            let mut got = Vec::new();
            OpenInput::open(&input)
                .unwrap()
                .read_chunks(FilePosition { offset: 3, line: 1 }, 100, |c| {
                    got.push(c);
                    true
                })
                .unwrap();
            assert_eq!(got.len(), 1, "{path:?}");
            assert_eq!(
                got[0].body,
                ChunkBody::Lines(b"l2\nl3\n".to_vec()),
                "{path:?}"
            );
            assert_eq!(got[0].end, FilePosition { offset: 9, line: 3 }, "{path:?}");
        }
    }

    #[test]
    fn patterns_expand_or_say_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.jsonl", "a.jsonl"] {
            std::fs::write(dir.path().join(name), "x\n").unwrap();
        }
        let pattern = format!("{}/*.jsonl", dir.path().display());
        let got = expand_inputs(&[pattern.clone(), "-".into(), pattern]).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|i| i.display.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.jsonl", "b.jsonl", "-"]);
        let missing = format!("{}/none*.jsonl", dir.path().display());
        let e = expand_inputs(&[missing]).unwrap_err().to_string();
        assert!(e.contains("matches no file"), "{e}");
        let e = expand_inputs(&["/no/such/file.jsonl".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}
