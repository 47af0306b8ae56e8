//! Integration tests of payment-processor against the Firestore and Pub/Sub emulators and the
//! fake provider: pushes are OIDC-signed with testkit keys, orders are set up through `store`.

mod attacks;
mod costs;
mod push;
mod reconcile;
mod refunds;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::inventory::Sku;
use domain::messages::{PaymentEvent, PaymentEventKind, PaymentProvider, Version};
use gcp::pubsub::{PushEvent, build_push_envelope};

use runtime::Env;
use serde_json::json;
use store::Db;
use store::inventory::{Inventory, ReserveOutcome};
use store::payments::{Order, Payments};
use testkit::fake_provider::FakeProvider;
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

pub(crate) const AUDIENCE: &str = "https://payment-processor.hearth.test/";
pub(crate) const PUSH_SA: &str = "payment-events-push@hearth-test.iam.gserviceaccount.com";
/// The account that may read `/metrics`.
pub(crate) const METRICS_SA: &str = "metrics-reader@hearth-test.iam.gserviceaccount.com";
pub(crate) const PATH: &str = "/pubsub/payment-events";

pub(crate) struct Harness {
    pub(crate) app: TestApp,
    pub(crate) db: Db,
    pub(crate) project: String,
    pub(crate) pubsub: &'static str,
    pub(crate) fake: FakeProvider,
    pub(crate) inventory: Inventory,
    pub(crate) payments: Payments,
    _jwks: JwksServer,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        let firestore = testkit::emulators::firestore().await;
        let pubsub = testkit::emulators::pubsub().await;
        let project = testkit::project_id();
        for topic in ["order-paid", "refund-requests", "order-refunded"] {
            testkit::pubsub::create_topic(pubsub, &project, topic).await;
            testkit::pubsub::create_pull_subscription(
                pubsub,
                &project,
                &format!("{topic}-test"),
                topic,
            )
            .await;
        }
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let fake = FakeProvider::start().await;
        let jwks_url = jwks.url();
        let vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("PUBSUB_EMULATOR_HOST", pubsub),
            ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_SECURETOKEN_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
            ("HEARTH_OIDC_ALLOWED_EMAILS", PUSH_SA),
            ("HEARTH_METRICS_ALLOWED_EMAILS", METRICS_SA),
            ("HEARTH_PESAPAL_API_BASE", fake.base_url.as_str()),
            ("HEARTH_PESAPAL_CONSUMER_KEY", "ck"),
            ("HEARTH_PESAPAL_CONSUMER_SECRET", "cs"),
            ("HEARTH_PESAPAL_IPN_ID", "ipn-1"),
            ("HEARTH_STRIPE_API_BASE", fake.base_url.as_str()),
            ("HEARTH_STRIPE_SECRET_KEY", "sk_test_hearth"),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let built =
            payment_processor::build("payment-processor", &Env::from_map(vars)).await.unwrap();
        let db = built.state.db().clone();
        Self {
            app: testkit::spawn_app(built.router).await,
            inventory: Inventory::new(&db),
            payments: Payments::new(&db),
            db,
            project,
            pubsub,
            fake,
            _jwks: jwks,
        }
    }

    /// A product with `units` in stock over `shards` shards, priced 10.00 USD.
    pub(crate) async fn product(&self, id: &str, units: i64, shards: u32) -> Sku {
        let sku = Sku::product(id);
        self.db
            .set(
                &store::paths::product(id).unwrap(),
                &json!({"price_minor": 1000, "currency": "USD"}),
            )
            .await
            .unwrap();
        self.inventory.set_stock(&sku, units, shards).await.unwrap();
        sku
    }

    /// `uid` reserves `quantity` of `sku` and orders it; the payment `pi_{order}` is recorded
    /// with `provider`. Returns the order id.
    pub(crate) async fn order(
        &self,
        uid: &str,
        sku: &Sku,
        quantity: i64,
        provider: PaymentProvider,
    ) -> String {
        let order_id = format!("ord-{uid}");
        let reservation = format!("res-{uid}");
        let outcome =
            self.inventory.reserve(uid, sku, quantity, &reservation, Utc::now()).await.unwrap();
        assert!(matches!(outcome, ReserveOutcome::Reserved { .. }), "{outcome:?}");
        let payment_id = format!("pay-{uid}");
        self.payments
            .open_order(uid, &order_id, &payment_id, &[reservation], provider, Utc::now())
            .await
            .unwrap()
            .unwrap();
        self.payments
            .record_provider_payment(
                &order_id,
                &payment_id,
                &format!("pi_{order_id}"),
                None,
                Utc::now(),
            )
            .await
            .unwrap();
        order_id
    }

    /// `uid` orders `quantity` of `sku` and pays with Pesapal: the order is submitted to the
    /// fake Pesapal with its real amount and currency, and the tracking id recorded. Returns
    /// (order id, tracking id).
    pub(crate) async fn pesapal_order(
        &self,
        uid: &str,
        sku: &Sku,
        quantity: i64,
    ) -> (String, String) {
        let order_id = self.order(uid, sku, quantity, PaymentProvider::Pesapal).await;
        let order = self.order_doc(&order_id).await;
        let payment_id = format!("pay-{uid}");
        let client = providers::PesapalClient::new(
            providers::PesapalSettings {
                base_url: self.fake.base_url.clone(),
                consumer_key: "ck".to_owned(),
                consumer_secret: secrecy::SecretString::from("cs".to_owned()),
                ipn_id: "ipn-1".to_owned(),
                callback_url: "https://shop.test/back".to_owned(),
            },
            providers::CallPolicy::default(),
        )
        .unwrap();
        let created = client
            .submit_order(&providers::NewPayment {
                order_id: order_id.clone(),
                payment_id: payment_id.clone(),
                amount_minor: order.amount_minor,
                currency: order.currency.clone(),
                description: "test order".to_owned(),
                email: None,
                idempotency_key: payment_id.clone(),
            })
            .await
            .unwrap();
        let tracking = created.provider_payment_id;
        self.payments
            .record_provider_payment(&order_id, &payment_id, &tracking, None, Utc::now())
            .await
            .unwrap();
        (order_id, tracking)
    }

    /// The dead letter a 200 acknowledgement names.
    pub(crate) async fn dead_letter_of(
        &self,
        response: reqwest::Response,
    ) -> domain::dead_letter::DeadLetter {
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["acknowledged"], json!(true), "{body}");
        let id = body["deadLetterId"].as_str().unwrap().to_owned();
        store::DeadLetters::new(&self.db).get(&id).await.unwrap().expect("dead letter recorded")
    }

    /// Runs `POST /jobs/reconcile-payments` as Cloud Scheduler does.
    pub(crate) async fn reconcile(&self) -> serde_json::Value {
        let token = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, PUSH_SA), keys::primary());
        let response = self
            .app
            .client
            .post(self.app.url("/jobs/reconcile-payments"))
            .bearer_auth(token)
            .header("x-cloudscheduler", "true")
            .header("x-cloudscheduler-jobname", "reconcile-payments")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub(crate) async fn order_doc(&self, id: &str) -> Order {
        self.payments.order(id).await.unwrap().unwrap()
    }

    /// Pushes `event` as message `message_id`, OIDC-signed.
    pub(crate) async fn push(&self, message_id: &str, event: &PaymentEvent) -> reqwest::Response {
        self.push_raw(message_id, build_envelope(message_id, event)).await
    }

    pub(crate) async fn push_raw(&self, _message_id: &str, body: Vec<u8>) -> reqwest::Response {
        self.push_to(PATH, body).await
    }

    /// Pushes `body` (an envelope) to `path`, OIDC-signed.
    pub(crate) async fn push_to(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        let token = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, PUSH_SA), keys::primary());
        self.app
            .client
            .post(self.app.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Pushes until acknowledged (2xx), as Pub/Sub redelivers after 409 / 5xx.
    pub(crate) async fn deliver(&self, message_id: &str, event: &PaymentEvent) -> u16 {
        for _ in 0..100 {
            let status = self.push(message_id, event).await.status().as_u16();
            if (200..300).contains(&status) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{message_id} was never acknowledged");
    }

    /// Messages of `topic`'s test subscription.
    pub(crate) async fn published(&self, topic: &str, n: usize) -> Vec<serde_json::Value> {
        let mut got = testkit::pubsub::pull_at_least(
            self.pubsub,
            &self.project,
            &format!("{topic}-test"),
            n,
            Duration::from_secs(10),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        got.extend(
            testkit::pubsub::pull_at_least(
                self.pubsub,
                &self.project,
                &format!("{topic}-test"),
                1,
                Duration::from_millis(200),
            )
            .await,
        );
        got.iter().map(|r| serde_json::from_slice(&r.data).unwrap()).collect()
    }
}

pub(crate) fn stripe_event(
    event_id: &str,
    order_id: &str,
    kind: PaymentEventKind,
    at: DateTime<Utc>,
) -> PaymentEvent {
    PaymentEvent {
        v: Version,
        provider: PaymentProvider::Stripe,
        provider_event_id: event_id.to_owned(),
        kind,
        provider_type: format!("{kind:?}"),
        order_id: order_id.to_owned(),
        payment_id: format!("pi_{order_id}"),
        // The facts a real event reports are checked against the order; tests of other
        // behaviour leave them out (tests/it/attacks.rs sends them).
        amount_minor: None,
        currency: None,
        raw_status: None,
        amount_refunded_minor: None,
        occurred_at: at,
    }
}

pub(crate) fn build_envelope(message_id: &str, event: &PaymentEvent) -> Vec<u8> {
    build_push_envelope(&PushEvent {
        message_id: message_id.to_owned(),
        publish_time: Utc::now(),
        attributes: BTreeMap::from([("schema_version".to_owned(), "1".to_owned())]),
        ordering_key: Some(event.order_id.clone()),
        delivery_attempt: Some(1),
        subscription: "projects/hearth-test/subscriptions/payment-events--payment-processor"
            .to_owned(),
        data: event.clone(),
    })
    .unwrap()
}
