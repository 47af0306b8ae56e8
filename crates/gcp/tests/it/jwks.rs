//! The key cache: max-age caching, single-flight refreshes, the unknown-kid refetch budget,
//! serving cached keys through an endpoint outage, and the x509 PEM map format.

use std::time::Duration;

use gcp::jwks::JwksError;
use gcp::oidc::{GoogleOidcVerifier, OidcConfig};
use gcp::token::TokenError;
use serde_json::json;
use testkit::jwks::JwksServer;
use testkit::keys::{other, primary};
use testkit::tokens;

use crate::helpers::{KeyServer, cache, fast_options, x509_document};

const AUD: &str = "https://jobs.example.run.app";
const CALLER: &str = "scheduler@hearth-demo.iam.gserviceaccount.com";

fn bearer(key: &testkit::keys::TestKey) -> String {
    format!("Bearer {}", tokens::sign(&tokens::google_oidc_claims(AUD, CALLER), key))
}

#[tokio::test]
async fn keys_are_cached_for_max_age() {
    let server = JwksServer::start(&[primary()], 3600).await;
    let verifier = GoogleOidcVerifier::new(cache(&server.url()), OidcConfig::new(AUD, [CALLER]));
    verifier.verify(&bearer(primary())).await.unwrap();
    verifier.verify(&bearer(primary())).await.unwrap();
    assert_eq!(server.fetch_count(), 1, "two verifications, one fetch");
}

#[tokio::test]
async fn keys_are_refetched_after_max_age() {
    let server = JwksServer::start(&[primary()], 1).await;
    let verifier = GoogleOidcVerifier::new(cache(&server.url()), OidcConfig::new(AUD, [CALLER]));
    verifier.verify(&bearer(primary())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    verifier.verify(&bearer(primary())).await.unwrap();
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cold_cache_under_concurrency_fetches_once() {
    let server = JwksServer::start(&[primary()], 3600).await;
    let verifier = GoogleOidcVerifier::new(cache(&server.url()), OidcConfig::new(AUD, [CALLER]));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let verifier = verifier.clone();
            let header = bearer(primary());
            tokio::spawn(async move { verifier.verify(&header).await })
        })
        .collect();
    for result in futures::future::join_all(tasks).await {
        result.expect("task").expect("verifies");
    }
    assert_eq!(server.fetch_count(), 1, "50 concurrent verifications on a cold cache, one fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tokens_with_a_rotated_kid_share_one_refetch() {
    let server = JwksServer::start(&[primary()], 3600).await;
    let verifier = GoogleOidcVerifier::new(cache(&server.url()), OidcConfig::new(AUD, [CALLER]));
    verifier.verify(&bearer(primary())).await.unwrap();
    server.set_keys(&[primary(), other()]);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let verifier = verifier.clone();
            let header = bearer(other());
            tokio::spawn(async move { verifier.verify(&header).await })
        })
        .collect();
    for result in futures::future::join_all(tasks).await {
        result.expect("task").expect("the rotated key verifies for every caller");
    }
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn forged_random_kids_cannot_hammer_the_key_endpoint() {
    let server = JwksServer::start(&[primary()], 3600).await;
    let verifier = GoogleOidcVerifier::new(cache(&server.url()), OidcConfig::new(AUD, [CALLER]));
    verifier.verify(&bearer(primary())).await.unwrap();
    for i in 0..25 {
        let header = jsonwebtoken::Header {
            kid: Some(format!("forged-{i}")),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256)
        };
        let token = tokens::sign_with(header, &tokens::google_oidc_claims(AUD, CALLER), primary());
        assert!(matches!(
            verifier.verify(&format!("Bearer {token}")).await,
            Err(TokenError::UnknownKid)
        ));
    }
    assert_eq!(server.fetch_count(), 2, "one forced refetch, then the global floor holds");
}

#[tokio::test]
async fn cached_keys_keep_serving_while_a_refresh_fails() {
    let server = KeyServer::start(json!({"keys": [primary().jwk()]}), Some("max-age=3600")).await;
    let keys = crate::helpers::cache_with(&server.url, fast_options());
    keys.key(primary().kid).await.expect("first fetch");
    server.set_failing(true);
    // An unknown kid forces a refresh, which fails...
    assert!(matches!(keys.key(other().kid).await, Err(JwksError::UnknownKid)));
    assert_eq!(server.fetch_count(), 2);
    // ...and the still-valid cached key keeps working.
    keys.key(primary().kid).await.expect("cached key still served");
    let verifier = GoogleOidcVerifier::new(keys, OidcConfig::new(AUD, [CALLER]));
    verifier.verify(&bearer(primary())).await.expect("verification still works");
}

#[tokio::test]
async fn an_expired_set_with_a_failing_endpoint_fails_closed_and_backs_off() {
    let server = KeyServer::start(json!({"keys": [primary().jwk()]}), Some("max-age=1")).await;
    let keys = crate::helpers::cache_with(&server.url, fast_options());
    keys.key(primary().kid).await.expect("first fetch");
    server.set_failing(true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(matches!(keys.key(primary().kid).await, Err(JwksError::Status(503))));
    // Within the failure back-off no new fetch is made.
    assert!(matches!(keys.key(primary().kid).await, Err(JwksError::RecentFailure)));
    assert_eq!(server.fetch_count(), 2);
    // Recovery.
    server.set_failing(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    keys.key(primary().kid).await.expect("recovers once the endpoint is back");
}

#[tokio::test]
async fn without_cache_control_the_default_lifetime_applies() {
    let server = KeyServer::start(json!({"keys": [primary().jwk()]}), None).await;
    let keys = crate::helpers::cache_with(&server.url, fast_options());
    keys.key(primary().kid).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    keys.key(primary().kid).await.unwrap();
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test]
async fn the_x509_certificate_map_format_is_understood() {
    let server = KeyServer::start(x509_document(), Some("public, max-age=20000")).await;
    let verifier = GoogleOidcVerifier::new(cache(&server.url), OidcConfig::new(AUD, [CALLER]));
    verifier.verify(&bearer(primary())).await.expect("verifies against the certificate's key");
    assert!(matches!(verifier.verify(&bearer(other())).await, Err(TokenError::UnknownKid)));
}

#[tokio::test]
async fn documents_that_are_not_key_sets_make_keys_unavailable() {
    for document in [
        json!({"keys": "nope"}),
        json!(["a"]),
        json!({"keys": []}),
        json!({"kid": "not a certificate"}),
    ] {
        let server = KeyServer::start(document.clone(), Some("max-age=60")).await;
        let keys = crate::helpers::cache_with(&server.url, fast_options());
        let err = keys.key(primary().kid).await.unwrap_err();
        assert!(err.is_unavailable(), "{document}: {err}");
    }
}
