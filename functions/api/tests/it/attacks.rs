//! Hostile callers of the api, in one place: missing, forged, tampered, expired, unsigned and
//! wrong-project ID tokens on every callable; one user acting on another's reservation, order
//! or like; malformed and oversized bodies; floods of follow/unfollow and every other callable
//! hitting its per-user limit (429 `RESOURCE_EXHAUSTED`, the wait in `details`) while honest
//! use passes; the idempotency key in `data` (SDK callers): another user's key, a key that
//! contradicts the header, oversized and malformed keys.
//!
//! Covered elsewhere, not repeated here: releasing someone else's reservation
//! (`payments/reservations.rs`, 403), `getOrder` of someone else's order (same file,
//! `NOT_FOUND`), Idempotency-Key reuse by another user (`payments/idempotency.rs`), the payment
//! limit across instances (`payments/limits.rs`), `getFeed` cursors that were not handed out
//! (`feed.rs`).

use serde_json::{Value, json};
use testkit::{keys, tokens};

use super::payments::{Harness, call_at, error_status};

/// Every callable of the api.
const CALLABLES: [&str; 26] = [
    "reserveInventory",
    "releaseReservation",
    "initiatePayment",
    "getOrder",
    "getFeed",
    "followVendor",
    "unfollowVendor",
    "getStories",
    "likePost",
    "unlikePost",
    "recordView",
    "becomeVendor",
    "updateVendor",
    "createProduct",
    "updateProduct",
    "publishProduct",
    "archiveProduct",
    "setStock",
    "addStock",
    "listProducts",
    "listVendorOrders",
    "getVendorSales",
    "requestRefund",
    "saveStrategy",
    "registerDevice",
    "unregisterDevice",
];

async fn post_raw(
    h: &Harness,
    name: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = h
        .app
        .client
        .post(h.app.url(&format!("/{name}")))
        .header("content-type", "application/json")
        .header("idempotency-key", "attack-1")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_callable_refuses_missing_forged_tampered_expired_and_unsigned_tokens() {
    let h = Harness::start(&[]).await;
    let claims = || {
        let mut c = tokens::firebase_id_claims(&h.project, "mallory");
        c["tenant_id"] = json!(domain::tenancy::personal_tenant_id("mallory"));
        c
    };
    let mut expired = claims();
    expired["iat"] = json!(tokens::now() - 7200);
    expired["exp"] = json!(tokens::now() - 3600);
    let mut other_project = claims();
    other_project["aud"] = json!("someone-elses-project");
    other_project["iss"] = json!("https://securetoken.google.com/someone-elses-project");
    let bad: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("signed by a key not in the JWKS", Some(tokens::sign(&claims(), keys::other()))),
        ("tampered signature", Some(tokens::tamper_signature(&h.token("mallory")))),
        (
            "payload edited to another uid",
            Some(tokens::tamper_payload(&h.token("mallory"), |c| {
                c["sub"] = json!("ada");
                c["user_id"] = json!("ada");
            })),
        ),
        ("expired", Some(tokens::sign(&expired, keys::primary()))),
        ("unsigned (alg none) outside Auth emulator mode", Some(tokens::unsigned(&claims()))),
        (
            "HS256 with the public key as secret",
            Some(tokens::hs256_with_public_key(&claims(), keys::primary())),
        ),
        ("another project's token", Some(tokens::sign(&other_project, keys::primary()))),
        ("garbage", Some("not.a.jwt".to_owned())),
    ];
    for name in CALLABLES {
        for (what, token) in &bad {
            let response = post_raw(&h, name, token.as_deref(), br#"{"data":{}}"#.to_vec()).await;
            assert_eq!(response.status(), 401, "{name}: {what}");
            assert_eq!(error_status(response).await, "UNAUTHENTICATED", "{name}: {what}");
        }
    }
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused() {
    let h = Harness::start(&[]).await;
    let token = h.token("mallory");
    for name in CALLABLES {
        for (what, body) in [
            ("not JSON", b"{data:".to_vec()),
            ("no data", br#"{"result": 1}"#.to_vec()),
            ("data of the wrong type", br#"{"data": [1, 2, 3]}"#.to_vec()),
            ("an unknown field", br#"{"data": {"uid": "ada", "x": 1}}"#.to_vec()),
        ] {
            if name == "getStories" && what != "not JSON" && what != "no data" {
                continue; // takes no data: anything in it is ignored
            }
            let response = post_raw(&h, name, Some(&token), body).await;
            assert_eq!(response.status(), 400, "{name}: {what}");
            assert_eq!(error_status(response).await, "INVALID_ARGUMENT", "{name}: {what}");
        }
        // Over the 1 MiB body limit: 413, refused before any work.
        let huge = format!(r#"{{"data": {{"postId": "{}"}}}}"#, "x".repeat(1_100_000));
        let response = post_raw(&h, name, Some(&token), huge.into_bytes()).await;
        assert_eq!(response.status(), 413, "{name}: oversized");
    }
}

/// One reservation listed twice would make an order of two lines on one hold: the buyer would
/// be charged twice for it and the vendor's sales and refundable lines counted twice. Refused
/// before anything is read or the provider called, and the reservation can still be paid once.
#[tokio::test]
async fn a_reservation_listed_twice_is_refused() {
    let h = Harness::start(&[]).await;
    h.product("pan", 5).await;
    let held = h.reserve("ada", "pan", 1).await;
    let other = h.reserve("ada", "pan", 1).await;
    for ids in [json!([held, held]), json!([held, other, held])] {
        let pay = json!({"reservationIds": ids, "provider": "stripe"});
        let response = h.call_with_key("ada", "initiatePayment", pay, &format!("dup-{ids}")).await;
        assert_eq!(response.status(), 400, "{ids}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(&held), "{body}");
    }
    assert_eq!(h.fake.stripe_calls(), 0, "the provider is never called");
    let pay = json!({"reservationIds": [held], "provider": "stripe"});
    let paid = h.call_with_key("ada", "initiatePayment", pay, "once").await;
    assert_eq!(paid.status(), 200);
    let paid: Value = paid.json().await.unwrap();
    assert_eq!(paid["result"]["amountMinor"], 1250, "{paid}");
}

#[tokio::test]
async fn one_user_cannot_act_on_anothers_reservation_order_or_like() {
    let h = Harness::start(&[]).await;
    h.product("pan", 5).await;
    let ada_reservation = h.reserve("ada", "pan", 1).await;
    // Paying for someone else's reservation.
    let pay = json!({"reservationIds": [ada_reservation], "provider": "stripe"});
    let stolen = h.call_with_key("mallory", "initiatePayment", pay.clone(), "steal").await;
    assert_ne!(stolen.status(), 200, "mallory cannot pay for ada's reservation");
    assert!(
        ["NOT_FOUND", "FAILED_PRECONDITION", "PERMISSION_DENIED"]
            .contains(&error_status(stolen).await.as_str())
    );
    assert_eq!(h.fake.stripe_calls(), 0, "the provider is never called");
    // ada can still pay for it; her order stays hers.
    let paid = h.call_with_key("ada", "initiatePayment", pay, "mine").await;
    assert_eq!(paid.status(), 200);
    let order: Value = paid.json().await.unwrap();
    let order_id = order["result"]["orderId"].as_str().unwrap().to_owned();
    let peek = h.call("mallory", "getOrder", json!({"orderId": order_id})).await;
    assert_eq!(error_status(peek).await, "NOT_FOUND");
    // Replaying ada's Idempotency-Key as mallory runs in mallory's scope, not ada's result.
    let replay = h
        .call_with_key(
            "mallory",
            "initiatePayment",
            json!({"reservationIds": [ada_reservation], "provider": "stripe"}),
            "mine",
        )
        .await;
    assert_ne!(replay.status(), 200);
    // Liking "as someone else": the request cannot name a user; the like is the caller's own.
    store::feed::Feeds::new(&h.db)
        .write_post("p1", &store::feed::PostRecord::new("baker", true, chrono::Utc::now(), "bread"))
        .await
        .unwrap();
    let forged = h.call("mallory", "likePost", json!({"postId": "p1", "uid": "ada"})).await;
    assert_eq!(error_status(forged).await, "INVALID_ARGUMENT");
    let own = h.call("mallory", "likePost", json!({"postId": "p1"})).await;
    assert_eq!(own.status(), 200);
    let ada_like = store::paths::post_like("p1", "ada").unwrap();
    assert!(!store::counters::Counters::new(&h.db).has_marker(&ada_like).await.unwrap());
    let mallory_like = store::paths::post_like("p1", "mallory").unwrap();
    assert!(store::counters::Counters::new(&h.db).has_marker(&mallory_like).await.unwrap());
    // Unfollowing on someone else's behalf is not expressible either.
    let unfollow =
        h.call("mallory", "unfollowVendor", json!({"vendorId": "baker", "buyerId": "ada"})).await;
    assert_eq!(error_status(unfollow).await, "INVALID_ARGUMENT");
}

/// Regression: the feed callables had no rate limit, so a follow/unfollow loop cost unbounded
/// writes (each follow backfills up to 20 feed entries, each unfollow deletes them). With the
/// default limits (20 a minute each) the 21st of each is refused.
#[tokio::test]
async fn a_follow_unfollow_flood_hits_the_limit_and_honest_use_passes() {
    let h = Harness::start(&[]).await;
    store::feed::Feeds::new(&h.db)
        .write_post("p1", &store::feed::PostRecord::new("baker", true, chrono::Utc::now(), "bread"))
        .await
        .unwrap();
    // Windows are fixed and aligned to the minute: start the flood early in one, so its 42 calls
    // never straddle two windows (each would then allow 20) on a slow machine.
    testkit::early_in_window(60, 45).await;
    for round in 0..20 {
        let follow = h.call("mallory", "followVendor", json!({"vendorId": "baker"})).await;
        assert_eq!(follow.status(), 200, "follow {round}");
        let unfollow = h.call("mallory", "unfollowVendor", json!({"vendorId": "baker"})).await;
        assert_eq!(unfollow.status(), 200, "unfollow {round}");
    }
    for name in ["followVendor", "unfollowVendor"] {
        let limited = h.call("mallory", name, json!({"vendorId": "baker"})).await;
        assert_eq!(limited.status(), 429, "{name}");
        let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let body: Value = limited.json().await.unwrap();
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED", "{name}: {body}");
    }
    // Honest users (and mallory's other callables) are not affected.
    let honest = h.call("ada", "followVendor", json!({"vendorId": "baker"})).await;
    assert_eq!(honest.status(), 200);
    let feed = h.call("ada", "getFeed", json!({})).await;
    assert_eq!(feed.status(), 200);
    let feed = h.call("mallory", "getFeed", json!({})).await;
    assert_eq!(feed.status(), 200);
}

/// Every callable has a limit of its own (here 1 per minute each): the first call passes, the
/// second is refused with the callable error shape.
#[tokio::test]
async fn every_callable_is_rate_limited() {
    let limits = CALLABLES.map(|c| format!("{c}=1/60")).join(",");
    let h = Harness::start(&[("HEARTH_RATE_LIMITS", limits.as_str())]).await;
    h.product("pan", 5).await;
    store::feed::Feeds::new(&h.db)
        .write_post("p1", &store::feed::PostRecord::new("baker", true, chrono::Utc::now(), "bread"))
        .await
        .unwrap();
    // The reservation below is reserveInventory's first call, so it and the loop's first
    // iteration (reserveInventory's second call) must share one window too.
    assert_eq!(CALLABLES[0], "reserveInventory", "the reservation below must be its first call");
    testkit::early_in_window(60, 15).await;
    let reservation = h.reserve("ada", "pan", 1).await;
    for name in CALLABLES {
        let data = match name {
            "reserveInventory" => json!({"productId": "pan", "quantity": 1}),
            "releaseReservation" => json!({"reservationId": reservation}),
            "initiatePayment" => json!({"reservationIds": ["res_missing"], "provider": "stripe"}),
            "getOrder" => json!({"orderId": "ord_x"}),
            "followVendor" | "unfollowVendor" => json!({"vendorId": "baker"}),
            "likePost" | "unlikePost" | "recordView" => json!({"postId": "p1"}),
            "becomeVendor" => json!({"name": "Ada", "handle": "ada"}),
            "updateVendor" => json!({"name": "Ada"}),
            "createProduct" => crate::catalogue::fields(100),
            "updateProduct" => json!({"productId": "pan", "fields": crate::catalogue::fields(100)}),
            "publishProduct" | "archiveProduct" => json!({"productId": "pan"}),
            "setStock" | "addStock" => json!({"productId": "pan", "units": 1}),
            "getVendorSales" => {
                json!({"fromDay": "2026-01-01", "toDay": "2026-01-02", "currency": "usd"})
            }
            "requestRefund" => json!({"orderId": "ord_x", "requestId": "r1"}),
            "saveStrategy" => json!({"strategyId": "s1", "strategy": {
                "name": "breakout", "assigned_uids": ["ada"], "instrument": "EUR_USD",
                "granularity": "H1", "enabled": true,
                "entry": {"kind": "vol_scaled_return", "threshold": 2.0}, "sides": "both",
                "take_profit": 2.0, "stop_loss": 1.0, "max_candles": 10, "notional": 1000.0,
                "vol_target": 0.01, "max_notional": 5000.0}}),
            "registerDevice" => json!({"deviceId": "d1", "token": "tok-1", "platform": "android"}),
            "unregisterDevice" => json!({"deviceId": "d1"}),
            _ => json!({}),
        };
        let token = h.token("ada");
        // Both calls in one window (a pair straddling a minute boundary is allowed twice).
        // reserveInventory's first call was the reservation above: waiting here could carry
        // its second call into a fresh window.
        if name != "reserveInventory" {
            testkit::early_in_window(60, 10).await;
            let first = call_at(&h.app, &token, name, data.clone(), Some("k-first")).await;
            assert_ne!(first.status(), 429, "{name}: the first call is within the limit");
        }
        let second = call_at(&h.app, &token, name, data, Some("k-second")).await;
        assert_eq!(second.status(), 429, "{name}: the second call in the minute");
        let wait: u64 = second.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        let body: Value = second.json().await.unwrap();
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED", "{name}");
        // SDK callers never see Retry-After: the same wait is in the body.
        assert_eq!(body["error"]["details"]["retryAfterSeconds"], wait, "{name}: {body}");
        assert!((1..=60).contains(&wait), "{name}: {wait}");
    }
}

/// The idempotency key in `data` (for SDK callers) opens no hole the header does not: another
/// user's key runs in the caller's own scope (never their saved result), a key contradicting
/// the header is refused, and keys over 255 characters, with spaces or control characters, or
/// of another JSON type are refused before anything runs.
#[tokio::test]
async fn idempotency_keys_in_data_are_checked_and_scoped_like_the_header() {
    let h = Harness::start(&[]).await;
    h.product("pot", 10).await;
    let ada_reservation = h.reserve("ada", "pot", 1).await;
    let pay = |reservation: &str, key: Value| json!({"reservationIds": [reservation], "provider": "stripe", "idempotencyKey": key});
    let ada = h.call("ada", "initiatePayment", pay(&ada_reservation, json!("ada-key"))).await;
    assert_eq!(ada.status(), 200);
    let ada: Value = ada.json().await.unwrap();

    // mallory uses ada's key: it is her own key in her own scope, so she gets her own order,
    // never ada's saved answer...
    let own = h.reserve("mallory", "pot", 1).await;
    let mine = h.call("mallory", "initiatePayment", pay(&own, json!("ada-key"))).await;
    let mine: Value = mine.json().await.unwrap();
    assert_eq!(mine["result"]["replayed"], false, "{mine}");
    assert_ne!(mine["result"]["orderId"], ada["result"]["orderId"]);
    // ...and replaying ada's exact request with it gets no result at all (in mallory's scope the
    // key was used with another payload).
    let reuse = h.call("mallory", "initiatePayment", pay(&ada_reservation, json!("ada-key"))).await;
    assert_ne!(reuse.status(), 200);
    let body: Value = reuse.json().await.unwrap();
    assert!(body.get("result").is_none(), "{body}");
    assert!(!body.to_string().contains(ada["result"]["orderId"].as_str().unwrap()));

    // Header and data disagree: refused, whichever key the attacker hoped would win.
    let token = h.token("mallory");
    let own2 = h.reserve("mallory", "pot", 1).await;
    let calls = h.fake.stripe_calls();
    let mixed =
        call_at(&h.app, &token, "initiatePayment", pay(&own2, json!("ada-key")), Some("other"))
            .await;
    assert_eq!(mixed.status(), 400);
    assert_eq!(error_status(mixed).await, "INVALID_ARGUMENT");

    // Oversized and malformed keys.
    for bad in [
        json!("k".repeat(256)),
        json!("k".repeat(100_000)),
        json!(""),
        json!("with space"),
        json!("tab\there"),
        json!("nul\u{0}"),
        json!("caf\u{e9}"),
        json!(42),
        json!({"key": "x"}),
        json!(["x"]),
        json!(true),
    ] {
        let response = h.call("mallory", "initiatePayment", pay(&own2, bad.clone())).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(error_status(response).await, "INVALID_ARGUMENT", "{bad}");
    }
    assert_eq!(h.fake.stripe_calls(), calls, "no refused key reached the provider");
}
