//! What each business event of the api costs in Firestore operations, pinned: the counts come
//! from the runtime's per-request counter (`runtime::ops`, fed by `store` at the RPC layer),
//! the same numbers `/metrics` exports as `hearth_firestore_ops_total`. A change that adds a
//! read or a write to one of these events fails here and has to update the number (and the
//! table in README.md, and `docs/costs.json`) on purpose.
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

fn cost(reads: u64, writes: u64, deletes: u64, query_results: u64) -> OpsSnapshot {
    OpsSnapshot { reads, writes, deletes, query_results }
}

fn minus(after: OpsSnapshot, before: OpsSnapshot) -> OpsSnapshot {
    OpsSnapshot {
        reads: after.reads - before.reads,
        writes: after.writes - before.writes,
        deletes: after.deletes - before.deletes,
        query_results: after.query_results - before.query_results,
    }
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
) -> OpsSnapshot {
    let route = format!("/{name}");
    let before = metrics.firestore_ops(&route);
    let response = call_at(app, &h.token(uid), name, data, key).await;
    assert_eq!(response.status(), 200, "{name}: {}", response.text().await.unwrap());
    minus(metrics.firestore_ops(&route), before)
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
    got.push(("reservation", c, cost(4, 4, 0, 0)));

    let reservation = h.reserve("ada", "kettle", 1).await;
    let pay = json!({"reservationIds": [reservation], "provider": "stripe"});
    let c = measured(&h, &app, &metrics, "ada", "initiatePayment", pay, Some("cost-key")).await;
    got.push(("payment initiated", c, cost(10, 8, 0, 0)));

    let follow = json!({"vendorId": "baker"});
    let c = measured(&h, &app, &metrics, "ada", "followVendor", follow, None).await;
    got.push(("follow (3 posts backfilled)", c, cost(6, 6, 0, 3)));

    let c = measured(&h, &app, &metrics, "ada", "getFeed", json!({"limit": 10}), None).await;
    got.push(("feed page (3 entries)", c, cost(9, 1, 0, 4)));

    let report: Vec<String> = got.iter().map(|(event, c, _)| format!("{event}: {c:?}")).collect();
    for (event, c, pinned) in &got {
        assert_eq!(c, pinned, "{event} costs changed; all measured:\n{}", report.join("\n"));
    }
}
