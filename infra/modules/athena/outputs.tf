output "workgroup_name" {
  description = "Name of the Athena workgroup."
  value       = aws_athena_workgroup.this.name
}

output "named_query_ids" {
  description = "Ids of the saved queries, by purpose."
  value = {
    events_by_day_and_type = aws_athena_named_query.events_by_day_and_type.id
    duplicate_audit        = aws_athena_named_query.duplicate_audit.id
    data_quality_over_time = aws_athena_named_query.data_quality_over_time.id
  }
}
