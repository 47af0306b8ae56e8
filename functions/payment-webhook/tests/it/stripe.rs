//! `POST /stripe`: accepted, forged, stale, rotated, replayed, malformed, oversized, ignored.

use domain::messages::{PaymentEventKind, PaymentProvider};
use serde_json::Value;

use crate::{CURRENT, Harness, NEXT, RETIRED, decode, stripe_event};

#[tokio::test]
async fn a_signed_event_is_published_once_with_the_order_as_ordering_key() {
    let h = Harness::start().await;
    let event = stripe_event("evt_ok_1", "payment_intent.succeeded", "ord_100");
    let response = h.stripe_signed(&event, CURRENT).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["received"], true);
    let got = h.published(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ordering_key.as_deref(), Some("ord_100"));
    assert_eq!(got[0].attributes["provider"], "stripe");
    assert_eq!(got[0].attributes["schema"], "payment-events");
    let published = decode(&got[0]);
    assert_eq!(published.provider, PaymentProvider::Stripe);
    assert_eq!(published.kind, PaymentEventKind::Succeeded);
    assert_eq!(published.payment_id, "pi_ord_100");
    assert_eq!(published.amount_minor, Some(2500));
}

#[tokio::test]
async fn a_forged_signature_is_refused_and_publishes_nothing() {
    let h = Harness::start().await;
    let event = stripe_event("evt_forged", "payment_intent.succeeded", "ord_1");
    let response = h.stripe_signed(&event, "whsec_attacker").await;
    assert_eq!(response.status(), 400);
    // A valid signature over another body, replayed with a changed body.
    let bytes = serde_json::to_vec(&event).unwrap();
    let header = providers::stripe::sign(CURRENT, chrono::Utc::now().timestamp(), &bytes);
    let mut tampered = event.clone();
    tampered["data"]["object"]["amount"] = 1.into();
    let response = h.stripe(&serde_json::to_vec(&tampered).unwrap(), Some(&header)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(h.stripe(&bytes, None).await.status(), 400);
    h.assert_nothing_else_published().await;
}

#[tokio::test]
async fn a_stale_timestamp_is_refused_and_publishes_nothing() {
    let h = Harness::start().await;
    let bytes = serde_json::to_vec(&stripe_event("evt_stale", "payment_intent.succeeded", "ord_1"))
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    for t in [now - 301, now + 301] {
        let header = providers::stripe::sign(CURRENT, t, &bytes);
        assert_eq!(h.stripe(&bytes, Some(&header)).await.status(), 400);
    }
    // Inside the tolerance it goes through.
    let header = providers::stripe::sign(CURRENT, now - 250, &bytes);
    assert_eq!(h.stripe(&bytes, Some(&header)).await.status(), 200);
    let got = h.published(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(decode(&got[0]).provider_event_id, "evt_stale");
}

#[tokio::test]
async fn every_active_secret_verifies_and_a_retired_one_does_not() {
    let h = Harness::start().await;
    let retired = stripe_event("evt_rot_0", "payment_intent.succeeded", "ord_r0");
    assert_eq!(h.stripe_signed(&retired, RETIRED).await.status(), 400);
    let next = stripe_event("evt_rot_1", "payment_intent.succeeded", "ord_r1");
    assert_eq!(h.stripe_signed(&next, NEXT).await.status(), 200);
    let got = h.published(1).await;
    assert_eq!(got.len(), 1, "only the event signed with an active secret");
    assert_eq!(decode(&got[0]).provider_event_id, "evt_rot_1");
}

#[tokio::test]
async fn a_replayed_event_id_within_the_lease_publishes_nothing_more() {
    let h = Harness::start().await;
    let event = stripe_event("evt_replay", "payment_intent.payment_failed", "ord_7");
    assert_eq!(h.stripe_signed(&event, CURRENT).await.status(), 200);
    for _ in 0..3 {
        // Stripe's retries carry a fresh signature over the same event. Within the dedupe
        // lease the id is "in flight": 409, Stripe retries later (`tests/it/dedupe.rs` shows
        // what happens after the lease).
        let response = h.stripe_signed(&event, CURRENT).await;
        assert_eq!(response.status(), 409);
    }
    let got = h.published(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(decode(&got[0]).kind, PaymentEventKind::Failed);
    // Same id, different content: refused.
    let other = stripe_event("evt_replay", "payment_intent.succeeded", "ord_7");
    assert_eq!(h.stripe_signed(&other, CURRENT).await.status(), 400);
    h.assert_nothing_else_published().await;
}

#[tokio::test]
async fn a_malformed_body_with_a_valid_signature_publishes_nothing() {
    let h = Harness::start().await;
    let now = chrono::Utc::now().timestamp();
    for body in [&b"{not json"[..], br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#, b""] {
        let header = providers::stripe::sign(CURRENT, now, body);
        assert_eq!(h.stripe(body, Some(&header)).await.status(), 400, "{body:?}");
    }
    for header in ["t=abc,v1=00", "v1=deadbeef", "t=1", "nonsense"] {
        assert_eq!(h.stripe(b"{}", Some(header)).await.status(), 400, "{header}");
    }
    h.assert_nothing_else_published().await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_and_publishes_nothing() {
    let h = Harness::start().await;
    let mut event = stripe_event("evt_big", "payment_intent.succeeded", "ord_big");
    event["data"]["object"]["description"] = "x".repeat(payment_webhook::MAX_BODY_BYTES).into();
    let response = h.stripe_signed(&event, CURRENT).await;
    assert_eq!(response.status(), 413);
    h.assert_nothing_else_published().await;
}

#[tokio::test]
async fn uninteresting_types_and_foreign_payments_are_acknowledged_and_ignored() {
    let h = Harness::start().await;
    let mut customer = stripe_event("evt_cus", "customer.created", "ord_x");
    customer["data"]["object"] = serde_json::json!({"id": "cus_1", "object": "customer"});
    let response = h.stripe_signed(&customer, CURRENT).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["ignored"], true);
    let mut foreign = stripe_event("evt_foreign", "payment_intent.succeeded", "ord_x");
    foreign["data"]["object"]["metadata"] = serde_json::json!({});
    assert_eq!(h.stripe_signed(&foreign, CURRENT).await.status(), 200);
    h.assert_nothing_else_published().await;
}
