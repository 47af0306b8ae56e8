//! What each search call costs in Firestore operations, pinned in `docs/costs.json` (and the
//! README's table): the counts come from the runtime's per-request counter (`runtime::ops`),
//! the numbers `/metrics` exports as `hearth_firestore_ops_total`. A search reads no catalogue
//! document (the replica answers); only the rate limit's transaction touches Firestore, and
//! `suggest` (limited in memory) touches nothing.

use runtime::ops::OpsSnapshot;
use runtime::{BaseConfig, Env, Metrics};
use search::{AppState, Config, app};
use serde_json::{Value, json};
use testkit::TestApp;
use testkit::costs::{Cost, minus, pinned};

use crate::{Harness, product};

fn as_cost(s: OpsSnapshot) -> Cost {
    [s.reads, s.writes, s.deletes, s.query_results, s.round_trips]
}

async fn measured(h: &Harness, app: &TestApp, metrics: &Metrics, name: &str, data: Value) -> Cost {
    let route = format!("/{name}");
    let before = as_cost(metrics.firestore_ops(&route));
    let response = h.call_on(app, name, data).await;
    assert_eq!(response.status(), 200, "{name}: {}", response.text().await.unwrap());
    minus(as_cost(metrics.firestore_ops(&route)), before)
}

#[tokio::test]
async fn search_calls_cost_what_the_readme_says() {
    let h = Harness::start(&[]).await;
    h.put("p1", &product("Red shoes", "footwear", "v1", 500)).await;
    let base = BaseConfig::from_map(h.vars.clone()).unwrap();
    let config = Config::load(base, &Env::from_map(h.vars.clone())).unwrap();
    let state = AppState::build(&config).unwrap();
    let server =
        runtime::Server::new("search", &config.base, std::sync::Arc::new(runtime::LogDeadLetters));
    let metrics = server.metrics().clone();
    let app = testkit::spawn_app(server.router(app(state))).await;
    h.eventually(&app, json!({"query": "shoes"}), |r| r["total"] == 1).await;

    let mut got = Vec::new();
    let query = json!({"query": "shooes", "category": "footwear"});
    got.push(("search_query", measured(&h, &app, &metrics, "searchProducts", query.clone()).await));
    // The same query again, from the cache: the rate limit still counts it.
    got.push(("search_query", measured(&h, &app, &metrics, "searchProducts", query).await));
    let prefix = json!({"prefix": "re"});
    got.push(("search_suggest", measured(&h, &app, &metrics, "suggest", prefix).await));
    let report: Vec<String> = got.iter().map(|(event, c)| format!("{event}: {c:?}")).collect();
    for (event, c) in &got {
        assert_eq!(
            c,
            &pinned(event),
            "{event} costs changed; all measured:\n{}",
            report.join("\n")
        );
    }
}
