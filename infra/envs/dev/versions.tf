terraform {
  # 1.10 brought S3-native state locking (use_lockfile, in main.tf).
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
