//! What the run loop does differently when it shares the stream with other
//! tasks through shard leases (`--lease-table`).
//!
//! Other tasks commit to the same tables between this task's commits, and a
//! shard may move to another task while its records sit in the buffer. So,
//! before each flush:
//!
//! 1. the tables are reloaded, and the key index learns the rows the other
//!    tasks committed since (so a duplicate read here of an event they
//!    stored is caught before files are written);
//! 2. every shard in the buffer must still be claimed under the generation
//!    it was read under, and the table's checkpoint must still stand where
//!    its records start. If not, the buffer is dropped whole and every
//!    shard this task still holds is read again from the table's
//!    checkpoint: nothing is lost (the records are in the stream, after the
//!    checkpoint) and nothing is committed twice.
//!
//! A shard can still move between that check and the catalog swap; the swap
//! then refuses the commit (`CheckpointMoved`), and the same recovery runs.

use std::collections::HashSet;
use std::sync::Arc;

use futures::FutureExt;

use super::buffer::Buffer;
use super::flush::flush;
use super::tables::Tables;
use super::upsert::{Deletes, KeyRebase};
use super::{RunError, RunReport};
use crate::catalog::TableName;
use crate::config::{KinesisConfig, LeaseConfig, RunConfig};
use crate::source::SourceInfo;
use crate::source::kinesis::{self, LoadCheckpoint, Sharing};
use crate::source::lease::{self, Claims, KeeperConfig, LeaseHandle, LeaseTable};
use crate::supervise::Supervisor;
use crate::table::summary::QualityCounts;
use crate::table::{Change, Rebase, TableError, TableStore};
use crate::telemetry::Progress;

/// Starts the lease keeper and what the Kinesis consumer needs to share
/// the stream. The lease table is read once first: a missing table or a
/// refused permission is an error now, not a warning at every renewal.
pub(super) async fn start_leases(
    kinesis_config: &KinesisConfig,
    leases: &LeaseConfig,
    tables: &Tables,
    config: &RunConfig,
    supervisor: &Supervisor,
) -> Result<(LeaseHandle, Sharing), RunError> {
    let worker_id = leases
        .worker_id
        .clone()
        .unwrap_or_else(|| format!("floe-{}", uuid::Uuid::new_v4().simple()));
    let table = LeaseTable::new(
        lease::client().await,
        &leases.table,
        &kinesis::stream_name(&kinesis_config.stream),
        &kinesis_config.consumer_name,
    );
    match table.scan().await {
        Err(e) if !e.is_retryable() => return Err(e.into()),
        _ => {}
    }
    let (keeper, link) = lease::start(
        table,
        KeeperConfig {
            worker_id,
            duration: leases.duration,
        },
        supervisor,
    );
    let sharing = Sharing {
        link,
        claims: Arc::new(Claims::new()),
        load: checkpoint_loader(&tables.store, &config.table),
        lease_duration: leases.duration,
    };
    Ok((keeper, sharing))
}

/// [`flush`], for a task sharing the stream (`claims`): first catches up
/// with other tasks' commits and checks that every shard buffered is still
/// this task's to commit; if not, or if the commit finds a shard's
/// checkpoint moved, drops the buffer and has every held shard read again
/// from the table's checkpoint. Without claims, just [`flush`].
pub(super) async fn flush_held(
    tables: &mut Tables,
    buffer: Buffer,
    report: &mut RunReport,
    progress: &Progress,
    claims: Option<&Claims>,
) -> Result<(), RunError> {
    let Some(claims) = claims else {
        return flush(tables, buffer, report, progress).await;
    };
    if buffer.is_empty() {
        return Ok(());
    }
    catch_up(tables, buffer.has_rejects()).await?;
    if let Some(source_key) = stale_source(tables, &buffer, claims)? {
        tracing::warn!(source_key = %source_key, "a buffered shard moved to another task: dropping what was buffered and reading every held shard again from the table's checkpoint");
        claims.reset();
        crate::telemetry::metrics().buffered(0, 0);
        return Ok(());
    }
    match flush(tables, buffer, report, progress).await {
        Err(RunError::Table(TableError::CheckpointMoved { source_key, .. })) => {
            tracing::warn!(source_key = %source_key, "another task committed a shard this commit held: dropping it and reading every held shard again from the table's checkpoint");
            claims.reset();
            crate::telemetry::metrics().buffered(0, 0);
            catch_up(tables, true).await
        }
        other => other,
    }
}

/// Whether records of `source` may go into the buffer: always for files and
/// unshared streams; for a leased shard, while its claim is the one it was
/// read under.
pub(super) fn accepts(claims: Option<&Claims>, source: &SourceInfo) -> bool {
    match (claims, source.lease) {
        (Some(claims), Some(generation)) => claims.holds(&source.key, generation),
        _ => true,
    }
}

/// Brings the tables up to date with other tasks' commits: the events table
/// (its newly committed rows into the key index, its checkpoint to the
/// Kinesis consumer) and, with `rejected`, the rejected table.
async fn catch_up(tables: &mut Tables, rejected: bool) -> Result<(), RunError> {
    let current = tables.store.reload(&tables.events.table.name).await?;
    if current.metadata_location != tables.events.table.metadata_location {
        let mut counts = QualityCounts::default();
        let mut unused = Change::default();
        let mut learn = KeyRebase {
            store: &tables.store,
            writer: &tables.events.writer,
            index: &mut tables.index,
            mode: tables.dedup_mode,
            written: &[],
            deletes: Deletes::new(),
            withdrawn: HashSet::new(),
            counts: &mut counts,
        };
        // With nothing written, a rebase only learns the other writers' rows.
        learn
            .rebase(&tables.events.table, &current, &mut unused)
            .await?;
        tables.events.table = current;
        tables
            .committed
            .send_replace(tables.events.table.checkpoint()?);
    }
    if rejected {
        tables.rejected.table = tables.store.reload(&tables.rejected.table.name).await?;
    }
    Ok(())
}

/// The first shard in `buffer` whose records this task may no longer
/// commit: its claim is gone (or newer), or the table's checkpoint moved
/// away from where its records start.
fn stale_source(
    tables: &Tables,
    buffer: &Buffer,
    claims: &Claims,
) -> Result<Option<String>, RunError> {
    let checkpoint = tables.events.table.checkpoint()?;
    for (key, span) in &buffer.spans {
        let Some(generation) = span.source.lease else {
            continue;
        };
        if !claims.holds(key, generation)
            || checkpoint.get(key) != span.from.as_committed().as_ref()
        {
            return Ok(Some(key.clone()));
        }
    }
    Ok(None)
}

/// Loads the events table's checkpoint as it is now, for the Kinesis
/// consumer (a shard starts from there when its lease is taken).
fn checkpoint_loader(store: &TableStore, name: &TableName) -> LoadCheckpoint {
    let store = store.clone();
    let name = name.clone();
    Arc::new(move || {
        let store = store.clone();
        let name = name.clone();
        async move { store.reload(&name).await?.checkpoint() }.boxed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_records_of_a_held_claim_are_accepted() {
        let claims = Claims::new();
        let generation = claims.grant("k");
        let source = |lease| SourceInfo {
            key: "k".into(),
            display: Arc::from("k"),
            lease,
            checkpointed: true,
        };
        assert!(accepts(None, &source(Some(generation))));
        assert!(accepts(Some(&claims), &source(None)));
        assert!(accepts(Some(&claims), &source(Some(generation))));
        claims.grant("k");
        assert!(!accepts(Some(&claims), &source(Some(generation))));
    }
}
