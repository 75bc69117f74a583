# An Athena workgroup for querying Floe's tables, with its settings enforced
# (results encrypted with the warehouse key under athena-results/, a cap on
# bytes scanned per query), and saved queries a data engineer starts from.

resource "aws_athena_workgroup" "this" {
  name          = var.name
  description   = "Queries over the Iceberg tables Floe writes to ${var.glue_database_name}."
  state         = "ENABLED"
  force_destroy = false

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = var.results_location

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
}
