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
//! (`tests/layering.rs` checks both).
//!
//! 1. Leaves, importing nothing from the crate:
//!    - [`contract`]: what both sides agree on about the two tables: table
//!      kinds, the field ids and core columns Floe fills, and the dedup key.
//!    - [`checkpoint`]: source positions and the checkpoint committed with the data.
//!    - [`failpoint`]: named points where tests crash, freeze or panic the process.
//!    - [`aws`]: the AWS configuration shared by Kinesis, Glue, S3 and DynamoDB.
//!    - [`retry`]: how long every retry loop waits (one backoff policy).
//! 2. [`event`]: pure record handling: [`event::decode`] and Arrow batches.
//!    [`catalog`]: catalog pointers and their compare-and-swap (SQLite, AWS Glue).
//! 3. [`table`]: the Iceberg side: schema files and layouts, Parquet data
//!    files, summaries, the snapshot producer ([`table::commit`]), which
//!    manifests a commit carries over ([`table::manifests`]) and maintenance
//!    ([`table::maintain`]). It reports to no metrics registry: whoever
//!    calls it counts what it returns.
//! 4. [`telemetry`]: logs, live progress, metrics and the operations port;
//!    it takes plain values from the layers above.
//! 5. [`supervise`]: the stages beside the pipeline, restarted or failed.
//!    [`config`]: flags, `FLOE_*` variables and a TOML file, validated into
//!    typed settings built from the lower layers' types.
//! 6. [`source`]: where records come from: [`source::file`] reads JSON Lines
//!    files and stdin, [`source::kinesis`] the shards of a Kinesis data
//!    stream, and [`source::lease`] lets several tasks share those shards.
//! 7. [`pipeline`]: the run loop: bounded stages, flushes, shutdown.
//! 8. [`report`]: run summaries and table descriptions.
//!    [`generate`]: deterministic sample events for demos, tests and benchmarks.
//!
//! The command line (`src/main.rs` and `src/cli/`) sits on top and uses them
//! all.

pub mod aws;
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
