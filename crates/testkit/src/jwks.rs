//! A local JWK Set server standing in for Google's key endpoints (securetoken and oauth2 certs).
//!
//! It answers with `Cache-Control: public, max-age=N` like Google does, counts fetches so tests
//! can prove caching and single-flight refreshes, and can rotate keys while running.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use parking_lot::RwLock;
use serde_json::{Value, json};

use crate::keys::TestKey;

#[derive(Debug)]
struct Shared {
    keys: RwLock<Vec<Value>>,
    max_age_secs: u64,
    fetches: AtomicUsize,
}

/// A running JWKS server; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct JwksServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl JwksServer {
    /// Serves `keys` at `/jwks` on `127.0.0.1:0`.
    pub async fn start(keys: &[&TestKey], max_age_secs: u64) -> JwksServer {
        let shared = Arc::new(Shared {
            keys: RwLock::new(keys.iter().map(|k| k.jwk()).collect()),
            max_age_secs,
            fetches: AtomicUsize::new(0),
        });
        let app = Router::new().route("/jwks", get(serve)).with_state(shared.clone());
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind JWKS server");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer { addr, shared }
    }

    /// The full URL of the JWK Set.
    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// How many times the key set was fetched.
    pub fn fetch_count(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// Replaces the published keys (rotation).
    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.shared.keys.write() = keys.iter().map(|k| k.jwk()).collect();
    }
}

async fn serve(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    let body = json!({"keys": *shared.keys.read()});
    (
        [
            (
                header::CACHE_CONTROL,
                format!("public, max-age={}, must-revalidate, no-transform", shared.max_age_secs),
            ),
            (header::CONTENT_TYPE, "application/json; charset=UTF-8".to_owned()),
        ],
        body.to_string(),
    )
}
