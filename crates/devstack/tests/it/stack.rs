//! A whole stack from a test manifest: functions served on their own ports with the
//! environment devstack gives them (their OIDC check passes with it), Pub/Sub push, Eventarc
//! and the scheduler all reaching them, the tables, a clear error for a function without an
//! implementation, and a clean shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use devstack::plan::Emulators;
use devstack::pubsub::rest::PubsubRest;
use devstack::registry::FunctionInput;
use devstack::{Registry, Stack, StackOptions};
use parking_lot::Mutex;
use serde_json::json;

use crate::support::{Recorder, eventually};

const MANIFEST: &str = r#"
version: 1
defaults:
  region: europe-west1
  resources: {timeout_seconds: 30}
topics:
  orders: {description: orders}
  orders-dead-letter: {description: dead orders, dead_letter: true}
functions:
  producer:
    crate: producer
    description: publishes orders
    triggers:
      - {kind: http, path: /go, methods: [POST], auth: oidc}
      - {kind: schedule, job: tick, cron: "0 0 1 1 *", path: /jobs/tick, attempt_deadline_seconds: 30}
    publishes: [orders]
  consumer:
    crate: consumer
    description: consumes orders and posts
    triggers:
      - {kind: pubsub, topic: orders, path: /pubsub/orders, ack_deadline_seconds: 10, min_backoff_seconds: 0, max_backoff_seconds: 0, max_delivery_attempts: 5, dead_letter_topic: orders-dead-letter}
      - {kind: eventarc, event_types: [google.cloud.firestore.document.v1.created], document: "posts/{postId}", path: /events}
"#;

type Recorders = Arc<Mutex<BTreeMap<String, Recorder>>>;

fn registry(recorders: &Recorders, names: &[&str]) -> Registry {
    let mut registry = Registry::new();
    for name in names {
        let recorders = recorders.clone();
        registry = registry.with(name, move |input: FunctionInput| {
            let recorders = recorders.clone();
            async move {
                let recorder = Recorder::from_env(&input.env, |_, _, _, _| StatusCode::OK);
                recorders.lock().insert(input.name.clone(), recorder.clone());
                let base = runtime::BaseConfig::load(&input.env)?;
                let sink = Arc::new(runtime::LogDeadLetters);
                Ok(runtime::Server::new(input.name, &base, sink).router(recorder.router()))
            }
        });
    }
    registry
}

async fn shared_emulators() -> Emulators {
    Emulators {
        firestore: testkit::emulators::firestore().await.to_owned(),
        pubsub: testkit::emulators::pubsub().await.to_owned(),
        auth: testkit::emulators::auth().await.to_owned(),
    }
}

#[tokio::test]
async fn a_stack_from_a_manifest_serves_and_feeds_every_function() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("functions.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let recorders: Recorders = Arc::default();
    let project = testkit::project_id();
    let mut options = StackOptions::new(registry(&recorders, &["producer", "consumer"]));
    options.manifest = manifest.clone();
    options.project = project.clone();
    options.base_port = 0;
    options.run_jobs_now = true;
    options.emulators = Some(shared_emulators().await);
    let stack = Stack::up(options).await.unwrap();

    let consumer_url = stack.url("consumer").unwrap().to_owned();
    let producer_url = stack.url("producer").unwrap().to_owned();
    assert_ne!(consumer_url, producer_url);
    let consumer = recorders.lock()["consumer"].clone();
    let producer = recorders.lock()["producer"].clone();

    // Pub/Sub push reaches the consumer, authenticated with the env devstack gave it.
    let rest = PubsubRest::new(&stack.emulators.pubsub, &project);
    rest.publish("orders", br#"{"order":"o1"}"#, &BTreeMap::new(), None).await.unwrap();
    assert!(eventually(10, || consumer.accepted("/pubsub/orders").len() == 1).await);
    let push =
        gcp::pubsub::parse_push::<serde_json::Value>(&consumer.accepted("/pubsub/orders")[0].body)
            .unwrap();
    assert_eq!(push.data["order"], "o1");
    assert_eq!(push.subscription, format!("projects/{project}/subscriptions/orders--consumer"));

    // Eventarc reaches it too.
    let db = store::Db::new(store::DbConfig::emulator(&project, &stack.emulators.firestore));
    db.set(&store::paths::posts().doc("p1").unwrap(), &json!({"title": "t"})).await.unwrap();
    assert!(eventually(10, || consumer.accepted("/events").len() == 1).await);

    // --run-jobs-now ran the producer's job once.
    assert!(eventually(10, || producer.accepted("/jobs/tick").len() == 1).await);

    // Nothing was refused for authentication anywhere.
    assert!(consumer.seen().iter().chain(producer.seen().iter()).all(|s| s.status != 401));

    let text = devstack::table::render(&stack);
    for needle in [
        "producer",
        "consumer",
        "/pubsub/orders",
        "orders--consumer",
        "orders-dead-letter--devstack",
        "tick",
        "posts/{postId}",
        &consumer_url,
        "Fake payment provider",
        &stack.provider.base_url,
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }

    // The fake payment provider answers Stripe's API (an unknown intent is Stripe's 404).
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let intent_url = format!("{}/v1/payment_intents/pi_unknown", stack.provider.base_url);
    let unknown = http.get(&intent_url).bearer_auth("sk_test_x").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(stack.running().provider.as_deref(), Some(stack.provider.base_url.as_str()));

    assert_eq!(http.get(format!("{consumer_url}/healthz")).send().await.unwrap().status(), 200);
    stack.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(http.get(format!("{consumer_url}/healthz")).send().await.is_err(), "stopped");
    assert!(http.get(&intent_url).send().await.is_err(), "the fake provider stopped too");
}

#[tokio::test]
async fn a_manifest_function_without_an_implementation_is_a_startup_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("functions.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let recorders: Recorders = Arc::default();
    let mut options = StackOptions::new(registry(&recorders, &["producer"]));
    options.manifest = manifest;
    options.project = testkit::project_id();
    options.base_port = 0;
    let error = Stack::up(options).await.unwrap_err().to_string();
    assert!(error.contains("consumer"), "{error}");
    assert!(!error.contains("producer"), "{error}");
}
