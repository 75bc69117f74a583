# Scale the service on the stream's iterator age. The tasks share the
# stream's shards through leases (FLOE_LEASE_TABLE): a new task asks the
# busiest ones to hand shards over, and a task scaled in releases its leases
# after its final commit, so the others take its shards at once. More tasks
# than open shards only adds idle ones: keep max_capacity at or below the
# shard count.

resource "aws_appautoscaling_target" "floe" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.floe.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity
}

resource "aws_appautoscaling_policy" "iterator_age" {
  name               = "${var.name}-iterator-age"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.floe.service_namespace
  resource_id        = aws_appautoscaling_target.floe.resource_id
  scalable_dimension = aws_appautoscaling_target.floe.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.scaling_target_iterator_age_ms
    scale_out_cooldown = 300
    scale_in_cooldown  = 900

    customized_metric_specification {
      namespace   = "AWS/Kinesis"
      metric_name = "GetRecords.IteratorAgeMilliseconds"
      statistic   = "Maximum"
      unit        = "Milliseconds"

      dimensions {
        name  = "StreamName"
        value = var.stream_name
      }
    }
  }
}
