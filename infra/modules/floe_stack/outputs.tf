output "stream_name" {
  description = "Kinesis data stream to send events to."
  value       = module.stream.name
}

output "stream_arn" {
  description = "ARN of the stream (for producers' IAM policies)."
  value       = module.stream.arn
}

output "stream_kms_key_arn" {
  description = "Key producers need kms:GenerateDataKey on."
  value       = module.stream.kms_key_arn
}

output "bucket_name" {
  description = "Warehouse bucket."
  value       = module.warehouse.bucket_name
}

output "warehouse_uri" {
  description = "FLOE_WAREHOUSE."
  value       = module.warehouse.warehouse_uri
}

output "glue_database_name" {
  description = "Glue database of the tables (<db>.events, <db>.events_rejected)."
  value       = module.warehouse.glue_database_name
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.floe_service.cluster_name
}

output "service_name" {
  description = "ECS service running Floe."
  value       = module.floe_service.service_name
}

output "task_role_arn" {
  description = "Role Floe's AWS calls run as."
  value       = module.floe_service.task_role_arn
}

output "log_group_name" {
  description = "CloudWatch log group of Floe's logs and metric lines."
  value       = module.floe_service.log_group_name
}

output "alarm_names" {
  description = "CloudWatch alarms."
  value       = module.floe_service.alarm_names
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the environment."
  value       = module.floe_service.dashboard_name
}

output "dashboard_url" {
  description = "That dashboard in the AWS console."
  value       = module.floe_service.dashboard_url
}

output "lease_table_name" {
  description = "DynamoDB shard lease table (FLOE_LEASE_TABLE)."
  value       = module.lease_table.name
}

output "athena_workgroup" {
  description = "Athena workgroup with the saved queries."
  value       = module.athena.workgroup_name
}
