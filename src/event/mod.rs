//! Events: decode, validate and enrich one record, and turn rows into Arrow.
//!
//! Everything here is pure (no I/O, no clock: the ingestion time is passed in),
//! so it is tested table-driven in place. A record that cannot become a row is
//! a value ([`Rejection`]) with a reason code, never an error.

mod batch;
mod columns;
mod decode;
pub mod typed;

pub use batch::{
    MAX_RAW_KEPT, Origin, RecordPosition, RejectedRecord, Row, kept_raw, rejected_batch,
};
pub use columns::{EventColumns, events_batch};
pub use decode::{
    DecodeLimits, Event, MAX_FUTURE_SECONDS, MIN_CREATED_AT, RejectReason, Rejection, content_hash,
    decode, decode_counting, too_large,
};

/// An event decoded from its three common fields and `extra` members
/// (`,"k":v,...`), with room for records up to 4 MiB: a fixture for the
/// tests of this crate that need a real one.
#[cfg(test)]
pub(crate) fn test_event(uuid: &str, name: &str, created_at: f64, extra: &str) -> Event {
    let text = format!(
        r#"{{"event_uuid":"{uuid}","event_name":"{name}","created_at":{created_at}{extra}}}"#
    );
    let limits = DecodeLimits {
        max_record_size: 4 << 20,
        now_seconds: 1_790_000_000.0,
        ..Default::default()
    };
    match decode(text.as_bytes(), &limits) {
        Ok(event) => event,
        Err(r) => panic!("{text}: {}", r.message),
    }
}
