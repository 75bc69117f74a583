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
//! open the same file. In production it is [`GlueCatalog`], the AWS Glue data
//! catalog Athena reads.

mod glue;
mod sql;

pub use glue::GlueCatalog;
pub use sql::SqlCatalog;

use std::path::PathBuf;

use iceberg::spec::TableMetadata;

/// The catalog a warehouse uses.
pub enum Catalog {
    /// SQLite file (embedded).
    Sql(SqlCatalog),
    /// AWS Glue.
    Glue(GlueCatalog),
}

impl Catalog {
    /// Opens (creating if absent) the SQLite catalog at `path`, on a
    /// blocking thread: opening may wait for another process's write lock.
    pub async fn open_sql(path: PathBuf, name: String) -> Result<Self, CatalogError> {
        crate::blocking::run(move || SqlCatalog::open(&path, &name))
            .await
            .map(Catalog::Sql)
    }

    /// Creates the namespace if absent.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), CatalogError> {
        match self {
            Catalog::Sql(c) => {
                let namespace = namespace.to_string();
                on_blocking_thread(c, move |c| c.ensure_namespace(&namespace)).await
            }
            Catalog::Glue(c) => c.ensure_namespace(namespace).await,
        }
    }

    /// The current metadata location of a table, or `None` when it does not exist.
    pub async fn load(&self, table: &TableName) -> Result<Option<String>, CatalogError> {
        match self {
            Catalog::Sql(c) => {
                let table = table.clone();
                on_blocking_thread(c, move |c| c.load(&table)).await
            }
            Catalog::Glue(c) => c.load(table).await,
        }
    }

    /// Registers a new table at `metadata_location` (whose content is
    /// `metadata`); `Conflict` when a writer created it first.
    pub async fn create(
        &self,
        table: &TableName,
        metadata_location: &str,
        metadata: &TableMetadata,
    ) -> Result<SwapOutcome, CatalogError> {
        match self {
            Catalog::Sql(c) => {
                let (table, location) = (table.clone(), metadata_location.to_string());
                on_blocking_thread(c, move |c| c.create(&table, &location)).await
            }
            Catalog::Glue(c) => c.create(table, metadata_location, metadata).await,
        }
    }

    /// Points the table at `new` (whose content is `metadata`) only if it
    /// still points at `expected`.
    pub async fn swap(
        &self,
        table: &TableName,
        expected: &str,
        new: &str,
        metadata: &TableMetadata,
    ) -> Result<SwapOutcome, CatalogError> {
        match self {
            Catalog::Sql(c) => {
                let (table, expected, new) = (table.clone(), expected.to_string(), new.to_string());
                on_blocking_thread(c, move |c| c.swap(&table, &expected, &new)).await
            }
            Catalog::Glue(c) => c.swap(table, expected, new, metadata).await,
        }
    }
}

/// Runs a call of the SQLite catalog on tokio's blocking pool: it may wait
/// seconds for another process's write lock, which must not hold up an async
/// worker (and the stages it runs) meanwhile.
async fn on_blocking_thread<T: Send + 'static>(
    catalog: &SqlCatalog,
    call: impl FnOnce(&SqlCatalog) -> Result<T, CatalogError> + Send + 'static,
) -> Result<T, CatalogError> {
    let catalog = catalog.clone();
    crate::blocking::run(move || call(&catalog)).await
}

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
    /// A Glue call failed.
    #[error("Glue {operation} {target}: {message}")]
    Glue {
        /// The operation (`GetTable`, `UpdateTable`...).
        operation: String,
        /// The database or table.
        target: String,
        /// The service's answer.
        message: String,
        /// Whether trying again can succeed (throttling, network).
        retryable: bool,
    },
    /// The Glue table exists but is not an Iceberg table.
    #[error("table {table} exists in Glue but is not an Iceberg table (no table_type=ICEBERG)")]
    NotIceberg {
        /// The table.
        table: TableName,
    },
    /// The process is shutting down: the call was not made.
    #[error("the catalog call was not made: the process is shutting down")]
    ShuttingDown,
    /// The table row holds no metadata location (created by another tool and
    /// never committed, or a view).
    #[error("table {table} in the catalog has no metadata location")]
    NoMetadataLocation {
        /// The table.
        table: TableName,
    },
}

impl From<crate::blocking::ShutDown> for CatalogError {
    fn from(_: crate::blocking::ShutDown) -> Self {
        CatalogError::ShuttingDown
    }
}

impl CatalogError {
    /// Whether trying the same call again can succeed (a locked database).
    pub fn is_retryable(&self) -> bool {
        match self {
            CatalogError::Sql { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            CatalogError::Glue { retryable, .. } => *retryable,
            CatalogError::NoMetadataLocation { .. }
            | CatalogError::NotIceberg { .. }
            | CatalogError::ShuttingDown => false,
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

    /// A catalog call waiting for another process's write lock leaves the
    /// runtime free: on a one-thread runtime, the task that makes the other
    /// process let go runs while the swap waits, and the swap lands. Were the
    /// call made inline, it would hold the only thread until its patience ran
    /// out, and the lock would never be released in time.
    #[tokio::test(flavor = "current_thread")]
    async fn a_lock_wait_does_not_hold_up_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let catalog = Catalog::open_sql(path.clone(), "floe".into())
            .await
            .unwrap();
        let table = TableName::parse("analytics.events").unwrap();
        let metadata = iceberg::spec::TableMetadataBuilder::new(
            iceberg::spec::Schema::builder().build().unwrap(),
            iceberg::spec::PartitionSpec::unpartition_spec().into_unbound(),
            iceberg::spec::SortOrder::unsorted_order(),
            dir.path().display().to_string(),
            iceberg::spec::FormatVersion::V2,
            Default::default(),
        )
        .unwrap()
        .build()
        .unwrap()
        .metadata;
        assert_eq!(
            catalog.create(&table, "m0", &metadata).await.unwrap(),
            SwapOutcome::Swapped
        );

        let (locked, is_locked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let other = rusqlite::Connection::open(&path).unwrap();
            other.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked.send(()).unwrap();
            released.recv().unwrap();
            other.execute_batch("COMMIT").unwrap();
        });
        is_locked.recv().unwrap();
        let catalog = std::sync::Arc::new(catalog);
        let swap = tokio::spawn({
            let catalog = catalog.clone();
            async move { catalog.swap(&table, "m0", "m1", &metadata).await }
        });
        tokio::task::yield_now().await; // the swap task starts and waits for the lock
        release.send(()).unwrap();
        assert_eq!(swap.await.unwrap().unwrap(), SwapOutcome::Swapped);
        holder.join().unwrap();
        let table = TableName::parse("analytics.events").unwrap();
        assert_eq!(catalog.load(&table).await.unwrap().as_deref(), Some("m1"));
    }

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
