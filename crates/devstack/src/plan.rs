//! What the stack will run, computed from the manifest before anything starts: each
//! function's port, URL, routes and environment (the configuration production would give it,
//! pointed at the emulators, the local key server and the fake payment provider), the topics
//! and subscriptions to create, the push routes, Eventarc routes and scheduled jobs. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use gcp::eventarc::FirestoreEventType;
use manifest::{BlockingEvent, Manifest, Trigger};
use runtime::Env;

use crate::eventarc::EventarcRoute;
use crate::eventarc::pattern::{DocumentPattern, PatternError};
use crate::identity;
use crate::jobs::{JobError, JobSpec, ScheduledJob};
use crate::pubsub::engine::PushRoute;
use crate::pubsub::schedule::RetryPolicy;

/// Where the emulators listen (`host:port` each).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Emulators {
    pub firestore: String,
    pub pubsub: String,
    pub auth: String,
}

/// One route of a function, for the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// `pubsub user-signups`, `blocking beforeCreate`, `http POST`, ...
    pub trigger: String,
    pub path: String,
}

/// One function as the stack serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionPlan {
    pub name: String,
    pub port: u16,
    /// `http://127.0.0.1:PORT`: the function's URL, OIDC audience and blocking audience.
    pub base_url: String,
    pub routes: Vec<RouteInfo>,
    pub env: BTreeMap<String, String>,
}

/// A subscription devstack creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionPlan {
    pub name: String,
    pub topic: String,
    pub ordering: bool,
    /// `push -> function path`, or `pull (inspect dead letters)`.
    pub purpose: String,
}

/// A blocking function to register with the Auth emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingPlan {
    pub event: BlockingEvent,
    pub function: String,
    pub uri: String,
}

/// The whole stack.
#[derive(Debug, Clone)]
pub struct StackPlan {
    pub project: String,
    pub functions: Vec<FunctionPlan>,
    /// Topic name -> dead-letter topic?
    pub topics: BTreeMap<String, bool>,
    pub subscriptions: Vec<SubscriptionPlan>,
    pub push_routes: Vec<PushRoute>,
    pub eventarc_routes: Vec<EventarcRoute>,
    pub jobs: Vec<ScheduledJob>,
    pub blocking: Vec<BlockingPlan>,
}

/// Why the manifest cannot be run locally.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("function `{function}`: {source}")]
    Pattern {
        function: String,
        #[source]
        source: PatternError,
    },
    #[error("function `{function}`: event type `{event_type}` is not a Firestore document event")]
    EventType { function: String, event_type: String },
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("function `{0}` has no port assigned")]
    NoPort(String),
}

/// Where the local stand-ins listen, besides the emulators.
#[derive(Debug, Clone, Copy)]
pub struct LocalServices<'a> {
    /// The JWK Set URL of the local OIDC key (`HEARTH_GOOGLE_OIDC_JWKS_URL`).
    pub jwks_url: &'a str,
    /// The fake payment provider's base URL (Stripe's and Pesapal's APIs), if it runs.
    pub provider: Option<&'a str>,
}

/// The API base URL variables of each payment provider, keyed by the secret that shows a
/// function calls that provider (the api creates payments, the processor asks Pesapal and
/// refunds through Stripe).
pub const PROVIDER_BASES: [(&str, &str); 2] = [
    ("HEARTH_STRIPE_SECRET_KEY", "HEARTH_STRIPE_API_BASE"),
    ("HEARTH_PESAPAL_CONSUMER_KEY", "HEARTH_PESAPAL_API_BASE"),
];

/// The local value of a secret that devstack's environment does not set: shaped like the real
/// one where the code or the fake provider checks the shape (`sk_test_...` Stripe API keys,
/// `whsec_...` webhook signing secrets), else `local-<secret>`.
pub fn local_secret(var: &str, secret: &str) -> String {
    match var {
        "HEARTH_STRIPE_SECRET_KEY" => format!("sk_test_devstack_{secret}"),
        "HEARTH_STRIPE_WEBHOOK_SECRETS" => format!("whsec_devstack_{secret}"),
        _ => format!("local-{secret}"),
    }
}

/// The value devstack gives the secret variable `var` (Secret Manager name `secret`): from
/// devstack's own environment `env`, else [`local_secret`].
pub fn secret_value(var: &str, secret: &str, env: &Env) -> String {
    env.string(var).unwrap_or_else(|| local_secret(var, secret))
}

/// The pull subscription devstack creates on a dead-letter topic so nothing is lost and
/// dead letters can be inspected.
pub fn dead_letter_subscription(topic: &str) -> String {
    format!("{topic}--devstack")
}

/// The environment production would give `function` (manifest env and secrets, resources),
/// pointed at the emulators, the local key server and the fake payment provider.
#[allow(clippy::too_many_arguments)]
pub fn function_env(
    manifest: &Manifest,
    function: &str,
    project: &str,
    emulators: &Emulators,
    base_url: &str,
    port: u16,
    local: LocalServices<'_>,
    secrets: &Env,
) -> BTreeMap<String, String> {
    let jwks_url = local.jwks_url;
    let mut env = BTreeMap::new();
    let Some(spec) = manifest.functions.get(function) else { return env };
    for (k, v) in &spec.env {
        env.insert(k.clone(), v.clone());
    }
    for (var, secret) in &spec.secrets {
        // Secret Manager is not emulated: take the value from devstack's own environment, or
        // a recognisable local placeholder.
        env.insert(var.clone(), secret_value(var, secret, secrets));
    }
    if let Some(provider) = local.provider {
        for (secret_var, base_var) in PROVIDER_BASES {
            if spec.secrets.contains_key(secret_var) || spec.env.contains_key(secret_var) {
                env.insert(base_var.to_owned(), provider.to_owned());
            }
        }
    }
    let resources = spec.resources.or(&manifest.defaults.resources);
    let mut fixed = vec![
        ("PORT", port.to_string()),
        ("HEARTH_SERVICE_NAME", function.to_owned()),
        ("GOOGLE_CLOUD_PROJECT", project.to_owned()),
        ("FIRESTORE_EMULATOR_HOST", emulators.firestore.clone()),
        ("PUBSUB_EMULATOR_HOST", emulators.pubsub.clone()),
        ("FIREBASE_AUTH_EMULATOR_HOST", emulators.auth.clone()),
        ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.to_owned()),
        ("HEARTH_SECURETOKEN_JWKS_URL", jwks_url.to_owned()),
        ("HEARTH_OIDC_AUDIENCE", base_url.to_owned()),
        ("HEARTH_OIDC_ALLOWED_EMAILS", identity::allowed_emails(project)),
        ("HEARTH_LOG_FORMAT", "pretty".to_owned()),
        // Metrics for the local operator identity only, as production serves them to its readers.
        ("HEARTH_METRICS_ALLOWED_EMAILS", identity::Caller::Operator.email(project)),
    ];
    // The write ramp is a budget for the deployment, shared by the instances that can run at
    // once (`max_instances` in production: with the manifest's 20, a share is 25 writes/s, 40 s
    // for 1,000 followers). Here the deployment is this one process: it gets the whole budget.
    fixed.push(("HEARTH_WRITE_BUDGET_INSTANCES", "1".to_owned()));
    let origins = spec.cors_origins("local");
    if !origins.is_empty() {
        fixed.push(("HEARTH_CORS_ORIGINS", origins.join(",")));
    }
    if let Some(timeout) = resources.timeout_seconds {
        fixed.push(("HEARTH_REQUEST_TIMEOUT_SECS", timeout.to_string()));
    }
    if spec.triggers.iter().any(|t| matches!(t, Trigger::Blocking { .. })) {
        fixed.push(("HEARTH_BLOCKING_AUDIENCE", base_url.to_owned()));
    }
    for (k, v) in fixed {
        env.insert(k.to_owned(), v);
    }
    env
}

fn describe(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Http { methods, auth, .. } => {
            let auth = match auth {
                manifest::HttpAuth::Firebase => "Firebase ID token",
                manifest::HttpAuth::Oidc => "Google OIDC",
                manifest::HttpAuth::FirebaseOrOidc => "Firebase ID token or Google OIDC",
                manifest::HttpAuth::Provider => "provider-signed",
            };
            format!("http {} ({auth})", methods.join(","))
        }
        Trigger::Pubsub { topic, .. } => format!("pubsub {topic}"),
        Trigger::Schedule { job, cron, .. } => format!("schedule {job} ({cron})"),
        Trigger::Eventarc { event_types, document, .. } => {
            let kinds: Vec<&str> =
                event_types.iter().map(|t| t.rsplit('.').next().unwrap_or(t)).collect();
            format!("eventarc {document} {}", kinds.join(","))
        }
        Trigger::Blocking { event, .. } => format!("blocking {}", blocking_key(*event)),
    }
}

/// The Identity Platform trigger name of a blocking event.
pub fn blocking_key(event: BlockingEvent) -> &'static str {
    match event {
        BlockingEvent::BeforeCreate => "beforeCreate",
        BlockingEvent::BeforeSignIn => "beforeSignIn",
    }
}

/// Plans the stack. `ports` gives every function its port.
pub fn plan(
    manifest: &Manifest,
    project: &str,
    emulators: &Emulators,
    ports: &BTreeMap<String, u16>,
    local: LocalServices<'_>,
    secrets: &Env,
) -> Result<StackPlan, PlanError> {
    let mut out = StackPlan {
        project: project.to_owned(),
        functions: Vec::new(),
        topics: manifest.topics.iter().map(|(n, t)| (n.clone(), t.dead_letter)).collect(),
        subscriptions: Vec::new(),
        push_routes: Vec::new(),
        eventarc_routes: Vec::new(),
        jobs: Vec::new(),
        blocking: Vec::new(),
    };
    for (name, spec) in &manifest.functions {
        let port = *ports.get(name).ok_or_else(|| PlanError::NoPort(name.clone()))?;
        let base_url = format!("http://127.0.0.1:{port}");
        let env = function_env(manifest, name, project, emulators, &base_url, port, local, secrets);
        let mut routes = Vec::new();
        for trigger in &spec.triggers {
            routes.push(RouteInfo { trigger: describe(trigger), path: trigger.path().to_owned() });
            let endpoint = format!("{base_url}{}", trigger.path());
            match trigger {
                Trigger::Http { .. } => {}
                Trigger::Pubsub {
                    topic,
                    ack_deadline_seconds,
                    min_backoff_seconds,
                    max_backoff_seconds,
                    max_delivery_attempts,
                    dead_letter_topic,
                    ordering,
                    ..
                } => {
                    let subscription = Manifest::subscription_id(name, trigger).unwrap_or_default();
                    out.subscriptions.push(SubscriptionPlan {
                        name: subscription.clone(),
                        topic: topic.clone(),
                        ordering: *ordering,
                        purpose: format!("push -> {name} {}", trigger.path()),
                    });
                    out.push_routes.push(PushRoute {
                        function: name.clone(),
                        topic: topic.clone(),
                        subscription,
                        endpoint,
                        audience: base_url.clone(),
                        policy: RetryPolicy {
                            min_backoff: Duration::from_secs(u64::from(*min_backoff_seconds)),
                            max_backoff: Duration::from_secs(u64::from(*max_backoff_seconds)),
                            max_delivery_attempts: *max_delivery_attempts,
                        },
                        ordered: *ordering,
                        dead_letter_topic: dead_letter_topic.clone(),
                        ack_deadline: Duration::from_secs(u64::from(*ack_deadline_seconds)),
                    });
                }
                Trigger::Schedule {
                    job,
                    cron,
                    time_zone,
                    attempt_deadline_seconds,
                    retry_count,
                    ..
                } => {
                    out.jobs.push(ScheduledJob::new(JobSpec {
                        function: name,
                        job,
                        cron,
                        time_zone,
                        endpoint,
                        audience: base_url.clone(),
                        attempt_deadline: Duration::from_secs(u64::from(*attempt_deadline_seconds)),
                        retry_count: *retry_count,
                    })?);
                }
                Trigger::Eventarc { event_types, document, .. } => {
                    let pattern = DocumentPattern::parse(document)
                        .map_err(|source| PlanError::Pattern { function: name.clone(), source })?;
                    for ty in event_types {
                        let event_type = FirestoreEventType::parse(ty).map_err(|_| {
                            PlanError::EventType { function: name.clone(), event_type: ty.clone() }
                        })?;
                        out.eventarc_routes.push(EventarcRoute {
                            function: name.clone(),
                            pattern: pattern.clone(),
                            event_type,
                            endpoint: endpoint.clone(),
                            audience: base_url.clone(),
                        });
                    }
                }
                Trigger::Blocking { event, .. } => {
                    out.blocking.push(BlockingPlan {
                        event: *event,
                        function: name.clone(),
                        uri: endpoint,
                    });
                }
            }
        }
        out.functions.push(FunctionPlan { name: name.clone(), port, base_url, routes, env });
    }
    for (topic, dead_letter) in &out.topics {
        if *dead_letter {
            out.subscriptions.push(SubscriptionPlan {
                name: dead_letter_subscription(topic),
                topic: topic.clone(),
                ordering: false,
                purpose: "pull (dead letters, inspect)".to_owned(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emulators() -> Emulators {
        Emulators {
            firestore: "127.0.0.1:1".into(),
            pubsub: "127.0.0.1:2".into(),
            auth: "127.0.0.1:3".into(),
        }
    }

    fn repo_plan() -> StackPlan {
        let manifest = Manifest::load(&crate::default_manifest_path()).unwrap();
        let mut ports: BTreeMap<String, u16> =
            [("signup-hook".to_owned(), 8601), ("onboarding".to_owned(), 8602)]
                .into_iter()
                .collect();
        // Every other manifest function gets a port of its own.
        for (name, port) in manifest.functions.keys().zip(8610u16..) {
            ports.entry(name.clone()).or_insert(port);
        }
        let local = LocalServices { jwks_url: "http://127.0.0.1:9/jwks", provider: Some(PROVIDER) };
        plan(&manifest, "demo-p", &emulators(), &ports, local, &Env::default()).unwrap()
    }

    const PROVIDER: &str = "http://127.0.0.1:7";

    #[test]
    fn functions_get_production_configuration_pointed_at_the_local_stack() {
        let plan = repo_plan();
        let hook = plan.functions.iter().find(|f| f.name == "signup-hook").unwrap();
        assert_eq!(hook.env["HEARTH_BLOCKING_AUDIENCE"], "http://127.0.0.1:8601");
        assert_eq!(hook.env["HEARTH_SIGNUP_PUBLISH_DEADLINE_MS"], "1500", "manifest env");
        assert_eq!(hook.env["HEARTH_REQUEST_TIMEOUT_SECS"], "10", "manifest resources");
        let onboarding = plan.functions.iter().find(|f| f.name == "onboarding").unwrap();
        assert!(!onboarding.env.contains_key("HEARTH_BLOCKING_AUDIENCE"));
        assert_eq!(onboarding.env["HEARTH_OIDC_AUDIENCE"], "http://127.0.0.1:8602");
        assert!(
            onboarding.env["HEARTH_OIDC_ALLOWED_EMAILS"].contains("devstack-pubsub-push@demo-p")
        );
        let api = plan.functions.iter().find(|f| f.name == "api").unwrap();
        assert!(
            api.env["HEARTH_CORS_ORIGINS"].contains("http://localhost:5173"),
            "manifest cors.local"
        );
        assert!(!onboarding.env.contains_key("HEARTH_CORS_ORIGINS"));
        for f in &plan.functions {
            assert_eq!(f.env["GOOGLE_CLOUD_PROJECT"], "demo-p");
            assert_eq!(f.env["FIRESTORE_EMULATOR_HOST"], "127.0.0.1:1");
            assert_eq!(f.env["PUBSUB_EMULATOR_HOST"], "127.0.0.1:2");
            assert_eq!(f.env["FIREBASE_AUTH_EMULATOR_HOST"], "127.0.0.1:3");
            assert_eq!(f.env["HEARTH_GOOGLE_OIDC_JWKS_URL"], "http://127.0.0.1:9/jwks");
            assert!(!f.env.contains_key("HEARTH_INSECURE_LOCAL_PUSH"), "push auth stays on");
            assert!(f.env["HEARTH_METRICS_ALLOWED_EMAILS"].starts_with("devstack-operator@"));
            // One local process: the whole write budget.
            assert_eq!(f.env["HEARTH_WRITE_BUDGET_INSTANCES"], "1");
            // Never posing as Cloud Run: emulator mode is refused there.
            assert!(!f.env.contains_key("K_SERVICE"), "{}", f.name);
            assert_eq!(f.env["HEARTH_SERVICE_NAME"], f.name);
            // Every env is a valid runtime configuration.
            runtime::BaseConfig::load(&Env::from_map(f.env.clone().into_iter().collect())).unwrap();
        }
    }

    #[test]
    fn subscriptions_routes_and_blocking_hooks_follow_the_manifest() {
        let plan = repo_plan();
        let route =
            plan.push_routes.iter().find(|r| r.subscription == "user-signups--onboarding").unwrap();
        assert_eq!(route.endpoint, "http://127.0.0.1:8602/pubsub/user-signups");
        assert_eq!(route.policy.max_delivery_attempts, 10);
        assert_eq!(route.policy.min_backoff, Duration::from_secs(10));
        assert_eq!(route.dead_letter_topic, "user-signups-dead-letter");
        let names: Vec<&str> = plan.subscriptions.iter().map(|s| s.name.as_str()).collect();
        for expected in [
            "user-signups--onboarding",
            "user-signups-dead-letter--devstack",
            "payment-events--payment-processor",
            "payment-events-dead-letter--devstack",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        let uris: Vec<&str> = plan.blocking.iter().map(|b| b.uri.as_str()).collect();
        assert_eq!(
            uris,
            ["http://127.0.0.1:8601/before-create", "http://127.0.0.1:8601/before-sign-in"]
        );
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_placeholder() {
        let mut manifest = Manifest::load(&crate::default_manifest_path()).unwrap();
        let hook = manifest.functions.get_mut("signup-hook").unwrap();
        hook.secrets.insert("HEARTH_A".into(), "secret-a".into());
        hook.secrets.insert("HEARTH_B".into(), "secret-b".into());
        let secrets = Env::from_pairs([("HEARTH_A", "from-env")]);
        let env = function_env(
            &manifest,
            "signup-hook",
            "p",
            &emulators(),
            "http://x",
            1,
            LocalServices { jwks_url: "http://k", provider: None },
            &secrets,
        );
        assert_eq!(env["HEARTH_A"], "from-env");
        assert_eq!(env["HEARTH_B"], "local-secret-b");
    }

    #[test]
    fn payment_functions_talk_to_the_fake_provider_with_secrets_shaped_like_the_real_ones() {
        let plan = repo_plan();
        let env = |name: &str| &plan.functions.iter().find(|f| f.name == name).unwrap().env;
        let api = env("api");
        assert_eq!(api["HEARTH_STRIPE_API_BASE"], PROVIDER);
        assert_eq!(api["HEARTH_PESAPAL_API_BASE"], PROVIDER);
        assert!(api["HEARTH_STRIPE_SECRET_KEY"].starts_with("sk_test_"), "the fake checks sk_");
        let processor = env("payment-processor");
        assert_eq!(processor["HEARTH_PESAPAL_API_BASE"], PROVIDER);
        assert_eq!(processor["HEARTH_STRIPE_API_BASE"], PROVIDER, "the processor refunds");
        assert!(processor["HEARTH_STRIPE_SECRET_KEY"].starts_with("sk_test_"));
        let webhook = env("payment-webhook");
        assert!(webhook["HEARTH_STRIPE_WEBHOOK_SECRETS"].starts_with("whsec_"));
        for f in ["signup-hook", "onboarding", "feed-fanout", "payment-webhook"] {
            assert!(!env(f).contains_key("HEARTH_STRIPE_API_BASE"), "{f}");
            assert!(!env(f).contains_key("HEARTH_PESAPAL_API_BASE"), "{f}");
        }
        // The configurations load: the api takes both providers, the webhook its secret.
        let vars = |e: &BTreeMap<String, String>| Env::from_map(e.clone().into_iter().collect());
        let base = runtime::BaseConfig::load(&vars(api)).unwrap();
        let config = api::Config::load(base, &vars(api)).unwrap();
        assert_eq!(config.payments.stripe.unwrap().0, PROVIDER);
        assert_eq!(config.payments.pesapal.unwrap().base_url, PROVIDER);
        let base = runtime::BaseConfig::load(&vars(webhook)).unwrap();
        let config = payment_webhook::Config::load(base, &vars(webhook)).unwrap();
        assert_eq!(config.stripe_secrets.len(), 1);
    }

    #[test]
    fn local_secrets_have_the_real_shape_where_it_is_checked() {
        assert_eq!(local_secret("HEARTH_STRIPE_SECRET_KEY", "k"), "sk_test_devstack_k");
        assert_eq!(local_secret("HEARTH_STRIPE_WEBHOOK_SECRETS", "w"), "whsec_devstack_w");
        assert_eq!(local_secret("HEARTH_PESAPAL_IPN_ID", "ipn"), "local-ipn");
    }
}
