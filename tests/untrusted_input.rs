//! Property tests of the three parsers that read bytes Floe does not control:
//! KPL aggregates from Kinesis (`source::kpl::deaggregate`), records
//! (`event::decode`) and checkpoints read back from table properties
//! (`checkpoint::Checkpoint::decode`). Whatever the bytes, they answer with a
//! value or an error naming what is wrong; they never panic, and what Floe
//! writes itself reads back as written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use floe::checkpoint::{Checkpoint, FilePosition, ShardPosition, SourcePosition};
use floe::event::{DecodeLimits, RejectReason, decode};
use floe::source::kpl::deaggregate;
use md5::{Digest, Md5};
use proptest::prelude::*;

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// 2026-12-01T00:00:00Z: records may be up to a day later than this.
const NOW: f64 = 1_796_083_200.0;

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_record_size: 1 << 20,
        now_seconds: NOW,
        ..Default::default()
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `body` framed as an aggregate: magic, body, MD5 of the body.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&Md5::digest(body));
    out
}

/// An aggregate of `records` as the KPL writes it.
fn aggregate(records: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    field(1, b"pk", &mut body);
    for data in records {
        let mut record = Vec::new();
        varint(1 << 3, &mut record); // partition_key_index = 0
        varint(0, &mut record);
        field(3, data, &mut record);
        field(4, b"\x0a\x01k", &mut record); // a tag, skipped
        field(3, &record, &mut body);
    }
    framed(&body)
}

/// A record as a producer sends it, with `extra` payload members.
fn event_json(
    uuid: &str,
    name: &str,
    created_at: i64,
    extra: &BTreeMap<String, serde_json::Value>,
) -> String {
    let mut object = serde_json::Map::new();
    object.insert("event_uuid".into(), uuid.into());
    object.insert("event_name".into(), name.into());
    object.insert("created_at".into(), created_at.into());
    for (k, v) in extra {
        object.insert(k.clone(), v.clone());
    }
    serde_json::Value::Object(object).to_string()
}

fn scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ -~é😀]{0,20}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ]
}

fn position() -> impl Strategy<Value = SourcePosition> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<Option<u64>>()).prop_map(|(offset, line, prefix)| {
            SourcePosition::File(FilePosition {
                offset,
                line,
                prefix,
            })
        }),
        (proptest::option::of("[0-9]{1,56}"), any::<bool>())
            .prop_map(|(seq, end)| SourcePosition::Shard(ShardPosition { seq, end })),
    ]
}

#[test]
fn plain_records_pass_and_aggregates_split() {
    assert_eq!(deaggregate(b"{\"a\":1}"), Ok(None));
    let data = aggregate(&[b"one".to_vec(), b"two".to_vec(), Vec::new()]);
    assert_eq!(
        deaggregate(&data),
        Ok(Some(vec![&b"one"[..], &b"two"[..], &b""[..]]))
    );
}

#[test]
fn corrupt_aggregates_say_why() {
    let mut data = aggregate(&[b"one".to_vec()]);
    let last = data.len() - 1;
    data[last] ^= 1;
    assert_eq!(
        deaggregate(&data),
        Err("aggregated record fails its MD5 check".into())
    );
    assert!(deaggregate(&MAGIC).unwrap_err().contains("shorter"));
    // A valid checksum over a truncated protobuf body.
    assert_eq!(
        deaggregate(&framed(&[0x1A, 0x05, 0x08])),
        Err("protobuf field runs past the end".into())
    );
    // A record pointing outside the partition key table.
    let mut record = Vec::new();
    varint(1 << 3, &mut record);
    varint(3, &mut record);
    field(3, b"x", &mut record);
    let mut body = Vec::new();
    field(1, b"pk", &mut body);
    field(3, &record, &mut body);
    assert!(
        deaggregate(&framed(&body))
            .unwrap_err()
            .contains("partition key index 3 is outside the table of 1")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_deaggregate_without_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        if !data.starts_with(&MAGIC) {
            prop_assert_eq!(deaggregate(&data), Ok(None));
        }
        // Magic and random bytes: too short, or failing the checksum.
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&data);
        prop_assert!(deaggregate(&with_magic).is_err());
    }

    /// A body with a valid checksum reaches the protobuf reader: any body.
    #[test]
    fn any_checksummed_body_deaggregates_or_says_why(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        match deaggregate(&framed(&body)) {
            Ok(Some(records)) => prop_assert!(records.iter().all(|r| r.len() <= body.len())),
            Ok(None) => prop_assert!(false, "a framed aggregate was taken as a plain record"),
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn aggregates_split_into_exactly_their_records(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20),
        flip in any::<prop::sample::Index>(),
    ) {
        let data = aggregate(&records);
        let split = deaggregate(&data).unwrap().unwrap();
        prop_assert_eq!(split, records.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // One flipped bit past the magic is caught (checksum or structure).
        let mut corrupt = data.clone();
        let at = MAGIC.len() + flip.index(corrupt.len() - MAGIC.len());
        corrupt[at] ^= 1;
        prop_assert!(deaggregate(&corrupt).is_err());
    }

    #[test]
    fn any_bytes_decode_to_an_event_or_a_named_reason(line in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Err(rejection) = decode(&line, &limits()) {
            prop_assert!(RejectReason::ALL.contains(&rejection.reason));
            prop_assert!(!rejection.message.is_empty());
        }
    }

    #[test]
    fn valid_events_decode_to_what_was_sent(
        uuid in any::<u128>(),
        event_type in "[a-z][a-z0-9_]{0,15}",
        subtype in "[a-z]{1,10}",
        action in "[a-z]{1,10}",
        created_at in 946_684_800i64..1_796_083_200,
        extra in proptest::collection::btree_map("[a-z]{1,8}_x", scalar(), 0..6),
    ) {
        let uuid = uuid::Uuid::from_u128(uuid).to_string();
        let name = format!("{event_type}:{subtype}:{action}");
        let line = event_json(&uuid, &name, created_at, &extra);
        let event = decode(line.as_bytes(), &limits()).unwrap();
        prop_assert_eq!(event.event_uuid(), uuid.as_str());
        prop_assert_eq!(event.event_name(), name.as_str());
        prop_assert_eq!(event.event_type(), event_type.as_str());
        prop_assert_eq!(event.event_subtype(), Some(subtype.as_str()));
        prop_assert_eq!(event.created_micros, created_at * 1_000_000);
        let payload: BTreeMap<String, serde_json::Value> = match event.payload() {
            Some(p) => serde_json::from_str(p).unwrap(),
            None => BTreeMap::new(),
        };
        prop_assert_eq!(payload, extra);
        // Every strict prefix of the record is refused, never a panic.
        for end in 0..line.len() {
            if line.is_char_boundary(end) {
                prop_assert!(decode(&line.as_bytes()[..end], &limits()).is_err(), "prefix {}", &line[..end]);
            }
        }
    }

    #[test]
    fn checkpoints_read_back_as_written(
        sources in proptest::collection::btree_map("[a-z0-9:/._-]{1,40}", position(), 0..8),
    ) {
        let mut checkpoint = Checkpoint::new();
        checkpoint.sources = sources;
        let text = checkpoint.encode();
        prop_assert_eq!(Checkpoint::decode(&text).unwrap(), checkpoint);
    }

    #[test]
    fn any_text_decodes_to_a_checkpoint_or_says_why(text in "\\PC{0,120}") {
        if let Err(e) = Checkpoint::decode(&text) {
            prop_assert!(e.to_string().starts_with("checkpoint `"));
        }
    }

    /// Near misses of a real checkpoint: JSON that parses, with the wrong shape.
    #[test]
    fn mangled_checkpoints_decode_or_say_why(
        sources in proptest::collection::btree_map("[a-z]{1,5}", position(), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut checkpoint = Checkpoint::new();
        checkpoint.sources = sources;
        let text = checkpoint.encode();
        let end = cut.index(text.len());
        prop_assert!(Checkpoint::decode(&text[..end]).is_err());
        let _ = Checkpoint::decode(&text.replace("\"offset\"", "\"offset\":1,\"x\""));
        let _ = Checkpoint::decode(&text.replace(':', ":-"));
    }
}
