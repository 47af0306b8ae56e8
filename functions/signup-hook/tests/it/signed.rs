//! The signed-token path in production mode (auth emulator off): a valid token gets claims in
//! the exact response shape, a token of the other event type is a bad request, and unreachable
//! keys answer 503. Forged, expired, misdirected and unsigned tokens: `attacks.rs`.

use domain::tenancy::personal_tenant_id;
use reqwest::StatusCode;
use serde_json::{Value, json};
use signup_hook::{BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH};

use crate::helpers::{Setup, claims_of, error_of, start};

#[tokio::test]
async fn a_signed_sign_up_gets_tenant_and_role_claims_in_the_exact_shape() {
    let hook = start(Setup::default()).await;
    let claims = hook.create_claims("uid-ada", "ada@example.com", false);
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &claims).await;
    assert_eq!(
        body,
        json!({"userRecord": {
            "customClaims": {"tenant_id": personal_tenant_id("uid-ada"), "role": "owner"},
            "updateMask": "customClaims"
        }})
    );
    assert_eq!(status, StatusCode::OK);

    // The identity provider retrying the same event gets the same answer.
    let (status, again) = hook.call_signed(BEFORE_CREATE_PATH, &claims).await;
    assert_eq!(claims_of(status, &again), body["userRecord"]["customClaims"]);

    // The keys were fetched once and then served from the cache.
    assert_eq!(hook.jwks.fetch_count(), 1);
}

#[tokio::test]
async fn a_token_of_the_wrong_event_type_is_a_bad_request() {
    let hook = start(Setup::default()).await;
    let mut claims = hook.create_claims("uid-1", "a@example.com", false);
    claims["event_type"] = json!("beforeSignIn");
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &claims).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body).0, "INVALID_ARGUMENT");

    let mut claims = hook.sign_in_claims("uid-1", Value::Null);
    claims["event_type"] = json!("beforeCreate");
    let (status, body) = hook.call_signed(BEFORE_SIGN_IN_PATH, &claims).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn unreachable_signing_keys_answer_503_so_the_provider_reports_a_retryable_error() {
    let hook = start(Setup::default().var(
        "HEARTH_SECURETOKEN_JWKS_URL",
        format!("http://{}/jwks", crate::helpers::dead_host()),
    ))
    .await;
    let claims = hook.create_claims("uid-1", "a@example.com", false);
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &claims).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_of(&body).0, "UNAVAILABLE");
}
