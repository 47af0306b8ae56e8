//! Google OIDC bearer tokens: acceptance, and a rejection for every forgery and malformation.

use gcp::PublicError;
use gcp::callable::Code;
use gcp::oidc::{GoogleOidcVerifier, OidcConfig};
use gcp::token::TokenError;
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};
use testkit::jwks::JwksServer;
use testkit::keys::{other, primary};
use testkit::tokens::{self, now};

use crate::helpers::cache;

const AUD: &str = "https://onboarding-abc-ew.a.run.app";
const PUSHER: &str = "pubsub-push@hearth-demo.iam.gserviceaccount.com";

async fn setup() -> (JwksServer, GoogleOidcVerifier) {
    let server = JwksServer::start(&[primary()], 3600).await;
    let verifier = GoogleOidcVerifier::new(cache(&server.url()), OidcConfig::new(AUD, [PUSHER]));
    (server, verifier)
}

fn claims() -> Value {
    tokens::google_oidc_claims(AUD, PUSHER)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn rejects(verifier: &GoogleOidcVerifier, token: &str) -> TokenError {
    verifier.verify(&bearer(token)).await.expect_err("token must be refused")
}

#[tokio::test]
async fn a_valid_token_yields_typed_claims() {
    let (_server, verifier) = setup().await;
    let got = verifier.verify(&bearer(&tokens::sign(&claims(), primary()))).await.unwrap();
    assert_eq!(got.email, PUSHER);
    assert!(got.email_verified);
    assert_eq!(got.aud, AUD);
    assert_eq!(got.sub, "112233445566778899000");
    // The bare issuer form is Google's too.
    let mut c = claims();
    c["iss"] = json!("accounts.google.com");
    assert!(verifier.verify(&bearer(&tokens::sign(&c, primary()))).await.is_ok());
    // Email comparison ignores ASCII case (service account emails are lower case anyway).
    let mut c = claims();
    c["email"] = json!(PUSHER.to_uppercase());
    assert!(verifier.verify(&bearer(&tokens::sign(&c, primary()))).await.is_ok());
}

#[tokio::test]
async fn forged_signatures_are_refused() {
    let (_server, verifier) = setup().await;
    let token = tokens::sign(&claims(), primary());
    assert!(matches!(
        rejects(&verifier, &tokens::tamper_signature(&token)).await,
        TokenError::BadSignature
    ));
    let escalated = tokens::tamper_payload(&token, |p| {
        p["email"] = json!("admin@hearth-demo.iam.gserviceaccount.com");
    });
    assert!(matches!(rejects(&verifier, &escalated).await, TokenError::BadSignature));
    // Signed by an unpublished key but claiming the published kid.
    let header = Header { kid: Some(primary().kid.into()), ..Header::new(Algorithm::RS256) };
    let impostor = tokens::sign_with(header, &claims(), other());
    assert!(matches!(rejects(&verifier, &impostor).await, TokenError::BadSignature));
    // Signature stripped.
    let (head, _) = token.rsplit_once('.').unwrap();
    assert!(matches!(rejects(&verifier, &format!("{head}.")).await, TokenError::BadSignature));
}

#[tokio::test]
async fn algorithms_other_than_rs256_are_refused_before_any_key_lookup() {
    let (server, verifier) = setup().await;
    // alg none is never accepted for Google OIDC, emulator or not.
    assert!(matches!(
        rejects(&verifier, &tokens::unsigned(&claims())).await,
        TokenError::UnsignedNotAllowed
    ));
    // The classic confusion: HS256 keyed with the RSA public key.
    let confused = tokens::hs256_with_public_key(&claims(), primary());
    assert!(
        matches!(rejects(&verifier, &confused).await, TokenError::UnsupportedAlgorithm(a) if a == "HS256")
    );
    // Another RSA algorithm, validly signed with the right key.
    let header = Header { kid: Some(primary().kid.into()), ..Header::new(Algorithm::RS384) };
    let rs384 = tokens::sign_with(header, &claims(), primary());
    assert!(
        matches!(rejects(&verifier, &rs384).await, TokenError::UnsupportedAlgorithm(a) if a == "RS384")
    );
    let header = Header { kid: Some(primary().kid.into()), ..Header::new(Algorithm::PS256) };
    let ps256 = tokens::sign_with(header, &claims(), primary());
    assert!(matches!(rejects(&verifier, &ps256).await, TokenError::UnsupportedAlgorithm(_)));
    // An ES256 header (with garbage signature: it must not matter).
    let es256 =
        forge_with_header(&json!({"alg": "ES256", "kid": primary().kid, "typ": "JWT"}), &claims());
    assert!(
        matches!(rejects(&verifier, &es256).await, TokenError::UnsupportedAlgorithm(a) if a == "ES256")
    );
    let no_alg = forge_with_header(&json!({"kid": primary().kid}), &claims());
    assert!(matches!(rejects(&verifier, &no_alg).await, TokenError::Malformed(_)));
    assert_eq!(server.fetch_count(), 0, "no key was needed to refuse these");
}

/// A token with an arbitrary header and a junk signature.
pub(crate) fn forge_with_header(header: &Value, claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.c2lnbmF0dXJl", b64.encode(header.to_string()), b64.encode(claims.to_string()))
}

#[tokio::test]
async fn kid_is_required_and_must_be_known() {
    let (server, verifier) = setup().await;
    let header = Header { kid: None, ..Header::new(Algorithm::RS256) };
    let no_kid = tokens::sign_with(header, &claims(), primary());
    assert!(matches!(rejects(&verifier, &no_kid).await, TokenError::MissingKid));
    let header = Header { kid: Some(String::new()), ..Header::new(Algorithm::RS256) };
    let empty_kid = tokens::sign_with(header, &claims(), primary());
    assert!(matches!(rejects(&verifier, &empty_kid).await, TokenError::MissingKid));

    // Warm the cache, then present a kid the server does not publish: exactly one refetch.
    verifier.verify(&bearer(&tokens::sign(&claims(), primary()))).await.unwrap();
    assert_eq!(server.fetch_count(), 1);
    let unknown = tokens::sign(&claims(), other());
    assert!(matches!(rejects(&verifier, &unknown).await, TokenError::UnknownKid));
    assert_eq!(server.fetch_count(), 2, "an unknown kid triggers one refetch");
    for _ in 0..5 {
        assert!(matches!(rejects(&verifier, &unknown).await, TokenError::UnknownKid));
    }
    assert_eq!(server.fetch_count(), 2, "and not more within the cooldown");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_the_refetch() {
    let (server, verifier) = setup().await;
    verifier.verify(&bearer(&tokens::sign(&claims(), primary()))).await.unwrap();
    server.set_keys(&[primary(), other()]);
    let rotated = tokens::sign(&claims(), other());
    let got =
        verifier.verify(&bearer(&rotated)).await.expect("the new kid verifies after one refetch");
    assert_eq!(got.email, PUSHER);
    assert_eq!(server.fetch_count(), 2);
    // Old tokens keep verifying from the refreshed set, without further fetches.
    verifier.verify(&bearer(&tokens::sign(&claims(), primary()))).await.unwrap();
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn audience_and_issuer_must_match_exactly() {
    let (_server, verifier) = setup().await;
    for aud in [
        json!(format!("{AUD}/")),
        json!("https://evil.a.run.app"),
        json!([AUD]),
        json!(format!("{AUD}.evil")),
    ] {
        let mut c = claims();
        c["aud"] = aud.clone();
        let err = rejects(&verifier, &tokens::sign(&c, primary())).await;
        assert!(matches!(err, TokenError::WrongAudience), "aud {aud}: {err}");
    }
    for iss in [
        json!("https://securetoken.google.com/hearth-demo"),
        json!("http://accounts.google.com"),
        json!(null),
    ] {
        let mut c = claims();
        c["iss"] = iss.clone();
        let err = rejects(&verifier, &tokens::sign(&c, primary())).await;
        assert!(matches!(err, TokenError::WrongIssuer), "iss {iss}: {err}");
    }
}

#[tokio::test]
async fn time_claims_are_enforced_with_a_small_leeway() {
    let (_server, verifier) = setup().await;
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims();
        edit(&mut c);
        tokens::sign(&c, primary())
    };
    let expired = with(&|c| {
        c["iat"] = json!(now() - 7200);
        c["exp"] = json!(now() - 120);
    });
    assert!(matches!(rejects(&verifier, &expired).await, TokenError::Expired));
    let within_leeway = with(&|c| c["exp"] = json!(now() - 10));
    assert!(verifier.verify(&bearer(&within_leeway)).await.is_ok());
    let future = with(&|c| c["iat"] = json!(now() + 120));
    assert!(matches!(rejects(&verifier, &future).await, TokenError::IssuedInFuture));
    let not_yet = with(&|c| c["nbf"] = json!(now() + 120));
    assert!(matches!(rejects(&verifier, &not_yet).await, TokenError::NotYetValid));
    let no_exp = with(&|c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    assert!(matches!(rejects(&verifier, &no_exp).await, TokenError::MissingClaim("exp")));
    let text_exp = with(&|c| c["exp"] = json!("tomorrow"));
    assert!(matches!(rejects(&verifier, &text_exp).await, TokenError::InvalidClaim("exp")));
}

#[tokio::test]
async fn the_caller_must_be_an_allowed_verified_email() {
    let (_server, verifier) = setup().await;
    let stranger = tokens::sign(
        &tokens::google_oidc_claims(AUD, "someone@evil.iam.gserviceaccount.com"),
        primary(),
    );
    assert!(matches!(rejects(&verifier, &stranger).await, TokenError::EmailNotAllowed));
    for verified in [json!(false), json!("true"), json!(null)] {
        let mut c = claims();
        c["email_verified"] = verified;
        assert!(matches!(
            rejects(&verifier, &tokens::sign(&c, primary())).await,
            TokenError::EmailNotVerified
        ));
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("email");
    assert!(matches!(
        rejects(&verifier, &tokens::sign(&c, primary())).await,
        TokenError::MissingClaim("email")
    ));
    // An empty allow-list lets nobody in.
    let server = JwksServer::start(&[primary()], 3600).await;
    let closed =
        GoogleOidcVerifier::new(cache(&server.url()), OidcConfig::new(AUD, Vec::<String>::new()));
    assert!(matches!(
        closed.verify(&bearer(&tokens::sign(&claims(), primary()))).await,
        Err(TokenError::EmailNotAllowed)
    ));
}

#[tokio::test]
async fn malformed_headers_and_tokens() {
    let (_server, verifier) = setup().await;
    for header in ["", "Bearer", "Bearer   "] {
        assert!(
            matches!(verifier.verify(header).await, Err(TokenError::MissingToken)),
            "{header:?}"
        );
    }
    let token = tokens::sign(&claims(), primary());
    for header in [format!("Basic {token}"), token.clone(), format!("Token {token}")] {
        assert!(matches!(verifier.verify(&header).await, Err(TokenError::NotBearer)));
    }
    for junk in ["a.b", "a.b.c.d", "!!!.e30.sig", "e30.!!!.sig", "bm90IGpzb24.e30.sig"] {
        assert!(matches!(rejects(&verifier, junk).await, TokenError::Malformed(_)), "{junk}");
    }
    let huge = "a".repeat(gcp::token::MAX_TOKEN_BYTES + 1);
    assert!(matches!(rejects(&verifier, &huge).await, TokenError::TooLong));
}

#[tokio::test]
async fn errors_map_to_safe_public_answers() {
    let (_server, verifier) = setup().await;
    let err =
        rejects(&verifier, &tokens::tamper_signature(&tokens::sign(&claims(), primary()))).await;
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.code().http_status(), 401);
    assert_eq!(err.public_message(), "invalid token");
    assert!(!err.is_retryable());
    let body = serde_json::to_value(err.to_error_body()).unwrap();
    assert_eq!(body, json!({"error": {"status": "UNAUTHENTICATED", "message": "invalid token"}}));

    // Keys unreachable: transient, 503, nothing about the endpoint in the message.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/keys", listener.local_addr().unwrap());
    drop(listener);
    let verifier = GoogleOidcVerifier::new(
        crate::helpers::cache_with(&dead, crate::helpers::fast_options()),
        OidcConfig::new(AUD, [PUSHER]),
    );
    let err = verifier.verify(&bearer(&tokens::sign(&claims(), primary()))).await.unwrap_err();
    assert!(matches!(err, TokenError::KeysUnavailable(_)), "{err}");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.is_retryable());
    assert!(!err.public_message().contains("127.0.0.1"));
}
