//! Lazy provisioning never re-instates a removed member from the claims of a token that has not
//! been refreshed yet.

use serde_json::json;

use crate::payments::{Harness, call_at, error_status};

#[tokio::test]
async fn a_removed_member_is_refused_and_not_re_provisioned_from_a_stale_claim() {
    let h = Harness::start(&[]).await;
    let tenant = domain::tenancy::personal_tenant_id("ada");
    let data = json!({"reservationIds": ["res_missing"], "provider": "stripe"});
    // The first call provisions Ada lazily.
    let first = h.call_with_key("ada", "initiatePayment", data.clone(), "k1").await;
    assert_eq!(first.status(), 404, "provisioned, and no such reservation");
    let member = store::paths::tenant_member(&tenant, "ada").unwrap();
    assert!(h.db.get::<serde_json::Value>(&member).await.unwrap().is_some());

    // Her membership is removed; the user root also predates the current plan, so the next
    // call would provision again.
    h.db.delete(&member).await.unwrap();
    h.db.set(
        &store::paths::user("ada").unwrap(),
        &json!({"tenant_id": tenant, "onboarded": true,
                "onboarding": {"state": "complete", "plan_version": 0, "created": []}}),
    )
    .await
    .unwrap();

    // A fresh instance (nothing remembered) with her still-valid token: refused.
    let other = h.another_instance().await;
    let refused = call_at(&other, &h.token("ada"), "initiatePayment", data, Some("k2")).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(error_status(refused).await, "PERMISSION_DENIED");
    assert!(
        h.db.get::<serde_json::Value>(&member).await.unwrap().is_none(),
        "the membership is not re-created from the claim"
    );
}
