//! Identity Platform blocking requests: verification per contracts 1.3 (signed and emulator
//! modes), typed events, and the full exchange with the official Auth emulator.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gcp::PublicError;
use gcp::blocking::{
    BlockingConfig, BlockingError, BlockingEventType, BlockingResponse, BlockingVerifier,
};
use gcp::callable::Code;
use gcp::firebase::{IdTokenConfig, IdTokenVerifier};
use gcp::jwks::JwksCache;
use gcp::token::TokenError;
use serde_json::{Value, json};
use testkit::jwks::JwksServer;
use testkit::keys::{other, primary};
use testkit::tokens::{self, now};

use crate::helpers::{KeyServer, cache, x509_document};

const PROJECT: &str = "hearth-demo";
const AUD: &str = "https://europe-west1-hearth-demo.cloudfunctions.net/before-create";

fn body(jwt: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"data": {"jwt": jwt}})).unwrap()
}

fn claims(event_type: &str) -> Value {
    tokens::blocking_claims(PROJECT, AUD, "uid-123", event_type)
}

async fn setup(auth_emulator: bool) -> (JwksServer, BlockingVerifier) {
    let server = JwksServer::start(&[primary()], 3600).await;
    let verifier = BlockingVerifier::new(
        cache(&server.url()),
        BlockingConfig::new(PROJECT, AUD, auth_emulator),
    );
    (server, verifier)
}

fn token_error(result: Result<gcp::blocking::BlockingEvent, BlockingError>) -> TokenError {
    match result {
        Err(BlockingError::Token(e)) => e,
        other => panic!("expected a token error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_signed_before_create_request_becomes_a_typed_event() {
    let (_server, verifier) = setup(false).await;
    let event =
        verifier.verify(&body(&tokens::sign(&claims("beforeCreate"), primary()))).await.unwrap();
    assert_eq!(event.event_type, BlockingEventType::BeforeCreate);
    assert_eq!(event.uid(), Some("uid-123"));
    assert_eq!(event.ip_address, "203.0.113.7");
    assert_eq!(event.sign_in_method.as_deref(), Some("password"));
    let user = event.user_record.as_ref().unwrap();
    assert_eq!(user.email.as_deref(), Some("uid-123@example.com"));
    assert!(!user.email_verified);
    let created = user.metadata.as_ref().unwrap().creation_time.unwrap();
    assert!((created.timestamp() - now()).abs() < 60, "metadata times are read as milliseconds");
    assert_eq!(user.provider_data[0].provider_id, "password");
    assert!(event.clone().expect_type(BlockingEventType::BeforeCreate).is_ok());
    let err = event.expect_type(BlockingEventType::BeforeSignIn).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn forgeries_are_refused() {
    let (_server, verifier) = setup(false).await;
    let token = tokens::sign(&claims("beforeCreate"), primary());
    assert!(matches!(
        token_error(verifier.verify(&body(&tokens::tamper_signature(&token))).await),
        TokenError::BadSignature
    ));
    let forged =
        tokens::tamper_payload(&token, |p| p["user_record"]["email_verified"] = json!(true));
    assert!(matches!(token_error(verifier.verify(&body(&forged)).await), TokenError::BadSignature));
    let unsigned = tokens::unsigned(&claims("beforeCreate"));
    assert!(matches!(
        token_error(verifier.verify(&body(&unsigned)).await),
        TokenError::UnsignedNotAllowed
    ));
    let confused = tokens::hs256_with_public_key(&claims("beforeCreate"), primary());
    assert!(matches!(
        token_error(verifier.verify(&body(&confused)).await),
        TokenError::UnsupportedAlgorithm(_)
    ));
    let unknown = tokens::sign(&claims("beforeCreate"), other());
    assert!(matches!(token_error(verifier.verify(&body(&unknown)).await), TokenError::UnknownKid));
}

#[tokio::test]
async fn audience_issuer_and_subject_rules() {
    let (_server, verifier) = setup(false).await;
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims("beforeCreate");
        edit(&mut c);
        body(&tokens::sign(&c, primary()))
    };
    // Exact audience: the SDK's substring rules would accept these; we do not.
    for aud in [
        "https://europe-west1-hearth-demo.cloudfunctions.net/before-create-evil",
        "https://evil.example/?https://europe-west1-hearth-demo.cloudfunctions.net/before-create",
        "https://europe-west1-hearth-demo.cloudfunctions.net/other",
    ] {
        assert!(matches!(
            token_error(verifier.verify(&with(&|c| c["aud"] = json!(aud))).await),
            TokenError::WrongAudience
        ));
    }
    let other_project =
        with(&|c| c["iss"] = json!("https://securetoken.google.com/another-project"));
    assert!(matches!(token_error(verifier.verify(&other_project).await), TokenError::WrongIssuer));
    let google = with(&|c| c["iss"] = json!("https://accounts.google.com"));
    assert!(matches!(token_error(verifier.verify(&google).await), TokenError::WrongIssuer));
    let empty_sub = with(&|c| c["sub"] = json!(""));
    assert!(matches!(token_error(verifier.verify(&empty_sub).await), TokenError::InvalidSubject));
    let long_sub = with(&|c| c["sub"] = json!("u".repeat(129)));
    assert!(matches!(token_error(verifier.verify(&long_sub).await), TokenError::InvalidSubject));
    let no_sub = with(&|c| {
        c.as_object_mut().unwrap().remove("sub");
    });
    assert!(matches!(token_error(verifier.verify(&no_sub).await), TokenError::InvalidSubject));
    let expired = with(&|c| {
        c["iat"] = json!(now() - 4000);
        c["exp"] = json!(now() - 400);
    });
    assert!(matches!(token_error(verifier.verify(&expired).await), TokenError::Expired));
    let future = with(&|c| c["iat"] = json!(now() + 600));
    assert!(matches!(token_error(verifier.verify(&future).await), TokenError::IssuedInFuture));
    let bad_type = with(&|c| c["event_type"] = json!("beforeDelete"));
    assert!(matches!(
        token_error(verifier.verify(&bad_type).await),
        TokenError::InvalidClaim("event_type")
    ));
    // beforeSendEmail carries no user: no sub needed.
    let send_email = with(&|c| {
        let o = c.as_object_mut().unwrap();
        o.remove("sub");
        o.remove("user_record");
        o.insert("event_type".into(), json!("beforeSendEmail"));
        o.insert("email_type".into(), json!("PASSWORD_RESET"));
    });
    let event = verifier.verify(&send_email).await.unwrap();
    assert_eq!(event.event_type, BlockingEventType::BeforeSendEmail);
    assert_eq!(event.uid(), None);
}

#[tokio::test]
async fn malformed_bodies() {
    let (_server, verifier) = setup(false).await;
    assert!(matches!(verifier.verify(b"not json").await, Err(BlockingError::NotJson(_))));
    for bad in [
        json!({}),
        json!({"data": {}}),
        json!({"data": {"jwt": 5}}),
        json!({"jwt": "a.b.c"}),
        json!([]),
    ] {
        let err = verifier.verify(&serde_json::to_vec(&bad).unwrap()).await.unwrap_err();
        assert!(matches!(err, BlockingError::MissingJwt), "{bad}");
        assert_eq!(err.code().http_status(), 400);
    }
    let huge = vec![b'a'; gcp::blocking::MAX_BODY_BYTES + 1];
    assert!(matches!(verifier.verify(&huge).await, Err(BlockingError::TooLarge)));
    // A signed token whose claims have the wrong shape.
    let mut c = claims("beforeCreate");
    c["user_record"] = json!("not an object");
    let err = verifier.verify(&body(&tokens::sign(&c, primary()))).await.unwrap_err();
    assert!(matches!(err, BlockingError::InvalidClaims(_)));
    let mut c = claims("beforeCreate");
    c["raw_user_info"] = json!("{not json");
    assert!(matches!(
        verifier.verify(&body(&tokens::sign(&c, primary()))).await,
        Err(BlockingError::InvalidClaims(_))
    ));
}

#[tokio::test]
async fn emulator_mode_accepts_unsigned_tokens_but_still_checks_claims() {
    let (_server, verifier) = setup(true).await;
    let event = verifier.verify(&body(&tokens::unsigned(&claims("beforeSignIn")))).await.unwrap();
    assert_eq!(event.event_type, BlockingEventType::BeforeSignIn);
    let mut wrong_aud = claims("beforeCreate");
    wrong_aud["aud"] = json!("https://elsewhere");
    assert!(matches!(
        token_error(verifier.verify(&body(&tokens::unsigned(&wrong_aud))).await),
        TokenError::WrongAudience
    ));
    let mut wrong_iss = claims("beforeCreate");
    wrong_iss["iss"] = json!("https://securetoken.google.com/other");
    assert!(matches!(
        token_error(verifier.verify(&body(&tokens::unsigned(&wrong_iss))).await),
        TokenError::WrongIssuer
    ));
    let mut expired = claims("beforeCreate");
    expired["exp"] = json!(now() - 600);
    assert!(matches!(
        token_error(verifier.verify(&body(&tokens::unsigned(&expired))).await),
        TokenError::Expired
    ));
    // An unsigned token must really be unsigned.
    let with_sig = format!("{}c2ln", tokens::unsigned(&claims("beforeCreate")));
    assert!(matches!(
        token_error(verifier.verify(&body(&with_sig)).await),
        TokenError::Malformed(_)
    ));
    // Signed tokens are still fully verified in emulator mode.
    let tampered = tokens::tamper_signature(&tokens::sign(&claims("beforeCreate"), primary()));
    assert!(matches!(
        token_error(verifier.verify(&body(&tampered)).await),
        TokenError::BadSignature
    ));
    // Only `none` is exempt, not other algorithms.
    let confused = tokens::hs256_with_public_key(&claims("beforeCreate"), primary());
    assert!(matches!(
        token_error(verifier.verify(&body(&confused)).await),
        TokenError::UnsupportedAlgorithm(_)
    ));
}

#[tokio::test]
async fn securetoken_x509_keys_verify_blocking_tokens() {
    let server =
        KeyServer::start(x509_document(), Some("public, max-age=22000, must-revalidate")).await;
    let verifier =
        BlockingVerifier::new(cache(&server.url), BlockingConfig::new(PROJECT, AUD, false));
    verifier.verify(&body(&tokens::sign(&claims("beforeCreate"), primary()))).await.unwrap();
}

#[tokio::test]
async fn refusals_answer_with_the_callable_error_body() {
    let (_server, verifier) = setup(false).await;
    let err = verifier.verify(&body(&tokens::unsigned(&claims("beforeCreate")))).await.unwrap_err();
    assert_eq!(err.code().http_status(), 401);
    assert_eq!(
        serde_json::to_value(err.to_error_body()).unwrap(),
        json!({"error": {"status": "UNAUTHENTICATED", "message": "invalid token"}})
    );
}

// ---- the full exchange with the official Auth emulator ----

#[derive(Debug)]
struct Hook {
    verifier: BlockingVerifier,
    seen: parking_lot::Mutex<Vec<gcp::blocking::BlockingEvent>>,
}

async fn before_create(State(hook): State<Arc<Hook>>, body: Bytes) -> Response {
    match hook
        .verifier
        .verify(&body)
        .await
        .and_then(|e| e.expect_type(BlockingEventType::BeforeCreate))
    {
        Ok(event) => {
            let blocked = event
                .user_record
                .as_ref()
                .and_then(|u| u.email.as_deref())
                .is_some_and(|e| e.ends_with("@blocked.test"));
            hook.seen.lock().push(event);
            if blocked {
                let body = gcp::callable::ErrorBody::new(
                    Code::PermissionDenied,
                    "sign-ups from this domain are closed",
                );
                return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
            }
            let claims = json!({"tenant_id": "t-42", "role": "owner"}).as_object().unwrap().clone();
            let response =
                BlockingResponse::new().custom_claims(claims).display_name("Hearth User");
            axum::Json(response.to_json(BlockingEventType::BeforeCreate).unwrap()).into_response()
        }
        Err(err) => {
            let status = StatusCode::from_u16(err.code().http_status()).unwrap();
            (status, axum::Json(err.to_error_body())).into_response()
        }
    }
}

#[tokio::test]
async fn the_auth_emulator_exchange_round_trips() {
    let auth_host = testkit::emulators::auth().await;
    // Client sign-ups (API key, no OAuth) land in the emulator's default project, which testkit
    // starts as `demo-hearth`; per-project URLs are for admin calls, which skip blocking hooks.
    let project = "demo-hearth".to_owned();
    let email = format!("ada-{}@example.com", testkit::project_id());
    // Keys are never fetched in emulator mode (tokens are unsigned); point at a closed port.
    let keys = JwksCache::new("http://127.0.0.1:9/never-fetched");
    // The audience is the hook's own URL, known once it listens.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/before-create", listener.local_addr().unwrap());
    let hook = Arc::new(Hook {
        verifier: BlockingVerifier::new(
            keys.clone(),
            BlockingConfig::new(&project, &hook_url, true),
        ),
        seen: parking_lot::Mutex::new(Vec::new()),
    });
    let router =
        Router::new().route("/before-create", post(before_create)).with_state(Arc::clone(&hook));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let client = crate::helpers::http_client();
    let base = format!("http://{auth_host}/identitytoolkit.googleapis.com");
    let config =
        json!({"blockingFunctions": {"triggers": {"beforeCreate": {"functionUri": hook_url}}}});
    let res = client
        .patch(format!("{base}/v2/projects/{project}/config?updateMask=blockingFunctions"))
        .bearer_auth("owner")
        .json(&config)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "register the hook: {} {}",
        res.status(),
        res.text().await.unwrap_or_default()
    );

    // Sign up: the emulator calls our hook with an unsigned JWT and applies our answer.
    let sign_up = |email: &str| {
        client
            .post(format!("{base}/v1/accounts:signUp?key=fake-api-key"))
            .json(&json!({"email": email, "password": "correct horse battery", "returnSecureToken": true}))
            .send()
    };
    let res = sign_up(&email).await.unwrap();
    let status = res.status();
    let created: Value = res.json().await.unwrap();
    assert!(status.is_success(), "sign-up: {status} {created}");
    {
        let seen = hook.seen.lock();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].event_type, BlockingEventType::BeforeCreate);
        assert_eq!(seen[0].user_record.as_ref().unwrap().email.as_deref(), Some(email.as_str()));
        assert_eq!(seen[0].uid(), created["localId"].as_str());
    }

    // The emulator's ID token is unsigned too: the emulator-mode ID token verifier reads the
    // custom claims our hook set.
    let ids = IdTokenVerifier::new(keys, IdTokenConfig::new(&project, true));
    let user = ids
        .verify_token(created["idToken"].as_str().unwrap())
        .await
        .expect("emulator ID token verifies");
    assert_eq!(user.uid, created["localId"].as_str().unwrap());
    assert_eq!(user.email.as_deref(), Some(email.as_str()));
    assert_eq!(user.claim_str("tenant_id"), Some("t-42"));
    assert_eq!(user.claim_str("role"), Some("owner"));
    assert_eq!(user.sign_in_provider.as_deref(), Some("password"));
    assert_eq!(user.name.as_deref(), Some("Hearth User"));

    // A blocked sign-up is refused and the client sees our error.
    let res = sign_up("mallory@blocked.test").await.unwrap();
    assert!(!res.status().is_success());
    let text = res.text().await.unwrap();
    assert!(text.contains("BLOCKING_FUNCTION_ERROR_RESPONSE"), "{text}");
    assert!(text.contains("sign-ups from this domain are closed"), "{text}");
}
