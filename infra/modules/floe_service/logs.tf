# Floe's log group, encrypted with its own key. The awslogs driver sends
# Floe's stderr (logs) and stdout (EMF metric lines) here.

locals {
  log_group_name = "/ecs/${var.name}"
  # Built from the name: the key policy needs it before the log group exists.
  log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"
}

data "aws_iam_policy_document" "logs_key_policy" {
  statement {
    sid = "CloudWatchLogsUsesKeyForFloeLogGroup"
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    actions = [
      "kms:Decrypt*",
      "kms:Describe*",
      "kms:Encrypt*",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    # In a key policy "*" means this key and nothing else.
    resources = ["*"]
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = [local.log_group_arn]
    }
  }
}

module "logs_key" {
  source = "../kms_key"

  alias               = "${var.name}-logs"
  description         = "Encrypts the CloudWatch log group ${local.log_group_name}."
  service_policy_json = data.aws_iam_policy_document.logs_key_policy.json
}

resource "aws_cloudwatch_log_group" "floe" {
  #checkov:skip=CKV_AWS_338:Retention is log_retention_days per environment (a year in prod). These are operational logs; the data's own history is the Iceberg snapshot log and the bucket's access logs.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = module.logs_key.arn
}
