# The (default) Firestore database (Native mode) and its TTL policies. Rules and composite
# indexes are deployed by `firebase deploy --only firestore:rules,firestore:indexes` from
# firestore.rules and firestore.indexes.json.
resource "google_firestore_database" "default" {
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  point_in_time_recovery_enablement = var.firestore_point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # `terraform destroy` forgets the database instead of deleting the data.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.required]

  lifecycle {
    prevent_destroy = true
  }
}

# TTL on the expiry fields (see local.ttl_fields for why each is there).
resource "google_firestore_field" "ttl" {
  for_each = local.ttl_fields

  database   = google_firestore_database.default.name
  collection = each.value.collection
  field      = each.value.field

  ttl_config {}

  # An index_config replaces the field's single-field indexes: empty, it removes them all;
  # with `group_index`, only the collection-group ascending index a cleanup sweep queries stays.
  dynamic "index_config" {
    for_each = each.value.indexed || each.value.group_index ? [] : ["no-indexes"]
    content {}
  }
  dynamic "index_config" {
    for_each = each.value.group_index ? ["collection-group"] : []
    content {
      indexes {
        query_scope = "COLLECTION_GROUP"
        order       = "ASCENDING"
      }
    }
  }
}
