//! Human-readable reports: the run summary (`floe run`, `floe demo`) and the
//! table description (`floe inspect`). Plain text on stdout, stable enough for
//! scripts to grep (`records read`, `rows written`...).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::event::RejectReason;
use crate::pipeline::RunReport;
use crate::table::inspect::{files_by_partition, rows_by_day_and_type};
use crate::table::{LoadedTable, TableError, TableStore};

pub use crate::telemetry::thousands;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

/// One line on what a compaction did.
pub fn compaction(r: &crate::table::maintain::CompactionReport) -> String {
    if r.partitions == 0 && r.abandoned == 0 {
        return "compaction: no partition has small files or deletes".into();
    }
    let mut out = format!(
        "compacted {} partition(s): {} data files into {}, {} delete file(s) removed, {} rows \
         kept, {} deleted rows dropped",
        r.partitions,
        r.data_files_before,
        r.data_files_after,
        r.delete_files_removed,
        r.rows,
        r.deleted_rows_dropped
    );
    if r.replanned > 0 {
        out.push_str(&format!(
            "; {} planned anew after a concurrent commit",
            r.replanned
        ));
    }
    if r.abandoned > 0 {
        out.push_str(&format!(
            "; {} left for the next run (changed under every attempt)",
            r.abandoned
        ));
    }
    out
}

/// One line on what a manifest rewrite did.
pub fn manifest_rewrite(r: &crate::table::ManifestRewrite) -> String {
    if r.manifests_after == 0 {
        return "manifests: none (no snapshot yet); nothing to rewrite".into();
    }
    if r.written == 0 {
        return format!(
            "manifests: {} already clustered; nothing to rewrite",
            r.manifests_after
        );
    }
    format!(
        "rewrote {} manifest(s) into {}, clustered by partition ({} entries): the snapshot lists {} \
         (was {})",
        r.replaced, r.written, r.entries, r.manifests_after, r.manifests_before
    )
}

/// One line on what an expiry did.
pub fn expiry(
    r: &crate::table::maintain::ExpiryReport,
    settings: &crate::table::maintain::MaintainSettings,
) -> String {
    format!(
        "expired {} snapshot(s) older than {} ({} kept), deleted {} file(s) only they used",
        r.snapshots_removed,
        humantime::format_duration(settings.expire_older_than),
        r.snapshots_kept,
        r.files_deleted
    )
}

/// One line on what an orphan removal did.
pub fn orphans(
    r: &crate::table::maintain::OrphanReport,
    settings: &crate::table::maintain::MaintainSettings,
) -> String {
    format!(
        "removed {} orphan file(s) ({}) of {} listed; {} unreferenced file(s) younger than {} kept",
        r.orphans_deleted,
        mib(r.bytes_deleted),
        r.files_listed,
        r.too_young,
        humantime::format_duration(settings.orphan_older_than)
    )
}

/// The run summary.
pub fn run_summary(report: &RunReport) -> String {
    let c = &report.counts;
    let secs = report.elapsed.as_secs_f64();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut line = |label: &str, value: String| rows.push((label.to_string(), value));
    line("records read", thousands(c.records_read));
    if report.objects_read > 0 {
        line("objects read", thousands(report.objects_read));
        line("object bytes read", mib(report.object_bytes_read));
    }
    line("rows written", thousands(c.rows_written));
    line("duplicates dropped", thousands(c.duplicates_dropped()));
    line("  identical", thousands(c.duplicates_identical));
    line("  replaced", thousands(c.duplicates_replaced));
    line("  skipped (keep-first)", thousands(c.duplicates_skipped));
    line("rows deleted", thousands(c.rows_deleted));
    line("rejected", thousands(c.rejected_total()));
    for reason in RejectReason::ALL {
        if let Some(n) = c.rejected.get(&reason) {
            line(&format!("  {}", reason.code()), thousands(*n));
        }
    }
    line("blank lines", thousands(c.blank_lines));
    if !c.type_mismatches.is_empty() {
        line(
            "type mismatches (kept in payload)",
            thousands(c.type_mismatches.values().sum()),
        );
        for (column, n) in &c.type_mismatches {
            line(&format!("  {column}"), thousands(*n));
        }
    }
    if !c.missing.is_empty() {
        line(
            "missing optional fields",
            thousands(c.missing.values().sum()),
        );
        let mut by_field = std::collections::BTreeMap::<&str, u64>::new();
        for ((_, field), n) in &c.missing {
            *by_field.entry(field).or_default() += n;
        }
        for (field, n) in by_field {
            line(&format!("  {field}"), thousands(n));
        }
    }
    line("files written", thousands(report.files_written));
    line("bytes written", mib(report.bytes_written));
    line(
        "snapshots",
        format!("{} + {}", report.event_snapshots, report.rejected_snapshots),
    );
    line("commit conflicts", thousands(report.commit_conflicts));
    line("elapsed", format!("{secs:.2} s"));
    line(
        "throughput",
        format!(
            "{} events/s",
            thousands((c.records_read as f64 / secs.max(1e-9)) as u64)
        ),
    );
    let mut text = String::from("Floe run summary\n");
    // Labels are padded to one width (at least 26) and values to another
    // (at least 12), so that every value ends in the same column whatever
    // labels (column names) and numbers this run has.
    let widest = |of: fn(&(String, String)) -> &String| {
        rows.iter()
            .map(|r| of(r).chars().count())
            .max()
            .unwrap_or(0)
    };
    let label_width = (widest(|r| &r.0) + 2).max(26);
    let value_width = widest(|r| &r.1).max(12);
    for (label, value) in &rows {
        let _ = writeln!(text, "  {label:<label_width$}{value:>value_width$}");
    }
    if !report.shards.is_empty() {
        let _ = writeln!(text, "  kinesis shards ({}):", report.shards.len());
        for (shard, lag) in &report.shards {
            let behind = lag.millis_behind.map_or_else(
                || "lag unknown".to_string(),
                |ms| format!("{} ms behind", thousands(ms.max(0) as u64)),
            );
            let state = if lag.ended { ", ended" } else { "" };
            let _ = writeln!(
                text,
                "    {shard:<28}{:>12} records, {behind}{state}",
                thousands(lag.records)
            );
        }
    }
    text.push_str("  (snapshots: events table + rejected table)\n");
    if report.interrupted {
        text.push_str("  stopped early by a shutdown signal; rerun to continue\n");
    }
    text
}

/// Rows per day and event type, read back from the table.
pub async fn rows_by_day_and_type_table(
    store: &TableStore,
    table: &LoadedTable,
) -> Result<String, TableError> {
    let counts = rows_by_day_and_type(store, table).await?;
    let mut out = format!(
        "Rows by day and event_type (read back from {}):\n",
        table.name
    );
    let _ = writeln!(out, "  {:<12}{:<24}{:>12}", "day", "event_type", "rows");
    let mut total = 0;
    for ((day, event_type), n) in &counts {
        total += n;
        let _ = writeln!(out, "  {day:<12}{event_type:<24}{:>12}", thousands(*n));
    }
    let _ = writeln!(out, "  {:<36}{:>12}", "total", thousands(total));
    Ok(out)
}

/// The description `floe inspect` prints.
pub async fn inspect(store: &TableStore, table: &LoadedTable) -> Result<String, TableError> {
    let md = &table.metadata;
    let mut out = String::new();
    let _ = writeln!(out, "Table {}", table.name);
    let _ = writeln!(out, "  location          {}", md.location());
    let _ = writeln!(out, "  metadata          {}", table.metadata_location);
    let _ = writeln!(out, "  format version    {}", md.format_version() as u8);
    let from = md
        .properties()
        .get("floe.schema-file")
        .map_or(String::new(), |f| format!(", from {f}"));
    let _ = writeln!(out, "\nSchema (id {}{from}):", md.current_schema_id());
    let identifiers: Vec<i32> = md.current_schema().identifier_field_ids().collect();
    schema_fields(
        &mut out,
        md.current_schema().as_struct().fields(),
        0,
        &identifiers,
    );
    let _ = writeln!(
        out,
        "\nPartition spec (id {}):",
        md.default_partition_spec_id()
    );
    for f in md.default_partition_spec().fields() {
        let source = md
            .current_schema()
            .field_by_id(f.source_id)
            .map_or("?".to_string(), |s| s.name.clone());
        let _ = writeln!(out, "  {}  = {}({})", f.name, f.transform, source);
    }
    let _ = writeln!(out, "\nSort order:");
    for f in &md.default_sort_order().fields {
        let source = md
            .current_schema()
            .field_by_id(f.source_id)
            .map_or("?".to_string(), |s| s.name.clone());
        let _ = writeln!(out, "  {source} {} nulls {}", f.direction, f.null_order);
    }

    let mut snapshots: Vec<_> = md.snapshots().collect();
    snapshots.sort_by_key(|s| s.sequence_number());
    let _ = writeln!(out, "\nSnapshots ({}):", snapshots.len());
    for s in snapshots {
        let time = s
            .timestamp()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  #{} id {} at {} {}{}",
            s.sequence_number(),
            s.snapshot_id(),
            time,
            s.summary().operation.as_str(),
            if md.current_snapshot_id() == Some(s.snapshot_id()) {
                " (current)"
            } else {
                ""
            }
        );
        let summary: BTreeMap<_, _> = s.summary().additional_properties.iter().collect();
        for (k, v) in summary {
            let _ = writeln!(out, "      {k} = {v}");
        }
    }

    let files = files_by_partition(store, table).await?;
    let _ = writeln!(out, "\nFiles per partition:");
    let _ = writeln!(
        out,
        "  {:<40}{:>8}{:>12}{:>14}{:>9}",
        "partition", "files", "rows", "bytes", "deletes"
    );
    for (label, f) in &files {
        let _ = writeln!(
            out,
            "  {label:<40}{:>8}{:>12}{:>14}{:>9}",
            f.data_files,
            thousands(f.rows),
            thousands(f.bytes),
            f.delete_files
        );
    }
    let (n, rows, bytes) = files.values().fold((0, 0, 0), |(n, r, b), f| {
        (n + f.data_files, r + f.rows, b + f.bytes)
    });
    let _ = writeln!(
        out,
        "  {:<40}{:>8}{:>12}{:>14}",
        "total",
        n,
        thousands(rows),
        thousands(bytes)
    );
    Ok(out)
}

/// One line a field, nested fields indented under their struct or list.
fn schema_fields(
    out: &mut String,
    fields: &[iceberg::spec::NestedFieldRef],
    depth: usize,
    identifiers: &[i32],
) {
    use iceberg::spec::Type;
    for field in fields {
        let ty = crate::contract::type_name(&field.field_type);
        let _ = writeln!(
            out,
            "  {:>3}  {:<20} {:<12} {}{}",
            field.id,
            format!("{}{}", "  ".repeat(depth), field.name),
            ty,
            if field.required {
                "required"
            } else {
                "optional"
            },
            if identifiers.contains(&field.id) {
                ", identifier"
            } else {
                ""
            }
        );
        match field.field_type.as_ref() {
            Type::Struct(s) => schema_fields(out, s.fields(), depth + 1, identifiers),
            Type::List(l) => schema_fields(
                out,
                std::slice::from_ref(&l.element_field),
                depth + 1,
                identifiers,
            ),
            Type::Map(m) => schema_fields(
                out,
                &[m.key_field.clone(), m.value_field.clone()],
                depth + 1,
                identifiers,
            ),
            Type::Primitive(_) => {}
        }
    }
}

/// A checked schema chain read from folder `dir`: each file with what it
/// changes.
pub fn schema_chain(chain: &crate::table::SchemaChain, dir: &std::path::Path) -> String {
    let mut out = String::new();
    let folder = dir.join(chain.kind.schema_folder());
    let _ = writeln!(
        out,
        "{}: {} file{}, every step allowed",
        folder.display(),
        chain.files.len(),
        if chain.files.len() == 1 { "" } else { "s" }
    );
    let width = chain.files.iter().map(|f| f.name.len()).max().unwrap_or(0) + 2;
    for (i, file) in chain.files.iter().enumerate() {
        let what = match i.checked_sub(1).and_then(|s| chain.steps.get(s)) {
            None => format!("{} columns", file.schema.as_struct().fields().len()),
            Some(changes) if changes.is_empty() => "no field changes".to_string(),
            Some(changes) => crate::table::evolution::describe_changes(changes),
        };
        let _ = writeln!(out, "  {:<width$}{what}", file.name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_summary_value_ends_in_one_column() {
        let mut report = RunReport::default();
        report.counts.records_read = 1_234_567;
        report.elapsed = std::time::Duration::from_secs(1);
        report.counts.type_mismatches.insert("quantity".into(), 10);
        report
            .counts
            .type_mismatches
            .insert("a_rather_long_column_name".into(), 2);
        let summary = run_summary(&report);
        let lines: Vec<&str> = summary
            .lines()
            .skip(1)
            .take_while(|l| !l.contains("(snapshots:"))
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("type mismatches (kept in payload)"))
        );
        let end = lines[0].len();
        for line in &lines {
            assert_eq!(line.len(), end, "{line:?} in\n{summary}");
        }
        assert!(summary.contains("\n  records read "), "{summary}");
        assert!(summary.contains(" 1,234,567 events/s\n"), "{summary}");
    }

    #[test]
    fn a_schema_chain_is_headed_by_its_real_folder() {
        let source = crate::table::SchemaSource::Embedded;
        let chain =
            crate::table::SchemaChain::load(crate::table::TableKind::Events, &source).unwrap();
        let text = schema_chain(&chain, std::path::Path::new("/x/checkout/schemas"));
        assert!(text.starts_with("/x/checkout/schemas/events: "), "{text}");
    }

    #[test]
    fn thousands_groups_digits() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }
}
