//! `/metrics` and `/metrics.json` only for Google OIDC tokens of `HEARTH_METRICS_ALLOWED_EMAILS`
//! (audience `HEARTH_OIDC_AUDIENCE`): no token 401, forged 401, wrong service account 403,
//! allowed 200; health routes stay open; nobody reads metrics when the list is empty.

use runtime::{BaseConfig, ConfigError, Env};
use testkit::keys::{other, primary};
use testkit::tokens;

use crate::helpers::{config, spawn};

pub(crate) const AUDIENCE: &str = "https://svc.example.run.app";
pub(crate) const READER: &str = "metrics-reader@demo.iam.gserviceaccount.com";

/// A config whose metrics readers are `READER`, with keys from `jwks_url`.
pub(crate) fn reader_config(jwks_url: &str) -> BaseConfig {
    config(&[
        ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url),
        ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
        ("HEARTH_METRICS_ALLOWED_EMAILS", READER),
    ])
}

/// A valid token of `READER`.
pub(crate) fn reader_token() -> String {
    tokens::sign(&tokens::google_oidc_claims(AUDIENCE, READER), primary())
}

async fn status(app: &testkit::TestApp, path: &str, token: Option<&str>) -> u16 {
    let mut req = app.client.get(app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn metrics_need_an_allowed_google_service_account() {
    let jwks = testkit::jwks::JwksServer::start(&[primary()], 300).await;
    let (app, _, _) = spawn(&reader_config(&jwks.url())).await;

    let good = reader_token();
    let wrong_account = tokens::sign(
        &tokens::google_oidc_claims(AUDIENCE, "someone-else@demo.iam.gserviceaccount.com"),
        primary(),
    );
    let forged = [
        tokens::tamper_signature(&good),
        tokens::sign(&tokens::google_oidc_claims(AUDIENCE, READER), other()),
        tokens::sign(&tokens::google_oidc_claims("https://elsewhere", READER), primary()),
        tokens::unsigned(&tokens::google_oidc_claims(AUDIENCE, READER)),
        tokens::hs256_with_public_key(&tokens::google_oidc_claims(AUDIENCE, READER), primary()),
    ];
    for path in ["/metrics", "/metrics.json"] {
        assert_eq!(status(&app, path, None).await, 401, "{path}: no token");
        for token in &forged {
            assert_eq!(status(&app, path, Some(token)).await, 401, "{path}: forged {token}");
        }
        assert_eq!(status(&app, path, Some(&wrong_account)).await, 403, "{path}: wrong account");
        assert_eq!(status(&app, path, Some(&good)).await, 200, "{path}: allowed reader");
    }
    for path in ["/healthz", "/health"] {
        assert_eq!(status(&app, path, None).await, 200, "{path} stays open");
    }
}

#[tokio::test]
async fn metrics_are_served_to_nobody_without_readers() {
    let jwks = testkit::jwks::JwksServer::start(&[primary()], 300).await;
    let (app, _, _) = spawn(&config(&[
        ("HEARTH_GOOGLE_OIDC_JWKS_URL", &jwks.url()),
        ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
        ("HEARTH_OIDC_ALLOWED_EMAILS", READER),
    ]))
    .await;
    // A push caller's token is not a metrics reader's.
    assert_eq!(status(&app, "/metrics", Some(&reader_token())).await, 403);
    assert_eq!(status(&app, "/metrics", None).await, 403);
    assert_eq!(status(&app, "/health", None).await, 200);
}

#[test]
fn readers_without_an_audience_fail_at_start_up() {
    let err = BaseConfig::load(&Env::from_pairs([("HEARTH_METRICS_ALLOWED_EMAILS", READER)]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::Refused { .. }), "{err}");
    assert_eq!(err.var(), "HEARTH_OIDC_AUDIENCE");
}
