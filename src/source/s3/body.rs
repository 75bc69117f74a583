//! An object's body, a stream of parts from the store, as a blocking
//! [`Read`] for the line splitter on the reader thread.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{Stream, StreamExt};
use tokio::runtime::Handle;

use crate::telemetry::Progress;

/// The body of an object as a blocking [`Read`], for the line splitter: it
/// waits on the runtime for each part, and counts the bytes as they arrive.
pub(super) struct BlockingRead<S, B> {
    pub(super) handle: Handle,
    pub(super) stream: S,
    pub(super) current: Option<B>,
    /// Bytes of `current` already read.
    pub(super) at: usize,
    pub(super) progress: Arc<Progress>,
}

impl<S, B> Read for BlockingRead<S, B>
where
    S: Stream<Item = std::io::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(part) = &self.current {
                let rest = &part.as_ref()[self.at..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.at += n;
                    return Ok(n);
                }
            }
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(part)) => {
                    self.progress
                        .object_bytes_done
                        .fetch_add(part.as_ref().len() as u64, Ordering::Relaxed);
                    self.current = Some(part);
                    self.at = 0;
                }
            }
        }
    }
}
