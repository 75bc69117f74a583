//! Events: decode, validate and enrich one record, and turn rows into Arrow.
//!
//! Everything here is pure (no I/O, no clock: the ingestion time is passed in),
//! so it is tested table-driven in place. A record that cannot become a row is
//! a value ([`Rejection`]) with a reason code, never an error.

mod batch;
mod columns;
mod decode;
pub mod typed;

pub use batch::{MAX_RAW_KEPT, Origin, RecordPosition, RejectedRecord, Row, rejected_batch};
pub use columns::{EventColumns, events_batch};
pub use decode::{
    DecodeLimits, Event, MAX_FUTURE_SECONDS, MIN_CREATED_AT, RejectReason, Rejection, content_hash,
    decode, decode_counting, too_large,
};
