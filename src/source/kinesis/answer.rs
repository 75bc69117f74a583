//! `GetRecords` answers whose records Floe reads itself.
//!
//! The SDK reads an answer of up to 10,000 records by copying the whole body
//! into one buffer, then building a `Record` per record: a sequence number,
//! partition key and arrival time of its own, and the data decoded from
//! base64 into an allocation of its own. Per event, that was most of what a
//! stream cost over a file.
//!
//! So the call still goes through the SDK client (endpoint, signing,
//! timeouts, errors), but an interceptor on it ([`Taken::interceptor`])
//! takes a successful answer's body as it arrives, finds every record's
//! sequence number and base64 data in it ([`Page`]) and hands the SDK the
//! same answer without its records (`"Records": []`): the SDK still reads
//! the next shard iterator, `MillisBehindLatest` and the child shards.
//!
//! The body itself goes to the pipeline with the records ([`AnswerBody`]).
//! The decoder decodes each record's data as it reads it, so the data is
//! never held twice, and the body comes back to [`Bodies`] once the batch is
//! decoded. An answer Floe cannot read this way goes to the SDK as it came,
//! and its records are then taken from the SDK's output
//! ([`Page::from_sdk`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use aws_sdk_kinesis::types::Record;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use base64_simd::STANDARD;
use bytes::Bytes;
use http_body::{Body, Frame};
use serde::Deserialize;
use serde::de::{Deserializer, Visitor};
use serde_json::value::RawValue;

use super::{ShardData, ShardRecord};

/// The most of an answer's announced length reserved up front: Kinesis
/// answers hold at most 10 MiB of data (about 14 MB as base64).
const MAX_RESERVED: usize = 16 << 20;

/// The records of one answer, in shard order, and their data.
#[derive(Debug)]
pub(super) struct Page {
    pub(super) records: Vec<ShardRecord>,
    pub(super) data: ShardData,
}

impl Page {
    /// The records of an answer the SDK read, their data one after the
    /// other.
    pub(super) fn from_sdk(records: Vec<Record>) -> Self {
        let mut data = Vec::with_capacity(records.iter().map(|r| r.data.as_ref().len()).sum());
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let start = data.len();
            data.extend_from_slice(record.data.as_ref());
            out.push(ShardRecord {
                seq: Arc::from(record.sequence_number),
                data: start..data.len(),
            });
        }
        Page {
            records: out,
            data: ShardData::Decoded(data),
        }
    }
}

/// An answer's body, its records' data as base64 text in it: given back to
/// the [`Bodies`] it came from when dropped.
#[derive(Debug)]
pub struct AnswerBody {
    bytes: Vec<u8>,
    home: Bodies,
}

impl AnswerBody {
    /// The body's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A body of `bytes` that goes back to no pool (tests).
    #[cfg(test)]
    pub(crate) fn detached(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.to_vec(),
            home: Bodies::default(),
        }
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.bytes));
    }
}

/// The most idle answer buffers [`Bodies`] keeps (those of batches not yet
/// decoded are not counted: the pipeline's bounded channel bounds them).
const KEPT_BODIES: usize = 4;

/// Buffers that answers are read into, kept for the next answer rather than
/// freed: an answer is up to about 14 MB, and memory freed and taken again
/// is zeroed again by the kernel (a fifth of a stream's page faults). Shared
/// by a stream's readers; at most [`KEPT_BODIES`] are kept, none over
/// [`MAX_RESERVED`] bytes, whatever the number of shards.
#[derive(Debug, Clone, Default)]
pub struct Bodies(Arc<Mutex<Vec<Vec<u8>>>>);

impl Bodies {
    /// An empty buffer with room for `len` bytes.
    fn take(&self, len: usize) -> Vec<u8> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut body = kept.unwrap_or_default();
        body.reserve(len);
        body
    }

    /// Keeps `body` for a later answer, if there is room.
    fn give_back(&self, mut body: Vec<u8>) {
        if body.capacity() > MAX_RESERVED {
            return;
        }
        body.clear();
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT_BODIES {
            kept.push(body);
        }
    }
}

/// Where the interceptor of one call leaves the records it took.
#[derive(Debug, Clone)]
pub(super) struct Taken {
    page: Arc<Mutex<Option<Page>>>,
    bodies: Bodies,
}

impl Taken {
    /// A call's records, its answer read into one of `bodies`.
    pub(super) fn new(bodies: &Bodies) -> Self {
        Taken {
            page: Arc::default(),
            bodies: bodies.clone(),
        }
    }

    /// The interceptor for one `GetRecords` call.
    pub(super) fn interceptor(&self) -> TakeRecords {
        TakeRecords(self.clone())
    }

    /// The records taken from the call's answer, if it was read here.
    pub(super) fn take(&self) -> Option<Page> {
        self.page.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Takes the records out of a successful `GetRecords` answer (see the
/// module's documentation).
#[derive(Debug)]
pub(super) struct TakeRecords(Taken);

impl Intercept for TakeRecords {
    fn name(&self) -> &'static str {
        "TakeRecords"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // One attempt, one page: nothing an earlier attempt took is used.
        self.0.take();
        let response = context.response_mut();
        if !response.status().is_success() {
            return Ok(());
        }
        let announced = response
            .headers()
            .get("content-length")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let body = std::mem::replace(response.body_mut(), SdkBody::taken());
        *response.body_mut() = SdkBody::from_body_1_x(Taking {
            body,
            read: self.0.bodies.take(announced.min(MAX_RESERVED)),
            into: self.0.clone(),
            done: false,
        });
        Ok(())
    }
}

/// An answer's body as the SDK sees it: the whole answer read, then its
/// records taken.
struct Taking {
    body: SdkBody,
    read: Vec<u8>,
    into: Taken,
    done: bool,
}

impl Body for Taking {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        while let Some(frame) = ready!(Pin::new(&mut this.body).poll_frame(cx)) {
            match frame.map(Frame::into_data) {
                Ok(Ok(data)) => this.read.extend_from_slice(&data),
                // Trailers: Kinesis sends none, and the SDK reads none.
                Ok(Err(_)) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
        this.done = true;
        let read = std::mem::take(&mut this.read);
        let left = match take_records(&read) {
            Ok((records, decoded, left)) => {
                let body = AnswerBody {
                    bytes: read,
                    home: this.into.bodies.clone(),
                };
                let page = Page {
                    records,
                    data: ShardData::Base64 { body, decoded },
                };
                *this.into.page.lock().unwrap_or_else(|e| e.into_inner()) = Some(page);
                left
            }
            Err(why) => {
                tracing::debug!(%why, "a GetRecords answer left to the SDK to read");
                read
            }
        };
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(left)))))
    }
}

/// The parts of a `GetRecords` answer ([the API's
/// reference](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html)):
/// the records, and the rest kept as it came.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<WireRecord<'a>>,
    #[serde(rename = "NextShardIterator", borrow, default)]
    next_shard_iterator: Option<&'a RawValue>,
    #[serde(rename = "MillisBehindLatest", borrow, default)]
    millis_behind_latest: Option<&'a RawValue>,
    #[serde(rename = "ChildShards", borrow, default)]
    child_shards: Option<&'a RawValue>,
}

/// What Floe keeps of a record; its partition key, arrival time and
/// encryption type are skipped.
#[derive(Deserialize)]
struct WireRecord<'a> {
    #[serde(rename = "SequenceNumber", borrow)]
    sequence_number: Cow<'a, str>,
    #[serde(rename = "Data", borrow)]
    data: Base64<'a>,
}

/// A base64 string's bytes, unescaped but not checked for UTF-8: decoding
/// checks them.
struct Base64<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Base64<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Base64<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Base64(Cow::Borrowed(v)))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Base64(Cow::Owned(v.to_vec())))
            }
        }
        deserializer.deserialize_bytes(Text)
    }
}

/// The records of the answer `body` (their data as ranges of base64 text
/// in it), the bytes their data decodes to, and the answer without them
/// for the SDK; or why it is not an answer read here.
fn take_records(body: &[u8]) -> Result<(Vec<ShardRecord>, usize, Vec<u8>), String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut records = Vec::with_capacity(answer.records.len());
    let mut decoded = 0;
    for (i, record) in answer.records.iter().enumerate() {
        // Kinesis escapes nothing in base64 text; an answer that does is
        // left to the SDK rather than copied here.
        let Cow::Borrowed(text) = record.data.0 else {
            return Err(format!("record {i}: its data holds escapes"));
        };
        // Only the length is checked here: the decoder checks each
        // character as it decodes, and a record that is not base64 is
        // rejected there alone (a pass over the text fewer).
        decoded += STANDARD
            .decoded_length(text)
            .map_err(|e| format!("record {i}: its data is not base64: {e}"))?;
        let start = text.as_ptr() as usize - body.as_ptr() as usize;
        records.push(ShardRecord {
            seq: Arc::from(&*record.sequence_number),
            data: start..start + text.len(),
        });
    }
    let mut left = String::from(r#"{"Records":[]"#);
    for (name, value) in [
        ("NextShardIterator", answer.next_shard_iterator),
        ("MillisBehindLatest", answer.millis_behind_latest),
        ("ChildShards", answer.child_shards),
    ] {
        if let Some(value) = value {
            let _ = write!(left, r#","{name}":{}"#, value.get());
        }
    }
    left.push('}');
    Ok((records, decoded, left.into_bytes()))
}

/// Decodes the base64 `text` of a record into `into`.
pub(super) fn decode_base64(text: &[u8], into: &mut Vec<u8>) -> Result<(), String> {
    into.clear();
    STANDARD
        .decode_append(text, into)
        .map_err(|e| format!("its data is not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each record's sequence number and decoded data.
    fn read(records: &[ShardRecord], data: &ShardData) -> Vec<(String, Vec<u8>)> {
        let mut scratch = Vec::new();
        records
            .iter()
            .map(|r| {
                (
                    r.seq.to_string(),
                    data.of(r, &mut scratch).unwrap().to_vec(),
                )
            })
            .collect()
    }

    fn expected(records: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        records
            .iter()
            .map(|(seq, data)| (seq.to_string(), data.to_vec()))
            .collect()
    }

    #[test]
    fn records_are_taken_and_the_rest_is_left_as_it_came() {
        let body = br#"{"Records":[
            {"SequenceNumber":"495","ApproximateArrivalTimestamp":1.7E9,"Data":"eyJhIjoxfQ==","PartitionKey":"k","EncryptionType":"NONE"},
            {"Data":"","SequenceNumber":"496","PartitionKey":"k"},
            {"SequenceNumber":"4\u00397","Data":"Pz8/","PartitionKey":"\u006b"}],
            "NextShardIterator":"AAAA\/x==","MillisBehindLatest":12,
            "ChildShards":[{"ShardId":"shardId-1","ParentShards":["shardId-0"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}}],
            "Unknown":{"x":[1]}}"#;
        let (records, decoded, left) = take_records(body).unwrap();
        let data = ShardData::Base64 {
            body: AnswerBody::detached(body),
            decoded,
        };
        assert_eq!(
            read(&records, &data),
            expected(&[("495", br#"{"a":1}"#), ("496", b""), ("497", b"???")])
        );
        assert_eq!(data.decoded_len(), 10);
        assert_eq!(
            String::from_utf8(left).unwrap(),
            r#"{"Records":[],"NextShardIterator":"AAAA\/x==","MillisBehindLatest":12,"ChildShards":[{"ShardId":"shardId-1","ParentShards":["shardId-0"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}}]}"#
        );
        // A closed shard's last answer: no iterator, null or absent.
        let (records, decoded, left) =
            take_records(br#"{"Records":[],"NextShardIterator":null,"ChildShards":[]}"#).unwrap();
        assert_eq!((records.len(), decoded), (0, 0));
        assert_eq!(left, br#"{"Records":[],"ChildShards":[]}"#);
    }

    #[test]
    fn an_answer_not_read_here_says_why() {
        let why = |body: &[u8]| take_records(body).unwrap_err();
        assert!(
            why(b"<html>502</html>").starts_with("expected value"),
            "{}",
            why(b"<html>502</html>")
        );
        assert!(why(br#"{"NextShardIterator":"A"}"#).contains("missing field `Records`"));
        assert!(
            why(br#"{"Records":[{"SequenceNumber":"1","Data":"e30="},{"SequenceNumber":"2","Data":"not base64!"}]}"#)
                .starts_with("record 1: its data is not base64"),
            "a length that is not base64's"
        );
        assert_eq!(
            why(br#"{"Records":[{"SequenceNumber":"1","Data":"Pz8\/"}]}"#),
            "record 0: its data holds escapes"
        );
    }

    /// A record whose data has the length of base64 but not its characters
    /// is taken with the others; reading it says why it cannot be decoded,
    /// and the records around it read as they are.
    #[test]
    fn a_record_that_is_not_base64_fails_alone() {
        let body = br#"{"Records":[{"SequenceNumber":"1","Data":"e30="},{"SequenceNumber":"2","Data":"no base64!!!"},{"SequenceNumber":"3","Data":"Pz8/"}]}"#;
        let (records, decoded, _) = take_records(body).unwrap();
        assert_eq!((records.len(), decoded), (3, 2 + 9 + 3));
        let data = ShardData::Base64 {
            body: AnswerBody::detached(body),
            decoded,
        };
        let mut scratch = Vec::new();
        assert_eq!(data.of(&records[0], &mut scratch).unwrap(), b"{}");
        let why = data.of(&records[1], &mut scratch).unwrap_err();
        assert!(why.starts_with("its data is not base64"), "{why}");
        assert_eq!(data.of(&records[2], &mut scratch).unwrap(), b"???");
    }

    #[test]
    fn the_sdks_records_are_read_alike() {
        let record = |seq: &str, data: &[u8]| {
            Record::builder()
                .sequence_number(seq)
                .data(aws_sdk_kinesis::primitives::Blob::new(data))
                .partition_key("k")
                .build()
                .unwrap()
        };
        let page = Page::from_sdk(vec![
            record("1", b"{}"),
            record("2", b""),
            record("3", b"abc"),
        ]);
        assert_eq!(
            read(&page.records, &page.data),
            expected(&[("1", b"{}"), ("2", b""), ("3", b"abc")])
        );
        assert_eq!(page.data.decoded_len(), 5);
    }

    #[test]
    fn answer_buffers_are_reused_and_few_are_kept() {
        let bodies = Bodies::default();
        let mut body = bodies.take(1_000);
        body.extend_from_slice(b"an answer");
        let (at, capacity) = (body.as_ptr(), body.capacity());
        // A batch's body comes back when the batch is dropped.
        drop(AnswerBody {
            bytes: body,
            home: bodies.clone(),
        });
        let again = bodies.take(10);
        assert_eq!(
            (again.as_ptr(), again.capacity(), again.len()),
            (at, capacity, 0)
        );
        // However many are given back, at most KEPT_BODIES stay, and none
        // larger than an answer can be.
        for _ in 0..10 {
            bodies.give_back(Vec::with_capacity(100));
        }
        bodies.give_back(Vec::with_capacity(MAX_RESERVED + 1));
        assert_eq!(bodies.0.lock().unwrap().len(), KEPT_BODIES);
        assert!(bodies.0.lock().unwrap().iter().all(|b| b.capacity() == 100));
    }
}
