//! Rate limits per user and callable hold across instances: 429 with Retry-After.

use serde_json::{Value, json};

use super::{Harness, call_at, error_status};

#[tokio::test]
async fn five_payment_attempts_per_fifteen_minutes_across_instances() {
    let h = Harness::start(&[]).await;
    let second = h.another_instance().await;
    let token = h.token("ada");
    testkit::early_in_window(900, 60).await;
    for i in 0..5 {
        let app = if i % 2 == 0 { &h.app } else { &second };
        let data = json!({"reservationIds": [format!("res_missing_{i}")], "provider": "stripe"});
        let response = call_at(app, &token, "initiatePayment", data, Some(&format!("k{i}"))).await;
        assert_eq!(response.status(), 404, "attempt {i} is allowed (and finds no reservation)");
    }
    let data = json!({"reservationIds": ["res_missing_x"], "provider": "stripe"});
    let limited = call_at(&second, &token, "initiatePayment", data.clone(), Some("k5")).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let limited = call_at(&h.app, &token, "initiatePayment", data, Some("k6")).await;
    assert_eq!(limited.status(), 429);
    // Another user is not affected.
    let bob = call_at(
        &h.app,
        &h.token("bob"),
        "initiatePayment",
        json!({"reservationIds": ["res_x"], "provider": "stripe"}),
        Some("k0"),
    )
    .await;
    assert_eq!(bob.status(), 404);
}

#[tokio::test]
async fn limits_are_configurable_per_callable() {
    let h = Harness::start(&[("HEARTH_RATE_LIMITS", "getOrder=2/60")]).await;
    testkit::early_in_window(60, 15).await;
    for _ in 0..2 {
        let response = h.call("ada", "getOrder", json!({"orderId": "ord_x"})).await;
        assert_eq!(response.status(), 404);
    }
    let limited = h.call("ada", "getOrder", json!({"orderId": "ord_x"})).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
}

/// Regression: the limit used to be counted before the Idempotency-Key was looked up, so a
/// client retrying one completed key after lost answers was locked out after five retries.
/// Replays of a completed key cost no slot; fresh keys still do.
#[tokio::test]
async fn replays_of_a_completed_key_cost_no_slot() {
    let h = Harness::start(&[]).await;
    h.product("kettle", 10).await;
    let r = h.reserve("ada", "kettle", 1).await;
    let pay = json!({"reservationIds": [r], "provider": "stripe"});
    // Six counted calls must share one 15-minute window.
    testkit::early_in_window(900, 60).await;
    let first = h.call_with_key("ada", "initiatePayment", pay.clone(), "lost-answer").await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    for i in 0..8 {
        let replay = h.call_with_key("ada", "initiatePayment", pay.clone(), "lost-answer").await;
        assert_eq!(replay.status(), 200, "replay {i} is answered from the ledger");
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        let mut replay = replay.json::<Value>().await.unwrap();
        assert_eq!(replay["result"]["replayed"], true);
        replay["result"]["replayed"] = json!(false);
        assert_eq!(replay, first);
    }
    assert_eq!(h.fake.stripe_calls(), 1);
    // The first call took one slot of five: four fresh keys pass, the fifth is refused.
    for i in 0..4 {
        let data = json!({"reservationIds": [format!("res_missing_{i}")], "provider": "stripe"});
        let response = h.call_with_key("ada", "initiatePayment", data, &format!("k{i}")).await;
        assert_eq!(response.status(), 404, "fresh key {i} is counted and allowed");
    }
    let data = json!({"reservationIds": ["res_missing_x"], "provider": "stripe"});
    let limited = h.call_with_key("ada", "initiatePayment", data.clone(), "k-over").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(error_status(limited).await, "RESOURCE_EXHAUSTED");
    // A replay of the completed key still answers while the user is limited.
    let replay = h.call_with_key("ada", "initiatePayment", pay, "lost-answer").await;
    assert_eq!(replay.status(), 200);
}
