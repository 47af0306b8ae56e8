//! Tenant assignment at sign-up and the sign-in checks, through the hook against the Firestore
//! emulator: invitations (consumed exactly once), verified company domains, blocked domains
//! (environment and Firestore), suspended tenants, removed memberships, role refreshes, and
//! claims too large to send; the invitation reserved at sign-up, made final by the first sign-in,
//! free again when the sign-up never produced a user; the invitee who proves the address later.

use std::time::Duration;

use chrono::{Duration as TimeDelta, Utc};
use domain::tenancy::{DomainClaim, Role, personal_tenant_id};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signup_hook::{
    BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH, INVALID_CLAIMS_MESSAGE, REMOVED_MESSAGE,
    SUSPENDED_MESSAGE,
};
use store::paths;
use store::tenancy::NewInvitation;

use crate::helpers::{Hook, Setup, claims_of, error_of, start};

fn invite(tenant: &str, role: Role) -> NewInvitation {
    NewInvitation {
        tenant_id: tenant.to_owned(),
        role,
        expires_at: Utc::now() + TimeDelta::days(7),
        invited_by: Some("uid-admin".to_owned()),
    }
}

async fn sign_up(hook: &Hook, uid: &str, email: &str, verified: bool) -> (StatusCode, Value) {
    hook.call_signed(BEFORE_CREATE_PATH, &hook.create_claims(uid, email, verified)).await
}

async fn sign_in(hook: &Hook, uid: &str, claims: Value) -> (StatusCode, Value) {
    hook.call_signed(BEFORE_SIGN_IN_PATH, &hook.sign_in_claims(uid, claims)).await
}

#[tokio::test]
async fn an_invitation_assigns_its_tenant_and_role_exactly_once() {
    let hook = start(Setup::default()).await;
    hook.tenancy()
        .put_invitation("invitee@corp.example", &invite("acme", Role::Admin))
        .await
        .unwrap();

    // A verified address (an unproven one never gets an invitation: `attacks.rs`).
    let first = hook.create_claims("uid-a", "Invitee@Corp.example", true);
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &first).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "acme", "role": "admin"}));
    let stored = hook.tenancy().invitation("invitee@corp.example").await.unwrap().unwrap();
    assert_eq!(stored.consumed_by.as_deref(), Some("uid-a"));

    // The provider retrying the same event (same uid) gets the same tenant.
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &first).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "acme", "role": "admin"}));

    // A second account with the same (proven) email does not get the invitation again while
    // the first one holds it.
    let (status, body) = sign_up(&hook, "uid-b", "invitee@corp.example", true).await;
    assert_eq!(
        claims_of(status, &body),
        json!({"tenant_id": personal_tenant_id("uid-b"), "role": "owner"})
    );
    let stored = hook.tenancy().invitation("invitee@corp.example").await.unwrap().unwrap();
    assert_eq!(stored.consumed_by.as_deref(), Some("uid-a"));

    // Announcements say which tenant is new.
    let mut sent = hook.announcements(3, Duration::from_secs(10)).await;
    sent.sort_by_key(|m| m["uid"].as_str().unwrap_or_default().to_owned());
    let by_uid: Vec<(&str, &str, bool)> = sent
        .iter()
        .map(|m| {
            (
                m["uid"].as_str().unwrap(),
                m["tenant_id"].as_str().unwrap(),
                m["tenant_is_new"].as_bool().unwrap(),
            )
        })
        .collect();
    let personal_b = personal_tenant_id("uid-b");
    assert_eq!(
        by_uid,
        [("uid-a", "acme", false), ("uid-a", "acme", false), ("uid-b", personal_b.as_str(), true)]
    );
}

#[tokio::test]
async fn expired_invitations_are_ignored() {
    let hook = start(Setup::default()).await;
    let mut expired = invite("acme", Role::Member);
    expired.expires_at = Utc::now() - TimeDelta::minutes(1);
    hook.tenancy().put_invitation("late@corp.example", &expired).await.unwrap();
    let (status, body) = sign_up(&hook, "uid-late", "late@corp.example", true).await;
    assert_eq!(claims_of(status, &body)["role"], "owner");
    assert_eq!(
        hook.tenancy().invitation("late@corp.example").await.unwrap().unwrap().consumed_by,
        None
    );
}

#[tokio::test]
async fn emails_that_cannot_name_a_document_still_sign_up() {
    let hook = start(Setup::default()).await;
    for (uid, email) in
        [("uid-s", "a/b@example.com"), ("uid-d", "x@foo/bar.example"), ("uid-r", "__a@b__")]
    {
        let (status, body) = sign_up(&hook, uid, email, true).await;
        assert_eq!(claims_of(status, &body)["tenant_id"], personal_tenant_id(uid), "{email}");
    }
}

#[tokio::test]
async fn a_verified_company_domain_makes_members() {
    let hook = start(Setup::default()).await;
    let claim = DomainClaim { tenant_id: "corp".to_owned(), verified: true };
    hook.tenancy().put_domain_claim("corp.example", &claim).await.unwrap();

    let (status, body) = sign_up(&hook, "uid-v", "bob@corp.example", true).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "corp", "role": "member"}));

    // An unverified password sign-up with the company's domain gets its own tenant...
    let (status, body) = sign_up(&hook, "uid-u", "mallory@corp.example", false).await;
    assert_eq!(claims_of(status, &body)["tenant_id"], personal_tenant_id("uid-u"));

    // ...while an SSO sign-in vouches for the email.
    let mut sso = hook.create_claims("uid-s", "carol@corp.example", false);
    sso["sign_in_method"] = json!("saml.corp");
    let (status, body) = hook.call_signed(BEFORE_CREATE_PATH, &sso).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "corp", "role": "member"}));
}

#[tokio::test]
async fn blocked_domains_from_config_and_firestore_are_refused_with_a_visible_message() {
    // No cache: the hook's start-up warm-up may read the config document before this test
    // writes it, and a cached empty list would hide the write for the cache's lifetime.
    let hook = start(
        Setup::default()
            .var("HEARTH_BLOCKED_EMAIL_DOMAINS", "spam.example")
            .var("HEARTH_TENANCY_CACHE_TTL_SECS", "0"),
    )
    .await;
    hook.tenancy().put_blocked_domains(&["Trash.Example".to_owned()]).await.unwrap();

    for (email, domain) in [
        ("a@spam.example", "spam.example"),
        ("b@mail.spam.example", "mail.spam.example"),
        ("c@TRASH.example", "trash.example"),
    ] {
        let (status, body) = sign_up(&hook, "uid-x", email, true).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{email}: {body}");
        assert_eq!(
            error_of(&body),
            (
                "PERMISSION_DENIED".to_owned(),
                format!("Sign-ups with an email address at {domain} are not allowed.")
            )
        );
        assert_eq!(body.as_object().unwrap().len(), 1, "only `error`: {body}");
    }
    // A blocked domain wins over an invitation, which stays pending.
    hook.tenancy().put_invitation("d@spam.example", &invite("acme", Role::Admin)).await.unwrap();
    let (status, _) = sign_up(&hook, "uid-d", "d@spam.example", true).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        hook.tenancy().invitation("d@spam.example").await.unwrap().unwrap().consumed_by,
        None
    );

    let (status, _) = sign_up(&hook, "uid-ok", "ok@notspam.example", true).await;
    assert_eq!(status, StatusCode::OK);
    let sent = hook.announcements(1, Duration::from_secs(5)).await;
    assert_eq!(sent.len(), 1, "blocked sign-ups are not announced: {sent:?}");
    assert_eq!(sent[0]["uid"], "uid-ok");
}

#[tokio::test]
async fn sign_in_is_blocked_while_the_tenant_is_suspended() {
    let hook = start(Setup::default().var("HEARTH_TENANCY_CACHE_TTL_SECS", "0")).await;
    let db = hook.db();
    db.set(&paths::tenant("acme").unwrap(), &json!({"name": "Acme", "status": "suspended"}))
        .await
        .unwrap();
    db.set(&paths::tenant_member("acme", "uid-m").unwrap(), &json!({"role": "member"}))
        .await
        .unwrap();
    let claims = json!({"tenant_id": "acme", "role": "member"});

    let (status, body) = sign_in(&hook, "uid-m", claims.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_of(&body), ("PERMISSION_DENIED".to_owned(), SUSPENDED_MESSAGE.to_owned()));

    db.set(&paths::tenant("acme").unwrap(), &json!({"name": "Acme", "status": "active"}))
        .await
        .unwrap();
    let (status, body) = sign_in(&hook, "uid-m", claims).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})), "nothing to change");
}

#[tokio::test]
async fn sign_in_is_blocked_once_an_onboarded_membership_is_removed() {
    let hook = start(Setup::default().var("HEARTH_TENANCY_CACHE_TTL_SECS", "0")).await;
    let db = hook.db();
    let claims = json!({"tenant_id": "acme", "role": "member"});

    // Right after sign-up onboarding has not run: no membership, no user root. Not blocked.
    let (status, body) = sign_in(&hook, "uid-r", claims.clone()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    // Onboarded into another tenant (a move in progress): not this tenant's removal.
    db.set(&paths::user("uid-r").unwrap(), &json!({"tenant_id": "other", "onboarded": true}))
        .await
        .unwrap();
    let (status, _) = sign_in(&hook, "uid-r", claims.clone()).await;
    assert_eq!(status, StatusCode::OK);

    // Onboarded into this tenant, membership gone: removed.
    db.set(&paths::user("uid-r").unwrap(), &json!({"tenant_id": "acme", "onboarded": true}))
        .await
        .unwrap();
    let (status, body) = sign_in(&hook, "uid-r", claims.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_of(&body), ("PERMISSION_DENIED".to_owned(), REMOVED_MESSAGE.to_owned()));

    // Re-added: allowed again.
    db.set(&paths::tenant_member("acme", "uid-r").unwrap(), &json!({"role": "member"}))
        .await
        .unwrap();
    let (status, body) = sign_in(&hook, "uid-r", claims).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
}

#[tokio::test]
async fn onboarding_landing_between_the_membership_and_root_reads_is_not_a_removal() {
    // Caching on (the default). The sign-in that follows a sign-up reads the membership first;
    // onboarding can commit the membership and the root together right after that read, so the
    // root then says "onboarded into acme" while the membership answer (here: cached) predates
    // it. That is not a removal: the refusal is confirmed with a fresh membership read.
    let hook = start(Setup::default()).await;
    let db = hook.db();
    assert!(hook.tenancy().membership("acme", "uid-race").await.unwrap().is_none());
    db.set(&paths::tenant_member("acme", "uid-race").unwrap(), &json!({"role": "member"}))
        .await
        .unwrap();
    db.set(&paths::user("uid-race").unwrap(), &json!({"tenant_id": "acme", "onboarded": true}))
        .await
        .unwrap();
    let claims = json!({"tenant_id": "acme", "role": "member"});
    let (status, body) = sign_in(&hook, "uid-race", claims.clone()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})), "a fresh member is let in");

    // A real removal is still refused, with the cache on.
    db.delete(&paths::tenant_member("acme", "uid-race").unwrap()).await.unwrap();
    hook.tenancy().forget_membership("acme", "uid-race").await;
    let (status, body) = sign_in(&hook, "uid-race", claims).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_of(&body), ("PERMISSION_DENIED".to_owned(), REMOVED_MESSAGE.to_owned()));
}

#[tokio::test]
async fn a_changed_role_refreshes_the_claims_at_sign_in() {
    let hook = start(Setup::default()).await;
    let db = hook.db();
    db.set(&paths::tenant("acme").unwrap(), &json!({"status": "active"})).await.unwrap();
    db.set(&paths::tenant_member("acme", "uid-p").unwrap(), &json!({"role": "admin"}))
        .await
        .unwrap();

    let (status, body) =
        sign_in(&hook, "uid-p", json!({"tenant_id": "acme", "role": "member", "plan": "pro"}))
            .await;
    assert_eq!(
        claims_of(status, &body),
        json!({"tenant_id": "acme", "role": "admin", "plan": "pro"}),
        "the role is refreshed and other claims are kept"
    );

    // A user without claims yet (from before the hook) gets them from the provisioned tenant.
    db.set(&paths::user("uid-p").unwrap(), &json!({"tenant_id": "acme", "onboarded": true}))
        .await
        .unwrap();
    let (status, body) = sign_in(&hook, "uid-p", Value::Null).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "acme", "role": "admin"}));

    // Claims naming something no document can be (set by hand through the Admin SDK): nothing
    // to check, nothing to change, and no 5xx.
    let (status, body) = sign_in(&hook, "uid-p", json!({"tenant_id": "a/b", "role": "x"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    // Nobody knows this user at all: nothing to change.
    let (status, body) = sign_in(&hook, "uid-unknown", Value::Null).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
}

#[tokio::test]
async fn claims_over_1000_bytes_are_refused_and_the_invitation_stays_pending() {
    let hook = start(Setup::default()).await;
    let huge_tenant = "t".repeat(1000);
    hook.tenancy()
        .put_invitation("big@corp.example", &invite(&huge_tenant, Role::Member))
        .await
        .unwrap();

    let (status, body) = sign_up(&hook, "uid-big", "big@corp.example", true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_of(&body),
        ("FAILED_PRECONDITION".to_owned(), INVALID_CLAIMS_MESSAGE.to_owned())
    );
    assert!(!body.to_string().contains(&huge_tenant), "no claims are sent");
    assert_eq!(
        hook.tenancy().invitation("big@corp.example").await.unwrap().unwrap().consumed_by,
        None
    );
    assert!(hook.announcements(1, Duration::from_millis(500)).await.is_empty());

    // Existing claims count too: a refresh that would overflow is refused as well.
    hook.db()
        .set(&paths::tenant_member("acme", "uid-c").unwrap(), &json!({"role": "admin"}))
        .await
        .unwrap();
    let fat = json!({"tenant_id": "acme", "role": "member", "blob": "b".repeat(980)});
    let (status, body) = sign_in(&hook, "uid-c", fat).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body).1, INVALID_CLAIMS_MESSAGE);
}

/// A sign-in event of `uid` with `email` (verified or not) and the given claims.
fn sign_in_as(hook: &Hook, uid: &str, email: &str, verified: bool, claims: Value) -> Value {
    let mut event = hook.sign_in_claims(uid, claims);
    event["user_record"]["email"] = json!(email);
    event["user_record"]["email_verified"] = json!(verified);
    event
}

#[tokio::test]
async fn an_invitation_taken_by_a_sign_up_that_never_became_a_user_can_be_used_again() {
    let hook = start(Setup::default().var("HEARTH_INVITATION_HOLD_SECS", "1")).await;
    hook.tenancy().put_invitation("ann@corp.example", &invite("acme", Role::Admin)).await.unwrap();

    // The hook answers for uid-ghost, but the creation is then aborted (another blocking check
    // refused it): no user, no sign-in.
    let (status, body) = sign_up(&hook, "uid-ghost", "ann@corp.example", true).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "acme", "role": "admin"}));
    let held = hook.tenancy().invitation("ann@corp.example").await.unwrap().unwrap();
    assert_eq!(held.consumed_by.as_deref(), Some("uid-ghost"));
    assert!(held.reserved_until.is_some(), "only reserved before the user exists");

    // Once the reservation lapses, the invitee's next (proven) sign-up gets the invitation.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = sign_up(&hook, "uid-ann", "ann@corp.example", true).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "acme", "role": "admin"}));

    // Her first sign-in (the user exists now) makes it final...
    let event = sign_in_as(
        &hook,
        "uid-ann",
        "ann@corp.example",
        true,
        json!({"tenant_id": "acme", "role": "admin"}),
    );
    let (status, body) = hook.call_signed(BEFORE_SIGN_IN_PATH, &event).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let stored = hook.tenancy().invitation("ann@corp.example").await.unwrap().unwrap();
    assert_eq!(stored.consumed_by.as_deref(), Some("uid-ann"));
    assert_eq!(stored.reserved_until, None);

    // ...so no later sign-up takes it, however long after.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = sign_up(&hook, "uid-late", "ann@corp.example", true).await;
    assert_eq!(claims_of(status, &body)["tenant_id"], personal_tenant_id("uid-late"));
}

#[tokio::test]
async fn an_invitee_who_signed_up_unverified_joins_once_the_email_is_verified() {
    let hook = start(Setup::default()).await;
    hook.tenancy().put_invitation("bo@corp.example", &invite("acme", Role::Admin)).await.unwrap();
    let personal = personal_tenant_id("uid-bo");
    let (status, body) = sign_up(&hook, "uid-bo", "bo@corp.example", false).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": personal, "role": "owner"}));

    // Signing in before verifying changes nothing.
    let own = json!({"tenant_id": personal, "role": "owner"});
    let event = sign_in_as(&hook, "uid-bo", "bo@corp.example", false, own.clone());
    let (status, body) = hook.call_signed(BEFORE_SIGN_IN_PATH, &event).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    // After verifying, the next sign-in moves Bo into acme with the invitation's role, and
    // onboarding is told to provision the membership.
    let event = sign_in_as(&hook, "uid-bo", "bo@corp.example", true, own);
    let (status, body) = hook.call_signed(BEFORE_SIGN_IN_PATH, &event).await;
    assert_eq!(claims_of(status, &body), json!({"tenant_id": "acme", "role": "admin"}));
    let stored = hook.tenancy().invitation("bo@corp.example").await.unwrap().unwrap();
    assert_eq!(stored.consumed_by.as_deref(), Some("uid-bo"));
    assert_eq!(stored.reserved_until, None, "the user exists: final at once");
    let sent = hook.announcements(2, Duration::from_secs(10)).await;
    let moved: Vec<_> = sent.iter().filter(|m| m["tenant_id"] == "acme").collect();
    assert_eq!(moved.len(), 1, "{sent:?}");
    assert_eq!(moved[0]["uid"], "uid-bo");
    assert_eq!(moved[0]["role"], "admin");
    assert_eq!(moved[0]["tenant_is_new"], false);

    // A member of another tenant is never pulled out of it by a sign-in.
    hook.tenancy().put_invitation("cy@corp.example", &invite("acme", Role::Admin)).await.unwrap();
    let event = sign_in_as(
        &hook,
        "uid-cy",
        "cy@corp.example",
        true,
        json!({"tenant_id": "corp", "role": "member"}),
    );
    let (status, body) = hook.call_signed(BEFORE_SIGN_IN_PATH, &event).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(
        hook.tenancy().invitation("cy@corp.example").await.unwrap().unwrap().consumed_by,
        None
    );
}
