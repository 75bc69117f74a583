//! The Kinesis source: a polling consumer over every shard of a data stream.
//!
//! A coordinator lists the shards (`ListShards`, paged) and runs one reader
//! task per shard. Each reader polls `GetRecords` at most five times a second
//! (the per-shard limit), hands batches to the pipeline through the shared
//! bounded channel, and backs off with jitter when throttled. A reader never
//! decides what is committed: it starts after the shard's committed sequence
//! number (`AFTER_SEQUENCE_NUMBER`), or at the configured position when the
//! shard has none, and an expired iterator is renewed after the last record
//! it handed over.
//!
//! Resharding: a closed shard read to its end (no `NextShardIterator`) sends
//! an end marker; the pipeline commits it at once (`end: true` in the shard's
//! checkpoint), and only then do the shard's children start, so the records
//! of a key stay in order across a split or merge, also across restarts. The
//! shard list is refreshed periodically and whenever a shard ends, so new
//! shards are picked up without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::{Shard, ShardIteratorType};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{SourceChunk, SourceError, SourceInfo};
use crate::config::{KinesisConfig, StartPosition};
use crate::table::checkpoint::{Checkpoint, ShardPosition, SourcePosition};

/// Most `GetRecords` calls per second and shard that Kinesis allows.
const CALLS_PER_SECOND: u32 = 5;
/// Records asked for per `GetRecords` call (the service's maximum).
const RECORDS_PER_CALL: i32 = 10_000;
/// Pause after a call that found nothing new.
const IDLE_POLL: Duration = Duration::from_millis(1_000);
/// How often the shard list is refreshed (also after any shard ends).
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);
/// How often every shard's lag is logged.
const LAG_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Longest pause between retries of a throttled or failed call.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A batch of records from one shard.
#[derive(Debug)]
pub struct ShardBatch {
    /// The shard as the checkpoint knows it.
    pub source: Arc<SourceInfo>,
    /// The records, in shard order.
    pub records: Vec<ShardRecord>,
    /// Position before the first record.
    pub start: ShardPosition,
    /// Position after the last record (`end`: the shard is closed and read
    /// to its end, and this batch is its last).
    pub end: ShardPosition,
}

/// One Kinesis record.
#[derive(Debug)]
pub struct ShardRecord {
    /// Its sequence number.
    pub seq: Arc<str>,
    /// Its data blob.
    pub data: Vec<u8>,
}

/// What the consumer knows of one shard, for logs and the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardLag {
    /// `MillisBehindLatest` of the last `GetRecords` answer.
    pub millis_behind: Option<i64>,
    /// Records read from it in this run.
    pub records: u64,
    /// The last call found nothing and the shard's tip was reached.
    pub caught_up: bool,
    /// Read to its end (closed shard).
    pub ended: bool,
}

/// Per-shard lag, shared by the readers and whoever reports it.
pub type ShardLags = Arc<Mutex<BTreeMap<String, ShardLag>>>;

/// The stream, by name or ARN.
#[derive(Debug, Clone)]
struct Stream {
    /// As given.
    given: String,
    /// The name (the last part of an ARN): checkpoint keys use it, so a name
    /// and an ARN of one stream share checkpoints.
    name: String,
    is_arn: bool,
}

impl Stream {
    fn new(given: &str) -> Self {
        let is_arn = given.starts_with("arn:");
        let name = if is_arn {
            given.rsplit('/').next().unwrap_or(given).to_string()
        } else {
            given.to_string()
        };
        Stream {
            given: given.to_string(),
            name,
            is_arn,
        }
    }
}

/// The checkpoint key of a shard.
pub fn source_key(stream_name: &str, consumer: &str, shard_id: &str) -> String {
    format!("kinesis:{stream_name}:{consumer}:{shard_id}")
}

/// Starts the consumer. Batches (or one fatal error) arrive on `tx`; the
/// pipeline publishes each committed checkpoint of the events table on
/// `committed`. The consumer ends (closing its side of `tx`) when drained in
/// `drain` mode, after a fatal error, or when the receiver is gone.
pub fn start(
    config: &KinesisConfig,
    client: Client,
    committed: watch::Receiver<Checkpoint>,
    tx: mpsc::Sender<Result<SourceChunk, SourceError>>,
    lags: ShardLags,
) -> JoinHandle<()> {
    let coordinator = Coordinator {
        stream: Stream::new(&config.stream),
        consumer: config.consumer_name.clone(),
        start_position: config.start_position,
        drain: config.drain,
        client,
        tx,
        lags,
        shards: BTreeMap::new(),
    };
    tokio::spawn(coordinator.run(committed))
}

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

struct Coordinator {
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
    async fn run(mut self, mut committed: watch::Receiver<Checkpoint>) {
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

/// Where a shard iterator starts.
#[derive(Debug, Clone)]
enum IteratorStart {
    After(String),
    TrimHorizon,
    Latest,
    AtTimestamp(i64),
}

struct ShardReader {
    client: Client,
    stream: Stream,
    shard_id: String,
    source: Arc<SourceInfo>,
    tx: mpsc::Sender<Result<SourceChunk, SourceError>>,
    lags: ShardLags,
    ended_tx: mpsc::UnboundedSender<String>,
}

impl ShardReader {
    async fn run(self, start: IteratorStart, committed: ShardPosition) {
        if let Err(e) = self.read(start, committed).await {
            let _ = self.tx.send(Err(e)).await;
        }
    }

    async fn read(
        &self,
        start: IteratorStart,
        committed: ShardPosition,
    ) -> Result<(), SourceError> {
        let mut position = committed;
        let mut iterator = self.iterator(&start).await?;
        let min_gap = Duration::from_secs(1) / CALLS_PER_SECOND;
        let mut last_call: Option<Instant> = None;
        let mut failures = 0;
        loop {
            if let Some(t) = last_call {
                tokio::time::sleep_until(t + min_gap).await;
            }
            last_call = Some(Instant::now());
            let answer = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(RECORDS_PER_CALL)
                .send()
                .await;
            let out = match answer {
                Ok(out) => {
                    failures = 0;
                    out
                }
                Err(e) => {
                    match classify(&e) {
                        Failure::Expired => {
                            // Renew after the last record handed over.
                            let from = position
                                .seq
                                .clone()
                                .map_or_else(|| start.clone(), IteratorStart::After);
                            tracing::info!(shard = %self.shard_id, from = ?from, "shard iterator expired; renewing it");
                            iterator = self.iterator(&from).await?;
                        }
                        Failure::Throttled | Failure::Transient => {
                            failures += 1;
                            tracing::warn!(shard = %self.shard_id, error = %DisplayErrorContext(&e), "GetRecords failed; backing off");
                            tokio::time::sleep(backoff(failures)).await;
                        }
                        Failure::Fatal => return Err(self.error("GetRecords", &e)),
                    }
                    continue;
                }
            };
            let next = out.next_shard_iterator().map(str::to_string);
            let behind = out.millis_behind_latest;
            let children: Vec<String> = out
                .child_shards()
                .iter()
                .map(|c| c.shard_id().to_string())
                .collect();
            let records: Vec<ShardRecord> = out
                .records
                .into_iter()
                .map(|r| ShardRecord {
                    seq: Arc::from(r.sequence_number),
                    data: r.data.into_inner(),
                })
                .collect();
            let read = records.len() as u64;
            if !records.is_empty() || next.is_none() {
                let end = ShardPosition {
                    seq: records
                        .last()
                        .map(|r| r.seq.to_string())
                        .or_else(|| position.seq.clone()),
                    end: next.is_none(),
                };
                let batch = ShardBatch {
                    source: self.source.clone(),
                    records,
                    start: position.clone(),
                    end: end.clone(),
                };
                if self.tx.send(Ok(SourceChunk::Shard(batch))).await.is_err() {
                    return Ok(());
                }
                position = end;
            }
            {
                let mut lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
                let lag = lags.entry(self.shard_id.clone()).or_default();
                lag.millis_behind = behind;
                lag.records += read;
                lag.caught_up = read == 0 && behind.is_none_or(|b| b == 0);
                lag.ended = next.is_none();
            }
            match next {
                Some(n) => iterator = n,
                None => {
                    tracing::info!(shard = %self.shard_id, ?children, "shard read to its end");
                    let _ = self.ended_tx.send(self.shard_id.clone());
                    return Ok(());
                }
            }
            if read == 0 {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }

    async fn iterator(&self, start: &IteratorStart) -> Result<String, SourceError> {
        let mut failures = 0;
        loop {
            let mut request = self.client.get_shard_iterator().shard_id(&self.shard_id);
            request = if self.stream.is_arn {
                request.stream_arn(&self.stream.given)
            } else {
                request.stream_name(&self.stream.given)
            };
            request = match start {
                IteratorStart::After(seq) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
                IteratorStart::TrimHorizon => {
                    request.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                IteratorStart::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
                IteratorStart::AtTimestamp(t) => request
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_sdk_kinesis::primitives::DateTime::from_secs(*t)),
            };
            match request.send().await {
                Ok(out) => {
                    return out.shard_iterator().map(str::to_string).ok_or_else(|| {
                        SourceError::Kinesis {
                            stream: self.stream.given.clone(),
                            operation: format!("GetShardIterator on {}", self.shard_id),
                            message: "the answer holds no iterator".into(),
                        }
                    });
                }
                Err(e) => match classify(&e) {
                    Failure::Throttled | Failure::Transient | Failure::Expired => {
                        failures += 1;
                        tracing::warn!(shard = %self.shard_id, error = %DisplayErrorContext(&e), "GetShardIterator failed; backing off");
                        tokio::time::sleep(backoff(failures)).await;
                    }
                    Failure::Fatal => return Err(self.error("GetShardIterator", &e)),
                },
            }
        }
    }

    fn error<E, R>(&self, operation: &str, e: &SdkError<E, R>) -> SourceError
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        SourceError::Kinesis {
            stream: self.stream.given.clone(),
            operation: format!("{operation} on {}", self.shard_id),
            message: DisplayErrorContext(e).to_string(),
        }
    }
}

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The shard iterator is too old: get a new one.
    Expired,
    /// Over a rate limit: wait and retry.
    Throttled,
    /// The network or the service hiccuped: wait and retry.
    Transient,
    /// Retrying cannot help (no such stream, access denied, bad request).
    Fatal,
}

fn classify<E, R>(e: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata,
{
    match crate::aws::error_code(e) {
        Some("ExpiredIteratorException") => Failure::Expired,
        Some(
            "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            | "KMSThrottlingException"
            | "ThrottlingException",
        ) => Failure::Throttled,
        Some("InternalFailureException" | "ServiceUnavailable" | "InternalFailure") => {
            Failure::Transient
        }
        None if crate::aws::is_transport_failure(e) => Failure::Transient,
        _ => Failure::Fatal,
    }
}

/// Exponential backoff with full jitter: up to 200 ms doubling per failure,
/// capped at [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let cap = Duration::from_millis(200)
        .saturating_mul(1 << failures.min(10))
        .min(MAX_BACKOFF);
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % (cap.as_millis() as u64 + 1);
    Duration::from_millis(jitter.max(50))
}

/// A Kinesis client from the default AWS configuration chain (environment,
/// profile, ECS task role, instance role; `AWS_ENDPOINT_URL` or
/// `AWS_ENDPOINT_URL_KINESIS` point it elsewhere).
///
/// The SDK's own retries are off: they would not respect the 5 calls per
/// second of a shard. The readers retry with their own pacing and backoff.
pub async fn client() -> Client {
    let config = aws_sdk_kinesis::config::Builder::from(&crate::aws::sdk_config().await)
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_and_arns_share_checkpoint_keys() {
        let arn = Stream::new("arn:aws:kinesis:us-east-1:123456789012:stream/clicks");
        let name = Stream::new("clicks");
        assert!(arn.is_arn && !name.is_arn);
        assert_eq!(arn.name, name.name);
        assert_eq!(
            source_key(&arn.name, "floe", "shardId-000000000002"),
            "kinesis:clicks:floe:shardId-000000000002"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for failures in 0..40 {
            let d = backoff(failures);
            assert!(d >= Duration::from_millis(50) && d <= MAX_BACKOFF, "{d:?}");
        }
    }
}
