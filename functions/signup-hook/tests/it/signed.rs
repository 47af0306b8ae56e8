//! The signed-token path in production mode (auth emulator off): a valid token gets claims in
//! the exact response shape; forged, expired, misdirected and unsigned tokens are refused with
//! 401 in the blocking error shape, and nothing is announced for them.

use std::time::Duration;

use domain::tenancy::personal_tenant_id;
use jsonwebtoken::{Algorithm, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signup_hook::{BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH};
use testkit::keys::{other, primary};
use testkit::tokens::{self, now};

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
async fn forged_and_misdirected_tokens_are_refused_with_401() {
    let hook = start(Setup::default()).await;
    let valid = hook.create_claims("uid-eve", "eve@example.com", true);
    let signed = tokens::sign(&valid, primary());

    let mut expired = valid.clone();
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = valid.clone();
    wrong_aud["aud"] = json!("https://someone-else.example/before-create");
    let mut other_endpoint = valid.clone();
    other_endpoint["aud"] = json!(hook.config.audience_for(BEFORE_SIGN_IN_PATH));
    let mut wrong_issuer = valid.clone();
    wrong_issuer["iss"] = json!("https://securetoken.google.com/another-project");
    let mut future = valid.clone();
    future["iat"] = json!(now() + 3600);
    future["exp"] = json!(now() + 7200);
    let mut no_sub = valid.clone();
    no_sub.as_object_mut().unwrap().remove("sub");

    let no_kid = tokens::sign_with(Header::new(Algorithm::RS256), &valid, primary());
    let rs384 = tokens::sign_with(
        Header { kid: Some(primary().kid.to_owned()), ..Header::new(Algorithm::RS384) },
        &valid,
        primary(),
    );
    let cases: Vec<(&str, String)> = vec![
        ("tampered signature", tokens::tamper_signature(&signed)),
        ("tampered payload", tokens::tamper_payload(&signed, |p| p["sub"] = json!("uid-admin"))),
        ("alg none outside emulator mode", tokens::unsigned(&valid)),
        ("HS256 keyed with the public key", tokens::hs256_with_public_key(&valid, primary())),
        ("RS384", rs384),
        ("no kid", no_kid),
        ("unknown kid (another key)", tokens::sign(&valid, other())),
        ("expired", tokens::sign(&expired, primary())),
        ("issued in the future", tokens::sign(&future, primary())),
        ("wrong audience", tokens::sign(&wrong_aud, primary())),
        ("audience of the other endpoint", tokens::sign(&other_endpoint, primary())),
        ("wrong issuer", tokens::sign(&wrong_issuer, primary())),
        ("no subject", tokens::sign(&no_sub, primary())),
        ("not a JWT", "not-a-jwt".to_owned()),
        ("empty", String::new()),
    ];
    for (name, token) in cases {
        let (status, body) = hook.call(BEFORE_CREATE_PATH, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        let (code, message) = error_of(&body);
        assert_eq!(code, "UNAUTHENTICATED", "{name}");
        assert!(message == "invalid token" || message == "token has expired", "{name}: {message}");
    }

    // The same forgeries on the sign-in endpoint.
    let sign_in = hook.sign_in_claims("uid-eve", json!({"tenant_id": "victim", "role": "owner"}));
    for token in [
        tokens::unsigned(&sign_in),
        tokens::tamper_signature(&tokens::sign(&sign_in, primary())),
        tokens::sign(&sign_in, other()),
    ] {
        let (status, body) = hook.call(BEFORE_SIGN_IN_PATH, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(error_of(&body).0, "UNAUTHENTICATED");
    }

    // Nothing was announced for any of them, and no user data was touched.
    let announced = hook.announcements(1, Duration::from_millis(500)).await;
    assert!(announced.is_empty(), "{announced:?}");
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
