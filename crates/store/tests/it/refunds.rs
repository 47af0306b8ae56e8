//! Executing a refund: `Refunds::prepare` answers a recorded refund from one plain read, and
//! `Refunds::mark` records the provider's answer with one write guarded by that read's update
//! time, falling back to a transaction when the order moved in between (a refund asked
//! meanwhile is never overwritten).

use chrono::{TimeDelta, Utc};
use domain::inventory::Sku;
use domain::messages::{PaymentEventKind, PaymentProvider};
use domain::refunds::RefundStatus;
use serde_json::json;
use store::Db;
use store::inventory::Inventory;
use store::paths;
use store::payments::{Order, Payments, ResolvedEvent};
use store::refunds::Refunds;

const WINDOW: TimeDelta = TimeDelta::days(30);

/// `ann`'s order `order_id` of 4 mugs at 1,000, paid with Stripe.
async fn paid_order(db: &Db, order_id: &str) {
    db.set(&paths::product("mug").unwrap(), &json!({"price_minor": 1_000, "currency": "usd"}))
        .await
        .unwrap();
    let inventory = Inventory::new(db);
    let sku = Sku::product("mug");
    inventory.set_stock(&sku, 50, 1).await.unwrap();
    let reservation = format!("res-{order_id}");
    inventory.reserve("ann", &sku, 4, &reservation, Utc::now()).await.unwrap();
    let payments = Payments::new(db);
    let payment_id = format!("pay-{order_id}");
    payments
        .open_order(
            "ann",
            order_id,
            &payment_id,
            &[reservation],
            PaymentProvider::Stripe,
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let intent = format!("pi_{order_id}");
    payments
        .record_provider_payment(order_id, &payment_id, &intent, None, Utc::now())
        .await
        .unwrap();
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

async fn ask(refunds: &Refunds, order_id: &str, amount: i64, refund_id: &str) {
    refunds
        .request(order_id, "ann", Some(amount), refund_id, Utc::now(), WINDOW)
        .await
        .unwrap()
        .unwrap();
}

async fn order(db: &Db, order_id: &str) -> Order {
    Payments::new(db).order(order_id).await.unwrap().unwrap()
}

/// The common case: the refund was asked, nothing moved since `prepare` read the order, the
/// guarded write records the answer; the same answer again moves nothing.
#[tokio::test]
async fn an_answer_on_an_unchanged_order_is_recorded_once() {
    let db = crate::fresh_db().await;
    let refunds = Refunds::new(&db);
    paid_order(&db, "o1").await;
    ask(&refunds, "o1", 1_000, "rf1").await;
    let recorded = refunds.prepare("o1", Some("rf1"), Utc::now()).await.unwrap().unwrap();
    assert!(recorded.seen.is_some(), "a recorded refund is answered from a plain read");
    assert_eq!(recorded.entry.status, RefundStatus::Requested);
    let seen = recorded.seen.as_ref();
    let submitted = RefundStatus::Submitted;
    let now = Utc::now();
    assert!(refunds.mark("o1", "rf1", seen, submitted, Some("re_1"), None, now).await.unwrap());
    let stored = order(&db, "o1").await;
    let entry = stored.refunds.iter().find(|r| r.refund_id == "rf1").unwrap();
    assert_eq!((entry.status, entry.provider_refund_id.as_deref()), (submitted, Some("re_1")));
    // A redelivered answer (its read now stale) moves nothing and changes nothing.
    assert!(!refunds.mark("o1", "rf1", seen, submitted, Some("re_2"), None, now).await.unwrap());
    let again = order(&db, "o1").await;
    assert_eq!(again.refunds, stored.refunds);
}

/// The buyer asks a second refund between `prepare` and the provider's answer: the guarded
/// write is refused, the transaction records the answer, and the second refund is kept.
#[tokio::test]
async fn a_refund_asked_meanwhile_is_kept() {
    let db = crate::fresh_db().await;
    let refunds = Refunds::new(&db);
    paid_order(&db, "o1").await;
    ask(&refunds, "o1", 1_000, "rf1").await;
    let recorded = refunds.prepare("o1", Some("rf1"), Utc::now()).await.unwrap().unwrap();
    ask(&refunds, "o1", 500, "rf2").await;
    let failed = RefundStatus::Failed;
    let seen = recorded.seen.as_ref();
    let now = Utc::now();
    assert!(
        refunds.mark("o1", "rf1", seen, failed, None, Some("card expired"), now).await.unwrap()
    );
    let stored = order(&db, "o1").await;
    let got: Vec<_> =
        stored.refunds.iter().map(|r| (r.refund_id.as_str(), r.status, r.amount_minor)).collect();
    assert_eq!(got, [("rf1", failed, 1_000), ("rf2", RefundStatus::Requested, 500)]);
    assert_eq!(stored.refunds[0].failure.as_deref(), Some("card expired"));
}

/// A read of another order is never written over this one.
#[tokio::test]
async fn a_read_of_another_order_is_not_used() {
    let db = crate::fresh_db().await;
    let refunds = Refunds::new(&db);
    paid_order(&db, "o1").await;
    paid_order(&db, "o2").await;
    ask(&refunds, "o1", 1_000, "rf1").await;
    ask(&refunds, "o2", 700, "rf2").await;
    let other = refunds.prepare("o1", Some("rf1"), Utc::now()).await.unwrap().unwrap();
    let seen = other.seen.as_ref();
    let submitted = RefundStatus::Submitted;
    let now = Utc::now();
    assert!(refunds.mark("o2", "rf2", seen, submitted, Some("re_2"), None, now).await.unwrap());
    let o2 = order(&db, "o2").await;
    assert_eq!(o2.id, "o2");
    assert_eq!(o2.refunds.len(), 1);
    assert_eq!((o2.refunds[0].refund_id.as_str(), o2.refunds[0].status), ("rf2", submitted));
    let o1 = order(&db, "o1").await;
    assert_eq!(o1.refunds[0].status, RefundStatus::Requested, "o1 untouched");
}
