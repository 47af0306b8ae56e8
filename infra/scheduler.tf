# One Cloud Scheduler job per schedule trigger: POST <service>/jobs/<job> with an OIDC token of
# the Scheduler invoker account, an attempt deadline and the manifest's retry count.
resource "google_cloud_scheduler_job" "job" {
  for_each = local.schedules

  name             = each.key
  region           = each.value.region
  description      = "Hearth: POST ${each.value.path} on ${each.value.function}"
  schedule         = each.value.cron
  time_zone        = each.value.time_zone
  attempt_deadline = "${each.value.attempt_deadline_seconds}s"

  retry_config {
    retry_count          = each.value.retry_count
    min_backoff_duration = "5s"
    max_backoff_duration = "300s"
    max_doublings        = 5
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloud_run_v2_service.function[each.value.function].uri}${each.value.path}"

    oidc_token {
      service_account_email = google_service_account.invoker["schedule"].email
      audience              = local.service_url[each.value.function]
    }
  }

  depends_on = [
    google_project_service.required,
    google_cloud_run_v2_service_iam_member.invoker,
  ]
}
