//! The SQLite catalog: one row per table in `iceberg_tables`, the layout shared
//! by PyIceberg's `SqlCatalog` and Java's `JdbcCatalog` (schema V1, with the
//! `iceberg_type` column), so Spark, PyIceberg and Floe open the same file.
//!
//! The compare-and-swap is a single `UPDATE ... WHERE metadata_location = <old>`:
//! SQLite runs it atomically, and one changed row means this writer won.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{CatalogError, SwapOutcome, TableName};

/// DDL identical in columns and keys to PyIceberg's and Java's JDBC catalog.
const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000),
    previous_metadata_location VARCHAR(1000),
    iceberg_type VARCHAR(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name)
);
CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    property_key VARCHAR(255) NOT NULL,
    property_value VARCHAR(1000) NOT NULL,
    PRIMARY KEY (catalog_name, namespace, property_key)
);";

/// How long a statement waits for another process's lock before failing.
/// Commits hold the lock for microseconds; readers such as Spark may hold a
/// read lock for a scan, so allow a generous wait.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a statement SQLite refused with BUSY without waiting.
const BUSY_RETRIES: u32 = 40;

/// A catalog stored in an SQLite file.
pub struct SqlCatalog {
    /// Catalog name: rows of other catalogs in the same file are invisible.
    name: String,
    /// Path of the database file, for error messages.
    path: PathBuf,
    /// rusqlite connections are not `Sync`; every call is short, so a mutex
    /// is enough.
    conn: Mutex<Connection>,
}

impl SqlCatalog {
    /// Opens (creating if absent) the catalog file, in WAL mode so that readers
    /// never block the writer.
    pub fn open(path: &Path, name: &str) -> Result<Self, CatalogError> {
        let err = |source| CatalogError::Sql {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let catalog = Self {
            name: name.to_string(),
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        // Switching to WAL and creating the tables race with other processes
        // opening the same new file; SQLite answers such races with BUSY
        // without waiting, so `with_conn` retries them.
        catalog.with_conn(|c| {
            // `journal_mode` returns a row; query it rather than execute.
            c.query_row("PRAGMA journal_mode=WAL", [], |row| row.get::<_, String>(0))?;
            c.execute_batch(CREATE_TABLES)
        })?;
        Ok(catalog)
    }

    /// The catalog's name (the `catalog_name` column).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn with_conn<T>(
        &self,
        f: impl Fn(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, CatalogError> {
        // A poisoned lock only means another thread panicked mid-call; the
        // connection itself is still usable, and SQLite keeps the data consistent.
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut attempt = 0;
        loop {
            match f(&conn) {
                Ok(v) => return Ok(v),
                Err(source) => {
                    let error = CatalogError::Sql {
                        path: self.path.clone(),
                        source,
                    };
                    // The busy timeout covers ordinary lock waits; SQLite
                    // returns BUSY at once where waiting could deadlock (two
                    // connections upgrading to write), so back off and retry.
                    if !error.is_retryable() || attempt == BUSY_RETRIES {
                        return Err(error);
                    }
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
                }
            }
        }
    }

    /// Creates the namespace if absent (PyIceberg marks a namespace by an
    /// `exists` property).
    pub fn ensure_namespace(&self, namespace: &str) -> Result<(), CatalogError> {
        self.with_conn(|c| {
            c.execute(
                "INSERT OR IGNORE INTO iceberg_namespace_properties \
                 (catalog_name, namespace, property_key, property_value) VALUES (?1, ?2, 'exists', 'true')",
                params![self.name, namespace],
            )
            .map(|_| ())
        })
    }

    /// The current metadata location of a table, or `None` when it does not exist.
    pub fn load(&self, table: &TableName) -> Result<Option<String>, CatalogError> {
        let row: Option<Option<String>> = self.with_conn(|c| {
            c.query_row(
                "SELECT metadata_location FROM iceberg_tables \
                 WHERE catalog_name = ?1 AND table_namespace = ?2 AND table_name = ?3",
                params![self.name, table.namespace, table.name],
                |row| row.get(0),
            )
            .optional()
        })?;
        match row {
            None => Ok(None),
            Some(Some(location)) => Ok(Some(location)),
            Some(None) => Err(CatalogError::NoMetadataLocation {
                table: table.clone(),
            }),
        }
    }

    /// Registers a new table; `Conflict` when a writer created it first.
    pub fn create(
        &self,
        table: &TableName,
        metadata_location: &str,
    ) -> Result<SwapOutcome, CatalogError> {
        let inserted = self.with_conn(|c| {
            c.execute(
                "INSERT OR IGNORE INTO iceberg_tables \
                 (catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location, iceberg_type) \
                 VALUES (?1, ?2, ?3, ?4, NULL, 'TABLE')",
                params![self.name, table.namespace, table.name, metadata_location],
            )
        })?;
        Ok(if inserted == 1 {
            SwapOutcome::Swapped
        } else {
            SwapOutcome::Conflict
        })
    }

    /// Points the table at `new` only if it still points at `expected`.
    pub fn swap(
        &self,
        table: &TableName,
        expected: &str,
        new: &str,
    ) -> Result<SwapOutcome, CatalogError> {
        let updated = self.with_conn(|c| {
            c.execute(
                "UPDATE iceberg_tables SET metadata_location = ?1, previous_metadata_location = ?2 \
                 WHERE catalog_name = ?3 AND table_namespace = ?4 AND table_name = ?5 \
                 AND metadata_location = ?2 AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
                params![new, expected, self.name, table.namespace, table.name],
            )
        })?;
        Ok(if updated == 1 {
            SwapOutcome::Swapped
        } else {
            SwapOutcome::Conflict
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_succeeds_only_from_the_current_location() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqlCatalog::open(&dir.path().join("catalog.db"), "floe").unwrap();
        let t = TableName::parse("analytics.events").unwrap();
        assert_eq!(catalog.load(&t).unwrap(), None);
        assert_eq!(catalog.create(&t, "m0").unwrap(), SwapOutcome::Swapped);
        assert_eq!(catalog.create(&t, "other").unwrap(), SwapOutcome::Conflict);
        assert_eq!(catalog.swap(&t, "m0", "m1").unwrap(), SwapOutcome::Swapped);
        assert_eq!(catalog.swap(&t, "m0", "m2").unwrap(), SwapOutcome::Conflict);
        assert_eq!(catalog.load(&t).unwrap().as_deref(), Some("m1"));

        // Another catalog name in the same file sees none of it.
        let other = SqlCatalog::open(&dir.path().join("catalog.db"), "other").unwrap();
        assert_eq!(other.load(&t).unwrap(), None);
    }
}
