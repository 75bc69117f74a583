//! Floe streams JSON events into an Apache Iceberg table, exactly once.
//!
//! Records come from a source (files, stdin or a Kinesis stream), are
//! decoded, validated and enriched, batched per partition with duplicates
//! dropped, written as Parquet, and committed as one Iceberg snapshot that
//! also carries the source checkpoint. Bad records go to a rejected-records
//! table with a reason; nothing stops the pipeline but an error of the
//! machinery itself.
//!
//! ```text
//! source ──▶ decode + validate + enrich ──▶ buffer per (day, event_type) ──▶ Parquet ──▶ commit
//! (file)      (event, CPU-parallel)           (pipeline, dedup by key)    (table)    (table + catalog)
//! ```
//!
//! # Layout
//!
//! Lowest layer first. A module imports only from layers listed before its
//! own, and no two modules import each other, at any depth
//! (`tests/layering.rs` checks both, and that this section names every
//! module).
//!
//! 1. Leaves, importing nothing from the crate:
//!    - [`contract`]: what both sides agree on about the two tables: table
//!      kinds, the field ids and core columns Floe fills, and the dedup key.
//!    - [`checkpoint`]: source positions and the checkpoint committed with the data.
//!    - [`failpoint`]: named points where tests crash, freeze or panic the process.
//!    - [`aws`]: the AWS configuration shared by Kinesis, Glue, S3 and DynamoDB.
//!    - [`retry`]: how long every retry loop waits (one backoff policy).
//!    - [`blocking`]: blocking and CPU-bound work on tokio's blocking pool.
//! 2. [`event`]: pure record handling: `event::decode` (parse, validate,
//!    enrich one record; `event::decode::scan` finds an object's members in
//!    one pass and leaves the rest to serde_json), `event::typed` (typed
//!    payload columns), `event::columns` (rows as columns, decoded straight
//!    into them and gathered into Arrow one file at a time) and
//!    `event::batch` (rows to Arrow).
//!
//!    [`catalog`]: catalog pointers and their compare-and-swap: `catalog::sql`
//!    (SQLite, run on the blocking pool) and `catalog::glue` (AWS Glue).
//! 3. [`table`]: the Iceberg side. It reports to no metrics registry:
//!    whoever calls it counts what it returns.
//!    - `table::store`: the store, loading, creating and evolving a table,
//!      and the compare-and-swap of its pointer.
//!    - `table::commit`: the snapshot producer (one commit, its retries and
//!      rebase); `table::commit::manifest` the manifests a commit writes and
//!      carries over; `table::commit::rewrite` the manifest rewrite.
//!    - `table::manifests`: which manifests a commit carries over (pure).
//!    - `table::history`: live entries and what changed since a state.
//!    - `table::schema`: schema files and layouts: `table::schema::source`
//!      (embedded or a folder), `table::schema::chain` (the checked chain),
//!      `table::schema::layout` (partition spec, sort order, Parquet
//!      settings); `table::evolution` what one file may change.
//!    - `table::writer` (Parquet data and delete files), `table::index` (the
//!      key index), `table::probe` (late keys looked up in the table),
//!      `table::summary` (snapshot summaries), `table::inspect` (reading a
//!      table back).
//!    - `table::maintain`: `table::maintain::compaction` (with
//!      `table::maintain::compaction::plan`, `table::maintain::compaction::rewrite`
//!      and `table::maintain::compaction::commit`), `table::maintain::expiry`,
//!      `table::maintain::orphans`, `table::maintain::referenced` and
//!      `table::maintain::lister`.
//! 4. [`telemetry`]: logs and live progress (`telemetry::progress`), the
//!    metrics registry (`telemetry::metrics`), the named events that log
//!    and count together (`telemetry::events`), the metrics' encodings
//!    (`telemetry::prometheus`, `telemetry::emf`) and the operations port
//!    (`telemetry::http`). It takes plain values.
//! 5. [`supervise`]: the stages beside the pipeline, restarted or failed.
//!
//!    [`config`]: every `floe run` setting declared once, as flag, `FLOE_*`
//!    variable and TOML key (`config::settings`), the layers merged
//!    (`config::layers`), validated all at once (`config::validate`, with
//!    `config::units` and `config::choices`) into typed settings, listed for
//!    `--check-config` by `config::env`.
//! 6. [`source`]: where records come from, each a `source::Source` that
//!    the pipeline starts and watches through its `source::Reading`:
//!    - `source::file`: JSON Lines files and stdin; `source::file::reader`
//!      the file source (one thread reading the inputs in order).
//!    - `source::s3`: objects in S3 buckets (a backfill), read in key order
//!      with the file source's line splitting; `source::s3::pattern` (the
//!      `s3://` patterns, pure) and `source::s3::body` (an object's body as a `Read`).
//!    - `source::kinesis`: a Kinesis data stream: `source::kinesis::coordinator`
//!      (shards, resharding; `source::kinesis::coordinator::sharing` under
//!      leases), `source::kinesis::shard_state` (its decisions, pure),
//!      `source::kinesis::reader` (one shard), `source::kinesis::answer` (the
//!      records of its `GetRecords` answers, read without the SDK's per-record
//!      parse), and `source::kpl` (KPL aggregates).
//!    - `source::lease`: several tasks sharing the shards: `source::lease::table`
//!      (DynamoDB), `source::lease::keeper` (heartbeats and renewals),
//!      `source::lease::balance` (the balancing rule, pure) and
//!      `source::lease::claims` (what this task may commit).
//! 7. [`pipeline`]: the run loop (wiring the stages, supervising them,
//!    ordering the shutdown): `pipeline::tables` (the two tables),
//!    `pipeline::decode` (the CPU-parallel decoder stage), `pipeline::buffer` (a
//!    batch, deduplicated), `pipeline::flush` (plan, write, commit),
//!    `pipeline::held` (the memory a flush still holds of its batch),
//!    `pipeline::upsert` (the upsert decision and rebase) and
//!    `pipeline::shared` (what changes under leases).
//! 8. [`report`]: run summaries and table descriptions.
//!
//!    [`generate`]: deterministic sample events: `generate::rng`,
//!    `generate::vocab`, `generate::pools`, `generate::lines`,
//!    `generate::history` and `generate::json`.
//!
//! The command line (`src/main.rs` and `src/cli/`, one file per command)
//! sits on top and uses them all.

pub mod aws;
pub mod blocking;
pub mod catalog;
pub mod checkpoint;
pub mod config;
pub mod contract;
pub mod event;
pub mod failpoint;
pub mod generate;
pub mod pipeline;
pub mod report;
pub mod retry;
pub mod source;
pub mod supervise;
pub mod table;
pub mod telemetry;
