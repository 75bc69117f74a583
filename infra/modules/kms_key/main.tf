# A customer managed KMS key with yearly rotation and an alias. Its key policy
# lets the account administer the key and delegate its use to IAM policies
# (each role's own policy then names this key); a caller adds statements for
# AWS services that use the key on their own (CloudWatch Logs) through
# `service_policy_json`.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}

data "aws_iam_policy_document" "key_policy" {
  #checkov:skip=CKV_AWS_109:A key policy: its Resource "*" is this key alone, and administering the key is what the account's statement is for.
  #checkov:skip=CKV_AWS_111:A key policy: its Resource "*" is this key alone, never another resource.
  #checkov:skip=CKV_AWS_356:A key policy: its Resource "*" is this key alone (the key's ARN does not exist before the key does).
  source_policy_documents = var.service_policy_json == null ? [] : [var.service_policy_json]

  # The account's own statement, spelled out instead of "kms:*": administering
  # the key, and the uses that IAM policies in this account may then grant.
  statement {
    sid = "AccountAdministersKeyAndDelegatesUseToIam"
    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
    actions = [
      "kms:CancelKeyDeletion",
      "kms:Create*",
      "kms:Decrypt",
      "kms:Delete*",
      "kms:Describe*",
      "kms:Disable*",
      "kms:Enable*",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:Get*",
      "kms:List*",
      "kms:Put*",
      "kms:ReEncrypt*",
      "kms:RetireGrant",
      "kms:Revoke*",
      "kms:RotateKeyOnDemand",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:Update*",
    ]
    # In a key policy "*" means this key and nothing else.
    resources = ["*"]
  }
}

resource "aws_kms_key" "this" {
  description             = var.description
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.key_policy.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias}"
  target_key_id = aws_kms_key.this.key_id
}
