# All of Floe in one environment: the stream, the warehouse, the lease table,
# Athena and the service, wired together. Every environment (envs/<env>) calls
# this module once with its own values and holds nothing else but its
# provider and state location, so dev and prod are the same code by
# construction.

locals {
  # Every name carries the environment, so dev and prod can share an account.
  name = "floe-${var.environment}"
}

# The network and the image repository exist already; they are found by name,
# so the variables hold no account-specific ids.
data "aws_vpc" "this" {
  tags = {
    Name = var.vpc_name
  }
}

data "aws_subnets" "private" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.this.id]
  }

  tags = var.private_subnet_tags
}

data "aws_ecr_repository" "floe" {
  name = var.image_repository
}

module "stream" {
  source = "../stream"

  name            = "${local.name}-events"
  stream_mode     = var.stream_mode
  shard_count     = var.shard_count
  retention_hours = var.stream_retention_hours
  # The dashboard's iterator age per shard, and nothing more: each shard-level
  # metric is billed as a CloudWatch custom metric for every open shard.
  shard_level_metrics = ["IteratorAgeMilliseconds"]
}

module "warehouse" {
  source = "../warehouse"

  name                          = local.name
  warehouse_prefix              = var.warehouse_prefix
  glue_database_name            = var.glue_database_name
  noncurrent_version_days       = var.noncurrent_version_days
  athena_results_retention_days = var.athena_results_retention_days
}

module "lease_table" {
  source = "../lease_table"

  name                = "${local.name}-leases"
  kms_key_arn         = module.warehouse.kms_key_arn
  deletion_protection = var.deletion_protection
}

module "athena" {
  source = "../athena"

  name                           = local.name
  glue_database_name             = module.warehouse.glue_database_name
  results_location               = module.warehouse.athena_results_uri
  kms_key_arn                    = module.warehouse.kms_key_arn
  bytes_scanned_cutoff_per_query = var.athena_bytes_scanned_cutoff
}

module "floe_service" {
  source = "../floe_service"

  name                 = local.name
  image                = "${data.aws_ecr_repository.floe.repository_url}:${var.image_tag}"
  image_repository_arn = data.aws_ecr_repository.floe.arn
  cpu                  = var.task_cpu
  memory               = var.task_memory
  cpu_architecture     = var.cpu_architecture
  max_capacity         = var.max_capacity

  vpc_id                = data.aws_vpc.this.id
  subnet_ids            = data.aws_subnets.private.ids
  metrics_ingress_cidrs = var.metrics_ingress_cidrs

  stream_name             = module.stream.name
  stream_arn              = module.stream.arn
  stream_kms_key_arn      = module.stream.kms_key_arn
  warehouse_bucket_name   = module.warehouse.bucket_name
  warehouse_bucket_arn    = module.warehouse.bucket_arn
  warehouse_prefix        = module.warehouse.warehouse_prefix
  warehouse_kms_key_arn   = module.warehouse.kms_key_arn
  glue_database_name      = module.warehouse.glue_database_name
  lease_table_name        = module.lease_table.name
  lease_table_arn         = module.lease_table.arn
  lease_table_kms_key_arn = module.warehouse.kms_key_arn

  consumer_name  = var.consumer_name
  start_position = var.start_position
  index_memory   = var.index_memory
  log_level      = var.log_level

  log_retention_days           = var.log_retention_days
  alarm_topic_arn              = var.alarm_topic_arn
  iterator_age_alarm_ms        = var.iterator_age_alarm_ms
  freshness_alarm_seconds      = var.freshness_alarm_seconds
  rejected_percent_alarm       = var.rejected_percent_alarm
  commit_failure_alarm_periods = var.commit_failure_alarm_periods
  metadata_bytes_alarm         = var.metadata_bytes_alarm
}
