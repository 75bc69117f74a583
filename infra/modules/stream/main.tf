# The Kinesis data stream Floe reads, encrypted with its own customer managed
# key. Producers need kms:GenerateDataKey and readers kms:Decrypt on that key
# (the key's ARN is an output).

module "key" {
  source = "../kms_key"

  alias       = "${var.name}-stream"
  description = "Encrypts the records of the Kinesis data stream ${var.name}."
}

resource "aws_kinesis_stream" "this" {
  name             = var.name
  retention_period = var.retention_hours
  # Only a provisioned stream has a shard count; on-demand sizes itself.
  shard_count = var.stream_mode == "PROVISIONED" ? var.shard_count : null

  stream_mode_details {
    stream_mode = var.stream_mode
  }

  encryption_type = "KMS"
  kms_key_id      = module.key.arn

  # Per-shard metrics cost extra: each one enabled is a CloudWatch custom
  # metric for every open shard. floe_stack turns on IteratorAgeMilliseconds
  # alone, for the dashboard's iterator age per shard (Floe's /metrics has
  # each shard's lag too). The stream-level metrics (iterator age,
  # throughput) are free.
  shard_level_metrics = var.shard_level_metrics
}
