# The DynamoDB table that will hold shard leases when more than one Floe task
# reads a stream (step 6 of the plan). Floe does not use it yet; it exists now
# so that the task role, alarms and backups are in place before it does.

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
