//! What applying a payment costs in Firestore operations, pinned: the counts come from the
//! runtime's per-request counter (`runtime::ops`, fed by `store` at the RPC layer), read back
//! from `/metrics` (`hearth_firestore_ops_total`, as the metrics reader). A change that adds
//! reads or writes fails here and has to update `docs/costs.json` (and the README's table) on purpose.

use chrono::Utc;
use domain::messages::{PaymentEventKind, PaymentProvider};
use testkit::costs::{Cost, minus, pinned, route_ops};
use testkit::{keys, tokens};

use crate::{AUDIENCE, Harness, METRICS_SA, stripe_event};

const ROUTE: &str = "/pubsub/payment-events";

/// `[reads, writes, deletes, query results, round trips]` of the push route so far.
async fn ops(h: &Harness) -> Cost {
    ops_of(h, ROUTE).await
}

async fn ops_of(h: &Harness, route: &str) -> Cost {
    let token = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, METRICS_SA), keys::primary());
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(token).send().await;
    route_ops(&response.unwrap().text().await.unwrap(), route)
}

/// One refund request executed (ledger claim, the order read in the prepare transaction, the
/// provider call, the submitted mark, ledger settle), and the same delivery again.
#[tokio::test]
async fn executing_a_refund_costs_what_the_readme_says() {
    let h = Harness::start().await;
    let sku = h.product("kettle", 10, 2).await;
    let order = h.order("ada", &sku, 1, PaymentProvider::Stripe).await;
    let paid = stripe_event("evt_paid", &order, PaymentEventKind::Succeeded, Utc::now());
    assert_eq!(h.deliver("m-paid", &paid).await, 204);
    h.fake.succeed_intent(&format!("pi_{order}"), &order, 1_000, "usd");
    store::refunds::Refunds::new(&h.db)
        .request(&order, "ada", Some(300), "rf_cost", Utc::now(), chrono::TimeDelta::days(30))
        .await
        .unwrap()
        .unwrap();
    let request = domain::messages::RefundRequest {
        v: domain::messages::Version,
        order_id: order.clone(),
        uid: "ada".to_owned(),
        provider: PaymentProvider::Stripe,
        payment_id: format!("pi_{order}"),
        amount_minor: 300,
        currency: "usd".to_owned(),
        reason: domain::messages::RefundReason::BuyerRequest,
        refund_id: Some("rf_cost".to_owned()),
    };
    let route = "/pubsub/refund-requests";
    let body = || crate::refunds::envelope("m-refund", &order, &request);
    let before = ops_of(&h, route).await;
    assert_eq!(h.push_to(route, body()).await.status(), 204);
    let middle = ops_of(&h, route).await;
    assert_eq!(h.push_to(route, body()).await.status(), 204);
    let after = ops_of(&h, route).await;
    let (executed, duplicate) = (minus(middle, before), minus(after, middle));
    let report = format!("executed {executed:?}, duplicate {duplicate:?}");
    assert_eq!(executed, pinned("refund_executed"), "{report}");
    assert_eq!(duplicate, pinned("payment_event_duplicate"), "the same delivery: {report}");
}

#[tokio::test]
async fn applying_a_payment_costs_what_the_readme_says() {
    let h = Harness::start().await;
    let sku = h.product("kettle", 10, 2).await;
    let order = h.order("ada", &sku, 1, PaymentProvider::Stripe).await;
    let event = stripe_event("evt_cost", &order, PaymentEventKind::Succeeded, Utc::now());

    let before = ops(&h).await;
    assert_eq!(h.deliver("m-cost", &event).await, 204);
    let middle = ops(&h).await;
    assert_eq!(h.deliver("m-cost", &event).await, 204);
    let after = ops(&h).await;
    let (applied, duplicate) = (minus(middle, before), minus(after, middle));
    let report = format!("applied {applied:?}, duplicate {duplicate:?}");
    // [reads, writes, deletes, query results, round trips]
    assert_eq!(applied, pinned("payment_applied"), "a succeeded one-item order: {report}");
    assert_eq!(duplicate, pinned("payment_event_duplicate"), "the same delivery: {report}");
}
