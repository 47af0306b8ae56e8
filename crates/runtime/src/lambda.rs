//! Serving on AWS Lambda: the layered `Router` behind `lambda_http`, made to answer as it does
//! on Cloud Run.
//!
//! Supported event sources: API Gateway REST APIs (payload 1.0, any stage), API Gateway HTTP
//! APIs (payload 2.0, `$default` or a named stage), Lambda function URLs and Application Load
//! Balancer target groups (single- or multi-value headers). Any other event is reported to the
//! Runtime API as an invocation error and the next invocation is served as usual.
//!
//! - **Stages.** A REST API event with a named stage gets the stage prefixed to its path by
//!   `lambda_http`, and an HTTP API event with a named stage carries it in `rawPath`. The
//!   event's stage is stripped from the front of the path before routing, so `/prod/healthz`
//!   reaches `/healthz` on every event type (with or without
//!   `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`). Function URLs and ALB have no stage.
//! - **Repeated response headers** (CORS and gzip each add a `Vary`) are joined into one
//!   comma-separated value: the HTTP API, function URL and single-value ALB formats keep only
//!   the first value of a header. `Set-Cookie` is left alone (HTTP APIs carry it in `cookies`,
//!   REST APIs and ALB in multi-value headers).
//! - **Deadlines.** An invocation's timeout is its `Lambda-Runtime-Deadline-Ms` less
//!   `HEARTH_LAMBDA_DEADLINE_MARGIN_MS`, capped by `HEARTH_REQUEST_TIMEOUT_SECS`, so a slow
//!   dependency ends in the function's own `504` (problem+json, as on Cloud Run) before Lambda
//!   cuts the invocation off.
//! - **Concurrency.** With `AWS_LAMBDA_MAX_CONCURRENCY` above 1 (Lambda Managed Instances)
//!   that many invocations run at once (`lambda_http`'s concurrent runtime; the router is
//!   stateless and `Clone`); unset, one at a time.
//! - **Shutdown.** A no-op internal extension is registered before the first invocation, which
//!   is what makes Lambda send SIGTERM before it stops the process. On SIGTERM the request ids
//!   of the invocations in flight are logged, they get up to `HEARTH_SHUTDOWN_GRACE_SECS` to
//!   finish (their answers are posted), and the process exits 0; what is still running then
//!   is logged by request id.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Router;
use axum::response::IntoResponse as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, header};
use http_body_util::{BodyExt as _, Full};
use lambda_http::lambda_runtime::layers::TracingLayer;
use lambda_http::lambda_runtime::{Error as BoxError, LambdaInvocation};
use lambda_http::request::RequestContext;
use lambda_http::{RequestExt as _, tower};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tower::{Layer, Service};

use crate::config::BaseConfig;
use crate::error::{AnswerBy, Error};

/// The name of the no-op internal extension registered for SIGTERM.
pub(crate) const SHUTDOWN_EXTENSION_NAME: &str = "hearth-graceful-shutdown";

/// Serves `router` through the Lambda Runtime API at `AWS_LAMBDA_RUNTIME_API` until `signal`
/// completes, then waits up to the grace period for the invocations in flight.
pub(crate) async fn serve(
    name: &str,
    config: &BaseConfig,
    router: Router,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let api = config.lambda_runtime_api.as_deref().context("AWS_LAMBDA_RUNTIME_API is not set")?;
    let sigterm = match register_shutdown_extension(api).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                error = %format!("{e:#}"),
                "could not register the shutdown extension: Lambda will stop this process without SIGTERM"
            );
            false
        }
    };
    tracing::info!(
        service = %name,
        max_concurrency = config.lambda_max_concurrency.unwrap_or(1),
        deadline_margin_ms = config.lambda_deadline_margin.as_millis(),
        request_timeout_cap_s = config.request_timeout.as_secs(),
        shutdown_wait_s = config.shutdown_grace.as_secs(),
        sigterm,
        "serving through the AWS Lambda runtime API"
    );
    let in_flight = InFlight::default();
    let handler = Invocation { router, margin: config.lambda_deadline_margin };
    let runtime = lambda_http::runtime_concurrent(handler)
        .layer(TracingLayer::new())
        .layer(TrackLayer(in_flight.clone()));
    // Never dropped while an invocation runs: with one worker the invocation lives inside it.
    let run = runtime.run_concurrent();
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => return stopped(result),
        () = signal => {}
    }
    let grace = config.shutdown_grace;
    tracing::info!(
        in_flight = ?in_flight.ids(),
        grace_s = grace.as_secs_f64(),
        "shutdown signal received; letting in-flight invocations finish"
    );
    tokio::select! {
        result = &mut run => return stopped(result),
        () = in_flight.idle() => tracing::info!("all invocations finished; exiting"),
        () = tokio::time::sleep(grace) => tracing::warn!(
            in_flight = ?in_flight.ids(),
            grace_s = grace.as_secs_f64(),
            "grace period elapsed with invocations still in flight; exiting"
        ),
    }
    Ok(())
}

fn stopped(result: Result<(), BoxError>) -> anyhow::Result<()> {
    result.map_err(|e| anyhow::anyhow!("lambda runtime stopped: {e}"))
}

/// Registers a no-op internal extension (subscribed to no events) and keeps its `next` call
/// open: Lambda sends SIGTERM on shutdown only to processes with a registered extension, and
/// ends the init phase only once every extension waits on `next`.
async fn register_shutdown_extension(api: &str) -> anyhow::Result<()> {
    let base: Uri = format!("http://{api}").parse().context("AWS_LAMBDA_RUNTIME_API")?;
    let client = lambda_runtime_api_client::Client::builder()
        .with_endpoint(base)
        .build()
        .map_err(|e| anyhow::anyhow!("building the extensions API client: {e}"))?;
    let register = Request::post("/2020-01-01/extension/register")
        .header("Lambda-Extension-Name", SHUTDOWN_EXTENSION_NAME)
        .header(header::CONTENT_TYPE, "application/json")
        .body(lambda_runtime_api_client::body::Body::from(&br#"{"events":[]}"#[..]))?;
    let response = client
        .call(register)
        .await
        .map_err(|e| anyhow::anyhow!("POST /2020-01-01/extension/register: {e}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "POST /2020-01-01/extension/register answered {}",
        response.status()
    );
    let id = response
        .headers()
        .get("Lambda-Extension-Identifier")
        .cloned()
        .context("the register answer has no Lambda-Extension-Identifier")?;
    let next = Request::get("/2020-01-01/extension/event/next")
        .header("Lambda-Extension-Identifier", id)
        .body(lambda_runtime_api_client::body::Body::empty())?;
    let waiting = client.call(next);
    tokio::spawn(async move {
        // Subscribed to nothing, this never answers while the process lives.
        if let Err(e) = waiting.await {
            tracing::debug!(error = %e, "the shutdown extension's next call ended");
        }
        drop(client);
    });
    Ok(())
}

/// The request ids of the invocations in flight, from receipt to the posted answer.
#[derive(Clone, Default)]
struct InFlight(Arc<InFlightInner>);

#[derive(Default)]
struct InFlightInner {
    ids: Mutex<BTreeSet<String>>,
    idle: Notify,
}

impl InFlight {
    fn ids(&self) -> Vec<String> {
        self.0.ids.lock().iter().cloned().collect()
    }

    fn enter(&self, id: String) -> InFlightGuard {
        self.0.ids.lock().insert(id.clone());
        InFlightGuard { in_flight: self.clone(), id }
    }

    async fn idle(&self) {
        loop {
            let notified = self.0.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.0.ids.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }
}

struct InFlightGuard {
    in_flight: InFlight,
    id: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut ids = self.in_flight.0.ids.lock();
        ids.remove(&self.id);
        if ids.is_empty() {
            self.in_flight.0.idle.notify_waiters();
        }
    }
}

/// Tracks every invocation around the runtime's whole service (handler and posted answer).
struct TrackLayer(InFlight);

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Track { inner, in_flight: self.0.clone() }
    }
}

#[derive(Clone)]
struct Track<S> {
    inner: S,
    in_flight: InFlight,
}

impl<S> Service<LambdaInvocation> for Track<S>
where
    S: Service<LambdaInvocation, Response = (), Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let guard = self.in_flight.enter(invocation.context.request_id.clone());
        let future = self.inner.call(invocation);
        Box::pin(async move {
            let result = future.await;
            drop(guard);
            result
        })
    }
}

/// One invocation as an HTTP request to the router: stage stripped, deadline attached, the
/// answer's repeated headers joined and its body collected (the concurrent runtime needs a
/// `Sync` body).
#[derive(Clone)]
struct Invocation {
    router: Router,
    margin: Duration,
}

impl Service<lambda_http::Request> for Invocation {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: lambda_http::Request) -> Self::Future {
        strip_stage(&mut req);
        if let Some(deadline_ms) = req.lambda_context_ref().map(|c| c.deadline) {
            req.extensions_mut().insert(answer_by(deadline_ms, self.margin));
        }
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = match router.call(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (mut parts, body) = response.into_parts();
            join_repeated_headers(&mut parts.headers);
            match body.collect().await {
                Ok(collected) => Ok(Response::from_parts(parts, Full::new(collected.to_bytes()))),
                Err(e) => {
                    // A body that fails while streaming: the answer is the error module's 503.
                    let err = Error::retry(anyhow::anyhow!("reading the response body: {e}"));
                    tracing::error!(error = %format!("{err:#}"), "the response body failed");
                    let (parts, body) = err.into_response().into_parts();
                    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                    Ok(Response::from_parts(parts, Full::new(bytes)))
                }
            }
        })
    }
}

/// When to answer by: the deadline (milliseconds since the epoch) less `margin`.
fn answer_by(deadline_ms: u64, margin: Duration) -> AnswerBy {
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
    AnswerBy(tokio::time::Instant::now() + left.saturating_sub(margin))
}

/// Removes the event's named stage from the front of the path (REST and HTTP API events).
fn strip_stage<B>(req: &mut Request<B>) {
    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else { return };
    if let Some(uri) = without_stage(req.uri(), &stage) {
        *req.uri_mut() = uri;
    }
}

/// `uri` without a leading `/{stage}` path segment, or `None` when it has none.
fn without_stage(uri: &Uri, stage: &str) -> Option<Uri> {
    let rest = uri.path().strip_prefix('/')?.strip_prefix(stage)?;
    let path = match rest {
        "" => "/",
        rest if rest.starts_with('/') => rest,
        _ => return None,
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// Joins every header sent more than once (except `Set-Cookie`) into one comma-separated
/// value, as HTTP allows for list-valued fields.
fn join_repeated_headers(headers: &mut HeaderMap) {
    let repeated: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            *name != header::SET_COOKIE && headers.get_all(*name).iter().nth(1).is_some()
        })
        .cloned()
        .collect();
    for name in repeated {
        let values: Vec<&[u8]> = headers.get_all(&name).iter().map(HeaderValue::as_bytes).collect();
        if let Ok(joined) = HeaderValue::from_bytes(&values.join(&b", "[..])) {
            headers.insert(name, joined);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_segment_is_stripped_once_and_only_as_a_whole_segment() {
        let cases = [
            ("https://h/prod/healthz?x=1", "https://h/healthz?x=1"),
            ("https://h/prod", "https://h/"),
            ("https://h/prod/", "https://h/"),
            ("https://h/prod/prod/a", "https://h/prod/a"),
        ];
        for (from, to) in cases {
            assert_eq!(without_stage(&from.parse().unwrap(), "prod").unwrap().to_string(), to);
        }
        for untouched in ["https://h/production/a", "https://h/healthz", "https://h/a/prod"] {
            assert_eq!(without_stage(&untouched.parse().unwrap(), "prod"), None, "{untouched}");
        }
    }

    #[test]
    fn repeated_headers_are_joined_but_cookies_are_not() {
        let mut headers = HeaderMap::new();
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        join_repeated_headers(&mut headers);
        let vary: Vec<_> = headers.get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["accept-encoding, origin"]);
        assert_eq!(headers.get_all(header::SET_COOKIE).iter().count(), 2);
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain");
    }

    #[test]
    fn the_answer_is_due_a_margin_before_the_deadline() {
        let now_ms =
            u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis())
                .unwrap();
        let AnswerBy(at) = answer_by(now_ms + 10_000, Duration::from_secs(2));
        let left = at.saturating_duration_since(tokio::time::Instant::now());
        assert!(left <= Duration::from_secs(8) && left > Duration::from_secs(6), "{left:?}");
        // A deadline already past, or closer than the margin, leaves no time at all.
        let AnswerBy(at) = answer_by(now_ms.saturating_sub(1000), Duration::from_secs(2));
        assert!(at <= tokio::time::Instant::now());
    }
}
