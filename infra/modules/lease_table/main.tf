# The DynamoDB table of shard leases through which Floe's tasks share a
# stream (FLOE_LEASE_TABLE): one item per shard lease (owner, renewal
# counter, hand-off request) and one heartbeat item per task, keyed by
# stream and consumer name, so one table can serve several streams.
# docs/design.md, "Scale-out", describes the items.

resource "aws_dynamodb_table" "leases" {
  name         = var.name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "lease_key"

  attribute {
    name = "lease_key"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  deletion_protection_enabled = var.deletion_protection
}
