//! `devstack demo`: the end-to-end scenario over real HTTP through the running functions, every
//! step checked against the emulators, with a summary and a verdict. Eight stages, one file
//! each:
//!
//! 1. [`signup`]: sign-up through the Auth emulator -> the blocking hook's tenant and role
//!    claims -> sign-in through beforeSignIn -> devstack pushes `user-signups` to onboarding ->
//!    all seven documents exist with exactly the planned fields.
//! 2. [`feed`]: a vendor signs up; the demo user follows them (`followVendor`); the vendor
//!    writes a post to `posts/{postId}` as a client would (rules enforced); devstack's Eventarc
//!    bridge delivers it to feed-fanout -> the post is in the user's feed document and
//!    `getFeed`; `likePost` twice counts one like; the follow's Eventarc trigger has the
//!    notifier put the new follower in the vendor's inbox.
//! 3. [`payments`]: a product with sharded stock (through `store`); `reserveInventory` takes
//!    units; `initiatePayment` creates a PaymentIntent at the fake provider; a signed
//!    `payment_intent.succeeded` webhook to payment-webhook -> devstack pushes `payment-events`
//!    to payment-processor -> the order is paid and the reservation committed; an abandoned
//!    reservation is left alone by `expire-reservations` while held and returned to stock by it
//!    once its hold has ended.
//! 4. [`market`]: hourly candles written as a market-data feed writes them -> the Eventarc
//!    bridge delivers them to market-stream -> features and labels under the stream; an
//!    impossible candle is dead-lettered, fixed and replayed (idempotently); the stream's health.
//! 5. [`pulse`]: the demo user saves a strategy (`saveStrategy`); hourly candles go through
//!    market-stream; the pulse job, run for the minute after each new candle, opens a shadow
//!    trade on a jump, marks its P&L on the next candle and closes it at the profit-take, and
//!    the tenant's ledger holds it; the signals the pulse created with the open and the close
//!    reach the notifier (Eventarc), which puts both in the user's inbox and pushes them.
//! 6. [`search`]: a product is listed; `searchProducts` finds it by a misspelt query once the
//!    search function's replica has it; `suggest` completes its title.
//! 7. [`notify`]: the user registers a device (`registerDevice`) before paying; the payment's
//!    `order-paid` reaches the notifier -> the push arrives at the fake FCM with the order and
//!    the entry is in `users/{uid}/notifications` beside the feed stage's new post, unread 2.
//! 8. [`shop`]: a vendor signs up, becomes a vendor and lists a product with stock; the demo
//!    user finds it with `listProducts`, buys it (signed webhook), the vendor sees the order and
//!    the day's sale; the buyer asks for a refund, payment-processor executes it at the fake
//!    Stripe and the signed `charge.refunded` webhook moves the order to `refunded`.

pub mod feed;
pub mod market;
pub mod notify;
pub mod payments;
pub mod pulse;
pub mod search;
pub mod shop;
pub mod signup;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use firestore::gcloud_sdk::google::firestore::v1::GetDocumentRequest;
use firestore::gcloud_sdk::tonic;
use gcp::firestore::Value as DocValue;
use manifest::Manifest;
use runtime::Env;
use serde_json::{Value, json};

use crate::eventarc::convert;
use crate::plan::{self, Emulators, LocalServices, StackPlan};
use crate::state::RunningStack;

pub use signup::{Expect, ExpectedDoc, SignedUp, check_fields, expected_documents, jwt_claims};

/// One checked step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub step: String,
    pub ok: bool,
    pub detail: String,
    pub took: Duration,
}

/// The scenario's outcome.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    pub checks: Vec<Check>,
}

impl DemoReport {
    /// Every check passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The summary table.
    pub fn render(&self) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        t.set_header(vec!["#", "check", "result", "time", "detail"]);
        for (i, c) in self.checks.iter().enumerate() {
            t.add_row(vec![
                (i + 1).to_string(),
                c.step.clone(),
                if c.ok { "PASS" } else { "FAIL" }.to_owned(),
                format!("{} ms", c.took.as_millis()),
                c.detail.clone(),
            ]);
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        let mut out = format!("{t}\n");
        let _ = write!(out, "{} passed, {failed} failed", self.checks.len() - failed);
        out
    }

    /// Records a check that started at `started`; returns whether it passed.
    pub fn record(&mut self, step: &str, started: Instant, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        tracing::info!(step, ok, %detail, "demo check");
        self.checks.push(Check { step: step.to_owned(), ok, detail, took: started.elapsed() });
        ok
    }
}

/// Where the scenario runs.
#[derive(Debug, Clone)]
pub struct Target {
    pub project: String,
    pub emulators: Emulators,
    /// Function name -> base URL.
    pub functions: BTreeMap<String, String>,
    /// The fake payment provider's base URL.
    pub provider: Option<String>,
    /// The fake FCM's base URL.
    pub fcm: Option<String>,
    /// The manifest the stack runs (empty: the repository's).
    pub manifest: PathBuf,
}

impl From<RunningStack> for Target {
    fn from(r: RunningStack) -> Self {
        Self {
            project: r.project,
            emulators: r.emulators,
            functions: r.functions,
            provider: r.provider,
            fcm: r.fcm,
            manifest: r.manifest,
        }
    }
}

/// What every stage shares.
#[derive(Debug)]
pub struct Ctx {
    pub target: Target,
    pub http: reqwest::Client,
    /// The Firestore emulator as an admin (what the checks read).
    pub db: store::Db,
    /// Makes this run's users, products and posts unique.
    pub suffix: String,
}

impl Ctx {
    fn new(target: &Target) -> Self {
        Self {
            target: target.clone(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            db: store::Db::new(store::DbConfig::emulator(
                &target.project,
                &target.emulators.firestore,
            )),
            suffix: uuid::Uuid::new_v4().simple().to_string()[..10].to_owned(),
        }
    }

    /// The base URL of `function`.
    pub fn url(&self, function: &str) -> Result<&str, String> {
        self.target
            .functions
            .get(function)
            .map(String::as_str)
            .ok_or_else(|| format!("the stack serves no `{function}`"))
    }

    /// The stack's plan, computed again the way `up` computed it (the functions' environment,
    /// with the secrets devstack gave them, and the scheduled jobs).
    pub fn plan(&self) -> Result<StackPlan, String> {
        let path = if self.target.manifest.as_os_str().is_empty() {
            crate::default_manifest_path()
        } else {
            self.target.manifest.clone()
        };
        let manifest = Manifest::load(&path).map_err(|e| e.to_string())?;
        let ports = self
            .target
            .functions
            .iter()
            .map(|(name, url)| {
                port_of(url).map(|p| (name.clone(), p)).ok_or_else(|| format!("no port in {url}"))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let local = LocalServices {
            jwks_url: "http://127.0.0.1:0/unused",
            provider: self.target.provider.as_deref(),
        };
        plan::plan(
            &manifest,
            &self.target.project,
            &self.target.emulators,
            &ports,
            local,
            &Env::from_process(),
        )
        .map_err(|e| e.to_string())
    }

    /// Calls the api's callable `name` as the user of `id_token` (Firebase callable protocol,
    /// with an `Idempotency-Key` when given); the `result`, or the error as text.
    pub async fn call(
        &self,
        id_token: &str,
        name: &str,
        data: Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, String> {
        let url = format!("{}/{name}", self.url("api")?);
        let mut request = self.http.post(&url).bearer_auth(id_token).json(&json!({"data": data}));
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.map_err(|e| format!("{name}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        callable_answer(status, &text).map_err(|e| format!("{name}: {e}"))
    }
}

/// The `result` of a callable answer, or what went wrong (HTTP status, callable error status
/// and message).
pub fn callable_answer(status: u16, body: &str) -> Result<Value, String> {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    match parsed {
        Some(v) if (200..300).contains(&status) && v.get("result").is_some() => {
            Ok(v["result"].clone())
        }
        Some(v) if v.get("error").is_some() => Err(format!(
            "HTTP {status} {}: {}",
            v["error"]["status"].as_str().unwrap_or("?"),
            v["error"]["message"].as_str().unwrap_or_default()
        )),
        _ => Err(format!("HTTP {status}: {body}")),
    }
}

/// The port of `http://host:port[/...]`.
pub fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// Polls `probe` every 200 ms until it finds something or `within` passes; the error names
/// `what` and the last probe error.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + within;
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{what}: not within {} s{}",
                within.as_secs(),
                last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The fields of the document at `path` (relative to the database root), `None` if absent.
pub async fn read_doc(
    db: &store::Db,
    path: &str,
) -> Result<Option<BTreeMap<String, DocValue>>, String> {
    let firestore = db.firestore().await.map_err(|e| e.to_string())?;
    let request = GetDocumentRequest {
        name: format!("{}/{path}", db.documents_root()),
        ..Default::default()
    };
    match firestore.client().get().get_document(request).await {
        Ok(doc) => Ok(Some(convert::document(&doc.into_inner()).fields)),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(status.message().to_owned()),
    }
}

/// Runs the scenario against `target`. Each stage records its checks; the feed and payments
/// stages run only once a user is signed up and provisioned.
pub async fn run_scenario(target: &Target) -> DemoReport {
    let ctx = Ctx::new(target);
    let mut report = DemoReport::default();
    let Some(user) = signup::run(&ctx, &mut report).await else { return report };
    feed::run(&ctx, &mut report, &user).await;
    let device = notify::register(&ctx, &mut report, &user).await;
    payments::run(&ctx, &mut report, &user).await;
    notify::run(&ctx, &mut report, &user, device.as_deref()).await;
    shop::run(&ctx, &mut report, &user).await;
    market::run(&ctx, &mut report).await;
    pulse::run(&ctx, &mut report, &user).await;
    search::run(&ctx, &mut report, &user).await;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_pass_only_when_every_check_passed() {
        let mut r = DemoReport::default();
        assert!(!r.passed());
        r.record("a", Instant::now(), Ok("fine".into()));
        assert!(r.passed());
        r.record("b", Instant::now(), Err("broken".into()));
        assert!(!r.passed());
        assert!(r.render().contains("1 passed, 1 failed"));
    }

    #[test]
    fn callable_answers_give_the_result_or_name_the_error() {
        assert_eq!(callable_answer(200, r#"{"result":{"a":1}}"#), Ok(json!({"a": 1})));
        assert_eq!(callable_answer(200, r#"{"result":null}"#), Ok(Value::Null));
        let err = callable_answer(
            400,
            r#"{"error":{"status":"FAILED_PRECONDITION","message":"Not enough stock: 0 left."}}"#,
        )
        .unwrap_err();
        assert_eq!(err, "HTTP 400 FAILED_PRECONDITION: Not enough stock: 0 left.");
        assert_eq!(callable_answer(502, "bad gateway").unwrap_err(), "HTTP 502: bad gateway");
        assert!(callable_answer(200, r#"{"data":1}"#).is_err(), "no result is an error");
    }

    #[test]
    fn ports_come_from_base_urls() {
        assert_eq!(port_of("http://127.0.0.1:8601"), Some(8601));
        assert_eq!(port_of("http://127.0.0.1:8601/x/y"), Some(8601));
        assert_eq!(port_of("127.0.0.1:9"), Some(9));
        assert_eq!(port_of("http://localhost"), None);
    }

    #[tokio::test]
    async fn eventually_returns_what_was_found_or_names_what_was_not() {
        let mut n = 0;
        let found = eventually(Duration::from_secs(5), "third", || {
            n += 1;
            let now = n;
            async move { Ok::<_, String>((now >= 3).then_some(now)) }
        })
        .await;
        assert_eq!(found, Ok(3));
        let missing: Result<(), String> =
            eventually(Duration::ZERO, "the feed entry", || async { Err("offline".to_owned()) })
                .await;
        assert_eq!(missing.unwrap_err(), "the feed entry: not within 0 s (last error: offline)");
    }
}
