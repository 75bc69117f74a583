variable "name" {
  description = "Name of the stream (e.g. floe-dev-events)."
  type        = string
}

variable "stream_mode" {
  description = "ON_DEMAND (scales itself, pay per GB) or PROVISIONED (shard_count shards, pay per shard-hour)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  description = "Shards of a PROVISIONED stream (1 MB/s or 1,000 records/s in, 2 MB/s out each); ignored when ON_DEMAND."
  type        = number
  default     = 1

  validation {
    condition     = var.shard_count >= 1
    error_message = "shard_count must be at least 1."
  }
}

variable "retention_hours" {
  description = "How long records stay readable: 24 to 8760 hours. Floe must catch up within it after an outage."
  type        = number
  default     = 24

  validation {
    condition     = var.retention_hours >= 24 && var.retention_hours <= 8760
    error_message = "retention_hours must be between 24 and 8760."
  }
}

variable "shard_level_metrics" {
  description = "Enhanced (per-shard) CloudWatch metrics to turn on, e.g. [\"IteratorAgeMilliseconds\"]; empty for none."
  type        = list(string)
  default     = []
}
