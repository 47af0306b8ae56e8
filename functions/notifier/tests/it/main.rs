//! Integration tests of the notifier against the official Firestore and Pub/Sub emulators and
//! `testkit`'s fake FCM: the app served over real HTTP with the runtime's layers, Pub/Sub push
//! envelopes and Eventarc CloudEvents with signed OIDC tokens, continuation tasks pulled from
//! the real topic and pushed back, one project per test.

mod attacks;
mod costs;
mod flows;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use domain::notify::{Device, Platform};
use gcp::eventarc::{
    DataEncoding, DocumentEventData, FirestoreEvent, FirestoreEventKind, FirestoreEventType,
    encode_document_event,
};
use gcp::firestore::{FirestoreDocument, Value as Fv};
use runtime::Env;
use serde_json::json;
use store::feed::FollowerRecord;
use store::notify::Notifications;
use store::{BulkWriter, Db, RampPolicy, paths};
use testkit::fake_fcm::FakeFcm;
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

pub(crate) const AUDIENCE: &str = "https://notifier.hearth.test/";
pub(crate) const PUSH_SA: &str = "notifier-push@hearth-test.iam.gserviceaccount.com";
pub(crate) const TASKS_SUB: &str = "notify-tasks--test";

pub(crate) struct Harness {
    pub(crate) app: TestApp,
    pub(crate) db: Db,
    pub(crate) fcm: FakeFcm,
    pub(crate) project: String,
    pub(crate) pubsub: &'static str,
    _jwks: JwksServer,
}

impl Harness {
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        let firestore = testkit::emulators::firestore().await;
        let pubsub = testkit::emulators::pubsub().await;
        let project = testkit::project_id();
        testkit::pubsub::create_topic(pubsub, &project, "notify-tasks").await;
        testkit::pubsub::create_pull_subscription(pubsub, &project, TASKS_SUB, "notify-tasks")
            .await;
        let fcm = FakeFcm::start().await;
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let jwks_url = jwks.url();
        let mut vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("PUBSUB_EMULATOR_HOST", pubsub),
            ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
            ("HEARTH_OIDC_ALLOWED_EMAILS", PUSH_SA),
            ("HEARTH_FCM_BASE_URL", fcm.base_url.as_str()),
            ("HEARTH_NOTIFY_RAMP_START_OPS", "10000"),
            ("HEARTH_NOTIFY_OPERATORS", "op-1,op-2"),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let built = notifier::build("notifier", &Env::from_map(vars)).await.expect("notifier");
        let db = built.state.db().clone();
        Self { app: testkit::spawn_app(built.router).await, db, fcm, project, pubsub, _jwks: jwks }
    }

    pub(crate) fn repo(&self) -> Notifications {
        Notifications::new(&self.db)
    }

    /// Pushes `body` to `path` with a valid token.
    pub(crate) async fn push(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url(path))
            .header("content-type", "application/json")
            .bearer_auth(oidc(PUSH_SA))
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Delivers `data` (JSON) to `/pubsub/{topic}` as message `message_id`.
    pub(crate) async fn deliver(
        &self,
        topic: &str,
        message_id: &str,
        data: serde_json::Value,
    ) -> reqwest::Response {
        let body =
            push_envelope(&self.project, topic, message_id, &serde_json::to_vec(&data).unwrap());
        self.push(&format!("/pubsub/{topic}"), body).await
    }

    /// Sends `event` to `path` as Eventarc does, with a valid token (or `bearer`).
    pub(crate) async fn send_event_as(
        &self,
        path: &str,
        event: &FirestoreEvent,
        bearer: Option<&str>,
    ) -> reqwest::Response {
        let ce = encode_document_event(event, DataEncoding::Protobuf);
        let (headers, body) = ce.to_binary().expect("binary CloudEvent");
        let mut request = self.app.client.post(self.app.url(path)).headers(headers).body(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub(crate) async fn send_event(&self, path: &str, event: &FirestoreEvent) -> reqwest::Response {
        self.send_event_as(path, event, Some(&oidc(PUSH_SA))).await
    }

    /// Delivers pulled continuation tasks until none is left; the messages delivered.
    pub(crate) async fn drain_tasks(&self) -> Vec<(String, Vec<u8>)> {
        let mut delivered = Vec::new();
        loop {
            let batch = testkit::pubsub::pull_at_least(
                self.pubsub,
                &self.project,
                TASKS_SUB,
                1,
                std::time::Duration::from_millis(1_500),
            )
            .await;
            if batch.is_empty() {
                return delivered;
            }
            for task in batch {
                let body =
                    push_envelope(&self.project, "notify-tasks", &task.message_id, &task.data);
                let res = self.push("/pubsub/notify-tasks", body).await;
                assert_eq!(res.status(), 204, "{}", res.text().await.unwrap_or_default());
                delivered.push((task.message_id.clone(), task.data.clone()));
            }
        }
    }

    /// Runs the `deliver-deferred` job.
    pub(crate) async fn run_job(&self) -> serde_json::Value {
        let res = self
            .app
            .client
            .post(self.app.url("/jobs/deliver-deferred"))
            .bearer_auth(oidc(PUSH_SA))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Registers one Android device for `uid` with `token`.
    pub(crate) async fn device(&self, uid: &str, token: &str) {
        let device = Device {
            device_id: format!("dev-{token}"),
            token: token.to_owned(),
            platform: Platform::Android,
            seen_at: Utc::now(),
        };
        self.repo()
            .update_devices(uid, move |d| {
                domain::notify::register_device(d, device.clone(), Utc::now(), 10)
            })
            .await
            .unwrap();
    }

    /// Writes `uid`'s notification preferences.
    pub(crate) async fn prefs(&self, uid: &str, notifications: serde_json::Value) {
        let doc = json!({ "theme": "system", "notifications": notifications });
        self.db.set(&paths::user_preferences(uid).unwrap(), &doc).await.unwrap();
    }
}

pub(crate) fn oidc(email: &str) -> String {
    tokens::sign(&tokens::google_oidc_claims(AUDIENCE, email), keys::primary())
}

pub(crate) fn push_envelope(project: &str, topic: &str, message_id: &str, data: &[u8]) -> Vec<u8> {
    gcp::pubsub::build_push_envelope_bytes(&gcp::pubsub::PushEvent {
        message_id: message_id.to_owned(),
        publish_time: Utc::now(),
        attributes: BTreeMap::new(),
        ordering_key: None,
        delivery_attempt: Some(1),
        subscription: format!("projects/{project}/subscriptions/{topic}--notifier"),
        data: data.to_vec(),
    })
    .expect("envelope")
}

pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap()
}

pub(crate) fn order_paid(order: &str, uid: &str) -> serde_json::Value {
    json!({
        "v": 1, "order_id": order, "uid": uid, "provider": "stripe", "payment_id": "pi_1",
        "amount_minor": 125_050, "currency": "kes", "provider_event_id": "evt_1"
    })
}

/// `n` followers of `vendor`.
pub(crate) async fn seed_followers(db: &Db, vendor: &str, n: usize) -> Vec<String> {
    let mut writer =
        BulkWriter::new(db, RampPolicy { start_ops_per_sec: 10_000.0, ..RampPolicy::default() });
    let mut buyers = Vec::with_capacity(n);
    for i in 0..n {
        let buyer = format!("{vendor}-b{i:05}");
        writer.set(
            paths::follow(vendor, &buyer).unwrap(),
            &FollowerRecord::new(vendor, &buyer, at(1_700_000_000 + i as i64)),
        );
        buyers.push(buyer);
    }
    assert!(writer.flush().await.is_complete());
    buyers
}

fn document(project: &str, path: &str, fields: BTreeMap<String, Fv>) -> FirestoreDocument {
    FirestoreDocument {
        name: format!("projects/{project}/databases/(default)/documents/{path}"),
        fields,
        create_time: Some(Utc::now()),
        update_time: Some(Utc::now()),
    }
}

/// The Eventarc event of a change of the document at `path`.
pub(crate) fn doc_event(
    project: &str,
    event_id: &str,
    kind: FirestoreEventKind,
    path: &str,
    old: Option<BTreeMap<String, Fv>>,
    new: Option<BTreeMap<String, Fv>>,
) -> FirestoreEvent {
    let mut event = FirestoreEvent::new(event_id, FirestoreEventType::new(kind), project, path);
    event.time = Some(Utc::now());
    event.data = Some(DocumentEventData {
        value: new.map(|f| document(project, path, f)),
        old_value: old.map(|f| document(project, path, f)),
        update_mask: None,
    });
    event
}

pub(crate) fn post_fields(vendor: &str, active: bool) -> BTreeMap<String, Fv> {
    BTreeMap::from([
        ("vendorId".to_owned(), Fv::String(vendor.to_owned())),
        ("isActive".to_owned(), Fv::Boolean(active)),
        ("createdAt".to_owned(), Fv::Timestamp(at(1_800_000_000))),
        ("caption".to_owned(), Fv::String("fresh bread".to_owned())),
    ])
}

pub(crate) fn follow_fields(vendor: &str, buyer: &str) -> BTreeMap<String, Fv> {
    BTreeMap::from([
        ("vendorId".to_owned(), Fv::String(vendor.to_owned())),
        ("buyerId".to_owned(), Fv::String(buyer.to_owned())),
        ("followedAt".to_owned(), Fv::Timestamp(Utc::now())),
    ])
}

/// The fields of `users/{uid}/signals/{id}` as the pulse writes them (`store::pulse::SignalRecord`).
pub(crate) fn signal_fields(
    uid: &str,
    trade: &str,
    action: &str,
    reason: &str,
) -> BTreeMap<String, Fv> {
    let text = |s: &str| Fv::String(s.to_owned());
    BTreeMap::from([
        ("uid".to_owned(), text(uid)),
        ("strategy_id".to_owned(), text("momo")),
        ("trade_id".to_owned(), text(trade)),
        ("action".to_owned(), text(action)),
        ("reason".to_owned(), text(reason)),
        ("price".to_owned(), Fv::Double(1.105)),
        ("candle_ts".to_owned(), Fv::Timestamp(at(1_800_000_000))),
        ("execution".to_owned(), text("shadow")),
        ("minute".to_owned(), Fv::Timestamp(at(1_800_003_660))),
    ])
}

/// Writes `posts/{id}` as the vendor's client does.
pub(crate) async fn write_post(db: &Db, id: &str, vendor: &str) {
    let record = store::feed::PostRecord::new(vendor, true, at(1_800_000_000), "fresh bread");
    store::feed::Feeds::new(db).write_post(id, &record).await.unwrap();
}
