//! The one error type of Hearth handlers and the one place errors become responses.
//!
//! Handlers return `Result<impl IntoResponse, runtime::Error>`. An [`Error`] decides delivery:
//!
//! - [`Error::Retry`]: a transient failure. `503` (or `429` + `Retry-After` for rate limits,
//!   `504` for timeouts) so Pub/Sub, Eventarc or the caller redelivers.
//! - [`Error::Permanent`]: the event can never succeed. It is recorded as a
//!   [`DeadLetter`](domain::dead_letter::DeadLetter) through the configured
//!   [`DeadLetterSink`], logged at ERROR, and acknowledged with `200` so it does not loop. If the
//!   dead letter cannot be recorded, the answer is `503` instead: nothing is lost.
//! - [`Error::Reject`]: a client mistake, answered with a clear 4xx body:
//!   `application/problem+json` (RFC 9457) on plain routes, the Firebase callable error shape
//!   (`{"error":{"status","message","details"}}`) on routes marked with [`callable_style`].
//!
//! `IntoResponse for Error` only stashes the error in the response extensions (with a safe
//! fallback response in case the middleware is missing); the middleware installed by
//! [`crate::Server`] knows the sink, the route and the style, logs the internal chain, and
//! writes the final response. Internal details never reach callers: Retry and Permanent answers
//! carry a generic message.

//!
//! This module holds the type and its constructors; [`response`] holds the middleware and the
//! rendering of answers.

use std::fmt;
use std::time::Duration;

use domain::status::Retryable;
use gcp::callable::Code;
use http::StatusCode;
use serde_json::Value;

mod response;

pub(crate) use response::{AnswerBy, DeadLettered, ErrorContext, RouteSlot, map_errors};
pub use response::{CallableStyle, CallableStyleService, ErrorStyle, callable_style};

/// The generic message callers see for Retry answers.
pub const RETRY_MESSAGE: &str =
    "The service could not complete the request right now; please retry.";
/// The generic message callers see when a timeout cut the request short.
pub const TIMEOUT_MESSAGE: &str = "The request took too long and was cancelled; please retry.";
/// The generic message callable clients see when their call failed permanently.
pub const INTERNAL_MESSAGE: &str = "An unexpected error occurred.";

/// What went wrong, and therefore how the sender should react.
pub enum Error {
    /// Transient: the sender should redeliver. `code` is `UNAVAILABLE` (503),
    /// `RESOURCE_EXHAUSTED` (429, with `Retry-After`) or `DEADLINE_EXCEEDED` (504).
    Retry {
        source: anyhow::Error,
        code: Code,
        retry_after: Option<Duration>,
        details: Option<Value>,
    },
    /// Can never succeed: record a dead letter, log, and acknowledge.
    Permanent {
        reason: String,
        source: anyhow::Error,
        event_id: Option<String>,
        details: Option<Value>,
        /// The dead letter is flagged as a suspected forgery.
        suspected_forgery: bool,
    },
    /// The caller's mistake: a 4xx whose `message` (and `details`) are shown to the caller.
    /// `status` overrides the HTTP status of `code` (used for 413).
    Reject { code: Code, message: String, details: Option<Value>, status: Option<StatusCode> },
}

impl Error {
    /// A transient failure: answer 503 so the sender redelivers.
    pub fn retry(source: impl Into<anyhow::Error>) -> Self {
        Error::Retry {
            source: source.into(),
            code: Code::Unavailable,
            retry_after: None,
            details: None,
        }
    }

    /// Rate limited or out of quota: answer 429 with `Retry-After` (whole seconds, at least 1).
    pub fn retry_after(source: impl Into<anyhow::Error>, after: Duration) -> Self {
        Error::Retry {
            source: source.into(),
            code: Code::ResourceExhausted,
            retry_after: Some(after),
            details: None,
        }
    }

    /// The request ran out of time: answer 504 so the sender redelivers.
    pub fn deadline_exceeded(source: impl Into<anyhow::Error>) -> Self {
        Error::Retry {
            source: source.into(),
            code: Code::DeadlineExceeded,
            retry_after: None,
            details: None,
        }
    }

    /// Another delivery of the same event holds it right now: answer 409 (`ABORTED`) with
    /// `Retry-After` so the sender comes back once that delivery's lease is over.
    pub fn busy(source: impl Into<anyhow::Error>, retry_after: std::time::Duration) -> Self {
        Error::Retry {
            source: source.into(),
            code: Code::Aborted,
            retry_after: Some(retry_after),
            details: None,
        }
    }

    /// A failure no redelivery can fix. `reason` is a short operator-facing summary;
    /// `event_id` is the stable event key (Pub/Sub message id, CloudEvent id, ...) so a
    /// redelivery overwrites the same dead letter.
    pub fn permanent(
        reason: impl Into<String>,
        source: impl Into<anyhow::Error>,
        event_id: Option<String>,
    ) -> Self {
        Self::dead_letter(reason.into(), source.into(), event_id, false)
    }

    /// A permanent failure of an event that is not what it claims to be (it names an order
    /// it does not pay, a payment that is someone else's): nothing was changed, and the dead
    /// letter is flagged `suspected_forgery` for operators.
    pub fn suspected_forgery(
        reason: impl Into<String>,
        source: impl Into<anyhow::Error>,
        event_id: Option<String>,
    ) -> Self {
        Self::dead_letter(reason.into(), source.into(), event_id, true)
    }

    fn dead_letter(
        reason: String,
        source: anyhow::Error,
        event_id: Option<String>,
        suspected_forgery: bool,
    ) -> Self {
        Error::Permanent { reason, source, event_id, details: None, suspected_forgery }
    }

    /// An outside service (Firestore, a provider, a token endpoint) failed while handling an
    /// event (a push message, a CloudEvent, a task): a retryable failure asks the sender to
    /// redeliver (503); any other can never succeed, so it is permanent, with the reason
    /// `"{doing} failed: {error}"` and the dead letter named after `event_id`.
    pub fn for_event<E>(error: E, doing: &str, event_id: Option<&str>) -> Self
    where
        E: Retryable + std::error::Error + Send + Sync + 'static,
    {
        if error.is_retryable() {
            return Error::retry(anyhow::Error::new(error).context(doing.to_owned()));
        }
        Error::permanent(format!("{doing} failed: {error}"), error, event_id.map(str::to_owned))
    }

    /// An outside service failed while answering a caller: a retryable failure answers 503 (the
    /// caller tries again); any other is logged with its detail and answered as `code` with
    /// `public_message`, which never carries that detail.
    pub fn for_caller<E>(error: E, doing: &str, code: Code, public_message: &str) -> Self
    where
        E: Retryable + std::error::Error + Send + Sync + 'static,
    {
        if error.is_retryable() {
            return Error::retry(anyhow::Error::new(error).context(doing.to_owned()));
        }
        tracing::error!(error = %error, "{doing} failed");
        Error::reject(code, public_message)
    }

    /// A client mistake. `public_message` is sent to the caller as is.
    pub fn reject(code: Code, public_message: impl Into<String>) -> Self {
        Error::Reject { code, message: public_message.into(), details: None, status: None }
    }

    /// The request body is larger than the route allows: 413, `RESOURCE_EXHAUSTED` (the code
    /// gRPC uses for oversized messages).
    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Error::Reject {
            code: Code::ResourceExhausted,
            message: format!(
                "The request body is larger than this endpoint accepts ({limit_bytes} bytes)."
            ),
            details: None,
            status: Some(StatusCode::PAYLOAD_TOO_LARGE),
        }
    }

    /// Attaches structured details. Reject sends them to the caller (`details`); Retry and
    /// Permanent only log them (and put them in the dead letter).
    #[must_use]
    pub fn with_details(mut self, value: Value) -> Self {
        match &mut self {
            Error::Retry { details, .. }
            | Error::Permanent { details, .. }
            | Error::Reject { details, .. } => {
                *details = Some(value);
            }
        }
        self
    }

    /// The HTTP status this error answers with when nothing goes wrong while handling it
    /// (Permanent: 200 once the dead letter is recorded).
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Retry { code, .. } => status_of(*code),
            Error::Permanent { .. } => StatusCode::OK,
            Error::Reject { code, status, .. } => status.unwrap_or_else(|| status_of(*code)),
        }
    }
}

impl From<anyhow::Error> for Error {
    /// Unclassified failures are retried: redelivery is the safe default (nothing is lost).
    fn from(source: anyhow::Error) -> Self {
        Error::retry(source)
    }
}

impl fmt::Debug for Error {
    /// Prints the variant, its fields and the whole source chain.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retry { source, code, retry_after, details } => {
                write!(f, "Retry ({code}")?;
                if let Some(after) = retry_after {
                    write!(f, ", retry after {after:?}")?;
                }
                write!(f, "): {source:?}")?;
                if let Some(d) = details {
                    write!(f, "\ndetails: {d}")?;
                }
                Ok(())
            }
            Error::Permanent { reason, source, event_id, details, suspected_forgery } => {
                write!(f, "Permanent ({reason}")?;
                if *suspected_forgery {
                    write!(f, ", suspected forgery")?;
                }
                if let Some(id) = event_id {
                    write!(f, ", event {id}")?;
                }
                write!(f, "): {source:?}")?;
                if let Some(d) = details {
                    write!(f, "\ndetails: {d}")?;
                }
                Ok(())
            }
            Error::Reject { code, message, details, .. } => {
                write!(f, "Reject ({code}): {message}")?;
                if let Some(d) = details {
                    write!(f, "\ndetails: {d}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retry { source, code, .. } => write!(f, "retryable failure ({code}): {source}"),
            Error::Permanent { reason, .. } => write!(f, "permanent failure: {reason}"),
            Error::Reject { code, message, .. } => write!(f, "rejected ({code}): {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Retry { source, .. } | Error::Permanent { source, .. } => Some(source.as_ref()),
            Error::Reject { .. } => None,
        }
    }
}

pub(crate) fn status_of(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outside service: {0}")]
    struct Outside(bool);

    impl Retryable for Outside {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn events_retry_or_dead_letter_under_their_id() {
        let retry = Error::for_event(Outside(true), "applying", Some("m1"));
        assert_eq!(retry.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(format!("{retry:?}").contains("applying"), "{retry:?}");
        let permanent = Error::for_event(Outside(false), "applying", Some("m1"));
        assert!(matches!(
            permanent,
            Error::Permanent { ref reason, event_id: Some(ref id), .. }
                if id == "m1" && reason == "applying failed: outside service: false"
        ));
    }

    #[test]
    fn callers_retry_or_see_only_the_public_message() {
        let retry = Error::for_caller(Outside(true), "paying", Code::FailedPrecondition, "No.");
        assert_eq!(retry.status(), StatusCode::SERVICE_UNAVAILABLE);
        let refused = Error::for_caller(Outside(false), "paying", Code::FailedPrecondition, "No.");
        assert!(matches!(
            refused,
            Error::Reject { code: Code::FailedPrecondition, ref message, .. } if message == "No."
        ));
    }

    #[test]
    fn debug_prints_the_whole_chain_and_display_stays_short() {
        let inner = anyhow::anyhow!("connection reset").context("loading tenant");
        let err = Error::retry(inner);
        let debug = format!("{err:?}");
        assert!(debug.contains("loading tenant"), "{debug}");
        assert!(debug.contains("connection reset"), "{debug}");
        assert_eq!(err.to_string(), "retryable failure (UNAVAILABLE): loading tenant");
    }

    #[test]
    fn statuses_follow_the_codes() {
        assert_eq!(Error::retry(anyhow::anyhow!("x")).status(), 503);
        assert_eq!(Error::retry_after(anyhow::anyhow!("x"), Duration::from_secs(2)).status(), 429);
        assert_eq!(Error::deadline_exceeded(anyhow::anyhow!("x")).status(), 504);
        assert_eq!(Error::busy(anyhow::anyhow!("x"), Duration::from_secs(1)).status(), 409);
        assert_eq!(Error::permanent("bad", anyhow::anyhow!("x"), None).status(), 200);
        assert_eq!(Error::reject(Code::NotFound, "no").status(), 404);
        assert_eq!(Error::payload_too_large(10).status(), 413);
    }
}
