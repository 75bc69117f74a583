//! Which manifests a commit carries over, so that their number stays bounded
//! however many commits a table has seen (pure planning; the snapshot
//! producer in [`super::commit`] reads and writes the files).
//!
//! Every commit adds a manifest or two. Carried over unchanged, they pile up:
//! after a month of one commit a minute, 43,000 manifests that every query
//! plans through. Two rules keep them few, as Iceberg's own `MergeAppend`
//! does:
//!
//! - A manifest with no live entry (only `DELETED` ones, left by compaction
//!   or expiry) is dropped from the next snapshot: the snapshot that deleted
//!   those files keeps it in its own manifest list, which is where history
//!   readers (and the rebase of a concurrent commit) find it.
//! - Small manifests are merged: once a group (same content, data or
//!   position deletes, and same partition spec) holds at least
//!   `commit.manifest.min-count-to-merge` manifests smaller than
//!   `commit.manifest.target-size-bytes`, they are packed, oldest first, into
//!   bins of about the target size, and each bin of two or more becomes one
//!   manifest. Its entries keep their data and file sequence numbers and the
//!   snapshot that added them, with status `EXISTING`, as the spec asks;
//!   `DELETED` entries are left out. `commit.manifest-merge.enabled=false`
//!   turns merging off.
//!
//! The manifests a commit writes itself (for its new files, and the ones it
//! rewrites to mark removed files `DELETED`) are neither merged nor dropped
//! in that commit, so each snapshot's own list names exactly what it added
//! and removed; the next commit carries them over like any other.

use std::collections::{BTreeMap, HashMap};

use iceberg::spec::{ManifestContentType, ManifestFile};

/// Table property: whether small manifests are merged on commit.
pub const MERGE_ENABLED_PROPERTY: &str = "commit.manifest-merge.enabled";
/// Table property: small manifests of a group that trigger a merge.
pub const MIN_COUNT_PROPERTY: &str = "commit.manifest.min-count-to-merge";
/// Table property: the size merged manifests aim at; larger ones are left alone.
pub const TARGET_SIZE_PROPERTY: &str = "commit.manifest.target-size-bytes";

/// How small manifests are merged: the table's properties, with Iceberg's
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergePolicy {
    /// `commit.manifest-merge.enabled` (default true).
    pub enabled: bool,
    /// `commit.manifest.min-count-to-merge` (default 100).
    pub min_count: usize,
    /// `commit.manifest.target-size-bytes` (default 8 MiB).
    pub target_bytes: i64,
}

impl Default for MergePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            min_count: 100,
            target_bytes: 8 << 20,
        }
    }
}

impl MergePolicy {
    /// The policy a table's properties ask for; an unreadable value keeps
    /// the default (as Iceberg's Java library does).
    pub fn of(properties: &HashMap<String, String>) -> Self {
        let default = Self::default();
        let get = |key: &str| properties.get(key).map(|v| v.trim());
        Self {
            enabled: get(MERGE_ENABLED_PROPERTY)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default.enabled),
            min_count: get(MIN_COUNT_PROPERTY)
                .and_then(|v| v.parse::<usize>().ok())
                .map_or(default.min_count, |n| n.max(2)),
            target_bytes: get(TARGET_SIZE_PROPERTY)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default.target_bytes),
        }
    }
}

/// Whether a manifest lists any file that is still in the table. Unknown
/// counts (written by a writer that left them out) count as live.
pub fn has_live_entries(manifest: &ManifestFile) -> bool {
    match (manifest.added_files_count, manifest.existing_files_count) {
        (Some(added), Some(existing)) => added + existing > 0,
        _ => true,
    }
}

/// The group a manifest belongs to, (content, partition spec): manifests of
/// one group may be merged or rewritten together, never across groups (the
/// spec keeps data and delete manifests apart, and one spec a manifest).
pub fn group_of(m: &ManifestFile) -> (u8, i32) {
    let content = match m.content {
        ManifestContentType::Data => 0,
        ManifestContentType::Deletes => 1,
    };
    (content, m.partition_spec_id)
}

/// The bins to merge, as indexes into `manifests` (each bin two or more,
/// oldest first); every manifest in no bin is carried over as it is.
pub fn plan_merge(manifests: &[ManifestFile], policy: MergePolicy) -> Vec<Vec<usize>> {
    if !policy.enabled {
        return Vec::new();
    }
    let mut groups: BTreeMap<(u8, i32), Vec<usize>> = BTreeMap::new();
    for (i, m) in manifests.iter().enumerate() {
        if m.manifest_length < policy.target_bytes {
            groups.entry(group_of(m)).or_default().push(i);
        }
    }
    let mut bins = Vec::new();
    for small in groups.into_values() {
        if small.len() < policy.min_count {
            continue;
        }
        let mut bin: Vec<usize> = Vec::new();
        let mut size = 0i64;
        for i in small {
            let length = manifests[i].manifest_length;
            if !bin.is_empty() && size + length > policy.target_bytes {
                bins.push(std::mem::take(&mut bin));
                size = 0;
            }
            bin.push(i);
            size += length;
        }
        bins.push(bin);
    }
    bins.retain(|b| b.len() >= 2);
    bins
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(content: ManifestContentType, spec: i32, length: i64, live: u32) -> ManifestFile {
        ManifestFile {
            manifest_path: format!("m-{length}.avro"),
            manifest_length: length,
            partition_spec_id: spec,
            content,
            sequence_number: 1,
            min_sequence_number: 1,
            added_snapshot_id: 1,
            added_files_count: Some(live),
            existing_files_count: Some(0),
            deleted_files_count: Some(1),
            added_rows_count: None,
            existing_rows_count: None,
            deleted_rows_count: None,
            partitions: None,
            key_metadata: None,
            first_row_id: None,
        }
    }

    const DATA: ManifestContentType = ManifestContentType::Data;
    const DELETES: ManifestContentType = ManifestContentType::Deletes;

    #[test]
    fn the_policy_comes_from_the_properties_with_icebergs_defaults() {
        assert_eq!(MergePolicy::of(&HashMap::new()), MergePolicy::default());
        let props: HashMap<String, String> = [
            (MERGE_ENABLED_PROPERTY, "false"),
            (MIN_COUNT_PROPERTY, " 5 "),
            (TARGET_SIZE_PROPERTY, "1024"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            MergePolicy::of(&props),
            MergePolicy {
                enabled: false,
                min_count: 5,
                target_bytes: 1024
            }
        );
        let odd: HashMap<String, String> =
            [(MIN_COUNT_PROPERTY, "x"), (TARGET_SIZE_PROPERTY, "-1")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(MergePolicy::of(&odd), MergePolicy::default());
    }

    #[test]
    fn a_manifest_of_deleted_entries_only_is_not_live() {
        assert!(has_live_entries(&manifest(DATA, 0, 10, 1)));
        assert!(!has_live_entries(&manifest(DATA, 0, 10, 0)));
        let mut unknown = manifest(DATA, 0, 10, 0);
        unknown.existing_files_count = None;
        assert!(has_live_entries(&unknown));
    }

    #[test]
    fn small_manifests_merge_by_group_once_there_are_enough() {
        let policy = MergePolicy {
            enabled: true,
            min_count: 3,
            target_bytes: 100,
        };
        // (content, spec, length): two data groups (specs 0 and 1), deletes.
        /// (content, spec, length) of each manifest, and the bins wanted.
        type Case<'a> = (&'a [(ManifestContentType, i32, i64)], &'a [&'a [usize]]);
        let cases: &[Case] = &[
            // Two small: not enough.
            (&[(DATA, 0, 10), (DATA, 0, 10)], &[]),
            // Three small: one bin.
            (
                &[(DATA, 0, 10), (DATA, 0, 10), (DATA, 0, 10)],
                &[&[0, 1, 2]],
            ),
            // A large one is left alone and does not count.
            (&[(DATA, 0, 10), (DATA, 0, 100), (DATA, 0, 10)], &[]),
            // Bins fill up to the target, in order.
            (
                &[(DATA, 0, 60), (DATA, 0, 30), (DATA, 0, 30), (DATA, 0, 60)],
                &[&[0, 1], &[2, 3]],
            ),
            // A bin of one is carried over as it is.
            (&[(DATA, 0, 60), (DATA, 0, 60), (DATA, 0, 60)], &[]),
            (&[(DATA, 0, 60), (DATA, 0, 20), (DATA, 0, 90)], &[&[0, 1]]),
            // Data and deletes never share a manifest; nor do specs.
            (
                &[
                    (DATA, 0, 10),
                    (DELETES, 0, 10),
                    (DATA, 1, 10),
                    (DATA, 0, 10),
                    (DELETES, 0, 10),
                    (DATA, 0, 10),
                    (DELETES, 0, 10),
                ],
                &[&[0, 3, 5], &[1, 4, 6]],
            ),
        ];
        for (manifests, want) in cases {
            let files: Vec<ManifestFile> = manifests
                .iter()
                .map(|(c, s, l)| manifest(*c, *s, *l, 1))
                .collect();
            let got = plan_merge(&files, policy);
            let want: Vec<Vec<usize>> = want.iter().map(|b| b.to_vec()).collect();
            assert_eq!(got, want, "{manifests:?}");
        }
        let off = MergePolicy {
            enabled: false,
            ..policy
        };
        let many: Vec<ManifestFile> = (0..10).map(|_| manifest(DATA, 0, 1, 1)).collect();
        assert!(plan_merge(&many, off).is_empty());
    }
}
