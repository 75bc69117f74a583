//! Orphan removal ([`remove_orphans`]): the files under a table's location
//! that no metadata references, deleted once older than the safety age.

use std::collections::HashSet;
use std::time::SystemTime;

use super::MaintainSettings;
use super::lister::FileLister;
use super::referenced::referenced_files;
use crate::table::{LoadedTable, TableError, TableStore};

/// What an orphan removal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Files found under the table's location.
    pub files_listed: usize,
    /// Unreferenced ones deleted.
    pub orphans_deleted: usize,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Unreferenced ones left because they are younger than the safety age.
    pub too_young: usize,
}

/// A URI without its `file:` scheme and slashes (`file:/a`, `file:///a`
/// and `/a` name the same local file), so spellings compare equal.
fn path_key(uri: &str) -> &str {
    match uri.strip_prefix("file:") {
        Some(rest) => rest.trim_start_matches('/'),
        None if uri.starts_with('/') => uri.trim_start_matches('/'),
        None => uri,
    }
}

/// Deletes files under the table's location that nothing references and
/// that are older than the safety age.
pub async fn remove_orphans(
    store: &TableStore,
    lister: &FileLister,
    table: &LoadedTable,
    settings: &MaintainSettings,
    now: SystemTime,
) -> Result<OrphanReport, TableError> {
    let mut referenced = referenced_files(store, table, &mut HashSet::new()).await?;
    referenced.insert(table.metadata_location.clone());
    let listed = lister.list(table.location()).await?;
    let mut report = OrphanReport {
        files_listed: listed.len(),
        ..OrphanReport::default()
    };
    let referenced: HashSet<&str> = referenced.iter().map(|u| path_key(u)).collect();
    for file in listed {
        if referenced.contains(path_key(&file.uri)) {
            continue;
        }
        let age = now.duration_since(file.modified).unwrap_or_default();
        if age < settings.orphan_older_than {
            report.too_young += 1;
            continue;
        }
        store.file_io().delete(&file.uri).await?;
        report.orphans_deleted += 1;
        report.bytes_deleted += file.size;
    }
    tracing::info!(
        table = %table.name,
        listed = report.files_listed,
        deleted = report.orphans_deleted,
        bytes = report.bytes_deleted,
        too_young = report.too_young,
        "removed orphan files"
    );
    Ok(report)
}
