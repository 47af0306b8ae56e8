//! Firebase Cloud Messaging, HTTP v1: `POST {base}/v1/projects/{project}/messages:send` with
//! one message per registration token, per-platform blocks (`android`, `apns`, `webpush`) that
//! carry the collapse key and priority, and the answers read as `domain::notify::fcm_verdict`
//! says: `UNREGISTERED` / `INVALID_ARGUMENT` / `SENDER_ID_MISMATCH` mean the token is dead
//! (the caller prunes it), 429 and 5xx are retried with jittered backoff that never waits less
//! than the `Retry-After` FCM sent, and a circuit breaker per project stops calls while FCM is
//! down (5xx and network failures open it; a 429 does not, FCM is up and asked us to slow down).
//!
//! Authentication: an OAuth2 access token of the service account from Application Default
//! Credentials (scope `firebase.messaging`) in production; none against a local fake
//! (`testkit::fake_fcm`), which checks no token, as the emulators do not either.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::backoff::Backoff;
use domain::notify::{FcmVerdict, Platform, counts_as_outage, fcm_verdict, retry_wait};
use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{Breaker, BreakerPolicy, BreakerState, CIRCUIT_OPENED_MESSAGE};

/// The production endpoint.
pub const PRODUCTION_BASE: &str = "https://fcm.googleapis.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// How the client retries and when it gives up.
#[derive(Debug, Clone, Copy)]
pub struct FcmPolicy {
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries of 429 / 5xx / network failures.
    pub retry: Backoff,
    /// The longest single wait the client sits through (a longer `Retry-After` hands the
    /// message back as [`Sent::Later`]).
    pub max_wait: Duration,
    /// The breaker.
    pub breaker: BreakerPolicy,
}

impl Default for FcmPolicy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            retry: Backoff {
                initial: Duration::from_millis(500),
                multiplier: 2.0,
                max: Duration::from_secs(8),
                max_attempts: 4,
                jitter_fraction: 0.3,
            },
            max_wait: Duration::from_secs(10),
            breaker: BreakerPolicy::default(),
        }
    }
}

/// One push to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Registration token.
    pub token: String,
    /// The device's platform (which block carries the options).
    pub platform: Platform,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// String data for the app (`kind`, `notificationId`, `orderId`, ...).
    pub data: BTreeMap<String, String>,
    /// Collapse key: the device keeps only the newest message with it.
    pub collapse_key: String,
    /// High priority (transactional) or normal.
    pub high_priority: bool,
    /// How long FCM keeps it for an offline device.
    pub ttl: Duration,
}

/// The request body of a push, as FCM v1 wants it.
pub fn message_body(push: &Push) -> Value {
    let mut message = json!({
        "token": push.token,
        "notification": { "title": push.title, "body": push.body },
        "data": push.data,
    });
    let ttl = push.ttl.as_secs();
    match push.platform {
        Platform::Android => {
            message["android"] = json!({
                "collapse_key": push.collapse_key,
                "priority": if push.high_priority { "HIGH" } else { "NORMAL" },
                "ttl": format!("{ttl}s"),
                "notification": { "tag": push.collapse_key },
            });
        }
        Platform::Ios => {
            message["apns"] = json!({
                "headers": {
                    "apns-collapse-id": push.collapse_key,
                    "apns-priority": if push.high_priority { "10" } else { "5" },
                    "apns-expiration": (chrono::Utc::now().timestamp() + i64::try_from(ttl).unwrap_or(0)).to_string(),
                },
                "payload": { "aps": { "thread-id": push.collapse_key } },
            });
        }
        Platform::Web => {
            message["webpush"] = json!({
                "headers": {
                    "Urgency": if push.high_priority { "high" } else { "normal" },
                    "TTL": ttl.to_string(),
                    "Topic": web_topic(&push.collapse_key),
                },
                "notification": { "tag": push.collapse_key },
            });
        }
    }
    json!({ "message": message })
}

/// Web Push `Topic` (the collapse key of Web Push): at most 32 URL-safe base64 characters.
fn web_topic(key: &str) -> String {
    let cleaned: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    cleaned.chars().take(32).collect()
}

/// What a push came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// FCM accepted it (`projects/{p}/messages/{id}`).
    Accepted(String),
    /// The token is dead: remove it. The FCM error code.
    DeadToken(String),
    /// Not now: FCM throttled or failed past the retries, or asked to wait longer than the
    /// client waits. Try again later (at `retry_after` at the earliest, when FCM said).
    Later {
        /// What FCM last asked.
        retry_after: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// FCM refused it for good (our credentials or project, or the message itself).
    Refused {
        /// HTTP status.
        status: u16,
        /// The FCM error code or status.
        code: String,
    },
}

#[derive(Clone)]
enum Auth {
    /// A local fake: no token.
    None,
    /// Application Default Credentials, found on the first send.
    Adc(Arc<tokio::sync::OnceCell<AccessTokenCredentials>>),
}

/// An FCM HTTP v1 client for one project, with its breaker (shared by clones).
///
/// The HTTP client and the credentials are made on the first send, not at start: each loads a
/// TLS trust store (the credentials their own, to reach the metadata server), together about
/// 2 MiB that an instance which has sent nothing does not carry (`scripts/bench-size.sh`).
#[derive(Clone)]
pub struct FcmClient {
    http: Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    base: String,
    project: String,
    auth: Auth,
    policy: FcmPolicy,
    breaker: Arc<Mutex<Breaker>>,
}

impl std::fmt::Debug for FcmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmClient")
            .field("base", &self.base)
            .field("project", &self.project)
            .field("adc", &matches!(self.auth, Auth::Adc(_)))
            .finish_non_exhaustive()
    }
}

/// Why the client could not be made.
#[derive(Debug, thiserror::Error)]
#[error("FCM client: {0}")]
pub struct FcmSetupError(String);

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

/// The FCM error code of an error body: the `errorCode` of its `FcmError` detail, else its
/// `status`.
pub fn error_code(body: &str) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_str(body).ok()?;
    parsed
        .error
        .details
        .iter()
        .find(|d| {
            d["@type"].as_str().is_some_and(|t| t.ends_with("google.firebase.fcm.v1.FcmError"))
        })
        .and_then(|d| d["errorCode"].as_str().map(str::to_owned))
        .or(parsed.error.status)
}

/// `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(at.signed_duration_since(now).to_std().unwrap_or(Duration::ZERO))
}

impl FcmClient {
    /// Production FCM with Application Default Credentials.
    pub fn production(project: &str, policy: FcmPolicy) -> Result<Self, FcmSetupError> {
        Self::with(PRODUCTION_BASE, project, Auth::Adc(Arc::default()), policy)
    }

    /// A local FCM at `base` (`http://127.0.0.1:PORT`): no token.
    pub fn local(base: &str, project: &str, policy: FcmPolicy) -> Result<Self, FcmSetupError> {
        Self::with(base, project, Auth::None, policy)
    }

    fn with(
        base: &str,
        project: &str,
        auth: Auth,
        policy: FcmPolicy,
    ) -> Result<Self, FcmSetupError> {
        Ok(Self {
            http: Arc::default(),
            base: base.trim_end_matches('/').to_owned(),
            project: project.to_owned(),
            auth,
            policy,
            breaker: Arc::new(Mutex::new(Breaker::new(policy.breaker))),
        })
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.lock().state()
    }

    async fn bearer(&self) -> Result<Option<String>, String> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Adc(credentials) => {
                let credentials = credentials
                    .get_or_try_init(|| async {
                        Builder::default()
                            .with_scopes([SCOPE])
                            .build_access_token_credentials()
                            .map_err(|e| e.to_string())
                    })
                    .await?;
                credentials.access_token().await.map(|t| Some(t.token)).map_err(|e| e.to_string())
            }
        }
    }

    fn http(&self) -> Result<&reqwest::Client, String> {
        let policy = &self.policy;
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(policy.request_timeout)
                    .connect_timeout(policy.request_timeout.min(Duration::from_secs(5)))
                    .no_proxy()
                    .pool_max_idle_per_host(64)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Sends `push`, retrying 429 / 5xx / network failures within the policy.
    pub async fn send(&self, push: &Push) -> Sent {
        if !self.breaker.lock().admit(Instant::now()) {
            return Sent::Later {
                retry_after: Some(self.policy.breaker.open_for),
                reason: "FCM circuit open".to_owned(),
            };
        }
        let url = format!("{}/v1/projects/{}/messages:send", self.base, self.project);
        let body = message_body(push);
        let mut attempt = 0u32;
        let (outcome, outage) = loop {
            attempt += 1;
            let bearer = match self.bearer().await {
                Ok(b) => b,
                Err(e) => {
                    break (
                        Sent::Later { retry_after: None, reason: format!("no access token: {e}") },
                        false,
                    );
                }
            };
            let http = match self.http() {
                Ok(http) => http,
                Err(e) => {
                    break (
                        Sent::Later { retry_after: None, reason: format!("no HTTP client: {e}") },
                        false,
                    );
                }
            };
            let mut request = http.post(&url).json(&body);
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            let (status, retry_after, reason) = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                    let text = response.text().await.unwrap_or_default();
                    let code = error_code(&text);
                    match fcm_verdict(status, code.as_deref()) {
                        FcmVerdict::Sent => {
                            let name = serde_json::from_str::<Value>(&text)
                                .ok()
                                .and_then(|v| v["name"].as_str().map(str::to_owned))
                                .unwrap_or_default();
                            break (Sent::Accepted(name), false);
                        }
                        FcmVerdict::PruneToken => {
                            break (
                                Sent::DeadToken(code.unwrap_or_else(|| status.to_string())),
                                false,
                            );
                        }
                        FcmVerdict::Fail => {
                            break (
                                Sent::Refused { status, code: code.unwrap_or_default() },
                                false,
                            );
                        }
                        FcmVerdict::Retry => (
                            Some(status),
                            retry_after,
                            format!("HTTP {status} {}", code.unwrap_or_default()),
                        ),
                    }
                }
                Err(e) if e.is_timeout() => (None, None, "timed out".to_owned()),
                Err(e) => (None, None, format!("request failed: {e}")),
            };
            let wait = self
                .policy
                .retry
                .should_retry(attempt)
                .then(|| {
                    retry_wait(
                        &self.policy.retry,
                        attempt,
                        retry_after,
                        self.policy.max_wait,
                        rand::random(),
                    )
                })
                .flatten();
            match wait {
                Some(wait) => {
                    tracing::debug!(attempt, ?wait, %reason, "FCM send failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                None => break (Sent::Later { retry_after, reason }, counts_as_outage(status)),
            }
        };
        let opened = self.breaker.lock().record(!outage, Instant::now());
        if opened {
            tracing::warn!(
                provider = "fcm",
                open_for_secs = self.policy.breaker.open_for.as_secs(),
                "{CIRCUIT_OPENED_MESSAGE}"
            );
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(platform: Platform) -> Push {
        Push {
            token: "tok".into(),
            platform,
            title: "T".into(),
            body: "B".into(),
            data: BTreeMap::from([("orderId".into(), "o1".into())]),
            collapse_key: "order_paid:o1".into(),
            high_priority: true,
            ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn each_platform_gets_its_block() {
        let android = message_body(&push(Platform::Android));
        assert_eq!(android["message"]["android"]["collapse_key"], "order_paid:o1");
        assert_eq!(android["message"]["android"]["priority"], "HIGH");
        assert_eq!(android["message"]["android"]["ttl"], "3600s");
        assert!(android["message"].get("apns").is_none());
        let ios = message_body(&push(Platform::Ios));
        assert_eq!(ios["message"]["apns"]["headers"]["apns-collapse-id"], "order_paid:o1");
        assert_eq!(ios["message"]["apns"]["headers"]["apns-priority"], "10");
        let web = message_body(&push(Platform::Web));
        assert_eq!(web["message"]["webpush"]["headers"]["Urgency"], "high");
        assert_eq!(web["message"]["webpush"]["headers"]["Topic"], "order_paid_o1");
        assert_eq!(web["message"]["token"], "tok");
        assert_eq!(web["message"]["data"]["orderId"], "o1");
    }

    #[test]
    fn error_codes_come_from_the_fcm_detail() {
        let body = r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert_eq!(error_code(body).as_deref(), Some("UNREGISTERED"));
        let bare = r#"{"error":{"code":503,"message":"x","status":"UNAVAILABLE"}}"#;
        assert_eq!(error_code(bare).as_deref(), Some("UNAVAILABLE"));
        assert_eq!(error_code("not json"), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now: chrono::DateTime<chrono::Utc> = "2026-01-10T12:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sat, 10 Jan 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
