//! Hostile deliveries: forged and replayed provider events that name an order whose money they
//! are not. Every one changes nothing (order, payment, reservations, stock), is acknowledged so
//! it does not loop, and leaves a dead letter flagged as a suspected forgery. Forged OIDC and
//! undecodable envelopes are in `push.rs` (`forged_undecodable_and_unknown_deliveries...`).

use chrono::{TimeDelta, Utc};
use domain::inventory::ReservationStatus;
use domain::messages::{PaymentEventKind, PaymentProvider};
use domain::payments::{OrderStatus, PaymentStatus};
use providers::pesapal::Ipn;

use crate::{Harness, stripe_event};

fn ipn(tracking: &str, order: &str) -> Ipn {
    Ipn {
        order_tracking_id: tracking.to_owned(),
        order_merchant_reference: order.to_owned(),
        order_notification_type: "IPNCHANGE".to_owned(),
    }
}

/// Asserts that `order` is untouched: awaiting payment, no state change, its reservation held.
async fn untouched(h: &Harness, order: &str) {
    let doc = h.order_doc(order).await;
    assert_eq!(doc.status, OrderStatus::AwaitingPayment, "{order}");
    assert_eq!(doc.state_changes, 0, "{order}");
    let reservation = h.inventory.reservation(&doc.items[0].reservation_id).await.unwrap().unwrap();
    assert_eq!(reservation.status, ReservationStatus::Held, "{order}");
}

/// The review's scenario: a cheap Pesapal purchase's completed tracking id T is replayed in an
/// IPN naming an expensive order O. Before the fix O became paid and its stock committed, and
/// T worked for any number of orders.
#[tokio::test]
async fn a_completed_tracking_id_cannot_pay_another_order() {
    let h = Harness::start().await;
    let cheap = h.product("pin", 5, 1).await;
    let dear = h.product("piano", 20, 2).await;
    let (cheap_order, t) = h.pesapal_order("eve", &cheap, 1).await;
    h.fake.set_pesapal_status(&t, 1);
    // The attacker's expensive order, with its own (unpaid) Pesapal payment.
    let (dear_order, _unpaid) = h.pesapal_order("eve2", &dear, 10).await;
    // ... and an order with no Pesapal payment at all.
    let other = h.order("eve3", &dear, 5, PaymentProvider::Stripe).await;

    for (i, target) in [&dear_order, &other].into_iter().enumerate() {
        let forged = ipn(&t, target).to_event(Utc::now());
        let response = h.push(&format!("forged-{i}"), &forged).await;
        let letter = h.dead_letter_of(response).await;
        assert!(letter.suspected_forgery, "{letter:?}");
        // Redelivered: still nothing.
        assert_eq!(h.deliver(&format!("forged-{i}"), &forged).await, 200);
        untouched(&h, target).await;
    }
    assert_eq!(h.inventory.availability(&dear).await.unwrap().unwrap().0, 5, "nothing sold");

    // The honest IPN for the cheap order still pays it.
    let honest = ipn(&t, &cheap_order).to_event(Utc::now());
    assert_eq!(h.deliver("honest", &honest).await, 204);
    assert_eq!(h.order_doc(&cheap_order).await.status, OrderStatus::Paid);
}

/// A reversed tracking id named in an IPN for someone else's paid order refunds nothing.
#[tokio::test]
async fn a_reversed_tracking_id_cannot_refund_another_order() {
    let h = Harness::start().await;
    let sku = h.product("drum", 5, 1).await;
    let (mine, t) = h.pesapal_order("mallory", &sku, 1).await;
    h.fake.set_pesapal_status(&t, 3);
    let victim = h.order("victim", &sku, 1, PaymentProvider::Stripe).await;
    let paid = stripe_event("evt_victim_paid", &victim, PaymentEventKind::Succeeded, Utc::now());
    assert_eq!(h.deliver("paid", &paid).await, 204);
    assert_eq!(h.order_doc(&victim).await.status, OrderStatus::Paid);

    let forged = ipn(&t, &victim).to_event(Utc::now() + TimeDelta::minutes(1));
    let letter = h.dead_letter_of(h.push("reversal", &forged).await).await;
    assert!(letter.suspected_forgery);
    let doc = h.order_doc(&victim).await;
    assert_eq!(doc.status, OrderStatus::Paid);
    assert_eq!(doc.state_changes, 1);
    assert_eq!(h.order_doc(&mine).await.status, OrderStatus::AwaitingPayment);
}

/// The order holds the tracking id, but Pesapal says it pays another merchant reference, or
/// another amount: nothing changes.
#[tokio::test]
async fn a_status_for_another_reference_or_amount_changes_nothing() {
    let h = Harness::start().await;
    let sku = h.product("lute", 10, 1).await;
    let (cheap_order, t) = h.pesapal_order("ann", &sku, 1).await;
    h.fake.set_pesapal_status(&t, 1);
    // A second order whose payment (somehow) carries the cheap order's tracking id.
    let dear = h.order("bea", &sku, 4, PaymentProvider::Pesapal).await;
    h.payments.record_provider_payment(&dear, "pay-bea", &t, None, Utc::now()).await.unwrap();
    let letter = h.dead_letter_of(h.push("ref", &ipn(&t, &dear).to_event(Utc::now())).await).await;
    assert!(letter.suspected_forgery);
    assert!(letter.detail.contains(&cheap_order), "{}", letter.detail);
    untouched(&h, &dear).await;
}

/// Pesapal answers an unknown tracking id with an error inside an HTTP 200. Before the fix it
/// was read as "still pending" and the hint vanished with a 204; now it is dead-lettered.
#[tokio::test]
async fn a_tracking_id_pesapal_does_not_know_is_dead_lettered() {
    let h = Harness::start().await;
    let sku = h.product("harp", 3, 1).await;
    let order = h.order("cy", &sku, 1, PaymentProvider::Pesapal).await;
    h.payments
        .record_provider_payment(&order, "pay-cy", "unknown-at-pesapal", None, Utc::now())
        .await
        .unwrap();
    let hint = ipn("unknown-at-pesapal", &order).to_event(Utc::now());
    let letter = h.dead_letter_of(h.push("unknown", &hint).await).await;
    assert!(letter.suspected_forgery, "{letter:?}");
    assert!(letter.detail.contains("does not know"), "{}", letter.detail);
    untouched(&h, &order).await;
}

/// Signed Stripe events are checked the same way: an intent of another order, or an amount
/// that is not the order's, moves nothing.
#[tokio::test]
async fn stripe_events_about_other_money_change_nothing() {
    let h = Harness::start().await;
    let sku = h.product("oboe", 10, 1).await;
    let a = h.order("amy", &sku, 1, PaymentProvider::Stripe).await;
    let b = h.order("ben", &sku, 3, PaymentProvider::Stripe).await;
    // B's order named with A's PaymentIntent.
    let mut cross = stripe_event("evt_cross", &b, PaymentEventKind::Succeeded, Utc::now());
    cross.payment_id = format!("pi_{a}");
    assert!(h.dead_letter_of(h.push("cross", &cross).await).await.suspected_forgery);
    untouched(&h, &b).await;
    // B's own intent, but an amount of one unit.
    let mut short = stripe_event("evt_short", &b, PaymentEventKind::Succeeded, Utc::now());
    short.amount_minor = Some(1000);
    short.currency = Some("usd".to_owned());
    assert!(h.dead_letter_of(h.push("short", &short).await).await.suspected_forgery);
    untouched(&h, &b).await;
    // The right amount and currency pay it.
    let mut right = stripe_event("evt_right", &b, PaymentEventKind::Succeeded, Utc::now());
    right.amount_minor = Some(3000);
    right.currency = Some("usd".to_owned());
    assert_eq!(h.deliver("right", &right).await, 204);
    assert_eq!(h.order_doc(&b).await.status, OrderStatus::Paid);
    assert_eq!(h.order_doc(&a).await.status, OrderStatus::AwaitingPayment);
}

/// Pesapal throttling (429) or an open circuit must not use up Pub/Sub delivery attempts: the
/// hint is acknowledged, the payment becomes due for the reconcile job, which settles it once
/// Pesapal answers. Before the fix every delivery answered 503 until dead-lettered.
#[tokio::test]
async fn provider_throttling_defers_to_the_reconcile_job_without_using_attempts() {
    let h = Harness::start().await;
    let sku = h.product("viol", 3, 1).await;
    let (order, t) = h.pesapal_order("dee", &sku, 1).await;
    h.fake.set_pesapal_status(&t, 1);
    // Every try of the first lookup (3 attempts) is throttled.
    h.fake.fail_next(&[429, 429, 429]);
    let hint = ipn(&t, &order).to_event(Utc::now());
    let response = h.push("throttled", &hint).await;
    assert_eq!(response.status(), 204, "acknowledged, not retried through Pub/Sub");
    assert_eq!(h.order_doc(&order).await.status, OrderStatus::AwaitingPayment);
    let payment = h.payments.payment("pay-dee").await.unwrap().unwrap();
    let due = payment.reconcile_due_at.expect("due for the reconcile job");
    assert!(
        due.as_second() <= (Utc::now() + TimeDelta::minutes(2)).timestamp(),
        "due soon, not after the usual first delay"
    );
    // The job runs once the payment is due and settles it.
    h.payments.reconcile_soon(&order, PaymentProvider::Pesapal, &t, Utc::now()).await.unwrap();
    let report = h.reconcile().await;
    assert_eq!(report["settled"], 1, "{report}");
    assert_eq!(h.order_doc(&order).await.status, OrderStatus::Paid);
    assert_eq!(
        h.payments.payment("pay-dee").await.unwrap().unwrap().status,
        PaymentStatus::Succeeded
    );
}

/// The refund and sales routes refuse forged callers and dead-letter undecodable bodies; a
/// refund request naming another order's refund, or an amount the order never asked for,
/// refunds nothing; a replayed `charge.refunded` changes the order once.
#[tokio::test]
async fn refund_and_sales_routes_refuse_forged_foreign_and_replayed_deliveries() {
    use domain::messages::{RefundReason, RefundRequest, Version};
    let h = Harness::start().await;
    for path in ["/pubsub/refund-requests", "/pubsub/order-paid"] {
        let forged = testkit::tokens::sign(
            &testkit::tokens::google_oidc_claims(crate::AUDIENCE, "mallory@evil.example"),
            testkit::keys::primary(),
        );
        let response = h
            .app
            .client
            .post(h.app.url(path))
            .bearer_auth(forged)
            .header("content-type", "application/json")
            .body(r#"{"message":{"data":"e30=","messageId":"1"},"subscription":"s"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}: a caller not allowed");
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
        let response = h.push_to(path, garbage).await;
        h.dead_letter_of(response).await;
    }

    // Eve's paid order, and Bob's with a refund of his own.
    let sku = h.product("lamp", 10, 1).await;
    let eve = h.order("eve", &sku, 1, PaymentProvider::Stripe).await;
    let bob = h.order("bob", &sku, 1, PaymentProvider::Stripe).await;
    for (order, i) in [(&eve, 0), (&bob, 1)] {
        let paid =
            stripe_event(&format!("evt-p{i}"), order, PaymentEventKind::Succeeded, Utc::now());
        assert_eq!(h.deliver(&format!("p{i}"), &paid).await, 204);
        h.fake.succeed_intent(&format!("pi_{order}"), order, 1_000, "usd");
    }
    let refunds = store::refunds::Refunds::new(&h.db);
    refunds
        .request(&bob, "bob", Some(200), "rf_bob", Utc::now(), TimeDelta::days(30))
        .await
        .unwrap()
        .unwrap();
    // Bob's refund id sent with Eve's order: Eve's order holds no such refund.
    let foreign = RefundRequest {
        v: Version,
        order_id: eve.clone(),
        uid: "eve".to_owned(),
        provider: PaymentProvider::Stripe,
        payment_id: format!("pi_{eve}"),
        amount_minor: 1_000,
        currency: "usd".to_owned(),
        reason: RefundReason::BuyerRequest,
        refund_id: Some("rf_bob".to_owned()),
    };
    let body = crate::refunds::envelope("foreign", &eve, &foreign);
    h.dead_letter_of(h.push_to("/pubsub/refund-requests", body).await).await;
    // A forged amount: the refund executed is the one the order recorded (200), not 1,000.
    let mut inflated = foreign.clone();
    inflated.order_id = bob.clone();
    inflated.amount_minor = 1_000;
    let body = crate::refunds::envelope("inflated", &bob, &inflated);
    assert_eq!(h.push_to("/pubsub/refund-requests", body).await.status(), 204);
    let executed: Vec<i64> = h.fake.refunds().iter().filter_map(|r| r["amount"].as_i64()).collect();
    assert_eq!(executed, vec![200]);
    assert_eq!(h.order_doc(&eve).await.refunds.len(), 0);

    // The provider's confirmation replayed (new message ids, same event): applied once.
    crate::refunds::webhook_confirms(&h, &bob, "evt_r_bob", 4).await;
    let stored = h.order_doc(&bob).await;
    assert_eq!((stored.status, stored.refunded_minor), (OrderStatus::Paid, 200));
    assert_eq!(h.published("order-refunded", 1).await.len(), 1);
}
