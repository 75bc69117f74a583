# `floe maintain` on a schedule: the same task definition with the command
# `maintain` (it reads the warehouse, catalog and table settings from the
# same FLOE_* environment), started by EventBridge Scheduler as a one-off
# Fargate task. It compacts small files, expires old snapshots and removes
# orphan files of both tables; it commits through the catalog's
# compare-and-swap like the service's tasks, so it runs while they write.

resource "aws_scheduler_schedule" "maintenance" {
  #checkov:skip=CKV_AWS_297:The schedule holds only a fixed command override (`maintain`), no data; an AWS-owned key encrypts it.
  name                         = "${var.name}-maintenance"
  description                  = "floe maintain: compaction, snapshot expiry, orphan removal"
  schedule_expression          = var.maintenance_schedule
  schedule_expression_timezone = "UTC"
  state                        = var.maintenance_schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.this.arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.floe.arn
      launch_type         = "FARGATE"
      platform_version    = "LATEST"
      task_count          = 1

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = [aws_security_group.floe.id]
        assign_public_ip = false
      }
    }

    input = jsonencode({
      containerOverrides = [{
        name    = local.floe_container.name
        command = ["maintain"]
      }]
    })

    retry_policy {
      maximum_retry_attempts = 2
    }
  }
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "RunFloeMaintain"
    actions   = ["ecs:RunTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${var.name}:*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  statement {
    sid       = "PassFloeRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task.arn, aws_iam_role.execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-maintenance-scheduler"
  description        = "EventBridge Scheduler starts the floe maintain task."
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "run-floe-maintain"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
