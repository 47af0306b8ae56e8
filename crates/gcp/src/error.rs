//! How errors of this crate become answers: every error enum implements [`PublicError`], which
//! gives the canonical [`Code`] (and so the HTTP status) and a message that is safe to send to
//! the caller. Internal detail (key material, upstream responses, parser positions) stays in
//! the `Display`/`source` chain, which is for logs only.

use crate::callable::{Code, ErrorBody};

/// An error that can be answered to a caller without leaking internals.
pub trait PublicError: std::error::Error {
    /// The canonical code: decides the HTTP status (see [`Code::http_status`]) and, for event
    /// deliveries, whether the sender retries (`UNAVAILABLE` and other 5xx) or not (4xx).
    fn code(&self) -> Code;

    /// A short message that is safe to show to the caller.
    fn public_message(&self) -> String;

    /// Whether the failure is transient: the same request may succeed later.
    fn is_retryable(&self) -> bool {
        matches!(
            self.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Internal | Code::Unknown
        )
    }

    /// The `{"error": {...}}` body of callables and blocking functions.
    fn to_error_body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.public_message())
    }
}
