//! `runtime::auth` over real HTTP: Google OIDC and Firebase ID token extractors with testkit's
//! keys and JWKS server, rejections through the one error mapping, insecure local push, and the
//! start-up checks of `PushAuth::from_config` / `FirebaseAuth::from_config`.

use std::collections::HashMap;

use axum::extract::FromRef;
use axum::routing::post;
use axum::{Json, Router};
use gcp::firebase::{IdTokenConfig, IdTokenVerifier};
use gcp::jwks::JwksCache;
use gcp::oidc::{GoogleOidcVerifier, OidcConfig};
use runtime::auth::{Caller, FirebaseAuth, FirebaseCaller, GoogleCaller, PushAuth};
use runtime::{BaseConfig, Error};
use serde_json::{Value, json};
use testkit::keys::{other, primary};
use testkit::tokens;

const AUDIENCE: &str = "https://onboarding.example.run.app";
const PUSHER: &str = "push@demo.iam.gserviceaccount.com";
const PROJECT: &str = "demo-auth";

#[derive(Clone)]
struct State {
    push: PushAuth,
    firebase: FirebaseAuth,
}

impl FromRef<State> for PushAuth {
    fn from_ref(s: &State) -> PushAuth {
        s.push.clone()
    }
}

impl FromRef<State> for FirebaseAuth {
    fn from_ref(s: &State) -> FirebaseAuth {
        s.firebase.clone()
    }
}

async fn google(GoogleCaller(claims): GoogleCaller) -> Result<Json<Value>, Error> {
    Ok(Json(json!({"email": claims.map(|c| c.email)})))
}

async fn firebase_route(FirebaseCaller(user): FirebaseCaller) -> Result<Json<Value>, Error> {
    Ok(Json(json!({"uid": user.uid, "tenant": user.claim_str("tenant_id")})))
}

async fn either(caller: Caller) -> Result<Json<Value>, Error> {
    Ok(Json(match caller {
        Caller::Google(c) => json!({"kind": "google", "email": c.map(|c| c.email)}),
        Caller::Firebase(u) => json!({"kind": "firebase", "uid": u.uid}),
    }))
}

async fn app(push: PushAuth, auth_emulator: bool, jwks_url: &str) -> testkit::TestApp {
    let firebase = FirebaseAuth::new(IdTokenVerifier::new(
        JwksCache::new(jwks_url.to_owned()),
        IdTokenConfig::new(PROJECT, auth_emulator),
    ));
    let routes = Router::new()
        .route("/google", post(google))
        .route("/firebase", post(firebase_route))
        .route("/either", post(either))
        .with_state(State { push, firebase });
    testkit::spawn_app(runtime::router(routes, &BaseConfig::local())).await
}

fn verifying(jwks_url: &str) -> PushAuth {
    PushAuth::new(GoogleOidcVerifier::new(
        JwksCache::new(jwks_url.to_owned()),
        OidcConfig::new(AUDIENCE, [PUSHER]),
    ))
}

async fn call(app: &testkit::TestApp, path: &str, token: Option<&str>) -> (u16, String, Value) {
    let mut req = app.client.post(app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn google_oidc_callers_are_verified_and_forgeries_refused() {
    let jwks = testkit::jwks::JwksServer::start(&[primary()], 300).await;
    let app = app(verifying(&jwks.url()), false, &jwks.url()).await;

    let good = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, PUSHER), primary());
    let (status, _, body) = call(&app, "/google", Some(&good)).await;
    assert_eq!((status, body), (200, json!({"email": PUSHER})));

    let forged = [
        tokens::tamper_signature(&good),
        tokens::sign(&tokens::google_oidc_claims(AUDIENCE, PUSHER), other()),
        tokens::sign(&tokens::google_oidc_claims("https://elsewhere", PUSHER), primary()),
        tokens::sign(&tokens::google_oidc_claims(AUDIENCE, "intruder@evil.example"), primary()),
        tokens::unsigned(&tokens::google_oidc_claims(AUDIENCE, PUSHER)),
        tokens::hs256_with_public_key(&tokens::google_oidc_claims(AUDIENCE, PUSHER), primary()),
    ];
    for token in forged {
        let (status, content_type, body) = call(&app, "/google", Some(&token)).await;
        assert_eq!(status, 401, "{body}");
        assert!(content_type.starts_with("application/problem+json"), "{content_type}");
        assert!(!body.to_string().contains("kid"), "no verification detail leaks: {body}");
    }
    let (status, _, _) = call(&app, "/google", None).await;
    assert_eq!(status, 401, "a missing token is refused");
}

#[tokio::test]
async fn insecure_local_push_skips_verification() {
    let jwks = testkit::jwks::JwksServer::start(&[primary()], 300).await;
    let app = app(PushAuth::insecure_local(), false, &jwks.url()).await;
    let (status, _, body) = call(&app, "/google", None).await;
    assert_eq!((status, body), (200, json!({"email": null})));
}

#[tokio::test]
async fn firebase_id_tokens_verify_and_unsigned_ones_only_in_emulator_mode() {
    let jwks = testkit::jwks::JwksServer::start(&[primary()], 300).await;
    let mut claims = tokens::firebase_id_claims(PROJECT, "ada");
    claims["tenant_id"] = json!("t1");

    let strict = app(verifying(&jwks.url()), false, &jwks.url()).await;
    let (status, _, body) =
        call(&strict, "/firebase", Some(&tokens::sign(&claims, primary()))).await;
    assert_eq!((status, body), (200, json!({"uid": "ada", "tenant": "t1"})));
    let (status, _, _) = call(&strict, "/firebase", Some(&tokens::unsigned(&claims))).await;
    assert_eq!(status, 401, "alg none outside emulator mode");
    let mut other_project = claims.clone();
    other_project["aud"] = json!("demo-other");
    let (status, _, _) =
        call(&strict, "/firebase", Some(&tokens::sign(&other_project, primary()))).await;
    assert_eq!(status, 401, "a token of another project");

    let emulator = app(verifying(&jwks.url()), true, &jwks.url()).await;
    let (status, _, body) = call(&emulator, "/firebase", Some(&tokens::unsigned(&claims))).await;
    assert_eq!((status, body), (200, json!({"uid": "ada", "tenant": "t1"})));
}

#[tokio::test]
async fn either_caller_is_routed_by_issuer_and_still_verified() {
    let jwks = testkit::jwks::JwksServer::start(&[primary()], 300).await;
    let app = app(verifying(&jwks.url()), false, &jwks.url()).await;
    let user = tokens::sign(&tokens::firebase_id_claims(PROJECT, "ada"), primary());
    let operator = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, PUSHER), primary());
    assert_eq!(
        call(&app, "/either", Some(&user)).await.2,
        json!({"kind": "firebase", "uid": "ada"})
    );
    assert_eq!(
        call(&app, "/either", Some(&operator)).await.2,
        json!({"kind": "google", "email": PUSHER})
    );
    let forged_user = tokens::tamper_signature(&user);
    assert_eq!(call(&app, "/either", Some(&forged_user)).await.0, 401);
    assert_eq!(call(&app, "/either", None).await.0, 401);
}

#[tokio::test]
async fn an_unreachable_key_endpoint_is_a_retry_not_a_rejection() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks", l.local_addr().unwrap())
    };
    let app = app(verifying(&dead), false, &dead).await;
    let token = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, PUSHER), primary());
    let (status, _, body) = call(&app, "/google", Some(&token)).await;
    assert_eq!(status, 503, "{body}");
}

#[test]
fn from_config_names_the_missing_variable() {
    let config = |pairs: &[(&str, &str)]| {
        BaseConfig::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        )
        .unwrap()
    };
    let err = PushAuth::from_config(&config(&[])).unwrap_err();
    assert!(err.to_string().contains("HEARTH_OIDC_AUDIENCE"), "{err}");
    let err = PushAuth::from_config(&config(&[("HEARTH_OIDC_AUDIENCE", AUDIENCE)])).unwrap_err();
    assert!(err.to_string().contains("HEARTH_OIDC_ALLOWED_EMAILS"), "{err}");
    let ok = PushAuth::from_config(&config(&[
        ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
        ("HEARTH_OIDC_ALLOWED_EMAILS", PUSHER),
    ]));
    assert!(ok.unwrap().is_verifying());
    let insecure = PushAuth::from_config(&config(&[
        ("HEARTH_INSECURE_LOCAL_PUSH", "1"),
        ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085"),
    ]));
    assert!(!insecure.unwrap().is_verifying());
    let err = FirebaseAuth::from_config(&config(&[])).unwrap_err();
    assert!(err.to_string().contains("GOOGLE_CLOUD_PROJECT"), "{err}");
}
