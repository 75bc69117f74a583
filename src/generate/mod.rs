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

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::event::RejectReason;

/// Reason codes the generator cycles through for bad lines, in cycle order:
/// the ingester's own codes, so a generated file names what Floe will count.
const ROTATING_KINDS: [&str; 6] = [
    RejectReason::InvalidJson.code(),
    RejectReason::NotObject.code(),
    RejectReason::BadEventUuid.code(),
    RejectReason::BadEventName.code(),
    RejectReason::BadCreatedAt.code(),
    RejectReason::CreatedAtOutOfRange.code(),
];
/// Reason code of oversized lines, kept out of the cycle because they are big.
const TOO_LARGE: &str = RejectReason::TooLarge.code();
/// Bad line number `b` (from 0) is `too_large` when `b % 100 == 6`: one in a
/// hundred, and the seventh comes early so small files still hold every kind.
const TOO_LARGE_EVERY: u64 = 100;
const TOO_LARGE_SLOT: u64 = 6;
/// Recent valid lines kept for duplicates (90% of duplicates copy one).
const RING_LINES: usize = 1000;
/// Reservoir sample of older valid lines (10% of duplicates copy one).
const RESERVOIR_LINES: usize = 2000;
/// Output is handed to the writer in chunks this big, so an unbuffered
/// writer (stdout, a raw file) does not cost one system call per line.
const CHUNK_BYTES: usize = 256 * 1024;
/// Smallest `oversize_bytes` accepted: the envelope alone must fit in it.
const MIN_OVERSIZE_BYTES: usize = 256;
/// Number of distinct event names.
const NAME_COUNT: usize = 100;
/// Seed of the vocabulary, fixed so every file shares the same names. Picked
/// among small seeds because it gives ~380-byte lines at the default rates
/// (the benchmark's 1M events ≈ 380 MB); changing it changes every file.
const VOCAB_SEED: u64 = 39;

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

/// xoshiro256** seeded by splitmix64: tiny, fast, and fully specified, so the
/// stream never changes with a dependency upgrade.
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, n)` (0 when `n == 0`), by multiply-high: no division.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `pct` percent.
    fn percent(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// Uniform in `[lo, hi]`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(hi.abs_diff(lo) + 1) as i64
    }

    /// One element of a non-empty constant pool.
    fn pick<T: Copy>(&mut self, pool: &[T]) -> T {
        pool[self.below(pool.len() as u64) as usize]
    }
}

/// How one payload value is drawn. String pools hold JSON-escaped contents.
#[derive(Clone, Copy)]
enum Kind {
    Word(&'static [&'static str]),
    Id(&'static str),
    Email,
    Text,
    Url,
    Ip,
    Count(u64),
    Signed,
    Big,
    Money,
    Ratio,
    Coord,
    Bool,
    Object(&'static [(&'static str, Kind)]),
    Numbers,
    Words(&'static [&'static str]),
}

/// Constant pools, laid out by hand (dense tables read better than one item a line).
/// Strings are JSON-escaped string contents, written between quotes as they are.
#[rustfmt::skip]
mod pools {
    use super::Kind::{self, *};

    pub(super) const TYPES: &[&str] = &["account", "auth", "cart", "email", "inventory", "order",
        "page", "payment", "search", "session", "subscription", "user"];
    pub(super) const OBJECTS: &[&str] = &["item", "coupon", "card", "refund", "invoice", "password",
        "profile", "address", "token", "plan", "trial", "shipment", "link", "result", "filter",
        "message", "review", "device"];
    pub(super) const VERBS: &[&str] = &["created", "updated", "deleted", "completed", "failed",
        "viewed", "added", "removed", "started", "ended", "sent", "opened", "clicked", "applied",
        "expired", "renewed", "cancelled", "requested", "verified"];
    pub(super) const WORDS: &[&str] = &["alpha", "blue", "checkout", "delta", "express", "fresh",
        "gift", "home", "instant", "jacket", "kitchen", "lamp", "mobile", "night", "orange",
        "premium", "quick", "red", "summer", "travel", "ultra", "vintage", "winter", "yellow", "zen",
        "classic", "bundle"];
    /// Unicode and escapes, mixed into 10% of free-text values.
    pub(super) const SPECIAL: &[&str] = &["café", "naïve", "Zürich", "São Paulo", "日本語",
        "🎉 party", r#"say \"hello\""#, r#"C:\\temp\\file"#, r#"caf\u00e9"#, r#"line\nbreak"#,
        r#"tab\tseparated"#, "Ελληνικά"];
    pub(super) const NAMES: &[&str] = &["anna", "bob", "chen", "dana", "eli", "fatima", "goran",
        "hana", "ivan", "jose"];
    pub(super) const SURNAMES: &[&str] = &["smith", "mueller", "garcia", "tanaka", "nowak",
        "rossi", "silva", "kim", "dubois", "okafor"];
    pub(super) const DOMAINS: &[&str] = &["example.com", "mail.test", "shop.example", "acme.io",
        "corp.test"];
    const COUNTRIES: &[&str] = &["US", "DE", "FR", "BR", "JP", "IN", "GB", "CA", "ES", "NL"];
    const CURRENCIES: &[&str] = &["USD", "EUR", "BRL", "JPY", "GBP"];
    const STATUSES: &[&str] = &["pending", "active", "succeeded", "failed", "refunded", "on_hold"];
    const PLANS: &[&str] = &["free", "starter", "pro", "business", "enterprise"];
    const LOCALES: &[&str] = &["en-US", "de-DE", "fr-FR", "pt-BR", "ja-JP"];
    const CHANNELS: &[&str] = &["web", "ios", "android", "api", "email", "partner"];
    const CITIES: &[&str] = &["Berlin", "Zürich", "São Paulo", "Kraków", "東京", "Austin", "Lyon"];
    const OSES: &[&str] = &["ios", "android", "windows", "macos", "linux"];
    const VERSIONS: &[&str] = &["1.0.3", "2.4.1", "17.2", "14", "10.0.19045"];
    const SOURCES: &[&str] = &["google", "newsletter", "facebook", "direct", "bing"];
    const TAGS: &[&str] = &["new", "sale", "vip", "beta", "gift", "bulk", "b2b", "returning"];
    const DEVICE: &[(&str, Kind)] = &[("os", Word(OSES)), ("os_version", Word(VERSIONS)),
        ("mobile", Bool), ("screen_width", Count(3840))];
    const ADDRESS: &[(&str, Kind)] = &[("city", Word(CITIES)), ("postal_code", Count(99_999)),
        ("country", Word(COUNTRIES))];
    const GEO: &[(&str, Kind)] = &[("lat", Coord), ("lon", Coord)];
    const UTM: &[(&str, Kind)] = &[("source", Word(SOURCES)), ("medium", Word(CHANNELS)),
        ("campaign", Word(WORDS))];
    const META: &[(&str, Kind)] = &[("trace_id", Id("trc")), ("schema_version", Count(12)),
        ("debug", Bool)];
    /// Payload fields. A field keeps its kind across all event names, as in
    /// real producers, so a column never changes type between event names.
    pub(super) const FIELDS: &[(&str, Kind)] = &[
        ("user_id", Id("usr")), ("session_id", Id("ses")), ("order_id", Id("ord")),
        ("product_id", Id("prd")), ("request_id", Id("req")), ("email", Email),
        ("country", Word(COUNTRIES)), ("currency", Word(CURRENCIES)), ("status", Word(STATUSES)),
        ("plan", Word(PLANS)), ("locale", Word(LOCALES)), ("channel", Word(CHANNELS)),
        ("url", Url), ("referrer", Url), ("ip_address", Ip), ("comment", Text),
        ("search_query", Text), ("display_name", Text), ("quantity", Count(20)),
        ("item_count", Count(50)), ("retry_count", Count(5)), ("duration_ms", Count(600_000)),
        ("amount_cents", Count(10_000_000)), ("balance_delta", Signed), ("score_delta", Signed),
        ("bytes_transferred", Big), ("sequence_number", Big), ("price", Money),
        ("discount", Money), ("tax_rate", Ratio), ("conversion_rate", Ratio), ("is_test", Bool),
        ("success", Bool), ("first_visit", Bool), ("device", Object(DEVICE)),
        ("shipping_address", Object(ADDRESS)), ("geo", Object(GEO)), ("utm", Object(UTM)),
        ("metadata", Object(META)), ("tags", Words(TAGS)), ("related_ids", Words(WORDS)),
        ("scores", Numbers), ("line_item_quantities", Numbers),
    ];
    pub(super) const GARBAGE: &[&str] = &["this is not json",
        "<html><body>502 Bad Gateway</body></html>", "{event_uuid: 'abc', event_name: 'x'}",
        "event_uuid=1;event_name=account:created"];
    pub(super) const BAD_UTF8: &[&[u8]] = &[b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80"];
    pub(super) const OUT_OF_RANGE: &[&[u8]] = &[b"946684799", b"12", b"4102444800"];
}
use pools::*;

/// One event name with its fixed payload schema.
struct EventDef {
    /// The name as a JSON string literal, quotes included.
    name_json: Vec<u8>,
    /// Fields in output order; field 0 is the `<type>_id` key and is never
    /// omitted, so payloads always carry 64 random bits (see `changed_duplicate`).
    fields: Vec<(Vec<u8>, Kind)>,
}

/// The shared vocabulary: names, schemas and Zipf weights (s = 1, so the
/// first name is exactly 100× as frequent as the last; integer weights keep
/// sampling identical on every platform, which `powf` would not guarantee).
struct Vocab {
    events: Vec<EventDef>,
    cumulative: Vec<u64>,
}

impl Vocab {
    fn new() -> Self {
        let mut rng = Rng::new(VOCAB_SEED);
        let mut names: Vec<String> = Vec::with_capacity(NAME_COUNT);
        let mut events = Vec::with_capacity(NAME_COUNT);
        while events.len() < NAME_COUNT {
            let ty = rng.pick(TYPES);
            let name = match rng.below(10) {
                0 => ty.to_string(),
                1..=4 => format!("{ty}:{}", rng.pick(VERBS)),
                _ => format!("{ty}:{}:{}", rng.pick(OBJECTS), rng.pick(VERBS)),
            };
            if names.contains(&name) {
                continue;
            }
            let key = format!("{ty}_id");
            // Every type name has at least 3 ASCII letters, so `..3` is in bounds.
            let mut fields = vec![(format!("\"{key}\":").into_bytes(), Kind::Id(&ty[..3]))];
            let mut used = vec![key];
            let wanted = 3 + rng.below(10) as usize;
            while fields.len() < wanted {
                let (field, kind) = rng.pick(FIELDS);
                if !used.iter().any(|u| u == field) {
                    used.push(field.to_string());
                    fields.push((format!("\"{field}\":").into_bytes(), kind));
                }
            }
            events.push(EventDef {
                name_json: format!("\"{name}\"").into_bytes(),
                fields,
            });
            names.push(name);
        }
        let mut total = 0;
        let cumulative = (1..=NAME_COUNT as u64)
            .map(|rank| {
                total += (1 << 40) / rank;
                total
            })
            .collect();
        Self { events, cumulative }
    }

    /// Index of a Zipf-distributed event name.
    fn pick(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let x = rng.below(total);
        // x < total == the last entry, so the index is always < len.
        self.cumulative.partition_point(|&c| c <= x)
    }
}

/// Valid lines kept for duplicates: the last `RING_LINES` plus a reservoir
/// sample of older ones. Slots are reused, so steady state allocates nothing.
#[derive(Default)]
struct History {
    ring: Vec<Stored>,
    next: usize,
    reservoir: Vec<Stored>,
    evicted: u64,
}

#[derive(Default)]
struct Stored {
    line: Vec<u8>,
    header_len: usize,
    name: usize,
}

impl History {
    fn push(&mut self, rng: &mut Rng, line: &[u8], header_len: usize, name: usize) {
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
    fn pick(&self, rng: &mut Rng) -> Option<&Stored> {
        let pool = if !self.reservoir.is_empty() && rng.percent(10) {
            &self.reservoir
        } else {
            &self.ring
        };
        pool.get(rng.below(pool.len() as u64) as usize)
    }
}

/// Generation state; `line` holds the line being built (without its newline).
struct Generator {
    rng: Rng,
    vocab: Vocab,
    start: i64,
    window: u64,
    oversize: usize,
    line: Vec<u8>,
    ts: Vec<u8>,
    history: History,
    /// Next position in `ROTATING_KINDS`, and per-kind counters choosing variants.
    rotation: usize,
    variants: [u64; 7],
}

impl Generator {
    fn new(opts: &GenerateOptions) -> Self {
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
    fn original(&mut self) -> (usize, usize) {
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
    fn exact_duplicate(&mut self) {
        self.line.clear();
        if let Some(s) = self.history.pick(&mut self.rng) {
            self.line.extend_from_slice(&s.line);
        }
    }

    /// Same envelope bytes as a stored original, new payload.
    fn changed_duplicate(&mut self) {
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
    fn bad(&mut self, seq: u64) -> &'static str {
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

/// Writes `{` and the envelope members in their fixed order; `None` omits one
/// (bad lines). At least one is always present, so the payload's leading
/// comma is right.
fn open_event(line: &mut Vec<u8>, uuid: Option<&[u8]>, name: Option<&[u8]>, ts: Option<&[u8]>) {
    line.push(b'{');
    let members = [
        (&b"\"event_uuid\":"[..], uuid),
        (b"\"event_name\":", name),
        (b"\"created_at\":", ts),
    ];
    let mut first = true;
    for (key, value) in members {
        if let Some(value) = value {
            if !first {
                line.push(b',');
            }
            first = false;
            line.extend_from_slice(key);
            line.extend_from_slice(value);
        }
    }
}

/// Appends `,"field":value` for the schema's fields; 5% of payloads leave out
/// one field (never the key field 0), as optional fields do in real events.
fn write_payload(line: &mut Vec<u8>, rng: &mut Rng, def: &EventDef) {
    let n = def.fields.len();
    let omit = if n > 1 && rng.percent(5) {
        1 + rng.below(n as u64 - 1) as usize
    } else {
        0
    };
    for (i, (key, kind)) in def.fields.iter().enumerate() {
        if i != omit || i == 0 {
            line.push(b',');
            line.extend_from_slice(key);
            write_value(line, rng, *kind);
        }
    }
}

fn write_value(line: &mut Vec<u8>, rng: &mut Rng, kind: Kind) {
    match kind {
        Kind::Word(pool) => push_str(line, rng.pick(pool)),
        Kind::Id(prefix) => {
            push_all(line, &[b"\"", prefix.as_bytes(), b"_"]);
            push_hex(line, u128::from(rng.next_u64()), 16);
            line.push(b'"');
        }
        Kind::Email => {
            let (first, last) = (rng.pick(NAMES), rng.pick(SURNAMES));
            push_all(line, &[b"\"", first.as_bytes(), b".", last.as_bytes()]);
            push_u64(line, rng.below(100));
            push_all(line, &[b"@", rng.pick(DOMAINS).as_bytes(), b"\""]);
        }
        Kind::Text => {
            line.push(b'"');
            let words = 1 + rng.below(5);
            let special = if rng.percent(10) {
                rng.below(words)
            } else {
                words
            };
            for w in 0..words {
                if w > 0 {
                    line.push(b' ');
                }
                let pool = if w == special { SPECIAL } else { WORDS };
                line.extend_from_slice(rng.pick(pool).as_bytes());
            }
            line.push(b'"');
        }
        Kind::Url => {
            let (domain, word) = (rng.pick(DOMAINS), rng.pick(WORDS));
            push_all(
                line,
                &[
                    b"\"https://",
                    domain.as_bytes(),
                    b"/",
                    word.as_bytes(),
                    b"/",
                ],
            );
            push_u64(line, rng.below(100_000));
            push_all(line, &[b"?ref=", rng.pick(WORDS).as_bytes(), b"\""]);
        }
        Kind::Ip => {
            let bits = rng.next_u64();
            line.push(b'"');
            for i in 0..4 {
                if i > 0 {
                    line.push(b'.');
                }
                push_u64(line, (bits >> (8 * i)) & 0xff);
            }
            line.push(b'"');
        }
        Kind::Count(max) => push_u64(line, rng.below(max + 1)),
        Kind::Signed => push_i64(line, rng.range(-1_000_000, 1_000_000)),
        Kind::Big => push_u64(line, (1 << 32) + rng.below((1 << 53) - (1 << 32))),
        Kind::Money => push_decimal(line, rng.below(1_000_000) as i64, 2),
        Kind::Ratio => push_decimal(line, rng.below(10_000) as i64, 4),
        Kind::Coord => push_decimal(line, rng.range(-180_000_000, 180_000_000), 6),
        Kind::Bool => line.extend_from_slice(if rng.percent(50) { b"true" } else { b"false" }),
        Kind::Object(members) => {
            line.push(b'{');
            for (i, (key, kind)) in members.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                push_str(line, key);
                line.push(b':');
                write_value(line, rng, *kind);
            }
            line.push(b'}');
        }
        Kind::Numbers | Kind::Words(_) => {
            line.push(b'[');
            for i in 0..rng.below(6) {
                if i > 0 {
                    line.push(b',');
                }
                match kind {
                    Kind::Words(pool) => push_str(line, rng.pick(pool)),
                    _ => push_u64(line, rng.below(10_000)),
                }
            }
            line.push(b']');
        }
    }
}

/// A random version-4 UUID in lowercase text form, quotes included.
fn uuid_v4(rng: &mut Rng) -> [u8; 38] {
    let hi = (rng.next_u64() & !0xf000) | 0x4000;
    let lo = (rng.next_u64() & !(0b11 << 62)) | (0b10 << 62);
    let mut out = [b'"'; 38];
    let mut bits = (u128::from(hi) << 64) | u128::from(lo);
    let mut j = 1;
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = HEX[(bits >> 124) as usize];
        bits <<= 4;
        j += 1;
    }
    out
}

/// Appends byte strings in order (keeps multi-part values on one line).
fn push_all(line: &mut Vec<u8>, parts: &[&[u8]]) {
    for part in parts {
        line.extend_from_slice(part);
    }
}

fn push_str(line: &mut Vec<u8>, escaped: &str) {
    line.push(b'"');
    line.extend_from_slice(escaped.as_bytes());
    line.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The low `digits` hex digits of `v`, lowercase.
fn push_hex(line: &mut Vec<u8>, v: u128, digits: u32) {
    for i in (0..digits).rev() {
        line.push(HEX[((v >> (4 * i)) & 0xf) as usize]);
    }
}

fn push_u64(line: &mut Vec<u8>, n: u64) {
    let (tmp, start) = decimal_digits(n);
    line.extend_from_slice(&tmp[start..]);
}

/// Decimal digits of `n` in `tmp[start..]`, on the stack (this is the hot path).
fn decimal_digits(mut n: u64) -> ([u8; 20], usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return (tmp, i);
        }
    }
}

fn push_i64(line: &mut Vec<u8>, n: i64) {
    if n < 0 {
        line.push(b'-');
    }
    push_u64(line, n.unsigned_abs());
}

/// `n` in decimal, zero-padded to `width` digits.
fn push_padded(line: &mut Vec<u8>, n: u64, width: usize) {
    let (tmp, start) = decimal_digits(n);
    let len = tmp.len() - start;
    line.resize(line.len() + width.saturating_sub(len), b'0');
    line.extend_from_slice(&tmp[start..]);
}

/// `scaled / 10^decimals` as a decimal number, e.g. (-1250, 2) -> `-12.50`.
fn push_decimal(line: &mut Vec<u8>, scaled: i64, decimals: u32) {
    let unit = 10u64.pow(decimals);
    if scaled < 0 {
        line.push(b'-');
    }
    push_u64(line, scaled.unsigned_abs() / unit);
    line.push(b'.');
    push_padded(line, scaled.unsigned_abs() % unit, decimals as usize);
}

#[cfg(test)]
mod tests;
