//! The Terraform in `infra/` provisions exactly what the manifest declares: every function,
//! topic, subscription (push and dead-letter pull), schedule, Eventarc trigger and blocking
//! registration has its resources, carrying the manifest's settings, and nothing else does.
//!
//! `terraform validate` cannot run here (no provider downloads), so `infra/tests/check_tf.py`
//! parses every `.tf` file with python-hcl2 and evaluates the configuration for a given manifest
//! and variables: locals (the manifest included, through `yamldecode`), the keys of every
//! `for_each`/`count` and every attribute of every instance, values known only after apply kept
//! as symbolic references (`${google_pubsub_topic.topic["orders"].id}`) that must name declared
//! resources and existing instances. This test recomputes from the typed manifest what each
//! resource must iterate over and carry, and compares; mutation tests show that deleting a block
//! or adding an unrelated one is caught. Monitoring too: every function has its custom service,
//! its availability and p95/p99 latency SLOs and its latency and error-rate alert policies with
//! the manifest's objectives, every dead-letter topic an alert, and a function the monitoring
//! resources leave out is caught.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use manifest::{BlockingEvent, FunctionSpec, HttpAuth, Manifest, Resources, Slo, Trigger};
use serde_json::{Value, json};

const PROJECT: &str = "demo-hearth";
/// How the checker prints the project number (known only after apply).
const NUMBER: &str = "${data.google_project.this.number}";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn infra() -> PathBuf {
    root().join("infra")
}

/// A manifest with every kind of trigger, secrets, ordering, a function in its own region, a
/// custom subscription id and an operator route.
const RICH: &str = r#"
version: 1
defaults:
  region: europe-west1
  resources: {cpu: "1", memory: 256Mi, concurrency: 80, min_instances: 0, max_instances: 20, timeout_seconds: 60}
  slo: {availability_percent: 99.9, latency_p99_ms: 900}
topics:
  user-signups: {description: new users}
  user-signups-dead-letter: {dead_letter: true}
  orders: {}
  orders-dead-letter: {dead_letter: true}
functions:
  signup-hook:
    crate: signup-hook
    description: hook
    public: true
    resources: {min_instances: 1, timeout_seconds: 10}
    triggers:
      - {kind: blocking, event: beforeCreate, path: /before-create}
      - {kind: blocking, event: beforeSignIn, path: /before-sign-in}
    publishes: [user-signups]
    env: {HEARTH_SIGNUP_PUBLISH_DEADLINE_MS: "1500"}
  onboarding:
    crate: onboarding
    description: onboarding
    resources: {concurrency: 40}
    triggers:
      - {kind: pubsub, topic: user-signups, path: /pubsub/user-signups, ack_deadline_seconds: 60, min_backoff_seconds: 10, max_backoff_seconds: 600, max_delivery_attempts: 10, dead_letter_topic: user-signups-dead-letter}
      - {kind: http, path: /provision, methods: [POST], auth: firebase_or_oidc}
  payment-webhook:
    crate: payment-webhook
    description: webhook
    public: true
    region: africa-south1
    resources: {cpu: "2", memory: 1Gi, min_instances: 3, max_instances: 200}
    triggers:
      - {kind: http, path: /webhooks/pesapal, methods: [POST], auth: provider}
    publishes: [orders]
    env: {HEARTH_PESAPAL_ENV: sandbox, RUST_LOG: info, HEARTH_PESAPAL_KEY: "shadowed by the secret"}
    secrets: {HEARTH_PESAPAL_KEY: pesapal-key, HEARTH_PESAPAL_SECRET: pesapal-secret, HEARTH_PESAPAL_KEY_OLD: pesapal-key}
  payment-processor:
    crate: payment-processor
    description: processor
    triggers:
      - {kind: pubsub, topic: orders, subscription: orders-processing, path: /pubsub/orders, ack_deadline_seconds: 120, min_backoff_seconds: 5, max_backoff_seconds: 300, max_delivery_attempts: 5, dead_letter_topic: orders-dead-letter, ordering: true}
      - {kind: pubsub, topic: user-signups, path: /pubsub/user-signups, ack_deadline_seconds: 30, min_backoff_seconds: 10, max_backoff_seconds: 60, max_delivery_attempts: 20, dead_letter_topic: user-signups-dead-letter}
    secrets: {HEARTH_STRIPE_SECRET: stripe-secret}
  scheduled-cleanup:
    crate: scheduled-cleanup
    description: cleanup
    slo: {latency_p95_ms: 20000, latency_p99_ms: 50000, error_rate_percent: 1.5}
    triggers:
      - {kind: schedule, job: expire-reservations, cron: "*/5 * * * *", path: /jobs/expire-reservations, attempt_deadline_seconds: 300, retry_count: 3}
      - {kind: schedule, job: aggregate-counters, cron: "0 3 * * *", time_zone: Africa/Nairobi, path: /jobs/aggregate-counters, attempt_deadline_seconds: 1800}
      - {kind: http, path: /jobs/run, methods: [POST], auth: oidc}
  a-function-with-a-name-too-long-for-an-account-id:
    crate: feed-fanout
    description: fanout
    triggers:
      - kind: eventarc
        event_types: [google.cloud.firestore.document.v1.created, google.cloud.firestore.document.v1.deleted.withAuthContext]
        document: "posts/{postId}"
        path: /
      - {kind: schedule, job: fanout-sweep, cron: "0 * * * *", path: /jobs/fanout-sweep, attempt_deadline_seconds: 60}
"#;

/// The variables of one evaluation.
#[derive(Debug, Clone)]
struct Vars {
    firestore_location: String,
    image_repo: String,
    image_tag: String,
    region: Option<String>,
    operators: Vec<String>,
    notification_channels: Vec<String>,
    metrics_readers: Vec<String>,
}

impl Default for Vars {
    fn default() -> Self {
        Vars {
            firestore_location: "eur3".to_owned(),
            image_repo: format!("europe-west1-docker.pkg.dev/{PROJECT}/hearth"),
            image_tag: "0123abcd".to_owned(),
            region: None,
            operators: Vec::new(),
            notification_channels: Vec::new(),
            metrics_readers: Vec::new(),
        }
    }
}

fn rich_vars() -> Vars {
    Vars {
        region: Some("europe-west4".to_owned()),
        operators: vec![format!("ops@{PROJECT}.iam.gserviceaccount.com")],
        metrics_readers: vec![format!("prometheus@{PROJECT}.iam.gserviceaccount.com")],
        notification_channels: vec![
            format!("projects/{PROJECT}/notificationChannels/111"),
            format!("projects/{PROJECT}/notificationChannels/222"),
        ],
        ..Vars::default()
    }
}

/// Writes a manifest to a temporary file after checking it with crates/manifest.
fn manifest_file(dir: &Path, yaml: &str) -> (PathBuf, Manifest) {
    let path = dir.join("functions.yaml");
    std::fs::write(&path, yaml).unwrap();
    let m = Manifest::load(&path).unwrap_or_else(|e| panic!("the test manifest is invalid: {e}"));
    (path, m)
}

fn repo_manifest() -> (PathBuf, Manifest) {
    let path = root().join("shared/functions.yaml");
    let m = Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (path, m)
}

/// Runs infra/tests/check_tf.py: the evaluated configuration as JSON.
fn evaluate(infra: &Path, manifest: &Path, vars: &Vars, drop: &[&str]) -> Value {
    let script = root().join("infra/tests/check_tf.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg("--infra").arg(infra).arg("--manifest").arg(manifest);
    cmd.arg("--var").arg(format!("project_id={PROJECT}"));
    cmd.arg("--var").arg(format!("firestore_location={}", vars.firestore_location));
    cmd.arg("--var").arg(format!("image_repo={}", vars.image_repo));
    cmd.arg("--var").arg(format!("image_tag={}", vars.image_tag));
    if let Some(region) = &vars.region {
        cmd.arg("--var").arg(format!("region={region}"));
    }
    cmd.arg("--var-json").arg(format!(
        "operator_service_accounts={}",
        serde_json::to_string(&vars.operators).unwrap()
    ));
    cmd.arg("--var-json").arg(format!(
        "metrics_service_accounts={}",
        serde_json::to_string(&vars.metrics_readers).unwrap()
    ));
    cmd.arg("--var-json").arg(format!(
        "notification_channels={}",
        serde_json::to_string(&vars.notification_channels).unwrap()
    ));
    for address in drop {
        cmd.arg("--drop").arg(address);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run python3 ({e}). The infra test parses the Terraform with python-hcl2: install \
             Python 3 (Debian: apt-get install python3 python3-pip), then \
             `python3 -m pip install -r infra/requirements-test.txt` (scripts/prereqs.sh does this)"
        )
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "infra/tests/check_tf.py failed ({}):\n{stderr}\n(missing packages: \
         python3 -m pip install -r infra/requirements-test.txt)",
        out.status
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check_tf.py printed no JSON plan ({e}):\n{stderr}"))
}

// ---------------------------------------------------------------------------------------------
// What the manifest requires

/// Cloud Run settings Terraform uses when neither the defaults nor the function set one.
fn fallback() -> Resources {
    Resources {
        cpu: Some("1".to_owned()),
        memory: Some("512Mi".to_owned()),
        concurrency: Some(80),
        min_instances: Some(0),
        max_instances: Some(100),
        timeout_seconds: Some(300),
    }
}

/// Kind of Google-OIDC caller => its invoker account id.
const INVOKERS: [(&str, &str); 3] = [
    ("pubsub", "hearth-pubsub-push"),
    ("schedule", "hearth-scheduler"),
    ("eventarc", "hearth-eventarc"),
];

fn invoker_kind(t: &Trigger) -> Option<&'static str> {
    match t {
        Trigger::Pubsub { .. } => Some("pubsub"),
        Trigger::Schedule { .. } => Some("schedule"),
        Trigger::Eventarc { .. } => Some("eventarc"),
        Trigger::Http { .. } | Trigger::Blocking { .. } => None,
    }
}

fn invoker_email(kind: &str) -> String {
    let id = INVOKERS.iter().find(|(k, _)| *k == kind).map(|(_, id)| *id).unwrap();
    format!("{id}@{PROJECT}.iam.gserviceaccount.com")
}

fn event_name(e: BlockingEvent) -> &'static str {
    match e {
        BlockingEvent::BeforeCreate => "beforeCreate",
        BlockingEvent::BeforeSignIn => "beforeSignIn",
    }
}

fn region_of(m: &Manifest, vars: &Vars, f: &FunctionSpec) -> String {
    f.region.clone().or_else(|| vars.region.clone()).unwrap_or_else(|| m.defaults.region.clone())
}

fn url_of(m: &Manifest, vars: &Vars, name: &str) -> String {
    format!("https://{name}-{NUMBER}.{}.run.app", region_of(m, vars, &m.functions[name]))
}

fn has_operator_route(f: &FunctionSpec) -> bool {
    f.triggers
        .iter()
        .any(|t| matches!(t, Trigger::Http { auth: HttpAuth::Oidc | HttpAuth::FirebaseOrOidc, .. }))
}

fn allowed_emails(f: &FunctionSpec, vars: &Vars) -> String {
    let mut emails: BTreeSet<String> =
        f.triggers.iter().filter_map(invoker_kind).map(invoker_email).collect();
    if has_operator_route(f) {
        emails.extend(vars.operators.iter().cloned());
    }
    emails.into_iter().collect::<Vec<_>>().join(",")
}

fn eventarc_key(function: &str, index: usize, event_type: &str) -> String {
    let short = event_type
        .trim_start_matches("google.cloud.firestore.document.v1.")
        .replace(".withAuthContext", "-auth");
    format!("{function}-{index}-{short}")
}

fn reference(address: &str, key: &str, attribute: &str) -> String {
    format!("${{{address}[\"{key}\"].{attribute}}}")
}

/// Address => (the for_each/count expression it must use, or None to not pin it; its keys).
fn expected_resources(
    m: &Manifest,
    vars: &Vars,
) -> BTreeMap<&'static str, (Option<&'static str>, BTreeSet<String>)> {
    let functions: BTreeSet<String> = m.functions.keys().cloned().collect();
    let mut kinds = BTreeSet::new();
    let mut invoker_bindings = BTreeSet::new();
    let mut subscriptions = BTreeSet::new();
    let mut dead_letter_targets = BTreeSet::new();
    let mut jobs = BTreeSet::new();
    let mut eventarc = BTreeSet::new();
    let mut blocking = false;
    let mut publishers = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let mut operators = BTreeSet::new();
    let mut metrics_readers = BTreeSet::new();
    for (name, f) in &m.functions {
        for (i, t) in f.triggers.iter().enumerate() {
            if let Some(kind) = invoker_kind(t) {
                kinds.insert(kind.to_owned());
                invoker_bindings.insert(format!("{name}/{kind}"));
            }
            match t {
                Trigger::Pubsub { dead_letter_topic, .. } => {
                    subscriptions.insert(Manifest::subscription_id(name, t).unwrap());
                    dead_letter_targets.insert(dead_letter_topic.clone());
                }
                Trigger::Schedule { job, .. } => {
                    jobs.insert(job.clone());
                }
                Trigger::Eventarc { event_types, .. } => {
                    eventarc.extend(event_types.iter().map(|e| eventarc_key(name, i, e)));
                }
                Trigger::Blocking { .. } => blocking = true,
                Trigger::Http { .. } => {}
            }
        }
        publishers.extend(f.publishes.iter().map(|t| format!("{name}/{t}")));
        secrets.extend(f.secrets.values().map(|s| format!("{name}/{s}")));
        if has_operator_route(f) {
            operators.extend(vars.operators.iter().map(|e| format!("{name}/{e}")));
        }
        if !f.public {
            metrics_readers.extend(vars.metrics_readers.iter().map(|e| format!("{name}/{e}")));
        }
    }
    let set = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    let only = |kinds: &BTreeSet<String>, wanted: &[&str]| {
        kinds.iter().filter(|k| wanted.contains(&k.as_str())).cloned().collect::<BTreeSet<_>>()
    };
    let public = m.functions.iter().filter(|(_, f)| f.public).map(|(n, _)| n.clone()).collect();
    let topics = m.topics.keys().cloned().collect();
    let dead_letter_topics: BTreeSet<String> =
        m.topics.iter().filter(|(_, t)| t.dead_letter).map(|(n, _)| n.clone()).collect();
    let latency_objectives: BTreeSet<String> = m
        .functions
        .keys()
        .flat_map(|name| [format!("{name}/p95"), format!("{name}/p99")])
        .collect();

    BTreeMap::from([
        ("google_project_service.required", (Some("local.required_apis"), required_apis())),
        ("google_service_account.function", (Some("local.functions"), functions.clone())),
        (
            "google_project_iam_member.function_firestore",
            (Some("local.functions"), functions.clone()),
        ),
        ("google_cloud_run_v2_service.function", (Some("local.functions"), functions.clone())),
        ("google_cloud_run_v2_service_iam_member.public", (None, public)),
        (
            "google_cloud_run_v2_service_iam_member.invoker",
            (Some("local.invoker_bindings"), invoker_bindings),
        ),
        (
            "google_cloud_run_v2_service_iam_member.operator",
            (Some("local.operator_bindings"), operators),
        ),
        (
            "google_cloud_run_v2_service_iam_member.metrics_reader",
            (Some("local.metrics_reader_bindings"), metrics_readers),
        ),
        ("google_service_account.invoker", (Some("local.invoker_accounts"), kinds.clone())),
        ("google_project_iam_member.eventarc_receiver", (None, only(&kinds, &["eventarc"]))),
        (
            "google_service_account_iam_member.pubsub_token_creator",
            (None, only(&kinds, &["pubsub", "eventarc"])),
        ),
        ("google_pubsub_topic.topic", (Some("local.topics"), topics)),
        (
            "google_pubsub_topic_iam_member.function_publisher",
            (Some("local.publisher_bindings"), publishers),
        ),
        (
            "google_secret_manager_secret_iam_member.function_secret",
            (Some("local.secret_bindings"), secrets),
        ),
        (
            "google_pubsub_subscription.push",
            (Some("local.push_subscriptions"), subscriptions.clone()),
        ),
        (
            "google_pubsub_subscription.dead_letter",
            (Some("local.dead_letter_topics"), dead_letter_topics.clone()),
        ),
        ("google_monitoring_custom_service.function", (Some("local.functions"), functions.clone())),
        ("google_monitoring_slo.availability", (Some("local.functions"), functions.clone())),
        (
            "google_monitoring_slo.latency",
            (Some("local.latency_objectives"), latency_objectives.clone()),
        ),
        (
            "google_monitoring_alert_policy.latency",
            (Some("local.latency_objectives"), latency_objectives),
        ),
        ("google_monitoring_alert_policy.errors", (Some("local.functions"), functions)),
        (
            "google_monitoring_alert_policy.dead_letter",
            (Some("local.dead_letter_topics"), dead_letter_topics),
        ),
        ("google_logging_metric.circuit_breaker_opened", (None, BTreeSet::new())),
        ("google_monitoring_alert_policy.circuit_breaker", (None, BTreeSet::new())),
        (
            "google_pubsub_topic_iam_member.dead_letter_publisher",
            (Some("local.dead_letter_targets"), dead_letter_targets),
        ),
        (
            "google_pubsub_subscription_iam_member.dead_letter_subscriber",
            (Some("local.push_subscriptions"), subscriptions),
        ),
        ("google_cloud_scheduler_job.job", (Some("local.schedules"), jobs)),
        ("google_eventarc_trigger.firestore", (Some("local.eventarc_triggers"), eventarc)),
        (
            "google_identity_platform_config.auth",
            (None, if blocking { set(&["0"]) } else { BTreeSet::new() }),
        ),
        ("google_firestore_database.default", (None, BTreeSet::new())),
        (
            "google_firestore_field.ttl",
            (
                Some("local.ttl_fields"),
                set(&["feed-items", "idempotency", "notifications", "rate-limits"]),
            ),
        ),
    ])
}

fn required_apis() -> BTreeSet<String> {
    [
        "artifactregistry",
        "cloudbuild",
        "cloudresourcemanager",
        "cloudscheduler",
        "eventarc",
        "firebase",
        "firebaserules",
        "firestore",
        "iam",
        "iamcredentials",
        "identitytoolkit",
        "logging",
        "monitoring",
        "pubsub",
        "run",
        "secretmanager",
        "serviceusage",
    ]
    .iter()
    .map(|s| format!("{s}.googleapis.com"))
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// Every difference found, so one run shows them all.
#[derive(Debug, Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    /// A number equal to `want` up to rounding (Terraform divides in decimal, Rust in binary).
    fn approx(&mut self, what: &str, got: Option<&Value>, want: f64) {
        match got.and_then(Value::as_f64) {
            Some(got) if (got - want).abs() <= 1e-9 * want.abs().max(1.0) => {}
            _ => {
                let got = got.map_or_else(|| "nothing".to_owned(), Value::to_string);
                self.0.push(format!("{what}: expected {want}, found {got}"));
            }
        }
    }

    fn eq(&mut self, what: &str, got: Option<&Value>, want: Value) {
        if got != Some(&want) {
            let got = got.map_or_else(|| "nothing".to_owned(), Value::to_string);
            self.0.push(format!("{what}: expected {want}, found {got}"));
        }
    }
}

fn instance<'a>(plan: &'a Value, address: &str, key: &str) -> Option<&'a Value> {
    plan["resources"][address]["instances"].get(key)
}

/// Pointer into an instance, e.g. `/template/0/timeout`.
fn at<'a>(v: Option<&'a Value>, pointer: &str) -> Option<&'a Value> {
    v.and_then(|v| v.pointer(pointer))
}

/// Everything that differs between the evaluated Terraform and what the manifest requires.
fn problems(plan: &Value, m: &Manifest, vars: &Vars) -> Vec<String> {
    let mut p = Problems::default();
    for error in plan["errors"].as_array().into_iter().flatten() {
        p.push(format!("check_tf.py: {}", error.as_str().unwrap_or_default()));
    }
    check_resource_sets(plan, m, vars, &mut p);
    check_services(plan, m, vars, &mut p);
    check_identities(plan, m, vars, &mut p);
    check_pubsub(plan, m, vars, &mut p);
    check_schedules_and_events(plan, m, vars, &mut p);
    check_identity_platform(plan, m, vars, &mut p);
    check_firestore(plan, vars, &mut p);
    check_settings(plan, m, vars, &mut p);
    check_monitoring(plan, m, vars, &mut p);
    p.0
}

fn check_resource_sets(plan: &Value, m: &Manifest, vars: &Vars, p: &mut Problems) {
    let expected = expected_resources(m, vars);
    let empty = serde_json::Map::new();
    let resources = plan["resources"].as_object().unwrap_or(&empty);
    for (address, r) in resources {
        if !expected.contains_key(address.as_str()) {
            p.push(format!(
                "resource {address} ({}:{}) is not derived from the manifest as far as \
                 crates/manifest/tests/infra.rs knows: give it an expectation there",
                r["file"].as_str().unwrap_or("?"),
                r["line"]
            ));
        }
    }
    for (address, (for_each, keys)) in &expected {
        let Some(r) = resources.get(*address) else {
            p.push(format!("missing resource {address}: the manifest needs it for {keys:?}"));
            continue;
        };
        if let Some(source) = for_each
            && r["for_each"].as_str() != Some(source)
        {
            p.push(format!("{address} must iterate over {source}, not {}", r["for_each"]));
        }
        let found: BTreeSet<String> = r["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_owned))
            .collect();
        if &found != keys {
            let missing: Vec<_> = keys.difference(&found).collect();
            let extra: Vec<_> = found.difference(keys).collect();
            p.push(format!("{address}: instances missing {missing:?}, unexpected {extra:?}"));
        }
    }
}

fn env_of(
    container: Option<&Value>,
    what: &str,
    p: &mut Problems,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut plain = BTreeMap::new();
    let mut secret = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for e in at(container, "/env").and_then(Value::as_array).into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        if !seen.insert(name.clone()) {
            p.push(format!("{what}: env {name} is set twice"));
        }
        if let Some(value) = e.get("value") {
            plain.insert(name, value.as_str().unwrap_or_default().to_owned());
        } else {
            let r = &e["value_source"][0]["secret_key_ref"][0];
            if r["version"] != "latest" {
                p.push(format!(
                    "{what}: secret env {name} must read version latest, not {}",
                    r["version"]
                ));
            }
            secret.insert(name, r["secret"].as_str().unwrap_or_default().to_owned());
        }
    }
    (plain, secret)
}

fn check_services(plan: &Value, m: &Manifest, vars: &Vars, p: &mut Problems) {
    const SERVICE: &str = "google_cloud_run_v2_service.function";
    for (name, f) in &m.functions {
        let what = format!("{SERVICE}[{name:?}]");
        let s = instance(plan, SERVICE, name);
        let r = f.resources.or(&m.defaults.resources).or(&fallback());
        let url = url_of(m, vars, name);
        p.eq(&format!("{what}.name"), at(s, "/name"), json!(name));
        p.eq(&format!("{what}.location"), at(s, "/location"), json!(region_of(m, vars, f)));
        p.eq(&format!("{what}.custom_audiences"), at(s, "/custom_audiences"), json!([url]));
        p.eq(
            &format!("{what}.template.service_account"),
            at(s, "/template/0/service_account"),
            json!(reference("google_service_account.function", name, "email")),
        );
        p.eq(
            &format!("{what}.template.timeout"),
            at(s, "/template/0/timeout"),
            json!(format!("{}s", r.timeout_seconds.unwrap())),
        );
        p.eq(
            &format!("{what}.template.max_instance_request_concurrency"),
            at(s, "/template/0/max_instance_request_concurrency"),
            json!(r.concurrency),
        );
        p.eq(
            &format!("{what}.template.scaling.min_instance_count"),
            at(s, "/template/0/scaling/0/min_instance_count"),
            json!(r.min_instances),
        );
        p.eq(
            &format!("{what}.template.scaling.max_instance_count"),
            at(s, "/template/0/scaling/0/max_instance_count"),
            json!(r.max_instances),
        );
        let c = at(s, "/template/0/containers/0");
        p.eq(
            &format!("{what} image"),
            at(c, "/image"),
            json!(format!("{}/{name}:{}", vars.image_repo, vars.image_tag)),
        );
        p.eq(
            &format!("{what} limits"),
            at(c, "/resources/0/limits"),
            json!({"cpu": r.cpu, "memory": r.memory}),
        );
        p.eq(&format!("{what} port"), at(c, "/ports/0/container_port"), json!(8080));
        p.eq(
            &format!("{what} startup probe"),
            at(c, "/startup_probe/0/http_get/0/path"),
            json!("/healthz"),
        );

        let (plain, secret) = env_of(c, &what, p);
        let mut want: BTreeMap<String, String> = f
            .env
            .iter()
            .filter(|(k, _)| !f.secrets.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        want.insert("GOOGLE_CLOUD_PROJECT".to_owned(), PROJECT.to_owned());
        want.insert("HEARTH_OIDC_AUDIENCE".to_owned(), url.clone());
        want.insert("HEARTH_OIDC_ALLOWED_EMAILS".to_owned(), allowed_emails(f, vars));
        if f.triggers.iter().any(|t| matches!(t, Trigger::Blocking { .. })) {
            want.insert("HEARTH_BLOCKING_AUDIENCE".to_owned(), url.clone());
        }
        let max_instances = r.max_instances.unwrap_or_default().to_string();
        want.insert("HEARTH_WRITE_BUDGET_INSTANCES".to_owned(), max_instances);
        if !vars.metrics_readers.is_empty() {
            want.insert("HEARTH_METRICS_ALLOWED_EMAILS".to_owned(), vars.metrics_readers.join(","));
        }
        if !f.cors_origins("production").is_empty() {
            want.insert("HEARTH_CORS_ORIGINS".to_owned(), f.cors_origins("production").join(","));
        }
        if plain != want {
            p.push(format!("{what}: plain env {plain:?}, expected {want:?}"));
        }
        let want_secrets: BTreeMap<String, String> = f.secrets.clone().into_iter().collect();
        if secret != want_secrets {
            p.push(format!("{what}: secret env {secret:?}, expected {want_secrets:?}"));
        }
        let postcondition = at(s, "/lifecycle/postcondition/0/condition")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !postcondition.contains("self.urls") || !postcondition.contains("local.service_url") {
            p.push(format!(
                "{what}: the postcondition that Cloud Run serves the computed URL is gone"
            ));
        }

        let public = "google_cloud_run_v2_service_iam_member.public";
        if f.public {
            let b = instance(plan, public, name);
            p.eq(&format!("{public}[{name:?}].member"), at(b, "/member"), json!("allUsers"));
            p.eq(&format!("{public}[{name:?}].role"), at(b, "/role"), json!("roles/run.invoker"));
            p.eq(
                &format!("{public}[{name:?}].name"),
                at(b, "/name"),
                json!(reference(SERVICE, name, "name")),
            );
        }
    }
}

fn check_identities(plan: &Value, m: &Manifest, vars: &Vars, p: &mut Problems) {
    let mut account_ids = BTreeSet::new();
    for name in m.functions.keys() {
        let sa = instance(plan, "google_service_account.function", name);
        let id = at(sa, "/account_id").and_then(Value::as_str).unwrap_or_default();
        let valid = (6..=30).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            p.push(format!("function {name}: service account id {id:?} is not a valid account id"));
        }
        if !account_ids.insert(id.to_owned()) {
            p.push(format!("function {name}: service account id {id:?} is used twice"));
        }
        let grant = instance(plan, "google_project_iam_member.function_firestore", name);
        p.eq(&format!("{name} Firestore role"), at(grant, "/role"), json!("roles/datastore.user"));
        p.eq(
            &format!("{name} Firestore member"),
            at(grant, "/member"),
            json!(format!(
                "serviceAccount:{}",
                reference("google_service_account.function", name, "email")
            )),
        );
    }
    for (kind, id) in INVOKERS {
        if let Some(sa) = instance(plan, "google_service_account.invoker", kind) {
            // The env's allowed emails are built from these ids: they must stay the same.
            p.eq(&format!("invoker {kind} account id"), sa.get("account_id"), json!(id));
            assert_eq!(invoker_email(kind), format!("{id}@{PROJECT}.iam.gserviceaccount.com"));
        }
    }
    let bindings = "google_cloud_run_v2_service_iam_member.invoker";
    for (name, f) in &m.functions {
        for kind in f.triggers.iter().filter_map(invoker_kind) {
            let b = instance(plan, bindings, &format!("{name}/{kind}"));
            let what = format!("{bindings}[\"{name}/{kind}\"]");
            p.eq(&format!("{what}.role"), at(b, "/role"), json!("roles/run.invoker"));
            p.eq(
                &format!("{what}.name"),
                at(b, "/name"),
                json!(reference("google_cloud_run_v2_service.function", name, "name")),
            );
            p.eq(
                &format!("{what}.member"),
                at(b, "/member"),
                json!(format!(
                    "serviceAccount:{}",
                    reference("google_service_account.invoker", kind, "email")
                )),
            );
        }
        if has_operator_route(f) {
            for email in &vars.operators {
                let b = instance(
                    plan,
                    "google_cloud_run_v2_service_iam_member.operator",
                    &format!("{name}/{email}"),
                );
                p.eq(
                    &format!("operator {email} on {name}"),
                    at(b, "/member"),
                    json!(format!("serviceAccount:{email}")),
                );
            }
        }
        for topic in &f.publishes {
            let b = instance(
                plan,
                "google_pubsub_topic_iam_member.function_publisher",
                &format!("{name}/{topic}"),
            );
            let what = format!("{name} publishes to {topic}");
            p.eq(&format!("{what}: role"), at(b, "/role"), json!("roles/pubsub.publisher"));
            p.eq(
                &format!("{what}: topic"),
                at(b, "/topic"),
                json!(reference("google_pubsub_topic.topic", topic, "name")),
            );
            p.eq(
                &format!("{what}: member"),
                at(b, "/member"),
                json!(format!(
                    "serviceAccount:{}",
                    reference("google_service_account.function", name, "email")
                )),
            );
        }
        for secret in f.secrets.values() {
            let b = instance(
                plan,
                "google_secret_manager_secret_iam_member.function_secret",
                &format!("{name}/{secret}"),
            );
            let what = format!("{name} reads secret {secret}");
            p.eq(
                &format!("{what}: secret_id"),
                at(b, "/secret_id"),
                json!(format!("projects/{PROJECT}/secrets/{secret}")),
            );
            p.eq(
                &format!("{what}: role"),
                at(b, "/role"),
                json!("roles/secretmanager.secretAccessor"),
            );
        }
    }
    let agent = format!("serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com");
    for kind in ["pubsub", "eventarc"] {
        if let Some(b) =
            instance(plan, "google_service_account_iam_member.pubsub_token_creator", kind)
        {
            p.eq(&format!("token creator on {kind}: member"), b.get("member"), json!(agent));
            p.eq(
                &format!("token creator on {kind}: role"),
                b.get("role"),
                json!("roles/iam.serviceAccountTokenCreator"),
            );
            p.eq(
                &format!("token creator on {kind}: account"),
                b.get("service_account_id"),
                json!(reference("google_service_account.invoker", kind, "name")),
            );
        }
    }
    if let Some(b) = instance(plan, "google_project_iam_member.eventarc_receiver", "eventarc") {
        p.eq("Eventarc receiver role", b.get("role"), json!("roles/eventarc.eventReceiver"));
    }
}

fn duration_secs(v: Option<&Value>) -> Option<u64> {
    v?.as_str()?.strip_suffix('s')?.parse().ok()
}

fn check_pubsub(plan: &Value, m: &Manifest, vars: &Vars, p: &mut Problems) {
    let agent = format!("serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com");
    for name in m.topics.keys() {
        p.eq(
            &format!("topic {name}"),
            at(instance(plan, "google_pubsub_topic.topic", name), "/name"),
            json!(name),
        );
    }
    for (name, f) in &m.functions {
        for t in &f.triggers {
            let Trigger::Pubsub {
                topic,
                path,
                ack_deadline_seconds,
                min_backoff_seconds,
                max_backoff_seconds,
                max_delivery_attempts,
                dead_letter_topic,
                ordering,
                ..
            } = t
            else {
                continue;
            };
            let id = Manifest::subscription_id(name, t).unwrap();
            let what = format!("subscription {id}");
            let s = instance(plan, "google_pubsub_subscription.push", &id);
            p.eq(&format!("{what}: name"), at(s, "/name"), json!(id));
            p.eq(
                &format!("{what}: topic"),
                at(s, "/topic"),
                json!(reference("google_pubsub_topic.topic", topic, "id")),
            );
            p.eq(
                &format!("{what}: ack deadline"),
                at(s, "/ack_deadline_seconds"),
                json!(ack_deadline_seconds),
            );
            p.eq(&format!("{what}: ordering"), at(s, "/enable_message_ordering"), json!(ordering));
            p.eq(
                &format!("{what}: min backoff"),
                at(s, "/retry_policy/0/minimum_backoff"),
                json!(format!("{min_backoff_seconds}s")),
            );
            p.eq(
                &format!("{what}: max backoff"),
                at(s, "/retry_policy/0/maximum_backoff"),
                json!(format!("{max_backoff_seconds}s")),
            );
            p.eq(
                &format!("{what}: dead-letter topic"),
                at(s, "/dead_letter_policy/0/dead_letter_topic"),
                json!(reference("google_pubsub_topic.topic", dead_letter_topic, "id")),
            );
            p.eq(
                &format!("{what}: max delivery attempts"),
                at(s, "/dead_letter_policy/0/max_delivery_attempts"),
                json!(max_delivery_attempts),
            );
            p.eq(
                &format!("{what}: push endpoint"),
                at(s, "/push_config/0/push_endpoint"),
                json!(format!(
                    "{}{path}",
                    reference("google_cloud_run_v2_service.function", name, "uri")
                )),
            );
            p.eq(
                &format!("{what}: OIDC audience"),
                at(s, "/push_config/0/oidc_token/0/audience"),
                json!(url_of(m, vars, name)),
            );
            p.eq(
                &format!("{what}: OIDC account"),
                at(s, "/push_config/0/oidc_token/0/service_account_email"),
                json!(reference("google_service_account.invoker", "pubsub", "email")),
            );
            p.eq(&format!("{what}: never expires"), at(s, "/expiration_policy/0/ttl"), json!(""));

            let sub =
                instance(plan, "google_pubsub_subscription_iam_member.dead_letter_subscriber", &id);
            p.eq(&format!("{what}: agent may acknowledge"), at(sub, "/member"), json!(agent));
            p.eq(
                &format!("{what}: agent role"),
                at(sub, "/role"),
                json!("roles/pubsub.subscriber"),
            );
            p.eq(
                &format!("{what}: agent's subscription"),
                at(sub, "/subscription"),
                json!(reference("google_pubsub_subscription.push", &id, "name")),
            );
            let publisher = instance(
                plan,
                "google_pubsub_topic_iam_member.dead_letter_publisher",
                dead_letter_topic,
            );
            p.eq(
                &format!("{dead_letter_topic}: agent may publish"),
                at(publisher, "/member"),
                json!(agent),
            );
            p.eq(
                &format!("{dead_letter_topic}: agent role"),
                at(publisher, "/role"),
                json!("roles/pubsub.publisher"),
            );
            p.eq(
                &format!("{dead_letter_topic}: agent's topic"),
                at(publisher, "/topic"),
                json!(reference("google_pubsub_topic.topic", dead_letter_topic, "name")),
            );
        }
    }
    for (name, t) in &m.topics {
        if !t.dead_letter {
            continue;
        }
        let s = instance(plan, "google_pubsub_subscription.dead_letter", name);
        p.eq(
            &format!("dead-letter pull subscription of {name}: topic"),
            at(s, "/topic"),
            json!(reference("google_pubsub_topic.topic", name, "id")),
        );
        p.eq(
            &format!("dead-letter pull subscription of {name}: never expires"),
            at(s, "/expiration_policy/0/ttl"),
            json!(""),
        );
        if duration_secs(at(s, "/message_retention_duration")).is_none_or(|d| d < 7 * 24 * 3600) {
            p.push(format!(
                "dead-letter pull subscription of {name} must keep messages at least 7 days"
            ));
        }
        if at(s, "/push_config").is_some() {
            p.push(format!("dead-letter subscription of {name} must be a pull subscription"));
        }
    }
}

fn check_schedules_and_events(plan: &Value, m: &Manifest, vars: &Vars, p: &mut Problems) {
    for (name, f) in &m.functions {
        for (i, t) in f.triggers.iter().enumerate() {
            match t {
                Trigger::Schedule {
                    job,
                    cron,
                    time_zone,
                    path,
                    attempt_deadline_seconds,
                    retry_count,
                } => {
                    let what = format!("Scheduler job {job}");
                    let j = instance(plan, "google_cloud_scheduler_job.job", job);
                    p.eq(&format!("{what}: schedule"), at(j, "/schedule"), json!(cron));
                    p.eq(&format!("{what}: time zone"), at(j, "/time_zone"), json!(time_zone));
                    p.eq(
                        &format!("{what}: region"),
                        at(j, "/region"),
                        json!(region_of(m, vars, f)),
                    );
                    p.eq(
                        &format!("{what}: attempt deadline"),
                        at(j, "/attempt_deadline"),
                        json!(format!("{attempt_deadline_seconds}s")),
                    );
                    p.eq(
                        &format!("{what}: retry count"),
                        at(j, "/retry_config/0/retry_count"),
                        json!(retry_count),
                    );
                    p.eq(
                        &format!("{what}: method"),
                        at(j, "/http_target/0/http_method"),
                        json!("POST"),
                    );
                    p.eq(
                        &format!("{what}: uri"),
                        at(j, "/http_target/0/uri"),
                        json!(format!(
                            "{}{path}",
                            reference("google_cloud_run_v2_service.function", name, "uri")
                        )),
                    );
                    p.eq(
                        &format!("{what}: OIDC audience"),
                        at(j, "/http_target/0/oidc_token/0/audience"),
                        json!(url_of(m, vars, name)),
                    );
                    p.eq(
                        &format!("{what}: OIDC account"),
                        at(j, "/http_target/0/oidc_token/0/service_account_email"),
                        json!(reference("google_service_account.invoker", "schedule", "email")),
                    );
                }
                Trigger::Eventarc { event_types, document, path } => {
                    for event_type in event_types {
                        let key = eventarc_key(name, i, event_type);
                        let what = format!("Eventarc trigger {key}");
                        let e = instance(plan, "google_eventarc_trigger.firestore", &key);
                        p.eq(
                            &format!("{what}: location (the database's)"),
                            at(e, "/location"),
                            json!(vars.firestore_location),
                        );
                        let criteria: BTreeSet<String> = at(e, "/matching_criteria")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(|c| {
                                format!(
                                    "{}={}{}",
                                    c["attribute"].as_str().unwrap_or_default(),
                                    c["value"].as_str().unwrap_or_default(),
                                    c.get("operator")
                                        .map(|o| format!(" ({})", o.as_str().unwrap_or_default()))
                                        .unwrap_or_default()
                                )
                            })
                            .collect();
                        let want: BTreeSet<String> = [
                            format!("type={event_type}"),
                            "database=${google_firestore_database.default.name}".to_owned(),
                            format!("document={document} (match-path-pattern)"),
                        ]
                        .into();
                        if criteria != want {
                            p.push(format!(
                                "{what}: matching criteria {criteria:?}, expected {want:?}"
                            ));
                        }
                        p.eq(
                            &format!("{what}: account"),
                            at(e, "/service_account"),
                            json!(reference("google_service_account.invoker", "eventarc", "email")),
                        );
                        p.eq(
                            &format!("{what}: service"),
                            at(e, "/destination/0/cloud_run_service/0/service"),
                            json!(reference("google_cloud_run_v2_service.function", name, "name")),
                        );
                        p.eq(
                            &format!("{what}: path"),
                            at(e, "/destination/0/cloud_run_service/0/path"),
                            json!(path),
                        );
                        p.eq(
                            &format!("{what}: data"),
                            at(e, "/event_data_content_type"),
                            json!("application/protobuf"),
                        );
                    }
                }
                Trigger::Http { .. } | Trigger::Pubsub { .. } | Trigger::Blocking { .. } => {}
            }
        }
    }
}

fn check_identity_platform(plan: &Value, m: &Manifest, vars: &Vars, p: &mut Problems) {
    let mut want = BTreeMap::new();
    for (name, f) in &m.functions {
        for t in &f.triggers {
            if let Trigger::Blocking { event, path } = t {
                want.insert(
                    event_name(*event).to_owned(),
                    format!("{}{path}", url_of(m, vars, name)),
                );
            }
        }
    }
    if want.is_empty() {
        return;
    }
    let config = instance(plan, "google_identity_platform_config.auth", "0");
    let found: BTreeMap<String, String> = at(config, "/blocking_functions/0/triggers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["event_type"].as_str().unwrap_or_default().to_owned(),
                t["function_uri"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    if found != want {
        p.push(format!("Identity Platform blocking functions {found:?}, expected {want:?}"));
    }
    p.eq(
        "blocking_function_uris output",
        plan["outputs"].get("blocking_function_uris"),
        json!(want),
    );
}

fn check_firestore(plan: &Value, vars: &Vars, p: &mut Problems) {
    let db = instance(plan, "google_firestore_database.default", "");
    p.eq("Firestore database name", at(db, "/name"), json!("(default)"));
    p.eq("Firestore location", at(db, "/location_id"), json!(vars.firestore_location));
    p.eq("Firestore mode", at(db, "/type"), json!("FIRESTORE_NATIVE"));
    p.eq(
        "Firestore delete protection",
        at(db, "/delete_protection_state"),
        json!("DELETE_PROTECTION_ENABLED"),
    );

    let ttl: BTreeMap<(String, String), &Value> =
        plan["resources"]["google_firestore_field.ttl"]["instances"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, f)| {
                (
                    (
                        f["collection"].as_str().unwrap_or_default().to_owned(),
                        f["field"].as_str().unwrap_or_default().to_owned(),
                    ),
                    f,
                )
            })
            .collect();
    for (collection, field) in
        [("posts", "ttlAt"), ("idempotency", "expires_at"), ("rate_limits", "expires_at")]
    {
        match ttl.get(&(collection.to_owned(), field.to_owned())) {
            Some(f) => {
                p.eq(&format!("TTL on {collection}.{field}"), f.get("ttl_config"), json!([{}]));
            }
            None => p.push(format!("no TTL policy on {collection}.{field}")),
        }
    }
    // A TTL on a held reservation would delete it before its units go back to stock; one on
    // `posts.expiresAt` would delete vendor posts along with feed entries.
    for (collection, field) in [("reservations", "expires_at"), ("posts", "expiresAt")] {
        if ttl.contains_key(&(collection.to_owned(), field.to_owned())) {
            p.push(format!("a TTL policy on {collection}.{field} would delete live data"));
        }
    }
    // `expire-feed-items` queries `ttlAt < now` over the collection group `posts`: the field
    // keeps its collection-group ascending index.
    let feed_ttl = ttl.get(&("posts".to_owned(), "ttlAt".to_owned())).copied();
    p.eq(
        "index_config of posts.ttlAt (the feed sweep's collection-group index)",
        feed_ttl.and_then(|f| f.get("index_config")),
        json!([{"indexes": [{"query_scope": "COLLECTION_GROUP", "order": "ASCENDING"}]}]),
    );
    // firestore.indexes.json (deployed by firebase) and Terraform must agree on TTL fields.
    let indexes: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("firestore.indexes.json")).unwrap(),
    )
    .unwrap();
    for o in indexes["fieldOverrides"].as_array().into_iter().flatten() {
        if o["ttl"] != json!(true) {
            continue;
        }
        let key = (
            o["collectionGroup"].as_str().unwrap_or_default().to_owned(),
            o["fieldPath"].as_str().unwrap_or_default().to_owned(),
        );
        match ttl.get(&key) {
            None => p.push(format!(
                "firestore.indexes.json sets a TTL on {key:?} that Terraform does not"
            )),
            Some(f) => {
                // The same single-field indexes on both sides (none: an empty index_config).
                let wanted: Vec<Value> = o["indexes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| json!({"order": i["order"], "query_scope": i["queryScope"]}))
                    .collect();
                let config = json!([{ "indexes": wanted }]);
                p.eq(
                    &format!("index_config of TTL field {key:?} (as in firestore.indexes.json)"),
                    f.get("index_config"),
                    config,
                );
            }
        }
    }
}

fn check_settings(plan: &Value, m: &Manifest, vars: &Vars, p: &mut Problems) {
    let on_disk: BTreeSet<String> = std::fs::read_dir(infra())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tf"))
        .collect();
    let parsed: BTreeSet<String> = plan["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    if !on_disk.is_subset(&parsed) {
        p.push(format!(
            "not every .tf file was parsed: {:?}",
            on_disk.difference(&parsed).collect::<Vec<_>>()
        ));
    }
    let terraform = &plan["terraform"]["terraform"][0]["body"];
    let google = &terraform["required_providers"][0]["google"];
    p.eq("google provider source", google.get("source"), json!("hashicorp/google"));
    let version = google["version"].as_str().unwrap_or_default();
    if !(version.contains(">=") && version.contains('<')) {
        p.push(format!(
            "the google provider version must be bounded on both sides, not {version:?}"
        ));
    }
    p.eq("Terraform backend", terraform.pointer("/backend/0/__labels__"), json!(["gcs"]));
    let provider = &plan["terraform"]["provider"][0]["body"];
    p.eq(
        "provider billing project (Identity Toolkit needs a quota project)",
        provider.get("billing_project"),
        json!(PROJECT),
    );
    p.eq("provider user_project_override", provider.get("user_project_override"), json!(true));
    let urls: BTreeSet<&String> =
        plan["outputs"]["service_urls"].as_object().map(|o| o.keys().collect()).unwrap_or_default();
    if urls != m.functions.keys().collect() {
        p.push(format!("output service_urls has {urls:?}, expected every function"));
    }
    let audiences: BTreeMap<String, String> =
        m.functions.keys().map(|n| (n.clone(), url_of(m, vars, n))).collect();
    p.eq("output oidc_audiences", plan["outputs"].get("oidc_audiences"), json!(audiences));
}

/// The Cloud Monitoring filter of one of a function's Cloud Run metrics.
fn run_filter(m: &Manifest, vars: &Vars, name: &str, metric: &str) -> String {
    let region = region_of(m, vars, &m.functions[name]);
    format!(
        "metric.type=\"run.googleapis.com/{metric}\" AND resource.type=\"cloud_run_revision\" AND resource.label.\"service_name\"=\"{name}\" AND resource.label.\"location\"=\"{region}\""
    )
}

const FIVE_XX: &str = " AND metric.label.\"response_code_class\"=\"5xx\"";

/// The message `crates/providers` logs when a circuit breaker opens, read from its source.
fn circuit_opened_message() -> String {
    let source = std::fs::read_to_string(root().join("crates/providers/src/http.rs")).unwrap();
    let line = source
        .lines()
        .find(|l| l.starts_with("pub const CIRCUIT_OPENED_MESSAGE: &str = "))
        .expect("crates/providers/src/http.rs defines CIRCUIT_OPENED_MESSAGE");
    line.split('"').nth(1).unwrap().to_owned()
}

fn check_monitoring(plan: &Value, m: &Manifest, vars: &Vars, p: &mut Problems) {
    let channels = json!(vars.notification_channels);
    for (name, f) in &m.functions {
        let slo: Slo = m.slo_of(f);
        let requests = run_filter(m, vars, name, "request_count");
        let latencies = run_filter(m, vars, name, "request_latencies");
        let service_ref =
            reference("google_monitoring_custom_service.function", name, "service_id");

        let service = instance(plan, "google_monitoring_custom_service.function", name);
        p.eq(
            &format!("{name} custom service id"),
            at(service, "/service_id"),
            json!(format!("hearth-{name}")),
        );

        let what = format!("{name} availability SLO");
        let a = instance(plan, "google_monitoring_slo.availability", name);
        p.eq(&format!("{what}: service"), at(a, "/service"), json!(service_ref));
        p.approx(
            &format!("{what}: goal"),
            at(a, "/goal"),
            slo.availability_percent.unwrap() / 100.0,
        );
        p.eq(&format!("{what}: period"), at(a, "/rolling_period_days"), json!(28));
        p.eq(
            &format!("{what}: SLI"),
            at(a, "/request_based_sli/0/good_total_ratio/0"),
            json!({"bad_service_filter": format!("{requests}{FIVE_XX}"), "total_service_filter": requests}),
        );

        for (percentile, threshold) in
            [(95u32, slo.latency_p95_ms.unwrap()), (99, slo.latency_p99_ms.unwrap())]
        {
            let key = format!("{name}/p{percentile}");
            let what = format!("{name} p{percentile} latency SLO");
            let l = instance(plan, "google_monitoring_slo.latency", &key);
            p.eq(&format!("{what}: service"), at(l, "/service"), json!(service_ref));
            p.eq(&format!("{what}: id"), at(l, "/slo_id"), json!(format!("latency-p{percentile}")));
            p.approx(&format!("{what}: goal"), at(l, "/goal"), f64::from(percentile) / 100.0);
            p.eq(
                &format!("{what}: SLI"),
                at(l, "/request_based_sli/0/distribution_cut/0"),
                json!({"distribution_filter": latencies, "range": [{"max": threshold}]}),
            );

            let what = format!("{name} p{percentile} latency alert");
            let a = instance(plan, "google_monitoring_alert_policy.latency", &key);
            p.eq(&format!("{what}: channels"), at(a, "/notification_channels"), channels.clone());
            let c = at(a, "/conditions/0/condition_threshold/0");
            p.eq(&format!("{what}: filter"), at(c, "/filter"), json!(latencies));
            p.eq(&format!("{what}: comparison"), at(c, "/comparison"), json!("COMPARISON_GT"));
            p.eq(&format!("{what}: threshold"), at(c, "/threshold_value"), json!(threshold));
            p.eq(
                &format!("{what}: aligner"),
                at(c, "/aggregations/0/per_series_aligner"),
                json!(format!("ALIGN_PERCENTILE_{percentile}")),
            );
        }

        let what = format!("{name} error-rate alert");
        let e = instance(plan, "google_monitoring_alert_policy.errors", name);
        p.eq(&format!("{what}: channels"), at(e, "/notification_channels"), channels.clone());
        let c = at(e, "/conditions/0/condition_threshold/0");
        p.eq(&format!("{what}: filter"), at(c, "/filter"), json!(format!("{requests}{FIVE_XX}")));
        p.eq(&format!("{what}: denominator"), at(c, "/denominator_filter"), json!(requests));
        p.eq(&format!("{what}: comparison"), at(c, "/comparison"), json!("COMPARISON_GT"));
        p.approx(
            &format!("{what}: threshold"),
            at(c, "/threshold_value"),
            slo.error_rate_percent.unwrap() / 100.0,
        );
    }

    for (topic, t) in &m.topics {
        if !t.dead_letter {
            continue;
        }
        let what = format!("dead-letter alert on {topic}");
        let a = instance(plan, "google_monitoring_alert_policy.dead_letter", topic);
        p.eq(&format!("{what}: channels"), at(a, "/notification_channels"), channels.clone());
        let c = at(a, "/conditions/0/condition_threshold/0");
        p.eq(
            &format!("{what}: filter"),
            at(c, "/filter"),
            json!(format!(
                "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.\"subscription_id\"=\"{}\"",
                reference("google_pubsub_subscription.dead_letter", topic, "name")
            )),
        );
        p.eq(&format!("{what}: comparison"), at(c, "/comparison"), json!("COMPARISON_GT"));
        p.eq(&format!("{what}: threshold"), at(c, "/threshold_value"), json!(0));
    }

    let metric = instance(plan, "google_logging_metric.circuit_breaker_opened", "");
    p.eq(
        "circuit-breaker log metric filter",
        at(metric, "/filter"),
        json!(format!(
            "resource.type=\"cloud_run_revision\" AND jsonPayload.message=\"{}\"",
            circuit_opened_message()
        )),
    );
    p.eq(
        "circuit-breaker log metric provider label",
        at(metric, "/label_extractors/provider"),
        json!("EXTRACT(jsonPayload.provider)"),
    );
    let alert = instance(plan, "google_monitoring_alert_policy.circuit_breaker", "");
    p.eq("circuit-breaker alert channels", at(alert, "/notification_channels"), channels);
    p.eq(
        "circuit-breaker alert filter",
        at(alert, "/conditions/0/condition_threshold/0/filter"),
        json!("metric.type=\"logging.googleapis.com/user/${google_logging_metric.circuit_breaker_opened.name}\" AND resource.type=\"cloud_run_revision\""),
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn terraform_reads_the_shared_manifest_with_yamldecode() {
    let locals = std::fs::read_to_string(infra().join("locals.tf")).unwrap();
    assert!(
        locals
            .contains(r#"manifest = yamldecode(file("${path.module}/../shared/functions.yaml"))"#),
        "infra/locals.tf must read the manifest with yamldecode(file(\"${{path.module}}/../shared/functions.yaml\"))"
    );
}

#[test]
fn the_repository_manifest_is_provisioned_exactly() {
    let (path, m) = repo_manifest();
    let vars = Vars::default();
    let plan = evaluate(&infra(), &path, &vars, &[]);
    let found = problems(&plan, &m, &vars);
    assert!(
        found.is_empty(),
        "infra/ does not match shared/functions.yaml:\n  - {}",
        found.join("\n  - ")
    );
}

#[test]
fn a_manifest_with_every_kind_of_trigger_is_provisioned_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, m) = manifest_file(dir.path(), RICH);
    let vars = rich_vars();
    let plan = evaluate(&infra(), &path, &vars, &[]);
    let found = problems(&plan, &m, &vars);
    assert!(found.is_empty(), "infra/ does not match the manifest:\n  - {}", found.join("\n  - "));

    // Spot checks that the comparison above really looked at these.
    let keys = |address: &str| plan["resources"][address]["keys"].as_array().unwrap().len();
    assert_eq!(keys("google_cloud_scheduler_job.job"), 3);
    assert_eq!(keys("google_eventarc_trigger.firestore"), 2);
    assert_eq!(keys("google_pubsub_subscription.push"), 3);
    assert_eq!(keys("google_pubsub_subscription.dead_letter"), 2);
    assert_eq!(keys("google_secret_manager_secret_iam_member.function_secret"), 3);
    assert_eq!(keys("google_monitoring_alert_policy.latency"), 2 * m.functions.len());
    assert_eq!(keys("google_monitoring_alert_policy.dead_letter"), 2);
    // defaults.slo and the function's own slo both reach Terraform.
    let cleanup_p99 = instance(&plan, "google_monitoring_slo.latency", "scheduled-cleanup/p99");
    assert_eq!(
        at(cleanup_p99, "/request_based_sli/0/distribution_cut/0/range/0/max"),
        Some(&json!(50000))
    );
    let hook_p99 = instance(&plan, "google_monitoring_alert_policy.latency", "signup-hook/p99");
    assert_eq!(
        at(hook_p99, "/conditions/0/condition_threshold/0/threshold_value"),
        Some(&json!(900))
    );
    let hook = instance(&plan, "google_monitoring_slo.availability", "signup-hook");
    let goal = at(hook, "/goal").and_then(Value::as_f64).unwrap();
    assert!((goal - 0.999).abs() < 1e-12, "{goal}");
    let long = &plan["resources"]["google_service_account.function"]["instances"]["a-function-with-a-name-too-long-for-an-account-id"]
        ["account_id"];
    assert_eq!(long.as_str().unwrap().len(), 30, "{long}");
    let webhook = instance(&plan, "google_cloud_run_v2_service.function", "payment-webhook");
    assert_eq!(at(webhook, "/location"), Some(&json!("africa-south1")));
}

#[test]
fn deleting_a_resource_block_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (path, m) = manifest_file(dir.path(), RICH);
    let vars = rich_vars();
    for address in [
        "google_pubsub_topic_iam_member.dead_letter_publisher",
        "google_pubsub_subscription_iam_member.dead_letter_subscriber",
        "google_pubsub_subscription.dead_letter",
        "google_cloud_scheduler_job.job",
        "google_eventarc_trigger.firestore",
        "google_identity_platform_config.auth",
        "google_cloud_run_v2_service_iam_member.invoker",
        "google_secret_manager_secret_iam_member.function_secret",
        "google_firestore_field.ttl",
        "google_monitoring_custom_service.function",
        "google_monitoring_slo.availability",
        "google_monitoring_slo.latency",
        "google_monitoring_alert_policy.latency",
        "google_monitoring_alert_policy.errors",
        "google_monitoring_alert_policy.dead_letter",
        "google_monitoring_alert_policy.circuit_breaker",
        "google_logging_metric.circuit_breaker_opened",
    ] {
        let plan = evaluate(&infra(), &path, &vars, &[address]);
        let found = problems(&plan, &m, &vars);
        assert!(
            found.iter().any(|p| p.contains(address)),
            "deleting {address} went unnoticed; problems: {found:#?}"
        );
    }
}

/// A copy of infra/ to mutate.
fn infra_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("infra");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(infra()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().ends_with(".tf") {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    copy
}

#[test]
fn resources_for_things_the_manifest_lacks_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (path, m) = manifest_file(dir.path(), RICH);
    let vars = rich_vars();

    let extra = infra_copy(&dir.path().join("extra"));
    std::fs::write(
        extra.join("stray.tf"),
        "resource \"google_pubsub_topic\" \"stray\" {\n  name = \"stray\"\n}\n",
    )
    .unwrap();
    let found = problems(&evaluate(&extra, &path, &vars, &[]), &m, &vars);
    assert!(found.iter().any(|p| p.contains("google_pubsub_topic.stray")), "{found:#?}");

    let widened = infra_copy(&dir.path().join("widened"));
    let pubsub = std::fs::read_to_string(widened.join("pubsub.tf")).unwrap();
    let mutated = pubsub.replacen(
        "for_each = local.topics",
        "for_each = merge(local.topics, { stray = {} })",
        1,
    );
    assert_ne!(pubsub, mutated);
    std::fs::write(widened.join("pubsub.tf"), mutated).unwrap();
    let found = problems(&evaluate(&widened, &path, &vars, &[]), &m, &vars);
    assert!(found.iter().any(|p| p.contains("stray")), "{found:#?}");
}

/// A function the monitoring resources leave out (a hand-written list, a filter) is caught:
/// adding a function to the manifest without SLOs and alerts fails.
#[test]
fn a_function_without_its_slos_and_alerts_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (path, m) = manifest_file(dir.path(), RICH);
    let vars = rich_vars();
    let cases = [
        ("google_monitoring_alert_policy.errors", "errors", "payment-webhook"),
        ("google_monitoring_slo.availability", "availability", "payment-webhook"),
        ("google_monitoring_custom_service.function", "function", "onboarding"),
    ];
    for (address, label, left_out) in cases {
        let copy = infra_copy(&dir.path().join(label).join(left_out));
        let tf = std::fs::read_to_string(copy.join("monitoring.tf")).unwrap();
        let block = format!("\"{label}\" {{\n  for_each = local.functions\n");
        let mutated = tf.replacen(
            &block,
            &format!(
                "\"{label}\" {{\n  for_each = {{ for k, v in local.functions : k => v if k != \"{left_out}\" }}\n"
            ),
            1,
        );
        assert_ne!(tf, mutated, "{address}: block not found");
        std::fs::write(copy.join("monitoring.tf"), mutated).unwrap();
        let found = problems(&evaluate(&copy, &path, &vars, &[]), &m, &vars);
        assert!(
            found.iter().any(|p| p.contains(address) && p.contains(left_out)),
            "{address} without {left_out} went unnoticed: {found:#?}"
        );
    }

    // A dead-letter topic added to the manifest gets its alert with no other change.
    let more = RICH.replace(
        "  orders-dead-letter: {dead_letter: true}\n",
        "  orders-dead-letter: {dead_letter: true}\n  refunds: {}\n  refunds-dead-letter: {dead_letter: true}\n",
    ).replace(
        "    secrets: {HEARTH_STRIPE_SECRET: stripe-secret}\n",
        "      - {kind: pubsub, topic: refunds, path: /pubsub/refunds, ack_deadline_seconds: 30, min_backoff_seconds: 10, max_backoff_seconds: 60, max_delivery_attempts: 5, dead_letter_topic: refunds-dead-letter}\n    secrets: {HEARTH_STRIPE_SECRET: stripe-secret}\n",
    );
    let sub = dir.path().join("more");
    std::fs::create_dir_all(&sub).unwrap();
    let (path, m) = manifest_file(&sub, &more);
    let plan = evaluate(&infra(), &path, &vars, &[]);
    let found = problems(&plan, &m, &vars);
    assert!(found.is_empty(), "{found:#?}");
    assert!(
        instance(&plan, "google_monitoring_alert_policy.dead_letter", "refunds-dead-letter")
            .is_some()
    );
}

#[test]
fn a_tf_file_that_does_not_parse_or_a_bad_reference_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = manifest_file(dir.path(), RICH);

    let broken = infra_copy(&dir.path().join("broken"));
    std::fs::write(
        broken.join("broken.tf"),
        "resource \"google_pubsub_topic\" \"x\" {\n  name = \n",
    )
    .unwrap();
    let plan = evaluate(&broken, &path, &rich_vars(), &[]);
    let errors = plan["errors"].to_string();
    assert!(errors.contains("broken.tf") && errors.contains("does not parse"), "{errors}");

    let dangling = infra_copy(&dir.path().join("dangling"));
    let scheduler = std::fs::read_to_string(dangling.join("scheduler.tf")).unwrap();
    std::fs::write(
        dangling.join("scheduler.tf"),
        scheduler.replace(r#"invoker["schedule"]"#, r#"invoker["scheduler"]"#),
    )
    .unwrap();
    let plan = evaluate(&dangling, &path, &rich_vars(), &[]);
    let errors = plan["errors"].to_string();
    assert!(
        errors.contains(r#"google_service_account.invoker[\"scheduler\"] is not an instance"#),
        "{errors}"
    );
}

#[test]
fn variable_validations_are_evaluated() {
    let (path, _) = repo_manifest();
    let vars = Vars {
        image_repo: "europe-west1-docker.pkg.dev/demo-hearth/hearth/".to_owned(),
        ..Vars::default()
    };
    let plan = evaluate(&infra(), &path, &vars, &[]);
    let errors = plan["errors"].to_string();
    assert!(errors.contains("variable image_repo"), "{errors}");
}
