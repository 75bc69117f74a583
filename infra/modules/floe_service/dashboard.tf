# A CloudWatch dashboard of one environment, for operators who look rather
# than read: how fresh the events table is, how far behind the stream Floe
# reads, how its commits go, what it writes and rejects, how large the table's
# metadata grows, and whether a stage had to be restarted.
#
# Floe's graphs are its EMF metrics (namespace var.metrics_namespace, the
# metrics and dimensions alarms.tf lists); the iterator age comes from
# AWS/Kinesis, per shard from the shard-level IteratorAgeMilliseconds that
# modules/floe_stack turns on for the stream. Each threshold line is the
# alarm's own variable, so a graph and its alarm never disagree. Three rows
# of three graphs, 8 of the 24 columns each.
#
# The body is local.dashboard (jsonencode'd below) so that the structure
# tests can resolve it per environment and check every metric it plots
# against the code that emits it (tests/infra/test_infra_dashboards.py).

locals {
  dashboard_name = var.name

  dashboard = {
    start          = "-PT6H"
    periodOverride = "inherit"
    widgets = [
      # --- Row 1: is the table fresh, is Floe keeping up, what goes in --------
      {
        type   = "metric"
        x      = 0
        y      = 0
        width  = 8
        height = 6
        properties = {
          title  = "Freshness: age of the newest committed event"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            [var.metrics_namespace, "FreshnessSeconds", "Table", local.events_table, { stat = "Maximum", label = "seconds" }],
          ]
          annotations = {
            horizontal = [{ label = "freshness alarm", value = var.freshness_alarm_seconds }]
          }
          yAxis = { left = { min = 0, label = "seconds", showUnits = false } }
        }
      },
      {
        type   = "metric"
        x      = 8
        y      = 0
        width  = 8
        height = 6
        properties = {
          title  = "Iterator age per shard"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            # One line per shard (shard-level metric, enabled on the stream).
            [{ id = "shards", expression = "SEARCH('{AWS/Kinesis,ShardId,StreamName} MetricName=\"IteratorAgeMilliseconds\" StreamName=\"${var.stream_name}\"', 'Maximum', 60)", label = "$${PROP('Dim.ShardId')}" }],
            # The stream as a whole: the oldest shard, what the alarm watches.
            ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", var.stream_name, { stat = "Maximum", label = "stream (oldest shard)" }],
          ]
          annotations = {
            horizontal = [{ label = "iterator age alarm", value = var.iterator_age_alarm_ms }]
          }
          yAxis = { left = { min = 0, label = "milliseconds", showUnits = false } }
        }
      },
      {
        type   = "metric"
        x      = 16
        y      = 0
        width  = 8
        height = 6
        properties = {
          title  = "Records read, rows committed, duplicates, rejects"
          region = local.region
          view   = "timeSeries"
          period = 300
          stat   = "Sum"
          metrics = [
            [var.metrics_namespace, "RecordsRead", "Table", local.events_table, { label = "records read" }],
            [var.metrics_namespace, "RowsCommitted", "Table", local.events_table, { label = "rows committed" }],
            [var.metrics_namespace, "Duplicates", "Table", local.events_table, { label = "duplicates dropped" }],
            [var.metrics_namespace, "Rejected", "Table", local.events_table, { label = "rejected" }],
          ]
          yAxis = { left = { min = 0, label = "per period", showUnits = false } }
        }
      },
      # --- Row 2: rejects by reason, the commits ------------------------------
      {
        type   = "metric"
        x      = 0
        y      = 6
        width  = 8
        height = 6
        properties = {
          title  = "Rejects by reason"
          region = local.region
          view   = "timeSeries"
          period = 300
          stat   = "Sum"
          metrics = [
            # One line per reject reason seen (Floe sends a reason's line only
            # with a commit that has such rejects).
            [{ id = "reasons", expression = "SEARCH('{${var.metrics_namespace},Reason,Table} MetricName=\"Rejected\" Table=\"${local.events_table}\"', 'Sum', 300)", label = "$${PROP('Dim.Reason')}" }],
          ]
          yAxis = { left = { min = 0, label = "records per period", showUnits = false } }
        }
      },
      {
        type   = "metric"
        x      = 8
        y      = 6
        width  = 8
        height = 6
        properties = {
          title  = "Commit latency"
          region = local.region
          view   = "timeSeries"
          period = 300
          metrics = [
            [var.metrics_namespace, "CommitSeconds", "Table", local.events_table, { stat = "p50", label = "p50" }],
            [var.metrics_namespace, "CommitSeconds", "Table", local.events_table, { stat = "p99", label = "p99" }],
            [var.metrics_namespace, "CommitSeconds", "Table", local.events_table, { stat = "Maximum", label = "max" }],
          ]
          yAxis = { left = { min = 0, label = "seconds", showUnits = false } }
        }
      },
      {
        type   = "metric"
        x      = 16
        y      = 6
        width  = 8
        height = 6
        properties = {
          title  = "Commit conflicts and failures"
          region = local.region
          view   = "timeSeries"
          period = 300
          stat   = "Sum"
          metrics = [
            [var.metrics_namespace, "CommitConflicts", "Table", local.events_table, { label = "conflicts (swaps lost to another writer, retried)" }],
            # Sent only when a commit fails: FILL draws 0 in the periods without one.
            [var.metrics_namespace, "CommitFailures", "Table", local.events_table, { id = "failures", visible = false }],
            [{ id = "failures_or_zero", expression = "FILL(failures, 0)", label = "failures (catalog or S3 unreachable, retried)" }],
          ]
          yAxis = { left = { min = 0, label = "per period", showUnits = false } }
        }
      },
      # --- Row 3: the table's health, the stages ------------------------------
      {
        type   = "metric"
        x      = 0
        y      = 12
        width  = 8
        height = 6
        properties = {
          title  = "Manifests of the current snapshot"
          region = local.region
          view   = "timeSeries"
          period = 300
          metrics = [
            [var.metrics_namespace, "Manifests", "Table", local.events_table, { stat = "Maximum", label = "manifests" }],
          ]
          yAxis = { left = { min = 0, label = "manifests", showUnits = false } }
        }
      },
      {
        type   = "metric"
        x      = 8
        y      = 12
        width  = 8
        height = 6
        properties = {
          title  = "Metadata file size"
          region = local.region
          view   = "timeSeries"
          period = 300
          metrics = [
            [var.metrics_namespace, "MetadataBytes", "Table", local.events_table, { stat = "Maximum", label = "bytes" }],
          ]
          annotations = {
            horizontal = [
              { label = "metadata size alarm", value = var.metadata_bytes_alarm },
              { label = "AWS Glue's limit (20 MB)", value = 20000000, color = "#d62728" },
            ]
          }
          yAxis = { left = { min = 0, label = "bytes", showUnits = false } }
        }
      },
      {
        type   = "metric"
        x      = 16
        y      = 12
        width  = 8
        height = 6
        properties = {
          title  = "Stage restarts"
          region = local.region
          view   = "timeSeries"
          period = 300
          stat   = "Sum"
          metrics = [
            # Dimension Stage alone: Floe sends no table or stream with it.
            # Sent only on a restart: FILL draws 0 in the periods without one.
            [var.metrics_namespace, "StageRestarts", "Stage", "shard-reader", { id = "shard_reader", visible = false }],
            [{ id = "shard_reader_or_zero", expression = "FILL(shard_reader, 0)", label = "shard-reader" }],
          ]
          yAxis = { left = { min = 0, label = "restarts per period", showUnits = false } }
        }
      },
    ]
  }
}

resource "aws_cloudwatch_dashboard" "floe" {
  dashboard_name = local.dashboard_name
  dashboard_body = jsonencode(local.dashboard)
}
