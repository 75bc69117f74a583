# Five alarms: the stream's backlog, the data's freshness, the share of
# rejected records, failing commits and the size of the table's metadata
# file. Floe's metrics come from its EMF lines (namespace
# var.metrics_namespace, dimension Table = the table's full name, metrics
# RecordsRead, RowsCommitted, Rejected, Duplicates, CommitSeconds,
# CommitConflicts, FreshnessSeconds, MetadataBytes, Manifests and
# CommitFailures; also Rejected by Table and Reason, and StageRestarts by
# Stage alone). Each alarm notifies alarm_topic_arn when set. dashboard.tf
# plots them all.

locals {
  alarm_actions = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
}

# How far behind the tip of the stream the oldest record Floe last read was.
resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name        = "${var.name}-iterator-age"
  alarm_description = "Floe is more than ${var.iterator_age_alarm_ms} ms behind the tip of ${var.stream_name}: records near the end of the stream's retention can be lost."

  namespace   = "AWS/Kinesis"
  metric_name = "GetRecords.IteratorAgeMilliseconds"
  dimensions = {
    StreamName = var.stream_name
  }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.iterator_age_alarm_ms
  # No GetRecords calls at all is what the freshness alarm catches.
  treat_missing_data = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

# Seconds between now and the newest created_datetime committed, sent with
# every commit of events. No commits at all is as bad as stale ones.
resource "aws_cloudwatch_metric_alarm" "freshness" {
  alarm_name        = "${var.name}-freshness"
  alarm_description = "The newest event committed to ${local.events_table} is more than ${var.freshness_alarm_seconds} s old, or Floe has not committed at all."

  namespace   = var.metrics_namespace
  metric_name = "FreshnessSeconds"
  dimensions = {
    Table = local.events_table
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.freshness_alarm_seconds
  treat_missing_data  = "breaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "rejected_rate" {
  alarm_name        = "${var.name}-rejected-rate"
  alarm_description = "More than ${var.rejected_percent_alarm}% of the records Floe read went to ${local.rejected_table}."

  comparison_operator = "GreaterThanThreshold"
  threshold           = var.rejected_percent_alarm
  evaluation_periods  = 3
  # No records read, no rate.
  treat_missing_data = "notBreaching"

  metric_query {
    id          = "rejected_percent"
    expression  = "100 * rejected / read"
    label       = "Rejected records, % of records read"
    return_data = true
  }

  metric_query {
    id = "rejected"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "Rejected"
      dimensions = {
        Table = local.events_table
      }
      stat   = "Sum"
      period = 300
    }
  }

  metric_query {
    id = "read"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "RecordsRead"
      dimensions = {
        Table = local.events_table
      }
      stat   = "Sum"
      period = 300
    }
  }

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

# A commit that failed because the catalog or S3 could not be reached; Floe
# retries, so one failed period is noise and several in a row are an outage.
resource "aws_cloudwatch_metric_alarm" "commit_failures" {
  alarm_name        = "${var.name}-commit-failures"
  alarm_description = "Floe's commits to ${local.events_table} have failed in ${var.commit_failure_alarm_periods} consecutive 5-minute periods."

  namespace   = var.metrics_namespace
  metric_name = "CommitFailures"
  dimensions = {
    Table = local.events_table
  }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = var.commit_failure_alarm_periods
  datapoints_to_alarm = var.commit_failure_alarm_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}

# Bytes of the events table's current metadata file, sent with every commit
# that knows it. The file grows with every snapshot it lists; AWS Glue refuses
# a table whose metadata passes 20 MB, and every reader loads the whole file
# to plan a query. Floe logs a warning from 10 MiB; snapshot expiry
# (floe maintain, on maintenance_schedule) is what shrinks it.
resource "aws_cloudwatch_metric_alarm" "metadata_bytes" {
  alarm_name        = "${var.name}-metadata-size"
  alarm_description = "The metadata file of ${local.events_table} has reached ${var.metadata_bytes_alarm} bytes; AWS Glue refuses 20 MB. Expire snapshots (floe maintain --expire) and check that the maintenance schedule runs."

  namespace   = var.metrics_namespace
  metric_name = "MetadataBytes"
  dimensions = {
    Table = local.events_table
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.metadata_bytes_alarm
  # No commit, no new metadata file: the freshness alarm catches that.
  treat_missing_data = "notBreaching"

  alarm_actions = local.alarm_actions
  ok_actions    = local.alarm_actions
}
