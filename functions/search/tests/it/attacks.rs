//! Hostile callers of `searchProducts` and `suggest`: missing, forged, tampered, expired and
//! unsigned ID tokens; malformed, mistyped, unknown-field and oversized bodies; out-of-range
//! values and forged cursors (each refused with `INVALID_ARGUMENT` naming the problem);
//! floods (429 `RESOURCE_EXHAUSTED` with the wait); duplicated queries (the same answer);
//! other vendors' drafts and archived products (never found, whatever the query or filter).
//!
//! Out-of-order change events are covered where they are decided: `sync.rs`'s unit tests (a
//! late older version neither resurrects nor rolls back) and `domain::search`.

use serde_json::{Value, json};
use testkit::{keys, tokens};

use crate::{Harness, ids, product, ready};

const CALLABLES: [&str; 2] = ["searchProducts", "suggest"];

async fn post_raw(
    h: &Harness,
    name: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = h
        .app
        .client
        .post(h.app.url(&format!("/{name}")))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn status_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn forged_and_missing_tokens_are_refused() {
    let h = Harness::start(&[]).await;
    let claims = || tokens::firebase_id_claims(&h.project, "mallory");
    let mut expired = claims();
    expired["iat"] = json!(tokens::now() - 7200);
    expired["exp"] = json!(tokens::now() - 3600);
    let bad: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("signed by a key not in the JWKS", Some(tokens::sign(&claims(), keys::other()))),
        ("tampered signature", Some(tokens::tamper_signature(&h.token("mallory")))),
        ("expired", Some(tokens::sign(&expired, keys::primary()))),
        ("unsigned outside Auth emulator mode", Some(tokens::unsigned(&claims()))),
    ];
    for name in CALLABLES {
        for (what, token) in &bad {
            let body = br#"{"data": {"query": "x", "prefix": "x"}}"#.to_vec();
            let (status, body) = status_of(post_raw(&h, name, token.as_deref(), body).await).await;
            assert_eq!(status, 401, "{name}: {what}");
            assert_eq!(body["error"]["status"], "UNAUTHENTICATED", "{name}: {what}");
        }
    }
}

#[tokio::test]
async fn malformed_out_of_range_and_oversized_inputs_are_refused_with_the_reason() {
    let h = Harness::start(&[]).await;
    let token = h.token("mallory");
    let cases: [(&str, &str, &str); 14] = [
        ("searchProducts", "not json", ""),
        ("searchProducts", r#"{"query": "x"}"#, "\"data\" field"),
        ("searchProducts", r#"{"data": {"query": 5}}"#, ""),
        ("searchProducts", r#"{"data": {"query": "x", "admin": true}}"#, "invalid request data"),
        ("searchProducts", r#"{"data": {"limit": 1000}}"#, "limit must be 1 to 50"),
        ("searchProducts", r#"{"data": {"minPrice": -5}}"#, "minPrice must be zero or more"),
        (
            "searchProducts",
            r#"{"data": {"minPrice": 10, "maxPrice": 1}}"#,
            "minPrice must not be above maxPrice",
        ),
        ("searchProducts", r#"{"data": {"sort": "random"}}"#, ""),
        ("searchProducts", r#"{"data": {"vendorId": "../users/x"}}"#, "vendorId must be"),
        ("searchProducts", r#"{"data": {"cursor": "r.x.p1"}}"#, "cursor is not one this query"),
        ("searchProducts", r#"{"data": {"sort": "price_asc", "cursor": "r.5.p1"}}"#, "cursor"),
        ("suggest", r#"{"data": {"prefix": "  "}}"#, "prefix must be"),
        ("suggest", r#"{"data": {"prefix": "ab", "limit": 99}}"#, "limit must be 1 to 10"),
        ("suggest", r#"{"data": {}}"#, ""),
    ];
    for (name, body, reason) in cases {
        let (status, answer) =
            status_of(post_raw(&h, name, Some(&token), body.as_bytes().to_vec()).await).await;
        assert_eq!(status, 400, "{name} {body}: {answer}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT", "{name} {body}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{name} {body}: {message}");
    }
    let long = json!({"data": {"query": "x".repeat(201)}}).to_string();
    let (status, _) =
        status_of(post_raw(&h, "searchProducts", Some(&token), long.into()).await).await;
    assert_eq!(status, 400, "query text over 200 characters");
    for name in CALLABLES {
        let huge = format!(r#"{{"data": {{"query": "{}"}}}}"#, "x".repeat(1_100_000));
        let response = post_raw(&h, name, Some(&token), huge.into_bytes()).await;
        assert_eq!(response.status(), 413, "{name}: oversized");
    }
}

#[tokio::test]
async fn floods_are_limited_per_user_and_duplicates_get_the_same_answer() {
    let h =
        Harness::start(&[("HEARTH_SEARCH_RATE_LIMIT", "5/60"), ("HEARTH_SUGGEST_PER_SEC", "1")])
            .await;
    h.put("p1", &product("Wool socks", "apparel", "v1", 800)).await;
    h.eventually(&h.app, json!({"query": "socks"}), |r| r["total"] == 1).await;
    // (`eventually` calls as buyer-1: mallory's budget is untouched.)
    // Mallory's six calls must share one minute window.
    testkit::early_in_window(60, 20).await;
    let call = |name: &'static str, data: Value| {
        let token = h.token("mallory");
        let app = h.app.clone();
        async move {
            app.client
                .post(app.url(&format!("/{name}")))
                .bearer_auth(token)
                .json(&json!({ "data": data }))
                .send()
                .await
                .unwrap()
        }
    };
    let mut answers = Vec::new();
    for _ in 0..5 {
        let (status, body) =
            status_of(call("searchProducts", json!({"query": "sokcs"})).await).await;
        assert_eq!(status, 200, "{body}");
        answers.push(body);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "a duplicated query, the same answer");
    assert_eq!(ids(&answers[0]["result"]), ["p1"]);
    let (status, body) = status_of(call("searchProducts", json!({"query": "socks"})).await).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(body["error"]["details"]["retryAfterSeconds"].as_u64().unwrap() >= 1);
    // Another user is not limited by mallory's flood.
    assert_eq!(h.call_on(&h.app, "searchProducts", json!({"query": "socks"})).await.status(), 200);

    // suggest: 1 per second with bursts of 3.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(call("suggest", json!({"prefix": "wo"})).await.status().as_u16());
    }
    assert_eq!(&statuses[..3], [200, 200, 200]);
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn other_vendors_drafts_and_archived_products_are_never_found() {
    let h = Harness::start(&[]).await;
    ready(&h, &h.app).await;
    let mut draft = product("Prototype sneakers", "footwear", "v2", 100);
    draft.status = domain::catalogue::ProductStatus::Draft;
    h.put("draft", &draft).await;
    let mut archived = product("Retired sneakers", "footwear", "v2", 100);
    archived.status = domain::catalogue::ProductStatus::Archived;
    h.put("archived", &archived).await;
    h.put("live", &product("Live sneakers", "footwear", "v2", 100)).await;
    h.eventually(&h.app, json!({"vendorId": "v2"}), |r| r["total"] == 1).await;
    for query in [
        json!({"query": "prototype"}),
        json!({"query": "retired"}),
        json!({"query": "sneakers", "vendorId": "v2"}),
        json!({"category": "footwear"}),
    ] {
        let found = h.eventually(&h.app, query.clone(), |_| true).await;
        assert!(ids(&found).iter().all(|id| id == "live"), "{query}: {found}");
        let suggestions = crate::ok_on(&h, &h.app, "suggest", json!({"prefix": "pro"})).await;
        assert_eq!(suggestions["suggestions"], json!([]));
    }
}
