//! Per-route request body limits.
//!
//! Every route accepts `HEARTH_BODY_LIMIT_BYTES` (default 1 MiB), enforced by the body
//! extractors (`Bytes`, `Json`, `String`, ...). Pub/Sub push and CloudEvent routes raise it with
//! [`push_endpoint`] so a 10 MB message, base64-encoded in the push envelope (about 13.4 MB),
//! fits:
//!
//! ```
//! use axum::{Router, body::Bytes, routing::post};
//!
//! async fn handle(body: Bytes) -> String {
//!     format!("{} bytes", body.len())
//! }
//!
//! let app: Router = Router::new()
//!     .route("/pubsub/user-signups", post(handle).layer(runtime::limits::push_endpoint()));
//! ```
//!
//! A route-level limit also refuses a declared `Content-Length` above it before reading a byte.
//! Oversized requests get `413` with a clear body (problem+json, or the callable shape on
//! callable routes).

use std::task::{Context, Poll};

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use futures::future::{Either, Ready, ready};
use http::header;

use crate::error::{Error, RouteSlot};

/// The limit of Pub/Sub push and CloudEvent routes: 16 MiB, enough for a 10 MB message in base64
/// plus the envelope.
pub const PUSH_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Raises (or lowers) a route's body limit to 16 MiB for Pub/Sub push and CloudEvent endpoints.
pub fn push_endpoint() -> BodyLimit {
    body_limit(PUSH_BODY_LIMIT)
}

/// Sets a route's body limit to `bytes`.
pub fn body_limit(bytes: usize) -> BodyLimit {
    BodyLimit { limit: bytes }
}

/// The route-level layer returned by [`push_endpoint`] and [`body_limit`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    limit: usize,
}

impl BodyLimit {
    /// The limit in bytes.
    pub fn bytes(&self) -> usize {
        self.limit
    }
}

impl<S> tower::Layer<S> for BodyLimit {
    type Service = BodyLimitService<<DefaultBodyLimit as tower::Layer<S>>::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimitService {
            inner: tower::Layer::layer(&DefaultBodyLimit::max(self.limit), inner),
            limit: self.limit,
        }
    }
}

/// The service of [`BodyLimit`].
#[derive(Debug, Clone)]
pub struct BodyLimitService<S> {
    inner: S,
    limit: usize,
}

impl<S, B> tower::Service<http::Request<B>> for BodyLimitService<S>
where
    S: tower::Service<http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if let Some(slot) = req.extensions().get::<RouteSlot>() {
            slot.set_body_limit(self.limit);
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.limit as u64) {
            return Either::Left(ready(Ok(Error::payload_too_large(self.limit).into_response())));
        }
        Either::Right(self.inner.call(req))
    }
}
