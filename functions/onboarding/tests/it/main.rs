//! Integration tests of the onboarding function against the official emulators: the app is
//! served over real HTTP with the runtime's layers and the Firestore dead-letter sink, tokens
//! are signed with testkit keys published by a local JWKS server, one project per test.

mod attacks;
mod costs;
mod push;
mod repair;

use std::collections::{BTreeMap, HashMap};

use domain::onboarding::{DocKind, ProvisionRequest};
use firestore::gcloud_sdk::google::firestore::v1::{Document, GetDocumentRequest};

use runtime::Env;
use serde_json::{Value, json};
use store::Db;
use store::onboarding::doc_path;
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

/// The audience the push subscription and operators put in their OIDC tokens.
pub(crate) const AUDIENCE: &str = "https://onboarding.hearth.test/";
/// The push subscription's service account.
pub(crate) const PUSH_SA: &str = "user-signups-push@hearth-test.iam.gserviceaccount.com";
/// An operator's service account.
pub(crate) const OPERATOR_SA: &str = "onboarding-operator@hearth-test.iam.gserviceaccount.com";

/// The app on a fresh project, with its database handle.
pub(crate) struct Harness {
    pub(crate) app: TestApp,
    pub(crate) db: Db,
    pub(crate) project: String,
    /// Keeps the JWKS server (and its URL) alive for the test.
    _jwks: JwksServer,
}

impl Harness {
    /// Verifying push auth, Firestore on the shared emulator.
    pub(crate) async fn start() -> Self {
        let firestore = testkit::emulators::firestore().await;
        Self::with_vars(firestore, &[]).await
    }

    /// `firestore` as the Firestore host, plus `extra` variables.
    pub(crate) async fn with_vars(firestore: &str, extra: &[(&str, &str)]) -> Self {
        Self::on_project(testkit::project_id(), firestore, extra).await
    }

    /// With an Auth emulator of its own whose default project is the test's (client sign-ins
    /// land there); answers the harness and the emulator's `host:port`.
    pub(crate) async fn with_auth() -> (Self, String) {
        let firestore = testkit::emulators::firestore().await;
        let project = testkit::project_id();
        let auth = testkit::emulators::auth_for_project(&project).await;
        let h =
            Self::on_project(project, firestore, &[("FIREBASE_AUTH_EMULATOR_HOST", auth.as_str())])
                .await;
        (h, auth)
    }

    async fn on_project(project: String, firestore: &str, extra: &[(&str, &str)]) -> Self {
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let jwks_url = jwks.url();
        let allowed = format!("{PUSH_SA},{OPERATOR_SA}");
        let mut vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_SECURETOKEN_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
            ("HEARTH_OIDC_ALLOWED_EMAILS", allowed.as_str()),
            ("HEARTH_METRICS_ALLOWED_EMAILS", OPERATOR_SA),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let built =
            onboarding::build("onboarding", &Env::from_map(vars)).await.expect("onboarding");
        let db = built.state.db().clone();
        Self { app: testkit::spawn_app(built.router).await, db, project, _jwks: jwks }
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: Vec<u8>,
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
}

/// A Google OIDC token for `email`, signed with the published key.
pub(crate) fn oidc(email: &str) -> String {
    tokens::sign(&tokens::google_oidc_claims(AUDIENCE, email), keys::primary())
}

/// A Firebase ID token of `uid` with the given custom claims.
pub(crate) fn id_token(project: &str, uid: &str, tenant: &str, role: &str) -> String {
    let mut claims = tokens::firebase_id_claims(project, uid);
    claims["tenant_id"] = json!(tenant);
    claims["role"] = json!(role);
    tokens::sign(&claims, keys::primary())
}

/// A `user-signups` body (schema version 1).
pub(crate) fn signup(uid: &str, tenant: &str, role: &str, tenant_is_new: bool) -> Value {
    json!({
        "v": 1,
        "uid": uid,
        "email": format!("{uid}@example.com"),
        "tenant_id": tenant,
        "role": role,
        "tenant_is_new": tenant_is_new,
        "event_id": format!("evt-{uid}"),
    })
}

/// The raw document of `kind` for `req`, `None` when missing.
pub(crate) async fn raw(db: &Db, kind: DocKind, req: &ProvisionRequest) -> Option<Document> {
    let name = doc_path(kind, req).unwrap().full_name(db.documents_root());
    let mut client = db.firestore().await.unwrap().client().get();
    match client.get_document(GetDocumentRequest { name, ..Default::default() }).await {
        Ok(doc) => Some(doc.into_inner()),
        Err(status) if status.code() == firestore::gcloud_sdk::tonic::Code::NotFound => None,
        Err(status) => panic!("get_document: {status}"),
    }
}

/// `(seconds, nanos)` of each existing planned document's last write.
pub(crate) async fn write_times(db: &Db, req: &ProvisionRequest) -> BTreeMap<DocKind, (i64, i32)> {
    let mut times = BTreeMap::new();
    for kind in DocKind::ALL {
        if let Some(doc) = raw(db, kind, req).await {
            let t = doc.update_time.unwrap();
            times.insert(kind, (t.seconds, t.nanos));
        }
    }
    times
}

/// The request a `signup()` body stands for.
pub(crate) fn request_of(body: &Value) -> ProvisionRequest {
    ProvisionRequest {
        uid: body["uid"].as_str().unwrap().to_owned(),
        email: body["email"].as_str().map(str::to_owned),
        tenant_id: body["tenant_id"].as_str().unwrap().to_owned(),
        role: serde_json::from_value(body["role"].clone()).unwrap(),
        tenant_is_new: body["tenant_is_new"].as_bool().unwrap(),
    }
}

/// Asserts a problem+json answer with `status` and returns its body.
pub(crate) async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], json!(status));
    body
}
