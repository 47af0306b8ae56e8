//! `POST /jobs/reconcile-payments`: Pesapal payments whose outcome is not final are asked about
//! until Pesapal says final. Before the fix a "pending" answer was recorded as the hint's final
//! outcome and nothing asked again.

use chrono::{TimeDelta, Utc};
use domain::messages::PaymentProvider;
use domain::payments::{OrderStatus, PaymentStatus};
use providers::pesapal::Ipn;

use crate::Harness;

#[tokio::test]
async fn a_pending_payment_is_reconciled_until_pesapal_says_final() {
    let h = Harness::start().await;
    let sku = h.product("flute", 3, 1).await;
    let (order, t) = h.pesapal_order("fay", &sku, 1).await;
    // The payment is due for reconciliation from the moment its tracking id is recorded.
    let payment = h.payments.payment("pay-fay").await.unwrap().unwrap();
    assert!(payment.reconcile_due_at.is_some());

    // The only IPN finds it pending, and Pesapal never sends another.
    let hint = Ipn {
        order_tracking_id: t.clone(),
        order_merchant_reference: order.clone(),
        order_notification_type: "IPNCHANGE".to_owned(),
    }
    .to_event(Utc::now());
    assert_eq!(h.deliver("only-ipn", &hint).await, 204);
    assert_eq!(h.order_doc(&order).await.status, OrderStatus::AwaitingPayment);

    // Not due yet: the job asks nothing.
    assert_eq!(h.reconcile().await["examined"], 0);

    // Due, still pending: asked, and scheduled later with the check counted.
    h.payments.reconcile_soon(&order, PaymentProvider::Pesapal, &t, Utc::now()).await.unwrap();
    let report = h.reconcile().await;
    assert_eq!((report["examined"].clone(), report["pending"].clone()), (1.into(), 1.into()));
    let payment = h.payments.payment("pay-fay").await.unwrap().unwrap();
    assert_eq!(payment.reconcile_checks, 1);
    assert!(payment.reconcile_due_at.unwrap().as_second() > Utc::now().timestamp());

    // The buyer pays; the next due run settles the order, once.
    h.fake.set_pesapal_status(&t, 1);
    h.payments.reconcile_soon(&order, PaymentProvider::Pesapal, &t, Utc::now()).await.unwrap();
    let report = h.reconcile().await;
    assert_eq!(report["settled"], 1, "{report}");
    let doc = h.order_doc(&order).await;
    assert_eq!(doc.status, OrderStatus::Paid);
    assert_eq!(doc.state_changes, 1);
    let payment = h.payments.payment("pay-fay").await.unwrap().unwrap();
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert!(payment.reconcile_due_at.is_none(), "final: no longer asked");
    assert_eq!(h.reconcile().await["examined"], 0);
    // Announced once, with the reconciled event id.
    let paid = h.published("order-paid", 1).await;
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(paid[0]["order_id"], order.as_str());
}

#[tokio::test]
async fn a_failed_payment_is_reconciled_and_two_runs_at_once_apply_it_once() {
    let h = Harness::start().await;
    let sku = h.product("horn", 3, 1).await;
    let (order, t) = h.pesapal_order("gus", &sku, 1).await;
    h.fake.set_pesapal_status(&t, 2);
    h.payments
        .reconcile_soon(&order, PaymentProvider::Pesapal, &t, Utc::now() - TimeDelta::seconds(1))
        .await
        .unwrap();
    let (a, b) = tokio::join!(h.reconcile(), h.reconcile());
    let settled = a["settled"].as_u64().unwrap() + b["settled"].as_u64().unwrap();
    assert!((1..=2).contains(&settled), "{a} {b}");
    let doc = h.order_doc(&order).await;
    assert_eq!(doc.status, OrderStatus::PaymentFailed);
    assert_eq!(doc.state_changes, 1, "applied once");
}
