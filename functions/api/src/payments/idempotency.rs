//! `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header) on top of the shared
//! idempotency ledger.
//!
//! ```text
//! no header / bad key            -> 400
//! run_once(scope "http:<callable>:<uid>", key, request data: sha-256 of its JSON)
//!   Ran      -> success: result saved (24 h) -> 200
//!               failure: released (a retry with the same key runs again) -> the error
//!   Replayed -> 200 with the saved result and `Idempotent-Replayed: true`
//!   Busy     -> 409 (the first request is still running)
//!   Conflict -> 422 (the key was used with another payload)
//! ```
//! Keys are scoped per user: two users may use the same key independently.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use gcp::callable::Code;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use runtime::Error;
use runtime::trigger::CallableResult;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use store::ledger::Outcome;

use crate::AppState;

/// The request header.
pub(crate) const HEADER: &str = "idempotency-key";
/// The replay marker header.
pub(crate) const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted.
const MAX_KEY: usize = 255;
/// How long a running request holds its key.
const LEASE: Duration = Duration::from_secs(60);

/// The key of a request, validated.
pub(crate) fn key(headers: &HeaderMap) -> Result<String, Error> {
    let Some(raw) = headers.get(HEADER) else {
        return Err(Error::reject(
            Code::InvalidArgument,
            "The Idempotency-Key header is required for this call.",
        ));
    };
    let key = raw.to_str().unwrap_or_default().trim().trim_matches('"');
    let valid =
        !key.is_empty() && key.len() <= MAX_KEY && key.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(Error::reject(
            Code::InvalidArgument,
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters.",
        ));
    }
    Ok(key.to_owned())
}

/// The validated `Idempotency-Key` of a request, as an extractor (it runs before the body is
/// parsed, so a request without a key is refused for that first).
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyKey(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        key(&parts.headers).map(IdempotencyKey)
    }
}

/// Runs `run` at most once per (`callable`, `uid`, `key`) and payload `data`.
///
/// If the result cannot be saved, it is answered anyway: the work is idempotent by itself
/// (deterministic ids, provider idempotency keys), and a retry re-runs it once the lease is over.
pub(crate) async fn once<T, F, Fut>(
    state: &AppState,
    callable: &str,
    uid: &str,
    key: &str,
    data: &Value,
    run: F,
) -> Result<Response, Error>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let scope = format!("http:{callable}:{uid}");
    let outcome = state
        .payments
        .ledger
        .run_once(&scope, key, data, LEASE, run)
        .await
        .map_err(|e| e.or_ledger(super::errors::store_error))?;
    match outcome {
        Outcome::Ran(result) => Ok(CallableResult(result).into_response()),
        Outcome::Replayed(saved) => {
            let mut response = CallableResult(saved).into_response();
            response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(response)
        }
        Outcome::Busy { .. } => Err(Error::reject(
            Code::Aborted,
            "A request with this Idempotency-Key is still being processed; retry later.",
        )),
        Outcome::Conflict => Err(Error::Reject {
            code: Code::InvalidArgument,
            message: "This Idempotency-Key was already used with a different request.".to_owned(),
            details: None,
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_required_and_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(key(&headers).unwrap_err().status(), StatusCode::BAD_REQUEST);
        headers
            .insert(HEADER, HeaderValue::from_static("\"8e03978e-40d5-43e8-bc93-6894a57f9324\""));
        assert_eq!(key(&headers).unwrap(), "8e03978e-40d5-43e8-bc93-6894a57f9324");
        headers.insert(HEADER, HeaderValue::from_static("has space"));
        assert!(key(&headers).is_err());
        headers.insert(HEADER, HeaderValue::from_str(&"k".repeat(256)).unwrap());
        assert!(key(&headers).is_err());
    }
}
