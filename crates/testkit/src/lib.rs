//! Test support for Hearth: the official emulators started once per test process, a fresh
//! project id per test, a local JWKS server with RSA keys that mint every token the functions
//! verify, Pub/Sub topic helpers, and `spawn_app` for serving a Router on `127.0.0.1:0`.
//!
//! The keys under `keys/` are test-only keys generated for this repository; they guard nothing.

pub mod app;
pub mod costs;
pub mod emulators;
pub mod fake_fcm;
pub mod fake_provider;
pub mod fake_typesense;
pub mod indexes;
pub mod jwks;
pub mod keys;
pub mod pubsub;
pub mod rules;
pub mod tokens;

pub use app::{TestApp, spawn_app};

/// A fresh project id (`demo-` plus 12 hex digits): the Firestore emulator isolates data per
/// project, so one per test keeps tests independent while they share one emulator. The `demo-`
/// prefix is what the Firebase emulators treat as an offline-only demo project.
pub fn project_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("demo-{}", &id[..12])
}

/// Waits, if needed, until the current fixed rate-limit window of `window_secs` (as
/// `domain::ratelimit::window` computes it) has at least `need_secs` left, so a test's calls
/// that must share one window never straddle a boundary (each window would allow them again).
/// Sleeps at most `need_secs` seconds.
pub async fn early_in_window(window_secs: u64, need_secs: u64) {
    assert!(need_secs < window_secs, "a window of {window_secs} s never has {need_secs} s left");
    let now = chrono::Utc::now();
    let limit = domain::ratelimit::Limit::per_secs(1, window_secs);
    let (_, end) = domain::ratelimit::window(limit, now);
    let left = (end - now).to_std().unwrap_or_default();
    if left < std::time::Duration::from_secs(need_secs) {
        // Land a little past the boundary, not on it.
        tokio::time::sleep(left + std::time::Duration::from_millis(50)).await;
    }
}
