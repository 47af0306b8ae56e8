//! `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header) on top of the shared
//! idempotency ledger.
//!
//! ```text
//! no header / bad key            -> 400
//! claim(scope "http:<callable>:<uid>", key, sha-256 of the request data)
//!   Fresh    -> run; success -> complete (result saved, 24 h) -> 200
//!                    failure -> release (a retry with the same key runs again) -> the error
//!   Done     -> 200 with the saved result and `Idempotent-Replayed: true`
//!   InFlight -> 409 (the first request is still running)
//!   Mismatch -> 422 (the key was used with another payload)
//! ```
//! Keys are scoped per user: two users may use the same key independently.

use std::future::Future;

use axum::Json;
use axum::response::{IntoResponse, Response};
use gcp::callable::{Code, ResultBody};
use http::{HeaderMap, HeaderValue, StatusCode};
use runtime::Error;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;
use store::Claim;

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

/// Runs `run` at most once per (`callable`, `uid`, `key`) and payload `data`.
pub(crate) async fn once<F, Fut>(
    state: &AppState,
    callable: &str,
    uid: &str,
    key: &str,
    data: &Value,
    run: F,
) -> Result<Response, Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let ledger = &state.payments.ledger;
    let scope = format!("http:{callable}:{uid}");
    let fingerprint = hex::encode(Sha256::digest(serde_json::to_vec(data).unwrap_or_default()));
    let claim = ledger
        .claim(&scope, key, &fingerprint, LEASE)
        .await
        .map_err(super::callables::store_error)?;
    let token = match claim {
        Claim::Fresh(token) => token,
        Claim::Done(saved) => {
            let mut response = Json(ResultBody::new(saved)).into_response();
            response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
            return Ok(response);
        }
        Claim::InFlight { .. } => {
            return Err(Error::reject(
                Code::Aborted,
                "A request with this Idempotency-Key is still being processed; retry later.",
            ));
        }
        Claim::Mismatch => {
            return Err(Error::Reject {
                code: Code::InvalidArgument,
                message: "This Idempotency-Key was already used with a different request."
                    .to_owned(),
                details: None,
                status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            });
        }
    };
    match run().await {
        Ok(result) => {
            if let Err(error) = ledger.complete(&token, &result).await {
                // The work is done and idempotent by itself (deterministic ids, provider
                // idempotency keys): answer; a retry re-runs it once the lease is over.
                tracing::warn!(%error, "could not save the idempotent result");
            }
            Ok(Json(ResultBody::new(result)).into_response())
        }
        Err(error) => {
            if let Err(release) = ledger.release(&token).await {
                tracing::warn!(error = %release, "could not release the idempotency key");
            }
            Err(error)
        }
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
