//! Integration tests of feed-fanout against the official Firestore and Pub/Sub emulators: the
//! app served over real HTTP with the runtime's layers, Eventarc CloudEvents in binary mode
//! with signed OIDC tokens, continuation tasks pulled from the real topic and pushed back,
//! one project per test.

mod attacks;
mod costs;
mod event;
mod race;
mod tasks;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};

use gcp::eventarc::{
    DataEncoding, DocumentEventData, FirestoreEvent, FirestoreEventKind, FirestoreEventType,
    encode_document_event,
};
use gcp::firestore::{FirestoreDocument, Value as Fv};
use runtime::Env;
use store::feed::{FollowerRecord, PostRecord};
use store::{BulkWriter, Db, RampPolicy, paths};
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

/// The audience Eventarc and the push subscription put in their OIDC tokens.
pub(crate) const AUDIENCE: &str = "https://feed-fanout.hearth.test/";
/// The trigger's / push subscription's service account.
pub(crate) const PUSH_SA: &str = "feed-fanout-push@hearth-test.iam.gserviceaccount.com";
/// The pull subscription the tests read continuation tasks from.
pub(crate) const TASKS_SUB: &str = "fanout-tasks--test";

pub(crate) struct Harness {
    pub(crate) app: TestApp,
    pub(crate) db: Db,
    pub(crate) project: String,
    pub(crate) pubsub: &'static str,
    _jwks: JwksServer,
}

impl Harness {
    /// The app with `extra` variables (feed policy overrides), topics and a pull subscription.
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        let firestore = testkit::emulators::firestore().await;
        let pubsub = testkit::emulators::pubsub().await;
        let project = testkit::project_id();
        testkit::pubsub::create_topic(pubsub, &project, "fanout-tasks").await;
        testkit::pubsub::create_pull_subscription(pubsub, &project, TASKS_SUB, "fanout-tasks")
            .await;
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let jwks_url = jwks.url();
        let mut vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("PUBSUB_EMULATOR_HOST", pubsub),
            ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
            ("HEARTH_OIDC_ALLOWED_EMAILS", PUSH_SA),
            ("HEARTH_FANOUT_RAMP_START_OPS", "10000"),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let built =
            feed_fanout::build("feed-fanout", &Env::from_map(vars)).await.expect("feed-fanout");
        let db = built.state.db().clone();
        Self { app: testkit::spawn_app(built.router).await, db, project, pubsub, _jwks: jwks }
    }

    /// Sends `event` as Eventarc does (binary mode, protobuf data) with a valid token.
    pub(crate) async fn send_event(&self, event: &FirestoreEvent) -> reqwest::Response {
        self.send_event_as(event, Some(&oidc(PUSH_SA))).await
    }

    pub(crate) async fn send_event_as(
        &self,
        event: &FirestoreEvent,
        bearer: Option<&str>,
    ) -> reqwest::Response {
        let ce = encode_document_event(event, DataEncoding::Protobuf);
        let (headers, body) = ce.to_binary().expect("binary CloudEvent");
        let mut request = self.app.client.post(self.app.url("/")).headers(headers).body(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// Pushes a raw body to `path` with a valid token.
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

    /// Pulls continuation tasks: waits up to 10 s for at least `at_least`, or (for 0) up to
    /// 1.5 s for any.
    pub(crate) async fn pull_tasks(&self, at_least: usize) -> Vec<testkit::pubsub::Received> {
        let (n, wait) = if at_least == 0 { (1, 1_500) } else { (at_least, 10_000) };
        testkit::pubsub::pull_at_least(
            self.pubsub,
            &self.project,
            TASKS_SUB,
            n,
            std::time::Duration::from_millis(wait),
        )
        .await
    }

    /// Delivers pulled tasks as push deliveries until none is left; returns how many ran.
    pub(crate) async fn drain_tasks(&self) -> usize {
        let mut delivered = 0;
        loop {
            let batch = self.pull_tasks(0).await;
            if batch.is_empty() {
                return delivered;
            }
            for task in batch {
                let body = push_envelope(&self.project, &task.message_id, &task.data);
                let res = self.push("/pubsub/fanout-tasks", body).await;
                assert_eq!(res.status(), 204, "{}", res.text().await.unwrap_or_default());
                delivered += 1;
            }
        }
    }
}

/// A Google OIDC token for `email`, signed with the published key.
pub(crate) fn oidc(email: &str) -> String {
    tokens::sign(&tokens::google_oidc_claims(AUDIENCE, email), keys::primary())
}

/// A Pub/Sub push envelope of `data` with `message_id`.
pub(crate) fn push_envelope(project: &str, message_id: &str, data: &[u8]) -> Vec<u8> {
    gcp::pubsub::build_push_envelope_bytes(&gcp::pubsub::PushEvent {
        message_id: message_id.to_owned(),
        publish_time: Utc::now(),
        attributes: BTreeMap::new(),
        ordering_key: None,
        delivery_attempt: Some(1),
        subscription: format!("projects/{project}/subscriptions/fanout-tasks--feed-fanout"),
        data: data.to_vec(),
    })
    .expect("envelope")
}

pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap()
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

/// The post's fields as stored and as the event carries them.
pub(crate) fn post_fields(vendor: &str, active: bool) -> BTreeMap<String, Fv> {
    BTreeMap::from([
        ("vendorId".to_owned(), Fv::String(vendor.to_owned())),
        ("isActive".to_owned(), Fv::Boolean(active)),
        ("createdAt".to_owned(), Fv::Timestamp(at(1_800_000_000))),
        ("caption".to_owned(), Fv::String("fresh bread".to_owned())),
    ])
}

/// Writes `posts/{id}` (what the vendor's client does).
pub(crate) async fn write_post(db: &Db, id: &str, vendor: &str, active: bool) {
    let record = PostRecord::new(vendor, active, at(1_800_000_000), "fresh bread");
    store::feed::Feeds::new(db).write_post(id, &record).await.unwrap();
}

fn document(project: &str, id: &str, fields: BTreeMap<String, Fv>) -> FirestoreDocument {
    FirestoreDocument {
        name: format!("projects/{project}/databases/(default)/documents/posts/{id}"),
        fields,
        create_time: Some(Utc::now()),
        update_time: Some(Utc::now()),
    }
}

/// The Eventarc event of a post change.
pub(crate) fn post_event(
    project: &str,
    event_id: &str,
    kind: FirestoreEventKind,
    id: &str,
    old: Option<BTreeMap<String, Fv>>,
    new: Option<BTreeMap<String, Fv>>,
) -> FirestoreEvent {
    let mut event = FirestoreEvent::new(
        event_id,
        FirestoreEventType::new(kind),
        project,
        &format!("posts/{id}"),
    );
    event.time = Some(Utc::now());
    event.data = Some(DocumentEventData {
        value: new.map(|f| document(project, id, f)),
        old_value: old.map(|f| document(project, id, f)),
        update_mask: None,
    });
    event
}

/// The buyers whose feed holds `post_id`, checked for duplicates.
pub(crate) async fn holders(db: &Db, post_id: &str) -> HashSet<String> {
    let all = store::feed::Feeds::new(db).holders(post_id).await.unwrap();
    let set: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(set.len(), all.len(), "a feed holds {post_id} twice");
    set
}

/// Asserts that exactly `buyers` hold `post_id` (without printing thousands of ids).
pub(crate) async fn assert_exactly(db: &Db, post_id: &str, buyers: &[String]) {
    let got = holders(db, post_id).await;
    assert_eq!(got.len(), buyers.len(), "feeds holding {post_id}");
    let missing = buyers.iter().filter(|b| !got.contains(*b)).count();
    assert_eq!(missing, 0, "followers without {post_id}");
}
