# Scale the service on the stream's iterator age. Both environments keep
# max_capacity at 1 for now: a second task needs the shard leases of step 6,
# without which two tasks read the same shards. Raise max_capacity then.

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
