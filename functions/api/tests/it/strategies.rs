//! `saveStrategy`: tenant admins save validated strategies into their own tenant; members,
//! invalid strategies, unknown streams, unknown fields and users of other tenants are refused.

use serde_json::{Value, json};
use testkit::{keys, tokens};

use crate::payments::{Harness, call_at, error_status};

fn strategy(uids: &[&str]) -> Value {
    json!({
        "name": "breakout", "assigned_uids": uids, "instrument": "EUR_USD", "granularity": "H1",
        "enabled": true, "entry": {"kind": "vol_scaled_return", "threshold": 2.0}, "sides": "both",
        "take_profit": 2.0, "stop_loss": 1.0, "max_candles": 10, "notional": 1000.0,
        "vol_target": 0.01, "max_notional": 5000.0
    })
}

/// A token of `uid` in `tenant` with `role`.
fn token(h: &Harness, uid: &str, tenant: &str, role: &str) -> String {
    let mut claims = tokens::firebase_id_claims(&h.project, uid);
    claims["tenant_id"] = json!(tenant);
    claims["role"] = json!(role);
    claims["email"] = json!(format!("{uid}@example.com"));
    tokens::sign(&claims, keys::primary())
}

#[tokio::test]
async fn an_owner_saves_a_valid_strategy_into_their_own_tenant_and_a_retry_rewrites_it() {
    let h = Harness::start(&[]).await;
    let tenant = domain::tenancy::personal_tenant_id("olga");
    let data = json!({"strategyId": "s1", "strategy": strategy(&["olga"])});
    let res = h.call("olga", "saveStrategy", data.clone()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"], json!({"strategyId": "s1", "tenantId": tenant}));
    let stored: Value =
        h.db.get(&store::paths::strategy(&tenant, "s1").unwrap()).await.unwrap().unwrap();
    assert_eq!(stored["assigned_uids"], json!(["olga"]));
    assert_eq!(h.call("olga", "saveStrategy", data).await.status(), 200, "a retry rewrites");
}

#[tokio::test]
async fn members_invalid_strategies_unknown_streams_and_strangers_are_refused() {
    let h = Harness::start(&[]).await;
    let tenant = domain::tenancy::personal_tenant_id("olga");
    // Olga's tenant exists (her first call provisions it).
    assert_eq!(
        h.call(
            "olga",
            "saveStrategy",
            json!({"strategyId": "s0", "strategy": strategy(&["olga"])})
        )
        .await
        .status(),
        200
    );

    // A member of the tenant may not save.
    let member = token(&h, "mia", &tenant, "member");
    let res = call_at(
        &h.app,
        &member,
        "saveStrategy",
        json!({"strategyId": "s1", "strategy": strategy(&["olga"])}),
        None,
    )
    .await;
    assert_eq!(error_status(res).await, "PERMISSION_DENIED");

    let h = &h;
    let refused =
        |data: Value| async move { error_status(h.call("olga", "saveStrategy", data).await).await };
    let mut bad = strategy(&["olga"]);
    bad["take_profit"] = json!(-1.0);
    assert_eq!(refused(json!({"strategyId": "s2", "strategy": bad})).await, "INVALID_ARGUMENT");
    let mut unknown_stream = strategy(&["olga"]);
    unknown_stream["granularity"] = json!("M1");
    assert_eq!(
        refused(json!({"strategyId": "s2", "strategy": unknown_stream})).await,
        "INVALID_ARGUMENT"
    );
    let mut extra = strategy(&["olga"]);
    extra["leverage"] = json!(100);
    assert_eq!(refused(json!({"strategyId": "s2", "strategy": extra})).await, "INVALID_ARGUMENT");
    assert_eq!(
        refused(json!({"strategyId": "../x", "strategy": strategy(&["olga"])})).await,
        "INVALID_ARGUMENT"
    );
    assert_eq!(refused(json!({"strategy": strategy(&["olga"])})).await, "INVALID_ARGUMENT");
    // A user of another tenant cannot be assigned (nor made to trade by a stranger).
    assert_eq!(
        refused(json!({"strategyId": "s2", "strategy": strategy(&["olga", "victor"])})).await,
        "INVALID_ARGUMENT"
    );
    assert!(
        h.db.get::<Value>(&store::paths::strategy(&tenant, "s2").unwrap()).await.unwrap().is_none()
    );
    assert!(
        h.db.get::<Value>(&store::paths::strategy(&tenant, "s1").unwrap()).await.unwrap().is_none()
    );
}
