//! Provisioning against the emulator: the seven documents with their exact fields and server
//! timestamps, idempotent re-runs, user edits never overwritten, partial users completed,
//! concurrent runs creating each document once, and invited users whose tenant is missing.

use std::collections::{BTreeMap, BTreeSet};

use domain::onboarding::{DocKind, PLAN_VERSION, ProvisionReport, ProvisionRequest};
use domain::tenancy::Role;
use firestore::FirestoreDb;
use firestore::gcloud_sdk::google::firestore::v1::value::ValueType;
use firestore::gcloud_sdk::google::firestore::v1::{Document, GetDocumentRequest};
use firestore::gcloud_sdk::prost_types::Timestamp;
use serde_json::{Value, json};
use store::onboarding::{Onboarding, OnboardingState, doc_path};
use store::{Db, Error, paths};

fn new_user(uid: &str) -> ProvisionRequest {
    ProvisionRequest {
        uid: uid.to_owned(),
        email: Some("ada@example.com".to_owned()),
        tenant_id: format!("personal-{uid}"),
        role: Role::Owner,
        tenant_is_new: true,
    }
}

/// The raw document (field types and metadata intact), `None` when missing.
async fn raw(db: &Db, kind: DocKind, req: &ProvisionRequest) -> Option<Document> {
    let name = doc_path(kind, req).unwrap().full_name(db.documents_root());
    let mut client = db.firestore().await.unwrap().client().get();
    match client.get_document(GetDocumentRequest { name, ..Default::default() }).await {
        Ok(doc) => Some(doc.into_inner()),
        Err(status) if status.code() == firestore::gcloud_sdk::tonic::Code::NotFound => None,
        Err(status) => panic!("get_document: {status}"),
    }
}

fn update_time(doc: &Document) -> Timestamp {
    doc.update_time.unwrap()
}

async fn update_times(db: &Db, req: &ProvisionRequest) -> BTreeMap<DocKind, Timestamp> {
    let mut times = BTreeMap::new();
    for kind in DocKind::ALL {
        if let Some(doc) = raw(db, kind, req).await {
            times.insert(kind, update_time(&doc));
        }
    }
    times
}

/// The fields of `doc` as JSON, with timestamp fields removed and returned separately.
fn split(doc: &Document) -> (Value, BTreeMap<String, Timestamp>) {
    let mut stamps = BTreeMap::new();
    collect_timestamps("", &doc.fields, &mut stamps);
    let mut value = without_metadata(FirestoreDb::deserialize_doc_to(doc).unwrap());
    for path in stamps.keys() {
        let mut at = &mut value;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            at = &mut at[*part];
        }
        at.as_object_mut().unwrap().remove(parts[parts.len() - 1]);
    }
    (value, stamps)
}

/// Drops the `_firestore_*` metadata keys the firestore crate adds when decoding into a map.
fn without_metadata(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|key, _| !key.starts_with("_firestore_"));
    }
    value
}

fn collect_timestamps(
    prefix: &str,
    fields: &std::collections::HashMap<String, firestore::gcloud_sdk::google::firestore::v1::Value>,
    out: &mut BTreeMap<String, Timestamp>,
) {
    for (name, value) in fields {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match &value.value_type {
            Some(ValueType::TimestampValue(ts)) => {
                out.insert(path, *ts);
            }
            Some(ValueType::MapValue(map)) => collect_timestamps(&path, &map.fields, out),
            _ => {}
        }
    }
}

fn key(ts: &Timestamp) -> (i64, i32) {
    (ts.seconds, ts.nanos)
}

/// A `REQUEST_TIME` value: millisecond precision, taken when the server received the commit, so
/// shortly before (or at) the write time of the document it is in.
fn assert_server_time(ts: &Timestamp, written: &Timestamp, what: &str) {
    assert_eq!(ts.nanos % 1_000_000, 0, "{what}: millisecond precision");
    let nanos = |t: &Timestamp| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    let lag = nanos(written) - nanos(ts);
    assert!((0..2_000_000_000).contains(&lag), "{what}: {ts:?} vs write time {written:?}");
}

fn kinds(names: &[DocKind]) -> Value {
    json!(names)
}

#[tokio::test]
async fn a_new_user_gets_all_seven_documents_with_exact_fields_and_server_timestamps() {
    let db = crate::fresh_db().await;
    let req = new_user("u1");
    let report = Onboarding::new(&db).provision(&req).await.unwrap();
    assert_eq!(report.created, DocKind::ALL);
    assert!(report.existing.is_empty());

    let expected: [(DocKind, Value, &[&str]); 7] = [
        (
            DocKind::Tenant,
            json!({"name": "ada's workspace", "owner_uid": "u1", "plan": "free", "status": "active"}),
            &["created_at"],
        ),
        (
            DocKind::Membership,
            json!({"role": "owner", "email": "ada@example.com", "onboarded": true}),
            &["joined_at"],
        ),
        (
            DocKind::UserRoot,
            json!({
                "email": "ada@example.com", "tenant_id": "personal-u1", "onboarded": true,
                "onboarding": {"state": "complete", "plan_version": PLAN_VERSION, "created": kinds(&DocKind::ALL)},
            }),
            &["created_at", "onboarding.completed_at"],
        ),
        (
            DocKind::AlpacaSecrets,
            json!({"configured": false, "base_url": "https://paper-api.alpaca.markets"}),
            &["created_at"],
        ),
        (DocKind::AccountSnapshot, json!({"configured": false, "equity": "0"}), &["updated_at"]),
        (
            DocKind::TradingStatus,
            json!({
                "enabled": false, "mode": "safe",
                "reason": "New user onboarding - enable trading in Settings",
            }),
            &["updated_at"],
        ),
        (
            DocKind::Preferences,
            json!({"theme": "dark", "risk_tolerance": "moderate", "default_allocation": 0.1, "max_positions": 5}),
            &["updated_at"],
        ),
    ];
    let mut commit_times = BTreeSet::new();
    let mut request_times = BTreeSet::new();
    for (kind, fields, stamp_fields) in expected {
        let doc = raw(&db, kind, &req).await.unwrap_or_else(|| panic!("{kind:?} missing"));
        let (value, stamps) = split(&doc);
        assert_eq!(value, fields, "{kind:?}");
        assert_eq!(stamps.keys().map(String::as_str).collect::<Vec<_>>(), stamp_fields, "{kind:?}");
        assert_eq!(doc.create_time, doc.update_time, "{kind:?} written once");
        for (field, ts) in &stamps {
            assert_server_time(ts, &update_time(&doc), &format!("{kind:?}.{field}"));
            request_times.insert(key(ts));
        }
        commit_times.insert(key(&update_time(&doc)));
    }
    assert_eq!(commit_times.len(), 1, "one atomic commit");
    assert_eq!(request_times.len(), 1, "one REQUEST_TIME for every timestamp of the run");
    // Numbers keep their Firestore types: a double allocation and an integer max.
    let prefs = raw(&db, DocKind::Preferences, &req).await.unwrap();
    assert!(matches!(
        prefs.fields["default_allocation"].value_type,
        Some(ValueType::DoubleValue(_))
    ));
    assert!(matches!(prefs.fields["max_positions"].value_type, Some(ValueType::IntegerValue(5))));
    let state = Onboarding::new(&db).onboarding_state("u1").await.unwrap().unwrap();
    assert_eq!(
        state,
        OnboardingState {
            state: "complete".to_owned(),
            plan_version: PLAN_VERSION,
            created: DocKind::ALL.to_vec()
        }
    );
}

#[tokio::test]
async fn a_second_run_writes_nothing() {
    let db = crate::fresh_db().await;
    let req = new_user("u2");
    Onboarding::new(&db).provision(&req).await.unwrap();
    let before = update_times(&db, &req).await;
    assert_eq!(before.len(), 7);

    let again = Onboarding::new(&db).provision(&req).await.unwrap();
    assert_eq!(again, ProvisionReport { created: vec![], existing: DocKind::ALL.to_vec() });
    assert!(again.is_noop());
    assert_eq!(update_times(&db, &req).await, before);
}

#[tokio::test]
async fn an_edited_document_is_never_overwritten() {
    let db = crate::fresh_db().await;
    let req = new_user("u3");
    Onboarding::new(&db).provision(&req).await.unwrap();
    let prefs = doc_path(DocKind::Preferences, &req).unwrap();
    let edited = json!({"theme": "light", "risk_tolerance": "aggressive", "default_allocation": 0.25, "max_positions": 12});
    db.set(&prefs, &edited).await.unwrap();
    let before = update_times(&db, &req).await;

    let report = Onboarding::new(&db).provision(&req).await.unwrap();
    assert!(report.is_noop());
    assert_eq!(without_metadata(db.get::<Value>(&prefs).await.unwrap().unwrap()), edited);
    assert_eq!(update_times(&db, &req).await, before);
}

#[tokio::test]
async fn deleted_documents_are_recreated_and_nothing_else_is_touched() {
    let db = crate::fresh_db().await;
    let req = new_user("u4");
    Onboarding::new(&db).provision(&req).await.unwrap();
    let root_before = raw(&db, DocKind::UserRoot, &req).await.unwrap();
    let before = update_times(&db, &req).await;
    for kind in [DocKind::AlpacaSecrets, DocKind::TradingStatus] {
        db.delete(&doc_path(kind, &req).unwrap()).await.unwrap();
    }

    let report = Onboarding::new(&db).provision(&req).await.unwrap();
    assert_eq!(report.created, [DocKind::AlpacaSecrets, DocKind::TradingStatus]);
    assert_eq!(
        report.existing,
        [
            DocKind::Tenant,
            DocKind::Membership,
            DocKind::UserRoot,
            DocKind::AccountSnapshot,
            DocKind::Preferences
        ]
    );
    let after = update_times(&db, &req).await;
    for kind in
        [DocKind::Tenant, DocKind::Membership, DocKind::AccountSnapshot, DocKind::Preferences]
    {
        assert_eq!(after[&kind], before[&kind], "{kind:?} untouched");
    }
    let secrets = raw(&db, DocKind::AlpacaSecrets, &req).await.unwrap();
    assert_eq!(
        split(&secrets).0,
        json!({"configured": false, "base_url": "https://paper-api.alpaca.markets"})
    );

    // The root got the new onboarding record and kept everything else, types included.
    let root = raw(&db, DocKind::UserRoot, &req).await.unwrap();
    assert!(key(&after[&DocKind::UserRoot]) > key(&before[&DocKind::UserRoot]));
    assert_eq!(root.fields["created_at"], root_before.fields["created_at"]);
    let (value, stamps) = split(&root);
    assert_eq!(value["onboarding"]["created"], json!(["alpaca_secrets", "trading_status"]));
    assert_eq!(value["email"], json!("ada@example.com"));
    assert_server_time(&stamps["onboarding.completed_at"], &update_time(&root), "completed_at");
    assert_eq!(after[&DocKind::UserRoot], after[&DocKind::AlpacaSecrets], "one commit");
    let secrets_stamps = split(&secrets).1;
    assert_eq!(secrets_stamps["created_at"], stamps["onboarding.completed_at"]);
}

#[tokio::test]
async fn a_root_written_by_someone_else_keeps_its_fields_and_only_gains_the_onboarding_record() {
    #[derive(serde::Serialize)]
    struct LegacyRoot {
        display_name: String,
        #[serde(with = "firestore::serialize_as_timestamp")]
        last_seen: firestore::FirestoreInstant,
    }
    let db = crate::fresh_db().await;
    let req = new_user("u5");
    let root_path = paths::user("u5").unwrap();
    let seen = firestore::FirestoreInstant::from_microsecond(1_700_000_000_000_000).unwrap();
    db.set(&root_path, &LegacyRoot { display_name: "Ada".to_owned(), last_seen: seen })
        .await
        .unwrap();
    let legacy = raw(&db, DocKind::UserRoot, &req).await.unwrap();

    let report = Onboarding::new(&db).provision(&req).await.unwrap();
    assert_eq!(report.existing, [DocKind::UserRoot]);
    assert_eq!(report.created.len(), 6);

    let root = raw(&db, DocKind::UserRoot, &req).await.unwrap();
    let names: BTreeSet<&str> = root.fields.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["display_name", "last_seen", "onboarding"]));
    assert_eq!(root.fields["last_seen"], legacy.fields["last_seen"], "still a timestamp");
    assert_eq!(root.fields["display_name"], legacy.fields["display_name"]);
    assert_eq!(root.create_time, legacy.create_time);
    let state = Onboarding::new(&db).onboarding_state("u5").await.unwrap().unwrap();
    assert!(state.is_current());
    assert!(!state.created.contains(&DocKind::UserRoot));

    assert!(Onboarding::new(&db).provision(&req).await.unwrap().is_noop());
}

#[tokio::test]
async fn concurrent_runs_create_each_document_once() {
    let db = crate::fresh_db().await;
    let req = new_user("u6");
    let runs = (0..10).map(|_| {
        let (db, req) = (db.clone(), req.clone());
        tokio::spawn(async move { Onboarding::new(&db).provision(&req).await })
    });
    let reports: Vec<ProvisionReport> =
        futures::future::join_all(runs).await.into_iter().map(|r| r.unwrap().unwrap()).collect();

    let creators: Vec<&ProvisionReport> = reports.iter().filter(|r| !r.is_noop()).collect();
    let mut created: Vec<DocKind> = creators.iter().flat_map(|r| r.created.clone()).collect();
    created.sort();
    assert_eq!(created, DocKind::ALL, "every document created by exactly one run: {reports:?}");
    for kind in DocKind::ALL {
        let doc = raw(&db, kind, &req).await.unwrap();
        assert_eq!(doc.create_time, doc.update_time, "{kind:?} written once");
    }
    let state = Onboarding::new(&db).onboarding_state("u6").await.unwrap().unwrap();
    assert_eq!(state.created, DocKind::ALL);
}

#[tokio::test]
async fn an_invited_user_joins_an_existing_tenant_without_touching_it() {
    let db = crate::fresh_db().await;
    let tenant = paths::tenant("acme").unwrap();
    db.set(
        &tenant,
        &json!({"name": "Acme", "owner_uid": "boss", "plan": "pro", "status": "active"}),
    )
    .await
    .unwrap();
    let req = ProvisionRequest {
        uid: "u7".to_owned(),
        email: None,
        tenant_id: "acme".to_owned(),
        role: Role::Member,
        tenant_is_new: false,
    };
    let tenant_before = update_times(&db, &req).await[&DocKind::Tenant];

    let report = Onboarding::new(&db).provision(&req).await.unwrap();
    assert_eq!(report.created.len(), 6);
    assert!(!report.created.contains(&DocKind::Tenant));
    let membership =
        db.get::<Value>(&paths::tenant_member("acme", "u7").unwrap()).await.unwrap().unwrap();
    assert_eq!(membership["role"], json!("member"));
    assert_eq!(membership["email"], Value::Null);
    assert_eq!(update_times(&db, &req).await[&DocKind::Tenant], tenant_before);
}

#[tokio::test]
async fn an_invited_user_whose_tenant_is_missing_is_refused_and_nothing_is_written() {
    let db = crate::fresh_db().await;
    let req = ProvisionRequest {
        uid: "u8".to_owned(),
        email: Some("bob@example.com".to_owned()),
        tenant_id: "ghost".to_owned(),
        role: Role::Member,
        tenant_is_new: false,
    };
    let err = Onboarding::new(&db).provision(&req).await.unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(m) if m.contains("tenant ghost does not exist")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(update_times(&db, &req).await.is_empty());
}

/// Regression: the api's first-call check ("was this member removed?") read the user root and
/// the membership as two separate gets while onboarding's commit created both. A membership read
/// before that commit and a root read after it looked exactly like a removed member, and a
/// brand-new user's first call was refused with "You are no longer a member of this workspace"
/// (the devstack demo hit it under load). Both are now read in one `BatchGetDocuments`, one
/// consistent snapshot. Racing the check against provisioning many times must never see it.
#[tokio::test]
async fn a_member_being_provisioned_is_never_seen_as_removed() {
    let db = crate::fresh_db().await;
    let onboarding = Onboarding::new(&db);
    let mut false_removals = 0;
    for i in 0..60 {
        let req = new_user(&format!("racer{i:02}"));
        let watch = async {
            let mut seen = 0;
            for _ in 0..20 {
                if onboarding.membership_removed(&req.tenant_id, &req.uid).await.unwrap() {
                    seen += 1;
                }
            }
            seen
        };
        let (report, seen) = tokio::join!(onboarding.provision_new(&req), watch);
        report.unwrap();
        false_removals += seen;
    }
    assert_eq!(false_removals, 0, "a member being provisioned was seen as removed");
}
