//! The fast path of a record's parse: the members of a JSON object found
//! in one pass over its bytes, each value checked as serde_json checks a
//! value it skips (`ignore_value`), without building anything.
//!
//! It answers only for the common shape, a valid object whose keys hold no
//! escape and whose values nest at most [`MAX_DEPTH`] deep; for anything
//! else it answers `None`, and the caller asks serde_json, which decides and
//! names the error. So a record it cannot read costs a second parse, and
//! what it accepts is exactly what serde_json accepts (a differential test
//! holds it to that).

use std::borrow::Cow;

use super::Members;

/// Deepest nesting of arrays and objects in a value the scan follows (one
/// bit each in a `u64`).
const MAX_DEPTH: u32 = 64;

/// The members of `text`, in input order, when it is a valid JSON object
/// of the common shape; `None` otherwise (see the module's doc).
pub(super) fn members(text: &str) -> Option<Members<'_>> {
    let b = text.as_bytes();
    let mut members = Members::with_capacity(16);
    let mut i = white(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = white(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (white(b, i + 1) == b.len()).then_some(members);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i + 1, false)?;
        let key = text.get(i + 1..key_end)?;
        i = white(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = white(b, i + 1);
        let end = value_end(b, i)?;
        members.push((Cow::Borrowed(key), text.get(i..end)?));
        i = white(b, end);
        match b.get(i) {
            Some(b',') => i = white(b, i + 1),
            Some(b'}') => return (white(b, i + 1) == b.len()).then_some(members),
            _ => return None,
        }
    }
}

/// The index after JSON white space from `i` on.
fn white(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| super::is_white(c)) {
        i += 1;
    }
    i
}

/// The index of the `"` closing a string whose text starts at `i`:
/// escapes checked as serde_json checks a skipped string (a `\u` takes
/// four hex digits, whatever they code), a control character refused.
/// With `escapes` false, any escape is `None` (a key with one is left to
/// serde_json, which decodes it).
fn string_end(b: &[u8], mut i: usize, escapes: bool) -> Option<usize> {
    loop {
        i = next_special(b, i)?;
        match b[i] {
            b'"' => return Some(i),
            b'\\' if escapes => {}
            // A control character, or an escape in a key.
            _ => return None,
        }
        match *b.get(i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
            b'u' => {
                let hex = b.get(i + 2..i + 6)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                i += 6;
            }
            _ => return None,
        }
    }
}

/// Eight copies of a byte.
const fn splat(byte: u8) -> u64 {
    0x0101_0101_0101_0101 * byte as u64
}

/// The high bit of each byte of `word` (little-endian) that is `"`, `\`
/// or a control character (below 0x20). The lowest bit set marks the first
/// such byte exactly; a bit above it may be set wrongly (a borrow carried
/// from it), which no caller looks at.
fn special_bytes(word: u64) -> u64 {
    let zero_at = |v: u64| v.wrapping_sub(splat(1)) & !v;
    let quote = zero_at(word ^ splat(b'"'));
    let backslash = zero_at(word ^ splat(b'\\'));
    let control = word.wrapping_sub(splat(0x20)) & !word;
    (quote | backslash | control) & splat(0x80)
}

/// The index of the first `"`, `\` or control character from `i` on,
/// eight bytes at a time: strings are mostly short, and this costs no
/// call and no set-up, where a SIMD search pays both for every string.
fn next_special(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(word) = b.get(i..i + 8) {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let found = special_bytes(word);
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let at = b
        .get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    Some(i + at)
}

/// The index after the literal `word` at `i`.
fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// The index after the digits from `i` on.
fn digits(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// The index after the number at `i`: `-`, then `0` or a digit 1-9 and
/// more digits, then `.` and digits, then `e` or `E`, a sign and digits.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match *b.get(i)? {
        b'0' if matches!(b.get(i + 1), Some(b'0'..=b'9')) => return None,
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i + 1),
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        let after = digits(b, i + 1);
        if after == i + 1 {
            return None;
        }
        i = after;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let after = digits(b, i);
        if after == i {
            return None;
        }
        i = after;
    }
    Some(i)
}

/// The index of the value after a nested object's key at `i`: the key,
/// white space, `:`, white space.
fn after_key(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = white(b, string_end(b, i + 1, true)? + 1);
    (b.get(i) == Some(&b':')).then(|| white(b, i + 1))
}

/// The index after the value that starts at `i`.
fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    // One bit per open array (0) or object (1), the innermost lowest.
    let mut open: u64 = 0;
    let mut depth = 0;
    loop {
        // A value starts at `i`.
        match *b.get(i)? {
            b'"' => i = string_end(b, i + 1, true)? + 1,
            c @ (b'{' | b'[') => {
                if depth == MAX_DEPTH {
                    return None;
                }
                let object = c == b'{';
                i = white(b, i + 1);
                let close = if object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    i += 1;
                } else {
                    open = open << 1 | u64::from(object);
                    depth += 1;
                    if object {
                        i = after_key(b, i)?;
                    }
                    continue;
                }
            }
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number_end(b, i)?,
            _ => return None,
        }
        // A value ended at `i`: close what it ends, or go on after a comma.
        loop {
            if depth == 0 {
                return Some(i);
            }
            let object = open & 1 == 1;
            i = white(b, i);
            match *b.get(i)? {
                b',' => {
                    i = white(b, i + 1);
                    if object {
                        i = after_key(b, i)?;
                    }
                    break;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            i += 1;
            open >>= 1;
            depth -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every position of every kind of special byte, in texts of every
    /// length around the eight-byte steps, among bytes that are not
    /// special but border them (space, `!`, `#`, `[`, `]`, DEL, high bytes).
    #[test]
    fn the_first_quote_backslash_or_control_character_is_found() {
        let filler = [b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xc3, 0xff];
        for len in 0..40 {
            let plain: Vec<u8> = (0..len).map(|i| filler[i % filler.len()]).collect();
            for from in 0..=len {
                assert_eq!(next_special(&plain, from), None, "{plain:?} from {from}");
            }
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, b'\n', 0x1f] {
                    let mut text = plain.clone();
                    text[at] = special;
                    // A later special byte never hides the first.
                    if at + 3 < len {
                        text[at + 3] = 0x01;
                    }
                    for from in 0..=at {
                        assert_eq!(next_special(&text, from), Some(at), "{text:?} from {from}");
                    }
                }
            }
        }
    }
}
