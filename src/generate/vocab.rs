//! The shared vocabulary: the 100 event names, each with its fixed payload
//! schema, and their Zipf weights. Drawn from a fixed seed, so every file
//! has the same names whatever its own seed.

use super::pools::{FIELDS, Kind, OBJECTS, TYPES, VERBS};
use super::rng::Rng;

/// Number of distinct event names.
pub(super) const NAME_COUNT: usize = 100;
/// Seed of the vocabulary, fixed so every file shares the same names. Picked
/// among small seeds because it gives ~380-byte lines at the default rates
/// (the benchmark's 1M events ≈ 380 MB); changing it changes every file.
const VOCAB_SEED: u64 = 39;

/// One event name with its fixed payload schema.
pub(super) struct EventDef {
    /// The name as a JSON string literal, quotes included.
    pub(super) name_json: Vec<u8>,
    /// Fields in output order; field 0 is the `<type>_id` key and is never
    /// omitted, so payloads always carry 64 random bits (see `changed_duplicate`).
    pub(super) fields: Vec<(Vec<u8>, Kind)>,
}

/// The shared vocabulary: names, schemas and Zipf weights (s = 1, so the
/// first name is exactly 100× as frequent as the last; integer weights keep
/// sampling identical on every platform, which `powf` would not guarantee).
pub(super) struct Vocab {
    pub(super) events: Vec<EventDef>,
    cumulative: Vec<u64>,
}

impl Vocab {
    pub(super) fn new() -> Self {
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
    pub(super) fn pick(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let x = rng.below(total);
        // x < total == the last entry, so the index is always < len.
        self.cumulative.partition_point(|&c| c <= x)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::generate::GenerateOptions;
    use crate::generate::tests::{envelope, lines, opts, run, valid_name};

    #[test]
    fn vocabulary_is_fixed_and_skewed() {
        let v = Vocab::new();
        let names: HashSet<String> = v
            .events
            .iter()
            .map(|e| {
                String::from_utf8(e.name_json[1..e.name_json.len() - 1].to_vec()).expect("utf8")
            })
            .collect();
        assert!((80..=120).contains(&names.len()));
        assert!(names.iter().all(|n| valid_name(n)));
        let types: HashSet<&str> = names.iter().filter_map(|n| n.split(':').next()).collect();
        assert!((10..=14).contains(&types.len()), "{types:?}");
        for parts in 1..=3 {
            assert!(names.iter().any(|n| n.split(':').count() == parts));
        }
        assert!(v.events.iter().all(|e| (3..=12).contains(&e.fields.len())));
        let first = v.cumulative[0];
        let last = v.cumulative[NAME_COUNT - 1] - v.cumulative[NAME_COUNT - 2];
        assert_eq!(first / last, 100);
        // Independent of the seed: two files share their names.
        let names_of = |seed| {
            let (out, _) = run(&GenerateOptions {
                bad_rate: 0.0,
                ..opts(30_000, seed)
            });
            lines(&out)
                .into_iter()
                .map(|l| envelope(l).1)
                .collect::<HashSet<_>>()
        };
        let a = names_of(1);
        assert_eq!(a, names_of(2));
        assert_eq!(a, names);
    }
}
