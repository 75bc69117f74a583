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

use super::answer::Bodies;
use super::reader::{IteratorStart, ShardReader};
use super::shard_state::{self, Finish, Known, Listed, Phase, Step, merge_newer};
use super::{DISCOVERY_INTERVAL, Failure, LAG_LOG_INTERVAL, Stream, backoff, classify};
use crate::checkpoint::{Checkpoint, ShardPosition, SourcePosition, kinesis_source_key};
use crate::config::{KinesisConfig, StartPosition};
use crate::source::lease::Leases;
use crate::source::{SourceChunk, SourceError, SourceInfo};
use crate::telemetry::ShardLags;
use crate::telemetry::events;

mod sharing;

pub use sharing::{LoadCheckpoint, Sharing};

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
    /// The phase, for [`shard_state`]'s decisions.
    fn phase(&self) -> Phase {
        match self {
            ShardState::Waiting => Phase::Waiting,
            ShardState::Reading { .. } => Phase::Reading,
            ShardState::Ended => Phase::Ended,
            ShardState::HandingOff { .. } => Phase::HandingOff,
            ShardState::Done => Phase::Done,
        }
    }

    /// How its reader task stands (a panic's message with it); `Running`
    /// when none was started.
    fn finish(&mut self) -> (Finish, Option<String>) {
        let ShardState::Reading { task, .. } = self else {
            return (Finish::Running, None);
        };
        if !task.is_finished() {
            return (Finish::Running, None);
        }
        match futures::FutureExt::now_or_never(task) {
            Some(Err(e)) if e.is_panic() => (
                Finish::Panicked,
                Some(crate::telemetry::join_error_message(e)),
            ),
            _ => (Finish::Returned, None),
        }
    }

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
    /// Buffers for the readers' answers, shared by all of them.
    bodies: Bodies,
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
            bodies: Bodies::default(),
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
        let listed: Vec<Listed<'_>> = listed
            .iter()
            .map(|s| Listed {
                id: s.shard_id(),
                parents: [s.parent_shard_id(), s.adjacent_parent_shard_id()],
            })
            .collect();
        for (id, parents) in shard_state::discovered(&listed, |id| self.shards.contains_key(id)) {
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
            let (finish, message) = known.state.finish();
            match shard_state::settle(known.state.phase(), committed_end, finish) {
                Step::Done => known.state = ShardState::Done,
                // A reader stops by itself only at the shard's end (the end
                // message may still be on its way) or on a fatal error it
                // has reported.
                Step::Ended => known.state = ShardState::Ended,
                Step::Restart => {
                    let state = std::mem::replace(&mut known.state, ShardState::Waiting);
                    if let ShardState::Reading { start, handed, .. } = state {
                        let at = handed.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        events::shard_reader_restarted(
                            id,
                            message.as_deref().unwrap_or_default(),
                            at.seq.as_deref(),
                        );
                        restarts.push((id.clone(), start, at));
                    }
                }
                _ => {}
            }
        }
        for (id, start, at) in restarts {
            let start = shard_state::restart_from(start, &at);
            self.spawn_reader(&id, start, at, ended_tx);
        }
        for id in self.startable(None) {
            self.start_reader(&id, checkpoint, ended_tx);
        }
    }

    /// Waiting shards whose parents are done (and, with `leases`, whose
    /// lease this task holds and may read).
    fn startable(&self, leases: Option<&Leases>) -> Vec<String> {
        let known: Vec<Known<'_>> = self
            .shards
            .iter()
            .map(|(id, k)| Known {
                id,
                phase: k.state.phase(),
                parents: &k.parents,
            })
            .collect();
        shard_state::startable(&known, leases)
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
        let parent_read = parents
            .iter()
            .any(|p| position(p).is_some_and(|p| p.seq.is_some()));
        let start = shard_state::start_at(position(id).as_ref(), parent_read, self.start_position);
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
            bodies: self.bodies.clone(),
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

    /// Every shard is done, or read to its tip with nothing waiting on it.
    fn drained(&self) -> bool {
        let lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        self.shards.iter().all(|(id, k)| {
            let caught_up = lags.get(id).is_some_and(|l| l.caught_up);
            shard_state::drained(k.state.phase(), caught_up)
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
