# --- Where (the region is the caller's provider's) ----------------------------

variable "environment" {
  description = "Environment name, part of every resource name (floe-<environment>-...); the caller's provider sets the same value as the Environment tag."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 lowercase letters, digits or dashes."
  }
}

variable "vpc_name" {
  description = "Name tag of the VPC the tasks run in."
  type        = string
}

variable "private_subnet_tags" {
  description = "Tags that pick the VPC's private subnets for the tasks."
  type        = map(string)
}

variable "metrics_ingress_cidrs" {
  description = "CIDR ranges of the Prometheus scrapers allowed to reach port 9464; empty for none."
  type        = list(string)
  default     = []
}

# --- The image ----------------------------------------------------------------

variable "image_repository" {
  description = "ECR repository (name) holding Floe's image, in this account and region."
  type        = string
  default     = "floe"
}

variable "image_tag" {
  description = "Tag of the image to run (`just image` builds it)."
  type        = string
}

# --- Stream -------------------------------------------------------------------

variable "stream_mode" {
  description = "ON_DEMAND or PROVISIONED."
  type        = string
  default     = "ON_DEMAND"
}

variable "shard_count" {
  description = "Shards of a PROVISIONED stream; ignored when ON_DEMAND."
  type        = number
  default     = 1
}

variable "stream_retention_hours" {
  description = "Hours records stay in the stream (24 to 8760)."
  type        = number
  default     = 24
}

# --- Warehouse, lease table, Athena ---------------------------------------------

variable "warehouse_prefix" {
  description = "Key prefix of the Iceberg warehouse in the bucket."
  type        = string
  default     = "warehouse"
}

variable "glue_database_name" {
  description = "Glue database of Floe's tables."
  type        = string
  default     = "analytics"
}

variable "noncurrent_version_days" {
  description = "Days deleted warehouse objects stay recoverable as noncurrent versions."
  type        = number
  default     = 30
}

variable "athena_results_retention_days" {
  description = "Days Athena query results are kept."
  type        = number
  default     = 30
}

variable "athena_bytes_scanned_cutoff" {
  description = "Athena cancels a query of the workgroup that scans more bytes than this."
  type        = number
  default     = 10737418240
}

variable "deletion_protection" {
  description = "Protect the lease table from deletion (set false and apply before a destroy)."
  type        = bool
  default     = true
}

# --- The service ----------------------------------------------------------------

variable "task_cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "task_memory" {
  description = "Task memory, MiB."
  type        = number
  default     = 2048
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64, as the image was built."
  type        = string
  default     = "X86_64"
}

variable "max_capacity" {
  description = "Most tasks autoscaling runs; they share the stream's shards through the lease table, so more than the open shards only adds idle tasks."
  type        = number
  default     = 1
}

variable "consumer_name" {
  description = "FLOE_CONSUMER_NAME: the name shard checkpoints are kept under. A new name starts over from start_position (a replay)."
  type        = string
  default     = "floe"
}

variable "start_position" {
  description = "FLOE_START_POSITION for shards without a checkpoint: trim-horizon, latest or at-timestamp:<RFC 3339>."
  type        = string
  default     = "trim-horizon"
}

variable "index_memory" {
  description = "FLOE_INDEX_MEMORY: memory for the duplicate key index."
  type        = string
  default     = "1GiB"
}

variable "log_level" {
  description = "FLOE_LOG: log level filter."
  type        = string
  default     = "info"
}

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps Floe's logs."
  type        = number
  default     = 30
}

# --- Alarms ---------------------------------------------------------------------

variable "alarm_topic_arn" {
  description = "SNS topic for alarm notifications; null for none."
  type        = string
  default     = null
}

variable "iterator_age_alarm_ms" {
  description = "Iterator age (ms) above which the backlog alarm fires."
  type        = number
  default     = 600000
}

variable "freshness_alarm_seconds" {
  description = "Age (s) of the newest committed event above which the freshness alarm fires."
  type        = number
  default     = 900
}

variable "rejected_percent_alarm" {
  description = "Rejected share of records read (%) above which the alarm fires."
  type        = number
  default     = 1
}

variable "commit_failure_alarm_periods" {
  description = "Consecutive 5-minute periods with failed commits before the alarm fires."
  type        = number
  default     = 3
}

variable "metadata_bytes_alarm" {
  description = "Size (bytes) of the events table's metadata file at which the metadata-size alarm fires; below 20000000, AWS Glue's limit."
  type        = number
  default     = 10485760
}
