//! initiatePayment's Idempotency-Key semantics: 400, replay, 409, 422, per-user scope, expiry;
//! and provider failures (retried 5xx, never-retried 4xx). The same semantics with the key in
//! `data.idempotencyKey`, as Firebase SDK callers send it (they cannot set headers), and the
//! `replayed` flag in the result.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Harness, call_at, error_status};

fn pay(reservation: &str, provider: &str) -> Value {
    json!({"reservationIds": [reservation], "provider": provider})
}

/// `pay` with the key in data, as `httpsCallable` sends it.
fn pay_sdk(reservation: &str, provider: &str, key: &str) -> Value {
    json!({"reservationIds": [reservation], "provider": provider, "idempotencyKey": key})
}

#[tokio::test]
async fn first_runs_a_completed_retry_replays_and_another_payload_is_422() {
    let h = Harness::start(&[]).await;
    h.product("kettle", 10).await;
    let r = h.reserve("ada", "kettle", 1).await;

    let missing = h.call("ada", "initiatePayment", pay(&r, "stripe")).await;
    assert_eq!(missing.status(), 400);
    assert_eq!(error_status(missing).await, "INVALID_ARGUMENT");

    let first = h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "key-1").await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert!(first["result"]["clientSecret"].as_str().unwrap().starts_with("pi_"));
    assert_eq!(first["result"]["amountMinor"], 1250);
    assert_eq!(h.fake.stripe_calls(), 1);

    assert_eq!(first["result"]["replayed"], false);
    let replay = h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "key-1").await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let mut replayed = replay.json::<Value>().await.unwrap();
    assert_eq!(replayed["result"]["replayed"], true, "the body says it is a replay");
    replayed["result"]["replayed"] = json!(false);
    assert_eq!(replayed, first, "otherwise the first answer as it was");
    assert_eq!(h.fake.stripe_calls(), 1, "a replay does not call the provider");

    let other = h.call_with_key("ada", "initiatePayment", pay(&r, "pesapal"), "key-1").await;
    assert_eq!(other.status(), 422);

    // Scoped per user: bob's key-1 is his own.
    let rb = h.reserve("bob", "kettle", 1).await;
    let bob = h.call_with_key("bob", "initiatePayment", pay(&rb, "pesapal"), "key-1").await;
    assert_eq!(bob.status(), 200);
    let bob: Value = bob.json().await.unwrap();
    assert_ne!(bob["result"]["orderId"], first["result"]["orderId"]);
    assert!(bob["result"]["redirectUrl"].as_str().unwrap().contains("OrderTrackingId"));
}

#[tokio::test]
async fn a_retry_while_the_first_request_runs_gets_409() {
    let h = Harness::start(&[]).await;
    h.product("lamp", 10).await;
    let r = h.reserve("ada", "lamp", 1).await;
    h.fake.set_delay(Duration::from_millis(1500));
    let (first, second) =
        tokio::join!(h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "slow"), async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "slow").await
        });
    assert_eq!(second.status(), 409);
    assert_eq!(error_status(second).await, "ABORTED");
    assert_eq!(first.status(), 200);
    h.fake.set_delay(Duration::ZERO);
    let replay = h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "slow").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(h.fake.intents().len(), 1);
}

#[tokio::test]
async fn keys_expire_after_the_retention() {
    let h = Harness::start(&[("HEARTH_IDEMPOTENCY_RETENTION_SECS", "1")]).await;
    h.product("cup", 10).await;
    let r = h.reserve("ada", "cup", 1).await;
    let first = h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "short").await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let after = h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "short").await;
    assert_eq!(after.status(), 200);
    assert!(after.headers().get("idempotent-replayed").is_none(), "the expired key ran again");
    // Running again is harmless: same order, same payment, same PaymentIntent.
    let after: Value = after.json().await.unwrap();
    assert_eq!(after["result"]["orderId"], first["result"]["orderId"]);
    assert_eq!(after["result"]["providerPaymentId"], first["result"]["providerPaymentId"]);
    assert_eq!(h.fake.intents().len(), 1);
}

#[tokio::test]
async fn provider_failures_release_the_key_and_4xx_is_not_retried() {
    let h = Harness::start(&[]).await;
    h.product("bowl", 10).await;
    let r = h.reserve("ada", "bowl", 1).await;
    h.fake.fail_next(&[500, 502, 503]);
    let down = h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "k").await;
    assert_eq!(down.status(), 503);
    assert_eq!(h.fake.stripe_calls(), 3, "three attempts");
    let retried = h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "k").await;
    assert_eq!(retried.status(), 200, "the key was released, the retry runs");
    assert!(retried.headers().get("idempotent-replayed").is_none());

    let r2 = h.reserve("ada", "bowl", 1).await;
    h.fake.fail_next(&[402]);
    let calls = h.fake.stripe_calls();
    let refused = h.call_with_key("ada", "initiatePayment", pay(&r2, "stripe"), "k2").await;
    assert_eq!(refused.status(), 400);
    assert_eq!(error_status(refused).await, "FAILED_PRECONDITION");
    assert_eq!(h.fake.stripe_calls(), calls + 1, "a 4xx is not retried");
}

/// The header test above, with the key in `data.idempotencyKey`: the first request runs, a
/// completed retry replays (`replayed: true`, no provider call), another payload is 422, keys
/// are per user; and the two carriers are one key: a header retry of a data-key request replays.
#[tokio::test]
async fn the_key_in_data_has_the_headers_semantics_and_scope() {
    let h = Harness::start(&[]).await;
    h.product("kettle", 10).await;
    let r = h.reserve("ada", "kettle", 1).await;

    let first = h.call("ada", "initiatePayment", pay_sdk(&r, "stripe", "sdk-1")).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["result"]["replayed"], false);
    assert!(first["result"]["clientSecret"].as_str().unwrap().starts_with("pi_"));
    assert_eq!(h.fake.stripe_calls(), 1);

    let replay = h.call("ada", "initiatePayment", pay_sdk(&r, "stripe", "sdk-1")).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["result"]["replayed"], true);
    assert_eq!(replay["result"]["orderId"], first["result"]["orderId"]);
    assert_eq!(replay["result"]["clientSecret"], first["result"]["clientSecret"]);
    assert_eq!(h.fake.stripe_calls(), 1, "a replay does not call the provider");

    // The same key in the header: the same key in the same scope, the same payload.
    let by_header = h.call_with_key("ada", "initiatePayment", pay(&r, "stripe"), "sdk-1").await;
    assert_eq!(by_header.headers()["idempotent-replayed"], "true");
    let by_header: Value = by_header.json().await.unwrap();
    assert_eq!(by_header["result"]["orderId"], first["result"]["orderId"]);
    // Both carriers, agreeing: still the one key.
    let both = call_at(
        &h.app,
        &h.token("ada"),
        "initiatePayment",
        pay_sdk(&r, "stripe", "sdk-1"),
        Some("sdk-1"),
    )
    .await;
    assert_eq!(both.status(), 200);
    assert_eq!(both.json::<Value>().await.unwrap()["result"]["replayed"], true);

    let other = h.call("ada", "initiatePayment", pay_sdk(&r, "pesapal", "sdk-1")).await;
    assert_eq!(other.status(), 422);
    assert_eq!(error_status(other).await, "INVALID_ARGUMENT");

    // Scoped per user: bob's sdk-1 is his own.
    let rb = h.reserve("bob", "kettle", 1).await;
    let bob = h.call("bob", "initiatePayment", pay_sdk(&rb, "pesapal", "sdk-1")).await;
    assert_eq!(bob.status(), 200);
    let bob: Value = bob.json().await.unwrap();
    assert_eq!(bob["result"]["replayed"], false);
    assert_ne!(bob["result"]["orderId"], first["result"]["orderId"]);
    assert_eq!(h.fake.stripe_calls(), 1);
}

/// Header and data naming two keys is refused before anything runs: no claim, no provider call.
#[tokio::test]
async fn a_header_and_a_data_key_that_differ_are_refused() {
    let h = Harness::start(&[]).await;
    h.product("jug", 10).await;
    let r = h.reserve("ada", "jug", 1).await;
    let token = h.token("ada");
    let mixed =
        call_at(&h.app, &token, "initiatePayment", pay_sdk(&r, "stripe", "k-data"), Some("k-hdr"))
            .await;
    assert_eq!(mixed.status(), 400);
    assert_eq!(error_status(mixed).await, "INVALID_ARGUMENT");
    assert_eq!(h.fake.stripe_calls(), 0);
    // Neither key was claimed: each runs fresh afterwards.
    for key in ["k-data", "k-hdr"] {
        let r = h.reserve("ada", "jug", 1).await;
        let run = h.call("ada", "initiatePayment", pay_sdk(&r, "stripe", key)).await;
        assert_eq!(run.status(), 200, "{key}");
        assert_eq!(run.json::<Value>().await.unwrap()["result"]["replayed"], false, "{key}");
    }
}

/// A retry while the first runs gets 409 with the data key too; the completed key then replays.
#[tokio::test]
async fn a_data_key_retry_while_the_first_runs_gets_409() {
    let h = Harness::start(&[]).await;
    h.product("lamp", 10).await;
    let r = h.reserve("ada", "lamp", 1).await;
    h.fake.set_delay(Duration::from_millis(1500));
    let (first, second) =
        tokio::join!(h.call("ada", "initiatePayment", pay_sdk(&r, "stripe", "slow")), async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            h.call("ada", "initiatePayment", pay_sdk(&r, "stripe", "slow")).await
        });
    assert_eq!(second.status(), 409);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["status"], "ABORTED");
    assert_eq!(first.status(), 200);
    h.fake.set_delay(Duration::ZERO);
    let replay = h.call("ada", "initiatePayment", pay_sdk(&r, "stripe", "slow")).await;
    assert_eq!(replay.json::<Value>().await.unwrap()["result"]["replayed"], true);
    assert_eq!(h.fake.intents().len(), 1);
}

/// A failed first request releases a data key as it does a header key: the retry runs.
#[tokio::test]
async fn a_failed_data_key_request_releases_the_key() {
    let h = Harness::start(&[]).await;
    h.product("bowl", 10).await;
    let r = h.reserve("ada", "bowl", 1).await;
    h.fake.fail_next(&[500, 502, 503]);
    let down = h.call("ada", "initiatePayment", pay_sdk(&r, "stripe", "k")).await;
    assert_eq!(down.status(), 503);
    let retried = h.call("ada", "initiatePayment", pay_sdk(&r, "stripe", "k")).await;
    assert_eq!(retried.status(), 200, "the key was released, the retry runs");
    assert_eq!(retried.json::<Value>().await.unwrap()["result"]["replayed"], false);
}
