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
//!
//! Sharing ([`Sharing`], with `--lease-table`): only the shards whose lease
//! this task holds are read, each from the table's checkpoint as loaded
//! after the lease was taken; a child waits until the table shows its
//! parents ended, whichever task committed them. See [`crate::source::lease`].

mod answer;
mod coordinator;
mod reader;
mod shard_state;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::watch;

use super::{ChunkSender, Reading, Source, SourceInfo};
use crate::checkpoint::{Checkpoint, ShardPosition};
use crate::config::KinesisConfig;
use crate::supervise::StageFailure;
use crate::telemetry::ShardLags;
pub use answer::AnswerBody;
use coordinator::Coordinator;
pub use coordinator::{LoadCheckpoint, Sharing};

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

/// A batch of records from one shard.
#[derive(Debug)]
pub struct ShardBatch {
    /// The shard as the checkpoint knows it.
    pub source: Arc<SourceInfo>,
    /// The records, in shard order.
    pub records: Vec<ShardRecord>,
    /// The records' data.
    pub data: ShardData,
    /// Position before the first record.
    pub start: ShardPosition,
    /// Position after the last record (`end`: the shard is closed and read
    /// to its end, and this batch is its last).
    pub end: ShardPosition,
    /// The reader stops after this (empty) batch to hand the shard to
    /// another task: commit soon, so the lease can go.
    pub handoff: bool,
}

/// One Kinesis record.
#[derive(Debug)]
pub struct ShardRecord {
    /// Its sequence number.
    pub seq: Arc<str>,
    /// Where its data blob is in its batch's `data`.
    pub data: std::ops::Range<usize>,
}

/// The data of a batch's records.
#[derive(Debug)]
pub enum ShardData {
    /// Decoded, one after the other (as the SDK hands them over).
    Decoded(Vec<u8>),
    /// As base64 text in the answer's body ([`answer`]), decoded record by
    /// record as they are read, so the data is never held twice.
    Base64 {
        /// The answer's body.
        body: AnswerBody,
        /// The bytes the records' data decodes to.
        decoded: usize,
    },
}

impl ShardData {
    /// Bytes of data the records hold, decoded.
    pub fn decoded_len(&self) -> usize {
        match self {
            ShardData::Decoded(data) => data.len(),
            ShardData::Base64 { decoded, .. } => *decoded,
        }
    }

    /// The data of `record` as it came: base64 text, or decoded bytes.
    pub fn raw(&self, record: &ShardRecord) -> &[u8] {
        match self {
            ShardData::Decoded(data) => &data[record.data.clone()],
            ShardData::Base64 { body, .. } => &body.bytes()[record.data.clone()],
        }
    }

    /// The data of `record`, decoded into `scratch` when it is base64; or
    /// why it cannot be (base64 text whose characters are not base64: the
    /// decoder rejects that record alone).
    pub fn of<'a>(
        &'a self,
        record: &ShardRecord,
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], String> {
        match self {
            ShardData::Decoded(_) => Ok(self.raw(record)),
            ShardData::Base64 { .. } => {
                answer::decode_base64(self.raw(record), scratch)?;
                Ok(scratch)
            }
        }
    }
}

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

/// The name of a stream given by name or ARN (what checkpoint and lease
/// keys use).
pub fn stream_name(given: &str) -> String {
    Stream::new(given).name
}

/// A Kinesis stream as a [`Source`]: the consumer, one task (`Kinesis
/// consumer`) running a reader task per shard.
pub struct KinesisSource {
    config: KinesisConfig,
    client: Client,
    lags: ShardLags,
    sharing: Option<Sharing>,
}

impl KinesisSource {
    /// The consumer of `config`'s stream through `client`, each shard's
    /// lag kept in `lags`. With `sharing`, only the shards whose lease this
    /// task holds are read.
    pub fn new(
        config: &KinesisConfig,
        client: Client,
        lags: ShardLags,
        sharing: Option<Sharing>,
    ) -> Self {
        KinesisSource {
            config: config.clone(),
            client,
            lags,
            sharing,
        }
    }
}

impl Source for KinesisSource {
    /// Starts the consumer. Batches (or one fatal error) go to `tx`; the
    /// pipeline publishes each committed checkpoint of the events table on
    /// `committed`. The consumer ends (closing its side of `tx`) when
    /// drained in `drain` mode, after a fatal error, or when the receiver is
    /// gone.
    fn start(
        self: Box<Self>,
        tx: ChunkSender,
        committed: watch::Receiver<Checkpoint>,
    ) -> Result<Reading, StageFailure> {
        let KinesisSource {
            config,
            client,
            lags,
            sharing,
        } = *self;
        let coordinator = Coordinator::new(&config, client, tx, lags, sharing);
        Ok(Reading::task(
            "Kinesis consumer",
            tokio::spawn(coordinator.run(committed)),
        ))
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

fn classify<E>(e: &SdkError<E, crate::aws::HttpResponse>) -> Failure
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
        // A 5xx answer without a code the arms above know (a proxy's HTML
        // page, a crashing server), or a failure on the way.
        _ if crate::aws::is_transient(e) => Failure::Transient,
        _ => Failure::Fatal,
    }
}

/// The wait after `failures` failed calls in a row ([`crate::retry::KINESIS`]).
fn backoff(failures: u32) -> Duration {
    crate::retry::KINESIS.delay(failures.saturating_sub(1))
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
    fn a_5xx_answer_is_transient_whatever_its_body() {
        use aws_sdk_kinesis::error::ErrorMetadata;
        use aws_sdk_kinesis::operation::get_records::GetRecordsError;
        let answer = |status: u16, code: Option<&str>| {
            let mut meta = ErrorMetadata::builder();
            if let Some(code) = code {
                meta = meta.code(code);
            }
            let raw = crate::aws::HttpResponse::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
                aws_smithy_types::body::SdkBody::from("<html><body>502 Bad Gateway</body></html>"),
            );
            classify(&SdkError::service_error(
                GetRecordsError::generic(meta.build()),
                raw,
            ))
        };
        assert_eq!(
            answer(500, None),
            Failure::Transient,
            "an HTML page, no code"
        );
        assert_eq!(answer(502, None), Failure::Transient);
        assert_eq!(answer(503, Some("SomethingNew")), Failure::Transient);
        assert_eq!(
            answer(400, Some("ProvisionedThroughputExceededException")),
            Failure::Throttled
        );
        assert_eq!(
            answer(400, Some("ExpiredIteratorException")),
            Failure::Expired
        );
        assert_eq!(answer(400, Some("AccessDeniedException")), Failure::Fatal);
        assert_eq!(answer(404, None), Failure::Fatal);
    }

    #[test]
    fn stream_names_and_arns_share_checkpoint_keys() {
        let arn = Stream::new("arn:aws:kinesis:us-east-1:123456789012:stream/clicks");
        let name = Stream::new("clicks");
        assert!(arn.is_arn && !name.is_arn);
        assert_eq!(arn.name, name.name);
        assert_eq!(
            crate::checkpoint::kinesis_source_key(&arn.name, "floe", "shardId-000000000002"),
            "kinesis:clicks:floe:shardId-000000000002"
        );
    }
}
