//! Manifest rewrite (`floe maintain --rewrite-manifests`): the current
//! snapshot's manifests written anew, clustered by partition, day first.
//!
//! Commits merge small manifests in the order they were written, so after
//! months each manifest spans every day and every event type, and planning
//! a one-day query reads them all. The rewrite sorts the live entries of
//! each group (same content, data or position deletes, and same partition
//! spec: the spec keeps the two kinds apart) by `(day, event_type)` and
//! cuts them into manifests of about `commit.manifest.target-size-bytes`,
//! so each covers a narrow range of days that its partition summary names
//! and a reader skips the others. Entries keep their status as `EXISTING`,
//! their data and file sequence numbers and the snapshot that added them,
//! as in a merge; the commit is a `replace` that adds and removes no file.
//!
//! A group already at its fewest manifests is left alone, so a rewrite of a
//! tidy table commits nothing. When another writer commits first, the
//! rewrite carries over what it added if every manifest the rewrite
//! replaces is still listed; otherwise it plans again on the new table.

use std::collections::{BTreeMap, HashMap, HashSet};

use iceberg::spec::{ManifestEntryRef, ManifestFile, Operation, Summary};

use super::manifest::{carry_existing, spec_of};
use super::new_snapshot_id;
use crate::table::TableError;
use crate::table::index::events_partition;
use crate::table::manifests::{MergePolicy, group_of};
use crate::table::store::{LoadedTable, MAX_ATTEMPTS, Swap, TableStore, backoff};
use crate::table::summary::{FileDelta, standard_summary};

/// What a manifest rewrite did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestRewrite {
    /// Manifests the current snapshot listed before.
    pub manifests_before: usize,
    /// Manifests it lists after.
    pub manifests_after: usize,
    /// Manifests replaced by rewritten ones.
    pub replaced: usize,
    /// Manifests written.
    pub written: usize,
    /// Live entries moved into them.
    pub entries: usize,
}

/// A group of manifests rewritten into others, not yet committed.
struct Rewritten {
    /// Paths of the manifests replaced.
    sources: HashSet<String>,
    /// What replaces them, in partition order.
    manifests: Vec<ManifestFile>,
    entries: usize,
}

impl TableStore {
    /// Rewrites the current snapshot's manifests clustered by partition (see
    /// the module docs); commits nothing when every group is already at its
    /// fewest manifests.
    pub async fn rewrite_manifests(
        &self,
        table: LoadedTable,
    ) -> Result<(LoadedTable, ManifestRewrite), TableError> {
        let snapshot_id = new_snapshot_id(&table.metadata);
        let mut table = table;
        let mut planned: Option<Vec<Rewritten>> = None;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
                table = self.reload(&table.name).await?;
                if table.metadata.snapshot_by_id(snapshot_id).is_some() {
                    let after = self.current_manifests(&table).await?.len();
                    let done = planned.as_deref().unwrap_or_default();
                    return Ok((table, report(done, None, after)));
                }
            }
            let listed = self.current_manifests(&table).await?;
            let paths: HashSet<&str> = listed.iter().map(|m| m.manifest_path.as_str()).collect();
            // A rewrite whose sources are all still listed carries over what
            // landed meanwhile; one that lost a source is planned again.
            if let Some(groups) = planned.take() {
                if groups
                    .iter()
                    .all(|g| g.sources.iter().all(|p| paths.contains(p.as_str())))
                {
                    planned = Some(groups);
                } else {
                    for written in groups.iter().flat_map(|g| &g.manifests) {
                        let _ = self.file_io.delete(&written.manifest_path).await;
                    }
                }
            }
            let groups = match planned.take() {
                Some(groups) => groups,
                None => self.plan_rewrite(&table, snapshot_id, &listed).await?,
            };
            if groups.is_empty() {
                return Ok((table, report(&[], Some(listed.len()), listed.len())));
            }
            let manifests = replaced(&listed, &groups);
            let after = manifests.len();
            let parent = table.metadata.current_snapshot();
            let mut summary: HashMap<String, String> = standard_summary(
                parent.map(|p| &p.summary().additional_properties),
                &FileDelta::default(),
            )
            .into_iter()
            .collect();
            let done = report(&groups, Some(listed.len()), after);
            summary.extend([
                ("manifests-created".into(), done.written.to_string()),
                ("manifests-replaced".into(), done.replaced.to_string()),
                ("manifests-kept".into(), (after - done.written).to_string()),
                ("entries-processed".into(), done.entries.to_string()),
                ("floe.maintenance".into(), "rewrite-manifests".into()),
            ]);
            let summary = Summary {
                operation: Operation::Replace,
                additional_properties: summary,
            };
            let (next, _) = self
                .snapshot_metadata(&table, snapshot_id, attempt, manifests, summary, None)
                .await?;
            match self.swap_metadata(&table, next).await? {
                Swap::Done(committed) => {
                    tracing::info!(
                        table = %committed.name,
                        before = done.manifests_before,
                        after = done.manifests_after,
                        entries = done.entries,
                        "rewrote manifests"
                    );
                    return Ok((committed, done));
                }
                Swap::Conflict | Swap::Unreachable => planned = Some(groups),
            }
        }
        Err(TableError::TooManyConflicts {
            table: table.name.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The groups of `listed` worth rewriting, rewritten: those with more
    /// manifests than their live entries need, or with manifests holding
    /// dropped (`DELETED`) entries.
    async fn plan_rewrite(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        listed: &[ManifestFile],
    ) -> Result<Vec<Rewritten>, TableError> {
        let target = MergePolicy::of(table.metadata.properties())
            .target_bytes
            .max(1) as u64;
        let mut groups: BTreeMap<(u8, i32), Vec<&ManifestFile>> = BTreeMap::new();
        for m in listed {
            groups.entry(group_of(m)).or_default().push(m);
        }
        let mut out = Vec::new();
        for group in groups.into_values() {
            let n = |count: Option<u32>| u64::from(count.unwrap_or(0));
            let live: u64 = group
                .iter()
                .map(|m| n(m.added_files_count) + n(m.existing_files_count))
                .sum();
            let entries: u64 = live + group.iter().map(|m| n(m.deleted_files_count)).sum::<u64>();
            let bytes: u64 = group.iter().map(|m| m.manifest_length.max(0) as u64).sum();
            let per_entry = (bytes / entries.max(1)).max(1);
            let fewest = (live * per_entry).div_ceil(target).max(1);
            let dropped = group.iter().any(|m| m.deleted_files_count.unwrap_or(0) > 0);
            let count = group.len() as u64;
            // A clustered group is left as it is unless far from its fewest
            // (the estimate of bytes per entry moves as manifests change).
            if !dropped && (count <= fewest || (count <= 2 * fewest + 1 && clustered(&group))) {
                continue;
            }
            let per_manifest = (target / per_entry).max(1) as usize;
            out.push(
                self.rewrite_group(table, snapshot_id, &group, per_manifest)
                    .await?,
            );
        }
        Ok(out)
    }

    /// One group's live entries, sorted by partition (day, then event
    /// type), written into manifests of at most `per_manifest` entries.
    async fn rewrite_group(
        &self,
        table: &LoadedTable,
        snapshot_id: i64,
        group: &[&ManifestFile],
        per_manifest: usize,
    ) -> Result<Rewritten, TableError> {
        let mut entries: Vec<(PartitionKey, ManifestEntryRef, usize)> = Vec::new();
        for (i, manifest_file) in group.iter().enumerate() {
            let manifest = manifest_file.load_manifest(&self.file_io).await?;
            for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                entries.push((partition_key(entry), entry.clone(), i));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let first = group[0];
        let spec = spec_of(table, first)?;
        let mut manifests = Vec::new();
        for chunk in entries.chunks(per_manifest) {
            let mut writer =
                self.manifest_writer(table, snapshot_id, spec.clone(), first.content)?;
            for (_, entry, i) in chunk {
                carry_existing(&mut writer, entry, group[*i])?;
            }
            manifests.push(writer.write_manifest_file().await?);
        }
        Ok(Rewritten {
            sources: group.iter().map(|m| m.manifest_path.clone()).collect(),
            manifests,
            entries: entries.len(),
        })
    }
}

/// The order manifests are clustered in: day, then event type; entries of
/// other tables (no such partition) keep their order, after them.
type PartitionKey = (bool, Option<i32>, Option<String>);

fn partition_key(entry: &ManifestEntryRef) -> PartitionKey {
    match events_partition(entry.data_file().partition().iter()) {
        Some(p) => (false, p.day, p.event_type),
        None => (true, None, None),
    }
}

/// Whether each manifest's days come after the previous one's (its first
/// partition field's summary: the day, a little-endian int), as a rewrite
/// leaves them; a group without partition summaries counts as clustered.
fn clustered(group: &[&ManifestFile]) -> bool {
    let day = |bound: Option<&Vec<u8>>| {
        bound
            .and_then(|b| b.get(..4))
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let ranges: Vec<Option<(i32, i32)>> = group
        .iter()
        .map(|m| {
            let first = m.partitions.as_ref()?.first()?;
            Some((
                day(first.lower_bound.as_deref())?,
                day(first.upper_bound.as_deref())?,
            ))
        })
        .collect();
    if ranges.iter().all(Option::is_none) {
        return true;
    }
    let Some(ranges) = ranges.into_iter().collect::<Option<Vec<_>>>() else {
        return false;
    };
    ranges.windows(2).all(|w| w[0].1 <= w[1].0)
}

/// `listed` with each group's sources replaced by its rewritten manifests,
/// where the group's first source was.
fn replaced(listed: &[ManifestFile], groups: &[Rewritten]) -> Vec<ManifestFile> {
    let mut out = Vec::with_capacity(listed.len());
    let mut placed = vec![false; groups.len()];
    for m in listed {
        match groups
            .iter()
            .position(|g| g.sources.contains(&m.manifest_path))
        {
            Some(g) if !placed[g] => {
                placed[g] = true;
                out.extend(groups[g].manifests.iter().cloned());
            }
            Some(_) => {}
            None => out.push(m.clone()),
        }
    }
    out
}

/// The report of a rewrite of `groups`; `before` unknown when an earlier
/// attempt was found to have landed.
fn report(groups: &[Rewritten], before: Option<usize>, after: usize) -> ManifestRewrite {
    ManifestRewrite {
        manifests_before: before.unwrap_or(after),
        manifests_after: after,
        replaced: groups.iter().map(|g| g.sources.len()).sum(),
        written: groups.iter().map(|g| g.manifests.len()).sum(),
        entries: groups.iter().map(|g| g.entries).sum(),
    }
}
