//! `spawn_app`: serve a Router on `127.0.0.1:0` and talk to it over real HTTP.

use std::net::SocketAddr;

use axum::Router;

/// A Router served on a random loopback port for the rest of the test.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
}

impl TestApp {
    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// Binds `127.0.0.1:0`, serves `router` in the background and returns where it listens.
pub async fn spawn_app(router: Router) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind test app");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let client = reqwest::Client::builder().no_proxy().build().expect("reqwest client");
    TestApp { addr, base_url: format!("http://{addr}"), client }
}
