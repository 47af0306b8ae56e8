# Topics, push subscriptions and dead letters, from the manifest's topics and pubsub triggers.

resource "google_pubsub_topic" "topic" {
  for_each = local.topics

  name = each.key
  labels = {
    hearth-dead-letter = try(each.value.dead_letter, false) ? "true" : "false"
  }

  depends_on = [google_project_service.required]
}

# One push subscription per pubsub trigger, delivering to the function's path with an OIDC
# token of the push invoker account (audience set explicitly: the function's
# HEARTH_OIDC_AUDIENCE), exponential retry, and a dead-letter topic after
# max_delivery_attempts.
resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions

  name                       = each.key
  topic                      = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds       = each.value.ack_deadline_seconds
  enable_message_ordering    = each.value.ordering
  message_retention_duration = "604800s"

  # Never expire, however long the topic stays quiet.
  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${each.value.min_backoff_seconds}s"
    maximum_backoff = "${each.value.max_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic[each.value.dead_letter_topic].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.function[each.value.function].uri}${each.value.path}"

    oidc_token {
      service_account_email = google_service_account.invoker["pubsub"].email
      audience              = local.service_url[each.value.function]
    }
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.invoker,
    google_service_account_iam_member.pubsub_token_creator,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}

# A pull subscription on every dead-letter topic, so dead-lettered messages are kept (31 days,
# the maximum) until someone reads, replays or drops them.
resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.dead_letter_topics

  name                       = "${each.key}--pull"
  topic                      = google_pubsub_topic.topic[each.key].id
  ack_deadline_seconds       = 60
  message_retention_duration = "2678400s"

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by the Pub/Sub service agent. It needs roles/pubsub.publisher on each
# dead-letter topic a subscription forwards to ...
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = local.dead_letter_targets

  topic  = google_pubsub_topic.topic[each.key].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

# ... and roles/pubsub.subscriber on each source subscription, to acknowledge the message it
# forwarded. Without both, messages are retried forever instead of dead-lettered.
resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = local.push_subscriptions

  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
