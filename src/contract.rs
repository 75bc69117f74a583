//! The table contract: what both sides of Floe agree on about its two
//! tables. Which tables there are, the field ids of the columns Floe fills
//! itself, what a schema file may change about them, and the key an event is
//! deduplicated by.
//!
//! A leaf: it imports nothing from the crate, so [`crate::event`] (which
//! fills the columns) and [`crate::table`] (which writes and evolves them)
//! both build on it without importing each other.

use iceberg::spec::{PrimitiveType, Type};

/// The key an event is deduplicated and upserted by: the XXH3-128 hash of
/// its `event_uuid`, the same in every version and run.
pub fn event_key(event_uuid: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(event_uuid.as_bytes())
}

/// The events table's day partition value of a `created_datetime` in
/// microseconds: days since 1970-01-01, as Iceberg's `day` transform gives
/// it. Any `i64` of microseconds is within 107 million days, so it fits.
pub fn partition_day(created_micros: i64) -> i32 {
    created_micros.div_euclid(86_400_000_000) as i32
}

/// Which of Floe's two tables a layout describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// The events table (`analytics.events`).
    Events,
    /// The rejected-records table (`analytics.events_rejected`).
    Rejected,
}

impl TableKind {
    /// The folder name under `schemas/`.
    pub fn schema_folder(self) -> &'static str {
        match self {
            TableKind::Events => "events",
            TableKind::Rejected => "events_rejected",
        }
    }
}

/// Field ids of the columns Floe fills itself, by table. They never change
/// meaning: Floe finds these columns by id, so most of them may be renamed.
pub mod ids {
    /// `event_uuid`: the identifier field.
    pub const EVENT_UUID: i32 = 1;
    /// `event_name`.
    pub const EVENT_NAME: i32 = 2;
    /// `event_type`: a partition source.
    pub const EVENT_TYPE: i32 = 3;
    /// `event_subtype`.
    pub const EVENT_SUBTYPE: i32 = 4;
    /// `created_at`.
    pub const CREATED_AT: i32 = 5;
    /// `created_datetime`: a partition source.
    pub const CREATED_DATETIME: i32 = 6;
    /// `payload`.
    pub const PAYLOAD: i32 = 7;
    /// `_ingested_at` (events table).
    pub const INGESTED_AT: i32 = 8;
    /// `_source_id` (events table).
    pub const SOURCE_ID: i32 = 9;
    /// `_source_position` (events table).
    pub const SOURCE_POSITION: i32 = 10;
    /// `_content_hash`.
    pub const CONTENT_HASH: i32 = 11;
    /// `reason` (rejected table).
    pub const REJECTED_REASON: i32 = 1;
    /// `message` (rejected table).
    pub const REJECTED_MESSAGE: i32 = 2;
    /// `raw` (rejected table).
    pub const REJECTED_RAW: i32 = 3;
    /// `_ingested_at` (rejected table).
    pub const REJECTED_INGESTED_AT: i32 = 4;
    /// `_source_id` (rejected table).
    pub const REJECTED_SOURCE_ID: i32 = 5;
    /// `_source_position` (rejected table).
    pub const REJECTED_SOURCE_POSITION: i32 = 6;
}

/// What a schema file may change about a column Floe fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Only its doc may change (the reason says why).
    Fixed(&'static str),
    /// It may be renamed but not dropped.
    NoDrop(&'static str),
    /// It follows the general rules (Floe finds it by id).
    Free,
}

/// A column Floe fills itself, as the first schema file must define it.
#[derive(Debug, Clone)]
pub struct CoreColumn {
    /// Its field id.
    pub id: i32,
    /// Its name in the first schema file.
    pub name: &'static str,
    /// Its type.
    pub ty: PrimitiveType,
    /// What later files may change.
    pub guard: Guard,
}

const IDENTIFIER: &str = "it is the identifier field, the upsert key";
const PARTITION_SOURCE: &str = "it is a partition source column";

const EVENTS_CORE: &[CoreColumn] = &[
    core(
        ids::EVENT_UUID,
        "event_uuid",
        PrimitiveType::String,
        Guard::Fixed(IDENTIFIER),
    ),
    core(
        ids::EVENT_NAME,
        "event_name",
        PrimitiveType::String,
        Guard::Free,
    ),
    core(
        ids::EVENT_TYPE,
        "event_type",
        PrimitiveType::String,
        Guard::Fixed(PARTITION_SOURCE),
    ),
    core(
        ids::EVENT_SUBTYPE,
        "event_subtype",
        PrimitiveType::String,
        Guard::Free,
    ),
    core(
        ids::CREATED_AT,
        "created_at",
        PrimitiveType::Double,
        Guard::Free,
    ),
    core(
        ids::CREATED_DATETIME,
        "created_datetime",
        PrimitiveType::Timestamptz,
        Guard::Fixed(PARTITION_SOURCE),
    ),
    core(
        ids::PAYLOAD,
        "payload",
        PrimitiveType::String,
        Guard::NoDrop(
            "it holds every payload field not promoted to a column; dropping it would lose data",
        ),
    ),
    core(
        ids::INGESTED_AT,
        "_ingested_at",
        PrimitiveType::Timestamptz,
        Guard::Free,
    ),
    core(
        ids::SOURCE_ID,
        "_source_id",
        PrimitiveType::String,
        Guard::Free,
    ),
    core(
        ids::SOURCE_POSITION,
        "_source_position",
        PrimitiveType::String,
        Guard::Free,
    ),
    core(
        ids::CONTENT_HASH,
        "_content_hash",
        PrimitiveType::Long,
        Guard::Fixed("Floe reads it back to tell identical duplicates from changed ones"),
    ),
];

const REJECTED_FILLED: Guard = Guard::Fixed("Floe fills it in every rejected record");
const REJECTED_CORE: &[CoreColumn] = &[
    core(
        ids::REJECTED_REASON,
        "reason",
        PrimitiveType::String,
        REJECTED_FILLED,
    ),
    core(
        ids::REJECTED_MESSAGE,
        "message",
        PrimitiveType::String,
        REJECTED_FILLED,
    ),
    core(
        ids::REJECTED_RAW,
        "raw",
        PrimitiveType::Binary,
        REJECTED_FILLED,
    ),
    core(
        ids::REJECTED_INGESTED_AT,
        "_ingested_at",
        PrimitiveType::Timestamptz,
        REJECTED_FILLED,
    ),
    core(
        ids::REJECTED_SOURCE_ID,
        "_source_id",
        PrimitiveType::String,
        REJECTED_FILLED,
    ),
    core(
        ids::REJECTED_SOURCE_POSITION,
        "_source_position",
        PrimitiveType::String,
        REJECTED_FILLED,
    ),
];

const fn core(id: i32, name: &'static str, ty: PrimitiveType, guard: Guard) -> CoreColumn {
    CoreColumn {
        id,
        name,
        ty,
        guard,
    }
}

/// The columns Floe fills in a table of `kind`.
pub fn core_columns(kind: TableKind) -> &'static [CoreColumn] {
    match kind {
        TableKind::Events => EVENTS_CORE,
        TableKind::Rejected => REJECTED_CORE,
    }
}

/// The column Floe fills under field id `id` (top level), if any.
pub fn core_column(kind: TableKind, id: i32) -> Option<&'static CoreColumn> {
    core_columns(kind).iter().find(|c| c.id == id)
}

/// The type as the spec writes it; nested types by kind only (their fields
/// are listed one by one).
pub fn type_name(ty: &Type) -> String {
    match ty {
        Type::Primitive(p) => p.to_string(),
        Type::Struct(_) => "struct".into(),
        Type::List(_) => "list".into(),
        Type::Map(_) => "map".into(),
    }
}
