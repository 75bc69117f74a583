//! A shard reader: polls `GetRecords` on one shard at the per-shard rate
//! and hands batches to the pipeline; it never decides what is committed.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::types::ShardIteratorType;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::answer::{Bodies, Page, Taken};
use super::{
    CALLS_PER_SECOND, Failure, IDLE_POLL, RECORDS_PER_CALL, ShardBatch, ShardData, Stream, backoff,
    classify,
};
use crate::checkpoint::ShardPosition;
use crate::source::{SourceChunk, SourceError, SourceInfo};
use crate::telemetry::ShardLags;

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum IteratorStart {
    After(String),
    TrimHorizon,
    Latest,
    AtTimestamp(i64),
}

pub(super) struct ShardReader {
    pub(super) client: Client,
    pub(super) stream: Stream,
    pub(super) shard_id: String,
    pub(super) source: Arc<SourceInfo>,
    pub(super) tx: mpsc::Sender<Result<SourceChunk, SourceError>>,
    pub(super) lags: ShardLags,
    pub(super) ended_tx: mpsc::UnboundedSender<String>,
    /// The position after the last batch handed to the pipeline: where a
    /// restart after a panic goes on, so nothing is read twice or skipped.
    pub(super) handed: Arc<std::sync::Mutex<ShardPosition>>,
    /// Where its answers are read into.
    pub(super) bodies: Bodies,
}

/// Resolves once `stop` turns true (never, when its sender is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl ShardReader {
    /// Reads until the shard's end, a fatal error (sent on `tx`), the
    /// pipeline going away, or `stop` (a hand-off). After a stop, the last
    /// batch handed over is an empty one asking for a commit, and the
    /// position after it is returned: once the table's checkpoint is
    /// there, everything read here is committed.
    pub(super) async fn run(
        self,
        start: IteratorStart,
        committed: ShardPosition,
        mut stop: watch::Receiver<bool>,
    ) -> Option<ShardPosition> {
        match self.read(start, committed, &mut stop).await {
            Ok(stopped_at) => stopped_at,
            Err(e) => {
                let _ = self.tx.send(Err(e)).await;
                None
            }
        }
    }

    async fn read(
        &self,
        start: IteratorStart,
        committed: ShardPosition,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<ShardPosition>, SourceError> {
        let mut position = committed;
        let mut iterator = self.iterator(&start).await?;
        let min_gap = Duration::from_secs(1) / CALLS_PER_SECOND;
        let mut last_call: Option<Instant> = None;
        let mut failures = 0;
        loop {
            if let Some(t) = last_call {
                tokio::select! {
                    () = tokio::time::sleep_until(t + min_gap) => {}
                    () = stop_requested(stop) => {}
                }
            }
            if *stop.borrow() {
                let marker = ShardBatch {
                    source: self.source.clone(),
                    records: Vec::new(),
                    data: ShardData::Decoded(Vec::new()),
                    start: position.clone(),
                    end: position.clone(),
                    handoff: true,
                };
                let _ = self.tx.send(Ok(SourceChunk::Shard(marker))).await;
                tracing::info!(shard = %self.shard_id, at = ?position.seq, "stopped reading the shard for a hand-off");
                return Ok(Some(position));
            }
            last_call = Some(Instant::now());
            let taken = Taken::new(&self.bodies);
            let answer = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(RECORDS_PER_CALL)
                .customize()
                .interceptor(taken.interceptor())
                .send()
                .await;
            let out = match answer {
                Ok(out) => {
                    failures = 0;
                    crate::failpoint::hit(crate::failpoint::FailPoint::ShardRead);
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
                            tokio::select! {
                                () = tokio::time::sleep(backoff(failures)) => {}
                                () = stop_requested(stop) => {}
                            }
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
            let Page { records, data } =
                taken.take().unwrap_or_else(|| Page::from_sdk(out.records));
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
                    data,
                    start: position.clone(),
                    end: end.clone(),
                    handoff: false,
                };
                if self.tx.send(Ok(SourceChunk::Shard(batch))).await.is_err() {
                    return Ok(None);
                }
                *self.handed.lock().unwrap_or_else(|e| e.into_inner()) = end.clone();
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
                    return Ok(None);
                }
            }
            if read == 0 {
                tokio::select! {
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    () = stop_requested(stop) => {}
                }
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
