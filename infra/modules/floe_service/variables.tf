# --- Names, image and size ------------------------------------------------------

variable "name" {
  description = "Name of the cluster, service, task family, roles and log group (e.g. floe-dev)."
  type        = string
}

variable "image" {
  description = "Floe's container image, e.g. <account>.dkr.ecr.<region>.amazonaws.com/floe:<tag>."
  type        = string
}

variable "image_repository_arn" {
  description = "ARN of the ECR repository the image is pulled from (the execution role may pull from it only)."
  type        = string
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU); FLOE_DECODE_THREADS follows it."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Task memory in MiB. It must hold the flush buffer (flush_size), the key index (index_memory) and the writers."
  type        = number
  default     = 2048
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: the architecture the image was built for."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "desired_count" {
  description = "Tasks to start with; autoscaling owns the count afterwards. The tasks share the stream's shards through the lease table."
  type        = number
  default     = 1

  validation {
    condition     = var.desired_count >= 0
    error_message = "desired_count must be 0 or more."
  }
}

variable "min_capacity" {
  description = "Fewest tasks autoscaling keeps."
  type        = number
  default     = 1

  validation {
    condition     = var.min_capacity >= 0
    error_message = "min_capacity must be 0 or more."
  }
}

variable "max_capacity" {
  description = "Most tasks autoscaling starts. The tasks share the shards through leases (FLOE_LEASE_TABLE), so more tasks than open shards only adds idle ones."
  type        = number
  default     = 1

  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity >= var.min_capacity
    error_message = "max_capacity must be at least 1 and at least min_capacity."
  }
}

variable "scaling_target_iterator_age_ms" {
  description = "Iterator age (ms) autoscaling aims to hold the stream at."
  type        = number
  default     = 60000
}

# --- Network --------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC the tasks run in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the tasks (no public IP; AWS APIs through NAT or VPC endpoints)."
  type        = list(string)
}

variable "metrics_ingress_cidrs" {
  description = "CIDR ranges allowed to reach port 9464 (/metrics, /health) - the Prometheus scrapers. Empty for none."
  type        = list(string)
  default     = []
}

variable "egress_cidr_blocks" {
  description = "Where tasks may open HTTPS (443) connections: 0.0.0.0/0 through NAT, or the VPC range when every AWS API has a VPC endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

# --- What Floe reads and writes -------------------------------------------------

variable "stream_name" {
  description = "Kinesis data stream Floe reads (FLOE_STREAM)."
  type        = string
}

variable "stream_arn" {
  description = "ARN of that stream."
  type        = string
}

variable "stream_kms_key_arn" {
  description = "ARN of the key the stream is encrypted with."
  type        = string
}

variable "warehouse_bucket_name" {
  description = "Bucket of the Iceberg warehouse."
  type        = string
}

variable "warehouse_bucket_arn" {
  description = "ARN of that bucket."
  type        = string
}

variable "warehouse_prefix" {
  description = "Key prefix of the warehouse in the bucket: FLOE_WAREHOUSE = s3://<bucket>/<prefix>."
  type        = string
  default     = "warehouse"
}

variable "warehouse_kms_key_arn" {
  description = "ARN of the key the bucket is encrypted with."
  type        = string
}

variable "glue_database_name" {
  description = "Glue database of Floe's tables (it must exist; Floe creates the tables)."
  type        = string
  default     = "analytics"
}

variable "lease_table_name" {
  description = "DynamoDB shard lease table (FLOE_LEASE_TABLE): the tasks share the stream's shards through it."
  type        = string
}

variable "lease_table_arn" {
  description = "ARN of that table."
  type        = string
}

variable "lease_table_kms_key_arn" {
  description = "ARN of the key the lease table is encrypted with."
  type        = string
}

# --- Floe's settings (README's option table has the details) --------------------

variable "events_table_name" {
  description = "Events table in the database: FLOE_TABLE = <database>.<this>."
  type        = string
  default     = "events"
}

variable "rejected_table_name" {
  description = "Rejected-records table in the database: FLOE_REJECTED_TABLE = <database>.<this>."
  type        = string
  default     = "events_rejected"
}

variable "consumer_name" {
  description = "FLOE_CONSUMER_NAME: the name the shard checkpoints are kept under."
  type        = string
  default     = "floe"
}

variable "start_position" {
  description = "FLOE_START_POSITION: where a shard without a checkpoint starts: trim-horizon, latest or at-timestamp:<RFC 3339>."
  type        = string
  default     = "trim-horizon"

  validation {
    condition     = contains(["trim-horizon", "latest"], var.start_position) || startswith(var.start_position, "at-timestamp:")
    error_message = "start_position must be trim-horizon, latest or at-timestamp:<RFC 3339>."
  }
}

variable "flush_size" {
  description = "FLOE_FLUSH_SIZE: flush (write files and commit) when the buffered rows hold this much memory."
  type        = string
  default     = "192MiB"
}

variable "flush_interval" {
  description = "FLOE_FLUSH_INTERVAL: flush when the oldest buffered record is this old."
  type        = string
  default     = "60s"
}

variable "target_file_size" {
  description = "FLOE_TARGET_FILE_SIZE: data file size to aim for."
  type        = string
  default     = "128MiB"
}

variable "max_record_size" {
  description = "FLOE_MAX_RECORD_SIZE: longer records are rejected as too_large."
  type        = string
  default     = "1MiB"
}

variable "zstd_level" {
  description = "FLOE_ZSTD_LEVEL: zstd level of the data files, 1 to 22."
  type        = number
  default     = 1
}

variable "dedup_mode" {
  description = "FLOE_DEDUP_MODE: upsert (last writer wins) or keep-first."
  type        = string
  default     = "upsert"

  validation {
    condition     = contains(["upsert", "keep-first"], var.dedup_mode)
    error_message = "dedup_mode must be upsert or keep-first."
  }
}

variable "type_mismatch" {
  description = "FLOE_TYPE_MISMATCH: a value that does not fit its typed column stays in payload, or rejects the record (reject)."
  type        = string
  default     = "payload"

  validation {
    condition     = contains(["payload", "reject"], var.type_mismatch)
    error_message = "type_mismatch must be payload or reject."
  }
}

variable "dedup_window" {
  description = "FLOE_DEDUP_WINDOW: how far back in created_datetime duplicates are caught, whole days."
  type        = string
  default     = "7d"
}

variable "index_memory" {
  description = "FLOE_INDEX_MEMORY: memory the key index may use; keep it well under the task's memory."
  type        = string
  default     = "1GiB"
}

variable "lease_duration" {
  description = "FLOE_LEASE_DURATION: a task that stops renewing its shard leases (it died) loses them to the others after this long."
  type        = string
  default     = "10s"
}

variable "shutdown_deadline_seconds" {
  description = "FLOE_SHUTDOWN_DEADLINE in seconds: after SIGTERM, the last commit must land within it. Below the container's stopTimeout of 120 s."
  type        = number
  default     = 90

  validation {
    condition     = var.shutdown_deadline_seconds >= 10 && var.shutdown_deadline_seconds < 120
    error_message = "shutdown_deadline_seconds must be below 120, the container's stopTimeout (Fargate's maximum)."
  }
}

variable "log_level" {
  description = "FLOE_LOG: the log level filter, e.g. info, debug or info,floe=debug."
  type        = string
  default     = "info"
}

variable "log_buffer_size" {
  description = "Size of the awslogs driver's non-blocking buffer (e.g. 25m); lines beyond it are dropped, never blocking Floe."
  type        = string
  default     = "25m"
}

variable "metrics_namespace" {
  description = "FLOE_EMF_NAMESPACE: CloudWatch namespace of Floe's metrics (and of the alarms on them)."
  type        = string
  default     = "Floe"
}

# --- Logs and alarms -------------------------------------------------------------

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps Floe's logs."
  type        = number
  default     = 30
}

variable "alarm_topic_arn" {
  description = "SNS topic notified when an alarm fires or clears; null for none."
  type        = string
  default     = null
}

variable "iterator_age_alarm_ms" {
  description = "Alarm when the stream's iterator age stays above this (ms) for 5 minutes."
  type        = number
  default     = 600000
}

variable "freshness_alarm_seconds" {
  description = "Alarm when the newest committed event is older than this (s) for 10 minutes, or nothing is committed."
  type        = number
  default     = 900
}

variable "rejected_percent_alarm" {
  description = "Alarm when more than this percentage of records read is rejected, 3 periods of 5 minutes in a row."
  type        = number
  default     = 1
}

variable "commit_failure_alarm_periods" {
  description = "Alarm when commits fail in this many consecutive 5-minute periods."
  type        = number
  default     = 3
}

variable "metadata_bytes_alarm" {
  description = "Alarm when the events table's current metadata file reaches this many bytes: well before AWS Glue's limit of 20 MB, so that snapshot expiry (floe maintain) has time to shrink it. Floe logs a warning from 10 MiB."
  type        = number
  default     = 10485760 # 10 MiB

  validation {
    condition     = var.metadata_bytes_alarm > 0 && var.metadata_bytes_alarm < 20000000
    error_message = "metadata_bytes_alarm must be above 0 and below 20000000 (AWS Glue refuses a table whose metadata passes 20 MB)."
  }
}

variable "maintenance_schedule" {
  description = "When EventBridge Scheduler runs `floe maintain` (compaction, snapshot expiry, orphan removal): a rate() or cron() expression, in UTC."
  type        = string
  default     = "rate(1 hour)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.maintenance_schedule))
    error_message = "maintenance_schedule must be a rate(...) or cron(...) expression."
  }
}

variable "maintenance_schedule_enabled" {
  description = "Whether the `floe maintain` schedule runs."
  type        = bool
  default     = true
}
