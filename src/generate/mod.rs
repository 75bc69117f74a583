//! Deterministic synthetic JSON Lines events for `floe generate`.
//!
//! This module owns the shape of Floe's test and benchmark input: valid events
//! drawn from a fixed vocabulary of 100 event names (the same in every file,
//! whatever the seed) with Zipf-skewed frequencies and a fixed payload schema
//! per name; exact and changed duplicates of earlier events; and malformed
//! lines of every kind the ingester rejects, labelled with its reason codes.
//!
//! Output depends only on [`GenerateOptions`]: randomness comes from a private
//! xoshiro256** generator seeded through splitmix64, no clock is read, and all
//! numbers are formatted from integers (no float printing, no `powf`), so the
//! same options give byte-identical output on any machine, any day.
//!
//! Line counts are exact, not sampled: `round(events × rate)` lines of each
//! of duplicates, changed duplicates and bad lines, placed at random positions,
//! except that the first line is always a valid original (when the rates sum to
//! 1, exact duplicates, then changed ones, then bad lines give up that line).
//!
//! [`generate`] writes the lines that `lines.rs` builds: the generator's
//! state and each kind of line (originals, duplicates, bad lines), drawing
//! on `rng.rs` (the random stream), `vocab.rs` (event names and their
//! payload schemas), `pools.rs` (the constant pools values come from),
//! `history.rs` (earlier lines to duplicate) and `json.rs` (JSON text
//! written from integers).

use std::collections::BTreeMap;
use std::io::{self, Write};

mod history;
mod json;
mod lines;
#[rustfmt::skip] // Dense constant tables, laid out by hand.
mod pools;
mod rng;
mod vocab;

use lines::{Generator, ROTATING_KINDS, TOO_LARGE};

/// Output is handed to the writer in chunks this big, so an unbuffered
/// writer (stdout, a raw file) does not cost one system call per line.
const CHUNK_BYTES: usize = 256 * 1024;
/// Smallest `oversize_bytes` accepted: the envelope alone must fit in it.
const MIN_OVERSIZE_BYTES: usize = 256;

/// What to generate. Every field matters for determinism: the same options
/// always produce the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Total number of output lines (valid originals, duplicates and bad lines).
    pub events: u64,
    /// Seed of the generator; a different seed gives a different file.
    pub seed: u64,
    /// Width of the `created_at` window in days (at least 1), so a run spans
    /// several day partitions.
    pub days: u32,
    /// Unix seconds of the window start; `created_at` lies in
    /// `[start, start + days * 86400)`.
    pub start: i64,
    /// Share of lines that are byte-identical copies of an earlier valid line.
    pub dup_rate: f64,
    /// Share of lines that repeat an earlier event's uuid, name and
    /// `created_at` with a different payload.
    pub changed_dup_rate: f64,
    /// Share of lines that the ingester must reject.
    pub bad_rate: f64,
    /// Exact byte length (without the newline) of `too_large` lines; the
    /// default is just over the ingester's 1 MiB record limit.
    pub oversize_bytes: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            events: 0,
            seed: 0,
            days: 7,
            start: 1_780_000_000,
            dup_rate: 0.02,
            changed_dup_rate: 0.01,
            bad_rate: 0.001,
            oversize_bytes: 1_048_576 + 1024,
        }
    }
}

/// What [`generate`] wrote, so callers (and benchmarks) know the expected
/// ingest results without re-reading the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateStats {
    /// Lines written: `valid + exact_duplicates + changed_duplicates + bad`.
    pub lines: u64,
    /// Valid original events (each with its own `event_uuid`).
    pub valid: u64,
    /// Byte-identical copies of earlier valid lines.
    pub exact_duplicates: u64,
    /// Earlier events repeated with the same uuid, name and `created_at` but
    /// another payload.
    pub changed_duplicates: u64,
    /// Lines the ingester must reject.
    pub bad: u64,
    /// Bad lines per reject reason code; all seven codes are present, even at 0.
    pub bad_by_kind: BTreeMap<&'static str, u64>,
    /// Bytes written, newlines included.
    pub bytes: u64,
}

/// Checks options before any byte is written, so a bad command line fails
/// with a message instead of a partial file.
pub fn validate_options(opts: &GenerateOptions) -> Result<(), String> {
    let rates = [
        ("dup_rate", opts.dup_rate),
        ("changed_dup_rate", opts.changed_dup_rate),
        ("bad_rate", opts.bad_rate),
    ];
    for (name, rate) in rates {
        // `contains` is false for NaN, which is rejected too.
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("{name} must be between 0 and 1, got {rate}"));
        }
    }
    let sum = opts.dup_rate + opts.changed_dup_rate + opts.bad_rate;
    if sum > 1.0 + 1e-9 {
        return Err(format!(
            "dup_rate + changed_dup_rate + bad_rate must be at most 1, got {sum}"
        ));
    }
    if opts.days < 1 {
        return Err("days must be at least 1".to_string());
    }
    if opts
        .start
        .checked_add(window_seconds(opts) as i64)
        .is_none()
    {
        return Err(format!("start {} + days overflows", opts.start));
    }
    if opts.oversize_bytes < MIN_OVERSIZE_BYTES {
        return Err(format!(
            "oversize_bytes must be at least {MIN_OVERSIZE_BYTES}, got {}",
            opts.oversize_bytes
        ));
    }
    Ok(())
}

/// Writes `opts.events` lines of JSON Lines to `out` and returns what it wrote.
///
/// Fails with `InvalidInput` when [`validate_options`] does, and otherwise only
/// when `out` fails. Memory stays bounded (a few thousand lines of history)
/// whatever the number of events.
pub fn generate(opts: &GenerateOptions, out: &mut dyn Write) -> io::Result<GenerateStats> {
    validate_options(opts).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let [mut exact, mut changed, mut bad] = planned_counts(opts);
    let mut valid = opts.events - exact - changed - bad;
    let mut stats = GenerateStats {
        bad_by_kind: ROTATING_KINDS
            .iter()
            .chain([&TOO_LARGE])
            .map(|k| (*k, 0))
            .collect(),
        ..GenerateStats::default()
    };
    let mut g = Generator::new(opts);
    let mut chunk = Vec::with_capacity(CHUNK_BYTES + 4096);
    for i in 0..opts.events {
        // Sequential sampling: each class is chosen with probability
        // remaining-of-class / remaining-lines, which places the exact counts
        // uniformly at random. `valid >= 1` at i == 0 (see `planned_counts`).
        let x = if i == 0 {
            u64::MAX
        } else {
            g.rng.below(opts.events - i)
        };
        if x < bad {
            bad -= 1;
            let kind = g.bad(stats.bad);
            stats.bad += 1;
            *stats.bad_by_kind.entry(kind).or_insert(0) += 1;
        } else if x < bad + exact {
            exact -= 1;
            g.exact_duplicate();
            stats.exact_duplicates += 1;
        } else if x < bad + exact + changed {
            changed -= 1;
            g.changed_duplicate();
            stats.changed_duplicates += 1;
        } else {
            valid -= 1;
            let (header_len, name) = g.original();
            g.history.push(&mut g.rng, &g.line, header_len, name);
            stats.valid += 1;
        }
        g.line.push(b'\n');
        stats.lines += 1;
        stats.bytes += g.line.len() as u64;
        chunk.extend_from_slice(&g.line);
        if chunk.len() >= CHUNK_BYTES {
            out.write_all(&chunk)?;
            chunk.clear();
        }
    }
    debug_assert_eq!(valid + exact + changed + bad, 0);
    out.write_all(&chunk)?;
    out.flush()?;
    Ok(stats)
}

/// Exact numbers of `[exact duplicates, changed duplicates, bad lines]`,
/// leaving at least one valid original for the first line.
fn planned_counts(opts: &GenerateOptions) -> [u64; 3] {
    let n = opts.events;
    let share = |rate: f64| ((n as f64 * rate).round() as u64).min(n);
    let mut counts = [
        share(opts.dup_rate),
        share(opts.changed_dup_rate),
        share(opts.bad_rate),
    ];
    let room = n.saturating_sub(1);
    for i in 0..3 {
        let total: u64 = counts.iter().sum();
        counts[i] -= total.saturating_sub(room).min(counts[i]);
    }
    counts
}

fn window_seconds(opts: &GenerateOptions) -> u64 {
    u64::from(opts.days) * 86_400
}

#[cfg(test)]
mod tests;
