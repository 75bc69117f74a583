//! Objects in S3 buckets (`--input 's3://bucket/prefix/**/*.json.gz'`): a
//! backfill of an archive of JSON Lines objects, plain or gzip (told by
//! their first bytes, not their names), read in key order.
//!
//! - An input is a bucket and a glob over keys (`*` and `?` stop at `/`,
//!   `**` crosses folders); one that matches no object on its first run
//!   is an error, as a file pattern matching nothing is. The listing goes from the pattern's literal
//!   head (its longest prefix without `*?[`), one page (up to 1000 keys) at
//!   a time, and is never held whole: a prefix of millions of objects costs
//!   a page of memory. Keys that do not match are skipped.
//! - Keys are read in ascending order, which is how S3 general purpose
//!   buckets list them; a listing out of order (S3 directory buckets) is
//!   refused, since resuming by key would skip objects.
//! - The checkpoint holds one position per input pattern (an
//!   [`ObjectPosition`]): every matching key below `key` is done, and `key`
//!   is done up to `offset`. A run resumes a plain object by a ranged read
//!   from the offset and a gzip one by reading it again and skipping the
//!   committed (decompressed) bytes; then it lists the keys after it.
//! - Every read is conditional on the ETag the object was listed with, and
//!   a resume first checks that the object still has its committed ETag: an
//!   object overwritten or deleted after part of it was committed is
//!   refused ([`SourceError::ObjectChanged`]), never read from a wrong offset.
//! - Not covered, by design: objects added later with keys below the
//!   checkpoint are not read by a later run, and objects already done are
//!   not checked again. Keys with empty path segments (`a//b`) or a leading
//!   `/` cannot be read (the store client normalises them away).
//!
//! Reading runs on one thread (`floe-reader`), as for files, and shares the
//! file source's line splitting ([`OpenInput`]). A task lists ahead of it,
//! counting the objects and bytes to read for the progress line; having
//! read every pattern, the reader logs the objects and bytes it read.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use opendal::{ErrorKind, Operator};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use super::file::{Chunk, ChunkBody, OpenInput};
use super::{ChunkSender, Reading, Source, SourceChunk, SourceError, SourceInfo};
use crate::checkpoint::{Checkpoint, FilePosition, ObjectPosition, SourcePosition};
use crate::failpoint::{self, FailPoint};
use crate::supervise::StageFailure;
use crate::telemetry::Progress;

mod body;
mod pattern;

use body::BlockingRead;
pub use pattern::{S3Input, SCHEME, is_object_input};

/// The reader's name in the run's errors.
const STAGE: &str = "object reader";
/// Bytes per ranged read of an object; [`CONCURRENT_READS`] of them are in
/// flight at once, so the next part arrives while one is decoded.
const READ_PART_BYTES: usize = 8 << 20;
/// Ranged reads of one object in flight.
const CONCURRENT_READS: usize = 2;

/// An object as it was listed: its key and the ETag every read of it is
/// conditional on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// The key.
    pub key: String,
    /// The ETag, quotes included.
    pub etag: String,
}

/// Lines of an object (or, with `done` and no lines, its end).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChunk {
    /// The lines, with positions in the (decompressed) object.
    pub chunk: Chunk,
    /// The object.
    pub object: Arc<ObjectRef>,
    /// The object is read to its end after this chunk.
    pub done: bool,
}

impl ObjectChunk {
    /// The checkpoint positions before and after the chunk.
    pub fn positions(&self) -> (SourcePosition, SourcePosition) {
        let at = |p: FilePosition, done| {
            SourcePosition::Object(ObjectPosition {
                key: self.object.key.clone(),
                etag: self.object.etag.clone(),
                offset: p.offset,
                line: p.line,
                done,
            })
        };
        (at(self.chunk.start, false), at(self.chunk.end, self.done))
    }
}

/// Objects matching `s3://` patterns, read in key order, pattern after
/// pattern.
#[derive(Debug)]
pub struct S3Source {
    inputs: Vec<S3Input>,
    /// One operator per bucket, with the warehouse's endpoint, addressing
    /// and credentials, and retries.
    operators: HashMap<String, Operator>,
    max_record_size: usize,
    progress: Arc<Progress>,
}

impl S3Source {
    /// The inputs named by `patterns` (each `s3://bucket/pattern`), parsed
    /// now; nothing is listed before the source starts.
    pub fn new(
        patterns: &[String],
        sdk: &aws_config::SdkConfig,
        settings: &crate::aws::S3Settings,
        max_record_size: usize,
        progress: Arc<Progress>,
    ) -> Result<Self, SourceError> {
        let inputs = patterns
            .iter()
            .map(|p| S3Input::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut operators = HashMap::new();
        for input in &inputs {
            if operators.contains_key(&input.bucket) {
                continue;
            }
            let operator =
                crate::aws::s3_operator(sdk, settings, &input.bucket).map_err(|source| {
                    SourceError::Store {
                        input: input.uri.clone(),
                        operation: "opening the bucket".into(),
                        source: Box::new(source),
                    }
                })?;
            operators.insert(input.bucket.clone(), operator);
        }
        Ok(S3Source {
            inputs,
            operators,
            max_record_size,
            progress,
        })
    }

    /// How many patterns there are to read.
    pub fn inputs(&self) -> usize {
        self.inputs.len()
    }
}

impl Source for S3Source {
    fn start(
        self: Box<Self>,
        tx: ChunkSender,
        committed: watch::Receiver<Checkpoint>,
    ) -> Result<Reading, StageFailure> {
        let resume_from = committed.borrow().clone();
        let handle = Handle::current();
        let S3Source {
            inputs,
            operators,
            max_record_size,
            progress,
        } = *self;
        // The lister ahead stops when the reader ends (its sender dropped).
        let (reading, read_ended) = oneshot::channel::<()>();
        let ahead = list_ahead(
            inputs.clone(),
            operators.clone(),
            resume_from.clone(),
            progress.clone(),
        );
        handle.spawn(async move {
            tokio::select! {
                _ = ahead => {}
                _ = read_ended => {}
            }
        });
        let reader = ObjectReader {
            handle,
            max_record_size,
            progress,
            tx,
        };
        let thread = std::thread::Builder::new()
            .name("floe-reader".into())
            .spawn(move || {
                let _reading = reading;
                for input in &inputs {
                    let Some(operator) = operators.get(&input.bucket) else {
                        continue;
                    };
                    let committed = resume_from.get(&input.uri);
                    let read = match committed.map(|p| (p, p.object())) {
                        Some((position, None)) => Err(SourceError::NotAnObjectPosition {
                            input: input.uri.clone(),
                            position: position.describe(),
                        }),
                        Some((_, object)) => reader.read_input(operator, input, object),
                        None => reader.read_input(operator, input, None),
                    };
                    match read {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => {
                            let _ = reader.tx.blocking_send(Err(e));
                            return;
                        }
                    }
                }
                let p = &reader.progress;
                let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
                tracing::info!(
                    objects = load(&p.objects_done),
                    bytes = load(&p.object_bytes_done),
                    bytes_listed = load(&p.object_bytes_listed),
                    "read every object of the input patterns"
                );
            })
            .map_err(|e| StageFailure {
                stage: STAGE,
                message: format!("the thread cannot start: {e}"),
            })?;
        Ok(Reading::thread(STAGE, thread))
    }
}

/// The reading thread's state.
struct ObjectReader {
    /// The runtime the store's calls run on (the thread blocks on them).
    handle: Handle,
    max_record_size: usize,
    progress: Arc<Progress>,
    tx: ChunkSender,
}

impl ObjectReader {
    /// Reads one pattern's objects after its committed position. `Ok(false)`:
    /// the pipeline stopped reading (its receiver is gone).
    fn read_input(
        &self,
        operator: &Operator,
        input: &S3Input,
        committed: Option<&ObjectPosition>,
    ) -> Result<bool, SourceError> {
        let mut after = None;
        if let Some(at) = committed {
            if !at.done {
                tracing::info!(input = %input.uri, key = %at.key, offset = at.offset, line = at.line, "resuming an object after the committed checkpoint");
                let listed = self.check_unchanged(operator, input, at)?;
                let from = FilePosition {
                    offset: at.offset,
                    line: at.line,
                    prefix: None,
                };
                if !self.read_object(operator, input, &listed, from)? {
                    return Ok(false);
                }
            } else {
                tracing::info!(input = %input.uri, after = %at.key, "resuming after the last object committed");
            }
            after = Some(at.key.clone());
        }
        let store_err = |operation: String| {
            let uri = input.uri.clone();
            move |source| SourceError::Store {
                input: uri,
                operation,
                source: Box::new(source),
            }
        };
        let mut matched = false;
        let mut lister = self
            .handle
            .block_on(lister(operator, input, after.as_deref()))
            .map_err(store_err(format!("listing {}", input.list_prefix)))?;
        while let Some(entry) = self.handle.block_on(lister.next()) {
            let entry = entry.map_err(store_err(format!("listing {}", input.list_prefix)))?;
            let (key, meta) = entry.into_parts();
            in_key_order(input, after.as_deref(), &key)?;
            after = Some(key.clone());
            if !meta.is_file() || !input.matches(&key) {
                continue;
            }
            let Some(etag) = meta.etag() else {
                return Err(SourceError::NotFound {
                    pattern: input.uri.clone(),
                    reason: "the store lists objects without an ETag, which resuming needs",
                });
            };
            let listed = Listed {
                object: Arc::new(ObjectRef {
                    key,
                    etag: etag.to_string(),
                }),
                size: meta.content_length(),
                counted_ahead: true,
            };
            matched = true;
            if !self.read_object(operator, input, &listed, FilePosition::default())? {
                return Ok(false);
            }
        }
        if committed.is_none() && !matched {
            // A typo must not pass as "nothing to do" (as for files).
            return Err(SourceError::NotFound {
                pattern: input.uri.clone(),
                reason: "the pattern matches no object",
            });
        }
        Ok(true)
    }

    /// The object a resume starts in, if it still has the committed ETag.
    fn check_unchanged(
        &self,
        operator: &Operator,
        input: &S3Input,
        at: &ObjectPosition,
    ) -> Result<Listed, SourceError> {
        let changed = |now: String| SourceError::ObjectChanged {
            object: input.object_uri(&at.key),
            offset: at.offset,
            line: at.line,
            etag_then: at.etag.clone(),
            now,
        };
        let meta = match self.handle.block_on(operator.stat(&at.key)) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(changed("it is deleted now".into()));
            }
            Err(source) => {
                return Err(SourceError::Store {
                    input: input.object_uri(&at.key),
                    operation: "checking the object a resume starts in".into(),
                    source: Box::new(source),
                });
            }
        };
        match meta.etag() {
            Some(etag) if etag == at.etag => {}
            now => {
                return Err(changed(format!("is {} now", now.unwrap_or("(none)"))));
            }
        }
        // Its bytes are counted when its read starts (Listed::start).
        self.progress.objects_listed.fetch_add(1, Ordering::Relaxed);
        Ok(Listed {
            object: Arc::new(ObjectRef {
                key: at.key.clone(),
                etag: at.etag.clone(),
            }),
            size: meta.content_length(),
            counted_ahead: false,
        })
    }

    /// Reads one object from `from` to its end, then hands on its end.
    /// `Ok(false)`: the pipeline stopped reading.
    fn read_object(
        &self,
        operator: &Operator,
        input: &S3Input,
        listed: &Listed,
        from: FilePosition,
    ) -> Result<bool, SourceError> {
        let object = &listed.object;
        let uri = input.object_uri(&object.key);
        let read_err = |source: opendal::Error| read_error(&uri, object, source);
        let info = Arc::new(SourceInfo {
            key: input.uri.clone(),
            display: Arc::from(uri.as_str()),
            lease: None,
            checkpointed: true,
        });
        let reader = self
            .handle
            .block_on(
                operator
                    .reader_with(&object.key)
                    .if_match(&object.etag)
                    .chunk(READ_PART_BYTES)
                    .concurrent(CONCURRENT_READS)
                    .into_future(),
            )
            .map_err(read_err)?;
        // A plain object resumes by a ranged read; gzip (told by its first
        // bytes) has no offsets to seek to, so it is read again from its
        // start and the committed bytes are skipped.
        let gzip_at_start = if from.offset > 0 && listed.size >= 2 {
            let head = self
                .handle
                .block_on(reader.read(0..2))
                .map_err(read_err)?
                .to_vec();
            head == [0x1f, 0x8b]
        } else {
            false
        };
        let body = |start: u64| -> Result<Box<dyn Read + Send>, SourceError> {
            if start >= listed.size {
                return Ok(Box::new(std::io::empty()));
            }
            let stream = self
                .handle
                .block_on(reader.clone().into_bytes_stream(start..listed.size))
                .map_err(read_err)?;
            Ok(Box::new(BlockingRead {
                handle: self.handle.clone(),
                stream,
                current: None,
                at: 0,
                progress: self.progress.clone(),
            }))
        };
        let start = listed.start(&from, gzip_at_start, &self.progress);
        let open = if start > 0 {
            OpenInput::positioned(info.clone(), body(start)?)
        } else {
            OpenInput::from_reader(info.clone(), body(0)?).map_err(|source| SourceError::Io {
                input: uri.clone(),
                source,
            })?
        };
        let mut end = from;
        let mut open_channel = true;
        open.read_chunks(from, self.max_record_size, |chunk| {
            failpoint::hit(FailPoint::ReadChunk);
            end = chunk.end;
            open_channel = self.send(chunk, object, false);
            open_channel
        })
        .map_err(|e| changed_while_read(e, &uri, object))?;
        if !open_channel {
            return Ok(false);
        }
        let marker = Chunk {
            source: info,
            body: ChunkBody::Lines(Vec::new()),
            start: end,
            end,
        };
        if !self.send(marker, object, true) {
            return Ok(false);
        }
        self.progress.objects_done.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Hands a chunk on; `false` when the receiver is gone.
    fn send(&self, chunk: Chunk, object: &Arc<ObjectRef>, done: bool) -> bool {
        let chunk = ObjectChunk {
            chunk,
            object: object.clone(),
            done,
        };
        self.tx
            .blocking_send(Ok(SourceChunk::Object(chunk)))
            .is_ok()
    }
}

/// Checks that `key` comes after `previous` (the key listed before it, or
/// the key a resume lists after): a listing out of order would make a
/// resume by key skip objects.
fn in_key_order(input: &S3Input, previous: Option<&str>, key: &str) -> Result<(), SourceError> {
    match previous {
        Some(previous) if key <= previous => Err(SourceError::NotInKeyOrder {
            input: input.uri.clone(),
            previous: previous.to_string(),
            key: key.to_string(),
        }),
        _ => Ok(()),
    }
}

/// An object as listed: what it is and how many bytes it has.
struct Listed {
    object: Arc<ObjectRef>,
    size: u64,
    /// Its bytes are in the progress's listed total: the lister ahead
    /// counted them. The object a resume starts in is not listed ahead.
    counted_ahead: bool,
}

impl Listed {
    /// Where in its stored bytes a read from `from` starts: at the offset
    /// of a plain object (a ranged read), at 0 for gzip (`gzip`), which is
    /// read again from its start. An object the lister ahead did not count
    /// adds the bytes the read takes to the listed total, so the bytes
    /// done (counted as they arrive) meet it at the object's end, never
    /// short of it nor past it.
    fn start(&self, from: &FilePosition, gzip: bool, progress: &Progress) -> u64 {
        let start = if gzip { 0 } else { from.offset };
        if !self.counted_ahead {
            progress
                .object_bytes_listed
                .fetch_add(self.size.saturating_sub(start), Ordering::Relaxed);
        }
        start
    }
}

/// Starts listing `input`'s objects after `after` (every key, when `None`).
async fn lister(
    operator: &Operator,
    input: &S3Input,
    after: Option<&str>,
) -> opendal::Result<opendal::Lister> {
    let list = operator.lister_with(&input.list_prefix).recursive(true);
    match after {
        Some(key) => list.start_after(key).await,
        None => list.await,
    }
}

/// Counts the objects and bytes still to read, listing ahead of the
/// reader, into `progress`; sets `listing_done` at the end. Holds nothing
/// but a page of keys; an error only stops the count (the reader reports
/// its own).
async fn list_ahead(
    inputs: Vec<S3Input>,
    operators: HashMap<String, Operator>,
    resume_from: Checkpoint,
    progress: Arc<Progress>,
) {
    for input in &inputs {
        let Some(operator) = operators.get(&input.bucket) else {
            continue;
        };
        let after = resume_from
            .get(&input.uri)
            .and_then(SourcePosition::object)
            .map(|p| p.key.clone());
        let Ok(mut lister) = lister(operator, input, after.as_deref()).await else {
            return;
        };
        while let Some(entry) = lister.next().await {
            let Ok(entry) = entry else {
                return;
            };
            let meta = entry.metadata();
            if meta.is_file() && input.matches(entry.path()) {
                progress.objects_listed.fetch_add(1, Ordering::Relaxed);
                progress
                    .object_bytes_listed
                    .fetch_add(meta.content_length(), Ordering::Relaxed);
            }
        }
    }
    progress.listing_done.store(true, Ordering::Relaxed);
}

/// The error of a failed read of `object`: an overwrite since it was
/// listed shows as a failed condition on its ETag.
fn read_error(uri: &str, object: &ObjectRef, source: opendal::Error) -> SourceError {
    let operation = if source.kind() == ErrorKind::ConditionNotMatch {
        format!(
            "it changed while it was read (it no longer has ETag {} it was listed with); run again to read it as it is now",
            object.etag
        )
    } else {
        "reading it".to_string()
    };
    SourceError::Store {
        input: uri.to_string(),
        operation,
        source: Box::new(source),
    }
}

/// A failed read of the body as the splitter saw it (an I/O error): the
/// store's error when it is one.
fn changed_while_read(e: SourceError, uri: &str, object: &ObjectRef) -> SourceError {
    let SourceError::Io { input, source } = e else {
        return e;
    };
    if !source
        .get_ref()
        .is_some_and(|inner| inner.is::<opendal::Error>())
    {
        return SourceError::Io { input, source };
    }
    match source
        .into_inner()
        .map(|inner| inner.downcast::<opendal::Error>())
    {
        Some(Ok(store)) => read_error(uri, object, *store),
        // Not reached: the inner error was just seen to be the store's.
        _ => SourceError::Io {
            input,
            source: std::io::Error::other("the object's body could not be read"),
        },
    }
}

#[cfg(test)]
mod tests;
