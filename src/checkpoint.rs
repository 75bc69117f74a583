//! Checkpoints: how far each source has been committed.
//!
//! A checkpoint maps a source key (a file's identity, later a Kinesis shard) to
//! the position after the last record committed. It is written in the same
//! commit as the data: in full as a table property (which survives snapshot
//! expiry) and, for the sources the commit advanced, in the snapshot summary.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Table property holding the full checkpoint.
pub const CHECKPOINT_PROPERTY: &str = "floe.checkpoint";
/// Snapshot summary key holding the positions a commit advanced.
pub const CHECKPOINT_SUMMARY_KEY: &str = "floe.checkpoint";

/// The position after the last committed record of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SourcePosition {
    /// The objects matching one `s3://` input pattern, read in key order.
    ///
    /// First, because the enum is untagged: serde tries the variants in
    /// order, and [`FilePosition`] ignores fields it does not know, so an
    /// object's position tried as a file's would pass as one. An object's
    /// position has required fields (`key`, `etag`) that no file or shard
    /// position has, and refuses unknown ones, so neither of those reads as
    /// one.
    Object(ObjectPosition),
    /// A file (or stdin): bytes and lines consumed.
    File(FilePosition),
    /// A Kinesis shard: the last sequence number consumed.
    Shard(ShardPosition),
}

/// Where a file stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Byte offset in the (decompressed) source just after the last committed record.
    pub offset: u64,
    /// Number of lines consumed up to `offset`.
    pub line: u64,
    /// XXH3-64 of the `offset` bytes before the position: a resume checks
    /// that the input still starts with exactly what was committed, so a file
    /// rewritten in place is refused instead of read from a wrong offset.
    /// `None` in checkpoints written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u64>,
}

/// Where the objects of one `s3://` input pattern stand: every matching
/// key below `key` is done, and `key` is done up to `offset` (or to its
/// end, with `done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectPosition {
    /// The object's key in its bucket.
    pub key: String,
    /// Its ETag when it was read (quotes included, as S3 gives it): a
    /// resume refuses an object that changed since.
    pub etag: String,
    /// Byte offset in the (decompressed) object after the last committed record.
    pub offset: u64,
    /// Lines consumed up to `offset`.
    pub line: u64,
    /// The object was read to its end: the next run lists the keys after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

/// Where a Kinesis shard stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardPosition {
    /// Sequence number of the last record consumed (none yet: `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
    /// The shard is closed and every record of it was consumed: its
    /// children may start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
}

impl SourcePosition {
    /// The checkpoint entry this position stands for: a shard read from its
    /// very start has none.
    pub fn as_committed(&self) -> Option<SourcePosition> {
        match self {
            SourcePosition::Shard(ShardPosition {
                seq: None,
                end: false,
            }) => None,
            p => Some(p.clone()),
        }
    }

    /// Whether `self` is further into the same source than `other`.
    pub fn is_after(&self, other: &SourcePosition) -> bool {
        match (self, other) {
            (SourcePosition::File(a), SourcePosition::File(b)) => a.offset > b.offset,
            // Keys are read in ascending order; `done` moves past the
            // object's last byte as a shard's `end` moves past its last record.
            (SourcePosition::Object(a), SourcePosition::Object(b)) => {
                (a.key.as_str(), a.offset, a.done) > (b.key.as_str(), b.offset, b.done)
            }
            (SourcePosition::Shard(a), SourcePosition::Shard(b)) => {
                match sequence_cmp(a.seq.as_deref(), b.seq.as_deref()) {
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Equal => a.end && !b.end,
                    std::cmp::Ordering::Less => false,
                }
            }
            // A source cannot change kind; a different kind is never "after".
            _ => false,
        }
    }

    /// The file position, if this is a file's.
    pub fn file(&self) -> Option<FilePosition> {
        match self {
            SourcePosition::File(p) => Some(*p),
            SourcePosition::Shard(_) | SourcePosition::Object(_) => None,
        }
    }

    /// The objects' position, if this is an `s3://` input's.
    pub fn object(&self) -> Option<&ObjectPosition> {
        match self {
            SourcePosition::Object(p) => Some(p),
            SourcePosition::File(_) | SourcePosition::Shard(_) => None,
        }
    }

    /// For messages: `byte 10 (line 2)` or `sequence number 4960...`.
    pub fn describe(&self) -> String {
        match self {
            SourcePosition::File(p) => format!("byte {} (line {})", p.offset, p.line),
            SourcePosition::Object(p) if p.done => format!("object {} (read to its end)", p.key),
            SourcePosition::Object(p) => {
                format!("object {} byte {} (line {})", p.key, p.offset, p.line)
            }
            SourcePosition::Shard(p) => {
                let seq = p.seq.as_deref().map_or_else(
                    || "the start".to_string(),
                    |s| format!("sequence number {s}"),
                );
                if p.end {
                    format!("{seq}, shard ended")
                } else {
                    seq
                }
            }
        }
    }
}

/// Orders Kinesis sequence numbers: decimal strings that grow within a shard
/// (longer is larger; equal lengths compare digit by digit). `None` (nothing
/// consumed) comes first.
pub fn sequence_cmp(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

/// Committed positions per source key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Codec version, so a later layout can still read this one.
    #[serde(rename = "v")]
    version: u32,
    /// Position per source key.
    pub sources: BTreeMap<String, SourcePosition>,
}

/// A stored checkpoint that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint `{text}` cannot be read: {reason}")]
pub struct CheckpointError {
    /// The stored text (shortened).
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

impl Checkpoint {
    const VERSION: u32 = 1;

    /// An empty checkpoint.
    pub fn new() -> Self {
        Self {
            version: Self::VERSION,
            sources: BTreeMap::new(),
        }
    }

    /// Encodes as compact JSON.
    pub fn encode(&self) -> String {
        // Serializing maps of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes what [`encode`](Self::encode) wrote.
    pub fn decode(text: &str) -> Result<Self, CheckpointError> {
        let err = |reason: String| CheckpointError {
            text: text.chars().take(200).collect(),
            reason,
        };
        let checkpoint: Checkpoint = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        if checkpoint.version != Self::VERSION {
            return Err(err(format!(
                "version {} is not supported (this Floe reads version {})",
                checkpoint.version,
                Self::VERSION
            )));
        }
        Ok(checkpoint)
    }

    /// The checkpoint stored in a table's properties (empty when none).
    pub fn from_properties(properties: &HashMap<String, String>) -> Result<Self, CheckpointError> {
        properties
            .get(CHECKPOINT_PROPERTY)
            .map_or_else(|| Ok(Self::new()), |text| Self::decode(text))
    }

    /// The position of one source.
    pub fn get(&self, key: &str) -> Option<&SourcePosition> {
        self.sources.get(key)
    }

    /// Sets the position of one source.
    pub fn set(&mut self, key: &str, position: SourcePosition) {
        self.sources.insert(key.to_string(), position);
    }

    /// Whether there is no position at all.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Overlays `other`'s positions on this checkpoint.
    pub fn merge(&mut self, other: &Checkpoint) {
        for (key, position) in &other.sources {
            self.sources.insert(key.clone(), position.clone());
        }
    }
}

/// The checkpoint key of a Kinesis shard.
pub fn kinesis_source_key(stream_name: &str, consumer: &str, shard_id: &str) -> String {
    format!("kinesis:{stream_name}:{consumer}:{shard_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_read_from_its_start_has_no_checkpoint_entry() {
        let at = |seq: Option<&str>, end| {
            SourcePosition::Shard(ShardPosition {
                seq: seq.map(str::to_string),
                end,
            })
        };
        assert_eq!(at(None, false).as_committed(), None);
        assert_eq!(at(None, true).as_committed(), Some(at(None, true)));
        assert_eq!(
            at(Some("5"), false).as_committed(),
            Some(at(Some("5"), false))
        );
    }

    #[test]
    fn round_trips_and_merges() {
        let mut a = Checkpoint::new();
        assert_eq!(a.encode(), r#"{"v":1,"sources":{}}"#);
        a.set(
            "file:a.jsonl#1",
            SourcePosition::File(FilePosition {
                offset: 10,
                line: 2,
                prefix: None,
            }),
        );
        let text = a.encode();
        assert_eq!(
            text, r#"{"v":1,"sources":{"file:a.jsonl#1":{"offset":10,"line":2}}}"#,
            "a position without a prefix hash reads as one written before it existed"
        );
        assert_eq!(Checkpoint::decode(&text).unwrap(), a);
        let hashed = SourcePosition::File(FilePosition {
            offset: 10,
            line: 2,
            prefix: Some(u64::MAX),
        });
        let text = serde_json::to_string(&hashed).unwrap();
        assert_eq!(
            text,
            r#"{"offset":10,"line":2,"prefix":18446744073709551615}"#
        );
        assert_eq!(
            serde_json::from_str::<SourcePosition>(&text).unwrap(),
            hashed
        );

        let mut b = Checkpoint::new();
        b.set(
            "file:a.jsonl#1",
            SourcePosition::File(FilePosition {
                offset: 20,
                line: 4,
                prefix: None,
            }),
        );
        b.set(
            "kinesis:s:floe:shardId-000000000001",
            SourcePosition::Shard(ShardPosition {
                seq: Some("49590338271490256608559692538361571095921575989136588898".into()),
                end: true,
            }),
        );
        a.merge(&b);
        assert_eq!(a, b);
        let text = b.encode();
        assert!(
            text.contains(r#""kinesis:s:floe:shardId-000000000001":{"seq":"4959"#),
            "{text}"
        );
        assert_eq!(Checkpoint::decode(&text).unwrap(), b);
    }

    #[test]
    fn sequence_numbers_order_as_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(sequence_cmp(Some("9"), Some("10")), Less);
        assert_eq!(sequence_cmp(Some("10"), Some("10")), Equal);
        assert_eq!(sequence_cmp(Some("11"), Some("10")), Greater);
        assert_eq!(sequence_cmp(None, Some("0")), Less);
        assert_eq!(sequence_cmp(None, None), Equal);
        let at = |seq: &str, end| {
            SourcePosition::Shard(ShardPosition {
                seq: Some(seq.into()),
                end,
            })
        };
        assert!(at("10", false).is_after(&at("9", false)));
        assert!(at("10", true).is_after(&at("10", false)));
        assert!(!at("10", false).is_after(&at("10", false)));
        assert!(!at("9", true).is_after(&at("10", false)));
    }

    fn object(key: &str, offset: u64, done: bool) -> SourcePosition {
        SourcePosition::Object(ObjectPosition {
            key: key.into(),
            etag: "\"e\"".into(),
            offset,
            line: offset / 10,
            done,
        })
    }

    #[test]
    fn object_positions_round_trip_and_old_positions_read_as_before() {
        let done = object("p/a.json.gz", 120, true);
        let text = serde_json::to_string(&done).unwrap();
        assert_eq!(
            text,
            r#"{"key":"p/a.json.gz","etag":"\"e\"","offset":120,"line":12,"done":true}"#
        );
        assert_eq!(serde_json::from_str::<SourcePosition>(&text).unwrap(), done);
        let partway = object("p/b.jsonl", 30, false);
        let text = serde_json::to_string(&partway).unwrap();
        assert!(!text.contains("done"), "{text}");
        assert_eq!(
            serde_json::from_str::<SourcePosition>(&text).unwrap(),
            partway
        );

        // Checkpoints written before objects existed read exactly as then.
        let old = r#"{"v":1,"sources":{"file:/a.jsonl#1":{"offset":10,"line":2,"prefix":7},"file:/b.jsonl#2":{"offset":3,"line":1},"kinesis:s:floe:shardId-1":{"seq":"49","end":true},"kinesis:s:floe:shardId-2":{"end":true}}}"#;
        let decoded = Checkpoint::decode(old).unwrap();
        let file = |offset, line, prefix| {
            SourcePosition::File(FilePosition {
                offset,
                line,
                prefix,
            })
        };
        let shard = |seq: Option<&str>| {
            SourcePosition::Shard(ShardPosition {
                seq: seq.map(str::to_string),
                end: true,
            })
        };
        let want = BTreeMap::from([
            ("file:/a.jsonl#1".to_string(), file(10, 2, Some(7))),
            ("file:/b.jsonl#2".to_string(), file(3, 1, None)),
            ("kinesis:s:floe:shardId-1".to_string(), shard(Some("49"))),
            ("kinesis:s:floe:shardId-2".to_string(), shard(None)),
        ]);
        assert_eq!(decoded.sources, want);
        assert_eq!(decoded.encode(), old);

        // An object's position with a field this Floe does not know (from a
        // later version) is not an object's here: it reads as a file's,
        // which the object source refuses rather than start over.
        let unknown = r#"{"key":"k","etag":"e","offset":1,"line":1,"extra":1}"#;
        let read = serde_json::from_str::<SourcePosition>(unknown).unwrap();
        assert_eq!(read.object(), None);
    }

    #[test]
    fn object_positions_order_by_key_then_offset_then_done() {
        assert!(object("a", 10, false).is_after(&object("a", 5, false)));
        assert!(object("a", 10, true).is_after(&object("a", 10, false)));
        assert!(object("b", 0, false).is_after(&object("a", 99, true)));
        assert!(!object("a", 10, false).is_after(&object("a", 10, false)));
        assert!(!object("a", 99, true).is_after(&object("b", 0, false)));
        assert!(!object("a", 1, false).is_after(&SourcePosition::File(FilePosition::default())));
        assert_eq!(
            object("p/a", 20, false).describe(),
            "object p/a byte 20 (line 2)"
        );
        assert_eq!(
            object("p/a", 20, true).describe(),
            "object p/a (read to its end)"
        );
    }

    #[test]
    fn unreadable_checkpoints_say_why() {
        let cases = [
            ("not json", "expected ident"),
            (r#"{"v":2,"sources":{}}"#, "version 2 is not supported"),
            (r#"{"v":1}"#, "missing field `sources`"),
        ];
        for (text, part) in cases {
            let e = Checkpoint::decode(text).unwrap_err().to_string();
            assert!(e.contains(part), "{text}: {e}");
        }
        let props = HashMap::from([(CHECKPOINT_PROPERTY.to_string(), "{}".to_string())]);
        assert!(Checkpoint::from_properties(&props).is_err());
        assert!(
            Checkpoint::from_properties(&HashMap::new())
                .unwrap()
                .is_empty()
        );
    }
}
