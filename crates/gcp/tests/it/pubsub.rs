//! The Pub/Sub push envelope: typed parsing, rejections, and a real push from the official
//! Pub/Sub emulator.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use gcp::PublicError;
use gcp::callable::Code;
use gcp::pubsub::{PushError, PushEvent, build_push_envelope, parse_push, parse_push_bytes};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::fixture;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserSignup {
    pub(crate) uid: String,
    pub(crate) email: String,
    pub(crate) tenant_id: Option<String>,
}

fn envelope_with_data(data: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "message": {"data": data, "messageId": "1", "publishTime": "2024-01-01T00:00:00Z"},
        "subscription": "projects/p/subscriptions/s"
    }))
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn the_captured_envelope_parses_into_the_typed_event() {
    let event = parse_push::<UserSignup>(&fixture("pubsub-push-both-spellings.json")).unwrap();
    assert_eq!(event.message_id, "2070443601311540");
    assert_eq!(event.publish_time.to_rfc3339(), "2021-02-26T19:13:55.749+00:00");
    assert_eq!(event.attributes["type"], "user.signup");
    assert_eq!(event.ordering_key.as_deref(), Some("user-123"));
    assert_eq!(event.delivery_attempt, Some(3));
    assert_eq!(event.subscription, "projects/hearth-demo/subscriptions/onboarding-user-signups");
    assert_eq!(
        event.data,
        UserSignup {
            uid: "user-123".into(),
            email: "ada@example.com".into(),
            tenant_id: Some("t-9".into())
        }
    );
    let snake = parse_push::<UserSignup>(&fixture("pubsub-push-snake-case.json")).unwrap();
    assert_eq!(snake.message_id, "2070443601311541");
    assert_eq!(snake.delivery_attempt, None);
    assert!(snake.attributes.is_empty());
}

#[test]
fn attributes_only_messages_reach_optional_and_unit_types() {
    let body = fixture("pubsub-push-attributes-only.json");
    let event = parse_push::<Option<UserSignup>>(&body).unwrap();
    assert_eq!(event.data, None);
    assert_eq!(event.attributes["kind"], "ping");
    let unit: PushEvent<()> = parse_push(&body).unwrap();
    assert_eq!(unit.message_id, "2070443601311542");
    assert!(parse_push_bytes(&body).unwrap().data.is_empty());
    let err = parse_push::<UserSignup>(&body).unwrap_err();
    assert!(matches!(err, PushError::MissingData(_)), "{err}");
}

#[test]
fn malformed_envelopes_get_distinct_errors() {
    assert!(matches!(parse_push::<Value>(b"{not json"), Err(PushError::NotJson(_))));
    assert!(matches!(
        parse_push::<Value>(br#"{"subscription":"s"}"#),
        Err(PushError::Malformed(_))
    ));
    assert!(matches!(
        parse_push::<Value>(br#"{"message":"x","subscription":"s"}"#),
        Err(PushError::Malformed(_))
    ));
    let no_id = json!({"message": {"data": "e30=", "publishTime": "2024-01-01T00:00:00Z"}, "subscription": "s"});
    assert!(matches!(
        parse_push::<Value>(no_id.to_string().as_bytes()),
        Err(PushError::MissingField("messageId"))
    ));
    let no_time = json!({"message": {"data": "e30=", "messageId": "1"}, "subscription": "s"});
    assert!(matches!(
        parse_push::<Value>(no_time.to_string().as_bytes()),
        Err(PushError::MissingField("publishTime"))
    ));
    let bad_time = json!({"message": {"data": "e30=", "messageId": "1", "publishTime": "yesterday"}, "subscription": "s"});
    assert!(matches!(
        parse_push::<Value>(bad_time.to_string().as_bytes()),
        Err(PushError::BadPublishTime)
    ));
    let no_sub = json!({"message": {"data": "e30=", "messageId": "1", "publishTime": "2024-01-01T00:00:00Z"}});
    assert!(matches!(
        parse_push::<Value>(no_sub.to_string().as_bytes()),
        Err(PushError::MissingField("subscription"))
    ));
    let empty = json!({"message": {"messageId": "1", "publishTime": "2024-01-01T00:00:00Z"}, "subscription": "s"});
    assert!(matches!(
        parse_push::<Value>(empty.to_string().as_bytes()),
        Err(PushError::EmptyMessage)
    ));
}

#[test]
fn data_errors_are_told_apart() {
    for bad in ["not base64!", "e30=e30=", "%%%%", "eyJ1aWQi-_"] {
        let err = parse_push::<Value>(&envelope_with_data(bad)).unwrap_err();
        assert!(matches!(err, PushError::BadBase64(_)), "{bad}: {err}");
        assert_eq!(err.public_message(), "push message data is not base64");
    }
    let err = parse_push::<Value>(&envelope_with_data(&b64(b"plain text"))).unwrap_err();
    assert!(matches!(err, PushError::DataNotJson(_)));
    let err = parse_push::<UserSignup>(&envelope_with_data(&b64(br#"{"uid":1}"#))).unwrap_err();
    assert!(matches!(err, PushError::DataShape(_)));
    // Raw bytes are available when the payload is not JSON.
    assert_eq!(
        &parse_push_bytes(&envelope_with_data(&b64(b"plain text"))).unwrap().data[..],
        b"plain text"
    );
}

#[test]
fn oversized_bodies_are_refused_before_parsing() {
    let body = vec![b'{'; gcp::pubsub::MAX_ENVELOPE_BYTES + 1];
    let err = parse_push::<Value>(&body).unwrap_err();
    assert!(matches!(err, PushError::TooLarge));
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(!err.is_retryable());
    // A 10 MB message (the Pub/Sub limit) still fits.
    let data = vec![b'x'; gcp::pubsub::MAX_DATA_BYTES];
    let event = parse_push_bytes(&envelope_with_data(&b64(&data))).unwrap();
    assert_eq!(event.data.len(), gcp::pubsub::MAX_DATA_BYTES);
    let err =
        parse_push_bytes(&envelope_with_data(&b64(&[data.as_slice(), b"y"].concat()))).unwrap_err();
    assert!(matches!(err, PushError::DataTooLarge));
}

#[test]
fn built_envelopes_parse_back() {
    let event = PushEvent {
        message_id: "42".to_owned(),
        publish_time: chrono::DateTime::parse_from_rfc3339("2024-02-03T04:05:06.123456789Z")
            .unwrap()
            .into(),
        attributes: BTreeMap::from([("a".to_owned(), "1".to_owned())]),
        ordering_key: Some("k".to_owned()),
        delivery_attempt: Some(2),
        subscription: "projects/p/subscriptions/s".to_owned(),
        data: UserSignup { uid: "u".into(), email: "e@x".into(), tenant_id: None },
    };
    let body = build_push_envelope(&event).unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["message"]["messageId"], json["message"]["message_id"]);
    assert_eq!(json["message"]["publishTime"], "2024-02-03T04:05:06.123456789Z");
    assert_eq!(parse_push::<UserSignup>(&body).unwrap(), event);
    let attributes_only = event.map(|_| None::<UserSignup>);
    let body = build_push_envelope(&attributes_only).unwrap();
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["message"].get("data").is_none());
    assert_eq!(parse_push::<Option<UserSignup>>(&body).unwrap(), attributes_only);
}

async fn receive(State(tx): State<mpsc::UnboundedSender<Bytes>>, body: Bytes) -> &'static str {
    let _ = tx.send(body);
    "ok"
}

#[tokio::test]
async fn the_pubsub_emulator_push_envelope_parses() {
    let host = testkit::emulators::pubsub().await;
    let project = testkit::project_id();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = testkit::spawn_app(Router::new().route("/push", post(receive)).with_state(tx)).await;
    testkit::pubsub::create_topic(host, &project, "user-signups").await;
    testkit::pubsub::create_subscription(
        host,
        &project,
        "onboarding-push",
        json!({
            "topic": format!("projects/{project}/topics/user-signups"),
            "pushConfig": {"pushEndpoint": app.url("/push")}
        }),
    )
    .await;
    let signup = UserSignup {
        uid: "u-1".into(),
        email: "ada@example.com".into(),
        tenant_id: Some("t-1".into()),
    };
    let attributes = BTreeMap::from([("schema".to_owned(), "v1".to_owned())]);
    let id = testkit::pubsub::publish(
        host,
        &project,
        "user-signups",
        &serde_json::to_vec(&signup).unwrap(),
        &attributes,
    )
    .await;

    let body = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the emulator pushes within 30 s")
        .expect("a push body");
    let event = parse_push::<UserSignup>(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    assert_eq!(event.message_id, id);
    assert_eq!(event.data, signup);
    assert_eq!(event.attributes, attributes);
    assert_eq!(event.subscription, format!("projects/{project}/subscriptions/onboarding-push"));
    assert!((chrono::Utc::now() - event.publish_time).num_seconds().abs() < 120);
}
