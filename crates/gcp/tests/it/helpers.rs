//! Shared test helpers: fixture loading, JWKS caches wired to testkit's server, a toggleable key
//! server for failure and x509 cases, and assertion helpers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use gcp::jwks::{JwksCache, JwksOptions};
use parking_lot::RwLock;
use serde_json::Value;

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub(crate) fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).expect("fixture is JSON")
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("reqwest client")
}

/// A cache for `url` with default options (cooldowns as in production).
pub(crate) fn cache(url: &str) -> JwksCache {
    JwksCache::with_options(url, http_client(), JwksOptions::default())
}

/// A cache with short timeouts for tests of unreachable endpoints.
pub(crate) fn cache_with(url: &str, options: JwksOptions) -> JwksCache {
    JwksCache::with_options(url, http_client(), options)
}

/// A key server whose document and health tests control.
#[derive(Debug, Clone)]
pub(crate) struct KeyServer {
    pub(crate) url: String,
    shared: Arc<KeyServerState>,
}

#[derive(Debug)]
struct KeyServerState {
    document: RwLock<Value>,
    cache_control: Option<String>,
    failing: AtomicBool,
    fetches: AtomicUsize,
}

impl KeyServer {
    pub(crate) async fn start(document: Value, cache_control: Option<&str>) -> KeyServer {
        let shared = Arc::new(KeyServerState {
            document: RwLock::new(document),
            cache_control: cache_control.map(str::to_owned),
            failing: AtomicBool::new(false),
            fetches: AtomicUsize::new(0),
        });
        let app = Router::new().route("/keys", get(serve_keys)).with_state(Arc::clone(&shared));
        let test_app = testkit::spawn_app(app).await;
        KeyServer { url: test_app.url("/keys"), shared }
    }

    pub(crate) fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    pub(crate) fn fetch_count(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }
}

async fn serve_keys(State(state): State<Arc<KeyServerState>>) -> axum::response::Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let body = state.document.read().to_string();
    match &state.cache_control {
        Some(cc) => ([(header::CACHE_CONTROL, cc.clone())], body).into_response(),
        None => body.into_response(),
    }
}

/// The securetoken x509 map format for testkit's primary key.
pub(crate) fn x509_document() -> Value {
    let pem = String::from_utf8(fixture("testkit-primary.x509.pem")).expect("PEM is text");
    serde_json::json!({ testkit::keys::primary().kid: pem })
}

/// Short options for failure tests.
pub(crate) fn fast_options() -> JwksOptions {
    JwksOptions { request_timeout: Duration::from_secs(2), ..JwksOptions::default() }
}
