//! The one error mapping: retry, rate limit, permanent (with and without a working sink),
//! reject in both styles; internal details never reach a body.

use std::sync::Arc;

use runtime::MemoryDeadLetters;
use runtime::error::{INTERNAL_MESSAGE, RETRY_MESSAGE};
use serde_json::json;

use crate::helpers::{SECRET_DETAIL, config, json_body, spawn, spawn_with_sink};

#[tokio::test]
async fn retry_answers_503_with_a_generic_problem() {
    let (app, _, _) = spawn(&config(&[])).await;
    for path in ["/retry", "/anyhow"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert!(r.headers().get("retry-after").is_none());
        let text = r.text().await.unwrap();
        assert!(!text.contains(SECRET_DETAIL) && !text.contains("loading tenant"), "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            body,
            json!({"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": RETRY_MESSAGE, "code": "UNAVAILABLE"})
        );
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let (app, _, _) = spawn(&config(&[])).await;
    let r = app.client.get(app.url("/rate-limited")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3", "2.5 s rounds up");
    let text = r.text().await.unwrap();
    assert!(!text.contains(SECRET_DETAIL), "{text}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["code"],
        "RESOURCE_EXHAUSTED"
    );
}

#[tokio::test]
async fn permanent_failures_are_dead_lettered_and_acknowledged() {
    let (app, sink, _) = spawn(&config(&[])).await;
    let event = json!({"id": "msg-42", "payload": "x"});
    for _ in 0..2 {
        let r = app.client.post(app.url("/permanent")).json(&event).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(!text.contains(SECRET_DETAIL), "{text}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            json!({"acknowledged": true, "deadLetterId": "svc-msg-42"})
        );
    }
    let records = sink.records();
    assert_eq!(records.len(), 1, "a redelivery overwrites the same dead letter: {records:?}");
    let dl = &records[0];
    assert_eq!(dl.id, "svc-msg-42");
    assert_eq!(dl.event_id.as_deref(), Some("msg-42"));
    assert_eq!(dl.source, "svc POST /permanent");
    assert_eq!(dl.reason, "schema version is not supported");
    assert!(
        dl.detail.contains("decoding event") && dl.detail.contains(SECRET_DETAIL),
        "{}",
        dl.detail
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&dl.recorded_at).is_ok(), "{}", dl.recorded_at);

    // Without an event id every failure gets its own record.
    app.client.post(app.url("/permanent")).body("not json").send().await.unwrap();
    app.client.post(app.url("/permanent")).body("not json").send().await.unwrap();
    assert_eq!(sink.records().len(), 3);
}

#[tokio::test]
async fn permanent_with_a_failing_sink_answers_503_so_nothing_is_lost() {
    let sink = MemoryDeadLetters::failing();
    let app = spawn_with_sink(&config(&[]), Arc::new(sink.clone())).await;
    let r = app.client.post(app.url("/permanent")).json(&json!({"id": "m1"})).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(!text.contains(SECRET_DETAIL) && !text.contains("memory dead-letter sink"), "{text}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["detail"], RETRY_MESSAGE);
    assert!(sink.records().is_empty());

    // Once the sink recovers, the redelivery is recorded and acknowledged.
    sink.set_failing(false);
    let r = app.client.post(app.url("/permanent")).json(&json!({"id": "m1"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sink.records().len(), 1);
}

#[tokio::test]
async fn reject_answers_problem_json_with_the_public_message() {
    let (app, _, _) = spawn(&config(&[])).await;
    let r = app.client.get(app.url("/reject")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        json_body(r).await,
        json!({
            "type": "about:blank",
            "title": "Bad Request",
            "status": 400,
            "detail": "name must not be empty",
            "code": "INVALID_ARGUMENT",
            "details": {"field": "name"},
        })
    );
}

#[tokio::test]
async fn callable_routes_answer_in_the_callable_error_shape() {
    let (app, sink, _) = spawn(&config(&[])).await;
    let call =
        |path: &str| app.client.post(app.url(path)).json(&json!({"data": {"id": "c-1"}})).send();

    let r = call("/callable/reject").await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body = json_body(r).await;
    assert_eq!(
        body,
        json!({"error": {"status": "PERMISSION_DENIED", "message": "not a member of this tenant"}})
    );
    let parsed: gcp::callable::ErrorBody = serde_json::from_value(body).unwrap();
    assert_eq!(parsed.error.status, gcp::callable::Code::PermissionDenied);

    let r = call("/callable/retry").await.unwrap();
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(!text.contains(SECRET_DETAIL), "{text}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        json!({"error": {"status": "UNAVAILABLE", "message": RETRY_MESSAGE}})
    );

    // A permanent failure is still recorded; the waiting client is told the call failed.
    let r = call("/callable/permanent").await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(
        json_body(r).await,
        json!({"error": {"status": "INTERNAL", "message": INTERNAL_MESSAGE}})
    );
    assert_eq!(sink.records().len(), 1);
    assert_eq!(sink.records()[0].source, "svc POST /callable/permanent");

    // Body limits on a callable route answer in the callable shape as well.
    let r =
        app.client.post(app.url("/callable/upload")).body(vec![b'a'; 2048]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let body = json_body(r).await;
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(body["error"]["message"].as_str().unwrap().contains("1024 bytes"), "{body}");

    let r = call("/callable/ok").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json_body(r).await, json!({"result": 1}));
}
