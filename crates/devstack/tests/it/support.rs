//! Test helpers: a recording function Router that verifies OIDC tokens the way the functions
//! do (runtime's `PushAuth` over the local key server) and answers from a script.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use parking_lot::Mutex;
use runtime::auth::PushAuth;
use runtime::{BaseConfig, Env};

/// One request the Router received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) at: Instant,
    /// What the Router answered.
    pub(crate) status: u16,
}

type Script = Arc<dyn Fn(&str, &HeaderMap, &Bytes, usize) -> StatusCode + Send + Sync>;

/// The shared record.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    auth: PushAuth,
    script: Script,
    delay: std::time::Duration,
}

impl Recorder {
    /// Verifies OIDC for `audience` with the keys at `jwks_url`; answers `script(path,
    /// headers, body, n)` where `n` counts authenticated requests to that path from 1.
    pub(crate) fn new(
        jwks_url: &str,
        audience: &str,
        project: &str,
        script: impl Fn(&str, &HeaderMap, &Bytes, usize) -> StatusCode + Send + Sync + 'static,
    ) -> Self {
        let env = Env::from_pairs([
            ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.to_owned()),
            ("HEARTH_OIDC_AUDIENCE", audience.to_owned()),
            ("HEARTH_OIDC_ALLOWED_EMAILS", devstack::identity::allowed_emails(project)),
        ]);
        Self::from_env(&env, script)
    }

    /// From a function environment (what devstack gives a function).
    pub(crate) fn from_env(
        env: &Env,
        script: impl Fn(&str, &HeaderMap, &Bytes, usize) -> StatusCode + Send + Sync + 'static,
    ) -> Self {
        let base = BaseConfig::load(env).expect("a valid function environment");
        let auth = PushAuth::from_config(&base).expect("push auth configured");
        assert!(auth.is_verifying());
        Self {
            seen: Arc::default(),
            auth,
            script: Arc::new(script),
            delay: std::time::Duration::ZERO,
        }
    }

    /// Each authenticated request takes `delay` before it is answered.
    #[must_use]
    pub(crate) fn with_delay(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }

    pub(crate) fn router(&self) -> Router {
        Router::new().fallback(post(handle)).with_state(self.clone())
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    /// Requests to `path` that passed authentication.
    pub(crate) fn accepted(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path && s.status != 401).collect()
    }
}

async fn handle(
    State(r): State<Recorder>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    let status = if r.auth.verify(&headers).await.is_err() {
        StatusCode::UNAUTHORIZED
    } else {
        let n = r.seen.lock().iter().filter(|s| s.path == path && s.status != 401).count() + 1;
        let status = (r.script)(&path, &headers, &body, n);
        tokio::time::sleep(r.delay).await;
        status
    };
    r.seen.lock().push(Seen { path, headers, body, at: Instant::now(), status: status.as_u16() });
    status
}

/// Waits until `check` holds or `secs` pass.
pub(crate) async fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + std::time::Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check()
}
