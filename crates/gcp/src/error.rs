//! How errors of this crate become answers: every error enum implements [`PublicError`], which
//! gives the canonical [`Code`] (and so the HTTP status) and a message that is safe to send to
//! the caller. Internal detail (key material, upstream responses, parser positions) stays in
//! the `Display`/`source` chain, which is for logs only.
//!
//! The error body is defined here and re-exported by [`crate::callable`], which uses it; this
//! module imports nothing of the callable protocol.

use domain::status::Code;
use serde::{Deserialize, Serialize};

/// An error that can be answered to a caller without leaking internals.
pub trait PublicError: std::error::Error {
    /// The canonical code: decides the HTTP status (see [`Code::http_status`]) and, for event
    /// deliveries, whether the sender retries (`UNAVAILABLE` and other 5xx) or not (4xx).
    fn code(&self) -> Code;

    /// A short message that is safe to show to the caller.
    fn public_message(&self) -> String;

    /// Whether the failure is transient: the same request may succeed later.
    fn is_retryable(&self) -> bool {
        self.code().is_transient()
    }

    /// The `{"error": {...}}` body of callables and blocking functions.
    fn to_error_body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.public_message())
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
