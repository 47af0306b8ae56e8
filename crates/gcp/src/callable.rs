//! The Firebase callable protocol and the canonical error codes shared with blocking functions.
//!
//! Request: `POST /<name>` with `{"data": ...}`. Success: `200 {"result": ...}`.
//! Error: `{"error": {"status": "<CANONICAL>", "message": "...", "details": ...}}` with the HTTP
//! status of contracts.md section 1.5 (firebase-functions `errorCodeMap`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Canonical error codes (google.rpc.Code names) with their HTTP mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    InvalidArgument,
    FailedPrecondition,
    OutOfRange,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    Aborted,
    ResourceExhausted,
    Cancelled,
    Unknown,
    Internal,
    DataLoss,
    Unimplemented,
    Unavailable,
    DeadlineExceeded,
}

impl Code {
    /// Every code, for exhaustive tests.
    pub const ALL: [Code; 16] = [
        Code::InvalidArgument,
        Code::FailedPrecondition,
        Code::OutOfRange,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::AlreadyExists,
        Code::Aborted,
        Code::ResourceExhausted,
        Code::Cancelled,
        Code::Unknown,
        Code::Internal,
        Code::DataLoss,
        Code::Unimplemented,
        Code::Unavailable,
        Code::DeadlineExceeded,
    ];

    /// The HTTP status firebase-functions answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::ResourceExhausted => 429,
            Code::Cancelled => 499,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::DeadlineExceeded => 504,
        }
    }

    /// The wire spelling, e.g. `PERMISSION_DENIED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::Aborted => "ABORTED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::Internal => "INTERNAL",
            Code::DataLoss => "DATA_LOSS",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Unavailable => "UNAVAILABLE",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inner object of an error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorStatus {
    pub status: Code,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// `{"error": {...}}`: the error body of callables and of blocking functions (section 1.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorStatus,
}

impl ErrorBody {
    pub fn new(status: Code, message: impl Into<String>) -> Self {
        Self { error: ErrorStatus { status, message: message.into(), details: None } }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.error.details = Some(details);
        self
    }
}

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

impl crate::error::PublicError for CallableRequestError {
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
