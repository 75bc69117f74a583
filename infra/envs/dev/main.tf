# dev: small, cheap, easy to tear down. Same account as prod is fine: every
# name carries the environment, and the Glue database is analytics_dev.
#
# This folder holds dev's values only; what they build is
# modules/floe_stack. Edit a value here, then plan and apply in this folder.

terraform {
  # Remote state in S3, locked by a lock file next to it (no DynamoDB table).
  # Bucket, key and region come from backend.hcl (copy backend.hcl.example):
  #   terraform init -backend-config=backend.hcl
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

provider "aws" {
  region = "eu-west-1"

  # On every resource; Environment says what `environment` below says.
  default_tags {
    tags = {
      Project     = "floe"
      Environment = "dev"
    }
  }
}

module "floe" {
  source = "../../modules/floe_stack"

  environment = "dev"

  # The VPC (by Name tag) and its private subnets (by tags) the tasks run in.
  vpc_name = "main"
  private_subnet_tags = {
    Tier = "private"
  }
  # Prometheus scrapers allowed to reach :9464 (/metrics, /health).
  metrics_ingress_cidrs = ["10.0.0.0/16"]

  # <account>.dkr.ecr.<region>.amazonaws.com/floe:<tag>, in this account and region.
  image_repository = "floe"
  image_tag        = "0.1.0"
  # As the image was built: ARM64 for one built on an ARM machine.
  cpu_architecture = "X86_64"

  # On-demand sizes itself; shard_count counts only once PROVISIONED.
  stream_mode            = "ON_DEMAND"
  shard_count            = 1
  stream_retention_hours = 24

  warehouse_prefix              = "warehouse"
  glue_database_name            = "analytics_dev"
  noncurrent_version_days       = 7
  athena_results_retention_days = 7
  athena_bytes_scanned_cutoff   = 10737418240 # 10 GiB
  deletion_protection           = false

  task_cpu     = 1024 # 1 vCPU
  task_memory  = 2048 # 2 GiB
  index_memory = "512MiB"
  # One shard: a second task would hold no lease (tasks share shards
  # through the lease table; more tasks than open shards sit idle).
  max_capacity = 1
  # Where shards without a checkpoint start; a new consumer_name with
  # at-timestamp:<RFC 3339> replays the stream from that instant.
  consumer_name  = "floe"
  start_position = "trim-horizon"
  log_level      = "info"

  log_retention_days = 14

  # Set to an SNS topic's ARN to be notified; dev alarms are only looked at.
  alarm_topic_arn              = null
  iterator_age_alarm_ms        = 1800000 # 30 minutes behind
  freshness_alarm_seconds      = 3600
  rejected_percent_alarm       = 5
  commit_failure_alarm_periods = 6
  metadata_bytes_alarm         = 10485760 # 10 MiB, as Floe's warning; AWS Glue refuses 20 MB
}
