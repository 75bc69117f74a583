# Floe's settings on Fargate: one map from FLOE_* variable name to value,
# turned into the container's environment in ecs.tf. Every `floe run` setting
# that applies to a service reading a Kinesis stream into Glue and S3 is here,
# each from a variable of this module with Floe's own default where it has
# one. tests/infra checks this map against `floe run --check-config`.
#
# Left out on purpose: FLOE_INPUT and FLOE_DRAIN (files and backfills, not a
# service), FLOE_WORKER_ID (each task generates a unique one at start), FLOE_CONFIG (the environment is the configuration),
# FLOE_S3_ENDPOINT and FLOE_S3_PATH_STYLE (S3-compatible stores only),
# FLOE_CATALOG_NAME (the SQLite catalog only), FLOE_SCHEMA_DIR (the schema
# files are built into the image) and FLOE_PROGRESS (a terminal display, off
# when stderr is not a terminal).

locals {
  # Fargate sizes CPU in units of 1/1024 vCPU; Floe decodes on one thread per vCPU.
  vcpus = max(1, floor(var.cpu / 1024))

  # The operations port: /metrics for Prometheus, /health/* for `floe health`.
  metrics_port = 9464

  events_table   = "${var.glue_database_name}.${var.events_table_name}"
  rejected_table = "${var.glue_database_name}.${var.rejected_table_name}"

  floe_environment = {
    FLOE_STREAM         = var.stream_name
    FLOE_CONSUMER_NAME  = var.consumer_name
    FLOE_START_POSITION = var.start_position

    # The tasks share the shards through leases in this table: each task
    # reads its fair share, and a task that stops hands its shards over.
    FLOE_LEASE_TABLE    = var.lease_table_name
    FLOE_LEASE_DURATION = var.lease_duration

    FLOE_WAREHOUSE      = "s3://${var.warehouse_bucket_name}/${var.warehouse_prefix}"
    FLOE_CATALOG        = "glue"
    FLOE_TABLE          = local.events_table
    FLOE_REJECTED_TABLE = local.rejected_table

    FLOE_FLUSH_SIZE       = var.flush_size
    FLOE_FLUSH_INTERVAL   = var.flush_interval
    FLOE_TARGET_FILE_SIZE = var.target_file_size
    FLOE_MAX_RECORD_SIZE  = var.max_record_size
    FLOE_ZSTD_LEVEL       = tostring(var.zstd_level)

    FLOE_DEDUP_MODE     = var.dedup_mode
    FLOE_TYPE_MISMATCH  = var.type_mismatch
    FLOE_DEDUP_WINDOW   = var.dedup_window
    FLOE_INDEX_MEMORY   = var.index_memory
    FLOE_DECODE_THREADS = tostring(local.vcpus)

    # Event types with counts of their own in snapshot summaries and metric
    # labels; the rest are summed under _other.
    FLOE_EVENT_TYPE_LIMIT = "100"

    # The scheduled `floe maintain` (maintenance.tf) expires old snapshots;
    # the service does it itself only when that schedule is off.
    FLOE_EXPIRE_EVERY      = var.maintenance_schedule_enabled ? "off" : "1h"
    FLOE_EXPIRE_OLDER_THAN = "5d"

    # Below the container's stopTimeout (ecs.tf), so that the last commit
    # lands before ECS sends SIGKILL.
    FLOE_SHUTDOWN_DEADLINE = "${var.shutdown_deadline_seconds}s"

    # JSON lines, so that CloudWatch Logs Insights finds the fields.
    FLOE_LOG_FORMAT = "json"
    # The log level filter (not a run setting): info, debug, floe=debug,...
    FLOE_LOG = var.log_level

    FLOE_METRICS_ADDR = "0.0.0.0:${local.metrics_port}"
    # One Embedded Metric Format line per commit on stdout: the awslogs driver
    # carries it to CloudWatch Logs, which turns it into metrics in this
    # namespace (what alarms.tf watches). So the task role needs no
    # cloudwatch:PutMetricData.
    FLOE_EMF_NAMESPACE = var.metrics_namespace
  }
}
