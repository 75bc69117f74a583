//! JSON text written straight into the line buffer: the event envelope, the
//! payload and its values, UUIDs and numbers, all formatted from integers
//! (no float printing) so the bytes are the same on every machine.

use super::pools::{DOMAINS, Kind, NAMES, SPECIAL, SURNAMES, WORDS};
use super::rng::Rng;
use super::vocab::EventDef;

/// Writes `{` and the envelope members in their fixed order; `None` omits one
/// (bad lines). At least one is always present, so the payload's leading
/// comma is right.
pub(super) fn open_event(
    line: &mut Vec<u8>,
    uuid: Option<&[u8]>,
    name: Option<&[u8]>,
    ts: Option<&[u8]>,
) {
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
pub(super) fn write_payload(line: &mut Vec<u8>, rng: &mut Rng, def: &EventDef) {
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
pub(super) fn uuid_v4(rng: &mut Rng) -> [u8; 38] {
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

pub(super) fn push_u64(line: &mut Vec<u8>, n: u64) {
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

pub(super) fn push_i64(line: &mut Vec<u8>, n: i64) {
    if n < 0 {
        line.push(b'-');
    }
    push_u64(line, n.unsigned_abs());
}

/// `n` in decimal, zero-padded to `width` digits.
pub(super) fn push_padded(line: &mut Vec<u8>, n: u64, width: usize) {
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
