//! A fake Firebase Cloud Messaging (HTTP v1) for tests and the local stack: it speaks
//! `POST /v1/projects/{project}/messages:send` with FCM's answers, error shapes included.
//!
//! ```text
//! 200 {"name": "projects/{p}/messages/{id}"}                      accepted (recorded)
//! 400 INVALID_ARGUMENT  (FcmError errorCode INVALID_ARGUMENT)      no message, not exactly one
//!                                                                 target, a token that is not
//!                                                                 one (see `invalid_token`), a
//!                                                                 non-string data value
//! 404 NOT_FOUND         (FcmError errorCode UNREGISTERED)         a token marked dead
//! 429 RESOURCE_EXHAUSTED (FcmError errorCode QUOTA_EXCEEDED)      over the quota, or injected;
//!                        with a Retry-After header (seconds)
//! 503 UNAVAILABLE / 500 INTERNAL                                  injected
//! ```
//! Like the emulators, it checks no OAuth token. Tests mark tokens dead ([`FakeFcm::unregister`]),
//! inject answers ([`FakeFcm::throttle_next`], [`FakeFcm::fail_next`]), set a quota
//! ([`FakeFcm::set_quota`]) and read what was accepted ([`FakeFcm::accepted`], or
//! `GET /fake/messages` from another process).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The fake, served on a loopback port.
#[derive(Debug, Clone)]
pub struct FakeFcm {
    /// `http://127.0.0.1:PORT`, the FCM API base.
    pub base_url: String,
    state: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    accepted: Mutex<Vec<Value>>,
    dead: Mutex<HashSet<String>>,
    /// Injected answers: (status, Retry-After seconds).
    inject: Mutex<VecDeque<(u16, Option<u64>)>>,
    /// (messages per second, window start, sent in window).
    quota: Mutex<Option<(u32, Instant, u32)>>,
    calls: AtomicUsize,
    next_id: AtomicU64,
}

/// An FCM error answer, as FCM shapes it.
fn error(status: StatusCode, grpc: &str, fcm_code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": status.as_u16(),
            "message": message,
            "status": grpc,
            "details": [{
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": fcm_code,
            }],
        }
    });
    (status, Json(body)).into_response()
}

fn quota_exceeded(retry_after: u64) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        "Quota exceeded for quota metric 'Send messages' of service 'fcm.googleapis.com'",
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_str(&retry_after.to_string())
            .unwrap_or(axum::http::HeaderValue::from_static("1")),
    );
    response
}

/// Whether FCM would refuse `token` as malformed: empty, too long, or with characters a
/// registration token never has.
pub fn invalid_token(token: &str) -> bool {
    token.is_empty()
        || token.len() > 4096
        || !token.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c))
        || token.starts_with("invalid")
}

async fn send(
    State(state): State<Arc<Inner>>,
    Path((project, method)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    if method != "messages:send" {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "UNSPECIFIED_ERROR", "unknown method");
    }
    if let Some((status, retry_after)) = state.inject.lock().pop_front() {
        return match status {
            429 => quota_exceeded(retry_after.unwrap_or(1)),
            500 => {
                error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "INTERNAL", "Internal error")
            }
            _ => error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "UNAVAILABLE",
                "UNAVAILABLE",
                "The service is currently unavailable.",
            ),
        };
    }
    {
        let mut quota = state.quota.lock();
        if let Some((per_sec, start, sent)) = quota.as_mut() {
            if start.elapsed() >= Duration::from_secs(1) {
                *start = Instant::now();
                *sent = 0;
            }
            if *sent >= *per_sec {
                return quota_exceeded(1);
            }
            *sent += 1;
        }
    }
    let invalid =
        |why: &str| error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "INVALID_ARGUMENT", why);
    let Some(Json(body)) = body else { return invalid("Invalid JSON payload received.") };
    let Some(message) = body.get("message").filter(|m| m.is_object()) else {
        return invalid("Request contains an invalid argument: no message.");
    };
    let targets =
        ["token", "topic", "condition"].iter().filter(|t| message.get(**t).is_some()).count();
    if targets != 1 {
        return invalid("Exactly one of token, topic or condition must be set.");
    }
    if let Some(data) = message.get("data")
        && !data.as_object().is_some_and(|d| d.values().all(Value::is_string))
    {
        return invalid("Invalid value at 'message.data': values must be strings.");
    }
    if let Some(token) = message.get("token") {
        let Some(token) = token.as_str().filter(|t| !invalid_token(t)) else {
            return invalid("The registration token is not a valid FCM registration token");
        };
        if state.dead.lock().contains(token) {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "UNREGISTERED",
                "Requested entity was not found.",
            );
        }
    }
    let id = state.next_id.fetch_add(1, Ordering::SeqCst);
    state.accepted.lock().push(message.clone());
    Json(json!({ "name": format!("projects/{project}/messages/0:{id}%fake") })).into_response()
}

/// `GET /fake/messages`: the accepted messages, for another process (devstack's demo). Not part
/// of FCM's API.
async fn messages(State(state): State<Arc<Inner>>) -> Json<Value> {
    Json(Value::Array(state.accepted.lock().clone()))
}

fn router(state: Arc<Inner>) -> Router {
    Router::new()
        .route("/v1/projects/{project}/{method}", post(send))
        .route("/fake/messages", axum::routing::get(messages))
        .with_state(state)
}

impl FakeFcm {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let state = Arc::new(Inner::default());
        let app = crate::spawn_app(router(state.clone())).await;
        Self { base_url: app.base_url, state }
    }

    /// Serves the fake on `listener` until `shutdown` completes.
    pub fn serve(
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<(Self, tokio::task::JoinHandle<()>)> {
        let addr = listener.local_addr()?;
        let state = Arc::new(Inner::default());
        let router = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
        });
        Ok((Self { base_url: format!("http://{addr}"), state }, task))
    }

    /// From now on `token` is answered `UNREGISTERED` (the app was uninstalled).
    pub fn unregister(&self, token: &str) {
        self.state.dead.lock().insert(token.to_owned());
    }

    /// The next `n` sends are answered 429 `QUOTA_EXCEEDED` with `Retry-After: retry_after_secs`.
    pub fn throttle_next(&self, n: usize, retry_after_secs: u64) {
        self.state.inject.lock().extend(std::iter::repeat_n((429, Some(retry_after_secs)), n));
    }

    /// The next sends are answered these statuses (500 `INTERNAL`, else `UNAVAILABLE`).
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.inject.lock().extend(statuses.iter().map(|s| (*s, None)));
    }

    /// At most `per_sec` messages accepted per second; over it, 429 with `Retry-After: 1`.
    pub fn set_quota(&self, per_sec: u32) {
        *self.state.quota.lock() = Some((per_sec, Instant::now(), 0));
    }

    /// Every request received, injected failures included.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The messages accepted, in order.
    pub fn accepted(&self) -> Vec<Value> {
        self.state.accepted.lock().clone()
    }

    /// How many messages were accepted.
    pub fn accepted_count(&self) -> usize {
        self.state.accepted.lock().len()
    }

    /// The messages accepted for `token`.
    pub fn accepted_for(&self, token: &str) -> Vec<Value> {
        self.state.accepted.lock().iter().filter(|m| m["token"] == token).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(fcm: &FakeFcm, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/projects/p/messages:send", fcm.base_url))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn answers_as_fcm_does() {
        let fcm = FakeFcm::start().await;
        let ok = post(&fcm, json!({"message": {"token": "t1", "data": {"a": "b"}}})).await;
        assert_eq!(ok.status(), 200);
        assert!(
            ok.json::<Value>().await.unwrap()["name"]
                .as_str()
                .unwrap()
                .starts_with("projects/p/messages/")
        );
        fcm.unregister("t1");
        let gone = post(&fcm, json!({"message": {"token": "t1"}})).await;
        assert_eq!(gone.status(), 404);
        let body: Value = gone.json().await.unwrap();
        assert_eq!(body["error"]["details"][0]["errorCode"], "UNREGISTERED");
        let bad = post(&fcm, json!({"message": {"token": "bad token!"}})).await;
        assert_eq!(bad.status(), 400);
        let two = post(&fcm, json!({"message": {"token": "t2", "topic": "x"}})).await;
        assert_eq!(two.status(), 400);
        let data = post(&fcm, json!({"message": {"token": "t2", "data": {"n": 1}}})).await;
        assert_eq!(data.status(), 400);
        fcm.throttle_next(1, 3);
        let slow = post(&fcm, json!({"message": {"token": "t2"}})).await;
        assert_eq!(slow.status(), 429);
        assert_eq!(slow.headers()["retry-after"], "3");
        fcm.fail_next(&[503]);
        assert_eq!(post(&fcm, json!({"message": {"token": "t2"}})).await.status(), 503);
        fcm.set_quota(1);
        assert_eq!(post(&fcm, json!({"message": {"token": "t2"}})).await.status(), 200);
        assert_eq!(post(&fcm, json!({"message": {"token": "t2"}})).await.status(), 429);
        assert_eq!(fcm.accepted_count(), 2);
        assert_eq!(fcm.accepted_for("t2").len(), 1);
    }
}
