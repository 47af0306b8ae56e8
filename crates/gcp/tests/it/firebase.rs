//! Firebase ID tokens for the client API.

use gcp::PublicError;
use gcp::callable::Code;
use gcp::firebase::{IdTokenConfig, IdTokenVerifier};
use gcp::token::TokenError;
use serde_json::{Value, json};
use testkit::jwks::JwksServer;
use testkit::keys::primary;
use testkit::tokens::{self, now};

use crate::helpers::cache;

const PROJECT: &str = "hearth-demo";

async fn setup(auth_emulator: bool) -> (JwksServer, IdTokenVerifier) {
    let server = JwksServer::start(&[primary()], 3600).await;
    (
        server.clone(),
        IdTokenVerifier::new(cache(&server.url()), IdTokenConfig::new(PROJECT, auth_emulator)),
    )
}

fn claims() -> Value {
    let mut c = tokens::firebase_id_claims(PROJECT, "uid-7");
    c["tenant_id"] = json!("t-1");
    c["role"] = json!("admin");
    c
}

fn signed(edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims();
    edit(&mut c);
    tokens::sign(&c, primary())
}

#[tokio::test]
async fn a_valid_id_token_yields_the_user_and_custom_claims() {
    let (_server, verifier) = setup(false).await;
    let user = verifier.verify(&format!("Bearer {}", signed(|_| {}))).await.unwrap();
    assert_eq!(user.uid, "uid-7");
    assert_eq!(user.email.as_deref(), Some("uid-7@example.com"));
    assert!(user.email_verified);
    assert_eq!(user.sign_in_provider.as_deref(), Some("password"));
    assert_eq!(user.claim_str("tenant_id"), Some("t-1"));
    assert_eq!(user.claim_str("role"), Some("admin"));
    assert!(!user.claims.contains_key("firebase") && !user.claims.contains_key("user_id"));
}

/// A check of the refusal reason.
type Expect = fn(&TokenError) -> bool;

#[tokio::test]
async fn id_token_rejections() {
    let (_server, verifier) = setup(false).await;
    let cases: Vec<(&str, String, Expect)> = vec![
        ("other project audience", signed(|c| c["aud"] = json!("another-project")), |e| {
            matches!(e, TokenError::WrongAudience)
        }),
        (
            "other project issuer",
            signed(|c| c["iss"] = json!("https://securetoken.google.com/x")),
            |e| matches!(e, TokenError::WrongIssuer),
        ),
        ("google issuer", signed(|c| c["iss"] = json!("https://accounts.google.com")), |e| {
            matches!(e, TokenError::WrongIssuer)
        }),
        ("empty sub", signed(|c| c["sub"] = json!("")), |e| {
            matches!(e, TokenError::InvalidSubject)
        }),
        ("long sub", signed(|c| c["sub"] = json!("x".repeat(129))), |e| {
            matches!(e, TokenError::InvalidSubject)
        }),
        ("numeric sub", signed(|c| c["sub"] = json!(7)), |e| {
            matches!(e, TokenError::InvalidSubject)
        }),
        ("auth_time in the future", signed(|c| c["auth_time"] = json!(now() + 600)), |e| {
            matches!(e, TokenError::AuthTimeInFuture)
        }),
        (
            "no auth_time",
            signed(|c| {
                c.as_object_mut().unwrap().remove("auth_time");
            }),
            |e| matches!(e, TokenError::MissingClaim("auth_time")),
        ),
        ("expired", signed(|c| c["exp"] = json!(now() - 300)), |e| {
            matches!(e, TokenError::Expired)
        }),
        ("issued in the future", signed(|c| c["iat"] = json!(now() + 300)), |e| {
            matches!(e, TokenError::IssuedInFuture)
        }),
        ("unsigned", tokens::unsigned(&claims()), |e| matches!(e, TokenError::UnsignedNotAllowed)),
        (
            "tampered",
            tokens::tamper_payload(&signed(|_| {}), |c| c["role"] = json!("owner")),
            |e| matches!(e, TokenError::BadSignature),
        ),
        ("hs256 confusion", tokens::hs256_with_public_key(&claims(), primary()), |e| {
            matches!(e, TokenError::UnsupportedAlgorithm(_))
        }),
    ];
    for (name, token, expected) in cases {
        let err = verifier.verify_token(&token).await.expect_err(name);
        assert!(expected(&err), "{name}: got {err:?}");
        assert_eq!(err.code(), Code::Unauthenticated, "{name}");
    }
}

#[tokio::test]
async fn emulator_mode_accepts_unsigned_id_tokens_with_valid_claims() {
    let (server, verifier) = setup(true).await;
    let user = verifier.verify_token(&tokens::unsigned(&claims())).await.unwrap();
    assert_eq!(user.uid, "uid-7");
    let mut wrong = claims();
    wrong["aud"] = json!("another-project");
    assert!(matches!(
        verifier.verify_token(&tokens::unsigned(&wrong)).await,
        Err(TokenError::WrongAudience)
    ));
    let mut expired = claims();
    expired["exp"] = json!(now() - 300);
    assert!(matches!(
        verifier.verify_token(&tokens::unsigned(&expired)).await,
        Err(TokenError::Expired)
    ));
    assert_eq!(server.fetch_count(), 0, "unsigned tokens need no keys");
}
