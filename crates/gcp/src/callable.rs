//! The Firebase callable protocol and the canonical error codes shared with blocking functions.
//!
//! Request: `POST /<name>` with `{"data": ...}`. Success: `200 {"result": ...}`.
//! Error: `{"error": {"status": "<CANONICAL>", "message": "...", "details": ...}}` with the HTTP
//! status of contracts.md section 1.5 (firebase-functions `errorCodeMap`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PublicError;
pub use crate::error::{ErrorBody, ErrorStatus};
pub use domain::status::Code;

/// Why a callable request body was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallableRequestError {
    #[error("request body is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("request body must be an object with a \"data\" field")]
    MissingData,
    #[error("invalid \"data\": {0}")]
    InvalidData(serde_json::Error),
}

impl PublicError for CallableRequestError {
    fn code(&self) -> Code {
        Code::InvalidArgument
    }

    fn public_message(&self) -> String {
        match self {
            CallableRequestError::NotJson(_) => "request body is not valid JSON",
            CallableRequestError::MissingData => {
                "request body must be an object with a \"data\" field"
            }
            CallableRequestError::InvalidData(_) => "invalid request data",
        }
        .to_owned()
    }
}

/// Parses `{"data": ...}` into the caller's type. A missing `data` is refused; `"data": null`
/// is passed through as JSON null (the SDKs send it for calls without arguments).
pub fn parse_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, CallableRequestError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(CallableRequestError::NotJson)?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(CallableRequestError::MissingData);
    };
    let data = map.remove("data").ok_or(CallableRequestError::MissingData)?;
    serde_json::from_value(data).map_err(CallableRequestError::InvalidData)
}

/// `{"result": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultBody<T> {
    pub result: T,
}

impl<T> ResultBody<T> {
    pub fn new(result: T) -> Self {
        Self { result }
    }
}

impl<T: Serialize> ResultBody<T> {
    /// The JSON body `{"result": ...}`.
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_map_to_the_documented_statuses() {
        for code in Code::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: Code = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
        assert_eq!(Code::PermissionDenied.http_status(), 403);
        assert_eq!(Code::ResourceExhausted.http_status(), 429);
        assert_eq!(Code::Cancelled.http_status(), 499);
        assert_eq!(Code::DeadlineExceeded.http_status(), 504);
    }

    #[test]
    fn error_body_has_the_exact_shape() {
        let body = ErrorBody::new(Code::PermissionDenied, "blocked");
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"status": "PERMISSION_DENIED", "message": "blocked"}})
        );
    }

    #[test]
    fn result_body_shape() {
        assert_eq!(
            ResultBody::new(serde_json::json!({"ok": true})).to_json().unwrap(),
            serde_json::json!({"result": {"ok": true}})
        );
        assert_eq!(ResultBody::new(()).to_json().unwrap(), serde_json::json!({"result": null}));
    }

    #[test]
    fn request_requires_data() {
        #[derive(Debug, Deserialize)]
        struct Args {
            n: u32,
        }
        assert_eq!(parse_request::<Args>(br#"{"data":{"n":3}}"#).unwrap().n, 3);
        assert!(matches!(
            parse_request::<Args>(br#"{"n":3}"#),
            Err(CallableRequestError::MissingData)
        ));
        assert!(matches!(parse_request::<Args>(b"[1]"), Err(CallableRequestError::MissingData)));
        assert!(matches!(parse_request::<Args>(b"{"), Err(CallableRequestError::NotJson(_))));
        assert!(matches!(
            parse_request::<Args>(br#"{"data":{"n":"x"}}"#),
            Err(CallableRequestError::InvalidData(_))
        ));
    }
}
