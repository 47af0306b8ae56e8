//! Vendor orders and refund requests over HTTP against the emulators: orders carry their
//! vendors, a vendor lists its orders by status, the buyer and the order's vendors (and no one
//! else) ask for refunds within what is left, a retry finds the same refund, and each new
//! refund is published on `refund-requests`.

use std::time::Duration;

use chrono::Utc;
use domain::inventory::Sku;
use domain::messages::{PaymentEventKind, PaymentProvider};
use serde_json::{Value, json};
use store::inventory::Inventory;
use store::payments::{Payments, ResolvedEvent};

use crate::payments::Harness;

/// A product of `vendor` priced `price` USD cents with 20 units.
async fn product(h: &Harness, id: &str, vendor: &str, price: i64) {
    h.db.set(
        &store::paths::product(id).unwrap(),
        &json!({"price_minor": price, "currency": "usd", "vendor_id": vendor, "status": "active"}),
    )
    .await
    .unwrap();
    Inventory::new(&h.db).set_stock(&Sku::product(id), 20, 2).await.unwrap();
}

/// `uid` buys `lines` (product, quantity) in order `order_id`, paid with Stripe.
async fn paid_order(h: &Harness, uid: &str, order_id: &str, lines: &[(&str, i64)], pay: bool) {
    let inventory = Inventory::new(&h.db);
    let payments = Payments::new(&h.db);
    let mut reservations = Vec::new();
    for (i, (product, quantity)) in lines.iter().enumerate() {
        let id = format!("res-{order_id}-{i}");
        inventory.reserve(uid, &Sku::product(*product), *quantity, &id, Utc::now()).await.unwrap();
        reservations.push(id);
    }
    let payment_id = format!("pay-{order_id}");
    payments
        .open_order(uid, order_id, &payment_id, &reservations, PaymentProvider::Stripe, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let intent = format!("pi_{order_id}");
    payments
        .record_provider_payment(order_id, &payment_id, &intent, None, Utc::now())
        .await
        .unwrap();
    if pay {
        let event = ResolvedEvent {
            provider: PaymentProvider::Stripe,
            event_id: format!("evt-paid-{order_id}"),
            order_id: order_id.to_owned(),
            provider_payment_id: intent,
            kind: PaymentEventKind::Succeeded,
            occurred_at: Utc::now(),
            merchant_reference: None,
            amount_minor: None,
            currency: None,
            amount_refunded_minor: None,
        };
        payments.apply_event(&event, Utc::now()).await.unwrap();
    }
}

async fn result(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

async fn error(response: reqwest::Response) -> Value {
    assert_ne!(response.status(), 200);
    response.json::<Value>().await.unwrap()["error"].clone()
}

async fn published(h: &Harness, n: usize) -> Vec<Value> {
    let got = testkit::pubsub::pull_at_least(
        h.pubsub,
        &h.project,
        "refund-requests-test",
        n,
        Duration::from_secs(10),
    )
    .await;
    got.iter().map(|r| serde_json::from_slice(&r.data).unwrap()).collect()
}

#[tokio::test]
async fn orders_carry_their_vendors_and_vendors_list_them_by_status() {
    let h = Harness::start(&[]).await;
    product(&h, "pot", "vera", 1_000).await;
    product(&h, "rake", "vic", 400).await;
    paid_order(&h, "ada", "o-1", &[("pot", 2), ("rake", 1)], true).await;
    paid_order(&h, "bob", "o-2", &[("pot", 1)], false).await;
    let order = Payments::new(&h.db).order("o-1").await.unwrap().unwrap();
    assert_eq!(order.vendor_ids, vec!["vera".to_owned(), "vic".to_owned()]);
    assert_eq!(order.amount_minor, 2_400);

    let all = result(h.call("vera", "listVendorOrders", json!({})).await).await;
    let ids: Vec<&str> =
        all["orders"].as_array().unwrap().iter().map(|o| o["orderId"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["o-2", "o-1"], "newest first");
    let paid = result(h.call("vera", "listVendorOrders", json!({"status": "paid"})).await).await;
    assert_eq!(paid["orders"].as_array().unwrap().len(), 1);
    assert_eq!(paid["orders"][0]["vendorAmountMinor"], 2_000, "vera's lines only");
    assert_eq!(paid["orders"][0]["lines"].as_array().unwrap().len(), 1);
    let vic = result(h.call("vic", "listVendorOrders", json!({"status": "paid"})).await).await;
    assert_eq!(vic["orders"][0]["vendorAmountMinor"], 400);
    // Pages: one at a time with the cursor.
    let first = result(h.call("vera", "listVendorOrders", json!({"limit": 1})).await).await;
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let second =
        result(h.call("vera", "listVendorOrders", json!({"limit": 1, "cursor": cursor})).await)
            .await;
    assert_eq!(second["orders"][0]["orderId"], "o-1");
    // A buyer is nobody's vendor.
    let none = result(h.call("ada", "listVendorOrders", json!({})).await).await;
    assert_eq!(none["orders"], json!([]));
    assert_eq!(
        error(h.call("vera", "listVendorOrders", json!({"cursor": "x"})).await).await["status"],
        "INVALID_ARGUMENT"
    );
}

#[tokio::test]
async fn buyers_and_vendors_ask_for_refunds_within_what_is_left() {
    let h = Harness::start(&[]).await;
    product(&h, "pot", "vera", 1_000).await;
    product(&h, "rake", "vic", 400).await;
    paid_order(&h, "ada", "o-1", &[("pot", 2), ("rake", 1)], true).await;
    paid_order(&h, "ada", "o-unpaid", &[("pot", 1)], false).await;

    // The buyer asks for part of it.
    let first = result(
        h.call(
            "ada",
            "requestRefund",
            json!({"orderId": "o-1", "amountMinor": 500, "requestId": "r1"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (first["amountMinor"].as_i64(), first["status"].as_str()),
        (Some(500), Some("requested"))
    );
    assert_eq!(first["created"], true);
    let refund_id = first["refundId"].as_str().unwrap().to_owned();
    // A retry finds the same refund; the same id with another amount is a conflict.
    let again = result(
        h.call(
            "ada",
            "requestRefund",
            json!({"orderId": "o-1", "amountMinor": 500, "requestId": "r1"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (again["refundId"].as_str(), again["created"].as_bool()),
        (Some(refund_id.as_str()), Some(false))
    );
    let conflict = error(
        h.call(
            "ada",
            "requestRefund",
            json!({"orderId": "o-1", "amountMinor": 600, "requestId": "r1"}),
        )
        .await,
    )
    .await;
    assert_eq!(conflict["status"], "ALREADY_EXISTS");

    // Nobody else may ask; nobody may ask for more than is left.
    for who in ["mallory", "bob"] {
        let e =
            error(h.call(who, "requestRefund", json!({"orderId": "o-1", "requestId": "x"})).await)
                .await;
        assert_eq!(e["status"], "NOT_FOUND", "{who}");
    }
    let over = error(
        h.call(
            "ada",
            "requestRefund",
            json!({"orderId": "o-1", "amountMinor": 1_901, "requestId": "r2"}),
        )
        .await,
    )
    .await;
    assert_eq!(over["status"], "FAILED_PRECONDITION");
    assert_eq!(over["details"]["refundableMinor"], 1_900);
    // A vendor refunds its own lines only: vic sold 400.
    let vic_over = error(
        h.call(
            "vic",
            "requestRefund",
            json!({"orderId": "o-1", "amountMinor": 401, "requestId": "v1"}),
        )
        .await,
    )
    .await;
    assert_eq!(vic_over["details"]["refundableMinor"], 400);
    let vic =
        result(h.call("vic", "requestRefund", json!({"orderId": "o-1", "requestId": "v1"})).await)
            .await;
    assert_eq!(vic["amountMinor"], 400, "absent amount: everything vic may refund");
    // Nothing but paid orders; nothing non-positive.
    let unpaid = error(
        h.call("ada", "requestRefund", json!({"orderId": "o-unpaid", "requestId": "u"})).await,
    )
    .await;
    assert_eq!(unpaid["status"], "FAILED_PRECONDITION");
    for amount in [0, -5] {
        let e = error(
            h.call(
                "ada",
                "requestRefund",
                json!({"orderId": "o-1", "amountMinor": amount, "requestId": "z"}),
            )
            .await,
        )
        .await;
        assert_eq!(e["status"], "INVALID_ARGUMENT", "{amount}");
    }
    let e = error(h.call("ada", "requestRefund", json!({"orderId": "o-1", "requestId": ""})).await)
        .await;
    assert_eq!(e["status"], "INVALID_ARGUMENT");

    // The order records both; the remaining amount is right for the next asker.
    let order = Payments::new(&h.db).order("o-1").await.unwrap().unwrap();
    assert_eq!(order.refunds.iter().map(|r| r.amount_minor).collect::<Vec<_>>(), vec![500, 400]);
    let rest = error(
        h.call(
            "ada",
            "requestRefund",
            json!({"orderId": "o-1", "amountMinor": 1_501, "requestId": "r3"}),
        )
        .await,
    )
    .await;
    assert_eq!(rest["details"]["refundableMinor"], 1_500);

    // Each new refund went out on refund-requests (the retry published it again).
    let messages = published(&h, 3).await;
    let ids: std::collections::BTreeSet<&str> =
        messages.iter().map(|m| m["refund_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{messages:?}");
    assert!(ids.contains(refund_id.as_str()));
    let buyer = messages.iter().find(|m| m["refund_id"] == refund_id.as_str()).unwrap();
    assert_eq!(
        (buyer["reason"].as_str(), buyer["amount_minor"].as_i64()),
        (Some("buyer_request"), Some(500))
    );
    assert_eq!(buyer["payment_id"], "pi_o-1");
}
