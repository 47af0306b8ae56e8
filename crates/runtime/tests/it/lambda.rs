//! The proof: one Router (the `runtime-hello` binary) served through `runtime` both ways, over
//! real HTTP (Cloud Run mode) and through a fake AWS Lambda Runtime API (`/2018-06-01/runtime/invocation/next`, `.../response`, `.../error`),
//! answers the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

use crate::helpers::{free_port, hello_command, raw_client, start_hello};

/// What the fake runtime captured for one invocation.
#[derive(Debug)]
enum Outcome {
    Response(String, Value),
    Error(String, Value),
}

#[derive(Clone)]
struct FakeRuntime {
    events: Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

async fn next(State(rt): State<FakeRuntime>) -> impl IntoResponse {
    // Long poll, as the real API does: wait for the test to queue an event.
    let Some((id, event)) = rt.events.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 30_000;
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:hello"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, event.to_string())
}

async fn response(
    State(rt): State<FakeRuntime>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = rt.outcomes.send(Outcome::Response(id, value));
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<FakeRuntime>, Path(id): Path<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = rt.outcomes.send(Outcome::Error(id, value));
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<FakeRuntime>, body: String) -> StatusCode {
    let _ = rt.outcomes.send(Outcome::Error("init".to_owned(), Value::String(body)));
    StatusCode::ACCEPTED
}

/// Starts the fake Runtime API; returns its `host:port`, the event queue and the outcomes.
async fn fake_runtime()
-> (String, mpsc::UnboundedSender<(String, Value)>, mpsc::UnboundedReceiver<Outcome>) {
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (outcome_tx, outcome_rx) = mpsc::unbounded_channel();
    let state = FakeRuntime { events: Arc::new(Mutex::new(event_rx)), outcomes: outcome_tx };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr.to_string(), event_tx, outcome_rx)
}

/// One request, described once and sent both ways.
struct Case {
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Option<String>,
}

/// An API Gateway HTTP API (payload v2.0) event for `case`.
fn apigw_v2_event(case: &Case, request_id: &str) -> Value {
    let mut headers = serde_json::Map::new();
    headers.insert("host".to_owned(), json!("abc123.execute-api.us-east-1.amazonaws.com"));
    headers.insert("user-agent".to_owned(), json!("proof-test"));
    for (k, v) in case.headers {
        headers.insert((*k).to_owned(), json!(v));
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": case.path,
        "rawQueryString": case.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": case.method,
                "path": case.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "proof-test"
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1_583_348_638_390_u64
        },
        "body": case.body,
        "isBase64Encoded": false
    })
}

/// What both sides must agree on.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    body: String,
    headers: BTreeMap<String, String>,
}

const COMPARED_HEADERS: [&str; 4] = ["content-type", "retry-after", "x-hello", "content-encoding"];

async fn over_http(client: &reqwest::Client, base: &str, case: &Case) -> Answer {
    let url = if case.query.is_empty() {
        format!("{base}{}", case.path)
    } else {
        format!("{base}{}?{}", case.path, case.query)
    };
    let mut request = client.request(case.method.parse().unwrap(), url);
    for (k, v) in case.headers {
        request = request.header(*k, *v);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"), "request id over HTTP");
    let headers = COMPARED_HEADERS
        .iter()
        .filter_map(|h| {
            response.headers().get(*h).map(|v| ((*h).to_owned(), v.to_str().unwrap().to_owned()))
        })
        .collect();
    let status = response.status().as_u16();
    Answer { status, body: decode(&headers, &response.bytes().await.unwrap()), headers }
}

fn from_lambda(response: &Value) -> Answer {
    let raw = response["body"].as_str().unwrap_or_default();
    let bytes = if response["isBase64Encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD.decode(raw).unwrap()
    } else {
        raw.as_bytes().to_vec()
    };
    let headers_json = response["headers"].as_object().cloned().unwrap_or_default();
    assert!(headers_json.contains_key("x-request-id"), "request id through Lambda: {response}");
    let headers = COMPARED_HEADERS
        .iter()
        .filter_map(|h| {
            headers_json.get(*h).and_then(Value::as_str).map(|v| ((*h).to_owned(), v.to_owned()))
        })
        .collect();
    let status = u16::try_from(response["statusCode"].as_u64().unwrap()).unwrap();
    Answer { status, body: decode(&headers, &bytes), headers }
}

/// The body as text, gunzipped when the answer was compressed.
fn decode(headers: &BTreeMap<String, String>, bytes: &[u8]) -> String {
    if headers.get("content-encoding").is_some_and(|e| e == "gzip") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes), &mut text).unwrap();
        text
    } else {
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

fn cases() -> Vec<Case> {
    let json_ct: &'static [(&'static str, &'static str)] = &[("content-type", "application/json")];
    vec![
        Case { method: "GET", path: "/healthz", query: "", headers: &[], body: None },
        Case { method: "GET", path: "/hello", query: "name=lambda&x=1", headers: &[], body: None },
        Case {
            method: "POST",
            path: "/echo",
            query: "",
            headers: json_ct,
            body: Some(r#"{"a":[1,2,{"b":"ü"}]}"#.to_owned()),
        },
        Case {
            method: "POST",
            path: "/echo",
            query: "",
            headers: json_ct,
            body: Some("{not json".to_owned()),
        },
        Case { method: "GET", path: "/fail/reject", query: "", headers: &[], body: None },
        Case { method: "GET", path: "/fail/retry", query: "", headers: &[], body: None },
        Case { method: "GET", path: "/fail/rate-limited", query: "", headers: &[], body: None },
        Case {
            method: "POST",
            path: "/fail/permanent",
            query: "",
            headers: json_ct,
            body: Some("{}".to_owned()),
        },
        Case {
            method: "POST",
            path: "/callable/greet",
            query: "",
            headers: json_ct,
            body: Some(r#"{"data":{"name":"ann"}}"#.to_owned()),
        },
        Case {
            method: "POST",
            path: "/callable/greet",
            query: "",
            headers: json_ct,
            body: Some(r#"{"data":{"name":""}}"#.to_owned()),
        },
        Case {
            method: "POST",
            path: "/pubsub/push",
            query: "",
            headers: json_ct,
            body: Some("x".repeat(100_000)),
        },
        Case { method: "GET", path: "/big", query: "", headers: &[], body: None },
        Case {
            method: "GET",
            path: "/big",
            query: "",
            headers: &[("accept-encoding", "gzip")],
            body: None,
        },
        Case { method: "GET", path: "/nope", query: "", headers: &[], body: None },
        Case { method: "DELETE", path: "/hello", query: "", headers: &[], body: None },
    ]
}

#[tokio::test]
async fn one_router_answers_the_same_over_http_and_through_lambda() {
    // Cloud Run mode.
    let (_http_child, addr) = start_hello(&[]).await.unwrap();
    let client = raw_client();
    let base = format!("http://{addr}");

    // Lambda mode: the same binary, pointed at the fake Runtime API. The Lambda runtime reads
    // its config from the environment, so it runs in a child process.
    let (api, events, mut outcomes) = fake_runtime().await;
    let unused_port = free_port().to_string();
    let mut lambda_child = hello_command(&[
        ("AWS_LAMBDA_RUNTIME_API", api.as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", "hello"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "stream"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "group"),
        ("PORT", unused_port.as_str()),
    ])
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();

    let mut compared = 0;
    for (i, case) in cases().iter().enumerate() {
        let http_answer = over_http(&client, &base, case).await;

        let request_id = format!("req-{i}");
        events.send((request_id.clone(), apigw_v2_event(case, &request_id))).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), outcomes.recv())
            .await
            .unwrap_or_else(|_| panic!("no Lambda answer for {} {}", case.method, case.path))
            .unwrap();
        let lambda_answer = match outcome {
            Outcome::Response(id, value) => {
                assert_eq!(id, request_id);
                from_lambda(&value)
            }
            Outcome::Error(id, value) => panic!("Lambda reported an error for {id}: {value}"),
        };
        assert_eq!(http_answer, lambda_answer, "{} {}?{}", case.method, case.path, case.query);
        compared += 1;
    }
    assert_eq!(compared, cases().len());

    // The Lambda side never bound the HTTP port: it only served the Runtime API.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", unused_port.parse::<u16>().unwrap()))
            .await
            .is_err()
    );
    lambda_child.kill().await.unwrap();
}

#[tokio::test]
async fn the_answers_are_the_ones_we_expect() {
    // The comparison above is only worth something if the answers are right; spot-check them.
    let (_child, addr) = start_hello(&[]).await.unwrap();
    let client = raw_client();
    let base = format!("http://{addr}");
    let cases = cases();
    let hello = over_http(&client, &base, &cases[1]).await;
    assert_eq!(hello.status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&hello.body).unwrap(),
        json!({"message": "hello, lambda"})
    );
    assert_eq!(hello.headers.get("x-hello").map(String::as_str), Some("1"));
    let retry = over_http(&client, &base, &cases[5]).await;
    assert_eq!(retry.status, 503);
    assert!(!retry.body.contains("10.0.0.7"));
    let rate = over_http(&client, &base, &cases[6]).await;
    assert_eq!(
        (rate.status, rate.headers.get("retry-after").map(String::as_str)),
        (429, Some("7"))
    );
    let permanent = over_http(&client, &base, &cases[7]).await;
    assert_eq!(permanent.status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&permanent.body).unwrap(),
        json!({"acknowledged": true, "deadLetterId": "runtime-hello-evt-1"})
    );
    let callable_err = over_http(&client, &base, &cases[9]).await;
    assert_eq!(callable_err.status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&callable_err.body).unwrap(),
        json!({"error": {"status": "INVALID_ARGUMENT", "message": "name must not be empty"}})
    );
    let gzipped = over_http(&client, &base, &cases[12]).await;
    assert_eq!(gzipped.headers.get("content-encoding").map(String::as_str), Some("gzip"));
    assert_eq!(gzipped.body, "hearth ".repeat(1024));
    assert_eq!(over_http(&client, &base, &cases[13]).await.status, 404);
    assert_eq!(over_http(&client, &base, &cases[14]).await.status, 405);
}
