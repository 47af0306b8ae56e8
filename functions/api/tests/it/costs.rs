//! What each business event of the api costs in Firestore operations, pinned: the counts come
//! from the runtime's per-request counter (`runtime::ops`, fed by `store` at the RPC layer),
//! the same numbers `/metrics` exports as `hearth_firestore_ops_total`. A change that adds a
//! read or a write to one of these events fails here and has to update
//! `docs/costs.json` (and the README's table) on purpose.
//!
//! Every event is measured for a user whose first call (lazy provisioning) is already done.

use std::collections::HashMap;

use api::{AppState, Config, app};
use chrono::{TimeDelta, Utc};
use runtime::ops::OpsSnapshot;
use runtime::{BaseConfig, Env, Metrics};
use serde_json::{Value, json};
use store::feed::PostRecord;
use testkit::TestApp;
use testkit::costs::{Cost, minus, pinned};

use crate::payments::{Harness, call_at};

/// An api instance whose metrics the test can read.
async fn instance(vars: &HashMap<String, String>) -> (TestApp, Metrics) {
    let base = BaseConfig::from_map(vars.clone()).unwrap();
    let config = Config::load(base, &Env::from_map(vars.clone())).unwrap();
    let state = AppState::build(&config).await.unwrap();
    // Built as `api::build` builds it (log-only dead letters), keeping the metrics handle.
    let server =
        runtime::Server::new("api", &config.base, std::sync::Arc::new(runtime::LogDeadLetters));
    let metrics = server.metrics().clone();
    (testkit::spawn_app(server.router(app(state))).await, metrics)
}

fn as_cost(s: OpsSnapshot) -> Cost {
    [s.reads, s.writes, s.deletes, s.query_results, s.round_trips]
}

/// Calls `name` as `uid` and returns what that one request cost.
async fn measured(
    h: &Harness,
    app: &TestApp,
    metrics: &Metrics,
    uid: &str,
    name: &str,
    data: Value,
    key: Option<&str>,
) -> Cost {
    let route = format!("/{name}");
    let before = as_cost(metrics.firestore_ops(&route));
    let response = call_at(app, &h.token(uid), name, data, key).await;
    assert_eq!(response.status(), 200, "{name}: {}", response.text().await.unwrap());
    minus(as_cost(metrics.firestore_ops(&route)), before)
}

#[tokio::test]
async fn api_events_cost_what_the_readme_says() {
    let h = Harness::start(&[]).await;
    let (app, metrics) = instance(&h.vars).await;
    h.product("kettle", 10).await;
    let now = Utc::now();
    for i in 0..3 {
        let record =
            PostRecord::new("baker", true, now - TimeDelta::minutes(10 + i), "fresh bread");
        store::feed::Feeds::new(&h.db).write_post(&format!("bread-{i}"), &record).await.unwrap();
    }
    // The first call provisions the user lazily; it is not part of the events below.
    let warm = call_at(&app, &h.token("ada"), "getFeed", json!({"limit": 10}), None).await;
    assert_eq!(warm.status(), 200);

    let mut got = Vec::new();
    let reserve = json!({"productId": "kettle", "quantity": 1});
    let c = measured(&h, &app, &metrics, "ada", "reserveInventory", reserve, None).await;
    got.push(("reservation", c));

    let reservation = h.reserve("ada", "kettle", 1).await;
    let pay = json!({"reservationIds": [reservation], "provider": "stripe"});
    let c = measured(&h, &app, &metrics, "ada", "initiatePayment", pay, Some("cost-key")).await;
    got.push(("payment_initiated", c));

    let follow = json!({"vendorId": "baker"});
    let c = measured(&h, &app, &metrics, "ada", "followVendor", follow, None).await;
    got.push(("follow_3_posts_backfilled", c));

    let c = measured(&h, &app, &metrics, "ada", "getFeed", json!({"limit": 10}), None).await;
    got.push(("feed_page_3_entries", c));

    // A listing page of 3 active products: a cache miss, then the same page from the cache.
    let vera = h.token("vera");
    for i in 0..3 {
        let mut fields = crate::catalogue::fields(100 + i);
        fields["title"] = json!(format!("Pot {i}"));
        if i == 0 {
            let vendor = json!({"name": "Vera", "handle": "vera"});
            assert_eq!(call_at(&app, &vera, "becomeVendor", vendor, None).await.status(), 200);
        }
        let created = call_at(&app, &vera, "createProduct", fields, None).await;
        let created: Value = created.json().await.unwrap();
        let id = created["result"]["productId"].clone();
        let published = call_at(&app, &vera, "publishProduct", json!({"productId": id}), None);
        assert_eq!(published.await.status(), 200);
    }
    let page = json!({"category": "kitchen", "limit": 20});
    let c = measured(&h, &app, &metrics, "ada", "listProducts", page.clone(), None).await;
    got.push(("list_products_page_3", c));
    let c = measured(&h, &app, &metrics, "ada", "listProducts", page, None).await;
    got.push(("list_products_cached_page", c));

    let report: Vec<String> = got.iter().map(|(event, c)| format!("{event}: {c:?}")).collect();
    for (event, c) in &got {
        let pinned = pinned(event);
        assert_eq!(c, &pinned, "{event} costs changed; all measured:\n{}", report.join("\n"));
    }
}
