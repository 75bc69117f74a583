# prod: a provisioned stream with a week of retention, a larger task, the lease
# table protected from deletion, tighter alarms.
#
# This folder holds prod's values only; what they build is
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
      Environment = "prod"
    }
  }
}

module "floe" {
  source = "../../modules/floe_stack"

  environment = "prod"

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

  # 4 shards: 4 MB/s or 4,000 records/s in. A week of retention leaves time to
  # fix an outage before records expire.
  stream_mode            = "PROVISIONED"
  shard_count            = 4
  stream_retention_hours = 168

  warehouse_prefix              = "warehouse"
  glue_database_name            = "analytics"
  noncurrent_version_days       = 30
  athena_results_retention_days = 30
  athena_bytes_scanned_cutoff   = 107374182400 # 100 GiB
  deletion_protection           = true

  task_cpu     = 2048 # 2 vCPU
  task_memory  = 8192 # 8 GiB
  index_memory = "4GiB"
  # Up to one task per shard: the tasks share the shards through the lease
  # table, and a fifth task would hold no lease.
  max_capacity = 4
  # Where shards without a checkpoint start; a new consumer_name with
  # at-timestamp:<RFC 3339> replays the stream from that instant.
  consumer_name  = "floe"
  start_position = "trim-horizon"
  log_level      = "info"

  log_retention_days = 365

  # Set to the on-call SNS topic's ARN, e.g. arn:aws:sns:<region>:<account>:<topic>.
  alarm_topic_arn              = null
  iterator_age_alarm_ms        = 600000 # 10 minutes behind
  freshness_alarm_seconds      = 900
  rejected_percent_alarm       = 1
  commit_failure_alarm_periods = 3
  metadata_bytes_alarm         = 10485760 # 10 MiB, as Floe's warning; AWS Glue refuses 20 MB
}
