//! The generator's state and the line it builds: valid originals, exact
//! and changed duplicates of earlier ones, and bad lines of every reject
//! reason, each kind in its variants.

use super::history::History;
use super::json::{open_event, push_i64, push_padded, push_u64, uuid_v4, write_payload};
use super::pools::{BAD_UTF8, GARBAGE, OUT_OF_RANGE};
use super::rng::Rng;
use super::vocab::Vocab;
use super::{GenerateOptions, window_seconds};
use crate::event::RejectReason;

/// Reason codes the generator cycles through for bad lines, in cycle order:
/// the ingester's own codes, so a generated file names what Floe will count.
pub(super) const ROTATING_KINDS: [&str; 6] = [
    RejectReason::InvalidJson.code(),
    RejectReason::NotObject.code(),
    RejectReason::BadEventUuid.code(),
    RejectReason::BadEventName.code(),
    RejectReason::BadCreatedAt.code(),
    RejectReason::CreatedAtOutOfRange.code(),
];
/// Reason code of oversized lines, kept out of the cycle because they are big.
pub(super) const TOO_LARGE: &str = RejectReason::TooLarge.code();
/// Bad line number `b` (from 0) is `too_large` when `b % 100 == 6`: one in a
/// hundred, and the seventh comes early so small files still hold every kind.
pub(super) const TOO_LARGE_EVERY: u64 = 100;
pub(super) const TOO_LARGE_SLOT: u64 = 6;

/// Generation state; `line` holds the line being built (without its newline).
pub(super) struct Generator {
    pub(super) rng: Rng,
    vocab: Vocab,
    start: i64,
    window: u64,
    oversize: usize,
    pub(super) line: Vec<u8>,
    ts: Vec<u8>,
    pub(super) history: History,
    /// Next position in `ROTATING_KINDS`, and per-kind counters choosing variants.
    rotation: usize,
    variants: [u64; 7],
}

impl Generator {
    pub(super) fn new(opts: &GenerateOptions) -> Self {
        Self {
            rng: Rng::new(opts.seed),
            vocab: Vocab::new(),
            start: opts.start,
            window: window_seconds(opts),
            oversize: opts.oversize_bytes,
            line: Vec::with_capacity(4096),
            ts: Vec::with_capacity(32),
            history: History::default(),
            rotation: 0,
            variants: [0; 7],
        }
    }

    /// Draws a `created_at` in the window into `self.ts`: 70% with 1 to 6
    /// decimals, written from integers so the text is exactly as intended.
    fn draw_ts(&mut self) {
        self.ts.clear();
        push_i64(
            &mut self.ts,
            self.start + self.rng.below(self.window) as i64,
        );
        if self.rng.percent(70) {
            let digits = 1 + self.rng.below(6) as u32;
            self.ts.push(b'.');
            push_padded(
                &mut self.ts,
                self.rng.below(10u64.pow(digits)),
                digits as usize,
            );
        }
    }

    /// Builds a valid original event; returns its envelope length and name.
    pub(super) fn original(&mut self) -> (usize, usize) {
        let name = self.vocab.pick(&mut self.rng);
        let uuid = uuid_v4(&mut self.rng);
        self.draw_ts();
        self.line.clear();
        let def = &self.vocab.events[name];
        open_event(
            &mut self.line,
            Some(&uuid),
            Some(&def.name_json),
            Some(&self.ts),
        );
        let header_len = self.line.len();
        write_payload(&mut self.line, &mut self.rng, def);
        self.line.push(b'}');
        (header_len, name)
    }

    /// The history is never empty here: the first line is always an original.
    pub(super) fn exact_duplicate(&mut self) {
        self.line.clear();
        if let Some(s) = self.history.pick(&mut self.rng) {
            self.line.extend_from_slice(&s.line);
        }
    }

    /// Same envelope bytes as a stored original, new payload.
    pub(super) fn changed_duplicate(&mut self) {
        self.line.clear();
        let Some(s) = self.history.pick(&mut self.rng) else {
            return;
        };
        let def = &self.vocab.events[s.name];
        // A fresh payload differs unless all its random draws repeat, at odds
        // of 2^-64 per try (the key id), so the fallback below never runs in
        // practice; it is only there to make "differs" a guarantee.
        for _ in 0..8 {
            self.line.clear();
            self.line.extend_from_slice(&s.line[..s.header_len]);
            write_payload(&mut self.line, &mut self.rng, def);
            self.line.push(b'}');
            if self.line != s.line {
                return;
            }
        }
        self.line.pop();
        self.line.extend_from_slice(b",\"revision\":2}");
    }

    /// Builds bad line number `seq` (from 0); returns its reason code.
    pub(super) fn bad(&mut self, seq: u64) -> &'static str {
        let (kind, slot) = if seq % TOO_LARGE_EVERY == TOO_LARGE_SLOT {
            (TOO_LARGE, 6)
        } else {
            let slot = self.rotation % ROTATING_KINDS.len();
            self.rotation += 1;
            (ROTATING_KINDS[slot], slot)
        };
        let v = self.variants[slot];
        self.variants[slot] += 1;
        let name = self.vocab.pick(&mut self.rng);
        let uuid = uuid_v4(&mut self.rng);
        self.draw_ts();
        let def = &self.vocab.events[name];
        let (line, ts, rng) = (&mut self.line, &self.ts, &mut self.rng);
        line.clear();
        let mut scratch = Vec::new();
        // Each arm leaves a complete line, or sets `body` to the envelope to
        // open before the payload is appended.
        let body: Option<[Option<&[u8]>; 3]> = match (slot, v) {
            (0, v) if v % 3 == 0 => {
                open_event(line, Some(&uuid), Some(&def.name_json), Some(ts));
                write_payload(line, rng, def);
                // Cut inside the object, at a character boundary, so the
                // outer brace stays open: never valid JSON, always valid UTF-8.
                let mut cut = line.len() / 4 + rng.below(line.len() as u64 / 2) as usize;
                while cut > 1 && line[cut] & 0xc0 == 0x80 {
                    cut -= 1;
                }
                line.truncate(cut);
                None
            }
            (0, v) if v % 3 == 1 => {
                scratch.push(b'"');
                scratch.extend_from_slice(BAD_UTF8[(v / 3) as usize % BAD_UTF8.len()]);
                scratch.push(b'"');
                Some([Some(&scratch), Some(&def.name_json), Some(ts)])
            }
            (0, v) => {
                line.extend_from_slice(GARBAGE[(v / 3) as usize % GARBAGE.len()].as_bytes());
                None
            }
            (1, v) => {
                match v % 4 {
                    0 => {
                        line.push(b'[');
                        open_event(line, Some(&uuid), Some(&def.name_json), Some(ts));
                        write_payload(line, rng, def);
                        line.extend_from_slice(b"}]");
                    }
                    1 => line.extend_from_slice(&def.name_json),
                    2 => line.extend_from_slice(ts),
                    _ => line.extend_from_slice(b"null"),
                }
                None
            }
            (2, v) => {
                push_u64(&mut scratch, rng.below(1 << 40));
                let id: Option<&[u8]> = match v % 3 {
                    0 => None,
                    1 => Some(&scratch),
                    _ => Some(b"\"\""),
                };
                Some([id, Some(&def.name_json), Some(ts)])
            }
            (3, v) => {
                // An empty first part: `":created"` from the real name's tail.
                scratch.extend_from_slice(b"\":");
                let plain = &def.name_json[1..def.name_json.len() - 1];
                let tail = plain
                    .iter()
                    .position(|&b| b == b':')
                    .map_or(plain, |p| &plain[p + 1..]);
                scratch.extend_from_slice(tail);
                scratch.push(b'"');
                let name: Option<&[u8]> = match v % 5 {
                    0 => None,
                    1 => Some(b"42"),
                    2 => Some(b"{\"type\":\"account\",\"action\":\"created\"}"),
                    3 => Some(&scratch),
                    _ => Some(b"\"\""),
                };
                Some([Some(&uuid), name, Some(ts)])
            }
            (4, v) => {
                scratch.push(b'"');
                scratch.extend_from_slice(ts);
                scratch.push(b'"');
                let created: Option<&[u8]> = match v % 4 {
                    0 => None,
                    1 => Some(&scratch),
                    2 => Some(b"null"),
                    _ => Some(b"true"),
                };
                Some([Some(&uuid), Some(&def.name_json), created])
            }
            (5, v) => {
                let created = OUT_OF_RANGE[(v % 3) as usize];
                Some([Some(&uuid), Some(&def.name_json), Some(created)])
            }
            _ => {
                // too_large: a real event padded with a string field so the
                // line is exactly `oversize` bytes. The envelope alone always
                // fits (validate_options), the payload only when there is room.
                open_event(line, Some(&uuid), Some(&def.name_json), Some(ts));
                let envelope = line.len();
                write_payload(line, rng, def);
                const PAD_KEY: &[u8] = b",\"padding\":\"";
                if line.len() + PAD_KEY.len() + 2 > self.oversize {
                    line.truncate(envelope);
                }
                line.extend_from_slice(PAD_KEY);
                let padded = self.oversize.saturating_sub(2).max(line.len());
                line.resize(padded, b'x');
                line.extend_from_slice(b"\"}");
                None
            }
        };
        if let Some([id, name_value, created]) = body {
            open_event(line, id, name_value, created);
            write_payload(line, rng, def);
            line.push(b'}');
        }
        kind
    }
}

#[cfg(test)]
mod tests;
