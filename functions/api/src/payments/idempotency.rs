//! `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header) on top of the shared
//! idempotency ledger.
//!
//! The key comes from the `Idempotency-Key` header or, for Firebase SDK callers (whose
//! `httpsCallable` cannot set a header), from `data.idempotencyKey`: one key, one scope, the
//! same checks. Both present must agree. The key is not part of the payload: the fingerprint
//! is taken over `data` without it, so a retry may switch between the two carriers.
//!
//! ```text
//! no key / bad key / header and data differ -> 400
//! run_once(scope "http:<callable>:<uid>", key, request data: sha-256 of its JSON)
//!   Ran      -> success: result saved (24 h) -> 200
//!               failure: released (a retry with the same key runs again) -> the error
//!   Replayed -> 200 with the saved result, `replayed: true` in it and `Idempotent-Replayed: true`
//!   Busy     -> 409 (the first request is still running)
//!   Conflict -> 422 (the key was used with another payload)
//! ```
//! Keys are scoped per user: two users may use the same key independently.

use std::future::Future;

use axum::response::{IntoResponse, Response};
use gcp::callable::Code;
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

/// The field of callable `data` that carries the key for SDK callers.
pub(crate) const DATA_FIELD: &str = "idempotencyKey";

/// Whether `key` is 1 to 255 visible ASCII characters.
fn valid(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The key of the `Idempotency-Key` header, validated (`None` without the header).
fn header_key(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(raw) = headers.get(HEADER) else { return Ok(None) };
    let key = raw.to_str().unwrap_or_default().trim().trim_matches('"');
    if !valid(key) {
        return Err(Error::reject(
            Code::InvalidArgument,
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters.",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Takes `data.idempotencyKey` out of `data`, validated (`None` when absent or null).
fn data_key(data: &mut Value) -> Result<Option<String>, Error> {
    let Some(raw) = data.as_object_mut().and_then(|fields| fields.remove(DATA_FIELD)) else {
        return Ok(None);
    };
    match raw {
        Value::Null => Ok(None),
        Value::String(key) if valid(&key) => Ok(Some(key)),
        _ => Err(Error::reject(
            Code::InvalidArgument,
            "data.idempotencyKey must be a string of 1 to 255 visible ASCII characters.",
        )),
    }
}

/// The request's key, from the header or `data.idempotencyKey` (removed from `data`, so the
/// payload fingerprint is the same whichever carried it). Missing, invalid, or given twice with
/// two values: `INVALID_ARGUMENT`.
pub(crate) fn key(headers: &HeaderMap, data: &mut Value) -> Result<String, Error> {
    let from_header = header_key(headers)?;
    let from_data = data_key(data)?;
    match (from_header, from_data) {
        (Some(header), Some(field)) if header != field => Err(Error::reject(
            Code::InvalidArgument,
            "The Idempotency-Key header and data.idempotencyKey differ; send one key.",
        )),
        (Some(key), _) | (None, Some(key)) => Ok(key),
        (None, None) => Err(Error::reject(
            Code::InvalidArgument,
            "An idempotency key is required for this call: data.idempotencyKey (Firebase SDKs) \
             or the Idempotency-Key header.",
        )),
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
        Outcome::Replayed(mut saved) => {
            // The saved result is the first answer; SDK callers see no header, so the body
            // says it is a replay.
            if let Some(fields) = saved.as_object_mut() {
                fields.insert("replayed".to_owned(), Value::Bool(true));
            }
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
    use serde_json::json;

    #[test]
    fn keys_are_required_and_checked() {
        let mut headers = HeaderMap::new();
        let mut data = json!({"provider": "stripe"});
        assert_eq!(key(&headers, &mut data).unwrap_err().status(), StatusCode::BAD_REQUEST);
        headers
            .insert(HEADER, HeaderValue::from_static("\"8e03978e-40d5-43e8-bc93-6894a57f9324\""));
        assert_eq!(key(&headers, &mut data).unwrap(), "8e03978e-40d5-43e8-bc93-6894a57f9324");
        headers.insert(HEADER, HeaderValue::from_static("has space"));
        assert!(key(&headers, &mut data).is_err());
        headers.insert(HEADER, HeaderValue::from_str(&"k".repeat(256)).unwrap());
        assert!(key(&headers, &mut data).is_err());
    }

    #[test]
    fn the_data_field_carries_the_same_key_and_leaves_the_payload() {
        let mut headers = HeaderMap::new();
        let mut data = json!({"provider": "stripe", "idempotencyKey": "k-1"});
        assert_eq!(key(&headers, &mut data).unwrap(), "k-1");
        assert_eq!(data, json!({"provider": "stripe"}), "the key is not part of the payload");

        // Both carriers: they must agree.
        headers.insert(HEADER, HeaderValue::from_static("k-1"));
        let mut same = json!({"idempotencyKey": "k-1"});
        assert_eq!(key(&headers, &mut same).unwrap(), "k-1");
        let mut other = json!({"idempotencyKey": "k-2"});
        assert_eq!(key(&headers, &mut other).unwrap_err().status(), StatusCode::BAD_REQUEST);

        // The header's checks, in data too; null counts as absent.
        let none = HeaderMap::new();
        for bad in [json!(""), json!("has space"), json!("k".repeat(256)), json!(7), json!(["k"])] {
            let mut data = json!({ "idempotencyKey": bad });
            assert!(key(&none, &mut data).is_err(), "{data}");
        }
        let mut null = json!({"idempotencyKey": null});
        assert!(key(&none, &mut null).is_err(), "no key at all");
        let mut longest = json!({ "idempotencyKey": "k".repeat(255) });
        assert!(key(&none, &mut longest).is_ok());
    }
}
