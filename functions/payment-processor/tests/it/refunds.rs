//! Refunds executed: `POST /pubsub/refund-requests` calls the (fake) Stripe refunds API once
//! however often a request is delivered, records the provider's answer, dead-letters refusals;
//! the provider's signed `charge.refunded` webhook, parsed as payment-webhook parses it,
//! confirms the refund through `/pubsub/payment-events`, keeps partial refunds right, moves a
//! whole refund to `refunded` and announces each on `order-refunded` once. `/pubsub/order-paid`
//! keeps each vendor's sales of the day once per order.

use std::collections::BTreeMap;

use chrono::Utc;
use domain::messages::{
    OrderPaid, PaymentEventKind, PaymentProvider, RefundReason, RefundRequest, Version,
};
use domain::payments::OrderStatus;
use domain::refunds::RefundStatus;
use gcp::pubsub::{PushEvent, build_push_envelope};
use providers::stripe::{Mapped, map_event};
use serde::Serialize;
use serde_json::json;
use store::refunds::Refunds;

use crate::{Harness, stripe_event};

const WEBHOOK_SECRET: &str = "whsec_test";

pub(crate) fn envelope<T: Serialize + Clone>(
    message_id: &str,
    ordering_key: &str,
    data: &T,
) -> Vec<u8> {
    build_push_envelope(&PushEvent {
        message_id: message_id.to_owned(),
        publish_time: Utc::now(),
        attributes: BTreeMap::from([("schema_version".to_owned(), "1".to_owned())]),
        ordering_key: Some(ordering_key.to_owned()),
        delivery_attempt: Some(1),
        subscription: "projects/hearth-test/subscriptions/refund-requests--payment-processor"
            .to_owned(),
        data: data.clone(),
    })
    .unwrap()
}

/// A paid Stripe order of `uid` (2 units of 10.00), its intent known to the fake as paid.
async fn paid(h: &Harness, uid: &str) -> String {
    let sku = h.product(&format!("p-{uid}"), 10, 2).await;
    let order = h.order(uid, &sku, 2, PaymentProvider::Stripe).await;
    let event =
        stripe_event(&format!("evt-paid-{uid}"), &order, PaymentEventKind::Succeeded, Utc::now());
    assert_eq!(h.deliver(&format!("m-paid-{uid}"), &event).await, 204);
    assert_eq!(h.order_doc(&order).await.status, OrderStatus::Paid);
    h.fake.succeed_intent(&format!("pi_{order}"), &order, 2_000, "usd");
    order
}

fn request(order: &str, refund_id: Option<&str>, amount: i64) -> RefundRequest {
    RefundRequest {
        v: Version,
        order_id: order.to_owned(),
        uid: "ada".to_owned(),
        provider: PaymentProvider::Stripe,
        payment_id: format!("pi_{order}"),
        amount_minor: amount,
        currency: "usd".to_owned(),
        reason: RefundReason::BuyerRequest,
        refund_id: refund_id.map(str::to_owned),
    }
}

async fn push_refund(h: &Harness, message_id: &str, request: &RefundRequest) -> reqwest::Response {
    h.push_to("/pubsub/refund-requests", envelope(message_id, &request.order_id, request)).await
}

/// The provider's `charge.refunded` webhook for `order`, signed and verified as
/// payment-webhook does, then applied by the processor (delivered `times` times).
pub(crate) async fn webhook_confirms(h: &Harness, order: &str, event_id: &str, times: usize) {
    // Stripe stamps events in whole seconds; a refund comes after the payment it returns.
    let created = Utc::now().timestamp() + 1;
    let event = h.fake.charge_refunded_event(event_id, &format!("pi_{order}"), created);
    let body = serde_json::to_vec(&event).unwrap();
    let header =
        testkit::fake_provider::stripe_signature(WEBHOOK_SECRET, Utc::now().timestamp(), &body);
    let secrets = [secrecy::SecretString::from(WEBHOOK_SECRET.to_owned())];
    providers::stripe::verify(
        Some(&header),
        &body,
        &secrets,
        std::time::Duration::from_secs(300),
        Utc::now().timestamp(),
    )
    .expect("a correctly signed webhook");
    let Mapped::Event(mapped) = map_event(&body).unwrap() else { panic!("not an event") };
    assert_eq!(mapped.kind, PaymentEventKind::Refunded);
    for i in 0..times {
        assert_eq!(h.deliver(&format!("m-{event_id}-{i}"), &mapped).await, 204);
    }
}

#[tokio::test]
async fn a_refund_delivered_three_times_is_executed_once_and_confirmed_by_the_webhook() {
    let h = Harness::start().await;
    let order = paid(&h, "ada").await;
    let refunds = Refunds::new(&h.db);
    let window = chrono::TimeDelta::days(30);
    let asked = refunds
        .request(&order, "ada", Some(500), "rf_1", Utc::now(), window)
        .await
        .unwrap()
        .unwrap();
    assert!(asked.created);

    // Three deliveries at once (two under one message id, one republished).
    let req = request(&order, Some("rf_1"), 500);
    let (a, b, c) = tokio::join!(
        push_refund(&h, "m1", &req),
        push_refund(&h, "m1", &req),
        push_refund(&h, "m1-again", &req),
    );
    let statuses = [a.status().as_u16(), b.status().as_u16(), c.status().as_u16()];
    assert!(statuses.contains(&204), "{statuses:?}");
    // Whatever was busy is redelivered until acknowledged.
    for _ in 0..50 {
        if push_refund(&h, "m1", &req).await.status() == 204 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(h.fake.refunds().len(), 1, "one refund at the provider");
    let refund = &h.fake.refunds()[0];
    assert_eq!(
        (refund["amount"].as_i64(), refund["metadata"]["refund_id"].as_str()),
        (Some(500), Some("rf_1"))
    );
    let stored = h.order_doc(&order).await;
    assert_eq!(stored.refunds[0].status, RefundStatus::Submitted);
    assert_eq!(stored.refunds[0].provider_refund_id.as_deref(), refund["id"].as_str());
    assert_eq!(stored.status, OrderStatus::Paid);

    // The provider confirms (delivered three times): a partial refund, announced once.
    webhook_confirms(&h, &order, "evt_refund_1", 3).await;
    let stored = h.order_doc(&order).await;
    assert_eq!((stored.status, stored.refunded_minor), (OrderStatus::Paid, 500));
    assert_eq!(stored.refunds[0].status, RefundStatus::Confirmed);
    let announced = h.published("order-refunded", 1).await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0]["amount_minor"], 500);
    assert_eq!(announced[0]["refunded_total_minor"], 500);
    assert_eq!(announced[0]["fully_refunded"], false);

    // The rest: the remaining amount is right, and the whole refund moves the order.
    let over =
        refunds.request(&order, "ada", Some(1_501), "rf_2", Utc::now(), window).await.unwrap();
    assert!(over.is_err(), "more than is left: {over:?}");
    refunds.request(&order, "ada", None, "rf_2", Utc::now(), window).await.unwrap().unwrap();
    assert_eq!(push_refund(&h, "m2", &request(&order, Some("rf_2"), 1_500)).await.status(), 204);
    assert_eq!(h.fake.refunds()[1]["amount"], 1_500);
    webhook_confirms(&h, &order, "evt_refund_2", 2).await;
    let stored = h.order_doc(&order).await;
    assert_eq!((stored.status, stored.refunded_minor), (OrderStatus::Refunded, 2_000));
    assert!(stored.refunds.iter().all(|r| r.status == RefundStatus::Confirmed));
    let announced = h.published("order-refunded", 1).await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(
        (announced[0]["amount_minor"].as_i64(), announced[0]["fully_refunded"].as_bool()),
        (Some(1_500), Some(true))
    );
}

#[tokio::test]
async fn a_refund_the_provider_refuses_lands_in_dead_letters() {
    let h = Harness::start().await;
    let order = paid(&h, "bob").await;
    // Stripe will refuse: it does not know the order's PaymentIntent.
    let sku = h.product("p-carl", 10, 2).await;
    let unpaid_at_stripe = h.order("carl", &sku, 1, PaymentProvider::Stripe).await;
    let event =
        stripe_event("evt-paid-carl", &unpaid_at_stripe, PaymentEventKind::Succeeded, Utc::now());
    h.deliver("m-paid-carl", &event).await;
    let refunds = Refunds::new(&h.db);
    let window = chrono::TimeDelta::days(30);
    refunds
        .request(&unpaid_at_stripe, "carl", Some(100), "rf_x", Utc::now(), window)
        .await
        .unwrap()
        .unwrap();
    let response = push_refund(&h, "m-x", &request(&unpaid_at_stripe, Some("rf_x"), 100)).await;
    let dead = h.dead_letter_of(response).await;
    assert!(dead.reason.contains("refused") || dead.detail.contains("refused"), "{dead:?}");
    let stored = h.order_doc(&unpaid_at_stripe).await;
    assert_eq!(stored.refunds[0].status, RefundStatus::Failed);
    assert!(
        stored.refunds[0].failure.as_deref().unwrap_or_default().contains("No such payment_intent")
    );
    // The refused amount may be asked again.
    let again = refunds
        .request(&unpaid_at_stripe, "carl", Some(1_000), "rf_y", Utc::now(), window)
        .await
        .unwrap();
    assert!(again.is_ok(), "{again:?}");
    // A request for a refund the order does not hold is dead-lettered too, without a call.
    let calls = h.fake.stripe_calls();
    let response = push_refund(&h, "m-ghost", &request(&order, Some("rf_ghost"), 100)).await;
    h.dead_letter_of(response).await;
    assert_eq!(h.fake.stripe_calls(), calls);
}

#[tokio::test]
async fn a_paid_order_without_stock_is_refunded_in_full() {
    let h = Harness::start().await;
    let order = paid(&h, "dan").await;
    // As the processor flags it when the stock was gone: refund_pending, request without id.
    let mut doc = h.order_doc(&order).await;
    doc.status = OrderStatus::RefundPending;
    doc.refund_requested = true;
    h.db.set(&store::paths::order(&order).unwrap(), &doc).await.unwrap();
    let mut req = request(&order, None, 2_000);
    req.reason = RefundReason::OutOfStock;
    for id in ["m-oos", "m-oos", "m-oos-2"] {
        assert_eq!(push_refund(&h, id, &req).await.status(), 204);
    }
    assert_eq!(h.fake.refunds().len(), 1);
    assert_eq!(h.fake.refunds()[0]["amount"], 2_000);
    webhook_confirms(&h, &order, "evt_refund_oos", 1).await;
    let stored = h.order_doc(&order).await;
    assert_eq!((stored.status, stored.refunded_minor), (OrderStatus::Refunded, 2_000));
}

#[tokio::test]
async fn order_paid_keeps_each_vendors_sales_of_the_day_once() {
    let h = Harness::start().await;
    for (id, vendor, price) in [("pot", "vera", 1_000), ("rake", "vic", 400)] {
        h.db.set(
            &store::paths::product(id).unwrap(),
            &json!({"price_minor": price, "currency": "usd", "vendor_id": vendor}),
        )
        .await
        .unwrap();
        h.inventory.set_stock(&domain::inventory::Sku::product(id), 10, 1).await.unwrap();
    }
    let inventory = &h.inventory;
    let payments = &h.payments;
    let mut paid_orders = Vec::new();
    for (uid, lines) in [("ada", vec![("pot", 2), ("rake", 1)]), ("bob", vec![("pot", 1)])] {
        let mut reservations = Vec::new();
        for (product, quantity) in lines {
            let id = format!("res-{uid}-{product}");
            inventory
                .reserve(uid, &domain::inventory::Sku::product(product), quantity, &id, Utc::now())
                .await
                .unwrap();
            reservations.push(id);
        }
        let order_id = format!("o-{uid}");
        let (order, _) = payments
            .open_order(
                uid,
                &order_id,
                &format!("pay-{uid}"),
                &reservations,
                PaymentProvider::Stripe,
                Utc::now(),
            )
            .await
            .unwrap()
            .unwrap();
        paid_orders.push(order);
    }
    // The days the sales may fall on (a run across midnight counts them on the next day).
    let from = Utc::now().date_naive();
    for order in &paid_orders {
        let message = OrderPaid {
            v: Version,
            order_id: order.id.clone(),
            uid: order.uid.clone(),
            provider: PaymentProvider::Stripe,
            payment_id: "pi".to_owned(),
            amount_minor: order.amount_minor,
            currency: "usd".to_owned(),
            provider_event_id: "evt".to_owned(),
        };
        for id in ["a", "a", "b"] {
            let body = envelope(&format!("{}-{id}", order.id), &order.id, &message);
            assert_eq!(h.push_to("/pubsub/order-paid", body).await.status(), 204);
        }
    }
    let to = Utc::now().date_naive();
    let sales = store::vendor_orders::VendorOrders::new(&h.db);
    let total = |days: Vec<store::vendor_orders::DaySales>| {
        days.iter().fold((0, 0), |(n, sum), day| (n + day.orders, sum + day.amount_minor))
    };
    assert_eq!(total(sales.sales("vera", "usd", from, to).await.unwrap()), (2, 3_000));
    assert_eq!(total(sales.sales("vic", "usd", from, to).await.unwrap()), (1, 400));
    assert!(sales.sales("vera", "eur", from, to).await.unwrap().is_empty());
}
