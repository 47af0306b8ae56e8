//! Tenancy lookups and invitation consumption against the emulator: exactly-once consumption
//! under concurrency, idempotent retries, expiry, and the TTL caches of the warm path.

use chrono::{Duration as TimeDelta, Utc};
use domain::tenancy::{DomainClaim, Role};
use firestore::gcloud_sdk::google::firestore::v1::GetDocumentRequest;
use firestore::gcloud_sdk::google::firestore::v1::value::ValueType;
use serde_json::json;
use std::time::Duration;
use store::paths;
use store::tenancy::{
    CacheConfig, ConsumeError, Membership, NewInvitation, Tenancy, TenantStatus, UserRoot,
};

fn invitation(tenant: &str, role: Role, expires_in: TimeDelta) -> NewInvitation {
    NewInvitation {
        tenant_id: tenant.to_owned(),
        role,
        expires_at: Utc::now() + expires_in,
        invited_by: Some("admin-1".to_owned()),
    }
}

/// The raw Firestore value type of `field` in the document at `path`.
async fn raw_field(db: &store::Db, path: &paths::DocPath, field: &str) -> Option<ValueType> {
    let mut client = db.firestore().await.unwrap().client().get();
    let doc = client
        .get_document(GetDocumentRequest {
            name: path.full_name(db.documents_root()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    doc.fields.get(field).and_then(|v| v.value_type.clone())
}

#[tokio::test]
async fn invitations_are_keyed_by_lower_cased_email_with_timestamp_fields() {
    let db = crate::fresh_db().await;
    let tenancy = Tenancy::new(&db);
    let new = invitation("acme", Role::Admin, TimeDelta::hours(2));
    tenancy.put_invitation("Ada@Example.COM", &new).await.unwrap();

    let got = tenancy.invitation("ada@example.com").await.unwrap().expect("stored");
    assert_eq!(got.tenant_id, "acme");
    assert_eq!(got.role, Role::Admin);
    assert_eq!(got.consumed_by, None);
    assert_eq!(got.expires_at.timestamp_micros(), new.expires_at.timestamp_micros());
    assert!(tenancy.invitation("  ADA@example.com ").await.unwrap().is_some());
    assert!(tenancy.invitation("bob@example.com").await.unwrap().is_none());

    let path = Tenancy::invitation_path("ada@example.com").unwrap();
    assert_eq!(path.relative(), "invitations/ada@example.com");
    assert!(matches!(
        raw_field(&db, &path, "expires_at").await,
        Some(ValueType::TimestampValue(_))
    ));
}

#[tokio::test]
async fn an_invitation_is_consumed_exactly_once_under_concurrency() {
    let db = crate::fresh_db().await;
    let tenancy = Tenancy::new(&db);
    tenancy
        .put_invitation("team@corp.example", &invitation("corp", Role::Member, TimeDelta::days(1)))
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for i in 0..5 {
        let tenancy = tenancy.clone();
        tasks.push(tokio::spawn(async move {
            let uid = format!("uid-{i}");
            (uid.clone(), tenancy.consume_invitation("team@corp.example", &uid).await)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (uid, Ok(consumed)) => {
                assert!(consumed.first_time);
                assert_eq!(consumed.invitation.consumed_by.as_deref(), Some(uid.as_str()));
                winners.push(uid);
            }
            (_, Err(ConsumeError::AlreadyConsumed { by })) => losers.push(by),
            (uid, Err(other)) => panic!("{uid}: unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one consumer wins: {winners:?}");
    assert_eq!(losers.len(), 4);
    assert!(losers.iter().all(|by| by == &winners[0]), "losers name the winner: {losers:?}");

    // The winner retrying is idempotent; the stored document says who and when.
    let again = tenancy.consume_invitation("TEAM@corp.example", &winners[0]).await.unwrap();
    assert!(!again.first_time);
    assert_eq!(again.invitation.tenant_id, "corp");
    let stored = tenancy.invitation("team@corp.example").await.unwrap().unwrap();
    assert_eq!(stored.consumed_by.as_deref(), Some(winners[0].as_str()));
    let path = Tenancy::invitation_path("team@corp.example").unwrap();
    assert!(matches!(
        raw_field(&db, &path, "consumed_at").await,
        Some(ValueType::TimestampValue(_))
    ));
    assert_eq!(
        raw_field(&db, &path, "invited_by").await,
        Some(ValueType::StringValue("admin-1".to_owned())),
        "the other fields survive consumption"
    );
}

#[tokio::test]
async fn expired_and_missing_invitations_are_not_consumed() {
    let db = crate::fresh_db().await;
    let tenancy = Tenancy::new(&db);
    tenancy
        .put_invitation("late@x.example", &invitation("t", Role::Member, TimeDelta::seconds(-5)))
        .await
        .unwrap();
    assert!(matches!(
        tenancy.consume_invitation("late@x.example", "u1").await,
        Err(ConsumeError::Expired { .. })
    ));
    assert_eq!(tenancy.invitation("late@x.example").await.unwrap().unwrap().consumed_by, None);
    assert!(matches!(
        tenancy.consume_invitation("nobody@x.example", "u1").await,
        Err(ConsumeError::NotFound)
    ));
    // An email that cannot name a document has no invitation (and is not an error).
    assert_eq!(tenancy.invitation("a/b@x.example").await.unwrap(), None);
    assert_eq!(tenancy.domain_claim("x/y.example").await.unwrap(), None);
    assert_eq!(tenancy.tenant_status("a/b").await.unwrap(), None);
    assert_eq!(tenancy.membership("t", "u/1").await.unwrap(), None);
    assert_eq!(tenancy.user_root("..").await.unwrap(), None);
    assert!(matches!(
        tenancy.consume_invitation("a/b@x.example", "u1").await,
        Err(ConsumeError::NotFound)
    ));
    assert!(matches!(
        tenancy.consume_invitation("late@x.example", "").await,
        Err(ConsumeError::Store(store::Error::Invalid(_)))
    ));
}

#[tokio::test]
async fn lookups_read_the_documents_the_hook_needs() {
    let db = crate::fresh_db().await;
    let tenancy = Tenancy::with_cache(&db, CacheConfig::with_ttl(Duration::ZERO));

    assert!(tenancy.blocked_domains().await.unwrap().is_empty(), "no config document yet");
    tenancy.put_blocked_domains(&[" Spam.Example ".to_owned(), String::new()]).await.unwrap();
    assert_eq!(tenancy.blocked_domains().await.unwrap().as_ref(), ["spam.example".to_owned()]);

    assert_eq!(tenancy.domain_claim("corp.example").await.unwrap(), None);
    let claim = DomainClaim { tenant_id: "corp".to_owned(), verified: true };
    tenancy.put_domain_claim("Corp.Example", &claim).await.unwrap();
    assert_eq!(tenancy.domain_claim("corp.EXAMPLE").await.unwrap(), Some(claim));

    assert_eq!(tenancy.tenant_status("t1").await.unwrap(), None);
    db.set(&paths::tenant("t1").unwrap(), &json!({"name": "T", "status": "suspended"}))
        .await
        .unwrap();
    assert_eq!(tenancy.tenant_status("t1").await.unwrap(), Some(TenantStatus::Suspended));
    db.set(&paths::tenant("t2").unwrap(), &json!({"name": "T2"})).await.unwrap();
    assert_eq!(tenancy.tenant_status("t2").await.unwrap(), None, "no status field");

    assert_eq!(tenancy.membership("t1", "u1").await.unwrap(), None);
    db.set(
        &paths::tenant_member("t1", "u1").unwrap(),
        &json!({"role": "admin", "email": "a@b.example", "onboarded": true}),
    )
    .await
    .unwrap();
    assert_eq!(
        tenancy.membership("t1", "u1").await.unwrap(),
        Some(Membership { role: Role::Admin })
    );

    assert_eq!(tenancy.user_root("u1").await.unwrap(), None);
    db.set(
        &paths::user("u1").unwrap(),
        &json!({"email": "a@b.example", "tenant_id": "t1", "onboarded": true}),
    )
    .await
    .unwrap();
    let root = tenancy.user_root("u1").await.unwrap().unwrap();
    assert_eq!(root, UserRoot { tenant_id: Some("t1".to_owned()), onboarded: true });
    assert!(root.onboarded_into("t1"));
}

#[tokio::test]
async fn warm_lookups_are_served_from_the_cache_until_the_ttl_passes() {
    let db = crate::fresh_db().await;
    let ttl = Duration::from_millis(700);
    let tenancy = Tenancy::with_cache(&db, CacheConfig::with_ttl(ttl));
    let tenant = paths::tenant("t1").unwrap();
    let member = paths::tenant_member("t1", "u1").unwrap();
    db.set(&tenant, &json!({"status": "active"})).await.unwrap();
    db.set(&member, &json!({"role": "member"})).await.unwrap();
    db.set(&paths::config("signup").unwrap(), &json!({"blocked_domains": ["a.example"]}))
        .await
        .unwrap();

    // Warm the caches, including negative answers.
    assert_eq!(tenancy.tenant_status("t1").await.unwrap(), Some(TenantStatus::Active));
    assert_eq!(
        tenancy.membership("t1", "u1").await.unwrap(),
        Some(Membership { role: Role::Member })
    );
    assert_eq!(tenancy.user_root("u1").await.unwrap(), None);
    assert_eq!(tenancy.blocked_domains().await.unwrap().len(), 1);

    // Change everything behind the cache's back: warm answers do not read Firestore.
    db.set(&tenant, &json!({"status": "suspended"})).await.unwrap();
    db.delete(&member).await.unwrap();
    db.set(&paths::user("u1").unwrap(), &json!({"tenant_id": "t1", "onboarded": true}))
        .await
        .unwrap();
    db.set(
        &paths::config("signup").unwrap(),
        &json!({"blocked_domains": ["a.example", "b.example"]}),
    )
    .await
    .unwrap();
    assert_eq!(tenancy.tenant_status("t1").await.unwrap(), Some(TenantStatus::Active));
    assert!(tenancy.membership("t1", "u1").await.unwrap().is_some());
    assert_eq!(tenancy.user_root("u1").await.unwrap(), None);
    assert_eq!(tenancy.blocked_domains().await.unwrap().len(), 1);

    // After the TTL the changes are seen.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert_eq!(tenancy.tenant_status("t1").await.unwrap(), Some(TenantStatus::Suspended));
    assert_eq!(tenancy.membership("t1", "u1").await.unwrap(), None);
    assert!(tenancy.user_root("u1").await.unwrap().unwrap().onboarded_into("t1"));
    assert_eq!(tenancy.blocked_domains().await.unwrap().len(), 2);

    // invalidate_all drops warm answers at once.
    db.set(&tenant, &json!({"status": "active"})).await.unwrap();
    assert_eq!(tenancy.tenant_status("t1").await.unwrap(), Some(TenantStatus::Suspended));
    tenancy.invalidate_all();
    assert_eq!(tenancy.tenant_status("t1").await.unwrap(), Some(TenantStatus::Active));
}

#[tokio::test]
async fn malformed_documents_are_decode_errors_not_panics() {
    let db = crate::fresh_db().await;
    let tenancy = Tenancy::new(&db);
    db.set(&paths::tenant_member("t1", "u1").unwrap(), &json!({"role": "emperor"})).await.unwrap();
    let err = tenancy.membership("t1", "u1").await.unwrap_err();
    assert!(matches!(err, store::Error::Decode { .. }), "{err:?}");
    assert!(!err.is_retryable());
    // A failed load is not cached: fixing the document fixes the answer.
    db.set(&paths::tenant_member("t1", "u1").unwrap(), &json!({"role": "owner"})).await.unwrap();
    assert_eq!(
        tenancy.membership("t1", "u1").await.unwrap(),
        Some(Membership { role: Role::Owner })
    );
}
