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
//! - [`config`]: flags, `FLOE_*` variables and a TOML file, validated into typed settings.
//! - [`source`]: where records come from; [`source::file`] reads JSON Lines files and
//!   stdin, [`source::kinesis`] the shards of a Kinesis data stream, and
//!   [`source::lease`] lets several tasks share those shards through leases in DynamoDB.
//! - [`event`]: pure record handling: [`event::decode`] and Arrow batches.
//! - [`pipeline`]: the run loop: bounded stages, flushes, shutdown.
//! - [`table`]: schema files and layouts, Parquet data files, checkpoints,
//!   summaries, the snapshot producer ([`table::commit`]), which manifests
//!   a commit carries over ([`table::manifests`]: pruning, merging) and table
//!   maintenance ([`table::maintain`]: compaction, expiry, orphan removal).
//! - [`catalog`]: catalog pointers and their compare-and-swap (SQLite, AWS Glue).
//! - [`aws`]: the AWS configuration shared by Kinesis, Glue, S3 and DynamoDB.
//! - [`generate`]: deterministic sample events for demos, tests and benchmarks.
//! - [`failpoint`]: named points in the commit path and the reading stages
//!   where tests crash, freeze or panic the process.
//! - [`report`]: run summaries and table descriptions.
//! - [`telemetry`]: logs and live progress.

pub mod aws;
pub mod catalog;
pub mod config;
pub mod event;
pub mod failpoint;
pub mod generate;
pub mod pipeline;
pub mod report;
pub mod source;
pub mod supervise;
pub mod table;
pub mod telemetry;
