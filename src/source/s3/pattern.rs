//! `s3://bucket/pattern` inputs: the bucket, the glob over keys and the
//! literal head the listing starts from. Pure: no I/O.

use crate::source::SourceError;

/// The scheme that makes an input an object pattern.
pub const SCHEME: &str = "s3://";

/// Whether an input names objects (`s3://...`) rather than files.
pub fn is_object_input(input: &str) -> bool {
    input.starts_with(SCHEME)
}

/// One `--input s3://bucket/pattern`.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Input {
    /// As given: the checkpoint key and the name in messages.
    pub uri: String,
    /// The bucket.
    pub bucket: String,
    /// Where the listing starts: the pattern's literal head.
    pub list_prefix: String,
    /// The keys to read.
    pub pattern: glob::Pattern,
}

/// How keys are matched: `*` and `?` do not cross `/`, `**` does.
const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl S3Input {
    /// Parses `s3://bucket/pattern` (no I/O).
    pub fn parse(uri: &str) -> Result<Self, SourceError> {
        let bad = |message: &str| SourceError::BadPattern {
            pattern: uri.to_string(),
            message: message.to_string(),
        };
        let rest = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("not an s3:// address"))?;
        let (bucket, key_pattern) = rest.split_once('/').ok_or_else(|| {
            bad("give a key or a pattern after the bucket (s3://bucket/prefix/*.json.gz)")
        })?;
        if bucket.is_empty() {
            return Err(bad("no bucket name"));
        }
        if key_pattern.is_empty() {
            return Err(bad(
                "give a key or a pattern after the bucket (s3://bucket/prefix/*.json.gz)",
            ));
        }
        if key_pattern.starts_with('/') || key_pattern.contains("//") {
            return Err(bad("keys with empty path segments (`//`) cannot be read"));
        }
        let pattern = glob::Pattern::new(key_pattern).map_err(|e| bad(&e.to_string()))?;
        let literal = key_pattern
            .find(['*', '?', '['])
            .map_or(key_pattern, |i| &key_pattern[..i]);
        Ok(S3Input {
            uri: uri.to_string(),
            bucket: bucket.to_string(),
            list_prefix: literal.to_string(),
            pattern,
        })
    }

    /// Whether `key` is one of this input's objects.
    pub fn matches(&self, key: &str) -> bool {
        self.pattern.matches_with(key, MATCH)
    }

    /// The address of one of its objects, for people (`_source_id`).
    pub fn object_uri(&self, key: &str) -> String {
        format!("{SCHEME}{}/{key}", self.bucket)
    }
}
