//! What a sign-up costs the hook in Firestore operations and round trips, pinned: the counts
//! come from the runtime's per-request counter (`runtime::ops`, fed by `store` at the RPC
//! layer), read back from `/metrics` (`hearth_firestore_ops_total`). A change that adds a read or
//! a round trip fails here and has to update `docs/costs.json` (and the README) on purpose.

use signup_hook::BEFORE_CREATE_PATH;
use testkit::costs::{minus, pinned, route_ops};

use crate::helpers::{Setup, claims_of, start};

#[tokio::test]
async fn a_sign_up_costs_what_the_readme_says() {
    let hook = start(Setup::default()).await;
    // The first sign-up an instance sees: its caches (blocked domains, domain claims) are cold.
    let before = route_ops(&hook.metrics_text().await, BEFORE_CREATE_PATH);
    let claims = hook.create_claims("uid-cost", "cost@corp.example", true);
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &claims).await;
    claims_of(status, &body);
    let cold = minus(route_ops(&hook.metrics_text().await, BEFORE_CREATE_PATH), before);
    // [reads, writes, deletes, query results, round trips]
    assert_eq!(cold, pinned("signup_hook_before_create"), "a sign-up, cold caches: {cold:?}");
}
