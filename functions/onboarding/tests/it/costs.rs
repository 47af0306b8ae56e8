//! What onboarding a new sign-up costs in Firestore operations, pinned: the counts come from
//! the runtime's per-request counter (`runtime::ops`, fed by `store` at the RPC layer), read
//! back from `/metrics` (`hearth_firestore_ops_total`, as the operator account that may read
//! it). A change that adds reads or writes fails here and has to update the number (and
//! README.md, and `docs/costs.json`) on purpose.

use crate::push::{PATH, push, signup_envelope};
use crate::{Harness, OPERATOR_SA, oidc, signup};

/// `[reads, writes, deletes, query results]` of `route` so far.
async fn ops(h: &Harness, route: &str) -> [u64; 4] {
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(oidc(OPERATOR_SA));
    let text = response.send().await.unwrap().text().await.unwrap();
    let mut out = [0; 4];
    let route = format!(r#"route="{route}""#);
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

async fn delivery_cost(h: &Harness, message_id: &str, body: &serde_json::Value) -> Vec<u64> {
    let before = ops(h, PATH).await;
    assert_eq!(push(h, signup_envelope(message_id, body)).await.status(), 204);
    let after = ops(h, PATH).await;
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

#[tokio::test]
async fn onboarding_a_sign_up_costs_what_the_readme_says() {
    let h = Harness::start().await;
    let body = signup("ada", "personal-ada", "owner", true);
    let first = delivery_cost(&h, "m-1", &body).await;
    let again = delivery_cost(&h, "m-1", &body).await;
    let report = format!("first delivery {first:?}, redelivery {again:?}");
    // [reads, writes, deletes, query results]
    assert_eq!(first, [9, 9, 0, 0], "a new owner's tenant and user: {report}");
    assert_eq!(again, [1, 0, 0, 0], "a redelivery of the same message: {report}");
}
