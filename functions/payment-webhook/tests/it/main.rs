//! Integration tests of payment-webhook against the Firestore and Pub/Sub emulators: the app is
//! served over HTTP with the runtime's layers; every refused request is followed by a valid
//! sentinel event, and the `payment-events` subscription must then hold the sentinel only,
//! which proves the refused request published nothing.

mod attacks;
mod costs;
mod dedupe;
mod pesapal;
mod stripe;

use std::collections::HashMap;
use std::time::Duration;

use domain::messages::PaymentEvent;

use runtime::Env;
use serde_json::{Value, json};
use testkit::TestApp;
use testkit::pubsub::Received;

/// The secrets the app is configured with: the current one and the next one (rotation).
pub(crate) const CURRENT: &str = "whsec_current_0123456789";
pub(crate) const NEXT: &str = "whsec_next_9876543210";
/// A secret that was rotated out.
pub(crate) const RETIRED: &str = "whsec_retired_5555";

const SUBSCRIPTION: &str = "payment-events-test";

pub(crate) struct Harness {
    pub(crate) app: TestApp,
    pub(crate) project: String,
    pub(crate) pubsub: &'static str,
    pub(crate) db: store::Db,
    /// The environment the app was built from.
    pub(crate) vars: HashMap<String, String>,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With extra environment variables.
    pub(crate) async fn start_with(extra: &[(&str, &str)]) -> Self {
        let firestore = testkit::emulators::firestore().await;
        let pubsub = testkit::emulators::pubsub().await;
        let project = testkit::project_id();
        testkit::pubsub::create_topic(pubsub, &project, "payment-events").await;
        testkit::pubsub::create_subscription(
            pubsub,
            &project,
            SUBSCRIPTION,
            json!({
                "topic": format!("projects/{project}/topics/payment-events"),
                "enableMessageOrdering": true,
            }),
        )
        .await;
        let secrets = format!("{CURRENT},{NEXT}");
        let vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("PUBSUB_EMULATOR_HOST", pubsub),
            ("HEARTH_STRIPE_WEBHOOK_SECRETS", secrets.as_str()),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let built =
            payment_webhook::build("payment-webhook", &Env::from_map(vars.clone())).await.unwrap();
        let db = built.state.db().clone();
        Self { app: testkit::spawn_app(built.router).await, project, pubsub, db, vars }
    }

    /// An order `order_id` of 1 unit (10.00 KES) whose Pesapal payment has the tracking id
    /// `tracking`, made through `store` as the api makes it.
    pub(crate) async fn pesapal_order(&self, order_id: &str, tracking: &str) {
        let product = format!("p-{order_id}");
        self.db
            .set(
                &store::paths::product(&product).unwrap(),
                &json!({"price_minor": 1000, "currency": "KES"}),
            )
            .await
            .unwrap();
        let inventory = store::inventory::Inventory::new(&self.db);
        let sku = domain::inventory::Sku::product(&product);
        inventory.set_stock(&sku, 5, 1).await.unwrap();
        let now = chrono::Utc::now();
        let uid = format!("buyer-{order_id}");
        let reservation = format!("res-{order_id}");
        inventory.reserve(&uid, &sku, 1, &reservation, now).await.unwrap();
        let payments = store::payments::Payments::new(&self.db);
        let payment = format!("pay-{order_id}");
        payments
            .open_order(
                &uid,
                order_id,
                &payment,
                &[reservation],
                domain::messages::PaymentProvider::Pesapal,
                now,
            )
            .await
            .unwrap()
            .unwrap();
        payments.record_provider_payment(order_id, &payment, tracking, None, now).await.unwrap();
    }

    /// POSTs `body` to `/stripe` with `signature`.
    pub(crate) async fn stripe(&self, body: &[u8], signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .app
            .client
            .post(self.app.url("/stripe"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        request.send().await.unwrap()
    }

    /// POSTs `body` signed now with `secret`.
    pub(crate) async fn stripe_signed(&self, body: &Value, secret: &str) -> reqwest::Response {
        let bytes = serde_json::to_vec(body).unwrap();
        let header = providers::stripe::sign(secret, chrono::Utc::now().timestamp(), &bytes);
        self.stripe(&bytes, Some(&header)).await
    }

    /// Messages on `payment-events` until `n` arrived (or 10 s), then a short quiet period so
    /// late extras would be seen too.
    pub(crate) async fn published(&self, n: usize) -> Vec<Received> {
        let mut got = testkit::pubsub::pull_at_least(
            self.pubsub,
            &self.project,
            SUBSCRIPTION,
            n,
            Duration::from_secs(10),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        got.extend(
            testkit::pubsub::pull_at_least(
                self.pubsub,
                &self.project,
                SUBSCRIPTION,
                1,
                Duration::from_millis(200),
            )
            .await,
        );
        got
    }

    /// Sends a valid sentinel event and asserts it is the only message published so far.
    pub(crate) async fn assert_nothing_else_published(&self) {
        let sentinel = stripe_event("evt_sentinel", "payment_intent.succeeded", "ord_sentinel");
        assert_eq!(self.stripe_signed(&sentinel, CURRENT).await.status(), 200);
        let got = self.published(1).await;
        let events: Vec<PaymentEvent> = got.iter().map(decode).collect();
        assert_eq!(events.len(), 1, "only the sentinel may be published: {events:?}");
        assert_eq!(events[0].provider_event_id, "evt_sentinel");
    }
}

/// A Stripe event of `event_type` for our order `order_id`.
pub(crate) fn stripe_event(id: &str, event_type: &str, order_id: &str) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "type": event_type,
        "data": {"object": {
            "id": format!("pi_{order_id}"),
            "object": "payment_intent",
            "amount": 2500,
            "currency": "usd",
            "status": "succeeded",
            "metadata": {"order_id": order_id}
        }}
    })
}

pub(crate) fn decode(received: &Received) -> PaymentEvent {
    serde_json::from_slice(&received.data).expect("a PaymentEvent")
}
