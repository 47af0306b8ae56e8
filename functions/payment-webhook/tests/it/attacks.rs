//! Hostile requests to the provider door. Each is refused before anything is claimed in the
//! ledger or published, which the sentinel check proves (`assert_nothing_else_published`).
//!
//! - Pesapal IPNs are unsigned: one naming an order that does not hold its tracking id (the
//!   review's forgery: a completed tracking id replayed against another order), or an order
//!   that does not exist, is refused with 404 and costs one read.
//! - A flood from one source is cut by the per-source budget (429 in Pesapal's shape), while
//!   other sources still get through.
//! - Stripe: forged, stale, retired-secret, replayed-with-other-content and oversized events
//!   are in `stripe.rs`; malformed IPNs and oversized bodies in `pesapal.rs`.
//! - `/metrics` on this public service: only a listed metrics reader's Google token reads it.

use serde_json::Value;

use crate::Harness;

const T: &str = "3f1e2d4c-5b6a-4978-8a9b-0c1d2e3f4a5b";

fn ipn_url(h: &Harness, tracking: &str, order: &str) -> String {
    h.app.url(&format!(
        "/pesapal?OrderTrackingId={tracking}&OrderMerchantReference={order}&OrderNotificationType=IPNCHANGE"
    ))
}

/// Before the fix both were forwarded (and the processor then paid the named order).
#[tokio::test]
async fn an_ipn_naming_an_order_that_does_not_hold_the_tracking_id_is_refused() {
    let h = Harness::start().await;
    h.pesapal_order("ord_cheap", T).await;
    h.pesapal_order("ord_dear", "77777777-0000-4000-8000-000000000000").await;
    for (tracking, order) in
        [(T, "ord_dear"), (T, "ord_missing"), ("11111111-2222-4333-8444-555555555555", "ord_cheap")]
    {
        let response = h.app.client.get(ipn_url(&h, tracking, order)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{tracking} {order}");
        let ack: Value = response.json().await.unwrap();
        assert_eq!(ack["status"], 500, "not taken");
        assert_eq!(ack["orderMerchantReference"], order);
    }
    h.assert_nothing_else_published().await;
}

/// A flood of IPNs from one address is limited before any read; another address is not
/// affected. Before the fix every request was looked at (and, when well formed, forwarded).
#[tokio::test]
async fn a_flood_from_one_source_is_limited_per_source() {
    let h = Harness::start_with(&[("HEARTH_PESAPAL_IPN_RATE_PER_SOURCE", "1")]).await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let response = h
            .app
            .client
            .get(ipn_url(&h, &format!("flood-{i}"), "ord_nothing"))
            // A client-supplied first entry does not pick the bucket: the last one does.
            .header("x-forwarded-for", format!("10.9.8.{i}, 203.0.113.50"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    // A burst of 2, then one a second: however slow this machine, most of the 12 are cut.
    assert!(statuses[..2].iter().all(|s| *s == 404), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 6, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 404 || *s == 429), "{statuses:?}");
    let other = h
        .app
        .client
        .get(ipn_url(&h, "flood-x", "ord_nothing"))
        .header("x-forwarded-for", "198.51.100.23")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "another source still gets an answer");
    h.assert_nothing_else_published().await;
}

/// The webhook is public (providers send no Google token), so its `/metrics` was readable by
/// anyone on the internet. Now only a Google token of a listed metrics reader gets it; the
/// health route stays open.
#[tokio::test]
async fn metrics_are_refused_to_anyone_but_the_metrics_reader() {
    use testkit::keys::{other, primary};
    use testkit::tokens;
    const AUDIENCE: &str = "https://payment-webhook.example.run.app";
    const READER: &str = "metrics-reader@demo.iam.gserviceaccount.com";
    let jwks = testkit::jwks::JwksServer::start(&[primary()], 300).await;
    let h = Harness::start_with(&[
        ("HEARTH_GOOGLE_OIDC_JWKS_URL", &jwks.url()),
        ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
        ("HEARTH_METRICS_ALLOWED_EMAILS", READER),
    ])
    .await;
    let get = |path: &'static str, token: Option<String>| {
        let mut req = h.app.client.get(h.app.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let claims = |email: &str| tokens::google_oidc_claims(AUDIENCE, email);
    for path in ["/metrics", "/metrics.json"] {
        assert_eq!(get(path, None).await, 401, "{path} without a token");
        let forged = tokens::sign(&claims(READER), other());
        assert_eq!(get(path, Some(forged)).await, 401, "{path} with a forged token");
        let stranger = tokens::sign(&claims("intruder@evil.example"), primary());
        assert_eq!(get(path, Some(stranger)).await, 403, "{path} for another account");
        assert_eq!(get(path, Some(tokens::sign(&claims(READER), primary()))).await, 200, "{path}");
    }
    assert_eq!(get("/health", None).await, 200);
    h.assert_nothing_else_published().await;
}
