output "name" {
  description = "Name of the lease table."
  value       = aws_dynamodb_table.leases.name
}

output "arn" {
  description = "ARN of the lease table."
  value       = aws_dynamodb_table.leases.arn
}
