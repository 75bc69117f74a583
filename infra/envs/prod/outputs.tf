# Everything modules/floe_stack/outputs.tf describes, as one object:
#   terraform output floe                              (all of it)
#   terraform output -json floe | jq -r .stream_name   (one value, for scripts)
output "floe" {
  description = "What the stack created: stream, bucket, Glue database, service, alarms, Athena workgroup."
  value       = module.floe
}
