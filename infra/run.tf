# One Cloud Run service per function of the manifest, from the one image built for it
# (Dockerfile, ARG BIN). Settings come from the manifest's resources, defaults applied.
resource "google_cloud_run_v2_service" "function" {
  for_each = local.functions

  name                = each.key
  location            = each.value.region
  description         = "Hearth function ${each.key} (crate ${each.value.crate})"
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false
  # Google OIDC tokens (push, Scheduler) carry the deterministic URL as audience.
  custom_audiences = [local.service_url[each.key]]

  labels = {
    hearth-function = each.key
  }

  template {
    service_account                  = google_service_account.function[each.key].email
    timeout                          = "${each.value.resources.timeout_seconds}s"
    max_instance_request_concurrency = each.value.resources.concurrency

    scaling {
      min_instance_count = each.value.resources.min_instances
      max_instance_count = each.value.resources.max_instances
    }

    containers {
      image = "${var.image_repo}/${each.key}:${var.image_tag}"

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = each.value.resources.cpu
          memory = each.value.resources.memory
        }
        # CPU only while serving requests; a faster start for cold instances.
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.function_env[each.key]
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = each.value.secrets
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      # runtime::serve answers GET /healthz as soon as it listens.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 1
        timeout_seconds       = 1
        failure_threshold     = 30
        http_get {
          path = "/healthz"
          port = 8080
        }
      }

      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
          port = 8080
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  # Secrets must be readable, and the identity able to use Firestore, before the first revision.
  depends_on = [
    google_project_service.required,
    google_project_iam_member.function_firestore,
    google_secret_manager_secret_iam_member.function_secret,
  ]

  lifecycle {
    postcondition {
      condition     = contains(self.urls, local.service_url[each.key])
      error_message = "Cloud Run does not serve ${each.key} at ${local.service_url[each.key]}, the URL every OIDC audience and blocking function URI is built from. Check the service's URLs (gcloud run services describe ${each.key})."
    }
  }
}
