variable "name" {
  description = "Name of the workgroup (e.g. floe-dev)."
  type        = string
}

variable "glue_database_name" {
  description = "Glue database holding Floe's tables."
  type        = string
}

variable "events_table_name" {
  description = "Name of the events table in the database (FLOE_TABLE without the database)."
  type        = string
  default     = "events"
}

variable "results_location" {
  description = "S3 URI Athena writes query results to, ending in /."
  type        = string

  validation {
    condition     = startswith(var.results_location, "s3://") && endswith(var.results_location, "/")
    error_message = "results_location must be an s3:// URI ending in /."
  }
}

variable "kms_key_arn" {
  description = "ARN of the key query results are encrypted with (SSE_KMS)."
  type        = string
}

variable "bytes_scanned_cutoff_per_query" {
  description = "A query scanning more bytes than this is cancelled (at least 10485760, 10 MiB)."
  type        = number
  default     = 10737418240

  validation {
    condition     = var.bytes_scanned_cutoff_per_query >= 10485760
    error_message = "bytes_scanned_cutoff_per_query must be at least 10485760 (10 MiB)."
  }
}
