variable "name" {
  description = "Name of the table (e.g. floe-dev-leases)."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the customer managed key the table is encrypted with."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse DeleteTable (and so terraform destroy) until this is set to false and applied."
  type        = bool
  default     = true
}
