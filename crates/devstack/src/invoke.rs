//! `devstack invoke <function> --example <name>`: sample requests for a running function, one
//! per trigger of the manifest, shaped exactly as the real caller sends them (like
//! `cargo lambda invoke --data-example`): a Pub/Sub push envelope with an OIDC token, an
//! Identity Platform blocking request with an unsigned JWT (as the Auth emulator sends it), a
//! binary-mode Eventarc Firestore CloudEvent, a Cloud Scheduler call, a Stripe webhook signed
//! with the secret devstack gives the receiver. `--list` shows them.

use std::collections::BTreeMap;

use chrono::Utc;
use domain::messages::{Topic as _, UserSignup, UserSignups, Version};
use domain::tenancy::Role;
use gcp::eventarc::FirestoreEventType;
use gcp::firestore::{FirestoreDocument, Value as DocValue};
use manifest::{HttpAuth, Manifest, Trigger};
use runtime::Env;
use serde_json::{Value, json};

use crate::eventarc::pattern::DocumentPattern;
use crate::eventarc::tracker::Change;
use crate::eventarc::{EventarcRoute, build_event};
use crate::identity::{self, Caller};
use crate::pubsub::engine::{PUSH_USER_AGENT, envelope};
use crate::pubsub::rest::PubsubMessage;

/// One ready-to-send request.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub function: String,
    pub name: String,
    pub description: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why an example cannot be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("no function `{0}` in the manifest (functions: {1})")]
    UnknownFunction(String, String),
    #[error("function `{function}` has no example `{name}` (examples: {available})")]
    UnknownExample { function: String, name: String, available: String },
    #[error("cannot build the example: {0}")]
    Build(String),
}

/// A sample message body for a topic: typed for the topics the domain knows, `{}` otherwise.
pub fn sample_message(topic: &str, uid: &str) -> Value {
    if topic == UserSignups::NAME {
        let msg = UserSignup {
            v: Version,
            uid: uid.to_owned(),
            email: Some(format!("{uid}@example.com")),
            tenant_id: domain::tenancy::personal_tenant_id(uid),
            role: Role::Owner,
            tenant_is_new: true,
            event_id: format!("evt-{}", uuid::Uuid::new_v4().simple()),
        };
        return serde_json::to_value(msg).unwrap_or_default();
    }
    json!({})
}

/// The variable holding the Stripe webhook signing secrets.
const STRIPE_SECRETS: &str = "HEARTH_STRIPE_WEBHOOK_SECRETS";

/// A `payment_intent.succeeded` event for a sample order.
fn sample_stripe_event() -> Value {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let intent = json!({"id": format!("pi_sample_{id}"), "object": "payment_intent",
        "amount": 1000, "currency": "usd", "metadata": {"order_id": format!("ord_sample_{id}")}});
    testkit::fake_provider::stripe_event_for(
        intent,
        &format!("evt_sample_{id}"),
        "payment_intent.succeeded",
        Utc::now().timestamp(),
    )
}

fn sample_uid() -> String {
    format!("devstack-sample-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Every example of `function`. `data` replaces the sample payload (message data, document
/// fields, HTTP body) when given.
pub fn examples(
    manifest: &Manifest,
    function: &str,
    project: &str,
    base_url: &str,
    data: Option<&Value>,
) -> Result<Vec<Example>, InvokeError> {
    let spec = manifest.functions.get(function).ok_or_else(|| {
        InvokeError::UnknownFunction(
            function.to_owned(),
            manifest.functions.keys().cloned().collect::<Vec<_>>().join(", "),
        )
    })?;
    let json_header = ("content-type".to_owned(), "application/json".to_owned());
    let bearer = |caller| {
        (
            "authorization".to_owned(),
            format!("Bearer {}", identity::oidc_token(project, caller, base_url)),
        )
    };
    let mut out = Vec::new();
    for trigger in &spec.triggers {
        let path = trigger.path().to_owned();
        let uid = sample_uid();
        let example = match trigger {
            Trigger::Pubsub { topic, subscription, .. } => {
                let body = data.cloned().unwrap_or_else(|| sample_message(topic, &uid));
                let message = PubsubMessage {
                    message_id: uuid::Uuid::new_v4().as_u128().to_string()[..16].to_owned(),
                    data: serde_json::to_vec(&body)
                        .map_err(|e| InvokeError::Build(e.to_string()))?,
                    attributes: BTreeMap::from([
                        ("schema".to_owned(), topic.clone()),
                        ("schema_version".to_owned(), "1".to_owned()),
                    ]),
                    ordering_key: None,
                    publish_time: Utc::now(),
                };
                let sub = subscription.clone().unwrap_or_else(|| format!("{topic}--{function}"));
                let body =
                    envelope(&message, &format!("projects/{project}/subscriptions/{sub}"), 1)
                        .map_err(|e| InvokeError::Build(e.to_string()))?;
                Example {
                    function: function.to_owned(),
                    name: topic.clone(),
                    description: format!(
                        "Pub/Sub push of a `{topic}` message (OIDC-signed, deliveryAttempt 1)"
                    ),
                    path,
                    headers: vec![
                        json_header.clone(),
                        bearer(Caller::PubSub),
                        ("user-agent".to_owned(), PUSH_USER_AGENT.to_owned()),
                    ],
                    body,
                }
            }
            Trigger::Blocking { event, .. } => {
                let audience = format!("{base_url}{path}");
                let claims = testkit::tokens::blocking_claims(
                    project,
                    &audience,
                    &uid,
                    crate::plan::blocking_key(*event),
                );
                let jwt = testkit::tokens::unsigned(&claims);
                Example {
                    function: function.to_owned(),
                    name: path.trim_start_matches('/').to_owned(),
                    description: format!(
                        "Identity Platform {} request for a new user {uid} (unsigned JWT, as the Auth emulator sends)",
                        crate::plan::blocking_key(*event)
                    ),
                    path,
                    headers: vec![json_header.clone()],
                    body: json!({"data": {"jwt": jwt}}).to_string().into_bytes(),
                }
            }
            Trigger::Eventarc { event_types, document, .. } => {
                let pattern = DocumentPattern::parse(document)
                    .map_err(|e| InvokeError::Build(e.to_string()))?;
                for ty in event_types {
                    let event_type = FirestoreEventType::parse(ty)
                        .map_err(|e| InvokeError::Build(e.to_string()))?;
                    let fields = match data {
                        Some(Value::Object(o)) => o
                            .iter()
                            .map(|(k, v)| (k.clone(), DocValue::from_plain_json(v.clone())))
                            .collect(),
                        _ => BTreeMap::from([("sample".to_owned(), DocValue::Boolean(true))]),
                    };
                    let doc = FirestoreDocument {
                        name: format!(
                            "projects/{project}/databases/(default)/documents/{}",
                            pattern.sample_path()
                        ),
                        fields,
                        create_time: Some(Utc::now()),
                        update_time: Some(Utc::now()),
                    };
                    let change = match event_type.kind {
                        gcp::eventarc::FirestoreEventKind::Deleted => Change::Deleted(doc),
                        gcp::eventarc::FirestoreEventKind::Updated => {
                            let mut old = doc.clone();
                            old.fields.insert("sample".to_owned(), DocValue::Boolean(false));
                            let mask = crate::eventarc::tracker::update_mask(&old, &doc);
                            Change::Updated { old, new: doc, mask }
                        }
                        _ => Change::Created(doc),
                    };
                    let route = EventarcRoute {
                        function: function.to_owned(),
                        pattern: pattern.clone(),
                        event_type,
                        endpoint: format!("{base_url}{path}"),
                        audience: base_url.to_owned(),
                    };
                    let event = build_event(project, &route, &change);
                    let (headers, body) =
                        event.to_binary().map_err(|e| InvokeError::Build(e.to_string()))?;
                    let mut hs: Vec<(String, String)> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    hs.push(bearer(Caller::Eventarc));
                    out.push(Example {
                        function: function.to_owned(),
                        name: format!("{}-{}", pattern.label(), event_type.kind.as_str()),
                        description: format!(
                            "Eventarc {event_type} for {} (binary mode, protobuf)",
                            pattern.sample_path()
                        ),
                        path: path.clone(),
                        headers: hs,
                        body: body.to_vec(),
                    });
                }
                continue;
            }
            Trigger::Schedule { job, .. } => {
                let mut headers: Vec<(String, String)> = crate::jobs::headers(job, Utc::now())
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                headers.push(bearer(Caller::Scheduler));
                Example {
                    function: function.to_owned(),
                    name: job.clone(),
                    description: format!("Cloud Scheduler run of `{job}` (OIDC-signed)"),
                    path,
                    headers,
                    body: Vec::new(),
                }
            }
            Trigger::Http { auth: HttpAuth::Provider, .. }
                if path.ends_with("/stripe") && spec.secrets.contains_key(STRIPE_SECRETS) =>
            {
                let secrets = crate::plan::secret_value(
                    STRIPE_SECRETS,
                    &spec.secrets[STRIPE_SECRETS],
                    &Env::from_process(),
                );
                let secret = crate::demo::payments::signing_secret(&secrets).unwrap_or_default();
                let event = data.cloned().unwrap_or_else(sample_stripe_event);
                let body =
                    serde_json::to_vec(&event).map_err(|e| InvokeError::Build(e.to_string()))?;
                let signature =
                    testkit::fake_provider::stripe_signature(secret, Utc::now().timestamp(), &body);
                Example {
                    function: function.to_owned(),
                    name: path.trim_start_matches('/').replace('/', "-"),
                    description: format!(
                        "Stripe webhook {} signed with the local {STRIPE_SECRETS} (an unknown order: dead-lettered by the processor)",
                        event["type"].as_str().unwrap_or("event")
                    ),
                    path,
                    headers: vec![json_header.clone(), ("stripe-signature".to_owned(), signature)],
                    body,
                }
            }
            Trigger::Http { auth, methods, .. } => {
                let token = match auth {
                    HttpAuth::Firebase => Some(testkit::tokens::unsigned(
                        &testkit::tokens::firebase_id_claims(project, &uid),
                    )),
                    HttpAuth::Oidc | HttpAuth::FirebaseOrOidc => {
                        Some(identity::oidc_token(project, Caller::Operator, base_url))
                    }
                    HttpAuth::Provider => None,
                };
                let mut headers = vec![json_header.clone()];
                if let Some(token) = token {
                    headers.push(("authorization".to_owned(), format!("Bearer {token}")));
                }
                Example {
                    function: function.to_owned(),
                    name: path.trim_start_matches('/').replace('/', "-"),
                    description: format!(
                        "HTTP {} {path} as {} with the --data body",
                        methods.first().map_or("POST", String::as_str),
                        if matches!(auth, HttpAuth::Firebase) {
                            "a signed-in user"
                        } else {
                            "an operator service account"
                        }
                    ),
                    path,
                    headers,
                    body: data.cloned().unwrap_or_else(|| json!({})).to_string().into_bytes(),
                }
            }
        };
        out.push(example);
    }
    Ok(out)
}

/// The example `name` of `function`.
pub fn find(examples: Vec<Example>, function: &str, name: &str) -> Result<Example, InvokeError> {
    let available = examples.iter().map(|e| e.name.clone()).collect::<Vec<_>>().join(", ");
    examples.into_iter().find(|e| e.name == name).ok_or_else(|| InvokeError::UnknownExample {
        function: function.to_owned(),
        name: name.to_owned(),
        available,
    })
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends `example` to the function at `base_url`.
pub async fn send(
    http: &reqwest::Client,
    base_url: &str,
    example: &Example,
) -> Result<Answer, reqwest::Error> {
    let mut request = http.post(format!("{base_url}{}", example.path)).body(example.body.clone());
    for (k, v) in &example.headers {
        request = request.header(k, v);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Manifest {
        Manifest::load(&crate::default_manifest_path()).unwrap()
    }

    #[test]
    fn every_trigger_of_the_repository_has_an_example() {
        let m = repo();
        let names = |f| {
            examples(&m, f, "demo-p", "http://127.0.0.1:1", None)
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("signup-hook"), ["before-create", "before-sign-in"]);
        assert_eq!(names("onboarding"), ["user-signups", "provision"]);
        assert!(matches!(
            examples(&m, "nope", "p", "u", None),
            Err(InvokeError::UnknownFunction(..))
        ));
        let all = examples(&m, "onboarding", "p", "u", None).unwrap();
        assert!(matches!(find(all, "onboarding", "x"), Err(InvokeError::UnknownExample { .. })));
    }

    #[test]
    fn the_push_example_is_a_valid_envelope_of_a_valid_message() {
        let all = examples(&repo(), "onboarding", "demo-p", "http://127.0.0.1:1", None).unwrap();
        let push = find(all, "onboarding", "user-signups").unwrap();
        let event = gcp::pubsub::parse_push::<UserSignup>(&push.body).unwrap();
        assert_eq!(event.delivery_attempt, Some(1));
        assert_eq!(event.data.tenant_id, domain::tenancy::personal_tenant_id(&event.data.uid));
        assert!(
            push.headers.iter().any(|(k, v)| k == "authorization" && v.starts_with("Bearer ey"))
        );
    }

    #[tokio::test]
    async fn blocking_examples_pass_the_hooks_verifier_in_emulator_mode() {
        let all = examples(&repo(), "signup-hook", "demo-p", "http://127.0.0.1:1", None).unwrap();
        for (name, path) in
            [("before-create", "/before-create"), ("before-sign-in", "/before-sign-in")]
        {
            let ex = find(all.clone(), "signup-hook", name).unwrap();
            let config = gcp::blocking::BlockingConfig::new(
                "demo-p",
                format!("http://127.0.0.1:1{path}"),
                true,
            );
            // Unsigned tokens never reach for keys; the URL is never fetched.
            let keys = gcp::jwks::JwksCache::new("http://127.0.0.1:1/unused");
            let verifier = gcp::blocking::BlockingVerifier::new(keys, config);
            verifier.verify(&ex.body).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn the_blocking_example_carries_an_unsigned_jwt_for_the_endpoint() {
        let all = examples(&repo(), "signup-hook", "demo-p", "http://127.0.0.1:1", None).unwrap();
        let ex = find(all, "signup-hook", "before-create").unwrap();
        let body: Value = serde_json::from_slice(&ex.body).unwrap();
        let jwt = body["data"]["jwt"].as_str().unwrap();
        assert!(jwt.ends_with('.'), "unsigned");
        let payload = jwt.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], "http://127.0.0.1:1/before-create");
        assert_eq!(claims["iss"], "https://securetoken.google.com/demo-p");
    }

    #[test]
    fn the_stripe_example_is_signed_with_the_secret_the_webhook_is_given() {
        let m = repo();
        let all = examples(&m, "payment-webhook", "demo-p", "http://127.0.0.1:1", None).unwrap();
        let ex = find(all, "payment-webhook", "stripe").unwrap();
        let header = &ex.headers.iter().find(|(k, _)| k == "stripe-signature").unwrap().1;
        let t: i64 = header.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
        let spec = &m.functions["payment-webhook"];
        let env = crate::plan::function_env(
            &m,
            "payment-webhook",
            "demo-p",
            &crate::plan::Emulators {
                firestore: "h:1".into(),
                pubsub: "h:2".into(),
                auth: "h:3".into(),
            },
            "http://127.0.0.1:1",
            1,
            crate::plan::LocalServices { jwks_url: "http://k", provider: None },
            &Env::from_process(),
        );
        assert!(spec.secrets.contains_key(STRIPE_SECRETS));
        let secret =
            crate::demo::payments::signing_secret(&env[STRIPE_SECRETS]).unwrap().to_owned();
        assert_eq!(
            header,
            &testkit::fake_provider::stripe_signature(&secret, t, &ex.body),
            "the signature payment-webhook checks"
        );
        let event: Value = serde_json::from_slice(&ex.body).unwrap();
        assert_eq!(event["type"], "payment_intent.succeeded");
        assert!(event["data"]["object"]["metadata"]["order_id"].is_string());
    }

    #[test]
    fn eventarc_and_scheduler_examples_are_what_gcp_parses() {
        let m = Manifest::parse(
            r#"
version: 1
defaults: {region: europe-west1, resources: {}}
functions:
  feed:
    crate: feed
    description: test
    triggers:
      - {kind: eventarc, event_types: [google.cloud.firestore.document.v1.created, google.cloud.firestore.document.v1.deleted], document: "posts/{postId}", path: /}
      - {kind: schedule, job: expire-reservations, cron: "*/5 * * * *", path: /jobs/expire-reservations, attempt_deadline_seconds: 60}
"#,
        )
        .unwrap();
        let all =
            examples(&m, "feed", "demo-p", "http://127.0.0.1:1", Some(&json!({"title": "t"})))
                .unwrap();
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["posts-created", "posts-deleted", "expire-reservations"]);
        let mut headers = http::HeaderMap::new();
        for (k, v) in &all[0].headers {
            headers.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let event =
            gcp::eventarc::FirestoreEvent::from_http(&headers, all[0].body.clone().into()).unwrap();
        assert_eq!(event.document_path(), Some("posts/sample-postid"));
        assert_eq!(
            event.data.unwrap().value.unwrap().fields["title"],
            DocValue::String("t".into())
        );
        let mut headers = http::HeaderMap::new();
        for (k, v) in &all[2].headers {
            headers.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        assert_eq!(
            gcp::scheduler::SchedulerRequest::from_headers(&headers).unwrap().job_id,
            "expire-reservations"
        );
    }
}
