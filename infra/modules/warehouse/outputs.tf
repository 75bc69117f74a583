output "bucket_name" {
  description = "Name of the warehouse bucket."
  value       = aws_s3_bucket.warehouse.bucket
}

output "bucket_arn" {
  description = "ARN of the warehouse bucket."
  value       = aws_s3_bucket.warehouse.arn
}

output "warehouse_prefix" {
  description = "Key prefix of the Iceberg warehouse in the bucket."
  value       = var.warehouse_prefix
}

output "warehouse_uri" {
  description = "FLOE_WAREHOUSE: s3://<bucket>/<prefix>."
  value       = "s3://${aws_s3_bucket.warehouse.bucket}/${var.warehouse_prefix}"
}

output "athena_results_uri" {
  description = "Where Athena writes query results."
  value       = "s3://${aws_s3_bucket.warehouse.bucket}/${local.athena_results_prefix}"
}

output "log_bucket_name" {
  description = "Bucket receiving the warehouse bucket's S3 access logs."
  value       = aws_s3_bucket.logs.bucket
}

output "kms_key_arn" {
  description = "ARN of the key the bucket (and the lease table, and Athena results) is encrypted with."
  value       = module.key.arn
}

output "glue_database_name" {
  description = "Name of the Glue database."
  value       = aws_glue_catalog_database.this.name
}

output "glue_database_arn" {
  description = "ARN of the Glue database."
  value       = aws_glue_catalog_database.this.arn
}
