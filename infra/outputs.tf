output "service_urls" {
  description = "Function name => the URL Cloud Run reports for its service."
  value       = { for name, service in google_cloud_run_v2_service.function : name => service.uri }
}

output "oidc_audiences" {
  description = "Function name => its deterministic URL, the audience of the OIDC tokens it accepts."
  value       = local.service_url
}

output "blocking_function_uris" {
  description = "Identity Platform event => the function URI registered for it."
  value       = { for event, t in local.blocking_triggers : event => t.function_uri }
}

output "function_service_accounts" {
  description = "Function name => the service account it runs as."
  value       = { for name, account in google_service_account.function : name => account.email }
}

output "invoker_service_accounts" {
  description = "Caller kind (pubsub, schedule, eventarc) => the account its OIDC tokens name."
  value       = { for kind, account in google_service_account.invoker : kind => account.email }
}

output "dead_letter_subscriptions" {
  description = "Dead-letter topic => the pull subscription that keeps its messages."
  value       = { for topic, sub in google_pubsub_subscription.dead_letter : topic => sub.name }
}
