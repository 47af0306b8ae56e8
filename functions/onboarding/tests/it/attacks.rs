//! Hostile callers of the onboarding function, gathered: forged, unsigned, expired and
//! misdirected OIDC tokens on the push endpoint, oversized bodies, a replayed sign-up message
//! that would re-instate a removed member, and cross-tenant or under-privileged removals and
//! suspensions. Elsewhere: cross-tenant and under-privileged repairs (`repair.rs`:
//! `cross_tenant_repairs_are_refused`, `a_plain_member_is_refused_even_with_an_admin_claim`,
//! `tenant_admins_cannot_create_tenants`, `unauthenticated_malformed_and_oversized_requests_are_refused`),
//! poison messages (`push.rs`: `undecodable_messages_are_dead_lettered_and_acknowledged`).
//!
//! Removal and suspension run against the Auth emulator: after them, the user's custom claims
//! no longer name the tenant, and the account's `validSince` is the revocation time, so every ID
//! token issued before is refused (the emulator answers `TOKEN_EXPIRED`) and every session that
//! began before is revoked (`auth_time` < `validSince`). The emulator's refresh-token grant
//! checks only `disabled`, not `validSince` (production answers `TOKEN_EXPIRED`), so the test
//! checks that a refreshed token carries no tenant claims and belongs to a revoked session.

use std::time::Duration;

use base64::Engine as _;
use domain::onboarding::DocKind;
use serde_json::{Value, json};
use store::Ledger;
use testkit::{keys, tokens};

use crate::push::{PATH, dead_lettered, push, signup_envelope};
use crate::{Harness, OPERATOR_SA, PUSH_SA, id_token, oidc, raw, request_of, signup, write_times};

#[tokio::test]
async fn forged_or_missing_oidc_tokens_are_refused() {
    let h = Harness::start().await;
    let body = signup("eve", "personal-eve", "owner", true);
    let valid = tokens::google_oidc_claims(crate::AUDIENCE, PUSH_SA);
    let mut wrong_audience = valid.clone();
    wrong_audience["aud"] = json!("https://elsewhere.example/");
    let mut expired = valid.clone();
    expired["iat"] = json!(tokens::now() - 7200);
    expired["exp"] = json!(tokens::now() - 3600);
    let stranger =
        tokens::google_oidc_claims(crate::AUDIENCE, "stranger@evil.iam.gserviceaccount.com");
    let forged = [
        ("missing", None),
        ("other key", Some(tokens::sign(&valid, keys::other()))),
        ("alg confusion", Some(tokens::hs256_with_public_key(&valid, keys::primary()))),
        ("unsigned", Some(tokens::unsigned(&valid))),
        (
            "tampered",
            Some(tokens::tamper_payload(&oidc(PUSH_SA), |c| c["email"] = json!(OPERATOR_SA))),
        ),
        ("bad signature", Some(tokens::tamper_signature(&oidc(PUSH_SA)))),
        ("wrong audience", Some(tokens::sign(&wrong_audience, keys::primary()))),
        ("expired", Some(tokens::sign(&expired, keys::primary()))),
        ("not an allowed caller", Some(tokens::sign(&stranger, keys::primary()))),
        ("garbage", Some("not-a-jwt".to_owned())),
    ];
    for (what, token) in forged {
        let response = h.post(PATH, token.as_deref(), signup_envelope("m-forged", &body)).await;
        let problem = crate::problem(response, 401).await;
        assert_eq!(problem["code"], json!("UNAUTHENTICATED"), "{what}");
    }
    assert!(write_times(&h.db, &request_of(&body)).await.is_empty());
    assert!(
        h.db.get::<Value>(&Ledger::path(onboarding::LEDGER_SCOPE, "m-forged").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_parsing() {
    let h = Harness::start().await;
    let huge = vec![b' '; runtime::limits::PUSH_BODY_LIMIT + 1];
    let response = h.post(PATH, Some(&oidc(PUSH_SA)), huge).await;
    crate::problem(response, 413).await;
    // Large but within the push limit (beyond the 1 MiB default): read, then refused as data.
    let padding = "x".repeat(2 * 1024 * 1024);
    let mut body = signup("big", "personal-big", "owner", true);
    body["padding"] = json!(padding);
    let response = push(&h, signup_envelope("m-big", &body)).await;
    assert_eq!(response.status(), 204, "unknown fields are ignored; the size is fine");
}

/// A sign-up through the Auth emulator's client API: `(uid, id_token, refresh_token)`.
async fn auth_user(h: &Harness, auth: &str, email: &str) -> (String, String, String) {
    let res = h
        .app
        .client
        .post(format!("http://{auth}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=any"))
        .json(&json!({"email": email, "password": "correct horse battery", "returnSecureToken": true}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let field = |f: &str| body[f].as_str().unwrap_or_else(|| panic!("{f} in {body}")).to_owned();
    (field("localId"), field("idToken"), field("refreshToken"))
}

/// A privileged Identity Toolkit call (`Bearer owner`) on the test's project.
async fn admin_call(h: &Harness, auth: &str, method: &str, body: Value) -> Value {
    let res = h
        .app
        .client
        .post(format!(
            "http://{auth}/identitytoolkit.googleapis.com/v1/projects/{}/accounts:{method}",
            h.project
        ))
        .bearer_auth("owner")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{method}: {status} {body}");
    body
}

async fn lookup(h: &Harness, auth: &str, uid: &str) -> Value {
    admin_call(h, auth, "lookup", json!({"localId": [uid]})).await["users"][0].clone()
}

fn claims_of(user: &Value) -> Value {
    serde_json::from_str(user["customAttributes"].as_str().unwrap_or("{}")).unwrap()
}

/// The payload of an (unsigned, emulator) ID token.
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap())
        .unwrap()
}

/// Exchanges a refresh token at the emulator's securetoken endpoint.
async fn refresh(h: &Harness, auth: &str, refresh_token: &str) -> (u16, Value) {
    let res = h
        .app
        .client
        .post(format!("http://{auth}/securetoken.googleapis.com/v1/token?key=any"))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": refresh_token}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Uses an ID token on the emulator's own token check (`accounts:lookup` as the user).
async fn use_id_token(h: &Harness, auth: &str, id_token: &str) -> (u16, Value) {
    let res = h
        .app
        .client
        .post(format!("http://{auth}/identitytoolkit.googleapis.com/v1/accounts:lookup?key=any"))
        .json(&json!({"idToken": id_token}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn seed(h: &Harness, path: store::paths::DocPath, value: Value) {
    h.db.set(&path, &value).await.unwrap();
}

async fn member_exists(h: &Harness, tenant: &str, uid: &str) -> bool {
    h.db.get::<Value>(&store::paths::tenant_member(tenant, uid).unwrap()).await.unwrap().is_some()
}

/// A member of `tenant` with a real Auth account whose claims name the tenant.
async fn member(h: &Harness, auth: &str, tenant: &str, email: &str) -> (String, String, String) {
    let (uid, _, _) = auth_user(h, auth, email).await;
    let claims = json!({"tenant_id": tenant, "role": "member", "plan": "pro"}).to_string();
    admin_call(h, auth, "update", json!({"localId": uid, "customAttributes": claims})).await;
    seed(h, store::paths::tenant_member(tenant, &uid).unwrap(), json!({"role": "member"})).await;
    // Sign in again so the session's tokens carry the claims.
    let res = h
        .app
        .client
        .post(format!(
            "http://{auth}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=any"
        ))
        .json(&json!({"email": email, "password": "correct horse battery", "returnSecureToken": true}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let id = body["idToken"].as_str().unwrap().to_owned();
    assert_eq!(payload(&id)["tenant_id"], tenant);
    (uid, id, body["refreshToken"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn removal_and_suspension_revoke_sessions_and_clear_claims_within_the_callers_reach() {
    let (h, auth) = Harness::with_auth().await;
    for (tenant, owner) in [("acme", "ann"), ("globex", "gus")] {
        seed(
            &h,
            store::paths::tenant(tenant).unwrap(),
            json!({"name": tenant, "status": "active"}),
        )
        .await;
        seed(&h, store::paths::tenant_member(tenant, owner).unwrap(), json!({"role": "admin"}))
            .await;
    }
    let (bob, bob_id, bob_refresh) = member(&h, &auth, "acme", "bob@acme.example").await;
    let (gina, _, _) = member(&h, &auth, "globex", "gina@globex.example").await;
    let acme_admin = id_token(&h.project, "ann", "acme", "admin");
    // `validSince` has a granularity of one second: the tokens above must be older.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // An admin of acme cannot remove a member of globex, even naming globex...
    let body = json!({"tenant_id": "globex", "uid": gina}).to_string().into_bytes();
    let response = h.post("/members/remove", Some(&acme_admin), body).await;
    assert_eq!(crate::problem(response, 403).await["code"], "PERMISSION_DENIED");
    // ...nor with a forged claim naming globex (no membership there).
    let forged = id_token(&h.project, "ann", "globex", "owner");
    let body = json!({"tenant_id": "globex", "uid": gina}).to_string().into_bytes();
    let response = h.post("/members/remove", Some(&forged), body).await;
    crate::problem(response, 403).await;
    // A plain member cannot remove anyone, and a tenant admin cannot suspend.
    let bob_token = id_token(&h.project, &bob, "acme", "admin");
    let body = json!({"tenant_id": "acme", "uid": "ann"}).to_string().into_bytes();
    crate::problem(h.post("/members/remove", Some(&bob_token), body).await, 403).await;
    let body = json!({"tenant_id": "acme"}).to_string().into_bytes();
    crate::problem(h.post("/tenants/suspend", Some(&acme_admin), body).await, 403).await;
    assert!(member_exists(&h, "globex", &gina).await && member_exists(&h, "acme", "ann").await);
    assert_eq!(claims_of(&lookup(&h, &auth, &gina).await)["tenant_id"], "globex");

    // The admin of acme removes Bob: membership gone, claims cleared (others kept), sessions
    // revoked.
    let before = tokens::now();
    let body = json!({"tenant_id": "acme", "uid": bob}).to_string().into_bytes();
    let response = h.post("/members/remove", Some(&acme_admin), body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"removed": true, "revoked": true}));
    assert!(!member_exists(&h, "acme", &bob).await);
    let account = lookup(&h, &auth, &bob).await;
    assert_eq!(claims_of(&account), json!({"plan": "pro"}));
    let valid_since: i64 = account["validSince"].as_str().unwrap().parse().unwrap();
    assert!(valid_since >= before, "{valid_since} < {before}");
    let (status, answer) = use_id_token(&h, &auth, &bob_id).await;
    assert_eq!(status, 400, "the old ID token is refused: {answer}");
    assert!(answer.to_string().contains("TOKEN_EXPIRED"), "{answer}");
    let (status, refreshed) = refresh(&h, &auth, &bob_refresh).await;
    if status == 200 {
        let token = payload(refreshed["id_token"].as_str().unwrap());
        assert_eq!(token.get("tenant_id"), None, "no tenant claim after a refresh: {token}");
        assert_eq!(token.get("role"), None);
        let auth_time = token["auth_time"].as_i64().unwrap();
        assert!(auth_time < valid_since, "the refreshed token belongs to a revoked session");
    } else {
        assert!(refreshed.to_string().contains("TOKEN_EXPIRED"), "{refreshed}");
    }
    // Removing him again: there is nothing to remove.
    let body = json!({"tenant_id": "acme", "uid": bob}).to_string().into_bytes();
    crate::problem(h.post("/members/remove", Some(&acme_admin), body).await, 404).await;

    // An operator suspends globex: status suspended (other fields kept), every member revoked.
    let body = json!({"tenant_id": "globex"}).to_string().into_bytes();
    let response = h.post("/tenants/suspend", Some(&oidc(OPERATOR_SA)), body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["suspended"], true);
    let tenant: Value = h.db.get(&store::paths::tenant("globex").unwrap()).await.unwrap().unwrap();
    assert_eq!((&tenant["name"], &tenant["status"]), (&json!("globex"), &json!("suspended")));
    let account = lookup(&h, &auth, &gina).await;
    assert_eq!(claims_of(&account), json!({"plan": "pro"}));
    assert!(account["validSince"].as_str().unwrap().parse::<i64>().unwrap() >= before);
    // acme is untouched.
    let acme: Value = h.db.get(&store::paths::tenant("acme").unwrap()).await.unwrap().unwrap();
    assert_eq!(acme["status"], "active");
}

#[tokio::test]
async fn a_replayed_sign_up_message_does_not_re_instate_a_removed_member() {
    let h = Harness::start().await;
    let body = signup("rex", "personal-rex", "owner", true);
    let response = push(&h, signup_envelope("m-first", &body)).await;
    assert_eq!(response.status(), 204);
    let req = request_of(&body);
    assert!(raw(&h.db, DocKind::Membership, &req).await.is_some());

    // Rex is removed; an old copy of his sign-up message arrives again under a new message id
    // (a replay, or a publisher retry that outlived the removal).
    h.db.delete(&store::paths::tenant_member("personal-rex", "rex").unwrap()).await.unwrap();
    let letter = dead_lettered(&h, push(&h, signup_envelope("m-replay", &body)).await).await;
    assert!(letter.reason.contains("removed"), "{}", letter.reason);
    assert!(
        raw(&h.db, DocKind::Membership, &req).await.is_none(),
        "the membership is not re-created"
    );
}
