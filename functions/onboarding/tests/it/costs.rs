//! What onboarding a new sign-up costs in Firestore operations, pinned: the counts come from
//! the runtime's per-request counter (`runtime::ops`, fed by `store` at the RPC layer), read
//! back from `/metrics` (`hearth_firestore_ops_total`, as the operator account that may read
//! it). A change that adds reads or writes fails here and has to update `docs/costs.json`
//! (and the README's table) on purpose.

use testkit::costs::{Cost, minus, pinned, route_ops};

use crate::push::{PATH, push, signup_envelope};
use crate::{Harness, OPERATOR_SA, oidc, signup};

/// `[reads, writes, deletes, query results, round trips]` of `route` so far.
async fn ops(h: &Harness, route: &str) -> Cost {
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(oidc(OPERATOR_SA));
    route_ops(&response.send().await.unwrap().text().await.unwrap(), route)
}

async fn delivery_cost(h: &Harness, message_id: &str, body: &serde_json::Value) -> Cost {
    let before = ops(h, PATH).await;
    assert_eq!(push(h, signup_envelope(message_id, body)).await.status(), 204);
    let after = ops(h, PATH).await;
    minus(after, before)
}

#[tokio::test]
async fn onboarding_a_sign_up_costs_what_the_readme_says() {
    let h = Harness::start().await;
    let body = signup("ada", "personal-ada", "owner", true);
    let first = delivery_cost(&h, "m-1", &body).await;
    let again = delivery_cost(&h, "m-1", &body).await;
    let report = format!("first delivery {first:?}, redelivery {again:?}");
    // [reads, writes, deletes, query results, round trips]
    assert_eq!(first, pinned("signup_onboarding"), "a new owner's tenant and user: {report}");
    assert_eq!(again, pinned("signup_onboarding_redelivery"), "the same message: {report}");
}
