//! What a flush still holds of its batch's memory, shared between the flush
//! (`pipeline::flush`) and the run loop that fills the next batch meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What a flush still holds of its batch's memory, shared with the loop that
/// fills the next batch meanwhile: the two together stay under a ceiling
/// (`RunLoop::flush_filling`), so peak memory follows `--flush-size`
/// however long a flush takes (a table probe on a backfill, a slow store).
/// A partition's share is given back once its files are written.
#[derive(Debug, Default)]
pub(super) struct Held {
    bytes: AtomicUsize,
    freed: tokio::sync::Notify,
}

impl Held {
    /// Bytes the running flush holds.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Waits until the flush holds less than before.
    pub async fn freed(&self) {
        self.freed.notified().await
    }

    /// The flush holds `bytes` now.
    pub fn set(&self, bytes: usize) {
        self.bytes.store(bytes, Ordering::Release);
        self.freed.notify_one();
    }

    /// The flush gave `bytes` back (a partition written).
    pub fn release(&self, bytes: usize) {
        // The closure never returns `None`: the update cannot fail.
        let _ = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
        self.freed.notify_one();
    }
}

/// Sets a flush's held memory back to nothing when the flush ends, however
/// it ends.
pub(super) struct Holding<'a>(pub &'a Held);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a flush holds goes down as partitions are written, never below
    /// nothing, wakes whoever waits for room, and is nothing once the flush
    /// ends, whether it ended well or not.
    #[tokio::test]
    async fn held_memory_is_given_back_and_waiters_woken() {
        let held = Held::default();
        {
            let _holding = Holding(&held);
            held.set(1000);
            assert_eq!(held.bytes(), 1000);
            held.release(300);
            assert_eq!(held.bytes(), 700);
            // The release came before the wait: the wait still ends.
            tokio::time::timeout(std::time::Duration::from_secs(60), held.freed())
                .await
                .unwrap();
            held.release(5000);
            assert_eq!(held.bytes(), 0);
            held.set(400);
        }
        assert_eq!(held.bytes(), 0, "a flush's end gives everything back");
    }
}
