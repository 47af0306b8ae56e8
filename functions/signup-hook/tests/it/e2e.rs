//! End to end through the official Firebase Auth emulator: it calls our hook (unsigned JWTs,
//! emulator mode) on sign-up and sign-in, and the client sees our claims or our message.

use std::time::Duration;

use domain::tenancy::personal_tenant_id;
use gcp::firebase::{IdTokenConfig, IdTokenVerifier};
use gcp::jwks::JwksCache;
use serde_json::{Value, json};
use signup_hook::{BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH, SUSPENDED_MESSAGE};
use store::paths;

use crate::helpers::{Hook, Setup, start};

const PASSWORD: &str = "correct horse battery staple";

async fn register(hook: &Hook, auth: &str) {
    let config = json!({"blockingFunctions": {"triggers": {
        "beforeCreate": {"functionUri": hook.url(BEFORE_CREATE_PATH)},
        "beforeSignIn": {"functionUri": hook.url(BEFORE_SIGN_IN_PATH)},
    }}});
    let res = hook
        .client
        .patch(format!(
            "http://{auth}/identitytoolkit.googleapis.com/v2/projects/{}/config?updateMask=blockingFunctions",
            hook.project
        ))
        .bearer_auth("owner")
        .json(&config)
        .send()
        .await
        .unwrap();
    let status = res.status();
    assert!(status.is_success(), "register the hooks: {status} {}", res.text().await.unwrap());
}

/// `accounts:<op>` with email and password; returns the status and body.
async fn account(hook: &Hook, auth: &str, op: &str, email: &str) -> (reqwest::StatusCode, Value) {
    let res = hook
        .client
        .post(format!("http://{auth}/identitytoolkit.googleapis.com/v1/accounts:{op}?key=any"))
        .json(&json!({"email": email, "password": PASSWORD, "returnSecureToken": true}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn sign_ups_through_the_auth_emulator_carry_our_claims_or_our_message() {
    let project = testkit::project_id();
    let auth = testkit::emulators::auth_for_project(&project).await;
    let hook = start(Setup {
        project: Some(project.clone()),
        auth_emulator: Some(auth.clone()),
        ..Setup::default()
            .var("HEARTH_BLOCKED_EMAIL_DOMAINS", "spam.example")
            .var("HEARTH_TENANCY_CACHE_TTL_SECS", "0")
    })
    .await;
    register(&hook, &auth).await;
    // Emulator ID tokens are unsigned; gcp's emulator-mode verifier reads them.
    let ids = IdTokenVerifier::new(
        JwksCache::new("http://127.0.0.1:9/never-fetched"),
        IdTokenConfig::new(&project, true),
    );

    // Sign-up: the ID token carries tenant_id and role.
    let email = "ada@example.com";
    let (status, created) = account(&hook, &auth, "signUp", email).await;
    assert!(status.is_success(), "sign-up: {status} {created}");
    let uid = created["localId"].as_str().unwrap().to_owned();
    let user = ids.verify_token(created["idToken"].as_str().unwrap()).await.unwrap();
    assert_eq!(user.uid, uid);
    assert_eq!(user.claim_str("tenant_id"), Some(personal_tenant_id(&uid).as_str()));
    assert_eq!(user.claim_str("role"), Some("owner"));

    // The new user was announced, with the emulator's event id.
    let sent = hook.announcements(1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["uid"], uid.as_str());
    assert_eq!(sent[0]["tenant_is_new"], true);
    assert!(sent[0]["event_id"].as_str().is_some_and(|id| !id.is_empty()));

    // A blocked domain: the sign-up fails and the client sees our message.
    let (status, refused) = account(&hook, &auth, "signUp", "mallory@spam.example").await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    let text = refused.to_string();
    assert!(text.contains("BLOCKING_FUNCTION_ERROR_RESPONSE"), "{text}");
    assert!(
        text.contains("Sign-ups with an email address at spam.example are not allowed."),
        "{text}"
    );

    // Later sign-ins pass through beforeSignIn: fine while the tenant is active...
    let tenant = personal_tenant_id(&uid);
    hook.db().set(&paths::tenant(&tenant).unwrap(), &json!({"status": "active"})).await.unwrap();
    hook.db()
        .set(&paths::tenant_member(&tenant, &uid).unwrap(), &json!({"role": "owner"}))
        .await
        .unwrap();
    let (status, signed_in) = account(&hook, &auth, "signInWithPassword", email).await;
    assert!(status.is_success(), "sign-in: {status} {signed_in}");
    let user = ids.verify_token(signed_in["idToken"].as_str().unwrap()).await.unwrap();
    assert_eq!(user.claim_str("role"), Some("owner"));

    // ...a role change shows up in the next ID token...
    hook.db()
        .set(&paths::tenant_member(&tenant, &uid).unwrap(), &json!({"role": "admin"}))
        .await
        .unwrap();
    let (status, signed_in) = account(&hook, &auth, "signInWithPassword", email).await;
    assert!(status.is_success(), "sign-in: {status} {signed_in}");
    let user = ids.verify_token(signed_in["idToken"].as_str().unwrap()).await.unwrap();
    assert_eq!(user.claim_str("role"), Some("admin"));
    assert_eq!(user.claim_str("tenant_id"), Some(tenant.as_str()));

    // ...and a suspended tenant cannot sign in.
    hook.db().set(&paths::tenant(&tenant).unwrap(), &json!({"status": "suspended"})).await.unwrap();
    let (status, refused) = account(&hook, &auth, "signInWithPassword", email).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(refused.to_string().contains(SUSPENDED_MESSAGE), "{refused}");
}
