//! The lease keeper: one task per worker that heartbeats, renews the leases
//! it holds, watches everybody else's counters, and takes, asks for, hands
//! over and releases leases as [`super::balance`] decides.
//!
//! It runs apart from the shard readers so that a slow Kinesis or catalog
//! call never delays a renewal. What it holds is published on a watch
//! channel ([`Leases`]); the Kinesis coordinator reads the shards in it and
//! reports back through [`Note`]s (a handed-off shard is committed, a
//! shard's end is committed).
//!
//! Expiry needs no clock sync: the keeper notes, on its own monotonic
//! clock, when it last saw each counter change; a lease (or heartbeat) whose
//! counter stood still for a lease duration is expired. It renews every
//! third of a lease duration, and counts a lease of its own as lost when it
//! could not renew it for a whole duration (another worker may have taken
//! it by then).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use futures::future::join_all;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::balance::{self, Action, Lease};
use super::table::{Item, ItemKind, LeaseTable, Take};
use crate::telemetry::events::{self, LeaseGain, LeaseRelease};

/// Heartbeat items of workers gone this many lease durations are deleted.
const FORGET_WORKERS_AFTER: u32 = 10;

/// How a held lease is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Read the shard.
    Held,
    /// Stop reading it, commit what was read, then report [`Note::Committed`]:
    /// the lease goes to the worker that asked for it.
    HandOff,
}

/// The leases this worker holds, by shard id.
pub type Leases = BTreeMap<String, LeaseState>;

/// What the coordinator tells the keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The shards that need reading (listed and not finished): leases are
    /// created for them and only they count for the fair share.
    Active(BTreeSet<String>),
    /// A shard in [`LeaseState::HandOff`] is no longer read and everything
    /// read from it is committed (or was dropped): hand the lease over.
    Committed(String),
    /// A shard's end is committed: its lease is no longer needed.
    Ended(String),
}

enum Control {
    /// Stop taking new leases (shutting down).
    StopTaking,
    /// Release every lease (`release`), or just stop renewing them, and end.
    Finish {
        release: bool,
        done: oneshot::Sender<()>,
    },
}

/// The coordinator's side of the keeper.
#[derive(Debug, Clone)]
pub struct LeaseLink {
    /// The leases held now.
    pub leases: watch::Receiver<Leases>,
    /// Reports to the keeper.
    pub notes: mpsc::UnboundedSender<Note>,
}

/// The pipeline's side of the keeper: how it ends.
#[derive(Debug)]
pub struct LeaseHandle {
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl LeaseHandle {
    /// Stops taking leases (a shutdown began; the final commit follows).
    pub fn stop_taking(&self) {
        let _ = self.control.send(Control::StopTaking);
    }

    /// Ends the keeper: with `release`, every lease is freed for other
    /// workers at once (call it after the final commit); without, the
    /// leases are left to expire. Waits at most `within`.
    pub async fn finish(&self, release: bool, within: Duration) {
        let (done, finished) = oneshot::channel();
        if self.control.send(Control::Finish { release, done }).is_ok() {
            let _ = tokio::time::timeout(within, finished).await;
        }
    }
}

impl Drop for LeaseHandle {
    /// A run that ends without [`LeaseHandle::finish`] (an error) stops
    /// renewing: its leases expire.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The keeper's settings.
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    /// This worker.
    pub worker_id: String,
    /// A lease whose counter stands still this long is expired.
    pub duration: Duration,
}

/// Starts the keeper of `worker_id`'s leases in `table`.
/// Its panic is reported to `supervisor`.
pub fn start(
    table: LeaseTable,
    config: KeeperConfig,
    supervisor: &crate::supervise::Supervisor,
) -> (LeaseHandle, LeaseLink) {
    let (leases_tx, leases_rx) = watch::channel(Leases::new());
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let keeper = Keeper {
        table,
        me: config.worker_id,
        duration: config.duration,
        held: BTreeMap::new(),
        seen: Observations::default(),
        active: None,
        taking: true,
        scans: 0,
        workers: Vec::new(),
        published: leases_tx,
    };
    crate::telemetry::metrics().leases_owned(0);
    let task = supervisor.spawn("lease keeper", keeper.run(notes_rx, control_rx));
    (
        LeaseHandle {
            control: control_tx,
            task,
        },
        LeaseLink {
            leases: leases_rx,
            notes: notes_tx,
        },
    )
}

/// A lease this worker holds.
#[derive(Debug, Clone)]
struct Held {
    /// Last successful renewal (or the take).
    renewed: Instant,
    /// Being handed over to this worker.
    handoff_to: Option<String>,
}

/// When each counter was last seen to change, on this worker's clock.
#[derive(Debug, Default)]
pub(super) struct Observations {
    seen: HashMap<String, Seen>,
}

#[derive(Debug, Clone)]
struct Seen {
    counter: u64,
    since: Instant,
    /// The hand-off request seen, and since when.
    asked: Option<(String, Instant)>,
}

impl Observations {
    /// Notes `item` as seen at `now`: how long its counter has stood still,
    /// and how long its hand-off request has been pending.
    pub(super) fn observe(&mut self, item: &Item, now: Instant) -> (Duration, Duration) {
        let seen = self.seen.entry(item.key.clone()).or_insert_with(|| Seen {
            counter: item.counter,
            since: now,
            asked: None,
        });
        if seen.counter != item.counter {
            seen.counter = item.counter;
            seen.since = now;
        }
        match (&item.handoff_to, &seen.asked) {
            (Some(to), Some((asker, _))) if to == asker => {}
            (Some(to), _) => seen.asked = Some((to.clone(), now)),
            (None, _) => seen.asked = None,
        }
        let asked_for = seen
            .asked
            .as_ref()
            .map_or(Duration::ZERO, |(_, t)| now - *t);
        (now - seen.since, asked_for)
    }

    /// The counter last seen on the item `key` (0 if never seen).
    pub(super) fn counter(&self, key: &str) -> u64 {
        self.seen.get(key).map_or(0, |s| s.counter)
    }

    /// Forgets items no longer in the table.
    pub(super) fn retain(&mut self, keys: &BTreeSet<&str>) {
        self.seen.retain(|k, _| keys.contains(k.as_str()));
    }
}

struct Keeper {
    table: LeaseTable,
    me: String,
    duration: Duration,
    held: BTreeMap<String, Held>,
    seen: Observations,
    /// Shards to be read, once the coordinator said.
    active: Option<BTreeSet<String>>,
    taking: bool,
    /// Scans done: nothing is taken before the second, so that workers
    /// starting together see each other's heartbeats first.
    scans: u64,
    /// Workers with a live heartbeat at the last look, this one included.
    workers: Vec<String>,
    published: watch::Sender<Leases>,
}

impl Keeper {
    async fn run(
        mut self,
        mut notes: mpsc::UnboundedReceiver<Note>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut tick = tokio::time::interval(self.duration / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(worker_id = %self.me, table = %self.table.name(), lease_duration = ?self.duration, "sharing the stream through shard leases");
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    crate::failpoint::hit(crate::failpoint::FailPoint::LeaseRenew);
                    // What the coordinator said first: a look at the table
                    // with an old list of active shards would create again
                    // the lease of a shard whose end was just committed.
                    while let Ok(note) = notes.try_recv() {
                        self.note(note).await;
                    }
                    self.tick().await
                }
                Some(note) = notes.recv() => self.note(note).await,
                Some(command) = control.recv() => match command {
                    Control::StopTaking => self.taking = false,
                    Control::Finish { release, done } => {
                        self.finish(release).await;
                        let _ = done.send(());
                        return;
                    }
                },
            }
        }
    }

    fn publish(&self) {
        let leases: Leases = self
            .held
            .iter()
            .map(|(shard, h)| {
                let state = if h.handoff_to.is_some() {
                    LeaseState::HandOff
                } else {
                    LeaseState::Held
                };
                (shard.clone(), state)
            })
            .collect();
        crate::telemetry::metrics().leases_owned(leases.len());
        self.published.send_if_modified(|old| {
            let changed = *old != leases;
            *old = leases;
            changed
        });
    }

    fn warn(&self, what: &str, e: &super::LeaseError) {
        tracing::warn!(table = %self.table.name(), error = %DisplayErrorContext(e), "{what}");
    }

    fn lost(&mut self, shard: &str, why: &str) {
        if self.held.remove(shard).is_some() {
            events::lease_lost(shard, why);
        }
    }

    fn gained(&mut self, shard: &str, how: LeaseGain) {
        self.held.insert(
            shard.to_string(),
            Held {
                renewed: Instant::now(),
                handoff_to: None,
            },
        );
        events::lease_gained(shard, &self.me, how);
    }

    async fn note(&mut self, note: Note) {
        match note {
            Note::Active(shards) => self.active = Some(shards),
            Note::Committed(shard) => {
                let Some(held) = self.held.get(&shard) else {
                    return;
                };
                // To the asker; to anyone if it is gone meanwhile.
                let to = held.handoff_to.clone().filter(|w| self.workers.contains(w));
                match self.table.transfer(&shard, &self.me, to.as_deref()).await {
                    Ok(true) => {
                        self.held.remove(&shard);
                        events::lease_released(&shard, LeaseRelease::HandedOver(to.as_deref()));
                    }
                    Ok(false) => self.lost(&shard, "taken before the hand-off"),
                    Err(e) => {
                        // The next tick's renewal finds out whose it is; the
                        // shard is not read here meanwhile.
                        self.warn("handing a lease over failed", &e);
                        self.lost(&shard, "the hand-off failed");
                    }
                }
                self.publish();
            }
            Note::Ended(shard) => {
                if self.held.contains_key(&shard) {
                    let me = self.me.clone();
                    self.delete_finished(&shard, Some(&me)).await;
                    self.publish();
                }
            }
        }
    }

    /// Deletes the lease of a finished shard if `owner` (`None`: nobody)
    /// still holds it; one this worker held is released.
    async fn delete_finished(&mut self, shard: &str, owner: Option<&str>) {
        let deleted = self.table.delete(shard, owner).await;
        if let Err(e) = &deleted {
            self.warn("deleting a finished shard's lease failed", e);
        }
        if self.held.remove(shard).is_some() {
            let deleted = deleted.is_ok();
            events::lease_released(shard, LeaseRelease::Finished { deleted });
        }
    }

    async fn tick(&mut self) {
        if let Err(e) = self.table.heartbeat(&self.me).await {
            self.warn("heartbeat failed", &e);
        }
        // Before the calls: a renewal holds from when it was sent.
        self.renew(Instant::now()).await;
        let items = match self.table.scan().await {
            Ok(items) => items,
            Err(e) => {
                self.warn("reading the lease table failed", &e);
                self.publish();
                return;
            }
        };
        // After the answer: counters are timed from when they were seen,
        // never from before (a pause in between would age them).
        let seen_at = Instant::now();
        self.scans += 1;
        self.settle(&items, seen_at).await;
        self.publish();
    }

    async fn renew(&mut self, now: Instant) {
        let shards: Vec<String> = self.held.keys().cloned().collect();
        let table = &self.table;
        let me = &self.me;
        let answers = join_all(shards.iter().map(|s| table.renew(s, me))).await;
        for (shard, answer) in shards.iter().zip(answers) {
            match answer {
                Ok(true) => {
                    if let Some(h) = self.held.get_mut(shard) {
                        h.renewed = now;
                    }
                }
                Ok(false) => self.lost(shard, "another worker holds it now"),
                Err(e) => {
                    self.warn("renewing a lease failed", &e);
                    if self
                        .held
                        .get(shard)
                        .is_some_and(|h| now - h.renewed >= self.duration)
                    {
                        self.lost(shard, "not renewed for a lease duration");
                    }
                }
            }
        }
    }

    /// Learns from the table's items, then acts on the balancing plan.
    async fn settle(&mut self, items: &[Item], now: Instant) {
        let keys: BTreeSet<&str> = items.iter().map(|i| i.key.as_str()).collect();
        self.seen.retain(&keys);
        let mut workers = vec![self.me.clone()];
        let mut leases = Vec::new();
        let mut listed = BTreeSet::new();
        // Until the coordinator has said which shards need reading, only
        // watch: which leases are finished is not known yet.
        let watching = self.active.is_none();
        let active = self.active.clone().unwrap_or_default();
        for item in items {
            let (still, asked_for) = self.seen.observe(item, now);
            let expired = still >= self.duration;
            match &item.kind {
                ItemKind::Shard(_) if watching => {}
                ItemKind::Worker(w) if *w == self.me => {}
                ItemKind::Worker(w) if !expired => workers.push(w.clone()),
                ItemKind::Worker(w) => {
                    if still >= self.duration * FORGET_WORKERS_AFTER {
                        // Gone for good: keep the table small.
                        let _ = self.table.remove_worker(w, Some(item.counter)).await;
                    }
                }
                ItemKind::Shard(shard) => {
                    listed.insert(shard.clone());
                    if !active.contains(shard) {
                        if let Some(owner) = finished_lease_to_delete(item, &self.me, expired) {
                            self.delete_finished(shard, owner).await;
                        }
                        continue;
                    }
                    let mine = item.owner.as_deref() == Some(self.me.as_str());
                    if mine && !self.held.contains_key(shard) {
                        // Ours in the table (handed over to us, or held
                        // before a restart under the same worker id).
                        self.gained(shard, LeaseGain::Ours);
                    }
                    if !mine && self.held.contains_key(shard) {
                        self.lost(shard, "another worker holds it now");
                    }
                    leases.push(Lease {
                        shard: shard.clone(),
                        owner: item.owner.clone(),
                        expired: !mine && item.owner.is_some() && expired,
                        handoff_to: item.handoff_to.clone(),
                        asked_for,
                    });
                }
            }
        }
        crate::telemetry::metrics().lease_workers(workers.len());
        self.workers = workers.clone();
        for shard in active.difference(&listed) {
            if let Err(e) = self.table.create(shard).await {
                self.warn("creating a lease failed", &e);
            }
        }
        if self.active.is_none() || self.scans < 2 {
            return;
        }
        if now.elapsed() >= self.duration / 3 {
            // This task stalled since the scan: what it saw may be stale.
            tracing::info!(
                "the lease table was read too long ago to act on; waiting for the next look"
            );
            return;
        }
        let view = balance::View {
            me: &self.me,
            workers: &workers,
            leases: &leases,
            steal_after: self.duration * 3,
        };
        let actions = balance::plan(&view);
        for action in actions {
            self.act(action).await;
        }
    }

    async fn act(&mut self, action: Action) {
        let result = match &action {
            Action::Take {
                shard,
                expired_owner,
            } if self.taking => {
                let how = match expired_owner {
                    None => Take::Free,
                    Some(owner) => Take::Expired {
                        owner,
                        counter: self.seen.counter(&self.table.shard_key(shard)),
                    },
                };
                let taken = self.table.take(shard, &self.me, &how).await;
                if let Ok(true) = taken {
                    let gain = match expired_owner {
                        None => LeaseGain::Free,
                        Some(_) => LeaseGain::Expired,
                    };
                    self.gained(shard, gain);
                }
                taken
            }
            Action::Steal { shard, owner } if self.taking => {
                let stolen = self
                    .table
                    .take(shard, &self.me, &Take::Steal { owner })
                    .await;
                if let Ok(true) = stolen {
                    self.gained(shard, LeaseGain::Stolen);
                }
                stolen
            }
            Action::Ask { shard, owner } if self.taking => {
                let asked = self.table.ask(shard, &self.me, owner).await;
                if let Ok(true) = asked {
                    tracing::info!(shard_id = %shard, owner = %owner, "asked for the hand-off of a shard");
                }
                asked
            }
            Action::HandOff { shard, to } => {
                if let Some(held) = self.held.get_mut(shard)
                    && held.handoff_to.is_none()
                {
                    tracing::info!(shard_id = %shard, to = %to, "handing a shard over: stopping its reader and committing");
                    held.handoff_to = Some(to.clone());
                }
                Ok(true)
            }
            Action::Decline { shard, asker } => self.table.decline(shard, &self.me, asker).await,
            // Not taking any more (shutting down).
            _ => Ok(true),
        };
        if let Err(e) = result {
            self.warn("a lease change failed", &e);
        }
    }

    async fn finish(&mut self, release: bool) {
        if !release {
            tracing::info!(leases = self.held.len(), "leaving the leases to expire");
            return;
        }
        let shards: Vec<String> = self.held.keys().cloned().collect();
        let table = &self.table;
        let me = &self.me;
        let answers = join_all(shards.iter().map(|s| table.transfer(s, me, None))).await;
        for (shard, answer) in shards.iter().zip(answers) {
            match answer {
                Ok(true) => events::lease_released(shard, LeaseRelease::Shutdown),
                Ok(false) => {}
                Err(e) => self.warn("releasing a lease failed; it will expire", &e),
            }
        }
        if let Err(e) = self.table.remove_worker(&self.me, None).await {
            self.warn("removing this worker's heartbeat failed", &e);
        }
        tracing::info!(
            leases = shards.len(),
            "released every lease after the final commit"
        );
        self.held.clear();
        self.publish();
    }
}

/// Whether this task deletes the lease `item` of a shard read to its end
/// and committed, and on which condition (`Some(owner)`: that owner still
/// holds it; `None`: it is free). Anyone deletes a free one and one whose
/// owner stopped renewing it (a task that died or stalled after committing
/// the end); this task deletes its own, held here or not. Its holder also
/// deletes it when told the end is committed, but that is said once: the
/// lease may be taken again afterwards (created again by a task that had
/// not seen the end yet), or its deletion may fail. Nothing is read from a
/// finished shard again, so no one needs its lease.
fn finished_lease_to_delete<'a>(
    item: &'a Item,
    me: &str,
    expired: bool,
) -> Option<Option<&'a str>> {
    match item.owner.as_deref() {
        None => Some(None),
        Some(owner) if owner == me => Some(Some(owner)),
        Some(owner) => expired.then_some(Some(owner)),
    }
}

#[cfg(test)]
mod tests;
