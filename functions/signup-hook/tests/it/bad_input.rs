//! Malformed requests: every client mistake is a 4xx in the blocking error shape, never a 5xx;
//! a Firestore outage is a 503 in the same shape.

use reqwest::StatusCode;
use serde_json::json;
use signup_hook::{BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH, CONTENT_TYPE_MESSAGE};

use crate::helpers::{Setup, dead_host, error_of, start};

#[tokio::test]
async fn malformed_requests_are_4xx_in_the_blocking_error_shape() {
    let hook = start(Setup::default()).await;
    let token = testkit::tokens::sign(
        &hook.create_claims("uid-1", "a@example.com", false),
        testkit::keys::primary(),
    );
    let envelope = json!({"data": {"jwt": token}}).to_string();
    let over_token_limit = json!({"data": {"jwt": "x".repeat(100 * 1024)}}).to_string();
    let over_body_limit = "x".repeat(runtime::config::DEFAULT_BODY_LIMIT_BYTES + 1);

    let cases: Vec<(&str, &str, String, StatusCode, &str)> = vec![
        (
            "not JSON",
            "application/json",
            "{not json".into(),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "empty body",
            "application/json",
            String::new(),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        ("no data", "application/json", "{}".into(), StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        (
            "no jwt",
            "application/json",
            r#"{"data":{}}"#.into(),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "jwt not a string",
            "application/json",
            r#"{"data":{"jwt":5}}"#.into(),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "JSON array",
            "application/json",
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        ("text/plain", "text/plain", envelope.clone(), StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        (
            "form",
            "application/x-www-form-urlencoded",
            envelope.clone(),
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        ("no content type", "", envelope.clone(), StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        (
            "over the token limit",
            "application/json",
            over_token_limit,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "over the body limit",
            "application/json",
            over_body_limit,
            StatusCode::PAYLOAD_TOO_LARGE,
            "RESOURCE_EXHAUSTED",
        ),
    ];
    for path in [BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH] {
        for (name, content_type, body, expected, code) in &cases {
            let (status, answer) = hook.post_raw(path, content_type, body.clone()).await;
            assert_eq!(status, *expected, "{path} {name}: {answer}");
            let (got, message) = error_of(&answer);
            assert_eq!(got, *code, "{path} {name}");
            assert!(!message.is_empty());
            if name.contains("content type") || *content_type == "text/plain" {
                assert_eq!(message, CONTENT_TYPE_MESSAGE);
            }
        }
    }

    // The charset parameter is fine (the SDK only checks that the type contains JSON).
    let (status, answer) =
        hook.post_raw(BEFORE_CREATE_PATH, "application/json; charset=utf-8", envelope).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // Other methods are refused in the same shape.
    let res = hook.client.get(hook.url(BEFORE_CREATE_PATH)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(error_of(&body).0, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn a_firestore_outage_answers_503_in_the_blocking_shape() {
    let hook = start(Setup { firestore_host: Some(dead_host()), ..Setup::default() }).await;
    let claims = hook.create_claims("uid-1", "a@example.com", false);
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &claims).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (code, message) = error_of(&body);
    assert_eq!(code, "UNAVAILABLE");
    assert_eq!(message, runtime::error::RETRY_MESSAGE, "internal details never leak");

    let claims = hook.sign_in_claims("uid-1", json!({"tenant_id": "t1", "role": "member"}));
    let (status, body) = hook.call_signed(BEFORE_SIGN_IN_PATH, &claims).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_of(&body).0, "UNAVAILABLE");
}
