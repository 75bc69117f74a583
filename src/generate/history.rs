//! Earlier valid lines kept for duplicates to copy: the most recent ones
//! and a reservoir sample of older ones, in bounded memory.

use super::rng::Rng;

/// Recent valid lines kept for duplicates (90% of duplicates copy one).
const RING_LINES: usize = 1000;
/// Reservoir sample of older valid lines (10% of duplicates copy one).
const RESERVOIR_LINES: usize = 2000;

/// Valid lines kept for duplicates: the last `RING_LINES` plus a reservoir
/// sample of older ones. Slots are reused, so steady state allocates nothing.
#[derive(Default)]
pub(super) struct History {
    ring: Vec<Stored>,
    next: usize,
    reservoir: Vec<Stored>,
    evicted: u64,
}

#[derive(Default)]
pub(super) struct Stored {
    pub(super) line: Vec<u8>,
    pub(super) header_len: usize,
    pub(super) name: usize,
}

impl History {
    pub(super) fn push(&mut self, rng: &mut Rng, line: &[u8], header_len: usize, name: usize) {
        if self.ring.len() < RING_LINES {
            self.ring.push(Stored {
                line: line.to_vec(),
                header_len,
                name,
            });
            return;
        }
        let slot = &mut self.ring[self.next];
        self.next = (self.next + 1) % RING_LINES;
        self.evicted += 1;
        if self.reservoir.len() < RESERVOIR_LINES {
            self.reservoir.push(std::mem::take(slot));
        } else {
            let j = rng.below(self.evicted) as usize;
            if j < RESERVOIR_LINES {
                std::mem::swap(&mut self.reservoir[j], slot);
            }
        }
        slot.line.clear();
        slot.line.extend_from_slice(line);
        slot.header_len = header_len;
        slot.name = name;
    }

    /// A stored line: 90% a recent one, 10% an older one when there are any.
    pub(super) fn pick(&self, rng: &mut Rng) -> Option<&Stored> {
        let pool = if !self.reservoir.is_empty() && rng.percent(10) {
            &self.reservoir
        } else {
            &self.ring
        };
        pool.get(rng.below(pool.len() as u64) as usize)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::generate::GenerateOptions;
    use crate::generate::tests::{classify, lines, opts, run};

    #[test]
    fn duplicates_come_mostly_from_recent_lines() {
        let o = GenerateOptions {
            dup_rate: 0.1,
            ..opts(30_000, 11)
        };
        let (out, _) = run(&o);
        let mut index: HashMap<&[u8], usize> = HashMap::new();
        let (mut recent, mut old) = (0, 0);
        for line in lines(&out)
            .into_iter()
            .filter(|l| classify(l, 4096) == "valid")
        {
            let n = index.len();
            match index.get(line) {
                Some(&i) if n - i <= RING_LINES => recent += 1,
                Some(_) => old += 1,
                None => {
                    index.insert(line, n);
                }
            }
        }
        let share = old as f64 / (recent + old) as f64;
        assert!((0.05..0.15).contains(&share), "old share {share}");
    }

    #[test]
    fn history_stays_bounded() {
        let mut h = History::default();
        let mut rng = Rng::new(1);
        for i in 0..20_000 {
            h.push(&mut rng, format!("line {i}").as_bytes(), 0, 0);
        }
        assert_eq!(
            (h.ring.len(), h.reservoir.len()),
            (RING_LINES, RESERVOIR_LINES)
        );
        let old = h.reservoir.iter().filter(|s| s.line.len() < 9).count();
        assert!(old > 0, "the reservoir samples old lines too");
    }
}
