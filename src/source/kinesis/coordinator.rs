//! The coordinator: lists the shards, decides which may be read (parents
//! committed to their end first; with leases, only the shards this task
//! holds) and runs one reader per shard. It never commits: it learns the
//! table's checkpoint from the pipeline's commits and, when sharing the
//! stream, by loading the table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::Shard;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::reader::{IteratorStart, ShardReader};
use super::{DISCOVERY_INTERVAL, Failure, LAG_LOG_INTERVAL, Stream, backoff, classify};
use crate::checkpoint::{Checkpoint, ShardPosition, SourcePosition, kinesis_source_key};
use crate::config::{KinesisConfig, StartPosition};
use crate::source::lease::{Claims, LeaseLink, LeaseState, Leases, Note};
use crate::source::{SourceChunk, SourceError, SourceInfo};
use crate::telemetry::ShardLags;

/// Where a shard's reading is.
enum ShardState {
    /// Not read: parents not yet fully committed, or (with leases) another
    /// task holds it.
    Waiting,
    /// A reader task runs; `stop` asks it to stop for a hand-off.
    Reading {
        task: JoinHandle<Option<ShardPosition>>,
        stop: watch::Sender<bool>,
        /// Where it started, and where its last batch handed over ends: a
        /// reader that panics starts again from there.
        start: IteratorStart,
        handed: Arc<std::sync::Mutex<ShardPosition>>,
    },
    /// Read to its end; the end is not committed yet.
    Ended,
    /// Its reader was asked to stop so that the lease can go to another
    /// task: waiting for the reader's last position (`until`), then for the
    /// table's checkpoint to get there.
    HandingOff {
        task: Option<JoinHandle<Option<ShardPosition>>>,
        until: Option<ShardPosition>,
        since: Instant,
    },
    /// Its end is committed (this run or an earlier one).
    Done,
}

impl ShardState {
    /// Aborts the shard's reader task, if one runs.
    fn abort_reader(&self) {
        if let ShardState::Reading { task, .. }
        | ShardState::HandingOff {
            task: Some(task), ..
        } = self
        {
            task.abort();
        }
    }
}

struct KnownShard {
    parents: Vec<String>,
    state: ShardState,
    /// With leases: since when this task holds the shard's lease (a start
    /// waits for a look at the table taken after it).
    leased_since: Option<Instant>,
    /// With leases: the keeper was told its end is committed.
    end_noted: bool,
}

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

/// The panic message of a finished reader task, `None` if it returned.
fn panic_of(task: JoinHandle<Option<ShardPosition>>) -> Option<String> {
    match futures::FutureExt::now_or_never(task) {
        Some(Err(e)) if e.is_panic() => Some(crate::telemetry::join_error_message(e)),
        _ => None,
    }
}

/// Logs and counts a shard reader that panicked (a bug) and is started again.
fn reader_panicked(shard: &str, message: &str, at: &ShardPosition) {
    crate::telemetry::metrics().stage_restarted("shard-reader");
    tracing::error!(
        shard = %shard,
        message = %message,
        from = ?at.seq,
        "a shard reader panicked: starting it again after the last batch it handed over"
    );
}

/// How often the table's checkpoint is looked at while a leased child shard
/// waits for parents another task reads.
const PARENT_POLL: Duration = Duration::from_secs(2);
/// Pause before loading the table's checkpoint again after a failure.
const LOOK_RETRY: Duration = Duration::from_secs(1);

pub(super) struct Coordinator {
    stream: Stream,
    consumer: String,
    start_position: StartPosition,
    drain: bool,
    client: Client,
    tx: mpsc::Sender<Result<SourceChunk, SourceError>>,
    lags: ShardLags,
    shards: BTreeMap<String, KnownShard>,
    sharing: Option<Sharing>,
    /// The table's checkpoint as last known: this task's own commits and
    /// (with leases) what the table showed when last loaded.
    view: Checkpoint,
    /// When the table was last loaded (with leases).
    view_loaded: Option<Instant>,
    /// When loading it was last tried (failures are retried once a second).
    view_tried: Option<Instant>,
    /// The shards the keeper was last told need reading.
    active_noted: BTreeSet<String>,
}

impl Coordinator {
    pub(super) fn new(
        config: &KinesisConfig,
        client: Client,
        tx: mpsc::Sender<Result<SourceChunk, SourceError>>,
        lags: ShardLags,
        sharing: Option<Sharing>,
    ) -> Self {
        Coordinator {
            stream: Stream::new(&config.stream),
            consumer: config.consumer_name.clone(),
            start_position: config.start_position,
            drain: config.drain,
            client,
            tx,
            lags,
            shards: BTreeMap::new(),
            sharing,
            view: Checkpoint::new(),
            view_loaded: None,
            view_tried: None,
            active_noted: BTreeSet::new(),
        }
    }

    pub(super) async fn run(mut self, mut committed: watch::Receiver<Checkpoint>) {
        let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<String>();
        let mut next_listing = Instant::now();
        let mut next_lag_log = Instant::now() + LAG_LOG_INTERVAL;
        let mut leases = self.sharing.as_ref().map(|s| s.link.leases.clone());
        loop {
            if Instant::now() >= next_lag_log {
                self.log_lags();
                next_lag_log = Instant::now() + LAG_LOG_INTERVAL;
            }
            if Instant::now() >= next_listing {
                match self.list_shards().await {
                    Ok(listed) => self.learn(listed),
                    Err(e) => {
                        let _ = self.tx.send(Err(e)).await;
                        return self.stop();
                    }
                }
                next_listing = Instant::now() + DISCOVERY_INTERVAL;
            }
            let own = committed.borrow_and_update().clone();
            merge_newer(&mut self.view, &own);
            if self.sharing.is_some() {
                self.share(&ended_tx).await;
            } else {
                let view = self.view.clone();
                self.settle(&view, &ended_tx);
            }
            if self.tx.is_closed() {
                return self.stop();
            }
            if self.drain && self.drained() {
                tracing::info!(stream = %self.stream.name, "every shard is read to its tip and committed: stopping");
                return self.stop();
            }
            let leases_changed = async {
                match leases.as_mut() {
                    Some(rx) => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                changed = committed.changed() => {
                    if changed.is_err() {
                        return self.stop();
                    }
                }
                Some(shard) = ended_rx.recv() => {
                    if let Some(known) = self.shards.get_mut(&shard)
                        && matches!(known.state, ShardState::Reading { .. })
                    {
                        known.state = ShardState::Ended;
                    }
                    // Its children may not be listed yet.
                    next_listing = Instant::now();
                }
                () = leases_changed => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// One line per shard being read: its `MillisBehindLatest` and records.
    fn log_lags(&self) {
        let lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        for (shard, lag) in lags.iter().filter(|(_, l)| !l.ended) {
            tracing::info!(
                shard = %shard,
                millis_behind = lag.millis_behind,
                records = lag.records,
                "shard lag"
            );
        }
    }

    /// Aborts the readers (anything they did not hand over is re-read after
    /// the checkpoint next time).
    fn stop(self) {
        for known in self.shards.values() {
            known.state.abort_reader();
        }
    }

    fn learn(&mut self, listed: Vec<Shard>) {
        let ids: Vec<String> = listed.iter().map(|s| s.shard_id().to_string()).collect();
        for shard in listed {
            let id = shard.shard_id().to_string();
            if self.shards.contains_key(&id) {
                continue;
            }
            // Parents past the stream's retention are no longer listed: there
            // is nothing left of them to wait for.
            let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .filter(|p| ids.iter().any(|i| i == p))
                .map(str::to_string)
                .collect();
            tracing::debug!(shard = %id, ?parents, "found shard");
            self.shards.insert(
                id,
                KnownShard {
                    parents,
                    state: ShardState::Waiting,
                    leased_since: None,
                    end_noted: false,
                },
            );
        }
    }

    fn key(&self, id: &str) -> String {
        kinesis_source_key(&self.stream.name, &self.consumer, id)
    }

    fn position(&self, checkpoint: &Checkpoint, id: &str) -> Option<ShardPosition> {
        match checkpoint.get(&self.key(id)) {
            Some(SourcePosition::Shard(p)) => Some(p.clone()),
            _ => None,
        }
    }

    /// Marks committed ends, notices finished readers (restarting one that
    /// panicked), starts shards whose parents are done.
    fn settle(&mut self, checkpoint: &Checkpoint, ended_tx: &mpsc::UnboundedSender<String>) {
        let mut restarts = Vec::new();
        for (id, known) in &mut self.shards {
            let key = kinesis_source_key(&self.stream.name, &self.consumer, id);
            let committed_end =
                matches!(checkpoint.get(&key), Some(SourcePosition::Shard(p)) if p.end);
            let state = std::mem::replace(&mut known.state, ShardState::Waiting);
            known.state = match state {
                _ if committed_end => ShardState::Done,
                ShardState::Reading {
                    task,
                    start,
                    handed,
                    ..
                } if task.is_finished() => match panic_of(task) {
                    // A reader stops by itself only at the shard's end (the
                    // end message may still be on its way) or on a fatal
                    // error it has reported.
                    None => ShardState::Ended,
                    Some(message) => {
                        let at = handed.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        reader_panicked(id, &message, &at);
                        restarts.push((id.clone(), start, at));
                        ShardState::Waiting
                    }
                },
                state => state,
            };
        }
        for (id, start, at) in restarts {
            let start = at.seq.clone().map_or(start, IteratorStart::After);
            self.spawn_reader(&id, start, at, ended_tx);
        }
        for id in self.startable(None) {
            self.start_reader(&id, checkpoint, ended_tx);
        }
    }

    /// Waiting shards whose parents are done (and, with `leases`, whose
    /// lease this task holds and may read).
    fn startable(&self, leases: Option<&Leases>) -> Vec<String> {
        let done = |id: &String| {
            self.shards
                .get(id)
                .is_some_and(|k| matches!(k.state, ShardState::Done))
        };
        self.shards
            .iter()
            .filter(|(_, k)| matches!(k.state, ShardState::Waiting))
            .filter(|(_, k)| k.parents.iter().all(done))
            .filter(|(id, _)| leases.is_none_or(|l| l.get(*id) == Some(&LeaseState::Held)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn start_reader(
        &mut self,
        id: &str,
        checkpoint: &Checkpoint,
        ended_tx: &mpsc::UnboundedSender<String>,
    ) {
        let Some(parents) = self.shards.get(id).map(|k| k.parents.clone()) else {
            return;
        };
        let position = |id: &str| self.position(checkpoint, id);
        let start = match position(id) {
            Some(ShardPosition { seq: Some(seq), .. }) => IteratorStart::After(seq),
            // A child of a shard this consumer read continues it.
            _ if self.start_position == StartPosition::TrimHorizon
                || parents
                    .iter()
                    .any(|p| position(p).is_some_and(|p| p.seq.is_some())) =>
            {
                IteratorStart::TrimHorizon
            }
            _ => match self.start_position {
                StartPosition::Latest => IteratorStart::Latest,
                StartPosition::AtTimestamp(t) => IteratorStart::AtTimestamp(t),
                StartPosition::TrimHorizon => IteratorStart::TrimHorizon,
            },
        };
        let committed = position(id).unwrap_or(ShardPosition {
            seq: None,
            end: false,
        });
        self.spawn_reader(id, start, committed, ended_tx);
    }

    /// Starts a reader of shard `id` at `start`, `committed` being the
    /// position before it.
    fn spawn_reader(
        &mut self,
        id: &str,
        start: IteratorStart,
        committed: ShardPosition,
        ended_tx: &mpsc::UnboundedSender<String>,
    ) {
        let key = self.key(id);
        let lease = self.sharing.as_ref().map(|s| s.claims.grant(&key));
        tracing::info!(shard = %id, start = ?start, "reading shard");
        let reader = ShardReader {
            client: self.client.clone(),
            stream: self.stream.clone(),
            shard_id: id.to_string(),
            source: Arc::new(SourceInfo {
                key,
                display: Arc::from(format!("kinesis:{}/{id}", self.stream.name)),
                lease,
                checkpointed: true,
            }),
            tx: self.tx.clone(),
            lags: self.lags.clone(),
            ended_tx: ended_tx.clone(),
            handed: Arc::new(std::sync::Mutex::new(committed.clone())),
        };
        let handed = reader.handed.clone();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(reader.run(start.clone(), committed, stop_rx));
        if let Some(known) = self.shards.get_mut(id) {
            known.state = ShardState::Reading {
                task,
                stop,
                start,
                handed,
            };
        }
    }

    /// [`Self::settle`] for a task sharing the stream: only shards it holds
    /// a lease of are read; a lost lease stops its reader at once; a
    /// hand-off stops it gracefully and reports once its records are
    /// committed; a newly leased shard starts from the table's checkpoint as
    /// it is now, looked at after the lease was taken.
    async fn share(&mut self, ended_tx: &mpsc::UnboundedSender<String>) {
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
        let due = |loaded: Option<Instant>, since: Option<Instant>| match (loaded, since) {
            (None, _) => true,
            (Some(l), Some(s)) => l <= s,
            (Some(_), None) => false,
        };
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
            let held = leases.get(id);
            if committed.as_ref().is_some_and(|p| p.end) {
                if let ShardState::Reading { task, .. } = &known.state {
                    task.abort();
                }
                known.state = ShardState::Done;
                if held.is_some() && !known.end_noted {
                    known.end_noted = true;
                    let _ = notes.send(Note::Ended(id.clone()));
                }
                continue;
            }
            let state = std::mem::replace(&mut known.state, ShardState::Waiting);
            known.state = match (state, held) {
                // Lost: stop at once; what it read is dropped by the pipeline.
                (ShardState::Reading { task, .. }, None) => {
                    task.abort();
                    claims.revoke(&key);
                    ShardState::Waiting
                }
                (ShardState::Ended | ShardState::HandingOff { .. }, None) => {
                    claims.revoke(&key);
                    ShardState::Waiting
                }
                (ShardState::Reading { task, handed, .. }, Some(_)) if task.is_finished() => {
                    match panic_of(task) {
                        None => ShardState::Ended,
                        Some(message) => {
                            // Read again from the table's checkpoint under a
                            // new claim: what the old claim buffered is dropped.
                            let at = handed.lock().unwrap_or_else(|e| e.into_inner()).clone();
                            reader_panicked(id, &message, &at);
                            claims.revoke(&key);
                            // Start again only after a look at the table
                            // taken from now on: from its checkpoint as it is.
                            known.leased_since = Some(now);
                            ShardState::Waiting
                        }
                    }
                }
                (ShardState::Reading { task, stop, .. }, Some(LeaseState::HandOff)) => {
                    let _ = stop.send(true);
                    ShardState::HandingOff {
                        task: Some(task),
                        until: None,
                        since: now,
                    }
                }
                (ShardState::Waiting, Some(LeaseState::HandOff)) => {
                    // Nothing read here: hand it over at once.
                    claims.revoke(&key);
                    let _ = notes.send(Note::Committed(id.clone()));
                    ShardState::Waiting
                }
                (
                    ShardState::HandingOff {
                        mut task,
                        mut until,
                        since,
                    },
                    Some(_),
                ) => {
                    if let Some(t) = task.take_if(|t| t.is_finished()) {
                        match futures::FutureExt::now_or_never(t) {
                            Some(Ok(Some(at))) => until = Some(at),
                            Some(Err(e)) if e.is_panic() => {
                                // Nothing of it is committed for sure: the
                                // next owner reads from the table's checkpoint.
                                let message = crate::telemetry::join_error_message(e);
                                reader_panicked(
                                    id,
                                    &message,
                                    &ShardPosition {
                                        seq: None,
                                        end: false,
                                    },
                                );
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
                    let committed_there = until.as_ref().is_some_and(|u| {
                        let at = SourcePosition::Shard(u.clone());
                        committed
                            .clone()
                            .is_some_and(|c| !at.is_after(&SourcePosition::Shard(c)))
                            || (u.seq.is_none() && !u.end)
                    });
                    if committed_there || now - since >= handoff_timeout {
                        if !committed_there {
                            tracing::warn!(shard = %id, "the hand-off's commit is late: handing the shard over anyway (what was not committed is read again by its next owner)");
                        }
                        claims.revoke(&key);
                        let _ = notes.send(Note::Committed(id.clone()));
                        ShardState::Waiting
                    } else {
                        ShardState::HandingOff { task, until, since }
                    }
                }
                (state, _) => state,
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

    /// Every shard is done, or read to its tip with nothing waiting on it.
    fn drained(&self) -> bool {
        let lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        self.shards.iter().all(|(id, k)| match k.state {
            ShardState::Done => true,
            ShardState::Reading { .. } => lags.get(id).is_some_and(|l| l.caught_up),
            ShardState::Waiting | ShardState::Ended | ShardState::HandingOff { .. } => false,
        })
    }

    async fn list_shards(&self) -> Result<Vec<Shard>, SourceError> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        let mut failures = 0;
        loop {
            // With a token the stream must not be named again.
            let request = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None if self.stream.is_arn => {
                    self.client.list_shards().stream_arn(&self.stream.given)
                }
                None => self.client.list_shards().stream_name(&self.stream.given),
            };
            match request.send().await {
                Ok(out) => {
                    failures = 0;
                    shards.extend(out.shards().iter().cloned());
                    match out.next_token() {
                        Some(t) => token = Some(t.to_string()),
                        None => return Ok(shards),
                    }
                }
                Err(e) => match classify(&e) {
                    Failure::Throttled | Failure::Transient | Failure::Expired => {
                        failures += 1;
                        tracing::warn!(stream = %self.stream.name, error = %DisplayErrorContext(&e), "ListShards failed; retrying");
                        tokio::time::sleep(backoff(failures)).await;
                    }
                    Failure::Fatal => {
                        return Err(SourceError::Kinesis {
                            stream: self.stream.given.clone(),
                            operation: "ListShards".into(),
                            message: DisplayErrorContext(&e).to_string(),
                        });
                    }
                },
            }
        }
    }
}

/// Overlays the positions of `newer` that are further than `view`'s: both
/// are the table's checkpoint at some moment, and positions only advance.
fn merge_newer(view: &mut Checkpoint, newer: &Checkpoint) {
    for (key, position) in &newer.sources {
        if view.get(key).is_none_or(|p| position.is_after(p)) {
            view.set(key, position.clone());
        }
    }
}
