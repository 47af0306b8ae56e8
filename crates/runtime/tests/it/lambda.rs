//! Parity: one Router (the `runtime-hello` binary, through its real `main`) served both ways,
//! over plain HTTP (Cloud Run mode) and through a fake of the AWS Lambda Runtime API, answers
//! the same: status, every header (repeated ones joined) and body, for API Gateway REST events
//! with a named stage, HTTP API events with a named stage, function URLs and ALB.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::fake_lambda::{FakeLambda, Outcome};
use crate::helpers::{free_port, hello_command, raw_client, start_hello};

const ORIGIN: &str = "https://app.example.com";
const STAGE: &str = "prod";

/// One request, described once and sent every way.
struct Case {
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Option<Vec<u8>>,
}

impl Case {
    fn new(method: &'static str, path: &'static str) -> Self {
        Case { method, path, query: "", headers: &[], body: None }
    }

    fn query(mut self, query: &'static str) -> Self {
        self.query = query;
        self
    }

    fn headers(mut self, headers: &'static [(&'static str, &'static str)]) -> Self {
        self.headers = headers;
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The body as Lambda events carry it: text, or base64 when it is not UTF-8.
    fn event_body(&self) -> (Value, bool) {
        match &self.body {
            None => (Value::Null, false),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => (json!(text), false),
                Err(_) => (json!(base64::engine::general_purpose::STANDARD.encode(bytes)), true),
            },
        }
    }

    fn query_map(&self) -> Map<String, Value> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k.to_owned(), json!(v))
            })
            .collect()
    }
}

/// The event sources Hearth supports on Lambda.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// API Gateway REST API (payload 1.0) on the named stage.
    RestApi,
    /// API Gateway HTTP API (payload 2.0) on the named stage.
    HttpApi,
    /// Lambda function URL (payload 2.0, `$default`).
    FunctionUrl,
    /// Application Load Balancer target group (single-value headers).
    Alb,
}

const SOURCES: [Source; 4] = [Source::RestApi, Source::HttpApi, Source::FunctionUrl, Source::Alb];

fn request_headers(case: &Case, host: &str) -> Map<String, Value> {
    let mut headers = Map::new();
    headers.insert("host".to_owned(), json!(host));
    headers.insert("user-agent".to_owned(), json!("parity-test"));
    headers.insert("x-forwarded-proto".to_owned(), json!("https"));
    for (k, v) in case.headers {
        headers.insert((*k).to_owned(), json!(v));
    }
    headers
}

/// The event Lambda delivers for `case` from `source` (shapes as AWS documents them).
fn event(source: Source, case: &Case, request_id: &str) -> Value {
    let (body, is_base64) = case.event_body();
    match source {
        Source::RestApi => {
            let host = "abc123.execute-api.us-east-1.amazonaws.com";
            let headers = request_headers(case, host);
            let multi: Map<String, Value> =
                headers.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
            let query = case.query_map();
            let multi_query: Map<String, Value> =
                query.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
            json!({
                "resource": "/{proxy+}",
                // REST APIs give the resource path without the stage...
                "path": case.path,
                "httpMethod": case.method,
                "headers": headers,
                "multiValueHeaders": multi,
                "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query) },
                "multiValueQueryStringParameters": if multi_query.is_empty() { Value::Null } else { Value::Object(multi_query) },
                "pathParameters": {"proxy": case.path.trim_start_matches('/')},
                "stageVariables": null,
                "requestContext": {
                    "accountId": "123456789012",
                    "resourceId": "us4z18",
                    "stage": STAGE,
                    "requestId": request_id,
                    "identity": {"sourceIp": "203.0.113.7", "userAgent": "parity-test"},
                    "resourcePath": "/{proxy+}",
                    "httpMethod": case.method,
                    "apiId": "abc123",
                    // ...and the stage in the request context's path.
                    "path": format!("/{STAGE}{}", case.path),
                    "protocol": "HTTP/1.1",
                    "domainName": host,
                    "requestTimeEpoch": 1_583_348_638_390_u64
                },
                "body": body,
                "isBase64Encoded": is_base64
            })
        }
        Source::HttpApi | Source::FunctionUrl => {
            let (host, stage, raw_path) = match source {
                // An HTTP API on a named stage has the stage in rawPath.
                Source::HttpApi => (
                    "abc123.execute-api.us-east-1.amazonaws.com",
                    STAGE,
                    format!("/{STAGE}{}", case.path),
                ),
                _ => ("xyz789.lambda-url.us-east-1.on.aws", "$default", case.path.to_owned()),
            };
            json!({
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": raw_path,
                "rawQueryString": case.query,
                "headers": request_headers(case, host),
                "requestContext": {
                    "accountId": "123456789012",
                    "apiId": host.split('.').next().unwrap(),
                    "domainName": host,
                    "domainPrefix": host.split('.').next().unwrap(),
                    "http": {
                        "method": case.method,
                        "path": raw_path,
                        "protocol": "HTTP/1.1",
                        "sourceIp": "203.0.113.7",
                        "userAgent": "parity-test"
                    },
                    "requestId": request_id,
                    "routeKey": "$default",
                    "stage": stage,
                    "time": "12/Mar/2020:19:03:58 +0000",
                    "timeEpoch": 1_583_348_638_390_u64
                },
                "body": body,
                "isBase64Encoded": is_base64
            })
        }
        Source::Alb => json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/hello/6d0ecf831eec9f09"}},
            "httpMethod": case.method,
            "path": case.path,
            "queryStringParameters": case.query_map(),
            "headers": request_headers(case, "hello-123.us-east-1.elb.amazonaws.com"),
            "body": if body.is_null() { json!("") } else { body },
            "isBase64Encoded": is_base64
        }),
    }
}

/// What every path must agree on.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    /// Every header but those set by the HTTP server or unique per request, repeated ones
    /// joined with `, ` in order.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// Set by the HTTP server (hyper) rather than the router, or different on every request.
const NOT_COMPARED: [&str; 4] = ["date", "content-length", "x-request-id", "transfer-encoding"];

fn compared(headers: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if NOT_COMPARED.contains(&name.as_str()) {
            continue;
        }
        out.entry(name).and_modify(|v| *v = format!("{v}, {value}")).or_insert(value);
    }
    out
}

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
    let headers = compared(
        response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())),
    );
    let status = response.status().as_u16();
    Answer { status, headers, body: response.bytes().await.unwrap().to_vec() }
}

/// The answer in the response format of `source`.
fn from_lambda(source: Source, response: &Value) -> Answer {
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    let pairs: Vec<(String, String)> = match source {
        // REST APIs: everything in multiValueHeaders (lambda_http leaves `headers` empty).
        Source::RestApi => {
            assert_eq!(response["headers"], json!({}), "{response}");
            response["multiValueHeaders"]
                .as_object()
                .unwrap()
                .iter()
                .flat_map(|(k, vs)| vs.as_array().unwrap().iter().map(|v| (k.clone(), text(v))))
                .collect()
        }
        // HTTP APIs, function URLs and single-value ALB: one value per name in `headers`.
        Source::HttpApi | Source::FunctionUrl | Source::Alb => response["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect(),
    };
    assert!(
        pairs.iter().any(|(k, _)| k == "x-request-id"),
        "request id through Lambda ({source:?}): {response}"
    );
    let raw = response["body"].as_str().unwrap_or_default();
    let body = if response["isBase64Encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD.decode(raw).unwrap()
    } else {
        raw.as_bytes().to_vec()
    };
    let status = u16::try_from(response["statusCode"].as_u64().unwrap()).unwrap();
    Answer { status, headers: compared(pairs), body }
}

fn cases() -> Vec<Case> {
    const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
    const GZIP_FROM_ORIGIN: &[(&str, &str)] = &[("accept-encoding", "gzip"), ("origin", ORIGIN)];
    const PREFLIGHT: &[(&str, &str)] = &[
        ("origin", ORIGIN),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    const BINARY: &[(&str, &str)] = &[("content-type", "application/octet-stream")];
    vec![
        Case::new("GET", "/healthz"),
        Case::new("GET", "/hello").query("name=lambda&x=1"),
        Case::new("POST", "/echo").headers(JSON).body(r#"{"a":[1,2,{"b":"ü"}]}"#),
        Case::new("POST", "/echo").headers(JSON).body("{not json"),
        Case::new("GET", "/fail/reject"),
        Case::new("GET", "/fail/retry"),
        Case::new("GET", "/fail/rate-limited"),
        Case::new("POST", "/fail/permanent").headers(JSON).body("{}"),
        Case::new("POST", "/callable/greet").headers(JSON).body(r#"{"data":{"name":"ann"}}"#),
        Case::new("POST", "/callable/greet").headers(JSON).body(r#"{"data":{"name":""}}"#),
        Case::new("POST", "/pubsub/push").headers(JSON).body("x".repeat(100_000)),
        Case::new("GET", "/big"),
        // gzip (flagged base64 through Lambda) with CORS: two `Vary` headers on Cloud Run.
        Case::new("GET", "/big").headers(GZIP_FROM_ORIGIN),
        Case::new("OPTIONS", "/echo").headers(PREFLIGHT),
        Case::new("POST", "/bytes").headers(BINARY).body(vec![0xff, 0x00, 0xfe, 0x80, 0x7f]),
        Case::new("GET", "/nope"),
        Case::new("DELETE", "/hello"),
    ]
}

const CORS: (&str, &str) = ("HEARTH_CORS_ORIGINS", ORIGIN);

#[tokio::test]
async fn one_router_answers_the_same_over_http_and_through_every_lambda_event_type() {
    // Cloud Run mode.
    let (_http_child, addr) = start_hello(&[CORS]).await.unwrap();
    let client = raw_client();
    let base = format!("http://{addr}");

    // Lambda mode: the same binary and `main`, pointed at the fake Runtime API.
    let mut fake = FakeLambda::start().await;
    let unused_port = free_port().to_string();
    let mut env = fake.env();
    env.push(("PORT", unused_port.clone()));
    env.push((CORS.0, CORS.1.to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut lambda_child = hello_command(&env).stderr(std::process::Stdio::null()).spawn().unwrap();

    let mut compared = 0;
    for (i, case) in cases().iter().enumerate() {
        let http_answer = over_http(&client, &base, case).await;
        for source in SOURCES {
            let request_id = format!("req-{i}-{source:?}");
            fake.invoke(&request_id, event(source, case, &request_id));
            let lambda_answer = from_lambda(source, &fake.response(&request_id).await);
            assert_eq!(
                http_answer, lambda_answer,
                "{source:?}: {} {}?{}",
                case.method, case.path, case.query
            );
            compared += 1;
        }
    }
    assert_eq!(compared, cases().len() * SOURCES.len());

    // A non-HTTP event is reported as an invocation error, and the next one still works.
    fake.invoke("not-http", json!({"Records": [{"eventSource": "aws:sqs", "body": "x"}]}));
    match fake.outcome(Duration::from_secs(20)).await {
        Outcome::Error { id, body } => {
            assert_eq!(id, "not-http");
            assert!(body["errorType"].is_string() && body["errorMessage"].is_string(), "{body}");
        }
        other => panic!("expected an invocation error, got {other:?}"),
    }
    let healthz = Case::new("GET", "/healthz");
    fake.invoke("after", event(Source::FunctionUrl, &healthz, "after"));
    assert_eq!(from_lambda(Source::FunctionUrl, &fake.response("after").await).body, b"ok");

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
    let (_child, addr) = start_hello(&[CORS]).await.unwrap();
    let client = raw_client();
    let base = format!("http://{addr}");
    let cases = cases();
    let body = |a: &Answer| serde_json::from_slice::<Value>(&a.body).unwrap();
    let hello = over_http(&client, &base, &cases[1]).await;
    assert_eq!(hello.status, 200);
    assert_eq!(body(&hello), json!({"message": "hello, lambda"}));
    assert_eq!(hello.headers.get("x-hello").map(String::as_str), Some("1"));
    let retry = over_http(&client, &base, &cases[5]).await;
    assert_eq!(retry.status, 503);
    assert!(!String::from_utf8_lossy(&retry.body).contains("10.0.0.7"));
    let rate = over_http(&client, &base, &cases[6]).await;
    assert_eq!(
        (rate.status, rate.headers.get("retry-after").map(String::as_str)),
        (429, Some("7"))
    );
    let permanent = over_http(&client, &base, &cases[7]).await;
    assert_eq!(permanent.status, 200);
    assert_eq!(
        body(&permanent),
        json!({"acknowledged": true, "deadLetterId": "runtime-hello-evt-1"})
    );
    let callable_err = over_http(&client, &base, &cases[9]).await;
    assert_eq!(callable_err.status, 400);
    assert_eq!(
        body(&callable_err),
        json!({"error": {"status": "INVALID_ARGUMENT", "message": "name must not be empty"}})
    );
    // gzip with CORS: the answer carries two Vary headers (joined here), the case that the
    // single-value Lambda formats used to cut to the first.
    let gzipped = over_http(&client, &base, &cases[12]).await;
    assert_eq!(gzipped.headers.get("content-encoding").map(String::as_str), Some("gzip"));
    let vary = &gzipped.headers["vary"];
    assert!(vary.contains("accept-encoding") && vary.contains("origin"), "{vary}");
    assert_eq!(
        gzipped.headers.get("access-control-allow-origin").map(String::as_str),
        Some(ORIGIN)
    );
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(gzipped.body.as_slice()),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, "hearth ".repeat(1024));
    let preflight = over_http(&client, &base, &cases[13]).await;
    assert_eq!(preflight.status, 200);
    assert_eq!(
        preflight.headers.get("access-control-allow-origin").map(String::as_str),
        Some(ORIGIN)
    );
    let bytes = over_http(&client, &base, &cases[14]).await;
    assert_eq!(bytes.body, [0x7f, 0x80, 0xfe, 0x00, 0xff]);
    assert_eq!(over_http(&client, &base, &cases[15]).await.status, 404);
    assert_eq!(over_http(&client, &base, &cases[16]).await.status, 405);
}
