//! scheduled-cleanup against the Firestore emulator: expired records go and unexpired stay,
//! two concurrent runs do not double anything, an interrupted run finishes on the next, and
//! callers and job names are checked.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use testkit::keys::primary;
use testkit::tokens;

mod attacks;
mod costs;
mod counters;
mod feed_items;

const AUDIENCE: &str = "https://scheduled-cleanup.example.run.app";
const SCHEDULER: &str = "hearth-scheduler@demo.iam.gserviceaccount.com";
/// The service account that may read `/metrics`.
const METRICS_READER: &str = "metrics-reader@demo.iam.gserviceaccount.com";

struct Harness {
    app: testkit::TestApp,
    host: &'static str,
    project: String,
    http: reqwest::Client,
    _jwks: testkit::jwks::JwksServer,
}

async fn harness(page_size: u32, max_pages: u64) -> Harness {
    let host = testkit::emulators::firestore().await;
    let project = testkit::project_id();
    let jwks = testkit::jwks::JwksServer::start(&[primary()], 300).await;
    let vars: HashMap<String, String> = [
        ("GOOGLE_CLOUD_PROJECT", project.as_str()),
        ("FIRESTORE_EMULATOR_HOST", host),
        ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks.url().as_str()),
        ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
        ("HEARTH_OIDC_ALLOWED_EMAILS", SCHEDULER),
        ("HEARTH_METRICS_ALLOWED_EMAILS", METRICS_READER),
        ("HEARTH_CLEANUP_PAGE_SIZE", &page_size.to_string()),
        ("HEARTH_CLEANUP_MAX_PAGES", &max_pages.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let env = runtime::Env::from_map(vars);
    let router = scheduled_cleanup::router("scheduled-cleanup", &env).await.unwrap();
    let app = testkit::spawn_app(router).await;
    Harness {
        app,
        host,
        project,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        _jwks: jwks,
    }
}

impl Harness {
    fn docs_url(&self) -> String {
        format!("http://{}/v1/projects/{}/databases/(default)/documents", self.host, self.project)
    }

    async fn put_record(&self, id: &str, expires_at: DateTime<Utc>) {
        let body = json!({"fields": {
            "state": {"stringValue": "done"},
            "expires_at": {"timestampValue": expires_at.to_rfc3339()},
        }});
        let res = self
            .http
            .patch(format!("{}/idempotency/{id}", self.docs_url()))
            .bearer_auth("owner")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    }

    /// The function's `/metrics` text, read as the metrics reader.
    async fn metrics_text(&self) -> String {
        let token = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, METRICS_READER), primary());
        let res = self.app.client.get(self.app.url("/metrics")).bearer_auth(token).send().await;
        let res = res.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    async fn remaining_ids(&self) -> Vec<String> {
        let res: Value = self
            .http
            .get(format!("{}/idempotency?pageSize=1000", self.docs_url()))
            .bearer_auth("owner")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut ids: Vec<String> = res["documents"]
            .as_array()
            .map(|docs| {
                docs.iter()
                    .map(|d| d["name"].as_str().unwrap().rsplit('/').next().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    async fn run(&self, job: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self
            .app
            .client
            .post(self.app.url(&format!("/jobs/{job}")))
            .header("X-CloudScheduler", "true")
            .header("X-CloudScheduler-JobName", format!("projects/p/locations/l/jobs/{job}"))
            .header("User-Agent", "Google-Cloud-Scheduler");
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }
}

impl Harness {
    /// Runs `job` twice at once; both must answer 200. Returns the sum of their `changed`.
    async fn run_twice_at_once(&self, job: &str) -> u64 {
        let token = scheduler_token();
        let (a, b) = tokio::join!(self.run(job, Some(&token)), self.run(job, Some(&token)));
        assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
        a.1["changed"].as_u64().unwrap() + b.1["changed"].as_u64().unwrap()
    }
}

fn scheduler_token() -> String {
    tokens::sign(&tokens::google_oidc_claims(AUDIENCE, SCHEDULER), primary())
}

async fn seed(h: &Harness, expired: usize, live: usize) {
    let now = Utc::now();
    for i in 0..expired {
        h.put_record(&format!("expired-{i:03}"), now - chrono::Duration::minutes(5 + i as i64))
            .await;
    }
    for i in 0..live {
        h.put_record(&format!("live-{i:03}"), now + chrono::Duration::hours(1)).await;
    }
}

#[tokio::test]
async fn expired_records_go_and_unexpired_ones_stay() {
    let h = harness(7, 100).await;
    seed(&h, 20, 5).await;
    let (status, body) = h.run("prune-idempotency", Some(&scheduler_token())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"], "prune-idempotency");
    assert_eq!(body["changed"], 20, "{body}");
    assert_eq!(body["remaining"], false, "{body}");
    let left = h.remaining_ids().await;
    assert_eq!(left, (0..5).map(|i| format!("live-{i:03}")).collect::<Vec<_>>());
    let (_, again) = h.run("prune-idempotency", Some(&scheduler_token())).await;
    assert_eq!((again["examined"].clone(), again["changed"].clone()), (json!(0), json!(0)));
}

#[tokio::test]
async fn two_concurrent_runs_do_not_double_anything() {
    let h = harness(5, 100).await;
    seed(&h, 40, 3).await;
    let changed = h.run_twice_at_once("prune-idempotency").await;
    assert_eq!(changed, 40, "each expired record deleted and counted once");
    assert_eq!(h.remaining_ids().await.len(), 3);
}

#[tokio::test]
async fn an_interrupted_run_finishes_on_the_next() {
    // One page of 10 per run: the first run stops with work left, the next ones finish it.
    let h = harness(10, 1).await;
    seed(&h, 25, 2).await;
    let token = scheduler_token();
    let (_, first) = h.run("prune-idempotency", Some(&token)).await;
    assert_eq!(
        (first["changed"].clone(), first["remaining"].clone()),
        (json!(10), json!(true)),
        "{first}"
    );
    let mut total = 10;
    for _ in 0..3 {
        let (_, next) = h.run("prune-idempotency", Some(&token)).await;
        total += next["changed"].as_u64().unwrap();
    }
    assert_eq!(total, 25);
    assert_eq!(h.remaining_ids().await.len(), 2);
}

#[tokio::test]
async fn callers_and_job_names_are_checked() {
    let h = harness(10, 10).await;
    seed(&h, 3, 0).await;
    let (status, _) = h.run("prune-idempotency", None).await;
    assert_eq!(status, 401, "no token");
    let forged = tokens::tamper_signature(&scheduler_token());
    assert_eq!(h.run("prune-idempotency", Some(&forged)).await.0, 401, "forged token");
    let stranger =
        tokens::sign(&tokens::google_oidc_claims(AUDIENCE, "intruder@evil.example"), primary());
    assert_eq!(h.run("prune-idempotency", Some(&stranger)).await.0, 401, "unknown caller");
    assert_eq!(h.run("drop-all-tables", Some(&scheduler_token())).await.0, 404, "unknown job");
    assert_eq!(h.remaining_ids().await.len(), 3, "nothing was deleted by refused calls");

    // The Scheduler header must name the job of the path.
    let res = h
        .app
        .client
        .post(h.app.url("/jobs/prune-idempotency"))
        .bearer_auth(scheduler_token())
        .header("X-CloudScheduler", "true")
        .header("X-CloudScheduler-JobName", "expire-feed-items")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.remaining_ids().await.len(), 3);
}

pub(crate) mod reservations {
    //! `expire-reservations`: held reservations past their hold go back to stock exactly once.

    use domain::inventory::Sku;
    use store::inventory::{Inventory, ReserveOutcome};
    use store::{Db, DbConfig};

    use super::*;

    /// `expired` reservations whose hold ended 5 minutes ago and `live` ones still held, of 2
    /// units each, on a product with 100 units in 5 shards.
    pub(crate) async fn seed(h: &Harness, expired: usize, live: usize) -> (Inventory, Sku) {
        let db = Db::new(DbConfig::emulator(h.project.clone(), h.host));
        let inventory = Inventory::new(&db);
        let sku = Sku::product("lamp");
        inventory.set_stock(&sku, 100, 5).await.unwrap();
        let past = Utc::now() - chrono::Duration::minutes(20);
        for i in 0..expired + live {
            let at = if i < expired { past } else { Utc::now() };
            let outcome = inventory
                .reserve(&format!("buyer-{i}"), &sku, 2, &format!("r-{i:03}"), at)
                .await
                .unwrap();
            assert!(matches!(outcome, ReserveOutcome::Reserved { .. }), "{outcome:?}");
        }
        (inventory, sku)
    }

    async fn available(inventory: &Inventory, sku: &Sku) -> i64 {
        inventory.availability(sku).await.unwrap().unwrap().0
    }

    #[tokio::test]
    async fn expired_holds_return_their_units_and_live_ones_stay() {
        let h = harness(4, 100).await;
        let (inventory, sku) = seed(&h, 9, 3).await;
        assert_eq!(available(&inventory, &sku).await, 100 - 24);
        let (status, body) = h.run("expire-reservations", Some(&scheduler_token())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["changed"], 9, "{body}");
        assert_eq!(available(&inventory, &sku).await, 100 - 6, "only the live holds remain");
        let (_, again) = h.run("expire-reservations", Some(&scheduler_token())).await;
        assert_eq!(again["changed"], 0, "{again}");
        assert_eq!(available(&inventory, &sku).await, 94, "nothing returned twice");
    }

    #[tokio::test]
    async fn two_concurrent_runs_return_each_hold_once() {
        let h = harness(3, 100).await;
        let (inventory, sku) = seed(&h, 12, 2).await;
        assert_eq!(h.run_twice_at_once("expire-reservations").await, 12);
        assert_eq!(available(&inventory, &sku).await, 100 - 4);
    }

    #[tokio::test]
    async fn an_interrupted_run_finishes_on_the_next() {
        let h = harness(5, 1).await;
        let (inventory, sku) = seed(&h, 12, 1).await;
        let token = scheduler_token();
        let (_, first) = h.run("expire-reservations", Some(&token)).await;
        assert_eq!(
            (first["changed"].clone(), first["remaining"].clone()),
            (json!(5), json!(true)),
            "{first}"
        );
        for _ in 0..3 {
            h.run("expire-reservations", Some(&token)).await;
        }
        assert_eq!(available(&inventory, &sku).await, 100 - 2);
    }
}
