//! `POST /provision`: repair by a tenant admin and by an operator, refused for plain members
//! (whatever their token claims), across tenants, without or with forged tokens, and for
//! malformed or oversized bodies; a partly provisioned user is completed.

use domain::onboarding::{DocKind, ProvisionRequest};
use domain::tenancy::Role;
use serde_json::{Value, json};
use store::onboarding::Onboarding;
use store::paths;
use testkit::{keys, tokens};

use crate::{Harness, OPERATOR_SA, id_token, oidc, problem, raw, write_times};

const PATH: &str = "/provision";

fn member(uid: &str, tenant: &str, role: Role) -> ProvisionRequest {
    ProvisionRequest {
        uid: uid.to_owned(),
        email: Some(format!("{uid}@example.com")),
        tenant_id: tenant.to_owned(),
        role,
        tenant_is_new: false,
    }
}

/// Tenant `acme` (owned by `boss`) with `admin` (admin) and `pleb` (member), fully provisioned,
/// and `target`, a member whose secrets and preferences were lost.
async fn acme(h: &Harness) -> ProvisionRequest {
    Onboarding::new(&h.db)
        .provision(&ProvisionRequest { tenant_is_new: true, ..member("boss", "acme", Role::Owner) })
        .await
        .unwrap();
    Onboarding::new(&h.db).provision(&member("admin", "acme", Role::Admin)).await.unwrap();
    Onboarding::new(&h.db).provision(&member("pleb", "acme", Role::Member)).await.unwrap();
    let target = member("target", "acme", Role::Member);
    Onboarding::new(&h.db).provision(&target).await.unwrap();
    for kind in [DocKind::AlpacaSecrets, DocKind::Preferences] {
        h.db.delete(&store::onboarding::doc_path(kind, &target).unwrap()).await.unwrap();
    }
    target
}

fn body(uid: &str, tenant: &str, role: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"uid": uid, "tenant_id": tenant, "role": role, "email": format!("{uid}@example.com")}))
        .unwrap()
}

async fn report(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_tenant_admin_completes_a_partly_provisioned_member() {
    let h = Harness::start().await;
    let target = acme(&h).await;
    let before = write_times(&h.db, &target).await;
    let token = id_token(&h.project, "admin", "acme", "admin");

    let answer = report(h.post(PATH, Some(&token), body("target", "acme", "member")).await).await;
    assert_eq!(answer["created"], json!(["alpaca_secrets", "preferences"]));
    assert_eq!(
        answer["existing"],
        json!(["membership", "user_root", "account_snapshot", "trading_status"])
    );
    let after = write_times(&h.db, &target).await;
    assert_eq!(after.len(), 7, "the six user documents and the tenant");
    for kind in
        [DocKind::Tenant, DocKind::Membership, DocKind::AccountSnapshot, DocKind::TradingStatus]
    {
        assert_eq!(after[&kind], before[&kind], "{kind:?} untouched");
    }
    let state = store::onboarding::Onboarding::new(&h.db)
        .onboarding_state("target")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.created, [DocKind::AlpacaSecrets, DocKind::Preferences]);

    // Again: nothing left to do, nothing written.
    let answer = report(h.post(PATH, Some(&token), body("target", "acme", "member")).await).await;
    assert_eq!(answer["created"], json!([]));
    assert_eq!(write_times(&h.db, &target).await, after);
}

#[tokio::test]
async fn an_owner_may_restore_a_lost_membership_with_any_role_but_an_admin_may_not_grant_owner() {
    let h = Harness::start().await;
    let target = acme(&h).await;
    h.db.delete(&paths::tenant_member("acme", "target").unwrap()).await.unwrap();

    let admin = id_token(&h.project, "admin", "acme", "admin");
    let refused = h.post(PATH, Some(&admin), body("target", "acme", "owner")).await;
    let p = problem(refused, 403).await;
    assert_eq!(p["detail"], json!("you cannot grant a role above your own"));

    // The root still says acme, so the owner may restore the membership.
    let owner = id_token(&h.project, "boss", "acme", "owner");
    let answer = report(h.post(PATH, Some(&owner), body("target", "acme", "admin")).await).await;
    assert!(answer["created"].as_array().unwrap().contains(&json!("membership")));
    let membership =
        h.db.get::<Value>(&paths::tenant_member("acme", "target").unwrap()).await.unwrap().unwrap();
    assert_eq!(membership["role"], json!("admin"));
    assert!(raw(&h.db, DocKind::Membership, &target).await.is_some());
}

#[tokio::test]
async fn an_operator_repairs_any_user_and_may_recreate_a_personal_tenant() {
    let h = Harness::start().await;
    let answer = report(
        h.post(
            PATH,
            Some(&oidc(OPERATOR_SA)),
            serde_json::to_vec(&json!({
                "uid": "solo", "tenant_id": "personal-solo", "role": "owner",
                "email": "solo@example.com", "tenant_is_new": true
            }))
            .unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(answer["created"].as_array().unwrap().len(), 7);
    assert_eq!(answer["existing"], json!([]));
    let tenant =
        h.db.get::<Value>(&paths::tenant("personal-solo").unwrap()).await.unwrap().unwrap();
    assert_eq!(tenant["owner_uid"], json!("solo"));

    // Without tenant_is_new, a missing tenant is not invented.
    let missing =
        h.post(PATH, Some(&oidc(OPERATOR_SA)), body("newbie", "ghost-corp", "member")).await;
    let p = problem(missing, 400).await;
    assert_eq!(p["code"], json!("FAILED_PRECONDITION"));
    assert!(p["detail"].as_str().unwrap().contains("ghost-corp does not exist"));
    assert!(h.db.get::<Value>(&paths::user("newbie").unwrap()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_plain_member_is_refused_even_with_an_admin_claim() {
    let h = Harness::start().await;
    let target = acme(&h).await;
    let before = write_times(&h.db, &target).await;
    // The role claim says admin; the membership document says member: the document wins.
    let token = id_token(&h.project, "pleb", "acme", "admin");
    let p = problem(h.post(PATH, Some(&token), body("target", "acme", "member")).await, 403).await;
    assert_eq!(p["code"], json!("PERMISSION_DENIED"));
    assert_eq!(p["detail"], json!("only owners and admins of the tenant can repair its users"));
    // A user with no membership at all.
    let token = id_token(&h.project, "drifter", "acme", "owner");
    problem(h.post(PATH, Some(&token), body("target", "acme", "member")).await, 403).await;
    assert_eq!(write_times(&h.db, &target).await, before);
}

#[tokio::test]
async fn cross_tenant_repairs_are_refused() {
    let h = Harness::start().await;
    acme(&h).await;
    Onboarding::new(&h.db)
        .provision(&ProvisionRequest {
            tenant_is_new: true,
            ..member("rival", "globex", Role::Owner)
        })
        .await
        .unwrap();
    let outsider = member("outsider", "globex", Role::Member);
    Onboarding::new(&h.db).provision(&outsider).await.unwrap();
    h.db.delete(&store::onboarding::doc_path(DocKind::Preferences, &outsider).unwrap())
        .await
        .unwrap();
    let admin = id_token(&h.project, "admin", "acme", "admin");

    // Another tenant in the body.
    let p =
        problem(h.post(PATH, Some(&admin), body("outsider", "globex", "member")).await, 403).await;
    assert_eq!(p["detail"], json!("you can only repair users of your own tenant"));
    // Own tenant in the body, but the user belongs to another tenant.
    let p =
        problem(h.post(PATH, Some(&admin), body("outsider", "acme", "member")).await, 403).await;
    assert_eq!(p["detail"], json!("the user is not a member of this tenant"));
    // A user unknown to the tenant cannot be pulled in.
    problem(h.post(PATH, Some(&admin), body("stranger", "acme", "member")).await, 403).await;
    // An owner of globex claiming acme in a forged token: the signature fails first.
    let mut claims = tokens::firebase_id_claims(&h.project, "rival");
    claims["tenant_id"] = json!("acme");
    let forged = tokens::sign(&claims, keys::other());
    problem(h.post(PATH, Some(&forged), body("target", "acme", "member")).await, 401).await;

    assert!(
        h.db.get::<Value>(&paths::tenant_member("acme", "outsider").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.db.get::<Value>(&paths::tenant_member("acme", "stranger").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(raw(&h.db, DocKind::Preferences, &outsider).await.is_none(), "not repaired");
}

#[tokio::test]
async fn tenant_admins_cannot_create_tenants() {
    let h = Harness::start().await;
    acme(&h).await;
    let admin = id_token(&h.project, "boss", "acme", "owner");
    let b = serde_json::to_vec(
        &json!({"uid": "target", "tenant_id": "acme", "role": "member", "tenant_is_new": true}),
    )
    .unwrap();
    let p = problem(h.post(PATH, Some(&admin), b).await, 403).await;
    assert_eq!(p["detail"], json!("only operators can create tenants"));
}

#[tokio::test]
async fn unauthenticated_malformed_and_oversized_requests_are_refused() {
    let h = Harness::start().await;
    let target = acme(&h).await;
    let before = write_times(&h.db, &target).await;
    let admin = id_token(&h.project, "admin", "acme", "admin");

    problem(h.post(PATH, None, body("target", "acme", "member")).await, 401).await;
    let unsigned = tokens::unsigned(&tokens::firebase_id_claims(&h.project, "admin"));
    problem(h.post(PATH, Some(&unsigned), body("target", "acme", "member")).await, 401).await;
    let stranger = tokens::sign(
        &tokens::google_oidc_claims(crate::AUDIENCE, "stranger@evil.iam.gserviceaccount.com"),
        keys::primary(),
    );
    problem(h.post(PATH, Some(&stranger), body("target", "acme", "member")).await, 401).await;

    for bad in [
        b"{not json".to_vec(),
        br#"{"uid":"target","tenant_id":"acme"}"#.to_vec(),
        br#"{"uid":"target","tenant_id":"acme","role":"god"}"#.to_vec(),
        br#"{"uid":"target","tenant_id":"acme","role":"member","extra":true}"#.to_vec(),
        br#"{"uid":"a/b","tenant_id":"acme","role":"member"}"#.to_vec(),
        br#"{"uid":"target","tenant_id":"__x__","role":"member"}"#.to_vec(),
    ] {
        let p = problem(h.post(PATH, Some(&admin), bad.clone()).await, 400).await;
        assert_eq!(p["code"], json!("INVALID_ARGUMENT"), "{}", String::from_utf8_lossy(&bad));
    }
    let oversized = vec![b' '; 2 * 1024 * 1024];
    problem(h.post(PATH, Some(&admin), oversized).await, 413).await;
    assert_eq!(write_times(&h.db, &target).await, before);
}
