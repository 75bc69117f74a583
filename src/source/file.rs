//! JSON Lines files (plain or gzip, or stdin) as a stream of [`Chunk`]s.
//!
//! The input contract (the README states it for users):
//! - A line ends with `\n` (a `\r` before it is dropped by the decoder). A
//!   UTF-8 byte order mark at the very start of an input is not part of its
//!   first line.
//! - A file is known by its identity: its canonical path plus a hash of its
//!   first line, so a file replaced by other content at the same path is a new
//!   source, while a file that grew is the same one; one file named twice
//!   (through a symlink, say) is read once.
//! - A run resumes a file at the committed byte offset only if the file still
//!   starts with exactly the committed bytes (their hash is in the
//!   checkpoint); a file rewritten in place is refused, never read from a
//!   wrong offset.
//! - Only whole lines are consumed. A plain file's last line without a
//!   newline is consumed if it is a complete JSON value; otherwise its writer
//!   is taken to be mid-line, and the line is left for a later run. At the
//!   end of stdin or of a gzip stream, the input is over: a last line is
//!   consumed whatever it holds.
//! - Stdin is never resumed: each run's stdin is a new stream, and its
//!   position is not checkpointed. A read that returns less than a chunk
//!   (a slow pipe) hands its whole lines on at once, so the flush interval
//!   bounds freshness for pipes as for streams.
//!
//! Memory stays bounded: a chunk is about [`CHUNK_BYTES`], and a line longer
//! than the record limit is not buffered but counted, its head kept for the
//! rejected table.
//!
//! The pipeline reads files through [`FileSource`] (`file/reader.rs`), one
//! thread reading the inputs in order.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use super::{SourceError, SourceInfo};
use crate::checkpoint::FilePosition;
use crate::event::MAX_RAW_KEPT;

mod reader;

pub use reader::FileSource;

/// Target size of one chunk of lines.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Bytes of the first line hashed into a file's identity.
const IDENTITY_BYTES: usize = 4096;
/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xef\xbb\xbf";

/// One input as named on the command line, after glob expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInput {
    /// As shown in messages and stored in `_source_id`: the path as given, `-` for stdin.
    pub display: String,
    /// The file, `None` for stdin.
    pub path: Option<PathBuf>,
}

/// Expands paths and glob patterns, in order, without duplicates: a file
/// named twice, by any path (a symlink, `./a` and `a`), is read once, under
/// the name it was first given. A pattern that matches nothing is an error
/// (a typo must not pass as "nothing to do").
pub fn expand_inputs(patterns: &[String]) -> Result<Vec<FileInput>, SourceError> {
    let mut out: Vec<FileInput> = Vec::new();
    let mut seen: std::collections::HashSet<Option<PathBuf>> = Default::default();
    let mut push = |input: FileInput| {
        let identity = input
            .path
            .as_ref()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
        if seen.insert(identity) {
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
    /// A plain file: its end is where its writer is now, not necessarily the
    /// end of its last line.
    growable: bool,
    /// Stdin: after a short read, more is read into the same chunk only if
    /// it is ready at once.
    pipe: bool,
    /// gzip, read through a decoder: positions count decompressed bytes.
    gzip: bool,
    /// The reader starts at the position it is resumed from, not at the
    /// input's start ([`OpenInput::positioned`]).
    positioned: bool,
}

impl OpenInput {
    /// Opens an input; for a file, reads its first line to learn its identity.
    pub fn open(input: &FileInput) -> Result<Self, SourceError> {
        let io_err = |source| SourceError::Io {
            input: input.display.clone(),
            source,
        };
        let Some(path) = &input.path else {
            // Stdin: nothing is read before the pipeline asks (a slow pipe
            // must not hold up the start), and nothing is resumed.
            let info = Arc::new(SourceInfo {
                key: "stdin".into(),
                display: Arc::from(input.display.as_str()),
                lease: None,
                checkpointed: false,
            });
            let mut open = Self::from_reader(info, Box::new(std::io::stdin())).map_err(io_err)?;
            open.pipe = true;
            return Ok(open);
        };
        let file = File::open(path).map_err(io_err)?;
        let canonical = std::fs::canonicalize(path).map_err(io_err)?;
        let placeholder = Arc::new(SourceInfo {
            key: String::new(),
            display: Arc::from(input.display.as_str()),
            lease: None,
            checkpointed: true,
        });
        let mut open = Self::from_reader(placeholder, Box::new(file)).map_err(io_err)?;
        // Hash the first line (or its first 4 KiB) into the identity, then put
        // those bytes back in front of the stream.
        let mut prefix = Vec::with_capacity(IDENTITY_BYTES);
        (&mut open.reader)
            .take(IDENTITY_BYTES as u64)
            .read_to_end(&mut prefix)
            .map_err(io_err)?;
        let first_line = prefix.split(|b| *b == b'\n').next().unwrap_or_default();
        let key = format!("file:{}#{:016x}", canonical.display(), fnv1a(first_line));
        open.info = Arc::new(SourceInfo {
            key,
            ..(*open.info).clone()
        });
        let rest = std::mem::replace(&mut open.reader, Box::new(std::io::empty()));
        open.reader = Box::new(std::io::Cursor::new(prefix).chain(rest));
        // A plain file's end is where its writer is now.
        open.growable = !open.gzip;
        Ok(open)
    }

    /// An input that is read from its start to its end and does not grow
    /// (an object in a bucket, or stdin before [`OpenInput::open`] marks it
    /// a pipe): gzip (one or more members) when it starts with gzip's magic
    /// bytes, JSON Lines otherwise.
    pub fn from_reader(
        info: Arc<SourceInfo>,
        reader: Box<dyn Read + Send>,
    ) -> std::io::Result<Self> {
        let mut raw = BufReader::with_capacity(CHUNK_BYTES, reader);
        let gzip = is_gzip(&mut raw)?;
        let reader: Box<dyn Read + Send> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        Ok(Self {
            info,
            reader,
            growable: false,
            pipe: false,
            gzip,
            positioned: false,
        })
    }

    /// A plain (not gzip) input whose `reader` starts at the position that
    /// [`OpenInput::read_chunks`] is given, not at the input's start: a
    /// ranged read of an object proven unchanged by other means (its ETag),
    /// so the bytes before it are neither read nor checked.
    pub fn positioned(info: Arc<SourceInfo>, reader: Box<dyn Read + Send>) -> Self {
        Self {
            info,
            reader: Box::new(BufReader::with_capacity(CHUNK_BYTES, reader)),
            growable: false,
            pipe: false,
            gzip: false,
            positioned: true,
        }
    }

    /// Whether the input is gzip.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Reads the input from `from` to its end, handing each chunk to `emit`
    /// (which returns `false` to stop early, e.g. on shutdown).
    ///
    /// Before resuming at `from`, the bytes before it are read and checked
    /// against the checkpoint's hash of them ([`SourceError::Changed`] when
    /// they differ; not checked when the position has no hash), unless the
    /// reader is [`positioned`](OpenInput::positioned) there already.
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
        let mut reader = self.reader;
        let mut splitter = LineSplitter::new(self.info.clone(), max_record_size);
        if self.positioned {
            // Nothing before `from` is read: the hash covers what follows.
            splitter.position.offset = from.offset;
            splitter.position.line = from.line;
        } else if from.offset > 0 {
            let (read, last) = splitter.skip(&mut reader, from.offset).map_err(io_err)?;
            if read < from.offset {
                return Err(SourceError::Shrunk {
                    input: display.clone(),
                    offset: from.offset,
                    len: read,
                });
            }
            if from.prefix.is_some_and(|h| h != splitter.hasher.digest()) {
                return Err(SourceError::Changed {
                    input: display.clone(),
                    offset: from.offset,
                    line: from.line,
                });
            }
            splitter.position.line = from.line;
            // The committed part ended in a last line without its newline:
            // the newline that ends it now is no line of its own.
            splitter.after_unended_line = last != Some(b'\n');
        }
        let mut block = vec![0u8; CHUNK_BYTES];
        loop {
            let n = fill(&mut reader, &mut block, self.pipe).map_err(io_err)?;
            if n == 0 {
                break;
            }
            for chunk in splitter.push(&block[..n]) {
                if !emit(chunk) {
                    return Ok(());
                }
            }
        }
        if let Some(chunk) = splitter.finish(!self.growable) {
            emit(chunk);
        }
        Ok(())
    }
}

/// Reads into `block` until it is full or the input ends; for a pipe, only
/// as long as more is ready at once (what a slow writer sent is handed on
/// now, not when a megabyte has gathered). Returns the bytes read, 0 at the
/// end of the input.
fn fill(reader: &mut dyn Read, block: &mut [u8], pipe: bool) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < block.len() {
        match reader.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if pipe && !stdin_ready() {
            break;
        }
    }
    Ok(filled)
}

/// Whether stdin has bytes (or its end) ready to read without waiting.
fn stdin_ready() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout; poll only writes `revents`.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents != 0
}

fn is_gzip(reader: &mut BufReader<Box<dyn Read + Send>>) -> std::io::Result<bool> {
    use std::io::BufRead;
    let head = reader.fill_buf()?;
    Ok(head.starts_with(&[0x1f, 0x8b]))
}

/// Whether an unended last line is a whole record: a complete JSON value
/// (a writer cut mid-line has written no complete object yet).
fn is_complete_json(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// Cuts a byte stream into chunks of whole lines, tracking positions (and
/// the hash of every byte before them) and setting oversized lines apart.
struct LineSplitter {
    source: Arc<SourceInfo>,
    /// Position after the last byte handed out in a chunk.
    position: FilePosition,
    /// XXH3 of the bytes before `position`, and of an oversized line's bytes
    /// as they pass.
    hasher: Xxh3,
    /// Bytes of the current, unfinished line(s).
    pending: Vec<u8>,
    max_record_size: usize,
    /// Inside an oversized line: its length so far and its head.
    oversized: Option<(u64, Vec<u8>)>,
    /// The input resumed just after a last line that had no newline yet.
    after_unended_line: bool,
}

impl LineSplitter {
    fn new(source: Arc<SourceInfo>, max_record_size: usize) -> Self {
        Self {
            source,
            position: FilePosition::default(),
            hasher: Xxh3::new(),
            pending: Vec::with_capacity(2 * CHUNK_BYTES),
            max_record_size,
            oversized: None,
            after_unended_line: false,
        }
    }

    /// Reads (and hashes) the first `n` bytes of `reader`: the part already
    /// committed. Returns how many there were and the last of them.
    fn skip(&mut self, reader: &mut dyn Read, n: u64) -> std::io::Result<(u64, Option<u8>)> {
        let mut block = vec![0u8; CHUNK_BYTES.min(n as usize)];
        let mut read = 0u64;
        let mut last = None;
        while read < n {
            let want = block.len().min((n - read) as usize);
            let got = match reader.read(&mut block[..want]) {
                Ok(0) => break,
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.hasher.update(&block[..got]);
            last = Some(block[got - 1]);
            read += got as u64;
        }
        self.position.offset = read;
        Ok((read, last))
    }

    fn push(&mut self, mut bytes: &[u8]) -> Vec<Chunk> {
        if std::mem::take(&mut self.after_unended_line) {
            let ending = [&b"\r\n"[..], b"\n"]
                .into_iter()
                .find(|e| bytes.starts_with(e));
            if let Some(ending) = ending {
                self.hasher.update(ending);
                self.position.offset += ending.len() as u64;
                bytes = &bytes[ending.len()..];
            }
        }
        let mut out = Vec::new();
        while !bytes.is_empty() {
            if let Some((len, head)) = &mut self.oversized {
                let end = memchr::memchr(b'\n', bytes);
                let part = &bytes[..end.unwrap_or(bytes.len())];
                let room = MAX_RAW_KEPT.saturating_sub(head.len());
                head.extend_from_slice(&part[..part.len().min(room)]);
                *len += part.len() as u64;
                self.hasher.update(part);
                match end {
                    None => bytes = &[],
                    Some(nl) => {
                        self.hasher.update(b"\n");
                        let chunk = self.oversized_chunk(true);
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
                self.hasher.update(&head);
                let len = head.len() as u64;
                head.truncate(MAX_RAW_KEPT);
                self.oversized = Some((len, head));
            }
        }
        out
    }

    /// The chunk of the last line, which has no newline: taken when the
    /// input is over (`ended`) or the line is a complete JSON value; left
    /// for a later run otherwise (its writer may be in the middle of it).
    fn finish(&mut self, ended: bool) -> Option<Chunk> {
        if self.oversized.is_some() {
            if ended {
                return Some(self.oversized_chunk(false));
            }
            let (len, _) = self.oversized.take().unwrap_or_default();
            self.leave_unended(len);
            return None;
        }
        if self.pending.is_empty() {
            return None;
        }
        if !ended && !is_complete_json(&self.pending) {
            if !self.pending.iter().all(u8::is_ascii_whitespace) {
                self.leave_unended(self.pending.len() as u64);
            }
            return None;
        }
        let lines = std::mem::take(&mut self.pending);
        Some(self.lines_chunk(lines))
    }

    fn leave_unended(&self, len: u64) {
        tracing::warn!(
            input = %self.source.display,
            line = self.position.line + 1,
            offset = self.position.offset,
            bytes = len,
            "the last line has no newline and is no complete JSON value yet: it is left unread until its writer ends it"
        );
    }

    fn lines_chunk(&mut self, lines: Vec<u8>) -> Chunk {
        let start = self.position;
        let newlines = memchr::memchr_iter(b'\n', &lines).count() as u64;
        // A final line without a newline is a line too.
        let count = newlines + u64::from(!lines.ends_with(b"\n"));
        self.hasher.update(&lines);
        self.position = FilePosition {
            offset: start.offset + lines.len() as u64,
            line: start.line + count,
            prefix: Some(self.hasher.digest()),
        };
        Chunk {
            source: self.source.clone(),
            body: ChunkBody::Lines(lines),
            start,
            end: self.position,
        }
    }

    /// Closes the oversized line (`with_newline` unless it ended the input).
    fn oversized_chunk(&mut self, with_newline: bool) -> Chunk {
        let (len, head) = self.oversized.take().unwrap_or_default();
        let start = self.position;
        self.position = FilePosition {
            offset: start.offset + len + u64::from(with_newline),
            line: start.line + 1,
            prefix: Some(self.hasher.digest()),
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
mod tests;
