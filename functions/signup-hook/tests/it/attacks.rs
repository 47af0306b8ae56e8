//! Hostile callers of the sign-up hook, gathered: forged, unsigned, expired and misdirected
//! blocking JWTs (refused with 401, nothing announced), an invitation hijack by a sign-up that
//! cannot prove the invitee's address, and a replayed sign-up event that must not take an
//! invitation a second time. Elsewhere: malformed and oversized bodies (`bad_input.rs`), the
//! hook's own unsigned-token mode refused on Cloud Run and Lambda (`runtime::config` unit tests).

use std::time::Duration;

use chrono::{Duration as TimeDelta, Utc};
use domain::tenancy::{Role, personal_tenant_id};
use jsonwebtoken::{Algorithm, Header};
use reqwest::StatusCode;
use serde_json::json;
use signup_hook::{BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH};
use store::tenancy::NewInvitation;
use testkit::keys::{other, primary};
use testkit::tokens::{self, now};

use crate::helpers::{Setup, claims_of, error_of, start};

fn invite(tenant: &str, role: Role) -> NewInvitation {
    NewInvitation {
        tenant_id: tenant.to_owned(),
        role,
        expires_at: Utc::now() + TimeDelta::days(7),
        invited_by: Some("uid-admin".to_owned()),
    }
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
async fn an_unproven_sign_up_cannot_hijack_an_invitation() {
    let hook = start(Setup::default()).await;
    hook.tenancy()
        .put_invitation("newhire@acme.example", &invite("acme", Role::Admin))
        .await
        .unwrap();

    // Anyone can type the invitee's address into a password sign-up: no tenant, no role, and
    // the invitation is left untouched for the real invitee.
    let mallory = hook.create_claims("uid-mallory", "NewHire@acme.example", false);
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &mallory).await;
    assert_eq!(
        claims_of(status, &body),
        json!({"tenant_id": personal_tenant_id("uid-mallory"), "role": "owner"})
    );
    let stored = hook.tenancy().invitation("newhire@acme.example").await.unwrap().unwrap();
    assert_eq!(stored.consumed_by, None, "the invitation stays pending");

    // Her later sign-ins, still unverified, do not take it either.
    let mut sign_in = hook.sign_in_claims(
        "uid-mallory",
        json!({"tenant_id": personal_tenant_id("uid-mallory"), "role": "owner"}),
    );
    sign_in["user_record"]["email"] = json!("newhire@acme.example");
    sign_in["user_record"]["email_verified"] = json!(false);
    let (status, body) = hook.call_signed(BEFORE_SIGN_IN_PATH, &sign_in).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let stored = hook.tenancy().invitation("newhire@acme.example").await.unwrap().unwrap();
    assert_eq!(stored.consumed_by, None);

    // The invitee proves the address (an email-link sign-up) and gets the invitation.
    let mut link = hook.create_claims("uid-newhire", "newhire@acme.example", false);
    link["sign_in_method"] = json!("emailLink");
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &link).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "acme", "role": "admin"}));
    let stored = hook.tenancy().invitation("newhire@acme.example").await.unwrap().unwrap();
    assert_eq!(stored.consumed_by.as_deref(), Some("uid-newhire"));

    let sent = hook.announcements(2, Duration::from_secs(10)).await;
    let to_acme: Vec<_> = sent.iter().filter(|m| m["tenant_id"] == "acme").collect();
    assert_eq!(to_acme.len(), 1, "{sent:?}");
    assert_eq!(to_acme[0]["uid"], "uid-newhire");
}

#[tokio::test]
async fn a_replayed_sign_up_event_of_another_uid_does_not_take_a_confirmed_invitation() {
    let hook = start(Setup::default()).await;
    hook.tenancy().put_invitation("ada@acme.example", &invite("acme", Role::Member)).await.unwrap();
    let ada = hook.create_claims("uid-ada", "ada@acme.example", true);
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &ada).await;
    assert_eq!(claims_of(status, &body)["tenant_id"], "acme");
    // Her first sign-in makes the invitation final.
    let mut sign_in =
        hook.sign_in_claims("uid-ada", json!({"tenant_id": "acme", "role": "member"}));
    sign_in["user_record"]["email"] = json!("ada@acme.example");
    sign_in["user_record"]["email_verified"] = json!(true);
    let (status, _) = hook.call_signed(BEFORE_SIGN_IN_PATH, &sign_in).await;
    assert_eq!(status, StatusCode::OK);

    // The same event replayed gets the same answer and changes nothing...
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &ada).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "acme", "role": "member"}));
    // ...and the same event rewritten for another uid (a new, validly signed event) does not
    // get the invitation.
    let mut other = ada.clone();
    other["sub"] = json!("uid-copy");
    other["user_record"]["uid"] = json!("uid-copy");
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &other).await;
    assert_eq!(claims_of(status, &body)["tenant_id"], personal_tenant_id("uid-copy"));
    let stored = hook.tenancy().invitation("ada@acme.example").await.unwrap().unwrap();
    assert_eq!(stored.consumed_by.as_deref(), Some("uid-ada"));
    assert_eq!(stored.reserved_until, None, "final");
}
