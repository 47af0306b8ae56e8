# Terraform and provider versions. The lock file (.terraform.lock.hcl) pins the exact provider
# build on the first `terraform init`; commit it so every deploy uses the same one.
terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x and 7.x: google_cloud_run_v2_service.urls (read by the URL postcondition),
      # google_identity_platform_config.blocking_functions and google_firestore_field.ttl_config.
      version = ">= 6.30.0, < 8.0.0"
    }
  }

  # State lives in a GCS bucket given at init time:
  #   terraform -chdir=infra init -backend-config=bucket=<bucket> -backend-config=prefix=hearth
  # scripts/deploy.sh creates the bucket (versioned) and passes both.
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = local.default_region

  # The Identity Toolkit API (Identity Platform config) refuses user credentials without a quota
  # project; bill those calls to the deployed project itself.
  user_project_override = true
  billing_project       = var.project_id
}

data "google_project" "this" {
  project_id = var.project_id
}
