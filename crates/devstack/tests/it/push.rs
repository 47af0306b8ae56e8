//! Push delivery from pull subscriptions against the Pub/Sub emulator: redelivery with
//! growing attempts and backoff, dead-lettering after max attempts, OIDC on every push, and
//! one outstanding message per ordering key.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use devstack::identity::LocalKeys;
use devstack::pubsub::engine::{self, PushRoute, dead_letter_attributes};
use devstack::pubsub::rest::{PubsubRest, SubscriptionSpec};
use devstack::pubsub::schedule::RetryPolicy;
use gcp::pubsub::parse_push_bytes;
use tokio_util::sync::CancellationToken;

use crate::support::{Recorder, eventually};

const AUDIENCE: &str = "http://push-test.devstack.local";

struct Setup {
    rest: PubsubRest,
    route: PushRoute,
    cancel: CancellationToken,
}

/// Topic, push subscription (pull mode), dead-letter topic with its pull subscription, and
/// the delivery loop, for a Router served at `app`.
async fn setup(
    project: &str,
    app: &testkit::TestApp,
    policy: RetryPolicy,
    ordered: bool,
    audience: &str,
) -> Setup {
    let host = testkit::emulators::pubsub().await;
    let rest = PubsubRest::new(host, project);
    for topic in ["events", "events-dead-letter"] {
        rest.create_topic(topic).await.unwrap();
    }
    let spec = |topic: &str, ordering| SubscriptionSpec {
        topic: topic.to_owned(),
        ack_deadline: engine::LEASE,
        ordering,
    };
    rest.create_subscription("events--fn", &spec("events", ordered)).await.unwrap();
    rest.create_subscription("events-dead-letter--devstack", &spec("events-dead-letter", false))
        .await
        .unwrap();
    let route = PushRoute {
        function: "fn".into(),
        topic: "events".into(),
        subscription: "events--fn".into(),
        endpoint: app.url("/pubsub/events"),
        audience: audience.to_owned(),
        policy,
        ordered,
        dead_letter_topic: "events-dead-letter".into(),
        ack_deadline: Duration::from_secs(10),
    };
    let cancel = CancellationToken::new();
    engine::spawn(route.clone(), rest.clone(), reqwest::Client::new(), cancel.clone());
    Setup { rest, route, cancel }
}

fn attrs() -> BTreeMap<String, String> {
    BTreeMap::from([("schema".to_owned(), "events".to_owned())])
}

fn attempts(seen: &[crate::support::Seen]) -> Vec<(String, u32)> {
    seen.iter()
        .map(|s| {
            let ev = parse_push_bytes(&s.body).unwrap();
            (ev.message_id, ev.delivery_attempt.unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_failing_message_is_redelivered_with_growing_attempts_and_backoff_then_acked() {
    let project = testkit::project_id();
    let keys = LocalKeys::start().await;
    // Fails twice, then succeeds.
    let recorder = Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, n| {
        if n <= 2 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::NO_CONTENT }
    });
    let app = testkit::spawn_app(recorder.router()).await;
    let policy = RetryPolicy {
        min_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(2),
        max_delivery_attempts: 5,
    };
    let s = setup(&project, &app, policy, false, AUDIENCE).await;
    let id = s.rest.publish("events", br#"{"n":1}"#, &attrs(), None).await.unwrap();

    assert!(eventually(20, || recorder.accepted("/pubsub/events").len() >= 3).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = recorder.accepted("/pubsub/events");
    assert_eq!(
        attempts(&seen),
        [(id.clone(), 1), (id.clone(), 2), (id.clone(), 3)],
        "acked after 3"
    );
    let first_gap = seen[1].at - seen[0].at;
    let second_gap = seen[2].at - seen[1].at;
    assert!(first_gap >= Duration::from_millis(950), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(1950), "backoff doubles: {second_gap:?}");
    // The envelope is the production one: subscription name, data, attributes.
    let ev = gcp::pubsub::parse_push::<serde_json::Value>(&seen[0].body).unwrap();
    assert_eq!(ev.subscription, format!("projects/{project}/subscriptions/events--fn"));
    assert_eq!(ev.data["n"], 1);
    assert_eq!(ev.attributes["schema"], "events");
    let dead = testkit::pubsub::pull(
        testkit::emulators::pubsub().await,
        &project,
        "events-dead-letter--devstack",
        10,
    )
    .await;
    assert!(dead.is_empty());
    // Acknowledged: nothing comes back from the source subscription either.
    s.cancel.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.rest.pull("events--fn", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_message_that_always_fails_is_dead_lettered_after_max_attempts() {
    let project = testkit::project_id();
    let keys = LocalKeys::start().await;
    let recorder = Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, _| {
        StatusCode::INTERNAL_SERVER_ERROR
    });
    let app = testkit::spawn_app(recorder.router()).await;
    let policy = RetryPolicy {
        min_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        max_delivery_attempts: 5,
    };
    let s = setup(&project, &app, policy, false, AUDIENCE).await;
    let id = s.rest.publish("events", b"raw bytes, not JSON", &attrs(), None).await.unwrap();

    let host = testkit::emulators::pubsub().await;
    let dead = testkit::pubsub::pull_at_least(
        host,
        &project,
        "events-dead-letter--devstack",
        1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].data, b"raw bytes, not JSON");
    assert_eq!(dead[0].attributes["schema"], "events");
    assert_eq!(dead[0].attributes[dead_letter_attributes::DELIVERY_COUNT], "5");
    assert_eq!(dead[0].attributes[dead_letter_attributes::SUBSCRIPTION], "events--fn");
    let seen = recorder.accepted("/pubsub/events");
    let expected: Vec<(String, u32)> = (1..=5).map(|a| (id.clone(), a)).collect();
    assert_eq!(attempts(&seen), expected);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recorder.accepted("/pubsub/events").len(), 5, "no delivery after dead-lettering");
    s.cancel.cancel();
}

#[tokio::test]
async fn pushes_carry_an_oidc_token_the_function_verifies_and_a_wrong_audience_is_refused() {
    let project = testkit::project_id();
    let keys = LocalKeys::start().await;
    let recorder = Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, _| StatusCode::OK);
    let app = testkit::spawn_app(recorder.router()).await;

    // Without a token the function refuses: push auth is really on.
    let anonymous = app.client.post(app.url("/pubsub/events")).body("{}").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // A route misconfigured with another audience: every push is refused, then dead-lettered.
    let policy = RetryPolicy {
        min_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        max_delivery_attempts: 5,
    };
    let s = setup(&project, &app, policy, false, "http://someone-else.local").await;
    s.rest.publish("events", b"{}", &attrs(), None).await.unwrap();
    let host = testkit::emulators::pubsub().await;
    let dead = testkit::pubsub::pull_at_least(
        host,
        &project,
        "events-dead-letter--devstack",
        1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(dead.len(), 1);
    assert!(recorder.accepted("/pubsub/events").is_empty());
    let refused = recorder.seen().iter().filter(|x| x.status == 401).count();
    assert_eq!(refused, 1 + 5, "the anonymous call and five pushes");
    s.cancel.cancel();

    // The correctly configured route is accepted, with the push user agent and a Bearer token.
    let project = testkit::project_id();
    let recorder = Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, _| StatusCode::OK);
    let app = testkit::spawn_app(recorder.router()).await;
    let s = setup(&project, &app, policy, false, AUDIENCE).await;
    s.rest.publish("events", b"{}", &attrs(), None).await.unwrap();
    assert!(eventually(10, || recorder.accepted("/pubsub/events").len() == 1).await);
    let seen = &recorder.accepted("/pubsub/events")[0];
    assert!(seen.headers["authorization"].to_str().unwrap().starts_with("Bearer "));
    assert!(seen.headers["user-agent"].to_str().unwrap().starts_with("APIs-Google"));
    assert_eq!(seen.headers["content-type"], "application/json");
    let _ = s.route;
    s.cancel.cancel();
}

#[tokio::test]
async fn one_outstanding_message_per_ordering_key_in_publish_order() {
    let project = testkit::project_id();
    let keys = LocalKeys::start().await;
    // The first delivery of "a1" fails; everything else succeeds, slowly, to expose overlap.
    let recorder = Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, body, _| {
        let ev = parse_push_bytes(body).unwrap();
        if ev.data.as_ref() == b"a1" && ev.delivery_attempt == Some(1) {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    })
    .with_delay(Duration::from_millis(100));
    let app = testkit::spawn_app(recorder.router()).await;
    let policy = RetryPolicy {
        min_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(1),
        max_delivery_attempts: 5,
    };
    let s = setup(&project, &app, policy, true, AUDIENCE).await;
    for data in ["a1", "a2", "a3"] {
        s.rest.publish("events", data.as_bytes(), &attrs(), Some("a")).await.unwrap();
    }
    assert!(eventually(20, || recorder.accepted("/pubsub/events").len() >= 4).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = recorder.accepted("/pubsub/events");
    let order: Vec<(String, u32)> = seen
        .iter()
        .map(|x| {
            let ev = parse_push_bytes(&x.body).unwrap();
            assert_eq!(ev.ordering_key.as_deref(), Some("a"));
            (String::from_utf8(ev.data.to_vec()).unwrap(), ev.delivery_attempt.unwrap())
        })
        .collect();
    assert_eq!(order, [("a1".into(), 1), ("a1".into(), 2), ("a2".into(), 1), ("a3".into(), 1)]);
    // Never two at once: each request started after the previous answer (100 ms handler).
    for pair in seen.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(100), "overlapping deliveries");
    }
    s.cancel.cancel();
}
