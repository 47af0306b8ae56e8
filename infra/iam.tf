# Identities and the least privilege each one needs. Like a Firebase extension's role list,
# every grant says why it exists; every grant is on the narrowest resource that works.

# One service account per function: the identity its Cloud Run service runs as.
resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = local.function_account_ids[each.key]
  display_name = "Hearth function ${each.key}"
  description  = "Runs the ${each.key} Cloud Run service (crate ${each.value.crate})."

  depends_on = [google_project_service.required]
}

# roles/datastore.user (project): every Hearth function reads and writes Firestore documents
# (tenancy, idempotency records, dead letters). Firestore IAM has no narrower scope than the
# project; the security rules do not apply to server credentials, so the code's paths are the
# boundary.
resource "google_project_iam_member" "function_firestore" {
  for_each = local.functions

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"
}

# roles/pubsub.publisher (on each topic the manifest lists under `publishes`, not the project):
# the function announces events on exactly those topics.
resource "google_pubsub_topic_iam_member" "function_publisher" {
  for_each = local.publisher_bindings

  topic  = google_pubsub_topic.topic[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

# roles/secretmanager.secretAccessor (on each secret the manifest maps under `secrets`): Cloud
# Run reads the secret as the function's identity to fill the environment variable. The secrets
# themselves (and their values) are created by an operator, never stored in Terraform state.
resource "google_secret_manager_secret_iam_member" "function_secret" {
  for_each = local.secret_bindings

  secret_id = "projects/${var.project_id}/secrets/${each.value.secret}"
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.function].email}"

  depends_on = [google_project_service.required]
}

# The callers that present Google-signed OIDC tokens: one account per kind (Pub/Sub push,
# Cloud Scheduler, Eventarc), created only when the manifest has such a trigger. Each gets
# run.invoker on exactly the functions it calls and nothing else; the functions check the
# token's email against HEARTH_OIDC_ALLOWED_EMAILS.
resource "google_service_account" "invoker" {
  for_each = local.invoker_accounts

  account_id   = each.value
  display_name = "Hearth ${each.key} invoker"
  description  = "Signs the OIDC tokens of ${each.key} deliveries to Hearth functions."

  depends_on = [google_project_service.required]
}

# roles/run.invoker (on the one service): lets the invoker account's deliveries through Cloud
# Run's IAM check.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.invoker_bindings

  project  = var.project_id
  location = google_cloud_run_v2_service.function[each.value.function].location
  name     = google_cloud_run_v2_service.function[each.value.function].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.invoker[each.value.kind].email}"
}

# roles/run.invoker (on the one service) for operator accounts that call Google-OIDC routes
# (e.g. onboarding's POST /provision repair endpoint).
resource "google_cloud_run_v2_service_iam_member" "operator" {
  for_each = local.operator_bindings

  project  = var.project_id
  location = google_cloud_run_v2_service.function[each.value.function].location
  name     = google_cloud_run_v2_service.function[each.value.function].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value.email}"
}

# roles/run.invoker on private functions for the accounts that read /metrics (the runtime
# checks their token on every function; public ones let everyone through Cloud Run).
resource "google_cloud_run_v2_service_iam_member" "metrics_reader" {
  for_each = local.metrics_reader_bindings

  project  = var.project_id
  location = google_cloud_run_v2_service.function[each.value.function].location
  name     = google_cloud_run_v2_service.function[each.value.function].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value.email}"
}

# roles/run.invoker for allUsers, only on `public: true` functions: their callers (Identity
# Platform blocking calls, payment providers, client SDKs) present no IAM token, so the
# function verifies the caller itself (blocking JWT, webhook signature, Firebase ID token).
resource "google_cloud_run_v2_service_iam_member" "public" {
  for_each = { for name, f in local.functions : name => f if f.public }

  project  = var.project_id
  location = google_cloud_run_v2_service.function[each.key].location
  name     = google_cloud_run_v2_service.function[each.key].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# roles/eventarc.eventReceiver (project; Eventarc has no narrower scope): required of the
# service account an Eventarc trigger delivers as.
resource "google_project_iam_member" "eventarc_receiver" {
  for_each = { for kind, id in local.invoker_accounts : kind => id if kind == "eventarc" }

  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.invoker[each.key].email}"
}

# roles/iam.serviceAccountTokenCreator (on the push and Eventarc invoker accounts only) for the
# Pub/Sub service agent: it mints the OIDC token of every push delivery (Eventarc delivers
# through Pub/Sub too). Projects created before April 2021 lack this grant by default.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  for_each = { for kind, id in local.invoker_accounts : kind => id if contains(["pubsub", "eventarc"], kind) }

  service_account_id = google_service_account.invoker[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}
