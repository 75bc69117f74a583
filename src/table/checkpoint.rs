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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Byte offset in the (decompressed) source just after the last committed record.
    pub offset: u64,
    /// Number of lines consumed up to `offset`.
    pub line: u64,
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
    pub fn get(&self, key: &str) -> Option<SourcePosition> {
        self.sources.get(key).copied()
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
            self.sources.insert(key.clone(), *position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_merges() {
        let mut a = Checkpoint::new();
        assert_eq!(a.encode(), r#"{"v":1,"sources":{}}"#);
        a.set(
            "file:a.jsonl#1",
            SourcePosition {
                offset: 10,
                line: 2,
            },
        );
        let text = a.encode();
        assert_eq!(
            text,
            r#"{"v":1,"sources":{"file:a.jsonl#1":{"offset":10,"line":2}}}"#
        );
        assert_eq!(Checkpoint::decode(&text).unwrap(), a);

        let mut b = Checkpoint::new();
        b.set(
            "file:a.jsonl#1",
            SourcePosition {
                offset: 20,
                line: 4,
            },
        );
        b.set("file:b.jsonl#2", SourcePosition { offset: 5, line: 1 });
        a.merge(&b);
        assert_eq!(a, b);
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
