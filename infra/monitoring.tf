# Cloud Monitoring, from the manifest's service level objectives (defaults.slo and each
# function's slo, merged in locals.tf): per function a custom service holding three
# request-based SLOs (availability, p95 and p99 latency) on its Cloud Run metrics, and alert
# policies on p95 latency, p99 latency and the 5xx rate; an alert per dead-letter topic that
# holds messages; an alert when a payment provider's circuit breaker opens. Every policy
# notifies var.notification_channels.
#
# Cloud Run metrics (resource cloud_run_revision, labels service_name and location):
# run.googleapis.com/request_count (label response_code_class 2xx..5xx) and
# run.googleapis.com/request_latencies (a distribution, in ms).

# One custom service per function. An explicit service id keeps it apart from the service
# entry Cloud Monitoring may create for the Cloud Run service by itself.
resource "google_monitoring_custom_service" "function" {
  for_each = local.functions

  service_id   = "hearth-${each.key}"
  display_name = "Hearth ${each.key} (Cloud Run, ${each.value.region})"
  user_labels = {
    hearth-function = each.key
  }

  depends_on = [google_project_service.required]
}

# Availability: the share of requests that do not answer 5xx, over 28 days.
resource "google_monitoring_slo" "availability" {
  for_each = local.functions

  service             = google_monitoring_custom_service.function[each.key].service_id
  slo_id              = "availability"
  display_name        = "${each.key}: ${each.value.slo.availability_percent}% of requests answer without a 5xx (28 days)"
  goal                = each.value.slo.availability_percent / 100
  rolling_period_days = 28

  request_based_sli {
    good_total_ratio {
      bad_service_filter   = "${local.run_filters[each.key].requests} AND metric.label.\"response_code_class\"=\"5xx\""
      total_service_filter = local.run_filters[each.key].requests
    }
  }
}

# Latency: 95 % (p95) or 99 % (p99) of requests answer within the manifest's threshold.
resource "google_monitoring_slo" "latency" {
  for_each = local.latency_objectives

  service             = google_monitoring_custom_service.function[each.value.function].service_id
  slo_id              = "latency-p${each.value.percentile}"
  display_name        = "${each.value.function}: ${each.value.percentile}% of requests within ${each.value.threshold_ms} ms (28 days)"
  goal                = each.value.percentile / 100
  rolling_period_days = 28

  request_based_sli {
    distribution_cut {
      distribution_filter = local.run_filters[each.value.function].latencies

      range {
        max = each.value.threshold_ms
      }
    }
  }
}

# The p95 (p99) latency of the service above its threshold for 5 minutes.
resource "google_monitoring_alert_policy" "latency" {
  for_each = local.latency_objectives

  display_name          = "${each.value.function}: p${each.value.percentile} latency above ${each.value.threshold_ms} ms"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels = {
    hearth-function = each.value.function
    hearth-alert    = "latency-p${each.value.percentile}"
  }

  conditions {
    display_name = "p${each.value.percentile} of request_latencies > ${each.value.threshold_ms} ms for 5 min"

    condition_threshold {
      filter          = local.run_filters[each.value.function].latencies
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold_ms
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_PERCENTILE_${each.value.percentile}"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The p${each.value.percentile} latency of `${each.value.function}` has been above its objective (${each.value.threshold_ms} ms, `slo` in shared/functions.yaml) for 5 minutes. Look at the service's request logs and its dependencies (Firestore, Pub/Sub, payment providers)."
  }
}

# More than error_rate_percent of the service's requests answer 5xx, over 5 minutes.
resource "google_monitoring_alert_policy" "errors" {
  for_each = local.functions

  display_name          = "${each.key}: more than ${each.value.slo.error_rate_percent}% of requests answer 5xx"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels = {
    hearth-function = each.key
    hearth-alert    = "errors"
  }

  conditions {
    display_name = "5xx / all requests > ${each.value.slo.error_rate_percent}% over 5 min"

    condition_threshold {
      filter             = "${local.run_filters[each.key].requests} AND metric.label.\"response_code_class\"=\"5xx\""
      denominator_filter = local.run_filters[each.key].requests
      comparison         = "COMPARISON_GT"
      threshold_value    = each.value.slo.error_rate_percent / 100
      duration           = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${each.value.slo.error_rate_percent}% of `${each.key}`'s requests answered 5xx over 5 minutes (`slo.error_rate_percent` in shared/functions.yaml). Retries answer 5xx on purpose (Pub/Sub and Scheduler redeliver): look at the ERROR lines of the service's logs for the cause."
  }
}

# A dead-letter topic's pull subscription (pubsub.tf, `<topic>--pull`) holds messages: some
# deliveries failed max_delivery_attempts times and wait for someone to read, replay or drop
# them. The alert stays open until the subscription is drained.
resource "google_monitoring_alert_policy" "dead_letter" {
  for_each = local.dead_letter_topics

  display_name          = "${each.key}: dead-lettered messages waiting"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels = {
    hearth-topic = each.key
    hearth-alert = "dead-letter"
  }

  conditions {
    display_name = "num_undelivered_messages > 0 on ${each.key}--pull"

    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.\"subscription_id\"=\"${google_pubsub_subscription.dead_letter[each.key].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.subscription_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Messages wait in `${each.key}--pull`: deliveries failed max_delivery_attempts times. Inspect with `gcloud pubsub subscriptions pull ${each.key}--pull --limit=10`, fix the cause, then republish them to the source topic (docs/deploy.md, Troubleshooting)."
  }
}

# crates/providers logs one WARNING line with this message and a `provider` field each time a
# provider's circuit breaker opens (calls to that provider are refused for a while).
resource "google_logging_metric" "circuit_breaker_opened" {
  name        = "hearth-circuit-breaker-opened"
  description = "A payment provider's circuit breaker opened (crates/providers/src/http.rs)."
  filter      = "resource.type=\"cloud_run_revision\" AND jsonPayload.message=\"${local.circuit_breaker_log_message}\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "provider"
      value_type  = "STRING"
      description = "stripe or pesapal"
    }
  }

  label_extractors = {
    provider = "EXTRACT(jsonPayload.provider)"
  }

  depends_on = [google_project_service.required]
}

resource "google_monitoring_alert_policy" "circuit_breaker" {
  display_name          = "A payment provider's circuit breaker opened"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels = {
    hearth-alert = "circuit-breaker"
  }

  conditions {
    display_name = "circuit breaker opened (log-based metric) > 0"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.circuit_breaker_opened.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.provider", "resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A payment provider failed repeatedly and its circuit breaker opened: calls to it are refused for a while (payments are deferred, not lost). Check the provider's status page and the service's WARNING lines `${local.circuit_breaker_log_message}`."
  }
}
