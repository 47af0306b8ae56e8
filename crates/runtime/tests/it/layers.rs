//! Every layer over real HTTP: health, request id, body limits, timeout, CORS, gzip.

use std::io::Read as _;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use runtime::error::TIMEOUT_MESSAGE;

use crate::helpers::{config, json_body, raw_client, spawn};

#[tokio::test]
async fn healthz_answers_ok_and_request_ids_are_set_or_echoed() {
    let (app, _, _) = spawn(&config(&[])).await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "uuid: {generated}");
    assert_eq!(r.text().await.unwrap(), "ok");

    let r = app.client.get(app.url("/ok")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
}

/// Cloud Run's public URL swallows `/healthz` (a reserved path ending in `z`): `/health` is the
/// alias external checks use, answered by the container like `/healthz`, through every layer.
#[tokio::test]
async fn health_without_a_z_answers_like_healthz() {
    let (app, _, _) = spawn(&config(&[])).await;
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"].to_str().unwrap().len(), 36);
    assert_eq!(r.text().await.unwrap(), "ok");
    let r = app.client.post(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 405, "GET only, like /healthz");
}

#[tokio::test]
async fn default_limit_refuses_two_mib_and_push_routes_take_twelve() {
    let (app, _, _) = spawn(&config(&[])).await;

    let twelve = vec![b'a'; 12 * 1024 * 1024];
    let r = app.client.post(app.url("/pubsub/push")).body(twelve).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), format!("received {} bytes", 12 * 1024 * 1024));

    let r =
        app.client.post(app.url("/upload")).body(vec![b'a'; 2 * 1024 * 1024]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body = json_body(r).await;
    assert_eq!(body["status"], 413);
    assert_eq!(body["title"], "Payload Too Large");
    assert_eq!(body["code"], "RESOURCE_EXHAUSTED");
    assert!(body["detail"].as_str().unwrap().contains("1048576 bytes"), "{body}");

    // Exactly at the limit is fine.
    let r = app.client.post(app.url("/upload")).body(vec![b'a'; 1024 * 1024]).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_chunked_body_without_content_length_is_cut_at_the_limit() {
    let (app, _, _) = spawn(&config(&[("HEARTH_BODY_LIMIT_BYTES", "4096")])).await;
    let chunks: Vec<Result<http_body::Frame<bytes::Bytes>, std::io::Error>> =
        (0..8).map(|_| Ok(http_body::Frame::data(bytes::Bytes::from(vec![b'x'; 1024])))).collect();
    let body = reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::iter(chunks)));
    let r = app.client.post(app.url("/upload")).body(body).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let body = json_body(r).await;
    assert!(body["detail"].as_str().unwrap().contains("4096 bytes"), "{body}");
}

#[tokio::test]
async fn a_route_limit_refuses_a_declared_length_before_reading() {
    let (app, _, _) = spawn(&config(&[])).await;
    let r = app
        .client
        .post(app.url("/pubsub/push"))
        .body(vec![b'a'; 16 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body = json_body(r).await;
    assert!(body["detail"].as_str().unwrap().contains("16777216 bytes"), "{body}");
}

#[tokio::test]
async fn slow_requests_time_out_with_504() {
    let (app, _, _) = spawn(&config(&[("HEARTH_REQUEST_TIMEOUT_SECS", "1")])).await;
    let started = Instant::now();
    let r = app.client.get(app.url("/sleep?ms=5000")).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(r.status(), 504);
    let body = json_body(r).await;
    assert_eq!(body["detail"], TIMEOUT_MESSAGE);
    assert_eq!(body["code"], "DEADLINE_EXCEEDED");

    let r = app.client.get(app.url("/sleep?ms=10")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

const ALLOWED: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example.com";

#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let (app, _, _) = spawn(&config(&[(
        "HEARTH_CORS_ORIGINS",
        "https://app.example.com, http://localhost:5173",
    )]))
    .await;

    let r = app.client.get(app.url("/ok")).header("origin", ALLOWED).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    assert!(r.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().contains("origin")));

    let r = app.client.get(app.url("/ok")).header("origin", EVIL).send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // Preflight of a callable POST with the headers the Firebase SDK sends.
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/callable/ok"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,authorization")
            .send()
    };
    let r = preflight(ALLOWED).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    assert!(r.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert_eq!(r.headers()["access-control-allow-headers"], "content-type,authorization");
    assert_eq!(r.headers()["access-control-max-age"], "3600");

    let r = preflight(EVIL).await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // Error answers carry CORS headers too, so browsers can read them.
    let r = app.client.get(app.url("/reject")).header("origin", ALLOWED).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
}

#[tokio::test]
async fn cors_allows_nothing_by_default() {
    let (app, _, _) = spawn(&config(&[])).await;
    let r = app.client.get(app.url("/ok")).header("origin", ALLOWED).send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/callable/ok"))
        .header("origin", ALLOWED)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn gzip_only_for_large_responses_when_accepted() {
    let (app, _, _) = spawn(&config(&[])).await;
    let client = raw_client();
    let expected = "0123456789abcdef".repeat(256);

    let r = client.get(app.url("/big")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let compressed = r.bytes().await.unwrap();
    assert!(compressed.len() < expected.len() / 4, "{} bytes", compressed.len());
    let mut text = String::new();
    GzDecoder::new(&compressed[..]).read_to_string(&mut text).unwrap();
    assert_eq!(text, expected);

    let r = client.get(app.url("/small")).header("accept-encoding", "gzip").send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.text().await.unwrap(), "tiny");

    let r = client.get(app.url("/big")).send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.text().await.unwrap(), expected);
}
