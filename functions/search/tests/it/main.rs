//! Integration tests of the search function against the Firestore emulator: the callables over
//! real HTTP with the runtime's layers and signed Firebase ID tokens, and the replica kept in
//! sync by the real listen stream. Products and vendors are written at the store level (the
//! documents the catalogue callables write), one project per test.

mod attacks;
mod costs;
mod queries;
mod replica;
mod typesense;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use domain::catalogue::{Product, ProductStatus, Vendor};
use runtime::Env;
use serde_json::{Value, json};
use store::{Db, paths};
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

pub(crate) struct Harness {
    pub(crate) app: TestApp,
    pub(crate) db: Db,
    pub(crate) project: String,
    pub(crate) vars: HashMap<String, String>,
    _jwks: JwksServer,
}

impl Harness {
    /// The catalogue written by `seed` first, then the function started on it.
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        let firestore = testkit::emulators::firestore().await;
        let project = testkit::project_id();
        let db = Db::new(store::DbConfig::emulator(project.clone(), firestore));
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let jwks_url = jwks.url();
        let mut vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("HEARTH_SECURETOKEN_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        // A first write, so the project exists before the function reads it.
        db.set(&paths::vendor("v0").unwrap(), &vendor("Nobody", "nobody")).await.unwrap();
        let app = serve(&vars).await;
        Self { app, db, project, vars, _jwks: jwks }
    }

    pub(crate) fn token(&self, uid: &str) -> String {
        tokens::sign(&tokens::firebase_id_claims(&self.project, uid), keys::primary())
    }

    pub(crate) async fn put(&self, id: &str, product: &Product) {
        self.db.set(&paths::product(id).unwrap(), product).await.unwrap();
    }

    pub(crate) async fn put_vendor(&self, id: &str, vendor: &Vendor, followers: i64) {
        let mut doc = serde_json::to_value(vendor).unwrap();
        doc["followerCount"] = json!(followers);
        self.db.set(&paths::vendor(id).unwrap(), &doc).await.unwrap();
    }

    pub(crate) async fn call_on(
        &self,
        app: &TestApp,
        name: &str,
        data: Value,
    ) -> reqwest::Response {
        app.client
            .post(app.url(&format!("/{name}")))
            .bearer_auth(self.token("buyer-1"))
            .json(&json!({ "data": data }))
            .send()
            .await
            .unwrap()
    }

    /// Waits until `search` for `data` (on `app`) satisfies `check`; the last result.
    pub(crate) async fn eventually(
        &self,
        app: &TestApp,
        data: Value,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let response = self.call_on(app, "searchProducts", data.clone()).await;
            if response.status() == 200 {
                let body: Value = response.json().await.unwrap();
                if check(&body["result"]) {
                    return body["result"].clone();
                }
                assert!(Instant::now() < deadline, "never satisfied; last {body}");
            } else {
                assert_eq!(response.status(), 503, "only 'not ready yet' while waiting");
                assert!(Instant::now() < deadline, "never ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(crate) async fn ok_on(h: &Harness, app: &TestApp, name: &str, data: Value) -> Value {
    let response = h.call_on(app, name, data).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

async fn serve(vars: &HashMap<String, String>) -> TestApp {
    let router = search::router("search", &Env::from_map(vars.clone())).await.unwrap();
    testkit::spawn_app(router).await
}

pub(crate) fn vendor(name: &str, handle: &str) -> Vendor {
    Vendor { name: name.into(), handle: handle.into(), avatar_url: None }
}

pub(crate) fn product(title: &str, category: &str, vendor_id: &str, price: i64) -> Product {
    Product {
        vendor_id: vendor_id.into(),
        vendor_name: format!("Vendor {vendor_id}"),
        vendor_avatar_url: None,
        title: title.into(),
        description: format!("A fine {title}"),
        category: category.into(),
        tags: vec![],
        images: vec![format!("https://img.example.com/{vendor_id}.png")],
        price_minor: price,
        currency: "usd".into(),
        variants: vec![],
        status: ProductStatus::Active,
        in_stock: true,
    }
}

/// The ids of a result's hits.
pub(crate) fn ids(result: &Value) -> Vec<String> {
    result["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the function answers (the replica caught up).
pub(crate) async fn ready(h: &Harness, app: &TestApp) {
    h.eventually(app, json!({}), |_| true).await;
}
