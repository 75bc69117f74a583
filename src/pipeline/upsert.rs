//! Upsert decisions: a buffered row against the key index (before writing),
//! and a written batch against rows another writer committed first (after a
//! lost commit), so the table keeps one live row per key whoever commits.

use std::collections::{BTreeMap, HashSet};

use futures::future::BoxFuture;
use iceberg::spec::DataFile;

use crate::config::DedupMode;
use crate::table::history::ChangedSince;
use crate::table::index::{KeyIndex, Map, read_keys};
use crate::table::probe::Found;
use crate::table::summary::QualityCounts;
use crate::table::writer::{DataWriter, Partition};
use crate::table::{Change, LoadedTable, Rebase, TableError, TableStore};

/// Row positions to delete, per partition of the rows.
pub type Deletes = BTreeMap<Partition, Vec<(String, i64)>>;

/// A data file this flush wrote, with the key and content hash of each row
/// (row `i` of the file is `keys[i]`).
pub struct Written {
    /// The file.
    pub file: DataFile,
    /// Its partition.
    pub partition: Partition,
    /// Key and content hash per row position.
    pub keys: Vec<(u128, i64)>,
}

/// Decides a buffered row against the rows already in the table: `true`
/// keeps it (new key, or a changed body in upsert mode, whose old row then
/// gets a position delete); `false` drops it as a duplicate.
pub fn upsert_against_index(
    index: &KeyIndex,
    mode: DedupMode,
    key: u128,
    content_hash: i64,
    deletes: &mut Deletes,
    counts: &mut QualityCounts,
) -> bool {
    let live = index.get(key).map(|l| (l.path, l.partition, l.pos, l.hash));
    decide(live, mode, content_hash, deletes, counts)
}

/// The same decision for a late row, against what the table probe found.
pub fn upsert_against_table(
    live: Option<Found>,
    mode: DedupMode,
    content_hash: i64,
    deletes: &mut Deletes,
    counts: &mut QualityCounts,
) -> bool {
    let live = live
        .as_ref()
        .map(|f| (f.path.as_str(), &f.partition, f.pos, f.hash));
    decide(live, mode, content_hash, deletes, counts)
}

fn decide(
    live: Option<(&str, &Partition, i64, i64)>,
    mode: DedupMode,
    content_hash: i64,
    deletes: &mut Deletes,
    counts: &mut QualityCounts,
) -> bool {
    let Some((path, partition, pos, hash)) = live else {
        return true;
    };
    if hash == content_hash {
        counts.duplicates_identical += 1;
        return false;
    }
    if mode == DedupMode::KeepFirst {
        counts.duplicates_skipped += 1;
        return false;
    }
    deletes
        .entry(partition.clone())
        .or_default()
        .push((path.to_string(), pos));
    counts.duplicates_replaced += 1;
    counts.rows_deleted += 1;
    true
}

/// A live row another writer committed.
struct Theirs {
    path: String,
    partition: Partition,
    pos: i64,
    hash: i64,
}

/// Reconciles this flush's rows with rows other writers committed while it
/// was being written. A key both wrote keeps one row: identical bodies keep
/// theirs (ours gets a position delete); changed bodies keep ours in upsert
/// mode (this commit lands later: last writer wins) and theirs in keep-first.
pub struct KeyRebase<'a> {
    /// Where the table's files are.
    pub store: &'a TableStore,
    /// Writes the extra delete files.
    pub writer: &'a DataWriter,
    /// Learns the other writers' rows.
    pub index: &'a mut KeyIndex,
    /// Duplicate handling.
    pub mode: DedupMode,
    /// The rows this flush wrote.
    pub written: &'a [Written],
    /// Every position this change deletes, as written into its delete files.
    pub deletes: Deletes,
    /// Positions of `written` already deleted again: (file, position).
    pub withdrawn: HashSet<(usize, u32)>,
    /// The flush's counts, corrected as rows are withdrawn or replaced.
    pub counts: &'a mut QualityCounts,
}

impl KeyRebase<'_> {
    async fn rebase_now(
        &mut self,
        previous: &LoadedTable,
        current: &LoadedTable,
        change: &mut Change,
    ) -> Result<(), TableError> {
        let (theirs, removed) = self.rows_committed_since(previous, current).await?;
        // Rows of removed data files are no longer where the index says.
        self.index.forget_files(&removed);
        // A data file our deletes point into was rewritten meanwhile (by a
        // compaction or another engine): its positions now hold other rows.
        // Drop those deletes; the rewritten rows are among `theirs`, so the
        // key rule below deletes each replaced row again where it now is.
        let stale = drop_stale_deletes(&mut self.deletes, &removed, self.counts);
        if theirs.is_empty() && stale == 0 {
            return Ok(());
        }
        let (deletes, superseded) = settle(
            self.written,
            &theirs,
            self.mode,
            &mut self.withdrawn,
            self.counts,
        );
        // Their rows are in the table whatever happens to this commit.
        let mut files: Map<String, u32> = Map::default();
        for (key, t) in &theirs {
            if superseded.contains(key) {
                continue;
            }
            let file = *files
                .entry(t.path.clone())
                .or_insert_with(|| self.index.add_file(&t.path, t.partition.clone()));
            self.index.insert(*key, file, t.pos as u32, t.hash);
        }
        let rewrite_all = stale > 0;
        if rewrite_all {
            // Every delete file may hold stale positions: write them anew.
            for file in std::mem::take(&mut change.added_delete_files) {
                // Nothing points at the old file; a leftover is only an orphan.
                let _ = self.store.file_io().delete(file.file_path()).await;
            }
        }
        for (partition, positions) in &deletes {
            self.deletes
                .entry(partition.clone())
                .or_default()
                .extend(positions.iter().cloned());
        }
        let to_write = if rewrite_all { &self.deletes } else { &deletes };
        for (partition, positions) in to_write {
            let file = self
                .writer
                .write_position_deletes(partition, &mut positions.clone())
                .await?;
            change.added_delete_files.push(file);
        }
        let checkpoint = change
            .summary
            .remove(crate::checkpoint::CHECKPOINT_SUMMARY_KEY);
        change.summary = self.counts.to_summary();
        if let Some(c) = checkpoint {
            change
                .summary
                .insert(crate::checkpoint::CHECKPOINT_SUMMARY_KEY.into(), c);
        }
        Ok(())
    }

    /// Live rows added by the snapshots between `previous` and `current`
    /// (minus the rows their own deletes removed), by key; and the data
    /// files those snapshots removed.
    async fn rows_committed_since(
        &self,
        previous: &LoadedTable,
        current: &LoadedTable,
    ) -> Result<(Map<u128, Theirs>, HashSet<String>), TableError> {
        let ChangedSince {
            added_data: data,
            removed,
            mut deleted,
        } = self
            .store
            .changed_since(previous, current, &HashSet::new())
            .await?;
        let mut out = Map::default();
        for (path, partition, size) in data {
            let gone = deleted.remove(&path).unwrap_or_default();
            read_keys(self.store, &path, size, |pos, key, hash| {
                if !gone.contains(&i64::from(pos)) {
                    out.insert(
                        key,
                        Theirs {
                            path: path.clone(),
                            partition: partition.clone(),
                            pos: i64::from(pos),
                            hash,
                        },
                    );
                }
            })
            .await?;
        }
        Ok((out, removed))
    }
}

/// Drops the positions of `deletes` that point into data files another
/// commit removed, and takes them off the counts; returns how many.
fn drop_stale_deletes(
    deletes: &mut Deletes,
    removed: &HashSet<String>,
    counts: &mut QualityCounts,
) -> u64 {
    let mut stale = 0;
    for positions in deletes.values_mut() {
        let before = positions.len();
        positions.retain(|(path, _)| !removed.contains(path));
        stale += (before - positions.len()) as u64;
    }
    deletes.retain(|_, positions| !positions.is_empty());
    counts.duplicates_replaced -= stale;
    counts.rows_deleted -= stale;
    stale
}

/// The key rule for rows both this flush (`written`, minus `withdrawn`)
/// and other writers (`theirs`) hold: identical bodies, or any in
/// keep-first mode, keep theirs (ours is withdrawn: deleted and added to
/// `withdrawn`); changed bodies in upsert mode keep ours (theirs is deleted
/// and its key returned as superseded). Returns the new deletes and the
/// superseded keys; `counts` follows.
fn settle(
    written: &[Written],
    theirs: &Map<u128, Theirs>,
    mode: DedupMode,
    withdrawn: &mut HashSet<(usize, u32)>,
    counts: &mut QualityCounts,
) -> (Deletes, HashSet<u128>) {
    let mut deletes = Deletes::new();
    let mut superseded = HashSet::new();
    for (i, w) in written.iter().enumerate() {
        for (pos, (key, hash)) in w.keys.iter().enumerate() {
            let pos = pos as u32;
            if withdrawn.contains(&(i, pos)) {
                continue;
            }
            let Some(t) = theirs.get(key) else { continue };
            if t.hash == *hash || mode == DedupMode::KeepFirst {
                deletes
                    .entry(w.partition.clone())
                    .or_default()
                    .push((w.file.file_path().to_string(), i64::from(pos)));
                withdrawn.insert((i, pos));
                counts.rows_written -= 1;
                if t.hash == *hash {
                    counts.duplicates_identical += 1;
                } else {
                    counts.duplicates_skipped += 1;
                }
            } else {
                deletes
                    .entry(t.partition.clone())
                    .or_default()
                    .push((t.path.clone(), t.pos));
                superseded.insert(*key);
                counts.duplicates_replaced += 1;
                counts.rows_deleted += 1;
            }
        }
    }
    (deletes, superseded)
}

impl Rebase for KeyRebase<'_> {
    fn rebase<'a>(
        &'a mut self,
        previous: &'a LoadedTable,
        current: &'a LoadedTable,
        change: &'a mut Change,
    ) -> BoxFuture<'a, Result<(), TableError>> {
        Box::pin(self.rebase_now(previous, current, change))
    }
}

#[cfg(test)]
mod tests;
