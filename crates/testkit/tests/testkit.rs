//! testkit's own checks: emulators come up and answer, Pub/Sub helpers round-trip, the JWKS
//! server publishes the keys with caching headers, `spawn_app` serves over real HTTP, and
//! `early_in_window` keeps a test clear of a rate-limit window boundary.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::routing::get;

#[tokio::test]
async fn firestore_emulator_answers_and_isolates_projects() {
    let host = testkit::emulators::firestore().await;
    let (a, b) = (testkit::project_id(), testkit::project_id());
    assert_ne!(a, b);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url =
        |p: &str| format!("http://{host}/v1/projects/{p}/databases/(default)/documents/things/one");
    let res = client
        .patch(url(&a))
        .bearer_auth("owner")
        .json(&serde_json::json!({"fields": {"n": {"integerValue": "1"}}}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    assert!(client.get(url(&a)).bearer_auth("owner").send().await.unwrap().status().is_success());
    assert_eq!(client.get(url(&b)).bearer_auth("owner").send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn pubsub_helpers_round_trip_a_message() {
    let host = testkit::emulators::pubsub().await;
    let project = testkit::project_id();
    testkit::pubsub::create_topic(host, &project, "things").await;
    testkit::pubsub::create_topic(host, &project, "things").await; // idempotent
    testkit::pubsub::create_pull_subscription(host, &project, "things-sub", "things").await;
    let attrs = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    let id = testkit::pubsub::publish(host, &project, "things", b"{\"x\":1}", &attrs).await;
    let got =
        testkit::pubsub::pull_at_least(host, &project, "things-sub", 1, Duration::from_secs(10))
            .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, id);
    assert_eq!(got[0].data, b"{\"x\":1}");
    assert_eq!(got[0].attributes, attrs);
}

#[tokio::test]
async fn jwks_server_publishes_keys_with_max_age_and_rotates() {
    let server = testkit::jwks::JwksServer::start(&[testkit::keys::primary()], 120).await;
    let res = reqwest::get(server.url()).await.unwrap();
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=120, must-revalidate, no-transform"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["keys"][0]["kid"], "testkit-primary");
    server.set_keys(&[testkit::keys::other()]);
    let body: serde_json::Value = reqwest::get(server.url()).await.unwrap().json().await.unwrap();
    assert_eq!(body["keys"][0]["kid"], "testkit-other");
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn spawn_app_serves_over_real_http() {
    let app = testkit::spawn_app(Router::new().route("/ping", get(|| async { "pong" }))).await;
    let body = app.client.get(app.url("/ping")).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "pong");
}

#[tokio::test]
async fn auth_emulator_signs_users_up_with_unsigned_id_tokens() {
    use base64::Engine as _;
    let host = testkit::emulators::auth().await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let email = format!("{}@example.com", testkit::project_id());
    let url = format!("http://{host}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=any");
    let res: serde_json::Value = client
        .post(url)
        .json(&serde_json::json!({"email": email, "password": "secret123", "returnSecureToken": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(res["localId"].as_str().is_some_and(|s| !s.is_empty()), "{res}");
    let token = res["idToken"].as_str().unwrap_or_else(|| panic!("{res}"));
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "none", "the Auth emulator issues unsigned ID tokens");
}

/// `early_in_window` leaves at least the asked time in the current aligned window (checked in
/// 3-second windows, needing 2: about two calls in three must wait, across a boundary).
#[tokio::test]
async fn early_in_window_leaves_the_time_asked_for() {
    for _ in 0..4 {
        testkit::early_in_window(3, 2).await;
        let into = chrono::Utc::now().timestamp_millis().rem_euclid(3_000);
        assert!(into <= 1_000 + 100, "{into} ms into the window leaves under 2 s");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}
