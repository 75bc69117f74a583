# Where the tables live: the S3 bucket holding the Iceberg files (under
# `warehouse_prefix`) and Athena's query results (under `athena-results/`),
# the customer managed key both are encrypted with, and the Glue database that
# holds the table pointers. Floe creates its tables itself on first start.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  # Bucket names are global: the account and region make them unique without
  # putting an account number in the variables.
  bucket_name     = "${var.name}-${data.aws_caller_identity.current.account_id}-${data.aws_region.current.region}"
  log_bucket_name = "${local.bucket_name}-logs"
  # Athena writes query results here; Floe's role cannot read them.
  athena_results_prefix = "athena-results/"
}

module "key" {
  source = "../kms_key"

  alias       = "${var.name}-warehouse"
  description = "Encrypts the Iceberg files, Athena results and lease table of ${var.name}."
}

resource "aws_s3_bucket" "warehouse" {
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles the storage bill; the data can be re-read from the stream within its retention, and versioning keeps deleted files for noncurrent_version_days.
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications: readers find new data through the Glue catalog, which Floe updates on every commit.
  bucket        = local.bucket_name
  force_destroy = false
}

resource "aws_s3_bucket_server_side_encryption_configuration" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = module.key.arn
    }
    # One data key per bucket instead of one KMS call per object.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  # A writer that dies mid-upload (a task stopped past its deadline) leaves
  # parts that are billed until aborted.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_upload_days
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "expire-athena-results"
    status = "Enabled"

    filter {
      prefix = local.athena_results_prefix
    }

    expiration {
      days = var.athena_results_retention_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id

  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${local.bucket_name}/"
}

resource "aws_s3_bucket_policy" "warehouse" {
  bucket = aws_s3_bucket.warehouse.id
  policy = data.aws_iam_policy_document.tls_only["warehouse"].json

  # A policy put before the public access block could be refused as public.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_glue_catalog_database" "this" {
  name        = var.glue_database_name
  description = "Iceberg tables written by Floe (${var.name}); Floe creates its tables on first start."
}
