# The ECS cluster, Floe's Fargate task definition and the service running it.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Seconds ECS waits after SIGTERM before SIGKILL: 120 is Fargate's maximum.
  # FLOE_SHUTDOWN_DEADLINE must be below it (variables.tf checks).
  stop_timeout_seconds = 120

  floe_container = {
    name      = "floe"
    image     = var.image
    essential = true
    command   = ["run"]

    # The image's unprivileged user; nothing in the image is writable.
    user                   = "10001"
    readonlyRootFilesystem = true
    privileged             = false

    stopTimeout = local.stop_timeout_seconds

    portMappings = [{
      containerPort = local.metrics_port
      protocol      = "tcp"
    }]

    environment = [for name, value in local.floe_environment : { name = name, value = value }]

    # Liveness, not readiness: a task whose catalog is unreachable is not
    # ready, but replacing it would not help; `floe health --ready` is what a
    # person or a load balancer asks.
    healthCheck = {
      command     = ["CMD", "/usr/local/bin/floe", "health"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.floe.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "floe"
        # Never block Floe's stdout/stderr on CloudWatch Logs; lines wait in
        # this buffer (and are dropped only if it fills) instead.
        mode            = "non-blocking"
        max-buffer-size = var.log_buffer_size
      }
    }
  }
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_task_definition" "floe" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([local.floe_container])
}

resource "aws_ecs_service" "floe" {
  name             = var.name
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.floe.arn
  desired_count    = var.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  # Rolling deployments without a pause: new tasks start next to the old
  # ones and ask them for shards; an old task stopped with SIGTERM commits
  # what it read and releases its leases, and the new tasks take its shards
  # at once, from the table's checkpoints. Two tasks never commit one
  # shard's records twice: the leases and the checkpoint swap see to it.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.floe.id]
    assign_public_ip = false
  }

  enable_execute_command  = false
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  lifecycle {
    # Application Auto Scaling owns the running count once the service exists.
    ignore_changes = [desired_count]
  }
}
