# Saved queries, shown under "Saved queries" of the workgroup in the Athena
# console. They read the tables Floe writes; `$snapshots` is Iceberg's
# metadata table, one row per commit, whose summary map carries the counts
# Floe writes on every snapshot (floe.records-read, floe.rows-written,
# floe.duplicates-dropped, floe.rejected).

locals {
  events = "\"${var.glue_database_name}\".\"${var.events_table_name}\""
  # The metadata table's name is "<table>$snapshots"; `$s` is not an
  # interpolation in HCL, only `${` is.
  snapshots = "\"${var.glue_database_name}\".\"${var.events_table_name}$snapshots\""
}

resource "aws_athena_named_query" "events_by_day_and_type" {
  name        = "floe: events per day and type, last 30 days"
  description = "How many events arrived per day and event_type over the last 30 days."
  workgroup   = aws_athena_workgroup.this.id
  database    = var.glue_database_name
  query       = <<-SQL
    -- Events per day and event type over the last 30 days.
    SELECT date(created_datetime) AS day,
           event_type,
           count(*) AS events
    FROM ${local.events}
    WHERE created_datetime >= current_timestamp - INTERVAL '30' DAY
    GROUP BY date(created_datetime), event_type
    ORDER BY day DESC, events DESC
  SQL
}

resource "aws_athena_named_query" "duplicate_audit" {
  name        = "floe: duplicate audit (should return no rows)"
  description = "event_uuid values with more than one live row. event_uuid is the upsert key, so this should return nothing."
  workgroup   = aws_athena_workgroup.this.id
  database    = var.glue_database_name
  query       = <<-SQL
    -- event_uuid is the upsert key: each value should have exactly one live
    -- row. Any row here is a duplicate Floe did not catch, e.g. one older than
    -- FLOE_DEDUP_WINDOW, or two tasks reading the same shard.
    SELECT event_uuid,
           count(*) AS live_rows,
           min(created_datetime) AS first_created,
           max(created_datetime) AS last_created
    FROM ${local.events}
    GROUP BY event_uuid
    HAVING count(*) > 1
    ORDER BY live_rows DESC
    LIMIT 1000
  SQL
}

resource "aws_athena_named_query" "data_quality_over_time" {
  name        = "floe: data quality per commit, last 7 days"
  description = "Per Floe commit: records read, rows written, duplicates dropped, rejected and the rejected percentage."
  workgroup   = aws_athena_workgroup.this.id
  database    = var.glue_database_name
  query       = <<-SQL
    -- One row per Floe commit, from the counts Floe writes into every
    -- snapshot's summary. element_at(summary, key) is summary[key] that gives
    -- NULL instead of failing on a snapshot another writer made (compaction).
    SELECT committed_at,
           snapshot_id,
           CAST(element_at(summary, 'floe.records-read') AS bigint) AS records_read,
           CAST(element_at(summary, 'floe.rows-written') AS bigint) AS rows_written,
           CAST(element_at(summary, 'floe.duplicates-dropped') AS bigint) AS duplicates_dropped,
           CAST(element_at(summary, 'floe.rejected') AS bigint) AS rejected,
           round(100.0 * CAST(element_at(summary, 'floe.rejected') AS double)
                 / nullif(CAST(element_at(summary, 'floe.records-read') AS double), 0), 3) AS rejected_percent
    FROM ${local.snapshots}
    WHERE element_at(summary, 'floe.records-read') IS NOT NULL
      AND committed_at >= current_timestamp - INTERVAL '7' DAY
    ORDER BY committed_at
  SQL
}
