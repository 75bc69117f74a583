//! Catalog pointers: where a table's current metadata file is, and the one
//! atomic operation every table change ends with, the compare-and-swap of that
//! pointer.
//!
//! A catalog here knows nothing of snapshots or manifests: it stores
//! `(namespace, table) -> metadata_location` and swaps it only when the caller's
//! idea of the current location is still true. The snapshot producer in
//! [`crate::table::commit`] builds the new metadata file; this module makes it
//! current or reports that someone else won the race.
//!
//! The embedded default is [`SqlCatalog`] on SQLite, with the same tables as
//! PyIceberg's `SqlCatalog` and Java's `JdbcCatalog` (schema V1), so those tools
//! open the same file.

mod sql;

pub use sql::SqlCatalog;

use std::path::PathBuf;

/// A table's name inside a catalog: one namespace level and a table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    /// Namespace (database), e.g. `analytics`.
    pub namespace: String,
    /// Table name, e.g. `events`.
    pub name: String,
}

impl TableName {
    /// Parses `namespace.table`; both parts non-empty, identifier characters only.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (namespace, name) = text
            .split_once('.')
            .ok_or_else(|| format!("table name `{text}` must look like `namespace.table`"))?;
        let valid =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid(namespace) || !valid(name) {
            return Err(format!(
                "table name `{text}` must be `namespace.table` with letters, digits and `_` only"
            ));
        }
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// What can go wrong talking to a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The SQLite database could not be opened or queried.
    #[error("catalog database {path}")]
    Sql {
        /// The catalog file.
        path: PathBuf,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The table row holds no metadata location (created by another tool and
    /// never committed, or a view).
    #[error("table {table} in the catalog has no metadata location")]
    NoMetadataLocation {
        /// The table.
        table: TableName,
    },
}

impl CatalogError {
    /// Whether trying the same call again can succeed (a locked database).
    pub fn is_retryable(&self) -> bool {
        match self {
            CatalogError::Sql { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            CatalogError::NoMetadataLocation { .. } => false,
        }
    }
}

/// Outcome of a compare-and-swap of a table pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapOutcome {
    /// The pointer now names the new metadata file.
    Swapped,
    /// The pointer had moved on (another writer committed first); nothing changed.
    Conflict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_parse_or_say_why() {
        let cases = [
            ("analytics.events", Ok(("analytics", "events"))),
            ("a_1.b_2", Ok(("a_1", "b_2"))),
            ("events", Err("must look like `namespace.table`")),
            (".events", Err("letters, digits")),
            ("a.b.c", Err("letters, digits")),
            ("a.b-c", Err("letters, digits")),
        ];
        for (text, want) in cases {
            match (TableName::parse(text), want) {
                (Ok(t), Ok((ns, name))) => {
                    assert_eq!((t.namespace.as_str(), t.name.as_str()), (ns, name));
                    assert_eq!(t.to_string(), text);
                }
                (Err(e), Err(part)) => assert!(e.contains(part), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
