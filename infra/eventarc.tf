# Eventarc triggers on Firestore document events. A trigger lives in the database's location
# (var.firestore_location: e.g. eur3) whatever the region of the Cloud Run service it calls.
# Eventarc delivers through Pub/Sub with an OIDC token of the Eventarc invoker account; its
# audience is the service URL (Eventarc triggers do not let it be set).
resource "google_eventarc_trigger" "firestore" {
  for_each = local.eventarc_triggers

  name     = each.key
  location = var.firestore_location

  matching_criteria {
    attribute = "type"
    value     = each.value.event_type
  }

  matching_criteria {
    attribute = "database"
    value     = google_firestore_database.default.name
  }

  matching_criteria {
    attribute = "document"
    value     = each.value.document
    operator  = "match-path-pattern"
  }

  # Protobuf DocumentEventData, what gcp::eventarc decodes.
  event_data_content_type = "application/protobuf"
  service_account         = google_service_account.invoker["eventarc"].email

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.function[each.value.function].name
      region  = google_cloud_run_v2_service.function[each.value.function].location
      path    = each.value.path
    }
  }

  depends_on = [
    google_project_iam_member.eventarc_receiver,
    google_cloud_run_v2_service_iam_member.invoker,
    google_service_account_iam_member.pubsub_token_creator,
  ]
}
