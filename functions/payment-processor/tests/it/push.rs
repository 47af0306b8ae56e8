//! `POST /pubsub/payment-events`: exactly-once effects under duplicated, shuffled and
//! out-of-order deliveries; expiry, re-reservation and refunds; Pesapal hints; refusals.

use std::collections::BTreeSet;

use chrono::{TimeDelta, Utc};
use domain::inventory::ReservationStatus;
use domain::messages::{PaymentEventKind, PaymentProvider};
use domain::payments::{OrderStatus, PaymentStatus};
use futures::StreamExt;
use rand::seq::SliceRandom;
use serde_json::json;

use crate::{Harness, stripe_event};

/// 12 orders (2 units each, 40 in stock); 8 succeed and 4 fail. Each event is delivered three
/// times (twice under the same Pub/Sub message id, once re-published under another), all
/// shuffled and 6 at a time. Every order changes state exactly once, ends in the right state,
/// the paid orders' units are committed once (the sweep never returns them), and each paid
/// order is announced on `order-paid` once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_delivered_three_times_and_shuffled_change_each_order_once() {
    let h = Harness::start().await;
    let sku = h.product("kettle", 40, 4).await;
    let mut orders = Vec::new();
    for i in 0..12 {
        orders.push(h.order(&format!("buyer{i}"), &sku, 2, PaymentProvider::Stripe).await);
    }
    assert_eq!(h.inventory.availability(&sku).await.unwrap().unwrap().0, 16);
    let now = Utc::now();
    let mut deliveries = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let kind = if i < 8 { PaymentEventKind::Succeeded } else { PaymentEventKind::Failed };
        let event = stripe_event(&format!("evt_{i}"), order, kind, now);
        deliveries.push((format!("m{i}"), event.clone()));
        deliveries.push((format!("m{i}"), event.clone()));
        deliveries.push((format!("m{i}-republished"), event));
    }
    deliveries.shuffle(&mut rand::rng());
    let statuses: Vec<u16> = futures::stream::iter(deliveries.iter())
        .map(|(id, event)| h.deliver(id, event))
        .buffer_unordered(6)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");

    for (i, id) in orders.iter().enumerate() {
        let order = h.order_doc(id).await;
        assert_eq!(order.state_changes, 1, "order {id}");
        let (status, payment_status, reservation_status) = if i < 8 {
            (OrderStatus::Paid, PaymentStatus::Succeeded, ReservationStatus::Committed)
        } else {
            (OrderStatus::PaymentFailed, PaymentStatus::Failed, ReservationStatus::Held)
        };
        assert_eq!(order.status, status);
        let payment = h.payments.payment(&format!("pay-buyer{i}")).await.unwrap().unwrap();
        assert_eq!(payment.status, payment_status);
        let reservation =
            h.inventory.reservation(&order.items[0].reservation_id).await.unwrap().unwrap();
        assert_eq!(reservation.status, reservation_status);
    }
    // Reserved units left the shards once; the sweep returns only the failed orders' units.
    assert_eq!(h.inventory.availability(&sku).await.unwrap().unwrap().0, 16);
    let report = h.inventory.sweep_expired(Utc::now() + TimeDelta::minutes(16), 100).await.unwrap();
    assert_eq!(report.expired, 4);
    assert_eq!(h.inventory.availability(&sku).await.unwrap().unwrap().0, 24);

    let paid = h.published("order-paid", 8).await;
    let announced: Vec<&str> = paid.iter().map(|m| m["order_id"].as_str().unwrap()).collect();
    assert_eq!(announced.len(), 8, "{announced:?}");
    let expected: BTreeSet<&str> = orders[..8].iter().map(String::as_str).collect();
    assert_eq!(announced.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(paid[0]["amount_minor"], 2000);
}

#[tokio::test]
async fn an_older_event_never_overwrites_a_newer_state() {
    let h = Harness::start().await;
    let sku = h.product("lamp", 5, 1).await;
    let order = h.order("ada", &sku, 1, PaymentProvider::Stripe).await;
    let now = Utc::now();
    let succeeded = stripe_event("evt_late_success", &order, PaymentEventKind::Succeeded, now);
    let processing = stripe_event(
        "evt_early_processing",
        &order,
        PaymentEventKind::Processing,
        now - TimeDelta::seconds(5),
    );
    assert_eq!(h.deliver("a", &succeeded).await, 204);
    assert_eq!(h.deliver("b", &processing).await, 204);
    let doc = h.order_doc(&order).await;
    assert_eq!(doc.status, OrderStatus::Paid);
    assert_eq!(doc.state_changes, 1);
    assert_eq!(doc.last_event_id.as_deref(), Some("evt_late_success"));
}

/// Two buyers' holds expire; a third buyer takes the last unit but one. The first late payment
/// re-reserves and is paid; the second finds no stock: refund_pending and a refund request.
#[tokio::test]
async fn a_payment_after_expiry_re_reserves_or_requests_a_refund() {
    let h = Harness::start().await;
    let sku = h.product("scarf", 2, 1).await;
    let a = h.order("ann", &sku, 1, PaymentProvider::Stripe).await;
    let b = h.order("bob", &sku, 1, PaymentProvider::Stripe).await;
    let swept = h.inventory.sweep_expired(Utc::now() + TimeDelta::minutes(16), 10).await.unwrap();
    assert_eq!(swept.expired, 2);
    assert!(matches!(
        h.inventory.reserve("cat", &sku, 1, "res-cat", Utc::now()).await.unwrap(),
        store::inventory::ReserveOutcome::Reserved { .. }
    ));

    let now = Utc::now();
    assert_eq!(
        h.deliver("ma", &stripe_event("evt_a", &a, PaymentEventKind::Succeeded, now)).await,
        204
    );
    let order_a = h.order_doc(&a).await;
    assert_eq!(order_a.status, OrderStatus::Paid);
    let new_reservation = &order_a.items[0].reservation_id;
    assert_ne!(new_reservation, "res-ann");
    let r = h.inventory.reservation(new_reservation).await.unwrap().unwrap();
    assert_eq!(r.status, ReservationStatus::Committed);
    assert_eq!(h.inventory.availability(&sku).await.unwrap().unwrap().0, 0);

    let late_b = stripe_event("evt_b", &b, PaymentEventKind::Succeeded, now);
    assert_eq!(h.deliver("mb", &late_b).await, 204);
    assert_eq!(h.deliver("mb", &late_b).await, 204);
    let order_b = h.order_doc(&b).await;
    assert_eq!(order_b.status, OrderStatus::RefundPending);
    assert!(order_b.refund_requested);
    assert_eq!(order_b.state_changes, 1);
    assert_eq!(h.inventory.availability(&sku).await.unwrap().unwrap().0, 0, "never oversold");

    let refunds = h.published("refund-requests", 1).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["order_id"], b.as_str());
    assert_eq!(refunds[0]["reason"], "out_of_stock");
    let paid = h.published("order-paid", 1).await;
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["order_id"], a.as_str());
}

/// A Pesapal hint is resolved with the provider: pending changes nothing, completed pays.
#[tokio::test]
async fn pesapal_hints_are_resolved_with_the_provider() {
    let h = Harness::start().await;
    let sku = h.product("basket", 3, 1).await;
    // Submitted to the fake Pesapal with its real amount and currency; tracking id recorded.
    let (order, tracking) = h.pesapal_order("dan", &sku, 1).await;
    let ipn = providers::pesapal::Ipn {
        order_tracking_id: tracking.clone(),
        order_merchant_reference: order.clone(),
        order_notification_type: "IPNCHANGE".to_owned(),
    };
    let first = ipn.to_event(Utc::now());
    assert_eq!(h.deliver("p1", &first).await, 204);
    assert_eq!(h.order_doc(&order).await.status, OrderStatus::AwaitingPayment);
    h.fake.set_pesapal_status(&tracking, 1);
    let second = ipn.to_event(Utc::now() + TimeDelta::minutes(1));
    assert_eq!(h.deliver("p2", &second).await, 204);
    let doc = h.order_doc(&order).await;
    assert_eq!(doc.status, OrderStatus::Paid);
    assert_eq!(
        h.payments.payment("pay-dan").await.unwrap().unwrap().status,
        PaymentStatus::Succeeded
    );
}

#[tokio::test]
async fn forged_undecodable_and_unknown_deliveries_are_refused_or_dead_lettered() {
    let h = Harness::start().await;
    let event = stripe_event("evt_x", "ord-nobody", PaymentEventKind::Succeeded, Utc::now());
    let body = crate::build_envelope("mx", &event);
    let forged = h
        .app
        .client
        .post(h.app.url(crate::PATH))
        .bearer_auth(testkit::tokens::sign(
            &testkit::tokens::google_oidc_claims(crate::AUDIENCE, crate::PUSH_SA),
            testkit::keys::other(),
        ))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let unknown = h.push("mx", &event).await;
    assert_eq!(unknown.status(), 200, "an unknown order is dead-lettered and acknowledged");
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["acknowledged"], json!(true));
    let garbage = gcp::pubsub::build_push_envelope_bytes(&gcp::pubsub::PushEvent {
        message_id: "mg".to_owned(),
        publish_time: Utc::now(),
        attributes: Default::default(),
        ordering_key: None,
        delivery_attempt: None,
        subscription: "projects/p/subscriptions/s".to_owned(),
        data: br#"{"v": 2}"#.to_vec(),
    })
    .unwrap();
    assert_eq!(h.push_raw("mg", garbage).await.status(), 200);
}

/// A refund that overtakes the success (Stripe does not order its events) is recorded; the late
/// success then ends in `refunded`, commits no stock and announces nothing. Before the fix the
/// refund was ignored while the order awaited payment and the success sold the goods.
#[tokio::test]
async fn a_refund_before_the_success_ends_refunded_without_selling() {
    let h = Harness::start().await;
    let sku = h.product("cello", 4, 1).await;
    let order = h.order("ida", &sku, 2, PaymentProvider::Stripe).await;
    let now = Utc::now();
    let succeeded = stripe_event("evt_ida_paid", &order, PaymentEventKind::Succeeded, now);
    let refunded = stripe_event(
        "evt_ida_refund",
        &order,
        PaymentEventKind::Refunded,
        now + TimeDelta::seconds(30),
    );
    assert_eq!(h.deliver("refund-first", &refunded).await, 204);
    assert_eq!(h.order_doc(&order).await.status, OrderStatus::Refunded);
    assert_eq!(h.deliver("success-late", &succeeded).await, 204);
    let doc = h.order_doc(&order).await;
    assert_eq!(doc.status, OrderStatus::Refunded);
    assert_eq!(doc.last_event_id.as_deref(), Some("evt_ida_refund"));
    let reservation = h.inventory.reservation(&doc.items[0].reservation_id).await.unwrap().unwrap();
    assert_eq!(reservation.status, ReservationStatus::Held, "no stock committed");
    assert_eq!(
        h.payments.payment("pay-ida").await.unwrap().unwrap().status,
        PaymentStatus::Refunded
    );
    // The held units go back when the hold ends; nothing was sold.
    h.inventory.sweep_expired(Utc::now() + TimeDelta::minutes(16), 10).await.unwrap();
    assert_eq!(h.inventory.availability(&sku).await.unwrap().unwrap().0, 4);
    assert!(h.published("order-paid", 1).await.is_empty(), "a refunded order is never announced");
}

/// A partial refund (`charge.refunded` with `amount_refunded` below the amount) leaves the
/// order paid and records what went back; the refund of the rest refunds the order. Before the
/// fix any `charge.refunded` refunded the whole order.
#[tokio::test]
async fn a_partial_refund_leaves_the_order_paid() {
    let h = Harness::start().await;
    let sku = h.product("bell", 4, 1).await;
    let order = h.order("joe", &sku, 2, PaymentProvider::Stripe).await;
    let now = Utc::now();
    let paid = stripe_event("evt_joe_paid", &order, PaymentEventKind::Succeeded, now);
    assert_eq!(h.deliver("paid", &paid).await, 204);
    let mut partial = stripe_event(
        "evt_joe_r1",
        &order,
        PaymentEventKind::Refunded,
        now + TimeDelta::seconds(10),
    );
    partial.amount_minor = Some(2000);
    partial.amount_refunded_minor = Some(500);
    assert_eq!(h.deliver("r1", &partial).await, 204);
    assert_eq!(h.deliver("r1", &partial).await, 204);
    let doc = h.order_doc(&order).await;
    assert_eq!(doc.status, OrderStatus::Paid);
    assert_eq!(doc.refunded_minor, 500);
    let mut rest = stripe_event(
        "evt_joe_r2",
        &order,
        PaymentEventKind::Refunded,
        now + TimeDelta::seconds(20),
    );
    rest.amount_minor = Some(2000);
    rest.amount_refunded_minor = Some(2000);
    assert_eq!(h.deliver("r2", &rest).await, 204);
    assert_eq!(h.order_doc(&order).await.status, OrderStatus::Refunded);
}

/// A record the ledger kept from before fingerprints were the serde form (here: released by a
/// failed first attempt, with a fingerprint of another format) never turns the redelivery into
/// a conflict: the scope changed with the format, so the event is applied.
#[tokio::test]
async fn a_record_of_the_former_fingerprint_format_does_not_block_the_redelivery() {
    let h = Harness::start().await;
    let sku = h.product("stool", 3, 1).await;
    let order = h.order("ada", &sku, 1, PaymentProvider::Stripe).await;
    let event = stripe_event("evt_across_deploy", &order, PaymentEventKind::Succeeded, Utc::now());
    let ledger = store::Ledger::new(&h.db);
    let lease = std::time::Duration::from_secs(30);
    let key = "stripe:evt_across_deploy";
    let former_scope = "pubsub:payment-events";
    let store::Claim::Fresh(token) =
        ledger.claim(former_scope, key, "sha256-of-the-debug-text", lease).await.unwrap()
    else {
        panic!("the former record could not be made");
    };
    ledger.release(&token).await.unwrap();
    assert_eq!(h.deliver("m-across", &event).await, 204);
    assert_eq!(h.order_doc(&order).await.status, OrderStatus::Paid);
}
