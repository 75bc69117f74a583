//! Listing the files under a table's location, on the local file system or
//! in an S3 bucket, with their size and age: what orphan removal compares
//! with the files metadata references.

use std::time::SystemTime;

use crate::table::TableError;

/// A file found under a table's location.
#[derive(Debug, Clone)]
pub struct ListedFile {
    /// Its full URI, as metadata names it (`file:///...`, `s3://...`).
    pub uri: String,
    /// Bytes.
    pub size: u64,
    /// Last modified.
    pub modified: SystemTime,
}

/// Lists the files of a warehouse (local folder or S3 bucket).
pub struct FileLister {
    operator: opendal::Operator,
    /// What turns an operator path into a URI: `file:///` or `s3://bucket/`.
    uri_root: String,
}

impl FileLister {
    /// A lister over the local file system.
    pub fn local() -> Result<Self, TableError> {
        let operator = opendal::Operator::new(opendal::services::Fs::default().root("/"))
            .map_err(listing_err)?
            .finish();
        Ok(Self {
            operator,
            uri_root: "file:///".into(),
        })
    }

    /// A lister over an S3 bucket through `operator`.
    pub fn s3(operator: opendal::Operator, bucket: &str) -> Self {
        Self {
            operator,
            uri_root: format!("s3://{bucket}/"),
        }
    }

    /// Every file under `uri` (a folder URI this lister serves).
    pub async fn list(&self, uri: &str) -> Result<Vec<ListedFile>, TableError> {
        let Some(relative) = uri.strip_prefix(&self.uri_root) else {
            return Err(listing_err(format!(
                "{uri} is not under {}, which this warehouse lists",
                self.uri_root
            )));
        };
        let folder = format!("{}/", relative.trim_end_matches('/'));
        let entries = self
            .operator
            .list_with(&folder)
            .recursive(true)
            .await
            .map_err(listing_err)?;
        let mut out = Vec::new();
        for entry in entries {
            if !entry.metadata().is_file() {
                continue;
            }
            let path = entry.path().to_string();
            let metadata = match entry.metadata().last_modified() {
                Some(_) => entry.metadata().clone(),
                None => self.operator.stat(&path).await.map_err(listing_err)?,
            };
            out.push(ListedFile {
                uri: format!("{}{path}", self.uri_root),
                size: metadata.content_length(),
                modified: metadata
                    .last_modified()
                    .map_or(SystemTime::UNIX_EPOCH, SystemTime::from),
            });
        }
        Ok(out)
    }
}

fn listing_err(e: impl std::fmt::Display) -> TableError {
    TableError::Iceberg(iceberg::Error::new(
        iceberg::ErrorKind::Unexpected,
        format!("listing files: {e}"),
    ))
}
