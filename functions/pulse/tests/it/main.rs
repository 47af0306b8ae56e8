//! Integration tests of pulse against the official Firestore and Pub/Sub emulators: the app
//! served over real HTTP with the runtime's layers, Scheduler calls and push deliveries with
//! signed OIDC tokens, tasks pulled from the real topic, one project per test. The stream's
//! processed candles are written as the market stream stores them (`store::market::BarRecord`).

mod attacks;
mod costs;
mod job;
mod trades;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::market::candle::ts_id;
use domain::market::{Granularity, Label, LabelBarrier, StreamKey};
use domain::messages::{PulseTask, StrategyRef, Version};
use domain::pulse::{EntrySignal, ShadowTrade, Sides, Strategy, trade_id};
use runtime::Env;
use serde_json::{Value, json};
use store::market::BarRecord;
use store::{Db, paths};
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

/// The audience Scheduler and the push subscription put in their OIDC tokens.
pub(crate) const AUDIENCE: &str = "https://pulse.hearth.test/";
/// The Scheduler's and the push subscription's service account.
pub(crate) const PUSH_SA: &str = "pulse-push@hearth-test.iam.gserviceaccount.com";
/// The pull subscription the tests read tasks from.
pub(crate) const TASKS_SUB: &str = "pulse-tasks--test";

pub(crate) struct Harness {
    pub(crate) app: TestApp,
    pub(crate) db: Db,
    pub(crate) project: String,
    pub(crate) pubsub: &'static str,
    _jwks: JwksServer,
}

impl Harness {
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        let firestore = testkit::emulators::firestore().await;
        let pubsub = testkit::emulators::pubsub().await;
        let project = testkit::project_id();
        testkit::pubsub::create_topic(pubsub, &project, "pulse-tasks").await;
        testkit::pubsub::create_pull_subscription(pubsub, &project, TASKS_SUB, "pulse-tasks").await;
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let jwks_url = jwks.url();
        let mut vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("PUBSUB_EMULATOR_HOST", pubsub),
            ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
            ("HEARTH_OIDC_ALLOWED_EMAILS", PUSH_SA),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let built = pulse::build("pulse", &Env::from_map(vars)).await.expect("pulse");
        let db = built.state.db().clone();
        Self { app: testkit::spawn_app(built.router).await, db, project, pubsub, _jwks: jwks }
    }

    /// Pushes `body` to `path` with `bearer` (or none).
    pub(crate) async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        bearer: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .app
            .client
            .post(self.app.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// Delivers `task` as Pub/Sub push message `message_id`; returns the status.
    pub(crate) async fn deliver(&self, message_id: &str, task: &PulseTask) -> u16 {
        let body = push_envelope(&self.project, message_id, &serde_json::to_vec(task).unwrap());
        let res = self.post("/pubsub/pulse-tasks", body, Some(&oidc(PUSH_SA))).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, 204, "{message_id} was not run: {text}");
        status
    }

    /// Calls the job as Cloud Scheduler does, for the minute of `scheduled`.
    pub(crate) async fn run_job(&self, job: &str, scheduled: DateTime<Utc>) -> (u16, Value) {
        let res = self
            .app
            .client
            .post(self.app.url(&format!("/jobs/{job}")))
            .header("X-CloudScheduler", "true")
            .header("X-CloudScheduler-JobName", format!("projects/p/locations/l/jobs/{job}"))
            .header("X-CloudScheduler-ScheduleTime", scheduled.to_rfc3339())
            .bearer_auth(oidc(PUSH_SA))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    /// Pulls and acknowledges every task published so far (waits up to 3 s for the first).
    pub(crate) async fn pulled_tasks(&self, at_least: usize) -> Vec<PulseTask> {
        let wait = std::time::Duration::from_millis(if at_least == 0 { 1_500 } else { 10_000 });
        let got = testkit::pubsub::pull_at_least(
            self.pubsub,
            &self.project,
            TASKS_SUB,
            at_least.max(1),
            wait,
        )
        .await;
        got.iter().map(|m| serde_json::from_slice(&m.data).expect("a pulse task")).collect()
    }

    pub(crate) async fn seed_strategy(&self, tenant: &str, id: &str, strategy: &Strategy) {
        self.db.set(&paths::strategy(tenant, id).unwrap(), strategy).await.unwrap();
    }

    pub(crate) async fn seed_status(&self, uid: &str, enabled: bool, mode: &str) {
        let status = json!({"enabled": enabled, "mode": mode});
        self.db.set(&paths::user_trading_status(uid).unwrap(), &status).await.unwrap();
    }

    /// Writes a processed candle of `stream` as the market stream stores it.
    pub(crate) async fn seed_bar(&self, stream: &StreamKey, bar: &BarRecord) {
        let path = paths::stream_bar(&stream.id(), &ts_id(bar.ts)).unwrap();
        self.db.set(&path, bar).await.unwrap();
    }

    pub(crate) async fn trade(
        &self,
        uid: &str,
        strategy: &str,
        entry: DateTime<Utc>,
    ) -> Option<ShadowTrade> {
        let id = trade_id(strategy, entry);
        self.db.get(&paths::shadow_trade(uid, &id).unwrap()).await.unwrap()
    }

    pub(crate) async fn ledger(
        &self,
        tenant: &str,
        uid: &str,
        strategy: &str,
        entry: DateTime<Utc>,
    ) -> Option<Value> {
        let id = format!("{uid}-{}", trade_id(strategy, entry));
        self.db.get(&paths::ledger_trade(tenant, &id).unwrap()).await.unwrap()
    }

    pub(crate) async fn signal(&self, uid: &str, id: &str) -> Option<Value> {
        self.db.get(&paths::signal(uid, id).unwrap()).await.unwrap()
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
        subscription: format!("projects/{project}/subscriptions/pulse-tasks--pulse"),
        data: data.to_vec(),
    })
    .expect("envelope")
}

/// The start of minute `m` of the scripted series (2026-01-05T13:00Z + m minutes).
pub(crate) fn t(m: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 13, 0, 0).unwrap() + TimeDelta::minutes(m)
}

pub(crate) fn eur_usd_m1() -> StreamKey {
    StreamKey::new("EUR_USD", Granularity::M1).unwrap()
}

/// A strategy on EUR_USD M1: long or short when the scaled return crosses 1.5, profit-take at
/// 2 sigma, stop-loss at 1 sigma, vertical barrier after 5 candles, 1,000 notional at 1 %.
pub(crate) fn strategy(uids: &[&str]) -> Strategy {
    Strategy {
        name: "z-cross".into(),
        assigned_uids: uids.iter().map(|u| (*u).to_owned()).collect(),
        instrument: "EUR_USD".into(),
        granularity: "M1".into(),
        enabled: true,
        entry: EntrySignal::VolScaledReturn { threshold: 1.5 },
        sides: Sides::Both,
        take_profit: 2.0,
        stop_loss: 1.0,
        max_candles: 5,
        notional: 1_000.0,
        vol_target: 0.01,
        max_notional: 10_000.0,
    }
}

/// A processed candle at minute `m` with sigma 1 % and scaled return `z`.
pub(crate) fn bar(m: i64, high: f64, low: f64, close: f64, z: f64) -> BarRecord {
    BarRecord {
        ts: t(m),
        o: close,
        h: high,
        l: low,
        c: close,
        v: 10.0,
        bid: None,
        ask: None,
        ret: Some(0.001),
        vol: Some(0.01),
        scaled: Some(z),
        label: None,
    }
}

/// `bar` with a resolved label.
pub(crate) fn labelled(mut b: BarRecord, value: i8) -> BarRecord {
    let barrier = match value {
        1 => LabelBarrier::Upper,
        -1 => LabelBarrier::Lower,
        _ => LabelBarrier::Vertical,
    };
    b.label = Some(Label { value, barrier, resolved_at: b.ts, ret: 0.0, target: 0.01 });
    b
}

/// The task of minute `m` for `strategies` of tenant `t1`.
pub(crate) fn task(m: i64, strategies: &[&str], runs: u64) -> PulseTask {
    PulseTask {
        v: Version,
        minute: t(m),
        runs_in_minute: runs,
        strategies: strategies
            .iter()
            .map(|s| StrategyRef { tenant_id: "t1".into(), strategy_id: (*s).to_owned() })
            .collect(),
    }
}
