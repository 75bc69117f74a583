# Two roles. The task role is what Floe's AWS calls run as: least privilege,
# every statement names this service's stream, bucket prefix, Glue database,
# lease table and keys. The execution role is what ECS uses to pull the image
# and ship the logs.
#
# Neither role has cloudwatch:PutMetricData: Floe's CloudWatch metrics are
# Embedded Metric Format lines in its log stream, delivered by the awslogs
# driver under the execution role and turned into metrics by CloudWatch Logs.

locals {
  glue_catalog_arn  = "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"
  glue_database_arn = "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${var.glue_database_name}"
  glue_tables_arn   = "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${var.glue_database_name}/*"
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksOfThisAccount"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- Task role: what Floe itself may do ---------------------------------------

data "aws_iam_policy_document" "task" {
  statement {
    sid = "ReadTheStream"
    actions = [
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [var.stream_arn]
  }

  statement {
    sid       = "DecryptTheStream"
    actions   = ["kms:Decrypt"]
    resources = [var.stream_kms_key_arn]
  }

  # Floe creates its database only when it is missing; it exists here, so
  # glue:CreateDatabase is not granted.
  statement {
    sid = "CatalogTablesOfTheDatabase"
    actions = [
      "glue:CreateTable",
      "glue:GetDatabase",
      "glue:GetTable",
      "glue:UpdateTable",
    ]
    resources = [
      local.glue_catalog_arn,
      local.glue_database_arn,
      local.glue_tables_arn,
    ]
  }

  statement {
    sid = "WarehouseObjects"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:PutObject",
    ]
    resources = ["${var.warehouse_bucket_arn}/${var.warehouse_prefix}/*"]
  }

  statement {
    sid       = "ListTheWarehousePrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.warehouse_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.warehouse_prefix}/*"]
    }
  }

  statement {
    sid = "WarehouseKey"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.warehouse_kms_key_arn]
  }

  # The shard lease table: Floe scans it, and changes items with
  # conditional writes only (put, update, delete).
  statement {
    sid = "LeaseTable"
    actions = [
      "dynamodb:DeleteItem",
      "dynamodb:PutItem",
      "dynamodb:Scan",
      "dynamodb:UpdateItem",
    ]
    resources = [var.lease_table_arn]
  }

  # DynamoDB uses the table's key on the caller's behalf.
  statement {
    sid = "LeaseTableKeyThroughDynamoDb"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.lease_table_kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  description        = "Floe's own AWS calls: read the stream, write the tables."
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "task" {
  name   = "floe"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# --- Execution role: what ECS does for the task -------------------------------

data "aws_iam_policy_document" "execution" {
  # GetAuthorizationToken works on the registry, not on a repository: IAM
  # accepts no resource but "*" for it. The pull itself is scoped below.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullTheImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.image_repository_arn]
  }

  statement {
    sid = "WriteTheLogGroup"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.floe.arn}:log-stream:*"]
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  description        = "ECS pulls Floe's image and ships its logs."
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-and-log"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
