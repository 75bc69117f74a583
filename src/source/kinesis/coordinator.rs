//! The coordinator: lists the shards, decides which may be read (parents
//! committed to their end first) and runs one reader per shard.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::Shard;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::reader::{IteratorStart, ShardReader};
use super::{
    DISCOVERY_INTERVAL, Failure, LAG_LOG_INTERVAL, ShardLags, Stream, backoff, classify, source_key,
};
use crate::config::{KinesisConfig, StartPosition};
use crate::source::{SourceChunk, SourceError, SourceInfo};
use crate::table::checkpoint::{Checkpoint, ShardPosition, SourcePosition};

/// Where a shard's reading is.
enum ShardState {
    /// Parents not yet fully committed.
    Waiting,
    /// A reader task runs.
    Reading(JoinHandle<()>),
    /// Read to its end; the end is not committed yet.
    Ended,
    /// Its end is committed (this run or an earlier one).
    Done,
}

struct KnownShard {
    parents: Vec<String>,
    state: ShardState,
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
}

impl Coordinator {
    pub(super) fn new(
        config: &KinesisConfig,
        client: Client,
        tx: mpsc::Sender<Result<SourceChunk, SourceError>>,
        lags: ShardLags,
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
        }
    }

    pub(super) async fn run(mut self, mut committed: watch::Receiver<Checkpoint>) {
        let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<String>();
        let mut next_listing = Instant::now();
        let mut next_lag_log = Instant::now() + LAG_LOG_INTERVAL;
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
            let checkpoint = committed.borrow_and_update().clone();
            self.settle(&checkpoint, &ended_tx);
            if self.tx.is_closed() {
                return self.stop();
            }
            if self.drain && self.drained() {
                tracing::info!(stream = %self.stream.name, "every shard is read to its tip and committed: stopping");
                return self.stop();
            }
            tokio::select! {
                changed = committed.changed() => {
                    if changed.is_err() {
                        return self.stop();
                    }
                }
                Some(shard) = ended_rx.recv() => {
                    if let Some(known) = self.shards.get_mut(&shard) {
                        known.state = ShardState::Ended;
                    }
                    // Its children may not be listed yet.
                    next_listing = Instant::now();
                }
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
            if let ShardState::Reading(task) = &known.state {
                task.abort();
            }
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
                },
            );
        }
    }

    /// Marks committed ends, notices finished readers, starts shards whose
    /// parents are done.
    fn settle(&mut self, checkpoint: &Checkpoint, ended_tx: &mpsc::UnboundedSender<String>) {
        let key = |id: &str| source_key(&self.stream.name, &self.consumer, id);
        let position = |id: &str| match checkpoint.get(&key(id)) {
            Some(SourcePosition::Shard(p)) => Some(p.clone()),
            _ => None,
        };
        for (id, known) in &mut self.shards {
            let committed_end = position(id).is_some_and(|p| p.end);
            match &known.state {
                _ if committed_end => known.state = ShardState::Done,
                ShardState::Reading(task) if task.is_finished() => {
                    // A reader stops by itself only at the shard's end (the
                    // end message may still be on its way) or on a fatal
                    // error it has reported.
                    known.state = ShardState::Ended;
                }
                _ => {}
            }
        }
        let done: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, k)| matches!(k.state, ShardState::Done))
            .map(|(id, _)| id.clone())
            .collect();
        let startable: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, k)| matches!(k.state, ShardState::Waiting))
            .filter(|(_, k)| k.parents.iter().all(|p| done.contains(p)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in startable {
            let parents = &self.shards[&id].parents;
            let start = match position(&id) {
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
            let committed = position(&id).unwrap_or(ShardPosition {
                seq: None,
                end: false,
            });
            tracing::info!(shard = %id, start = ?start, "reading shard");
            let reader = ShardReader {
                client: self.client.clone(),
                stream: self.stream.clone(),
                shard_id: id.clone(),
                source: Arc::new(SourceInfo {
                    key: key(&id),
                    display: Arc::from(format!("kinesis:{}/{id}", self.stream.name)),
                }),
                tx: self.tx.clone(),
                lags: self.lags.clone(),
                ended_tx: ended_tx.clone(),
            };
            let task = tokio::spawn(reader.run(start, committed));
            if let Some(known) = self.shards.get_mut(&id) {
                known.state = ShardState::Reading(task);
            }
        }
    }

    /// Every shard is done, or read to its tip with nothing waiting on it.
    fn drained(&self) -> bool {
        let lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        self.shards.iter().all(|(id, k)| match k.state {
            ShardState::Done => true,
            ShardState::Reading(_) => lags.get(id).is_some_and(|l| l.caught_up),
            ShardState::Waiting | ShardState::Ended => false,
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
