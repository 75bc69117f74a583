# What both buckets here, the warehouse (main.tf) and its access logs
# (logs.tf), have alike: owned by this account alone, never public, versioned,
# and reachable over TLS only. Each bucket's own encryption, lifecycle and
# policy are in its file.

locals {
  buckets = {
    warehouse = aws_s3_bucket.warehouse
    logs      = aws_s3_bucket.logs
  }
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = each.value.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket = each.value.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# Iceberg writes every file once under a new name and never overwrites one, so
# versioning keeps no second copy of live data: only the files that snapshot
# expiry deletes linger, as noncurrent versions, for noncurrent_version_days
# (an undo window for a mistaken cleanup). Log objects are written once too;
# there versioning only guards against their deletion.
resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets

  bucket = each.value.id

  versioning_configuration {
    status = "Enabled"
  }
}

# Part of each bucket's policy (aws_s3_bucket_policy in its file).
data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets

  statement {
    sid    = "DenyRequestsWithoutTls"
    effect = "Deny"
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
