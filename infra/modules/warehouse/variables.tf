variable "name" {
  description = "Prefix of every name here (e.g. floe-dev); the bucket is <name>-<account>-<region>."
  type        = string
}

variable "warehouse_prefix" {
  description = "Key prefix of the Iceberg warehouse in the bucket, without slashes: FLOE_WAREHOUSE is s3://<bucket>/<prefix>."
  type        = string
  default     = "warehouse"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$", var.warehouse_prefix)) && !startswith(var.warehouse_prefix, "athena-results")
    error_message = "warehouse_prefix must be a key prefix without leading or trailing slash, and not athena-results."
  }
}

variable "glue_database_name" {
  description = "Glue database holding Floe's tables (<db>.events and <db>.events_rejected)."
  type        = string
  default     = "analytics"

  validation {
    condition     = can(regex("^[a-z0-9_]{1,255}$", var.glue_database_name))
    error_message = "glue_database_name must be lowercase letters, digits and underscores (Athena's rule)."
  }
}

variable "abort_incomplete_upload_days" {
  description = "Days after which an unfinished multipart upload is aborted and its parts deleted (1 to 7)."
  type        = number
  default     = 2

  validation {
    condition     = var.abort_incomplete_upload_days >= 1 && var.abort_incomplete_upload_days <= 7
    error_message = "abort_incomplete_upload_days must be between 1 and 7."
  }
}

variable "noncurrent_version_days" {
  description = "Days a deleted or replaced object's old version is kept before S3 removes it."
  type        = number
  default     = 30
}

variable "athena_results_retention_days" {
  description = "Days Athena query results (under athena-results/) are kept."
  type        = number
  default     = 30
}

variable "access_log_retention_days" {
  description = "Days the bucket's S3 server access logs are kept."
  type        = number
  default     = 90
}
