//! Units: byte sizes (`128MiB`) and durations (`60s`, via humantime) read into
//! settings with their minimums, and the size and zstd checks that `run` and
//! `maintain` share.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::defaults;

/// The data file size to aim for (`run` and `maintain`): at least 1 KiB.
pub fn target_file_size_setting(problems: &mut Vec<String>, value: Option<String>) -> NonZeroUsize {
    size_setting(
        problems,
        "target_file_size",
        value,
        defaults::TARGET_FILE_SIZE,
        1024,
    )
}

/// Checks a zstd level (`run` and `maintain`): 1 to 22.
pub fn check_zstd_level(problems: &mut Vec<String>, level: i32) {
    if !(1..=22).contains(&level) {
        problems.push(format!("zstd_level: {level} is not between 1 and 22"));
    }
}

pub(super) fn size_setting(
    problems: &mut Vec<String>,
    key: &str,
    value: Option<String>,
    default: &str,
    min: usize,
) -> NonZeroUsize {
    let text = value.as_deref().unwrap_or(default);
    match parse_size(text) {
        Ok(n) if n >= min => NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN),
        Ok(_) => {
            problems.push(format!("{key}: must be at least {min} byte(s)"));
            NonZeroUsize::MIN
        }
        Err(e) => {
            problems.push(format!("{key}: {e}"));
            NonZeroUsize::MIN
        }
    }
}

pub(super) fn duration_setting(
    problems: &mut Vec<String>,
    key: &str,
    value: Option<String>,
    default: &str,
    (min, min_text): (Duration, &str),
    example: &str,
) -> Duration {
    match humantime::parse_duration(value.as_deref().unwrap_or(default)) {
        Ok(d) if d >= min => d,
        Ok(_) => {
            problems.push(format!("{key}: must be at least {min_text}"));
            min
        }
        Err(e) => {
            problems.push(format!("{key}: {e} (write e.g. {example})"));
            min
        }
    }
}

/// Parses a byte size: `4096`, `64KiB`, `128MiB`, `1GiB`, `10MB`, `1.5GiB`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit_bytes: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (write e.g. `128MiB`)"))?;
    let bytes = value * unit_bytes;
    if bytes > (1u64 << 48) as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(bytes as usize)
}
