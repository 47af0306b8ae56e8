//! The replica follows Firestore: creates, updates, archives and deletes become searchable (or
//! disappear) through the listen stream; a new instance builds the same state from Firestore;
//! the callables refuse with a retryable error until the replica has caught up, while
//! `/healthz` answers from the start.

use std::time::{Duration, Instant};

use domain::catalogue::ProductStatus;
use serde_json::{Value, json};
use store::paths;

use crate::{Harness, ids, product, ready};

#[tokio::test]
async fn creates_updates_archives_and_deletes_reach_the_index() {
    let h = Harness::start(&[]).await;
    ready(&h, &h.app).await;
    let q = json!({"query": "lantern"});

    // Create.
    let written = Instant::now();
    h.put("p1", &product("Brass lantern", "home", "v1", 2_500)).await;
    let found = h.eventually(&h.app, q.clone(), |r| r["total"] == 1).await;
    eprintln!("create searchable after {:?}", written.elapsed());
    assert_eq!(found["hits"][0]["priceMinor"], 2_500);

    // Update: the new price and title are what is found.
    let mut changed = product("Copper lantern", "home", "v1", 1_900);
    h.put("p1", &changed).await;
    h.eventually(&h.app, json!({"query": "copper"}), |r| r["hits"][0]["priceMinor"] == 1_900).await;
    h.eventually(&h.app, json!({"query": "brass"}), |r| r["total"] == 0).await;

    // Archive: gone from results.
    changed.status = ProductStatus::Archived;
    h.put("p1", &changed).await;
    h.eventually(&h.app, q.clone(), |r| r["total"] == 0).await;

    // Back to active, then deleted.
    changed.status = ProductStatus::Active;
    h.put("p1", &changed).await;
    h.eventually(&h.app, q.clone(), |r| r["total"] == 1).await;
    h.db.delete(&paths::product("p1").unwrap()).await.unwrap();
    h.eventually(&h.app, q.clone(), |r| r["total"] == 0).await;

    // A second product created after the delete is found alone.
    h.put("p2", &product("Paper lantern", "home", "v1", 900)).await;
    let found = h.eventually(&h.app, q, |r| r["total"] == 1).await;
    assert_eq!(ids(&found), ["p2"]);
}

#[tokio::test]
async fn a_new_instance_catches_up_from_firestore() {
    let h = Harness::start(&[]).await;
    for i in 0..30 {
        h.put(&format!("p{i:02}"), &product(&format!("Teapot {i}"), "kitchen", "v1", 100 + i))
            .await;
    }
    h.eventually(&h.app, json!({"query": "teapot"}), |r| r["total"] == 30).await;
    // Changes while the first instance runs: one archived, one deleted.
    let mut archived = product("Teapot 3", "kitchen", "v1", 103);
    archived.status = ProductStatus::Archived;
    h.put("p03", &archived).await;
    h.db.delete(&paths::product("p04").unwrap()).await.unwrap();

    // Snapshot pages of 7: the new instance reads several pages at one read time.
    let mut vars = h.vars.clone();
    vars.insert("HEARTH_SEARCH_SNAPSHOT_PAGE".into(), "7".into());
    let router = search::router("search", &runtime::Env::from_map(vars)).await.unwrap();
    let second = testkit::spawn_app(router).await;
    let answer = |r: &Value| r["total"] == 28;
    let from_second = h.eventually(&second, json!({"query": "teapot", "limit": 50}), answer).await;
    let from_first = h.eventually(&h.app, json!({"query": "teapot", "limit": 50}), answer).await;
    assert_eq!(ids(&from_first), ids(&from_second), "two replicas, one state");
    assert!(!ids(&from_second).iter().any(|id| id == "p03" || id == "p04"));
}

#[tokio::test]
async fn callables_refuse_retryably_until_caught_up_while_healthz_answers() {
    // Firestore unreachable: the replica can never catch up.
    let h = Harness::start(&[("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")]).await;
    let health = h.app.client.get(h.app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let started = Instant::now();
    let response = h.call_on(&h.app, "searchProducts", json!({"query": "x"})).await;
    // The rate limiter's Firestore call fails first: still a retryable refusal.
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    let response = h.call_on(&h.app, "suggest", json!({"prefix": "x"})).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "UNAVAILABLE", "suggest is not ready either");
    assert!(started.elapsed() < Duration::from_secs(30));
}
