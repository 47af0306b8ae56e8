//! Integration tests of market-stream against the official Firestore and Pub/Sub emulators:
//! the app served over real HTTP with the runtime's layers, Eventarc CloudEvents in binary mode
//! (protobuf data) with signed OIDC tokens, alerts pulled from the real `stream-alerts` topic,
//! one project per test.

mod attacks;
mod costs;
mod dead_letters;
mod event;
mod fixture;
mod flow;
mod health;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::market::candle::ts_id;
use domain::market::{Candle, Granularity, StreamKey};
use gcp::eventarc::{
    DataEncoding, DocumentEventData, FirestoreEvent, FirestoreEventKind, FirestoreEventType,
    encode_document_event,
};
use gcp::firestore::{FirestoreDocument, Value as Fv};
use runtime::Env;
use store::Db;
use store::market::{BarRecord, CandleDocument, Market};
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

/// The audience of Eventarc's, Scheduler's and operators' OIDC tokens.
pub(crate) const AUDIENCE: &str = "https://market-stream.hearth.test/";
/// The trigger's service account (also Scheduler's and the metrics reader).
pub(crate) const EVENTARC_SA: &str = "market-stream-trigger@hearth-test.iam.gserviceaccount.com";
/// An operator's service account.
pub(crate) const OPERATOR_SA: &str = "oncall@hearth-test.iam.gserviceaccount.com";
/// The pull subscription the tests read alerts from.
pub(crate) const ALERTS_SUB: &str = "stream-alerts--test";

pub(crate) struct Harness {
    pub(crate) app: TestApp,
    pub(crate) db: Db,
    pub(crate) project: String,
    pub(crate) pubsub: &'static str,
    pub(crate) state: market_stream::AppState,
    _jwks: JwksServer,
}

impl Harness {
    /// The app streaming EUR_USD and GBP_USD at M1 and H1 (EUR_USD critical), with generous
    /// budgets and a small feature policy, plus `extra` variables.
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        let firestore = testkit::emulators::firestore().await;
        let pubsub = testkit::emulators::pubsub().await;
        let project = testkit::project_id();
        testkit::pubsub::create_topic(pubsub, &project, "stream-alerts").await;
        testkit::pubsub::create_pull_subscription(pubsub, &project, ALERTS_SUB, "stream-alerts")
            .await;
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let jwks_url = jwks.url();
        let allowed = format!("{EVENTARC_SA},{OPERATOR_SA}");
        let mut vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("PUBSUB_EMULATOR_HOST", pubsub),
            ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
            ("HEARTH_OIDC_ALLOWED_EMAILS", allowed.as_str()),
            ("HEARTH_METRICS_ALLOWED_EMAILS", EVENTARC_SA),
            ("HEARTH_MARKET_INSTRUMENTS", "EUR_USD,GBP_USD"),
            ("HEARTH_MARKET_GRANULARITIES", "M1,H1"),
            ("HEARTH_MARKET_PRIORITIES", "EUR_USD=critical"),
            ("HEARTH_MARKET_BUDGETS", "100000,100000,100000,100000"),
            ("HEARTH_MARKET_GLOBAL_BUDGET", "100000"),
            ("HEARTH_MARKET_VOL_SPAN", "4"),
            ("HEARTH_MARKET_VOL_WINDOW", "5"),
            ("HEARTH_MARKET_VERTICAL_CANDLES", "3"),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let built = market_stream::build("market-stream", &Env::from_map(vars))
            .await
            .expect("market-stream");
        let db = built.state.db().clone();
        let state = built.state.clone();
        Self {
            app: testkit::spawn_app(built.router).await,
            db,
            project,
            pubsub,
            state,
            _jwks: jwks,
        }
    }

    /// Sends `event` as Eventarc does (binary mode, protobuf data) with the trigger's token.
    pub(crate) async fn send(&self, event: &FirestoreEvent) -> reqwest::Response {
        self.send_as(event, Some(&oidc(EVENTARC_SA))).await
    }

    pub(crate) async fn send_as(
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

    /// Sends a complete candle as a new document and expects it processed (204).
    pub(crate) async fn deliver(&self, key: &StreamKey, candle: &Candle) {
        let event = candle_event(
            self,
            &format!("ce-{}-{}", key, ts_id(candle.ts)),
            key,
            None,
            Some(candle),
        );
        let res = self.send(&event).await;
        assert_eq!(res.status(), 204, "{}", self.reasons().await);
    }

    /// Every dead letter's reason (for failure messages).
    pub(crate) async fn reasons(&self) -> String {
        let market = Market::new(&self.db);
        let letters = market.dead_letters("market-stream POST /", 100).await.unwrap();
        letters
            .iter()
            .map(|l| format!("{}: {}\n{}", l.id, l.reason, l.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `POST path` with JSON `body` and `bearer`.
    pub(crate) async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        bearer: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.app.client.post(self.app.url(path)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// The stored bars of a stream.
    pub(crate) async fn bars(&self, key: &StreamKey) -> Vec<BarRecord> {
        Market::new(&self.db).bars(key, 10_000).await.unwrap()
    }

    /// Pulls alerts: waits up to 5 s for at least `at_least`, or (for 0) 1.5 s for any.
    pub(crate) async fn alerts(&self, at_least: usize) -> Vec<serde_json::Value> {
        let (n, wait) = if at_least == 0 { (1, 1_500) } else { (at_least, 5_000) };
        testkit::pubsub::pull_at_least(
            self.pubsub,
            &self.project,
            ALERTS_SUB,
            n,
            std::time::Duration::from_millis(wait),
        )
        .await
        .into_iter()
        .map(|m| serde_json::from_slice(&m.data).expect("alert JSON"))
        .collect()
    }
}

/// A Google OIDC token for `email`, signed with the published key.
pub(crate) fn oidc(email: &str) -> String {
    tokens::sign(&tokens::google_oidc_claims(AUDIENCE, email), keys::primary())
}

pub(crate) fn stream(instrument: &str, g: Granularity) -> StreamKey {
    StreamKey::new(instrument, g).unwrap()
}

/// 2026-01-05 00:00 UTC plus `minutes`.
pub(crate) fn minute(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

/// A complete, valid candle at `ts` closing at `close`.
pub(crate) fn candle(ts: DateTime<Utc>, close: f64) -> Candle {
    let open = close * 0.9995;
    Candle {
        ts,
        o: open,
        h: close.max(open) * 1.0004,
        l: close.min(open) * 0.9996,
        c: close,
        v: 100.0,
        bid: Some(close - 0.00005),
        ask: Some(close + 0.00005),
        complete: true,
    }
}

/// A deterministic wiggly series of `n` M1 candles starting at minute 0 (closes around 1.08).
pub(crate) fn series(n: usize) -> Vec<Candle> {
    (0..n)
        .map(|i| {
            let x = i as f64;
            candle(minute(i as i64), 1.08 * (1.0 + 0.004 * (x * 0.9).sin() + 0.0007 * x))
        })
        .collect()
}

/// The fields of a candle document as Eventarc carries them.
pub(crate) fn fields(candle: &Candle) -> BTreeMap<String, Fv> {
    let doc = CandleDocument::of(candle);
    let mut fields = BTreeMap::from([
        ("o".to_owned(), Fv::Double(doc.o)),
        ("h".to_owned(), Fv::Double(doc.h)),
        ("l".to_owned(), Fv::Double(doc.l)),
        ("c".to_owned(), Fv::Double(doc.c)),
        ("v".to_owned(), Fv::Double(doc.v)),
        ("complete".to_owned(), Fv::Boolean(doc.complete)),
        ("ts".to_owned(), Fv::Timestamp(candle.ts)),
    ]);
    if let Some(bid) = doc.bid {
        fields.insert("bid".to_owned(), Fv::Double(bid));
    }
    if let Some(ask) = doc.ask {
        fields.insert("ask".to_owned(), Fv::Double(ask));
    }
    fields
}

/// The document of `candle` in stream `key`, written at `written_at`.
pub(crate) fn document(
    project: &str,
    key: &StreamKey,
    ts: &str,
    fields: BTreeMap<String, Fv>,
    written_at: DateTime<Utc>,
) -> FirestoreDocument {
    FirestoreDocument {
        name: format!(
            "projects/{project}/databases/(default)/documents/candles/{}/{}/{ts}",
            key.instrument, key.granularity
        ),
        fields,
        create_time: Some(written_at),
        update_time: Some(written_at),
    }
}

/// The Eventarc event of a write of `candles/{i}/{g}/{ts}` from `old` to `new` fields.
pub(crate) fn raw_event(
    project: &str,
    event_id: &str,
    key: &StreamKey,
    ts: &str,
    old: Option<BTreeMap<String, Fv>>,
    new: Option<BTreeMap<String, Fv>>,
    written_at: DateTime<Utc>,
) -> FirestoreEvent {
    let kind = match (&old, &new) {
        (None, _) => FirestoreEventKind::Created,
        (Some(_), Some(_)) => FirestoreEventKind::Updated,
        (Some(_), None) => FirestoreEventKind::Deleted,
    };
    let path = format!("candles/{}/{}/{ts}", key.instrument, key.granularity);
    let mut event = FirestoreEvent::new(event_id, FirestoreEventType::new(kind), project, &path);
    event.time = Some(written_at);
    event.data = Some(DocumentEventData {
        value: new.map(|f| document(project, key, ts, f, written_at)),
        old_value: old.map(|f| document(project, key, ts, f, written_at)),
        update_mask: None,
    });
    event
}

/// The event of a candle write from `old` to `new`, written now.
pub(crate) fn candle_event(
    h: &Harness,
    event_id: &str,
    key: &StreamKey,
    old: Option<&Candle>,
    new: Option<&Candle>,
) -> FirestoreEvent {
    let ts = ts_id(new.or(old).expect("a candle").ts);
    raw_event(&h.project, event_id, key, &ts, old.map(fields), new.map(fields), Utc::now())
}

/// The derived values of `bars` (what the function stored), for comparisons.
pub(crate) fn derived(bars: &[BarRecord]) -> Vec<(DateTime<Utc>, domain::market::Derived)> {
    bars.iter().map(|b| (b.ts, b.derived())).collect()
}

/// What `domain` computes for the whole of `candles` with the harness policy.
pub(crate) fn expected(candles: &[Candle]) -> Vec<(DateTime<Utc>, domain::market::Derived)> {
    let policy = domain::market::FeaturePolicy {
        span: 4.0,
        window: 5,
        vertical: 3,
        ..domain::market::FeaturePolicy::default()
    };
    let bars: Vec<domain::market::features::Bar> =
        candles.iter().map(|c| domain::market::features::Bar { ts: c.ts, close: c.c }).collect();
    let d = domain::market::features::derive_all(&bars, &policy, Granularity::M1);
    candles.iter().map(|c| c.ts).zip(d).collect()
}
