output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.floe.name
}

output "task_definition_arn" {
  description = "ARN of the task definition revision the service runs."
  value       = aws_ecs_task_definition.floe.arn
}

output "task_role_arn" {
  description = "ARN of the role Floe's AWS calls run as."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "ARN of the role ECS pulls the image and ships logs with."
  value       = aws_iam_role.execution.arn
}

output "log_group_name" {
  description = "CloudWatch log group of Floe's logs and EMF metric lines."
  value       = aws_cloudwatch_log_group.floe.name
}

output "security_group_id" {
  description = "Security group of the tasks."
  value       = aws_security_group.floe.id
}

output "alarm_names" {
  description = "Names of the CloudWatch alarms."
  value = [
    aws_cloudwatch_metric_alarm.iterator_age.alarm_name,
    aws_cloudwatch_metric_alarm.freshness.alarm_name,
    aws_cloudwatch_metric_alarm.rejected_rate.alarm_name,
    aws_cloudwatch_metric_alarm.commit_failures.alarm_name,
    aws_cloudwatch_metric_alarm.metadata_bytes.alarm_name,
  ]
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.floe.dashboard_name
}

output "dashboard_url" {
  description = "The CloudWatch dashboard in the AWS console (the aws partition's console)."
  value       = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards/dashboard/${aws_cloudwatch_dashboard.floe.dashboard_name}"
}

output "floe_environment" {
  description = "The FLOE_* environment of the container."
  value       = local.floe_environment
}
