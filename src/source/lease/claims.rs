//! Claims: which shards this task may commit right now, shared by the
//! Kinesis coordinator (which grants and revokes them as leases come and go)
//! and the pipeline (which drops records of a shard it no longer holds).
//!
//! A claim carries a generation, new each time a shard is (re)started, and
//! every batch a reader hands over names the generation it was read under.
//! Records of an older generation are read again by whoever holds the shard
//! now, from the table's checkpoint, so the pipeline drops them instead of
//! committing them. A claim is never the proof that a commit is right: the
//! table's checkpoint compare-and-swap is. Claims only keep a task from
//! writing files the swap would refuse.

use std::collections::HashMap;
use std::sync::Mutex;

/// The shards this task holds, by checkpoint key, with their generation.
#[derive(Debug, Default)]
pub struct Claims {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    held: HashMap<String, u64>,
    /// Last generation handed out (0: none yet).
    last: u64,
    /// The pipeline asked for every shard to be read again from the table.
    reset: bool,
}

impl Claims {
    /// No claims.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The map stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `key` under a new generation (replacing any older one) and
    /// returns it.
    pub fn grant(&self, key: &str) -> u64 {
        let mut state = self.lock();
        state.last += 1;
        let generation = state.last;
        state.held.insert(key.to_string(), generation);
        generation
    }

    /// Gives up `key`: records read under any of its generations are dropped.
    pub fn revoke(&self, key: &str) {
        self.lock().held.remove(key);
    }

    /// Whether records of `key` read under `generation` may be committed.
    pub fn holds(&self, key: &str, generation: u64) -> bool {
        self.lock().held.get(key) == Some(&generation)
    }

    /// Revokes every claim and asks the coordinator to read every shard it
    /// still leases again from the table's checkpoint (the pipeline dropped
    /// what it had buffered).
    pub fn reset(&self) {
        let mut state = self.lock();
        state.held.clear();
        state.reset = true;
    }

    /// Whether a reset was asked for since the last call (the coordinator
    /// restarts its readers then).
    pub fn take_reset(&self) -> bool {
        std::mem::take(&mut self.lock().reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_generation_retires_the_old_one_and_a_reset_all_of_them() {
        let claims = Claims::new();
        let first = claims.grant("a");
        assert!(claims.holds("a", first));
        let second = claims.grant("a");
        assert!(second > first);
        assert!(!claims.holds("a", first) && claims.holds("a", second));
        let b = claims.grant("b");
        claims.revoke("a");
        assert!(!claims.holds("a", second) && claims.holds("b", b));
        assert!(!claims.take_reset());
        claims.reset();
        assert!(!claims.holds("b", b));
        assert!(claims.take_reset());
        assert!(!claims.take_reset(), "a reset is reported once");
    }
}
