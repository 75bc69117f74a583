//! The manifests a commit writes and carries over: one for the new files,
//! the parent's without removed files, and small ones merged.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use iceberg::spec::{
    DataFile, ManifestContentType, ManifestEntryRef, ManifestFile, ManifestWriter,
    ManifestWriterBuilder,
};
use uuid::Uuid;

use super::{MANIFEST_READS_IN_FLIGHT, paths};
use crate::table::TableError;
use crate::table::manifests::{MergePolicy, plan_merge};
use crate::table::store::{LoadedTable, TableStore};

impl TableStore {
    /// A writer of a new v2 manifest of `content` for the commit of
    /// `snapshot_id`, under the table's `metadata/`.
    pub(in crate::table) fn manifest_writer(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        spec: iceberg::spec::PartitionSpec,
        content: ManifestContentType,
    ) -> Result<ManifestWriter, TableError> {
        let suffix = match content {
            ManifestContentType::Data => "m0",
            ManifestContentType::Deletes => "d0",
        };
        let path = format!(
            "{}/metadata/{}-{suffix}.avro",
            table.location(),
            Uuid::new_v4()
        );
        let builder = ManifestWriterBuilder::new(
            self.file_io.new_output(path)?,
            Some(snapshot_id),
            table.metadata.current_schema().clone(),
            spec,
        );
        Ok(match content {
            ManifestContentType::Data => builder.build_v2_data(),
            ManifestContentType::Deletes => builder.build_v2_deletes(),
        })
    }

    /// A manifest adding `files`: data files, or delete files when `deletes`.
    pub(in crate::table) async fn write_manifest(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        files: &[DataFile],
        deletes: bool,
    ) -> Result<Option<ManifestFile>, TableError> {
        if files.is_empty() {
            return Ok(None);
        }
        let content = if deletes {
            ManifestContentType::Deletes
        } else {
            ManifestContentType::Data
        };
        let spec = table.metadata.default_partition_spec().as_ref().clone();
        let mut writer = self.manifest_writer(table, snapshot_id, spec, content)?;
        for file in files {
            // A negative sequence number leaves it unset: the entry inherits the
            // snapshot's sequence number, whichever attempt lands.
            writer.add_file(file.clone(), -1)?;
        }
        Ok(Some(writer.write_manifest_file().await?))
    }

    /// `manifests` with `removed` marked deleted: each manifest holding one
    /// of them is rewritten (its other live entries kept as existing, with
    /// their sequence numbers; entries deleted by earlier snapshots dropped),
    /// every other manifest is reused as is.
    pub(in crate::table) async fn without_files(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        manifests: Vec<ManifestFile>,
        removed: &[DataFile],
        reuse: &mut Reuse,
    ) -> Result<Vec<ManifestFile>, TableError> {
        reuse.removing(removed);
        let wanted: HashSet<&str> = removed.iter().map(DataFile::file_path).collect();
        let mut found: HashSet<String> = HashSet::new();
        let mut out = Vec::with_capacity(manifests.len());
        for manifest_file in manifests {
            if !reuse.removal.contains_key(&manifest_file.manifest_path) {
                let rewrite = self
                    .mark_removed(table, snapshot_id, &manifest_file, &wanted)
                    .await?;
                reuse
                    .removal
                    .insert(manifest_file.manifest_path.clone(), rewrite);
            }
            match &reuse.removal[&manifest_file.manifest_path] {
                Some((rewritten, held)) => {
                    found.extend(held.iter().cloned());
                    out.push(rewritten.clone());
                }
                None => out.push(manifest_file),
            }
        }
        if found.len() < wanted.len() {
            let gone: Vec<&str> = wanted
                .iter()
                .filter(|p| !found.contains(**p))
                .copied()
                .collect();
            return Err(TableError::Stale {
                table: table.name.clone(),
                reason: format!(
                    "{} file(s) this commit removes are no longer in the table (e.g. {}): \
                     another writer rewrote them first",
                    gone.len(),
                    gone[0]
                ),
            });
        }
        Ok(out)
    }

    /// `manifest_file` rewritten with the `wanted` files it holds marked
    /// deleted, and which those are; `None` when it holds none.
    async fn mark_removed(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        manifest_file: &ManifestFile,
        wanted: &HashSet<&str>,
    ) -> Result<Option<(ManifestFile, Vec<String>)>, TableError> {
        let manifest = manifest_file.load_manifest(&self.file_io).await?;
        let alive = || manifest.entries().iter().filter(|e| e.is_alive());
        if !alive().any(|e| wanted.contains(e.file_path())) {
            return Ok(None);
        }
        let mut writer = self.manifest_writer(
            table,
            snapshot_id,
            spec_of(table, manifest_file)?,
            manifest_file.content,
        )?;
        let mut held = Vec::new();
        for entry in alive() {
            if wanted.contains(entry.file_path()) {
                held.push(entry.file_path().to_string());
                let (sequence, file_sequence) = sequence_numbers(entry, manifest_file);
                writer.add_delete_file(entry.data_file().clone(), sequence, file_sequence)?;
            } else {
                carry_existing(&mut writer, entry, manifest_file)?;
            }
        }
        Ok(Some((writer.write_manifest_file().await?, held)))
    }

    /// `manifests` with the bins [`plan_merge`] picks merged: each bin
    /// becomes one manifest whose live entries keep their numbers and the
    /// snapshot that added them (status `EXISTING`); `DELETED` entries go.
    pub(in crate::table) async fn merge_small(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        manifests: Vec<ManifestFile>,
        reuse: &mut Reuse,
    ) -> Result<Vec<ManifestFile>, TableError> {
        let bins = plan_merge(&manifests, MergePolicy::of(table.metadata.properties()));
        if bins.is_empty() {
            return Ok(manifests);
        }
        let mut merged: HashMap<usize, ManifestFile> = HashMap::new();
        let mut taken = HashSet::new();
        for bin in &bins {
            taken.extend(bin.iter().copied());
            let key: Vec<String> = bin
                .iter()
                .map(|&i| manifests[i].manifest_path.clone())
                .collect();
            if let Some(done) = reuse.merged.get(&key) {
                merged.insert(bin[0], done.clone());
                continue;
            }
            let first = &manifests[bin[0]];
            let mut writer =
                self.manifest_writer(table, snapshot_id, spec_of(table, first)?, first.content)?;
            // Read a few at a time: on S3 each is a round trip.
            let loaded: Vec<_> = futures::stream::iter(bin.iter().map(|&i| {
                let manifest_file = &manifests[i];
                async move {
                    let manifest = manifest_file.load_manifest(&self.file_io).await?;
                    Ok::<_, TableError>((manifest_file, manifest))
                }
            }))
            .buffered(MANIFEST_READS_IN_FLIGHT)
            .try_collect()
            .await?;
            for (manifest_file, manifest) in &loaded {
                for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                    carry_existing(&mut writer, entry, manifest_file)?;
                }
            }
            let done = writer.write_manifest_file().await?;
            reuse.merged.insert(key, done.clone());
            merged.insert(bin[0], done);
        }
        Ok(manifests
            .into_iter()
            .enumerate()
            .filter_map(|(i, m)| match merged.remove(&i) {
                Some(merged) => Some(merged),
                None if taken.contains(&i) => None,
                None => Some(m),
            })
            .collect())
    }
}

/// The partition spec a manifest's entries were written with.
pub(super) fn spec_of(
    table: &LoadedTable,
    manifest: &ManifestFile,
) -> Result<iceberg::spec::PartitionSpec, TableError> {
    table
        .metadata
        .partition_spec_by_id(manifest.partition_spec_id)
        .map(|spec| spec.as_ref().clone())
        .ok_or_else(|| TableError::Incompatible {
            table: table.name.clone(),
            message: format!(
                "manifest {} names partition spec {}, which the table lacks",
                manifest.manifest_path, manifest.partition_spec_id
            ),
        })
}

/// An entry's data and file sequence numbers, the inherited ones filled in.
fn sequence_numbers(entry: &ManifestEntryRef, manifest: &ManifestFile) -> (i64, Option<i64>) {
    // Loaded entries carry their inherited numbers.
    let sequence = entry.sequence_number().unwrap_or(manifest.sequence_number);
    (sequence, entry.file_sequence_number.or(Some(sequence)))
}

/// Writes a live entry of `manifest` into a new manifest as `EXISTING`, with
/// its sequence numbers and the snapshot that added it.
pub(super) fn carry_existing(
    writer: &mut ManifestWriter,
    entry: &ManifestEntryRef,
    manifest: &ManifestFile,
) -> Result<(), TableError> {
    let (sequence, file_sequence) = sequence_numbers(entry, manifest);
    let added_by = entry.snapshot_id().unwrap_or(manifest.added_snapshot_id);
    writer.add_existing_file(entry.data_file().clone(), added_by, sequence, file_sequence)?;
    Ok(())
}

/// The manifests earlier attempts of one commit wrote, reused by the next
/// attempt when its inputs are the same: manifests are immutable, so an
/// attempt after a lost swap only reads and writes what the winner changed.
/// A long commit (a compaction removing thousands of files) thus gets
/// shorter with each retry instead of losing every race to a writer that
/// commits every few hundred milliseconds.
#[derive(Default)]
pub(in crate::table) struct Reuse {
    /// The removed paths `removal` was computed for.
    removed: Vec<String>,
    /// Per manifest path: the removed files it holds and its rewrite
    /// marking them deleted (`None` when it holds none).
    removal: HashMap<String, Option<(ManifestFile, Vec<String>)>>,
    /// Per bin of manifest paths: the manifest they were merged into.
    merged: HashMap<Vec<String>, ManifestFile>,
}

impl Reuse {
    /// Forgets the removal rewrites when the removed files changed.
    fn removing(&mut self, removed: &[DataFile]) {
        let removed = paths(removed);
        if removed != self.removed {
            self.removal.clear();
            self.removed = removed;
        }
    }
}
