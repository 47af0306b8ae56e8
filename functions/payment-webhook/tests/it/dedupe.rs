//! The webhook's dedupe is the ledger's leased mode (`store::ledger::Ledger::run_leased`): one
//! create per event; a resend within the lease is "retry later", one after it publishes again
//! (the processor dedupes by event id); a failed publish releases the claim; a crash between
//! the claim and the publish loses nothing.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::{CURRENT, Harness, decode, stripe_event};

/// Short enough to wait out in a test, longer than the publish deadline.
const LEASE_MS: u64 = 1500;

async fn short_lease() -> Harness {
    Harness::start_with(&[
        ("HEARTH_WEBHOOK_DEDUPE_LEASE_MS", "1500"),
        ("HEARTH_WEBHOOK_PUBLISH_DEADLINE_MS", "700"),
    ])
    .await
}

#[tokio::test]
async fn a_resend_after_the_lease_is_published_again_for_the_processor_to_dedupe() {
    let h = short_lease().await;
    let event = stripe_event("evt_twice", "payment_intent.succeeded", "ord_twice");
    assert_eq!(h.stripe_signed(&event, CURRENT).await.status(), 200);
    assert_eq!(h.stripe_signed(&event, CURRENT).await.status(), 409, "within the lease");
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 300)).await;
    let late = h.stripe_signed(&event, CURRENT).await;
    assert_eq!(late.status(), 200);
    assert_eq!(late.json::<Value>().await.unwrap()["received"], true);
    let got = h.published(2).await;
    let ids: Vec<String> = got.iter().map(|m| decode(m).provider_event_id).collect();
    assert_eq!(ids, ["evt_twice", "evt_twice"], "the first delivery and the one after the lease");
}

/// What the webhook fingerprints (its serde form is pinned by a unit test in `forward.rs`).
#[derive(Serialize)]
struct Fingerprint<'a> {
    kind: &'a str,
    provider_type: &'a str,
    order_id: &'a str,
    payment_id: &'a str,
}

#[tokio::test]
async fn a_crash_between_the_claim_and_the_publish_loses_nothing() {
    let h = short_lease().await;
    let event = stripe_event("evt_crash", "payment_intent.succeeded", "ord_crash");
    // An instance claimed the id, then died before publishing (and before answering Stripe).
    let fingerprint = store::ledger::fingerprint(&Fingerprint {
        kind: "succeeded",
        provider_type: "payment_intent.succeeded",
        order_id: "ord_crash",
        payment_id: "pi_ord_crash",
    });
    let lease = Duration::from_millis(LEASE_MS);
    let ledger = store::Ledger::new(&h.db);
    let claim = ledger.claim(payment_webhook::STRIPE_SCOPE, "evt_crash", &fingerprint, lease);
    assert!(matches!(claim.await.unwrap(), store::Claim::Fresh(_)));
    // Stripe retries: within the lease it is told to retry again, and nothing is published.
    assert_eq!(h.stripe_signed(&event, CURRENT).await.status(), 409);
    let early = testkit::pubsub::pull_at_least(
        h.pubsub,
        &h.project,
        "payment-events-test",
        1,
        Duration::from_millis(300),
    )
    .await;
    assert!(early.is_empty(), "nothing published within the lease: {early:?}");
    // After the lease, the retry publishes.
    tokio::time::sleep(lease).await;
    assert_eq!(h.stripe_signed(&event, CURRENT).await.status(), 200);
    let got = h.published(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(decode(&got[0]).provider_event_id, "evt_crash");
}

#[tokio::test]
async fn a_failed_publish_releases_the_claim_so_the_retry_publishes_at_once() {
    // Pub/Sub unreachable for this instance: the publish times out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap().to_string();
    drop(listener);
    let down = Harness::start_with(&[
        ("PUBSUB_EMULATOR_HOST", dead.as_str()),
        ("HEARTH_WEBHOOK_PUBLISH_DEADLINE_MS", "500"),
    ])
    .await;
    let event = stripe_event("evt_retry", "payment_intent.succeeded", "ord_retry");
    assert_eq!(down.stripe_signed(&event, CURRENT).await.status(), 503);
    // Stripe retries at once, reaching an instance whose Pub/Sub works (same Firestore): the
    // claim was released, so it publishes, well within the 30 s lease.
    let mut vars = down.vars.clone();
    vars.insert("PUBSUB_EMULATOR_HOST".to_owned(), down.pubsub.to_owned());
    let env = runtime::Env::from_map(vars);
    let built = payment_webhook::build("payment-webhook", &env).await.unwrap();
    let up = testkit::spawn_app(built.router).await;
    let bytes = serde_json::to_vec(&event).unwrap();
    let header = providers::stripe::sign(CURRENT, chrono::Utc::now().timestamp(), &bytes);
    let retry = up
        .client
        .post(up.url("/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    let got = down.published(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(decode(&got[0]).provider_event_id, "evt_retry");
}
