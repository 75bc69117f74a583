output "name" {
  description = "Name of the stream (FLOE_STREAM)."
  value       = aws_kinesis_stream.this.name
}

output "arn" {
  description = "ARN of the stream."
  value       = aws_kinesis_stream.this.arn
}

output "kms_key_arn" {
  description = "ARN of the key the stream's records are encrypted with."
  value       = module.key.arn
}
