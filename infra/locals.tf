# Everything deployed is derived from the functions manifest (shared/functions.yaml, typed and
# validated by crates/manifest). Adding a function, topic or trigger there is the whole change:
# every resource below iterates over one of these maps, never over a hand-written list.
locals {
  manifest = yamldecode(file("${path.module}/../shared/functions.yaml"))

  project_number = data.google_project.this.number
  default_region = coalesce(var.region, local.manifest.defaults.region)

  # Cloud Run settings used only where neither the manifest's defaults nor the function set one.
  resource_fallback = {
    cpu             = "1"
    memory          = "512Mi"
    concurrency     = 80
    min_instances   = 0
    max_instances   = 100
    timeout_seconds = 300
  }

  # Service level objectives used only where neither the manifest's defaults.slo nor the
  # function set one (crates/manifest `Slo::BUILT_IN`, the same values).
  slo_fallback = {
    latency_p95_ms       = 300
    latency_p99_ms       = 800
    error_rate_percent   = 0.1
    availability_percent = 99.95
  }

  # Function name => settings with every default applied.
  functions = {
    for name, f in try(local.manifest.functions, {}) : name => {
      crate     = f.crate
      region    = coalesce(try(f.region, null), local.default_region)
      public    = try(f.public, false)
      resources = merge(local.resource_fallback, try(local.manifest.defaults.resources, {}), try(f.resources, {}))
      slo       = merge(local.slo_fallback, try(local.manifest.defaults.slo, {}), try(f.slo, {}))
      triggers  = try(f.triggers, [])
      publishes = try(f.publishes, [])
      env       = try(f.env, {})
      secrets   = try(f.secrets, {})
      cors      = try(f.cors, {})
    }
  }

  # The deterministic URL of each service (https://SERVICE-PROJECT_NUMBER.REGION.run.app),
  # computed instead of read from the service so that the service's own environment, the
  # push subscriptions, the Scheduler jobs and Identity Platform can all name it without a
  # dependency cycle. It is the audience of every Google OIDC token sent to the function
  # (HEARTH_OIDC_AUDIENCE, listed in custom_audiences too) and the base of the blocking
  # function URIs (HEARTH_BLOCKING_AUDIENCE). A postcondition on the service checks that Cloud
  # Run really serves it.
  service_url = {
    for name, f in local.functions : name => "https://${name}-${local.project_number}.${f.region}.run.app"
  }

  # Service account ids are 6-30 chars: long function names keep a prefix and a hash.
  function_account_ids = {
    for name, f in local.functions : name => (
      length("fn-${name}") <= 30 ? "fn-${name}" : "fn-${substr(name, 0, 18)}-${substr(sha256(name), 0, 8)}"
    )
  }

  # Every trigger of every function, with the function's name and the trigger's position.
  triggers = flatten([
    for name, f in local.functions : [
      for i, t in f.triggers : merge(t, { function = name, index = i })
    ]
  ])

  # Subscription id => push subscription (id defaults to <topic>--<function>, as in crates/manifest).
  push_subscriptions = {
    for t in local.triggers : coalesce(try(t.subscription, null), "${t.topic}--${t.function}") => {
      function              = t.function
      topic                 = t.topic
      path                  = t.path
      ack_deadline_seconds  = t.ack_deadline_seconds
      min_backoff_seconds   = t.min_backoff_seconds
      max_backoff_seconds   = t.max_backoff_seconds
      max_delivery_attempts = t.max_delivery_attempts
      dead_letter_topic     = t.dead_letter_topic
      ordering              = try(t.ordering, false)
    } if t.kind == "pubsub"
  }

  # Job name => Cloud Scheduler job, in the region of the function it calls.
  schedules = {
    for t in local.triggers : t.job => {
      function                 = t.function
      region                   = local.functions[t.function].region
      cron                     = t.cron
      time_zone                = try(t.time_zone, "Etc/UTC")
      path                     = t.path
      attempt_deadline_seconds = t.attempt_deadline_seconds
      retry_count              = try(t.retry_count, 0)
    } if t.kind == "schedule"
  }

  # One Eventarc trigger per (function, trigger, event type): a trigger filters on one type.
  # Key: <function>-<trigger position>-<created|updated|deleted|written>[-auth].
  eventarc_triggers = {
    for e in flatten([
      for t in local.triggers : [
        for event_type in t.event_types : {
          key        = "${t.function}-${t.index}-${replace(trimprefix(event_type, "google.cloud.firestore.document.v1."), ".withAuthContext", "-auth")}"
          function   = t.function
          event_type = event_type
          document   = t.document
          path       = t.path
        }
      ] if t.kind == "eventarc"
    ]) : e.key => e
  }

  # Identity Platform event (beforeCreate, beforeSignIn) => the function URI it calls.
  blocking_triggers = {
    for t in local.triggers : t.event => {
      function     = t.function
      path         = t.path
      function_uri = "${local.service_url[t.function]}${t.path}"
    } if t.kind == "blocking"
  }

  # Topics, dead-letter topics included. Each dead-letter topic gets a pull subscription so
  # nothing dead-lettered is lost, and the Pub/Sub service agent may publish to every
  # dead-letter topic a push subscription names.
  topics              = try(local.manifest.topics, {})
  dead_letter_topics  = { for name, t in local.topics : name => t if try(t.dead_letter, false) }
  dead_letter_targets = toset([for s in local.push_subscriptions : s.dead_letter_topic])

  # Monitoring (monitoring.tf). The Cloud Run metrics of one function's service, as Cloud
  # Monitoring filters: every request, and the latency distribution.
  run_filters = {
    for name, f in local.functions : name => {
      requests  = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.\"service_name\"=\"${name}\" AND resource.label.\"location\"=\"${f.region}\""
      latencies = "metric.type=\"run.googleapis.com/request_latencies\" AND resource.type=\"cloud_run_revision\" AND resource.label.\"service_name\"=\"${name}\" AND resource.label.\"location\"=\"${f.region}\""
    }
  }
  # "<function>/p95" and "<function>/p99" => a latency objective: a latency SLO (that share
  # of requests within the threshold) and an alert on the percentile.
  latency_objectives = merge([
    for name, f in local.functions : {
      "${name}/p95" = { function = name, percentile = 95, threshold_ms = f.slo.latency_p95_ms }
      "${name}/p99" = { function = name, percentile = 99, threshold_ms = f.slo.latency_p99_ms }
    }
  ]...)
  # The log line crates/providers writes when a provider's circuit breaker opens.
  circuit_breaker_log_message = "provider circuit breaker opened"

  # Google-signed OIDC callers, one service account per kind, created only when used.
  invoker_account_ids = {
    pubsub   = "hearth-pubsub-push"
    schedule = "hearth-scheduler"
    eventarc = "hearth-eventarc"
  }
  invoker_emails = {
    for kind, id in local.invoker_account_ids : kind => "${id}@${var.project_id}.iam.gserviceaccount.com"
  }
  invoker_accounts = {
    for kind in distinct([for t in local.triggers : t.kind if contains(keys(local.invoker_account_ids), t.kind)]) :
    kind => local.invoker_account_ids[kind]
  }
  # "<function>/<kind>" => run.invoker for that kind's account on that function.
  invoker_bindings = {
    for pair in distinct([for t in local.triggers : "${t.function}/${t.kind}" if contains(keys(local.invoker_account_ids), t.kind)]) :
    pair => { function = split("/", pair)[0], kind = split("/", pair)[1] }
  }

  # Functions with an HTTP route that operators call with Google OIDC tokens.
  operator_functions = [
    for name, f in local.functions : name
    if anytrue([for t in f.triggers : t.kind == "http" && contains(["oidc", "firebase_or_oidc"], try(t.auth, ""))])
  ]
  # "<function>/<operator email>" => run.invoker for that operator account.
  operator_bindings = {
    for pair in setproduct(local.operator_functions, var.operator_service_accounts) :
    "${pair[0]}/${pair[1]}" => { function = pair[0], email = pair[1] }
  }

  # HEARTH_OIDC_ALLOWED_EMAILS: exactly the accounts that call the function with OIDC tokens.
  oidc_allowed_emails = {
    for name, f in local.functions : name => sort(distinct(concat(
      [for t in f.triggers : local.invoker_emails[t.kind] if contains(keys(local.invoker_emails), t.kind)],
      contains(local.operator_functions, name) ? var.operator_service_accounts : []
    )))
  }

  # Plain environment of each function: the manifest's env, then the fixed names the runtime
  # reads (they win over the manifest), minus names that come from Secret Manager.
  function_env = {
    for name, f in local.functions : name => {
      for k, v in merge(
        f.env,
        {
          GOOGLE_CLOUD_PROJECT       = var.project_id
          HEARTH_OIDC_AUDIENCE       = local.service_url[name]
          HEARTH_OIDC_ALLOWED_EMAILS = join(",", local.oidc_allowed_emails[name])
        },
        {
          for audience in distinct([for t in f.triggers : "HEARTH_BLOCKING_AUDIENCE" if t.kind == "blocking"]) :
          audience => local.service_url[name]
        },
        # The write ramp's budget is divided among this many instances (crates/store bulk.rs).
        { HEARTH_WRITE_BUDGET_INSTANCES = f.resources.max_instances },
        # Who may read /metrics (runtime::metrics_auth); unset: nobody.
        length(var.metrics_service_accounts) > 0 ? { HEARTH_METRICS_ALLOWED_EMAILS = join(",", var.metrics_service_accounts) } : {},
        # Browser origins of this environment, as the manifest lists them (crates/manifest).
        length(lookup(f.cors, var.environment, [])) > 0 ? { HEARTH_CORS_ORIGINS = join(",", lookup(f.cors, var.environment, [])) } : {}
      ) : k => tostring(v) if !contains(keys(f.secrets), k)
    }
  }

  # "<function>/<metrics reader email>" => run.invoker on a private function, so the reader
  # reaches /metrics there too (public functions let everyone through Cloud Run; the runtime
  # checks the reader's token on every function).
  metrics_reader_bindings = {
    for pair in setproduct([for name, f in local.functions : name if !f.public], var.metrics_service_accounts) :
    "${pair[0]}/${pair[1]}" => { function = pair[0], email = pair[1] }
  }

  # "<function>/<topic>" => roles/pubsub.publisher on that topic.
  publisher_bindings = {
    for pair in distinct(flatten([for name, f in local.functions : [for topic in f.publishes : "${name}/${topic}"]])) :
    pair => { function = split("/", pair)[0], topic = split("/", pair)[1] }
  }

  # "<function>/<secret id>" => roles/secretmanager.secretAccessor on that secret.
  secret_bindings = {
    for pair in distinct(flatten([for name, f in local.functions : [for env, secret in f.secrets : "${name}/${secret}"]])) :
    pair => { function = split("/", pair)[0], secret = split("/", pair)[1] }
  }

  # The Pub/Sub service agent: dead-letters messages and mints push OIDC tokens.
  pubsub_service_agent = "serviceAccount:service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Firestore TTL policies: the backstop behind the cleanup jobs, which stay the primary way
  # expired documents go (TTL deletes within about a day of expiry, not on time).
  # `indexes` replaces the field's single-field indexes with exactly those listed: none where
  # nothing queries the field (a monotonically increasing indexed timestamp is a write hotspot),
  # only what the cleanup query needs where a job sweeps it. firestore.indexes.json declares
  # the same overrides, so `firebase deploy` and Terraform agree (crates/manifest/tests/infra.rs
  # checks it, and testkit's check-indexes checks every query against that file).
  # - idempotency: `prune-idempotency` queries the collection group `idempotency` with
  #   `expires_at < now` ordered by `expires_at`: one ascending collection-group index.
  # - feed-items: only feed entries (feeds/{uid}/posts/{postId}) carry `ttlAt` (= their
  #   `expiresAt`); the vendors' posts share the collection group `posts` and may carry an
  #   `expiresAt` of their own, so a TTL on `expiresAt` would delete them too. The
  #   `expire-feed-items` job queries `ttlAt < now` over the collection group (so vendor posts
  #   never fill its pages), which needs one collection-group ascending index on the field:
  #   `group_index = true` keeps exactly that one and drops the others.
  # - rate-limits: windows have no cleanup job; TTL is the only one (an hour after the window).
  # - notifications: inbox entries (users/{uid}/notifications/{id}) carry `ttlAt`
  #   (HEARTH_NOTIFY_TTL_DAYS after they were written); nothing queries it.
  # - reservations have NO TTL on purpose: deleting a held reservation whose hold ended before
  #   `expire-reservations` released it would lose its units for good, and paid reservations
  #   are records of an order.
  ttl_fields = {
    feed-items = {
      collection = "posts", field = "ttlAt",
      indexes    = [{ order = "ASCENDING", query_scope = "COLLECTION_GROUP" }]
    }
    idempotency = {
      collection = "idempotency", field = "expires_at",
      indexes    = [{ order = "ASCENDING", query_scope = "COLLECTION_GROUP" }]
    }
    rate-limits = { collection = "rate_limits", field = "expires_at", indexes = [] }
    notifications = { collection = "notifications", field = "ttlAt", indexes = [] }
  }

  # APIs the deployment uses (Cloud Build and Artifact Registry too: deploy.sh builds images).
  required_apis = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",
    "firebase.googleapis.com",
    "firebaserules.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "identitytoolkit.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
  ])
}
