//! The functions manifest, `shared/functions.yaml`: the one place that says which function
//! listens to what, with what resources. The local stack, Terraform (`yamldecode`) and the
//! deploy script all read the same file; this crate gives it a typed schema and validates it, so
//! a manifest that any of them would misread fails here first, with every problem listed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// Region and resources every function starts from.
    pub defaults: Defaults,
    /// Every Pub/Sub topic, dead-letter topics included.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicSpec>,
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub region: String,
    pub resources: Resources,
    /// Service level objectives every function starts from (unset fields: [`Slo::BUILT_IN`]).
    #[serde(default)]
    pub slo: Slo,
}

/// Service level objectives of a function, measured by Cloud Monitoring on its Cloud Run
/// service (`run.googleapis.com/request_latencies` and `request_count`). Every field is optional
/// on a function and falls back to `defaults.slo`, then to [`Slo::BUILT_IN`]. Terraform
/// (`infra/monitoring.tf`) turns them into SLOs and alert policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// 95 % of requests answer within this many milliseconds.
    pub latency_p95_ms: Option<u32>,
    /// 99 % of requests answer within this many milliseconds.
    pub latency_p99_ms: Option<u32>,
    /// Alert when more than this percentage of requests answer 5xx (over 5 minutes).
    pub error_rate_percent: Option<f64>,
    /// Percentage of requests that must not answer 5xx, over a rolling 28 days.
    pub availability_percent: Option<f64>,
}

impl Slo {
    /// The objectives used where neither the function nor `defaults.slo` sets one (the same
    /// values as `slo_fallback` in `infra/locals.tf`).
    pub const BUILT_IN: Slo = Slo {
        latency_p95_ms: Some(300),
        latency_p99_ms: Some(800),
        error_rate_percent: Some(0.1),
        availability_percent: Some(99.95),
    };

    /// `self` with unset fields taken from `defaults`.
    pub fn or(&self, defaults: &Slo) -> Slo {
        Slo {
            latency_p95_ms: self.latency_p95_ms.or(defaults.latency_p95_ms),
            latency_p99_ms: self.latency_p99_ms.or(defaults.latency_p99_ms),
            error_rate_percent: self.error_rate_percent.or(defaults.error_rate_percent),
            availability_percent: self.availability_percent.or(defaults.availability_percent),
        }
    }
}

/// Cloud Run resources. Every field is optional on a function and falls back to the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// `"1"`, `"2"`, `"4"`, `"8"` or a fraction like `"0.5"`.
    pub cpu: Option<String>,
    /// `256Mi`, `1Gi`, ...
    pub memory: Option<String>,
    pub concurrency: Option<u32>,
    pub min_instances: Option<u32>,
    pub max_instances: Option<u32>,
    pub timeout_seconds: Option<u32>,
}

impl Resources {
    /// `self` with unset fields taken from `defaults`.
    pub fn or(&self, defaults: &Resources) -> Resources {
        Resources {
            cpu: self.cpu.clone().or_else(|| defaults.cpu.clone()),
            memory: self.memory.clone().or_else(|| defaults.memory.clone()),
            concurrency: self.concurrency.or(defaults.concurrency),
            min_instances: self.min_instances.or(defaults.min_instances),
            max_instances: self.max_instances.or(defaults.max_instances),
            timeout_seconds: self.timeout_seconds.or(defaults.timeout_seconds),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    #[serde(default)]
    pub description: String,
    /// A dead-letter topic: it gets a pull subscription of its own so nothing is lost.
    #[serde(default)]
    pub dead_letter: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The workspace crate under `functions/` that builds this function's binary.
    #[serde(rename = "crate")]
    pub crate_name: String,
    pub description: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub resources: Resources,
    /// Allow unauthenticated invocations (callers that present no IAM token: Identity
    /// Platform, payment providers, client SDKs). Everything else requires `run.invoker`.
    #[serde(default)]
    pub public: bool,
    pub triggers: Vec<Trigger>,
    /// Topics this function publishes to.
    #[serde(default)]
    pub publishes: Vec<String>,
    /// Plain configuration (names under `HEARTH_` or the fixed ones of the design).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Env var name -> Secret Manager secret id.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Overrides of `defaults.slo` (e.g. looser latency for scheduled jobs and push consumers).
    #[serde(default)]
    pub slo: Slo,
    /// Browser origins allowed to call the function, per environment (`local` for devstack,
    /// the deploy's `HEARTH_ENVIRONMENT` otherwise), exported as `HEARTH_CORS_ORIGINS`.
    /// Exact origins only (`https://host[:port]`; `http` only for `localhost` / `127.0.0.1`):
    /// the callable protocol sends an `Authorization` header, and a wildcard must never answer
    /// a credentialed call.
    #[serde(default)]
    pub cors: BTreeMap<String, Vec<String>>,
}

impl FunctionSpec {
    /// The allowed origins of `environment` (none when the function declares none for it).
    pub fn cors_origins(&self, environment: &str) -> &[String] {
        self.cors.get(environment).map_or(&[], Vec::as_slice)
    }
}

/// Why `origin` is not an exact browser origin the CORS layer may allow, if it is not.
pub fn origin_problem(origin: &str) -> Option<String> {
    if origin.contains('*') {
        return Some(format!("origin `{origin}` is a wildcard; list exact origins"));
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Some(format!("origin `{origin}` must be scheme://host[:port]"));
    };
    let rest_ok = !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if !rest_ok {
        return Some(format!(
            "origin `{origin}` must be scheme://host[:port] with no path or trailing slash"
        ));
    }
    let host = rest.rsplit_once(':').map_or(rest, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() { h } else { rest }
    });
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    match scheme {
        "https" => None,
        "http" if local => None,
        _ => Some(format!("origin `{origin}` must use https (http only for localhost)")),
    }
}

/// What calls a function, and on which path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// Plain HTTP (client API, webhooks, repair endpoints).
    Http { path: String, methods: Vec<String>, auth: HttpAuth },
    /// A Pub/Sub push subscription.
    Pubsub {
        topic: String,
        path: String,
        /// Subscription id; default `<topic>--<function>`.
        #[serde(default)]
        subscription: Option<String>,
        ack_deadline_seconds: u32,
        min_backoff_seconds: u32,
        max_backoff_seconds: u32,
        max_delivery_attempts: u32,
        dead_letter_topic: String,
        #[serde(default)]
        ordering: bool,
    },
    /// A Cloud Scheduler job.
    Schedule {
        job: String,
        cron: String,
        #[serde(default = "utc")]
        time_zone: String,
        path: String,
        attempt_deadline_seconds: u32,
        #[serde(default)]
        retry_count: u32,
    },
    /// An Eventarc trigger on Firestore document events.
    Eventarc { event_types: Vec<String>, document: String, path: String },
    /// An Identity Platform blocking function.
    Blocking { event: BlockingEvent, path: String },
}

fn utc() -> String {
    "Etc/UTC".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpAuth {
    /// Firebase ID token (client SDKs).
    Firebase,
    /// Google OIDC (operators, other services).
    Oidc,
    /// Firebase ID token or Google OIDC.
    FirebaseOrOidc,
    /// The caller proves itself in the payload (signed webhooks).
    Provider,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockingEvent {
    #[serde(rename = "beforeCreate")]
    BeforeCreate,
    #[serde(rename = "beforeSignIn")]
    BeforeSignIn,
}

impl Trigger {
    pub fn path(&self) -> &str {
        match self {
            Trigger::Http { path, .. }
            | Trigger::Pubsub { path, .. }
            | Trigger::Schedule { path, .. }
            | Trigger::Eventarc { path, .. }
            | Trigger::Blocking { path, .. } => path,
        }
    }
}

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid manifest: {message}")]
    Parse { path: String, message: String },
    #[error("the manifest has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Manifest {
    /// Reads, parses and validates a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ManifestError::Read { path: path.display().to_string(), source })?;
        let manifest = Manifest::parse(&text).map_err(|message| ManifestError::Parse {
            path: path.display().to_string(),
            message,
        })?;
        manifest.validate().map_err(ManifestError::Invalid)?;
        Ok(manifest)
    }

    /// Parses YAML text (no validation).
    pub fn parse(text: &str) -> Result<Manifest, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// The objectives of `function`: its own, then `defaults.slo`, then [`Slo::BUILT_IN`].
    pub fn slo_of(&self, f: &FunctionSpec) -> Slo {
        f.slo.or(&self.defaults.slo).or(&Slo::BUILT_IN)
    }

    /// The subscription id of a Pub/Sub trigger of `function`.
    pub fn subscription_id(function: &str, trigger: &Trigger) -> Option<String> {
        match trigger {
            Trigger::Pubsub { topic, subscription, .. } => {
                Some(subscription.clone().unwrap_or_else(|| format!("{topic}--{function}")))
            }
            _ => None,
        }
    }

    /// Every problem, not just the first.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.version != 1 {
            problems.push(format!("version {} is not supported (expected 1)", self.version));
        }
        check_resources("defaults", &self.defaults.resources, &mut problems);
        check_slo("defaults", &self.defaults.slo.or(&Slo::BUILT_IN), None, &mut problems);
        for (name, spec) in &self.topics {
            check_id("topic", name, &mut problems);
            if spec.dead_letter && !name.ends_with("-dead-letter") {
                problems.push(format!("dead-letter topic `{name}` must end with `-dead-letter`"));
            }
        }

        let mut subscribed: BTreeSet<&str> = BTreeSet::new();
        let mut published: BTreeSet<&str> = BTreeSet::new();
        let mut jobs: BTreeSet<&str> = BTreeSet::new();
        let mut subscriptions: BTreeSet<String> = BTreeSet::new();
        let mut blocking: BTreeSet<&str> = BTreeSet::new();

        for (name, f) in &self.functions {
            check_id("function", name, &mut problems);
            let at = |what: &str| format!("function `{name}`: {what}");
            if f.crate_name.is_empty() {
                problems.push(at("`crate` is empty"));
            }
            let resources = f.resources.or(&self.defaults.resources);
            check_resources(name, &resources, &mut problems);
            check_slo(name, &self.slo_of(f), resources.timeout_seconds, &mut problems);
            if f.triggers.is_empty() {
                problems.push(at("has no triggers"));
            }
            for (environment, origins) in &f.cors {
                check_id("CORS environment", environment, &mut problems);
                for origin in origins {
                    if let Some(problem) = origin_problem(origin) {
                        problems.push(at(&format!("cors `{environment}`: {problem}")));
                    }
                }
            }
            let mut paths = BTreeSet::new();
            for t in &f.triggers {
                let path = t.path();
                if !path.starts_with('/') {
                    problems.push(at(&format!("path `{path}` must start with `/`")));
                }
                if !paths.insert((path, trigger_kind(t))) {
                    problems.push(at(&format!("path `{path}` is declared twice")));
                }
                match t {
                    Trigger::Http { methods, .. } => {
                        if methods.is_empty() {
                            problems.push(at(&format!("HTTP trigger `{path}` lists no methods")));
                        }
                        for m in methods {
                            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) {
                                problems.push(at(&format!("HTTP method `{m}` is not supported")));
                            }
                        }
                    }
                    Trigger::Pubsub {
                        topic,
                        ack_deadline_seconds,
                        min_backoff_seconds,
                        max_backoff_seconds,
                        max_delivery_attempts,
                        dead_letter_topic,
                        ..
                    } => {
                        subscribed.insert(topic);
                        if !self.topics.contains_key(topic) {
                            problems.push(at(&format!("subscribes to undeclared topic `{topic}`")));
                        }
                        match self.topics.get(dead_letter_topic) {
                            None => problems.push(at(&format!("dead-letter topic `{dead_letter_topic}` is not declared"))),
                            Some(spec) if !spec.dead_letter => problems.push(at(&format!(
                                "`{dead_letter_topic}` is used as a dead-letter topic but not marked `dead_letter: true`"
                            ))),
                            Some(_) => {}
                        }
                        if !(10..=600).contains(ack_deadline_seconds) {
                            problems.push(at("ack_deadline_seconds must be within 10..=600"));
                        }
                        if min_backoff_seconds > max_backoff_seconds || *max_backoff_seconds > 600 {
                            problems.push(at("backoff must satisfy min <= max <= 600 seconds"));
                        }
                        if !(5..=100).contains(max_delivery_attempts) {
                            problems.push(at("max_delivery_attempts must be within 5..=100"));
                        }
                        let sub = Manifest::subscription_id(name, t).unwrap_or_default();
                        if !subscriptions.insert(sub.clone()) {
                            problems.push(at(&format!("subscription `{sub}` is declared twice")));
                        }
                    }
                    Trigger::Schedule {
                        job, cron, attempt_deadline_seconds, retry_count, ..
                    } => {
                        if !jobs.insert(job) {
                            problems.push(format!("schedule job `{job}` is declared twice"));
                        }
                        check_id("job", job, &mut problems);
                        if cron.split_whitespace().count() != 5 {
                            problems.push(at(&format!("cron `{cron}` must have five fields")));
                        }
                        if !(15..=1800).contains(attempt_deadline_seconds) {
                            problems.push(at("attempt_deadline_seconds must be within 15..=1800"));
                        }
                        if *retry_count > 5 {
                            problems.push(at("retry_count must be at most 5"));
                        }
                        if !path.ends_with(&format!("/jobs/{job}")) {
                            problems
                                .push(at(&format!("schedule `{job}` must target `/jobs/{job}`")));
                        }
                    }
                    Trigger::Eventarc { event_types, document, .. } => {
                        if event_types.is_empty() {
                            problems.push(at("Eventarc trigger lists no event types"));
                        }
                        for e in event_types {
                            if !e.starts_with("google.cloud.firestore.document.v1.") {
                                problems.push(at(&format!(
                                    "event type `{e}` is not a Firestore document event"
                                )));
                            }
                        }
                        if document.is_empty() || document.starts_with('/') {
                            problems
                                .push(at("Eventarc `document` must be a relative path pattern"));
                        }
                    }
                    Trigger::Blocking { event, .. } => {
                        let key = match event {
                            BlockingEvent::BeforeCreate => "beforeCreate",
                            BlockingEvent::BeforeSignIn => "beforeSignIn",
                        };
                        if !blocking.insert(key) {
                            problems.push(format!("blocking event `{key}` is registered twice"));
                        }
                        if !f.public {
                            problems.push(at("blocking functions must be `public` (Identity Platform sends no IAM token)"));
                        }
                    }
                }
            }
            for topic in &f.publishes {
                published.insert(topic);
                if !self.topics.contains_key(topic) {
                    problems.push(at(&format!("publishes to undeclared topic `{topic}`")));
                }
            }
            for key in f.env.keys().chain(f.secrets.keys()) {
                if !key.starts_with("HEARTH_") && !FIXED_ENV.contains(&key.as_str()) {
                    problems.push(at(&format!(
                        "env `{key}` must be prefixed HEARTH_ (or be a fixed name)"
                    )));
                }
            }
        }
        for topic in &published {
            if !subscribed.contains(topic) {
                problems
                    .push(format!("topic `{topic}` is published to but nothing subscribes to it"));
            }
        }
        for (name, spec) in &self.topics {
            let used = subscribed.contains(name.as_str())
                || published.contains(name.as_str())
                || self.functions.values().flat_map(|f| &f.triggers).any(|t| {
                    matches!(t, Trigger::Pubsub { dead_letter_topic, .. } if dead_letter_topic == name)
                });
            if !used {
                problems.push(format!("topic `{name}` is declared but unused"));
            }
            let _ = spec;
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// Fixed env names of the design that functions may set directly.
const FIXED_ENV: &[&str] = &["GOOGLE_CLOUD_PROJECT", "RUST_LOG"];

fn trigger_kind(t: &Trigger) -> &'static str {
    match t {
        Trigger::Http { .. } => "http",
        Trigger::Pubsub { .. } => "pubsub",
        Trigger::Schedule { .. } => "schedule",
        Trigger::Eventarc { .. } => "eventarc",
        Trigger::Blocking { .. } => "blocking",
    }
}

/// Names used as GCP resource ids: lower-case letters, digits and `-`, starting with a letter.
fn check_id(what: &str, id: &str, problems: &mut Vec<String>) {
    let ok = id.len() >= 3
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        problems.push(format!(
            "{what} name `{id}` must be 3-63 chars of a-z, 0-9 and `-`, starting with a letter"
        ));
    }
}

fn check_resources(at: &str, r: &Resources, problems: &mut Vec<String>) {
    if let Some(cpu) = &r.cpu
        && !matches!(cpu.as_str(), "0.08" | "0.5" | "1" | "2" | "4" | "6" | "8")
    {
        problems.push(format!("{at}: cpu `{cpu}` is not a Cloud Run CPU size"));
    }
    if let Some(memory) = &r.memory {
        let (n, unit) = memory.split_at(memory.trim_end_matches(char::is_alphabetic).len());
        if n.parse::<u32>().map_or(true, |n| n == 0) || !matches!(unit, "Mi" | "Gi") {
            problems.push(format!("{at}: memory `{memory}` must look like 256Mi or 1Gi"));
        }
    }
    if let Some(c) = r.concurrency
        && !(1..=1000).contains(&c)
    {
        problems.push(format!("{at}: concurrency must be within 1..=1000"));
    }
    if let (Some(min), Some(max)) = (r.min_instances, r.max_instances)
        && min > max
    {
        problems.push(format!("{at}: min_instances {min} exceeds max_instances {max}"));
    }
    if let Some(t) = r.timeout_seconds
        && !(1..=3600).contains(&t)
    {
        problems.push(format!("{at}: timeout_seconds must be within 1..=3600"));
    }
}

/// Objectives Cloud Monitoring can hold and a service can meet: latencies of at least 1 ms with
/// p95 <= p99 <= the request timeout, an error rate strictly between 0 and 100 %, and an
/// availability from 90 % to 99.99 % (the most an SLO goal may be).
fn check_slo(at: &str, slo: &Slo, timeout_seconds: Option<u32>, problems: &mut Vec<String>) {
    let (Some(p95), Some(p99), Some(errors), Some(availability)) =
        (slo.latency_p95_ms, slo.latency_p99_ms, slo.error_rate_percent, slo.availability_percent)
    else {
        problems.push(format!("{at}: slo is incomplete: {slo:?}"));
        return;
    };
    if p95 == 0 || p99 == 0 {
        problems.push(format!("{at}: slo latency_p95_ms and latency_p99_ms must be at least 1 ms"));
    }
    if p95 > p99 {
        problems.push(format!(
            "{at}: slo latency_p95_ms ({p95} ms) must not exceed latency_p99_ms ({p99} ms)"
        ));
    }
    if let Some(timeout) = timeout_seconds
        && u64::from(p99) > u64::from(timeout) * 1000
    {
        problems.push(format!(
            "{at}: slo latency_p99_ms ({p99} ms) exceeds the request timeout ({timeout} s): no request takes that long"
        ));
    }
    if !(errors.is_finite() && errors > 0.0 && errors < 100.0) {
        problems.push(format!(
            "{at}: slo error_rate_percent ({errors}) must be a percentage above 0 and below 100"
        ));
    }
    if !(availability.is_finite() && (90.0..=99.99).contains(&availability)) {
        problems.push(format!(
            "{at}: slo availability_percent ({availability}) must be within 90..=99.99 (Cloud Monitoring goals stop at 99.99 %)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
version: 1
defaults:
  region: europe-west1
  resources: {timeout_seconds: 60}
functions:
  hello:
    crate: hello
    description: h
    triggers:
      - {kind: http, path: /hello, methods: [GET], auth: firebase}
"#;

    fn with_slo(defaults: &str, function: &str) -> Result<Manifest, Vec<String>> {
        let mut yaml = BASE.to_owned();
        if !defaults.is_empty() {
            yaml = yaml.replace(
                "  resources: {timeout_seconds: 60}\n",
                &format!("  resources: {{timeout_seconds: 60}}\n  slo: {defaults}\n"),
            );
        }
        if !function.is_empty() {
            yaml = yaml.replace(
                "    description: h\n",
                &format!("    description: h\n    slo: {function}\n"),
            );
        }
        let m = Manifest::parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        m.validate().map(|()| m)
    }

    #[test]
    fn built_in_objectives_apply_when_nothing_is_set() {
        let m = with_slo("", "").unwrap();
        let slo = m.slo_of(&m.functions["hello"]);
        assert_eq!(slo, Slo::BUILT_IN);
        assert_eq!(slo.latency_p95_ms, Some(300));
        assert_eq!(slo.latency_p99_ms, Some(800));
        assert_eq!(slo.error_rate_percent, Some(0.1));
        assert_eq!(slo.availability_percent, Some(99.95));
    }

    #[test]
    fn a_function_overrides_the_defaults_field_by_field() {
        let m = with_slo(
            "{latency_p95_ms: 250, availability_percent: 99.9}",
            "{latency_p95_ms: 5000, latency_p99_ms: 20000}",
        )
        .unwrap();
        let slo = m.slo_of(&m.functions["hello"]);
        assert_eq!(slo.latency_p95_ms, Some(5000), "the function's own");
        assert_eq!(slo.latency_p99_ms, Some(20000), "the function's own");
        assert_eq!(slo.availability_percent, Some(99.9), "from defaults.slo");
        assert_eq!(slo.error_rate_percent, Some(0.1), "built in");
    }

    #[test]
    fn bad_objectives_are_refused_with_a_clear_message() {
        let cases = [
            ("", "{latency_p95_ms: 0}", "must be at least 1 ms"),
            (
                "",
                "{latency_p95_ms: 900}",
                "latency_p95_ms (900 ms) must not exceed latency_p99_ms (800 ms)",
            ),
            (
                "{latency_p95_ms: 1000, latency_p99_ms: 500}",
                "",
                "defaults: slo latency_p95_ms (1000 ms)",
            ),
            ("", "{latency_p99_ms: 61000}", "exceeds the request timeout (60 s)"),
            ("", "{error_rate_percent: 0}", "error_rate_percent (0) must be a percentage above 0"),
            ("", "{error_rate_percent: 100}", "error_rate_percent (100)"),
            ("", "{error_rate_percent: -1.5}", "error_rate_percent (-1.5)"),
            ("", "{error_rate_percent: .nan}", "error_rate_percent (NaN)"),
            (
                "",
                "{availability_percent: 100}",
                "availability_percent (100) must be within 90..=99.99",
            ),
            ("{availability_percent: 42}", "", "defaults: slo availability_percent (42)"),
        ];
        for (defaults, function, expected) in cases {
            let found = with_slo(defaults, function).err().unwrap_or_default();
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "defaults {defaults:?}, function {function:?}: expected a problem containing {expected:?}, got {found:?}"
            );
        }
        // The function's name is in the message.
        let found = with_slo("", "{latency_p95_ms: 0}").unwrap_err();
        assert!(found.iter().any(|p| p.starts_with("hello: slo")), "{found:?}");
    }

    #[test]
    fn unknown_or_mistyped_slo_fields_do_not_parse() {
        let typo = BASE
            .replace("    description: h\n", "    description: h\n    slo: {latency_p95: 300}\n");
        let err = Manifest::parse(&typo).unwrap_err();
        assert!(err.contains("latency_p95"), "{err}");
        let text = BASE.replace(
            "    description: h\n",
            "    description: h\n    slo: {latency_p95_ms: fast}\n",
        );
        assert!(Manifest::parse(&text).is_err());
    }
}
