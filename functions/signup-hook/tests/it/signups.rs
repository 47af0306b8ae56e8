//! The `user-signups` announcement: what arrives on the topic, and that a Pub/Sub outage never
//! blocks or fails a sign-up.

use std::time::{Duration, Instant};

use domain::tenancy::personal_tenant_id;
use serde_json::json;
use signup_hook::BEFORE_CREATE_PATH;

use crate::helpers::{Setup, claims_of, dead_host, start};

#[tokio::test]
async fn the_new_user_is_announced_on_user_signups() {
    let hook = start(Setup::default()).await;
    let claims = hook.create_claims("uid-new", "New.User@Example.com", true);
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &claims).await;
    claims_of(status, &body);

    let received = testkit::pubsub::pull_at_least(
        &hook.pubsub_host,
        &hook.project,
        crate::helpers::SUBSCRIPTION,
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(received.len(), 1);
    let message: serde_json::Value = serde_json::from_slice(&received[0].data).unwrap();
    assert_eq!(
        message,
        json!({
            "v": 1,
            "uid": "uid-new",
            "email": "New.User@Example.com",
            "tenant_id": personal_tenant_id("uid-new"),
            "role": "owner",
            "tenant_is_new": true,
            "event_id": claims["event_id"],
        })
    );
    assert_eq!(received[0].attributes.get("schema").map(String::as_str), Some("user-signups"));
    assert_eq!(received[0].attributes.get("schema_version").map(String::as_str), Some("1"));
    // The onboarding side decodes it with the shared type.
    let typed: domain::messages::UserSignup = serde_json::from_slice(&received[0].data).unwrap();
    assert_eq!(typed.uid, "uid-new");
}

#[tokio::test]
async fn a_pubsub_outage_never_blocks_a_sign_up() {
    let hook = start(Setup {
        pubsub_host: Some(dead_host()),
        ..Setup::default().var("HEARTH_SIGNUP_PUBLISH_DEADLINE_MS", "300")
    })
    .await;
    for uid in ["uid-1", "uid-2"] {
        let started = Instant::now();
        let claims = hook.create_claims(uid, &format!("{uid}@example.com"), false);
        let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &claims).await;
        let took = started.elapsed();
        assert_eq!(
            claims_of(status, &body),
            json!({"tenant_id": personal_tenant_id(uid), "role": "owner"})
        );
        assert!(took < Duration::from_secs(2), "answered in {took:?}, deadline 300 ms");
    }
}

#[tokio::test]
async fn the_default_publish_deadline_still_answers_well_within_the_providers_7_seconds() {
    let hook = start(Setup { pubsub_host: Some(dead_host()), ..Setup::default() }).await;
    assert_eq!(hook.config.publish_deadline, signup_hook::DEFAULT_PUBLISH_DEADLINE);
    let started = Instant::now();
    let claims = hook.create_claims("uid-1", "a@example.com", false);
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &claims).await;
    claims_of(status, &body);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "answered in {took:?}");
}
