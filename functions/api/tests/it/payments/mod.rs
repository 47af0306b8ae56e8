//! The payments callables over HTTP against the Firestore emulator and the fake provider:
//! reservations, idempotent payments (400 / replay / 409 / 422 / scoping / expiry), rate limits
//! across instances, provider failures.

mod holds;
mod idempotency;
mod limits;
mod reservations;

use std::collections::HashMap;

use domain::inventory::Sku;
use runtime::Env;
use serde_json::{Value, json};
use store::Db;
use store::inventory::Inventory;
use testkit::fake_provider::FakeProvider;
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

pub(crate) struct Harness {
    pub(crate) app: TestApp,
    pub(crate) db: Db,
    pub(crate) project: String,
    pub(crate) fake: FakeProvider,
    pub(crate) vars: HashMap<String, String>,
    pub(crate) pubsub: &'static str,
    _jwks: JwksServer,
}

impl Harness {
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        let firestore = testkit::emulators::firestore().await;
        let pubsub = testkit::emulators::pubsub().await;
        let project = testkit::project_id();
        testkit::pubsub::create_topic(pubsub, &project, "refund-requests").await;
        testkit::pubsub::create_pull_subscription(
            pubsub,
            &project,
            "refund-requests-test",
            "refund-requests",
        )
        .await;
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let fake = FakeProvider::start().await;
        let jwks_url = jwks.url();
        let mut vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("PUBSUB_EMULATOR_HOST", pubsub),
            ("HEARTH_SECURETOKEN_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_STRIPE_API_BASE", fake.base_url.as_str()),
            ("HEARTH_STRIPE_SECRET_KEY", "sk_test_hearth"),
            ("HEARTH_PESAPAL_API_BASE", fake.base_url.as_str()),
            ("HEARTH_PESAPAL_CONSUMER_KEY", "ck"),
            ("HEARTH_PESAPAL_CONSUMER_SECRET", "cs"),
            ("HEARTH_PESAPAL_IPN_ID", "ipn-1"),
            ("HEARTH_PROVIDER_TIMEOUT_SECS", "5"),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let app = serve(&vars).await;
        let state_db = Db::new(store::DbConfig::emulator(project.clone(), firestore));
        Self { app, db: state_db, project, fake, vars, pubsub, _jwks: jwks }
    }

    /// Another instance of the function on the same project (shared Firestore).
    pub(crate) async fn another_instance(&self) -> TestApp {
        serve(&self.vars).await
    }

    /// A product with `units` in stock, priced 12.50 USD.
    pub(crate) async fn product(&self, id: &str, units: i64) -> Sku {
        self.db
            .set(
                &store::paths::product(id).unwrap(),
                &json!({"price_minor": 1250, "currency": "usd"}),
            )
            .await
            .unwrap();
        let sku = Sku::product(id);
        Inventory::new(&self.db).set_stock(&sku, units, 2).await.unwrap();
        sku
    }

    pub(crate) fn token(&self, uid: &str) -> String {
        let mut claims = tokens::firebase_id_claims(&self.project, uid);
        claims["tenant_id"] = json!(domain::tenancy::personal_tenant_id(uid));
        claims["role"] = json!("owner");
        claims["email"] = json!(format!("{uid}@example.com"));
        tokens::sign(&claims, keys::primary())
    }

    pub(crate) async fn call(&self, uid: &str, name: &str, data: Value) -> reqwest::Response {
        call_at(&self.app, &self.token(uid), name, data, None).await
    }

    pub(crate) async fn call_with_key(
        &self,
        uid: &str,
        name: &str,
        data: Value,
        key: &str,
    ) -> reqwest::Response {
        call_at(&self.app, &self.token(uid), name, data, Some(key)).await
    }

    /// Reserves `quantity` of `product` for `uid`; returns the reservation id.
    pub(crate) async fn reserve(&self, uid: &str, product: &str, quantity: i64) -> String {
        let response = self
            .call(uid, "reserveInventory", json!({"productId": product, "quantity": quantity}))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["result"]["reservationId"].as_str().unwrap().to_owned()
    }
}

async fn serve(vars: &HashMap<String, String>) -> TestApp {
    let router = api::router("api", &Env::from_map(vars.clone())).await.unwrap();
    testkit::spawn_app(router).await
}

pub(crate) async fn call_at(
    app: &TestApp,
    token: &str,
    name: &str,
    data: Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/{name}")))
        .bearer_auth(token)
        .json(&json!({ "data": data }));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

/// The callable error status of a response (`{"error": {"status": ...}}`).
pub(crate) async fn error_status(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["status"].as_str().unwrap_or_default().to_owned()
}
