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
    let token = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, METRICS_SA), keys::primary());
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(token).send().await;
    route_ops(&response.unwrap().text().await.unwrap(), ROUTE)
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
