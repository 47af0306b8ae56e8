//! Starting the hook the way `main` does (typed config from an environment map, `AppState`,
//! `runtime::Server` layers) on a loopback port, plus token and request helpers.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use runtime::Env;
use serde_json::{Value, json};
use signup_hook::{AppState, BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH, Config};
use store::Db;
use store::tenancy::Tenancy;
use testkit::jwks::JwksServer;
use testkit::keys;
use testkit::tokens;

/// The service account that may read `/metrics`.
pub(crate) const METRICS_SA: &str = "metrics-reader@hearth-test.iam.gserviceaccount.com";

/// The topic subscription every test pulls announcements from.
pub(crate) const SUBSCRIPTION: &str = "signups-test";

/// How to start the hook.
#[derive(Debug, Clone, Default)]
pub(crate) struct Setup {
    /// Use this project (the Auth emulator test needs its own); default: a fresh one.
    pub(crate) project: Option<String>,
    /// `FIREBASE_AUTH_EMULATOR_HOST` (emulator mode: unsigned tokens accepted).
    pub(crate) auth_emulator: Option<String>,
    /// Replaces the Pub/Sub emulator host (e.g. a dead port).
    pub(crate) pubsub_host: Option<String>,
    /// Replaces the Firestore emulator host (e.g. a dead port).
    pub(crate) firestore_host: Option<String>,
    /// Extra variables (`HEARTH_BLOCKED_EMAIL_DOMAINS`, ...).
    pub(crate) env: Vec<(&'static str, String)>,
}

impl Setup {
    pub(crate) fn var(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.env.push((name, value.into()));
        self
    }
}

/// A running hook and what the test needs around it.
#[derive(Debug)]
pub(crate) struct Hook {
    pub(crate) project: String,
    pub(crate) base_url: String,
    pub(crate) client: reqwest::Client,
    pub(crate) state: AppState,
    pub(crate) jwks: JwksServer,
    pub(crate) pubsub_host: String,
    pub(crate) config: Config,
}

/// A port nothing listens on.
pub(crate) fn dead_host() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

pub(crate) async fn start(setup: Setup) -> Hook {
    let project = setup.project.clone().unwrap_or_else(testkit::project_id);
    let firestore = match setup.firestore_host.clone() {
        Some(host) => host,
        None => testkit::emulators::firestore().await.to_owned(),
    };
    let real_pubsub = testkit::emulators::pubsub().await.to_owned();
    let pubsub = setup.pubsub_host.clone().unwrap_or_else(|| real_pubsub.clone());
    testkit::pubsub::create_topic(&real_pubsub, &project, "user-signups").await;
    testkit::pubsub::create_pull_subscription(&real_pubsub, &project, SUBSCRIPTION, "user-signups")
        .await;
    let jwks = JwksServer::start(&[keys::primary()], 3600).await;

    // The audience is the hook's own URL, known once it listens.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let base_url = format!("http://{addr}");
    let mut vars: Vec<(String, String)> = vec![
        ("GOOGLE_CLOUD_PROJECT".into(), project.clone()),
        ("FIRESTORE_EMULATOR_HOST".into(), firestore),
        ("PUBSUB_EMULATOR_HOST".into(), pubsub),
        ("HEARTH_SECURETOKEN_JWKS_URL".into(), jwks.url()),
        ("HEARTH_BLOCKING_AUDIENCE".into(), base_url.clone()),
        ("HEARTH_LOG_FORMAT".into(), "pretty".into()),
        // `/metrics` for the cost test: Google OIDC tokens of METRICS_SA, audience the hook's URL.
        ("HEARTH_GOOGLE_OIDC_JWKS_URL".into(), jwks.url()),
        ("HEARTH_OIDC_AUDIENCE".into(), base_url.clone()),
        ("HEARTH_METRICS_ALLOWED_EMAILS".into(), METRICS_SA.into()),
    ];
    if let Some(auth) = &setup.auth_emulator {
        vars.push(("FIREBASE_AUTH_EMULATOR_HOST".into(), auth.clone()));
    }
    vars.extend(setup.env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let runtime::Built { config, state, router } =
        signup_hook::build("signup-hook", &Env::from_pairs(vars)).await.expect("valid test config");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    Hook { project, base_url, client, state, jwks, pubsub_host: real_pubsub, config }
}

impl Hook {
    pub(crate) fn tenancy(&self) -> &Tenancy {
        self.state.tenancy()
    }

    pub(crate) fn db(&self) -> &Db {
        self.tenancy().db()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Claims of a beforeCreate event for `uid` signing up with `email`.
    pub(crate) fn create_claims(&self, uid: &str, email: &str, verified: bool) -> Value {
        let mut claims = tokens::blocking_claims(
            &self.project,
            &self.config.audience_for(BEFORE_CREATE_PATH),
            uid,
            "beforeCreate",
        );
        claims["user_record"]["email"] = json!(email);
        claims["user_record"]["email_verified"] = json!(verified);
        claims["user_record"]["provider_data"][0]["email"] = json!(email);
        claims
    }

    /// Claims of a beforeSignIn event for `uid` whose token carries `custom_claims`.
    pub(crate) fn sign_in_claims(&self, uid: &str, custom_claims: Value) -> Value {
        let mut claims = tokens::blocking_claims(
            &self.project,
            &self.config.audience_for(BEFORE_SIGN_IN_PATH),
            uid,
            "beforeSignIn",
        );
        if !custom_claims.is_null() {
            claims["user_record"]["custom_claims"] = custom_claims;
        }
        claims
    }

    /// POSTs `{"data":{"jwt":token}}` and returns the status and JSON body.
    pub(crate) async fn call(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.post_raw(path, "application/json", json!({"data": {"jwt": token}}).to_string()).await
    }

    /// Signs `claims` with the primary test key and POSTs them.
    pub(crate) async fn call_signed(&self, path: &str, claims: &Value) -> (StatusCode, Value) {
        self.call(path, &tokens::sign(claims, keys::primary())).await
    }

    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path)).body(body);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let res = request.send().await.expect("request reaches the hook");
        let status = res.status();
        let text = res.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("the hook answers JSON, got {status} {text:?}"));
        (status, value)
    }

    /// The `/metrics` text, read as [`METRICS_SA`].
    pub(crate) async fn metrics_text(&self) -> String {
        let claims = tokens::google_oidc_claims(&self.base_url, METRICS_SA);
        let token = tokens::sign(&claims, keys::primary());
        let response = self.client.get(self.url("/metrics")).bearer_auth(token).send().await;
        let response = response.expect("metrics answer");
        assert_eq!(response.status(), 200, "metrics readable as {METRICS_SA}");
        response.text().await.unwrap()
    }

    /// Announcements received so far (waits up to `wait` for at least `n`).
    pub(crate) async fn announcements(&self, n: usize, wait: Duration) -> Vec<Value> {
        testkit::pubsub::pull_at_least(&self.pubsub_host, &self.project, SUBSCRIPTION, n, wait)
            .await
            .into_iter()
            .map(|m| serde_json::from_slice(&m.data).expect("JSON announcement"))
            .collect()
    }
}

/// The claims a successful answer sets, checking the exact response shape of contracts 1.4.
pub(crate) fn claims_of(status: StatusCode, body: &Value) -> Value {
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = &body["userRecord"];
    assert_eq!(record["updateMask"], "customClaims", "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "only userRecord: {body}");
    assert_eq!(record.as_object().unwrap().len(), 2, "customClaims + updateMask: {body}");
    record["customClaims"].clone()
}

/// Asserts the blocking error shape and returns `(status, message)`.
pub(crate) fn error_of(body: &Value) -> (String, String) {
    let error = body["error"].as_object().unwrap_or_else(|| panic!("error shape: {body}"));
    let status = error["status"].as_str().expect("error.status").to_owned();
    let message = error["message"].as_str().expect("error.message").to_owned();
    (status, message)
}
