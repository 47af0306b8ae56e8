//! What applying a payment costs in Firestore operations, pinned: the counts come from the
//! runtime's per-request counter (`runtime::ops`, fed by `store` at the RPC layer), read back
//! from `/metrics` (`hearth_firestore_ops_total`, as the metrics reader). A change that adds
//! reads or writes fails here and has to update the number (and README.md, and
//! `docs/costs.json`) on purpose.

use chrono::Utc;
use domain::messages::{PaymentEventKind, PaymentProvider};
use testkit::{keys, tokens};

use crate::{AUDIENCE, Harness, METRICS_SA, stripe_event};

const ROUTE: &str = "/pubsub/payment-events";

/// `[reads, writes, deletes, query results]` of the push route so far.
async fn ops(h: &Harness) -> [u64; 4] {
    let token = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, METRICS_SA), keys::primary());
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(token).send().await;
    let text = response.unwrap().text().await.unwrap();
    let mut out = [0; 4];
    let route = format!(r#"route="{ROUTE}""#);
    for line in text.lines().filter(|l| l.starts_with("hearth_firestore_ops_total{")) {
        if !line.contains(&route) {
            continue;
        }
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        for (i, kind) in ["read", "write", "delete", "query_result"].iter().enumerate() {
            if line.contains(&format!(r#"kind="{kind}""#)) {
                out[i] += n;
            }
        }
    }
    out
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
    let applied: Vec<u64> = middle.iter().zip(before).map(|(a, b)| a - b).collect();
    let duplicate: Vec<u64> = after.iter().zip(middle).map(|(a, b)| a - b).collect();
    let report = format!("applied {applied:?}, duplicate {duplicate:?}");
    // [reads, writes, deletes, query results]
    assert_eq!(applied, [5, 6, 0, 0], "a succeeded payment of a one-item order: {report}");
    assert_eq!(duplicate, [1, 0, 0, 0], "the same delivery again: {report}");
}
