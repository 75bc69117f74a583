//! One line in, one [`Event`] or one [`Rejection`] out: parse, validate, enrich.
//!
//! The object is parsed once, without building a generic JSON value: every
//! member is kept as its raw text slice, the three common fields are read from
//! theirs, and `payload` is the other members' raw text joined back together
//! (made compact when the input had white space). Nothing is dropped and
//! numbers keep their exact digits.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::typed::{TypedColumns, TypedColumnsRef, Value, coerce, describe};

/// 2000-01-01T00:00:00Z: anything earlier is taken for a unit or clock error.
pub const MIN_CREATED_AT: f64 = 946_684_800.0;
/// How far past the ingestion time an event may claim to be (clock skew).
pub const MAX_FUTURE_SECONDS: f64 = 86_400.0;
/// Longest `event_type` in UTF-8 bytes. It is a partition value: its folder
/// name `event_type=<value>`, with every byte percent-encoded in the worst
/// case (3 characters a byte), stays within the 255-byte file-name limit of
/// local file systems and far within S3's 1,024-byte keys and the partition
/// value limits of Glue and Athena.
pub const MAX_EVENT_TYPE_BYTES: usize = 64;

/// Why a record was rejected. The codes are stable: they are stored in the
/// rejected table, counted in snapshot summaries and named in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not valid UTF-8, or not valid JSON.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotObject,
    /// `event_uuid` missing, not a string, or empty.
    BadEventUuid,
    /// `event_name` missing or not a string, or its first part (`event_type`,
    /// a partition value) empty, longer than [`MAX_EVENT_TYPE_BYTES`] or
    /// holding a control character.
    BadEventName,
    /// `created_at` missing or not a JSON number.
    BadCreatedAt,
    /// `created_at` before 2000-01-01 or more than a day after ingestion.
    CreatedAtOutOfRange,
    /// The record is longer than the configured limit.
    TooLarge,
    /// A KPL aggregated Kinesis record that cannot be unpacked (checksum,
    /// protobuf): none of its user records can be trusted.
    BadAggregate,
    /// A payload field's value does not fit its typed column (strict mode
    /// only; otherwise it stays in `payload` and is counted).
    TypeMismatch,
}

impl RejectReason {
    /// Every reason, in a stable order (for reports).
    pub const ALL: [RejectReason; 9] = [
        RejectReason::InvalidJson,
        RejectReason::NotObject,
        RejectReason::BadEventUuid,
        RejectReason::BadEventName,
        RejectReason::BadCreatedAt,
        RejectReason::CreatedAtOutOfRange,
        RejectReason::TooLarge,
        RejectReason::BadAggregate,
        RejectReason::TypeMismatch,
    ];

    /// The reason code, e.g. `invalid_json`.
    pub const fn code(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotObject => "not_object",
            RejectReason::BadEventUuid => "bad_event_uuid",
            RejectReason::BadEventName => "bad_event_name",
            RejectReason::BadCreatedAt => "bad_created_at",
            RejectReason::CreatedAtOutOfRange => "created_at_out_of_range",
            RejectReason::TooLarge => "too_large",
            RejectReason::BadAggregate => "bad_aggregate",
            RejectReason::TypeMismatch => "type_mismatch",
        }
    }

    /// Parses a reason code back (for summaries written by earlier runs).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// A record that cannot become a row, with the reason and a message saying
/// exactly what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The reason code.
    pub reason: RejectReason,
    /// What is wrong, in words, naming the field.
    pub message: String,
}

impl Rejection {
    fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// A valid, enriched event: the values of one table row, minus the source
/// columns the caller knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `event_uuid`, `event_name` and `payload`, one after the other in one
    /// allocation (a buffered event costs one allocation, not three).
    text: Box<str>,
    /// Byte length of `event_uuid` in `text`.
    uuid_len: u32,
    /// Byte length of `event_name` in `text`; `payload` is the rest.
    name_len: u32,
    /// The key index's key of `event_uuid` ([`crate::contract::event_key`]), computed
    /// here, in the parallel stage, once per event.
    pub key: u128,
    /// Byte range of the first `:`-part of `event_name` without the white
    /// space around it (`event_type`).
    pub(super) event_type: (u32, u32),
    /// Byte range of the second `:`-part (`event_subtype`) in `event_name`,
    /// without the white space around it, when that is not empty.
    pub(super) subtype: Option<(u32, u32)>,
    /// `created_at` as sent, in Unix seconds.
    pub created_at: f64,
    /// `created_at` in microseconds, rounded half up.
    pub created_micros: i64,
    /// Hash of the body ([`content_hash`]): equal for identical duplicates.
    pub content_hash: i64,
    /// Values of the typed columns, in [`TypedColumns`] order; empty when the
    /// schema has none.
    pub typed: Vec<Value>,
}

impl Event {
    /// `event_uuid` as sent.
    pub fn event_uuid(&self) -> &str {
        &self.text[..self.uuid_len as usize]
    }

    /// `event_name` as sent.
    pub fn event_name(&self) -> &str {
        &self.text[self.uuid_len as usize..(self.uuid_len + self.name_len) as usize]
    }

    /// The other members as one compact JSON object, `None` when there are none.
    pub fn payload(&self) -> Option<&str> {
        Some(&self.text[(self.uuid_len + self.name_len) as usize..]).filter(|p| !p.is_empty())
    }

    /// The first `:`-part of `event_name`, white space around it trimmed.
    pub fn event_type(&self) -> &str {
        let (start, end) = self.event_type;
        &self.event_name()[start as usize..end as usize]
    }

    /// The second `:`-part of `event_name`, white space around it trimmed,
    /// when that leaves something.
    pub fn event_subtype(&self) -> Option<&str> {
        self.subtype
            .map(|(start, end)| &self.event_name()[start as usize..end as usize])
    }

    /// Day of `created_datetime` since 1970-01-01 (the partition value).
    pub fn day(&self) -> i32 {
        crate::contract::partition_day(self.created_micros)
    }

    /// Rough bytes this event holds in memory, for flush thresholds.
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.text.len()
            + self.typed.iter().map(Value::heap_size).sum::<usize>()
    }
}

/// Limits a record is checked against, and the typed columns it fills.
#[derive(Debug, Clone, Default)]
pub struct DecodeLimits {
    /// Longest accepted record in bytes.
    pub max_record_size: usize,
    /// Ingestion time in Unix seconds: `created_at` may be at most a day later.
    pub now_seconds: f64,
    /// The typed columns of the events table.
    pub columns: TypedColumnsRef,
}

/// Decodes one record (a line without its newline).
pub fn decode(line: &[u8], limits: &DecodeLimits) -> Result<Event, Rejection> {
    decode_counting(line, limits, &mut Vec::new())
}

/// Decodes one record, pushing the index of every typed column whose value
/// did not fit (and stayed in `payload`) onto `mismatched`.
pub fn decode_counting(
    line: &[u8],
    limits: &DecodeLimits,
    mismatched: &mut Vec<usize>,
) -> Result<Event, Rejection> {
    let valid = parse(line, limits, mismatched)?;
    let mut text = String::with_capacity(
        valid.event_uuid.len() + valid.event_name.len() + valid.payload_capacity(),
    );
    text.push_str(&valid.event_uuid);
    text.push_str(&valid.event_name);
    let content_hash = valid.push_payload(&mut text);
    Ok(Event {
        key: valid.key(),
        uuid_len: valid.event_uuid.len() as u32,
        name_len: valid.event_name.len() as u32,
        text: text.into_boxed_str(),
        event_type: valid.event_type,
        subtype: valid.subtype,
        created_at: valid.created_at,
        created_micros: valid.created_micros,
        content_hash,
        typed: valid.typed,
    })
}

/// Parses and checks one record, pushing the index of every typed column
/// whose value did not fit onto `mismatched`: the parts of its row,
/// borrowed from `line`, for [`decode_counting`] or for writing straight
/// into columns ([`super::EventColumns::decode`]).
pub(super) fn parse<'a>(
    line: &'a [u8],
    limits: &DecodeLimits,
    mismatched: &mut Vec<usize>,
) -> Result<Valid<'a>, Rejection> {
    if line.len() > limits.max_record_size {
        return Err(too_large(line.len(), limits.max_record_size));
    }
    // Checked with SIMD; std finds the position for the message.
    let text = simdutf8::basic::from_utf8(line).map_err(|_| {
        let at = std::str::from_utf8(line)
            .err()
            .map_or(0, |e| e.valid_up_to());
        Rejection::new(
            RejectReason::InvalidJson,
            format!("not valid UTF-8 at byte {at}"),
        )
    })?;
    let members = match scan::members(text) {
        Some(members) => members,
        None => parse_members(text)?,
    };
    validate(text, members, limits, mismatched)
}

/// The members of `text` as serde_json reads them, or why it is not an
/// object: what [`scan::members`] leaves to it.
fn parse_members(text: &str) -> Result<Members<'_>, Rejection> {
    let mut de = serde_json::Deserializer::from_str(text);
    let members = match de.deserialize_any(TopLevel) {
        Ok(TopLevelValue::Object(members)) => members,
        Ok(TopLevelValue::Other(kind)) => {
            return Err(Rejection::new(
                RejectReason::NotObject,
                format!("expected a JSON object, found {kind}"),
            ));
        }
        Err(e) => return Err(invalid_json(&e)),
    };
    de.end().map_err(|e| invalid_json(&e))?;
    Ok(members)
}

/// The rejection for a record longer than the limit (also used by readers that
/// stop buffering an oversized line before it ends).
pub fn too_large(len: usize, limit: usize) -> Rejection {
    Rejection::new(
        RejectReason::TooLarge,
        format!("record is {len} bytes, over the limit of {limit} bytes"),
    )
}

fn invalid_json(e: &serde_json::Error) -> Rejection {
    Rejection::new(RejectReason::InvalidJson, format!("not valid JSON: {e}"))
}

/// The members of an object, in input order: each key, and its value's
/// raw text.
type Members<'a> = Vec<(Cow<'a, str>, &'a str)>;

/// A record that passed every check: the parts of its row, borrowed from
/// its line (a string with escapes is the one copy).
pub(super) struct Valid<'a> {
    /// The record's text, which the members borrow from.
    text: &'a str,
    members: Members<'a>,
    /// Members that are not one of the three common fields.
    payload_count: usize,
    /// `promoted[i]`: `members[i]` went into a typed column.
    promoted: Vec<bool>,
    pub event_uuid: Cow<'a, str>,
    pub event_name: Cow<'a, str>,
    /// Byte range of `event_type` in `event_name`.
    pub event_type: Range,
    /// Byte range of `event_subtype` in `event_name`, when there is one.
    pub subtype: Option<Range>,
    pub created_at: f64,
    pub created_micros: i64,
    /// Values of the typed columns, in [`TypedColumns`] order.
    pub typed: Vec<Value>,
}

impl Valid<'_> {
    /// Bytes [`push_payload`](Self::push_payload) appends at most.
    pub fn payload_capacity(&self) -> usize {
        self.members
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>()
    }

    /// The key index's key of `event_uuid` ([`crate::contract::event_key`]).
    pub fn key(&self) -> u128 {
        crate::contract::event_key(&self.event_uuid)
    }

    /// Appends the payload (the members that are not common fields and did
    /// not go into a typed column, as one compact JSON object; nothing when
    /// there are none) to `text`, and returns the content hash.
    pub fn push_payload(&self, text: &mut String) -> i64 {
        let head = text.len();
        // The hash covers the whole payload, promoted fields included, so a
        // duplicate is recognised whichever schema each copy was read under.
        if self.payload_count > 0 {
            push_payload(text, self.text, &self.members, &[]);
        }
        let full = Some(&text[head..]).filter(|p| !p.is_empty());
        let content_hash = content_hash(&self.event_name, self.created_at, full);
        match self.promoted.iter().filter(|p| **p).count() {
            0 => {}
            n if n == self.payload_count => text.truncate(head),
            _ => {
                text.truncate(head);
                push_payload(text, self.text, &self.members, &self.promoted);
            }
        }
        content_hash
    }
}

fn validate<'a>(
    text: &'a str,
    mut members: Members<'a>,
    limits: &DecodeLimits,
    mismatched: &mut Vec<usize>,
) -> Result<Valid<'a>, Rejection> {
    last_wins(&mut members);
    let mut uuid = None;
    let mut name = None;
    let mut created = None;
    let mut payload_count = 0;
    for (key, value) in &members {
        match key.as_ref() {
            "event_uuid" => uuid = Some(*value),
            "event_name" => name = Some(*value),
            "created_at" => created = Some(*value),
            _ => payload_count += 1,
        }
    }

    let event_uuid = match uuid.map(string_value) {
        None => {
            return Err(Rejection::new(
                RejectReason::BadEventUuid,
                "event_uuid is missing",
            ));
        }
        Some(Err(kind)) => {
            return Err(Rejection::new(
                RejectReason::BadEventUuid,
                format!("event_uuid must be a string, found {kind}"),
            ));
        }
        Some(Ok(s)) if s.is_empty() => {
            return Err(Rejection::new(
                RejectReason::BadEventUuid,
                "event_uuid is empty",
            ));
        }
        Some(Ok(s)) => s,
    };

    let event_name = match name.map(string_value) {
        None => {
            return Err(Rejection::new(
                RejectReason::BadEventName,
                "event_name is missing",
            ));
        }
        Some(Err(kind)) => {
            return Err(Rejection::new(
                RejectReason::BadEventName,
                format!("event_name must be a string, found {kind}"),
            ));
        }
        Some(Ok(s)) => s,
    };
    let (event_type, subtype) = name_parts(&event_name)?;
    let created_at = match created {
        None => {
            return Err(Rejection::new(
                RejectReason::BadCreatedAt,
                "created_at is missing",
            ));
        }
        Some(raw) => match number_value(raw) {
            Some(n) => n,
            None => {
                return Err(Rejection::new(
                    RejectReason::BadCreatedAt,
                    format!(
                        "created_at must be a JSON number of Unix seconds, found {}",
                        kind_of(raw)
                    ),
                ));
            }
        },
    };
    let latest = limits.now_seconds + MAX_FUTURE_SECONDS;
    if !(MIN_CREATED_AT..=latest).contains(&created_at) {
        // The digits as sent: a number beyond a double's precision or range
        // would otherwise show as other digits, or as `inf`.
        let sent = created.unwrap_or("");
        let shown: String = sent.chars().take(40).collect();
        let more = if shown.len() < sent.len() { "..." } else { "" };
        return Err(Rejection::new(
            RejectReason::CreatedAtOutOfRange,
            format!(
                "created_at {shown}{more} is outside [{MIN_CREATED_AT}, {latest}] \
                 (2000-01-01 to one day after ingestion)"
            ),
        ));
    }
    let created_micros = (created_at * 1_000_000.0 + 0.5).floor() as i64;

    let (typed, promoted) = promote(&members, &limits.columns, mismatched)?;
    Ok(Valid {
        text,
        members,
        payload_count,
        promoted,
        event_uuid,
        event_name,
        event_type,
        subtype,
        created_at,
        created_micros,
        typed,
    })
}

/// Keeps only the last occurrence of a key that occurs more than once, in
/// place, so that the common fields, the typed columns and `payload` all take
/// the value every mainstream JSON parser takes (RFC 8259 leaves it open).
fn last_wins(members: &mut Members<'_>) {
    if members.len() < 2 {
        return;
    }
    // One bit per key of a cheap signature: only a collision pays for
    // comparing the keys themselves. The signature mixes the length and
    // the first and last two bytes into 256 values: ten keys collide about
    // one time in six (at 64 values, every other time).
    let signature = |k: &str| {
        let b = k.as_bytes();
        let byte = |i: Option<usize>| u64::from(i.and_then(|i| b.get(i)).copied().unwrap_or(0));
        let n = b.len();
        let word = n as u64
            | byte(Some(0)) << 16
            | byte(Some(1)) << 24
            | byte(n.checked_sub(2)) << 32
            | byte(n.checked_sub(1)) << 40;
        (word.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
    };
    let mut seen = [0u64; 4];
    let mut collision = false;
    for (key, _) in members.iter() {
        let s = signature(key);
        let (word, bit) = (usize::from(s / 64), 1u64 << (s % 64));
        collision |= seen[word] & bit != 0;
        seen[word] |= bit;
    }
    if !collision {
        return;
    }
    // A collision is mostly false. Up to 64 members, compare only the keys
    // whose signatures match, with no allocation; past that, a hash set.
    let n = members.len();
    if n <= 64 {
        let mut signatures = [0u8; 64];
        for (s, (key, _)) in signatures.iter_mut().zip(members.iter()) {
            *s = signature(key);
        }
        // Bit i: member i is replaced by a later one with its key.
        let mut replaced = 0u64;
        for i in 0..n {
            if (i + 1..n).any(|j| signatures[i] == signatures[j] && members[i].0 == members[j].0) {
                replaced |= 1 << i;
            }
        }
        if replaced != 0 {
            let mut i = 0;
            members.retain(|_| {
                i += 1;
                replaced & (1 << (i - 1)) == 0
            });
        }
    } else {
        let mut kept: HashSet<&str, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(n, Default::default());
        let keep: Vec<bool> = (0..n)
            .rev()
            .map(|i| kept.insert(members[i].0.as_ref()))
            .collect();
        drop(kept);
        let mut flags = keep.into_iter().rev();
        members.retain(|_| flags.next().unwrap_or(true));
    }
}

/// The typed column values of a record, and which members went into them
/// (`promoted[i]` for `members[i]`). A value that does not fit stays in the
/// payload and is reported in `mismatched`, or rejects the record in strict
/// mode.
fn promote(
    members: &Members<'_>,
    columns: &TypedColumns,
    mismatched: &mut Vec<usize>,
) -> Result<(Vec<Value>, Vec<bool>), Rejection> {
    if columns.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut typed = vec![Value::Null; columns.len()];
    let mut promoted = vec![false; members.len()];
    for (i, (key, value)) in members.iter().enumerate() {
        let Some(c) = columns.index_of_name(key) else {
            continue;
        };
        let column = &columns.columns()[c];
        // The value was checked as JSON: this parse of its text succeeds.
        let raw = serde_json::from_str::<&RawValue>(value).ok();
        match raw.and_then(|raw| coerce(raw, &column.ty, false)) {
            Some(v) => {
                typed[c] = v;
                promoted[i] = true;
            }
            None if columns.strict => {
                let text = *value;
                let shown: String = text.chars().take(60).collect();
                let more = if shown.len() < text.len() { "..." } else { "" };
                return Err(Rejection::new(
                    RejectReason::TypeMismatch,
                    format!(
                        "{key} must be {} to fill its column, found {shown}{more}",
                        describe(&column.ty)
                    ),
                ));
            }
            None => mismatched.push(c),
        }
    }
    Ok((typed, promoted))
}

/// XXH3-64 of an event's body: `event_name`, the bits of `created_at` and the
/// compact `payload` text. Stable across versions and runs (it is stored in
/// `_content_hash`), so a duplicate arriving after a restart is still
/// recognised as identical or changed.
pub fn content_hash(event_name: &str, created_at: f64, payload: Option<&str>) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(event_name.as_bytes());
    h.update(&[0xff]);
    h.update(&created_at.to_bits().to_le_bytes());
    match payload {
        // 0xff never occurs in UTF-8, so the separators cannot be forged.
        Some(p) => {
            h.update(&[0xff, 1]);
            h.update(p.as_bytes());
        }
        None => h.update(&[0xff, 0]),
    }
    h.digest() as i64
}

/// Appends every non-common member to `out` as one compact JSON object,
/// leaving out `members[i]` where `skip[i]` (a `skip` shorter than
/// `members` skips nothing past its end). `text` is the record the members
/// borrow from: members that lie one after the other in it, as
/// `"key":value,"key":value` with nothing else between them, are copied in
/// one piece (a producer's payload usually is one such run).
fn push_payload(out: &mut String, text: &str, members: &Members<'_>, skip: &[bool]) {
    let start = out.len();
    out.push('{');
    let mut run: Option<std::ops::Range<usize>> = None;
    // A run starts at a key's `"` and ends with a value, both char
    // boundaries of `text` (see `member_span`).
    // Every member but the first follows a comma.
    let separate = |out: &mut String| {
        if out.len() > start + 1 {
            out.push(',');
        }
    };
    let push_run = |out: &mut String, run: std::ops::Range<usize>| {
        separate(out);
        out.push_str(&text[run]);
    };
    for (i, (key, value)) in members.iter().enumerate() {
        if matches!(key.as_ref(), "event_uuid" | "event_name" | "created_at")
            || skip.get(i).copied().unwrap_or(false)
        {
            continue;
        }
        // A key read from the input without escapes holds no `"`, `\` or
        // control character: its text is its literal.
        let span = match key {
            Cow::Borrowed(key) => member_span(text, key, value),
            Cow::Owned(_) => None,
        };
        match (span, &mut run) {
            // Joins the run when a comma alone lies between them.
            (Some(span), Some(run))
                if span.start == run.end + 1 && text.as_bytes()[run.end] == b',' =>
            {
                run.end = span.end
            }
            (span, _) => {
                if let Some(done) = run.take() {
                    push_run(out, done);
                }
                match span {
                    Some(span) => run = Some(span),
                    None => {
                        separate(out);
                        match key {
                            Cow::Borrowed(key) => {
                                out.push('"');
                                out.push_str(key);
                                out.push('"');
                            }
                            Cow::Owned(key) => push_json_string(out, key),
                        }
                        out.push(':');
                        push_compact(out, value);
                    }
                }
            }
        }
    }
    if let Some(done) = run {
        push_run(out, done);
    }
    out.push('}');
}

/// Where the member `"key":value` lies in `text`, when it is one compact
/// piece of it: `key` (read without escapes) and `value` borrowed from
/// `text`, a `:` right after the key's quote, and a compact value.
fn member_span(text: &str, key: &str, value: &str) -> Option<std::ops::Range<usize>> {
    // Offsets found from addresses: a member is borrowed from `text`, and
    // one that were not could not lie inside it.
    let at = |part: &str| (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize);
    let (key_at, value_at) = (at(key)?, at(value)?);
    let end = value_at + value.len();
    let b = text.as_bytes();
    let joined = end <= b.len()
        && value_at == key_at + key.len() + 2
        && key_at.checked_sub(1).and_then(|q| b.get(q)) == Some(&b'"')
        && b.get(value_at - 2..value_at) == Some(&b"\":"[..]);
    (is_compact(value) && joined).then(|| key_at - 1..end)
}

/// Writes `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Serializing a &str into a String cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// Whether a raw value has no white space outside its strings. Only an
/// array or an object can: a string, a number or a literal is one token.
fn is_compact(raw: &str) -> bool {
    // A fold, not `any`: without an early exit the check is vectorised.
    !raw.starts_with(['[', '{']) || !raw.bytes().fold(false, |white, b| white | is_white(b))
}

/// JSON's white space.
fn is_white(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Appends raw JSON text without the white space outside strings.
fn push_compact(out: &mut String, raw: &str) {
    if is_compact(raw) {
        out.push_str(raw);
        return;
    }
    // Bytes, not chars: white space, `"` and `\` are ASCII, and no byte of
    // a multi-byte char is. The text between two dropped bytes is copied
    // in one piece.
    let mut kept = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, b) in raw.bytes().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if is_white(b) {
            out.push_str(&raw[kept..i]);
            kept = i + 1;
        }
    }
    out.push_str(&raw[kept..]);
}

/// A raw value as a string, or the kind of value it is instead.
fn string_value(text: &str) -> Result<Cow<'_, str>, &'static str> {
    if text.starts_with('"') {
        // The raw text is a validated JSON string: without a `\` its
        // content is its value, and with one this parse succeeds.
        match memchr::memchr(b'\\', text.as_bytes()) {
            None => Ok(Cow::Borrowed(&text[1..text.len() - 1])),
            Some(_) => serde_json::from_str::<Cow<'_, str>>(text).map_err(|_| "a malformed string"),
        }
    } else {
        Err(kind_of(text))
    }
}

/// A raw value as a number, when it is one. A number beyond a double's range
/// (`1e400`) is an infinity, which every range check refuses.
fn number_value(text: &str) -> Option<f64> {
    match text.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => text.parse::<f64>().ok(),
        _ => None,
    }
}

/// The byte ranges of `event_type` and `event_subtype` in `event_name`: its
/// first and second `:`-parts with the white space around them trimmed (a
/// subtype that trims to nothing is none). `event_type` is a partition value,
/// so it must not be empty, must hold no control character and must be at
/// most [`MAX_EVENT_TYPE_BYTES`] long.
fn name_parts(event_name: &str) -> Result<(Range, Option<Range>), Rejection> {
    let first_end = event_name.find(':').unwrap_or(event_name.len());
    let first = &event_name[..first_end];
    if let Some(c) = first.chars().find(|c| c.is_control()) {
        return Err(Rejection::new(
            RejectReason::BadEventName,
            format!(
                "event_name {event_name:?}: its first part (event_type) holds the control \
                 character U+{:04X}, which no partition value may hold",
                u32::from(c)
            ),
        ));
    }
    let event_type = trimmed_range(event_name, 0, first_end);
    let type_len = (event_type.1 - event_type.0) as usize;
    if type_len == 0 {
        return Err(Rejection::new(
            RejectReason::BadEventName,
            format!("event_name {event_name:?} has an empty first part (event_type)"),
        ));
    }
    if type_len > MAX_EVENT_TYPE_BYTES {
        let shown: String = event_name.chars().take(80).collect();
        let more = if shown.len() < event_name.len() {
            "..."
        } else {
            ""
        };
        return Err(Rejection::new(
            RejectReason::BadEventName,
            format!(
                "event_name {shown:?}{more}: its first part (event_type) is {type_len} bytes, \
                 over the limit of {MAX_EVENT_TYPE_BYTES} bytes for a partition value"
            ),
        ));
    }
    let subtype = (first_end < event_name.len())
        .then(|| {
            let start = first_end + 1;
            let end = event_name[start..]
                .find(':')
                .map_or(event_name.len(), |i| start + i);
            trimmed_range(event_name, start, end)
        })
        .filter(|(start, end)| start < end);
    Ok((event_type, subtype))
}

/// A byte range `start..end` of `event_name`.
pub(super) type Range = (u32, u32);

/// The range `start..end` of `s` without the white space at either end.
fn trimmed_range(s: &str, start: usize, end: usize) -> Range {
    let part = &s[start..end];
    let lead = part.len() - part.trim_start().len();
    let trimmed = part.trim();
    ((start + lead) as u32, (start + lead + trimmed.len()) as u32)
}

fn kind_of(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// The top level of a record: an object's members, or the kind of value found.
enum TopLevelValue<'a> {
    Object(Members<'a>),
    Other(&'static str),
}

struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = TopLevelValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            members.push((key.0, value.get()));
        }
        Ok(TopLevelValue::Object(members))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Consume the elements so the parser validates the whole array.
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(TopLevelValue::Other("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(TopLevelValue::Other("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(TopLevelValue::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(TopLevelValue::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(TopLevelValue::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(TopLevelValue::Other("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TopLevelValue::Other("null"))
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

mod scan;
#[cfg(test)]
mod tests;
