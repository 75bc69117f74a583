//! The SQLite catalog: one row per table in `iceberg_tables`, the layout shared
//! by PyIceberg's `SqlCatalog` and Java's `JdbcCatalog` (schema V1, with the
//! `iceberg_type` column), so Spark, PyIceberg and Floe open the same file.
//!
//! The compare-and-swap is a single `UPDATE ... WHERE metadata_location = <old>`:
//! SQLite runs it atomically, and one changed row means this writer won.
//!
//! Another process holding a write transaction makes a statement wait (about
//! twenty minutes at most); the wait is logged after a second and every ten
//! seconds after that, so a stuck lock holder is visible, not a silent stall.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// How long a statement waits in all for another process's lock before
/// failing. Commits hold the lock for microseconds; readers such as Spark may
/// hold a read lock for a scan, so allow a generous wait: this is what a 30 s
/// busy timeout, retried 40 times with 5, 10, 15... ms pauses, amounted to.
const LOCK_PATIENCE: Duration = Duration::from_secs(41 * 30 + 5);
/// How long SQLite itself waits for a lock before handing BUSY back to
/// [`SqlCatalog::with_conn`], which logs the wait and tries again: short, so
/// that a long wait is reported while it lasts.
const BUSY_SLICE: Duration = Duration::from_millis(250);
/// How long a wait goes unreported (a busy writer's commits take moments).
const FIRST_WAIT_REPORT: Duration = Duration::from_secs(1);
/// How often a longer wait is reported again.
const WAIT_REPORT_EVERY: Duration = Duration::from_secs(10);

/// A catalog stored in an SQLite file. Its calls block (a write lock held by
/// another process is waited for, up to a minute): call them from a blocking
/// thread, as [`Catalog`](super::Catalog) does.
#[derive(Clone)]
pub struct SqlCatalog {
    /// Catalog name: rows of other catalogs in the same file are invisible.
    name: String,
    /// Path of the database file, for error messages.
    path: PathBuf,
    /// rusqlite connections are not `Sync`; every call is short, so a mutex
    /// is enough. Shared: a clone of the catalog is the same connection (the
    /// async [`Catalog`](super::Catalog) hands one to a blocking thread per call).
    conn: Arc<Mutex<Connection>>,
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
        conn.busy_timeout(BUSY_SLICE).map_err(err)?;
        let catalog = Self {
            name: name.to_string(),
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
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
        let started = Instant::now();
        let mut last_report = None;
        let mut attempt: u64 = 0;
        loop {
            let error = match f(&conn) {
                Ok(v) => {
                    if last_report.is_some() {
                        tracing::info!(
                            catalog = %self.path.display(),
                            waited_seconds = started.elapsed().as_secs(),
                            "got the lock of the catalog database: going on"
                        );
                    }
                    return Ok(v);
                }
                Err(source) => CatalogError::Sql {
                    path: self.path.clone(),
                    source,
                },
            };
            let waited = started.elapsed();
            if !error.is_retryable() || waited >= LOCK_PATIENCE {
                return Err(error);
            }
            if wait_report_due(waited, last_report) {
                if last_report.is_none() {
                    tracing::warn!(
                        catalog = %self.path.display(),
                        "another process holds a write lock on the catalog database: waiting for it"
                    );
                } else {
                    tracing::warn!(
                        catalog = %self.path.display(),
                        waited_seconds = waited.as_secs(),
                        patience_seconds = LOCK_PATIENCE.as_secs(),
                        "still waiting for another process's write lock on the catalog database"
                    );
                }
                last_report = Some(waited);
            }
            // SQLite waits out an ordinary lock for BUSY_SLICE, but returns
            // BUSY at once where waiting could deadlock (two connections
            // upgrading to write): back off a little before trying again.
            attempt += 1;
            std::thread::sleep(Duration::from_millis(5 * attempt.min(20)));
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

/// Whether a lock wait of `waited` so far should be logged, the last report
/// having been at `last_report` (`None`: not yet reported).
fn wait_report_due(waited: Duration, last_report: Option<Duration>) -> bool {
    match last_report {
        None => waited >= FIRST_WAIT_REPORT,
        Some(last) => waited >= last + WAIT_REPORT_EVERY,
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

    #[test]
    fn lock_waits_are_reported_after_a_second_then_every_ten() {
        let s = Duration::from_secs_f64;
        for (waited, last, due) in [
            (s(0.3), None, false),
            (s(0.99), None, false),
            (s(1.0), None, true),
            (s(4.0), None, true),
            (s(5.0), Some(s(1.1)), false),
            (s(11.0), Some(s(1.1)), false),
            (s(11.1), Some(s(1.1)), true),
            (s(30.0), Some(s(21.2)), false),
        ] {
            assert_eq!(
                wait_report_due(waited, last),
                due,
                "{waited:?} after {last:?}"
            );
        }
    }

    /// A writer for captured log lines.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_lock_held_elsewhere_is_waited_for_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let catalog = SqlCatalog::open(&path, "floe").unwrap();
        let (locked, is_locked) = std::sync::mpsc::channel();
        let holder = std::thread::spawn({
            let path = path.clone();
            move || {
                let other = Connection::open(&path).unwrap();
                other.execute_batch("BEGIN IMMEDIATE").unwrap();
                locked.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(1500));
                other.execute_batch("COMMIT").unwrap();
            }
        });
        is_locked.recv().unwrap();

        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .finish();
        let t = TableName::parse("analytics.events").unwrap();
        let started = Instant::now();
        let outcome =
            tracing::subscriber::with_default(subscriber, || catalog.create(&t, "m0")).unwrap();
        holder.join().unwrap();

        assert_eq!(outcome, SwapOutcome::Swapped);
        assert!(started.elapsed() >= Duration::from_millis(1400));
        assert_eq!(catalog.load(&t).unwrap().as_deref(), Some("m0"));
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 2, "{logs}");
        assert!(
            lines[0].contains("WARN")
                && lines[0].contains("another process holds a write lock")
                && lines[0].contains(&path.display().to_string()),
            "{logs}"
        );
        assert!(
            lines[1].contains("INFO") && lines[1].contains("got the lock"),
            "{logs}"
        );
    }
}
