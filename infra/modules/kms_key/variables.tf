variable "alias" {
  description = "Alias of the key, without the alias/ prefix (e.g. floe-dev-stream)."
  type        = string
}

variable "description" {
  description = "What the key encrypts."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Days a deleted key can still be recovered (7 to 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "service_policy_json" {
  description = "Extra key policy statements (a policy document's JSON) for AWS services that use the key themselves; null for none."
  type        = string
  default     = null
}
