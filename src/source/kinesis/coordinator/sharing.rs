//! The coordinator's side for a task sharing the stream under leases:
//! which leased shards are read, what a lost lease or a hand-off does, and
//! when the table's checkpoint is looked at again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Coordinator, ShardState};
use crate::checkpoint::{Checkpoint, SourcePosition, kinesis_source_key};
use crate::source::kinesis::DISCOVERY_INTERVAL;
use crate::source::kinesis::shard_state::{self, Release, Step, merge_newer};
use crate::source::lease::{Claims, LeaseLink, LeaseState, Note};
use crate::telemetry::events;

/// What the consumer needs to share the stream with other tasks.
pub struct Sharing {
    /// The lease keeper's side.
    pub link: LeaseLink,
    /// What the pipeline may commit.
    pub claims: Arc<Claims>,
    /// Loads the events table's checkpoint as it is now.
    pub load: LoadCheckpoint,
    /// The lease duration: a hand-off whose commit takes longer than this
    /// gives the lease up anyway (the checkpoint swap keeps that safe).
    pub lease_duration: Duration,
}

/// Loads the events table's current checkpoint.
pub type LoadCheckpoint = Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Result<Checkpoint, crate::table::TableError>>
        + Send
        + Sync,
>;

/// How often the table's checkpoint is looked at while a leased child shard
/// waits for parents another task reads.
const PARENT_POLL: Duration = Duration::from_secs(2);
/// Pause before loading the table's checkpoint again after a failure.
const LOOK_RETRY: Duration = Duration::from_secs(1);

impl Coordinator {
    /// [`Self::settle`] for a task sharing the stream: only shards it holds
    /// a lease of are read; a lost lease stops its reader at once; a
    /// hand-off stops it gracefully and reports once its records are
    /// committed; a newly leased shard starts from the table's checkpoint as
    /// it is now, looked at after the lease was taken.
    pub(super) async fn share(&mut self, ended_tx: &mpsc::UnboundedSender<String>) {
        let Some(sharing) = &self.sharing else {
            return;
        };
        let leases = sharing.link.leases.borrow().clone();
        let notes = sharing.link.notes.clone();
        let claims = sharing.claims.clone();
        let handoff_timeout = sharing.lease_duration;
        let now = Instant::now();
        if claims.take_reset() {
            tracing::warn!("reading every leased shard again from the table's checkpoint");
            for known in self.shards.values_mut() {
                known.state.abort_reader();
                if matches!(
                    known.state,
                    ShardState::Reading { .. } | ShardState::Ended | ShardState::HandingOff { .. }
                ) {
                    known.state = ShardState::Waiting;
                }
            }
            // Look at the table before anything starts again.
            self.view_loaded = None;
        }

        // Leases gained and lost.
        for (id, known) in &mut self.shards {
            match (leases.contains_key(id), known.leased_since) {
                (true, None) => known.leased_since = Some(now),
                (false, Some(_)) => known.leased_since = None,
                _ => {}
            }
        }
        let due = shard_state::look_due::<Instant>;
        let waiting_child = self.shards.iter().any(|(id, k)| {
            leases.get(id) == Some(&LeaseState::Held)
                && matches!(k.state, ShardState::Waiting)
                && !k.parents.is_empty()
        });
        let needs_look = self.shards.iter().any(|(id, k)| {
            leases.contains_key(id)
                && matches!(k.state, ShardState::Waiting)
                && due(self.view_loaded, k.leased_since)
        }) || self.view_loaded.is_none_or(|t| {
            now - t >= DISCOVERY_INTERVAL || (waiting_child && now - t >= PARENT_POLL)
        });
        if needs_look && self.view_tried.is_none_or(|t| now - t >= LOOK_RETRY) {
            self.view_tried = Some(now);
            match (sharing.load)().await {
                Ok(checkpoint) => {
                    merge_newer(&mut self.view, &checkpoint);
                    self.view_loaded = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "loading the table's checkpoint failed; leased shards wait");
                }
            }
        }
        let view = self.view.clone();

        for (id, known) in &mut self.shards {
            let key = kinesis_source_key(&self.stream.name, &self.consumer, id);
            let committed = match view.get(&key) {
                Some(SourcePosition::Shard(p)) => Some(p.clone()),
                _ => None,
            };
            let held = leases.get(id).copied();
            let end_committed = committed.as_ref().is_some_and(|p| p.end);
            let (finish, message) = known.state.finish();
            let step = shard_state::share(known.state.phase(), end_committed, held, finish);
            let state = std::mem::replace(&mut known.state, ShardState::Waiting);
            known.state = match (step, state) {
                (Step::Done, state) => {
                    if let ShardState::Reading { task, .. } = &state {
                        task.abort();
                    }
                    if held.is_some() && !known.end_noted {
                        known.end_noted = true;
                        let _ = notes.send(Note::Ended(id.clone()));
                    }
                    ShardState::Done
                }
                // Lost: stop at once; what it read is dropped by the pipeline.
                (Step::Drop, state) => {
                    if let ShardState::Reading { task, .. } = &state {
                        task.abort();
                    }
                    claims.revoke(&key);
                    ShardState::Waiting
                }
                (Step::Ended, _) => ShardState::Ended,
                (Step::Restart, ShardState::Reading { handed, .. }) => {
                    // Read again from the table's checkpoint under a new
                    // claim: what the old claim buffered is dropped.
                    let at = handed.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    events::shard_reader_restarted(
                        id,
                        message.as_deref().unwrap_or_default(),
                        at.seq.as_deref(),
                    );
                    claims.revoke(&key);
                    // Start again only after a look at the table taken from
                    // now on: from its checkpoint as it is.
                    known.leased_since = Some(now);
                    ShardState::Waiting
                }
                (Step::StopForHandOff, ShardState::Reading { task, stop, .. }) => {
                    let _ = stop.send(true);
                    ShardState::HandingOff {
                        task: Some(task),
                        until: None,
                        since: now,
                    }
                }
                (Step::HandOverNow, _) => {
                    // Nothing read here: hand it over at once.
                    claims.revoke(&key);
                    let _ = notes.send(Note::Committed(id.clone()));
                    ShardState::Waiting
                }
                (
                    Step::HandingOff,
                    ShardState::HandingOff {
                        mut task,
                        mut until,
                        since,
                    },
                ) => {
                    if let Some(t) = task.take_if(|t| t.is_finished()) {
                        match futures::FutureExt::now_or_never(t) {
                            Some(Ok(Some(at))) => until = Some(at),
                            Some(Err(e)) if e.is_panic() => {
                                // Nothing of it is committed for sure: the
                                // next owner reads from the table's checkpoint.
                                let message = crate::telemetry::join_error_message(e);
                                events::shard_reader_restarted(id, &message, None);
                                claims.revoke(&key);
                                let _ = notes.send(Note::Committed(id.clone()));
                                known.state = ShardState::Waiting;
                                continue;
                            }
                            // Read to its end meanwhile (or failed, which
                            // ends the run): the end's commit frees it.
                            _ => {
                                known.state = ShardState::Ended;
                                continue;
                            }
                        }
                    }
                    let elapsed = now - since;
                    match shard_state::release(
                        until.as_ref(),
                        committed.as_ref(),
                        elapsed,
                        handoff_timeout,
                    ) {
                        Release::Wait => ShardState::HandingOff { task, until, since },
                        release => {
                            if release == Release::Late {
                                tracing::warn!(shard = %id, "the hand-off's commit is late: handing the shard over anyway (what was not committed is read again by its next owner)");
                            }
                            claims.revoke(&key);
                            let _ = notes.send(Note::Committed(id.clone()));
                            ShardState::Waiting
                        }
                    }
                }
                (_, state) => state,
            };
        }

        // Start what this task may read, once the table was looked at after
        // the lease was taken.
        let fresh = self.view_loaded;
        let startable: Vec<String> = self
            .startable(Some(&leases))
            .into_iter()
            .filter(|id| !due(fresh, self.shards[id].leased_since))
            .collect();
        for id in startable {
            self.start_reader(&id, &view, ended_tx);
        }

        // The shards that still need reading, for the keeper.
        let active: BTreeSet<String> = self
            .shards
            .iter()
            .filter(|(_, k)| !matches!(k.state, ShardState::Done))
            .map(|(id, _)| id.clone())
            .collect();
        if active != self.active_noted && self.view_loaded.is_some() {
            let _ = notes.send(Note::Active(active.clone()));
            self.active_noted = active;
        }
    }
}
