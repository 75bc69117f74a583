//! The file source: the inputs read in order by one thread (`floe-reader`),
//! each resumed after its committed position, its chunks into the
//! pipeline's channel. It stops early when the channel's receiver is gone
//! (a shutdown, or a failed stage), and after an input's error, which it
//! sends as its last item.

use tokio::sync::watch;

use super::{FileInput, OpenInput, expand_inputs};
use crate::checkpoint::{Checkpoint, SourcePosition};
use crate::failpoint::{self, FailPoint};
use crate::source::{ChunkSender, Reading, Source, SourceChunk, SourceError};
use crate::supervise::StageFailure;

/// The reader's name in the run's errors.
const STAGE: &str = "file reader";

/// Files and stdin, read in order.
#[derive(Debug)]
pub struct FileSource {
    inputs: Vec<FileInput>,
    /// Longer lines are cut to their head (and rejected).
    max_record_size: usize,
}

impl FileSource {
    /// The inputs named by `patterns` (paths, globs, `-` for stdin),
    /// expanded now: a pattern naming nothing is an error before anything
    /// else is opened.
    pub fn new(patterns: &[String], max_record_size: usize) -> Result<Self, SourceError> {
        Ok(FileSource {
            inputs: expand_inputs(patterns)?,
            max_record_size,
        })
    }

    /// How many inputs there are to read.
    pub fn inputs(&self) -> usize {
        self.inputs.len()
    }
}

impl Source for FileSource {
    fn start(
        self: Box<Self>,
        tx: ChunkSender,
        committed: watch::Receiver<Checkpoint>,
    ) -> Result<Reading, StageFailure> {
        let resume_from = committed.borrow().clone();
        let FileSource {
            inputs,
            max_record_size,
        } = *self;
        let thread = std::thread::Builder::new()
            .name("floe-reader".into())
            .spawn(move || read_all(&inputs, &resume_from, max_record_size, &tx))
            .map_err(|e| StageFailure {
                stage: STAGE,
                message: format!("the thread cannot start: {e}"),
            })?;
        Ok(Reading::thread(STAGE, thread))
    }
}

/// Reads every input after its position in `resume_from` (stdin from its
/// start), until the end, an error (sent as the last item) or the
/// receiver's end.
fn read_all(
    inputs: &[FileInput],
    resume_from: &Checkpoint,
    max_record_size: usize,
    tx: &ChunkSender,
) {
    for input in inputs {
        let result = OpenInput::open(input).and_then(|open| {
            let from = resume_from
                .get(&open.info.key)
                .filter(|_| open.info.checkpointed)
                .and_then(SourcePosition::file)
                .unwrap_or_default();
            if from.offset > 0 {
                tracing::info!(input = %input.display, offset = from.offset, line = from.line, "resuming after the committed checkpoint");
            }
            open.read_chunks(from, max_record_size, |chunk| {
                failpoint::hit(FailPoint::ReadChunk);
                tx.blocking_send(Ok(SourceChunk::File(chunk))).is_ok()
            })
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    }
}
