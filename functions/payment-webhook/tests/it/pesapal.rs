//! `GET|POST /pesapal`: IPNs for an order that holds the tracking id are forwarded as hints
//! and acknowledged in Pesapal's shape; malformed ones publish nothing. Forged ones and floods:
//! `attacks.rs`.

use domain::messages::{PaymentEventKind, PaymentProvider};
use serde_json::{Value, json};

use crate::{Harness, decode};

const TRACKING: &str = "b945e4af-80a5-4ec1-8706-e03f8332fb04";

#[tokio::test]
async fn a_get_ipn_is_forwarded_as_a_hint_and_acknowledged() {
    let h = Harness::start().await;
    h.pesapal_order("ord_55", TRACKING).await;
    let url = h.app.url(&format!(
        "/pesapal?OrderTrackingId={TRACKING}&OrderMerchantReference=ord_55&OrderNotificationType=IPNCHANGE"
    ));
    let response = h.app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    assert_eq!(
        ack,
        json!({"orderNotificationType": "IPNCHANGE", "orderTrackingId": TRACKING,
               "orderMerchantReference": "ord_55", "status": 200})
    );
    // Pesapal's retry of the same notification is acknowledged and not forwarded again.
    assert_eq!(h.app.client.get(&url).send().await.unwrap().status(), 200);
    let got = h.published(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ordering_key.as_deref(), Some("ord_55"));
    let event = decode(&got[0]);
    assert_eq!(event.provider, PaymentProvider::Pesapal);
    assert_eq!(event.kind, PaymentEventKind::StatusChanged);
    assert_eq!(event.payment_id, TRACKING);
}

#[tokio::test]
async fn a_post_ipn_is_forwarded() {
    let h = Harness::start().await;
    h.pesapal_order("ord_56", TRACKING).await;
    let body = json!({"OrderTrackingId": TRACKING, "OrderMerchantReference": "ord_56",
                      "OrderNotificationType": "IPNCHANGE"});
    let response = h.app.client.post(h.app.url("/pesapal")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], 200);
    let got = h.published(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(decode(&got[0]).order_id, "ord_56");
}

#[tokio::test]
async fn malformed_ipns_are_refused_and_publish_nothing() {
    let h = Harness::start().await;
    for query in [
        "",
        "OrderTrackingId=abc",
        "OrderTrackingId=abc&OrderMerchantReference=ord%2F1&OrderNotificationType=IPNCHANGE",
        "OrderTrackingId=abc&OrderMerchantReference=ord_1&OrderNotificationType=NOPE",
    ] {
        let response =
            h.app.client.get(h.app.url(&format!("/pesapal?{query}"))).send().await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(response.json::<Value>().await.unwrap()["status"], 500);
    }
    for body in ["{", "[]", r#"{"OrderTrackingId": 5}"#] {
        let response = h
            .app
            .client
            .post(h.app.url("/pesapal"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }
    let big = "x".repeat(payment_webhook::MAX_BODY_BYTES + 1);
    let response = h.app.client.post(h.app.url("/pesapal")).body(big).send().await.unwrap();
    assert_eq!(response.status(), 413);
    h.assert_nothing_else_published().await;
}
