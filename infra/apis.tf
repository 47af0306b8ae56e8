# APIs the deployment needs. Never disabled on destroy: other things in the project may use them.
resource "google_project_service" "required" {
  for_each = local.required_apis

  service                    = each.key
  disable_on_destroy         = false
  disable_dependent_services = false
}
