//! How an [`Error`] becomes a response: the fallback of `IntoResponse`, the route styles
//! (problem+json or the callable shape), and the middleware that records dead letters, logs the
//! internal chain and writes the final answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::dead_letter::DeadLetter;
use gcp::callable::{Code, ErrorBody};
use http::{HeaderValue, StatusCode, header};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{Error, INTERNAL_MESSAGE, RETRY_MESSAGE, TIMEOUT_MESSAGE, status_of};
use crate::dead_letter::DeadLetterSink;

/// Carries the error from `IntoResponse` to the middleware (extensions must be `Clone`).
#[derive(Clone)]
struct Stash(Arc<Mutex<Option<Error>>>);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        // Fallback used only when the runtime middleware is not installed: never claim success
        // for a Permanent error that nobody recorded.
        let mut response = match &self {
            Error::Retry { code, retry_after, .. } => {
                render_retry(ErrorStyle::Plain, *code, *retry_after)
            }
            Error::Permanent { .. } => render_retry(ErrorStyle::Plain, Code::Unavailable, None),
            Error::Reject { code, message, details, .. } => {
                render(ErrorStyle::Plain, self.status(), *code, message, details.as_ref())
            }
        };
        response.extensions_mut().insert(Stash(Arc::new(Mutex::new(Some(self)))));
        response
    }
}

/// How error bodies are shaped on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorStyle {
    /// `application/problem+json` (RFC 9457).
    #[default]
    Plain,
    /// The Firebase callable error shape (`gcp::callable::ErrorBody`).
    Callable,
}

/// Per-request settings that route-level layers ([`callable_style`], the body limits of
/// [`crate::limits`]) write and the error middleware reads after the handler ran.
#[derive(Debug, Clone)]
pub(crate) struct RouteSlot(Arc<RouteSlotInner>);

#[derive(Debug)]
struct RouteSlotInner {
    callable: AtomicBool,
    body_limit: AtomicUsize,
}

impl RouteSlot {
    fn new(body_limit: usize) -> Self {
        Self(Arc::new(RouteSlotInner {
            callable: AtomicBool::new(false),
            body_limit: AtomicUsize::new(body_limit),
        }))
    }

    fn style(&self) -> ErrorStyle {
        if self.0.callable.load(Ordering::Relaxed) {
            ErrorStyle::Callable
        } else {
            ErrorStyle::Plain
        }
    }

    pub(crate) fn set_body_limit(&self, limit: usize) {
        self.0.body_limit.store(limit, Ordering::Relaxed);
    }

    fn body_limit(&self) -> usize {
        self.0.body_limit.load(Ordering::Relaxed)
    }
}

/// Marks a route (or every route of a router) as a Firebase callable endpoint: its errors are
/// answered in the callable shape. Use as `post(handler).layer(runtime::callable_style())` or
/// `Router::new().route(..).layer(runtime::callable_style())` before merging.
pub fn callable_style() -> CallableStyle {
    CallableStyle
}

/// The layer returned by [`callable_style`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CallableStyle;

impl<S> tower::Layer<S> for CallableStyle {
    type Service = CallableStyleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallableStyleService { inner }
    }
}

/// The service of [`CallableStyle`].
#[derive(Debug, Clone)]
pub struct CallableStyleService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for CallableStyleService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if let Some(slot) = req.extensions().get::<RouteSlot>() {
            slot.0.callable.store(true, Ordering::Relaxed);
        }
        self.inner.call(req)
    }
}

/// Set on responses whose request failed permanently and was dead-lettered (they answer 200,
/// but metrics count them as errors).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeadLettered;

/// When the platform gives up on this request (a Lambda invocation's deadline less the margin
/// kept to answer): the request timeout is cut to it, so the caller gets the function's own
/// timeout answer rather than the platform's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnswerBy(pub(crate) tokio::time::Instant);

/// What the error middleware needs to know.
#[derive(Clone)]
pub(crate) struct ErrorContext {
    pub(crate) service: Arc<str>,
    pub(crate) sink: Arc<dyn DeadLetterSink>,
    pub(crate) timeout: Duration,
    pub(crate) default_body_limit: usize,
}

/// The error middleware: request timeout, then the one mapping from [`Error`] to response.
pub(crate) async fn map_errors(
    State(ctx): State<ErrorContext>,
    mut req: Request,
    next: Next,
) -> Response {
    let slot = RouteSlot::new(ctx.default_body_limit);
    req.extensions_mut().insert(slot.clone());
    // Only formatted when something failed: `<service> <METHOD> <route pattern>`.
    let (method, route) = (req.method().clone(), req.extensions().get::<MatchedPath>().cloned());
    let source = || {
        let route = route.as_ref().map_or("<unmatched>", MatchedPath::as_str);
        format!("{} {method} {route}", ctx.service)
    };

    let timeout = match req.extensions().get::<AnswerBy>() {
        Some(AnswerBy(at)) => {
            ctx.timeout.min(at.saturating_duration_since(tokio::time::Instant::now()))
        }
        None => ctx.timeout,
    };
    let Ok(mut response) = tokio::time::timeout(timeout, next.run(req)).await else {
        let err = Error::deadline_exceeded(anyhow::anyhow!("request timed out after {timeout:?}"));
        return ctx.respond(err, slot.style(), source()).await;
    };
    let stashed =
        response.extensions_mut().remove::<Stash>().and_then(|stash| stash.0.lock().take());
    if let Some(err) = stashed {
        return ctx.respond(err, slot.style(), source()).await;
    }
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && is_plain_text(&response) {
        // axum's body-limit rejection (text/plain): give it the same clear shape as ours.
        return ctx
            .respond(Error::payload_too_large(slot.body_limit()), slot.style(), source())
            .await;
    }
    response
}

fn is_plain_text(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"))
}

impl ErrorContext {
    async fn respond(&self, err: Error, style: ErrorStyle, source: String) -> Response {
        match err {
            Error::Reject { code, message, details, status } => {
                let status = status.unwrap_or_else(|| status_of(code));
                tracing::info!(error.kind = "Reject", error.code = %code, http.status = status.as_u16(), "request rejected: {message}");
                render(style, status, code, &message, details.as_ref())
            }
            Error::Retry { source: cause, code, retry_after, details } => {
                tracing::warn!(
                    error.kind = "Retry",
                    error.code = %code,
                    error.details = details.as_ref().map(tracing::field::display),
                    error.chain = %format_args!("{cause:#}"),
                    "request failed; asking the sender to retry"
                );
                render_retry(style, code, retry_after)
            }
            Error::Permanent { reason, source: cause, event_id, details, suspected_forgery } => {
                let id = dead_letter_id(&self.service, event_id.as_deref());
                let mut detail = format!("{cause:?}");
                if let Some(d) = &details {
                    detail.push_str(&format!("\ndetails: {d}"));
                }
                let dl = DeadLetter {
                    id: id.clone(),
                    source,
                    event_id: event_id.clone(),
                    reason: reason.clone(),
                    detail,
                    recorded_at: chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    suspected_forgery,
                };
                let recorded = match tokio::time::timeout(self.timeout, self.sink.record(dl)).await
                {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!(
                        "recording the dead letter timed out after {:?}",
                        self.timeout
                    )),
                };
                match recorded {
                    Ok(()) => {
                        tracing::error!(
                            error.kind = "Permanent",
                            dead_letter.id = %id,
                            suspected_forgery,
                            event_id = event_id.as_deref(),
                            error.chain = %format_args!("{cause:#}"),
                            "permanent failure recorded as a dead letter and acknowledged: {reason}"
                        );
                        let mut response = render_acknowledged(style, &id);
                        response.extensions_mut().insert(DeadLettered);
                        response
                    }
                    Err(sink_err) => {
                        tracing::error!(
                            error.kind = "Permanent",
                            dead_letter.id = %id,
                            event_id = event_id.as_deref(),
                            error.chain = %format_args!("{cause:#}"),
                            sink.error = %format_args!("{sink_err:#}"),
                            "permanent failure could not be recorded as a dead letter; answering 503 so it is redelivered: {reason}"
                        );
                        render_retry(style, Code::Unavailable, None)
                    }
                }
            }
        }
    }
}

/// `<service>-<event id>` when the event id is known (a redelivery overwrites the same record),
/// otherwise `<service>-<uuid v7>`. `/` is not allowed in Firestore document ids.
fn dead_letter_id(service: &str, event_id: Option<&str>) -> String {
    match event_id {
        Some(id) => format!("{service}-{}", id.replace('/', "_")),
        None => format!("{service}-{}", uuid::Uuid::now_v7()),
    }
}

/// A retry answer; with `retry_after`, the `Retry-After` header and, for callables (whose
/// Firebase SDK clients never see response headers), `details.retryAfterSeconds` with the
/// same whole seconds.
fn render_retry(style: ErrorStyle, code: Code, retry_after: Option<Duration>) -> Response {
    let message = if code == Code::DeadlineExceeded { TIMEOUT_MESSAGE } else { RETRY_MESSAGE };
    let secs =
        retry_after.map(|after| (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1));
    let details = match (style, secs) {
        (ErrorStyle::Callable, Some(secs)) => Some(json!({ "retryAfterSeconds": secs })),
        _ => None,
    };
    let mut response = render(style, status_of(code), code, message, details.as_ref());
    if let Some(secs) = secs {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn render_acknowledged(style: ErrorStyle, dead_letter_id: &str) -> Response {
    match style {
        // A client waits on a callable: tell it the call failed (no redelivery loop exists here).
        ErrorStyle::Callable => {
            render(style, StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, INTERNAL_MESSAGE, None)
        }
        ErrorStyle::Plain => (
            StatusCode::OK,
            axum::Json(json!({"acknowledged": true, "deadLetterId": dead_letter_id})),
        )
            .into_response(),
    }
}

fn render(
    style: ErrorStyle,
    status: StatusCode,
    code: Code,
    message: &str,
    details: Option<&Value>,
) -> Response {
    let (content_type, body) = match style {
        ErrorStyle::Callable => {
            let mut body = ErrorBody::new(code, message);
            if let Some(d) = details {
                body = body.with_details(d.clone());
            }
            ("application/json", serde_json::to_vec(&body))
        }
        ErrorStyle::Plain => {
            let mut problem = json!({
                "type": "about:blank",
                "title": status.canonical_reason().unwrap_or("Error"),
                "status": status.as_u16(),
                "detail": message,
                "code": code.as_str(),
            });
            if let Some(d) = details {
                problem["details"] = d.clone();
            }
            ("application/problem+json", serde_json::to_vec(&problem))
        }
    };
    let body = body.unwrap_or_else(|_| br#"{"detail":"error"}"#.to_vec());
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn fallback_response_never_acknowledges_an_unrecorded_permanent_error() {
        let response = Error::permanent("bad", anyhow::anyhow!("x"), None).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let response = render_retry(
            ErrorStyle::Plain,
            Code::ResourceExhausted,
            Some(Duration::from_millis(1500)),
        );
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response =
            render_retry(ErrorStyle::Plain, Code::ResourceExhausted, Some(Duration::ZERO));
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    /// SDK callers see no headers: a callable's retry answer repeats `Retry-After` in
    /// `details.retryAfterSeconds`.
    #[tokio::test]
    async fn callable_retry_answers_carry_the_wait_in_details() {
        let response = render_retry(
            ErrorStyle::Callable,
            Code::ResourceExhausted,
            Some(Duration::from_millis(41_200)),
        );
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body["error"]["details"], json!({"retryAfterSeconds": 42}));
        let without = render_retry(ErrorStyle::Callable, Code::Unavailable, None);
        let body = axum::body::to_bytes(without.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error"].get("details").is_none(), "{body}");
    }

    #[test]
    fn dead_letter_ids_are_stable_per_event() {
        assert_eq!(dead_letter_id("svc", Some("a/b")), "svc-a_b");
        assert_ne!(dead_letter_id("svc", None), dead_letter_id("svc", None));
    }
}
