# Identity Platform: registers the blocking functions of the manifest (beforeCreate,
# beforeSignIn) at <service URL><path>, the URI Identity Platform also puts in the token's
# `aud` (the function checks it against HEARTH_BLOCKING_AUDIENCE + path).
#
# Creating this resource initialises Identity Platform on the project (billing required).
# Terraform owns only the blocking functions: sign-in providers, authorised domains and the rest
# stay whatever the console or `firebase` set, hence ignore_changes. An existing configuration
# is imported by scripts/deploy.sh before the first apply.
resource "google_identity_platform_config" "auth" {
  count = length(local.blocking_triggers) > 0 ? 1 : 0

  project = var.project_id

  blocking_functions {
    dynamic "triggers" {
      for_each = local.blocking_triggers
      content {
        event_type   = triggers.key
        function_uri = triggers.value.function_uri
      }
    }

    # The hook needs no OAuth credentials of the identity provider.
    forward_inbound_credentials {
      id_token      = false
      access_token  = false
      refresh_token = false
    }
  }

  lifecycle {
    ignore_changes = [
      autodelete_anonymous_users,
      sign_in,
      authorized_domains,
      sms_region_config,
      mfa,
      multi_tenant,
      quota,
      client,
      monitoring,
    ]
  }

  # The functions must be reachable (allUsers invoker) before Identity Platform calls them.
  depends_on = [
    google_project_service.required,
    google_cloud_run_v2_service_iam_member.public,
  ]
}
