//! The idempotency ledger against the emulator.

use firestore::gcloud_sdk::google::firestore::v1::GetDocumentRequest;
use firestore::gcloud_sdk::google::firestore::v1::value::ValueType;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use store::{Claim, Ledger};

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn fresh_then_in_flight_then_done_with_the_saved_response() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let Claim::Fresh(token) = ledger.claim("payments", "evt_1", "fp-a", LEASE).await.unwrap()
    else {
        panic!("first claim is fresh");
    };
    match ledger.claim("payments", "evt_1", "fp-a", LEASE).await.unwrap() {
        Claim::InFlight { retry_after } => {
            assert!(
                retry_after > Duration::from_secs(20) && retry_after <= LEASE,
                "{retry_after:?}"
            );
        }
        other => panic!("expected in flight, got {other:?}"),
    }
    let response = json!({ "status": 200, "body": { "paid": true, "amount": 1250, "tags": ["a", null, 1.5] } });
    ledger.complete(&token, &response).await.unwrap();
    assert_eq!(
        ledger.claim("payments", "evt_1", "fp-a", LEASE).await.unwrap(),
        Claim::Done(response)
    );
    // Settling twice is refused: the lease is over.
    assert!(matches!(ledger.release(&token).await, Err(store::Error::LeaseLost { .. })));

    // The record carries `expires_at` as a Firestore timestamp (what a TTL policy needs),
    // about 24 h ahead.
    let raw: serde_json::Value = db.get(token.path()).await.unwrap().unwrap();
    assert_eq!(raw["state"], "done");
    let firestore = db.firestore().await.unwrap();
    let request = GetDocumentRequest {
        name: token.path().full_name(db.documents_root()),
        ..Default::default()
    };
    let doc = firestore.client().get().get_document(request).await.unwrap().into_inner();
    let Some(ValueType::TimestampValue(expires_at)) = &doc.fields["expires_at"].value_type else {
        panic!("expires_at must be a timestamp: {:?}", doc.fields["expires_at"]);
    };
    let ahead = expires_at.seconds - chrono::Utc::now().timestamp();
    assert!((23 * 3600..=24 * 3600).contains(&ahead), "{ahead} s ahead");
}

#[tokio::test]
async fn same_key_with_another_payload_is_a_mismatch() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    assert!(matches!(ledger.claim("api", "k1", "fp-a", LEASE).await.unwrap(), Claim::Fresh(_)));
    assert_eq!(ledger.claim("api", "k1", "fp-b", LEASE).await.unwrap(), Claim::Mismatch);
}

#[tokio::test]
async fn twenty_concurrent_claims_yield_exactly_one_fresh() {
    let db = crate::fresh_db().await;
    let ledger = Arc::new(Ledger::new(&db));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(
            async move { ledger.claim("pubsub", "message-42", "fp", LEASE).await },
        ));
    }
    let mut fresh = 0;
    let mut in_flight = 0;
    for task in tasks {
        match task.await.unwrap().expect("every claim gets an answer") {
            Claim::Fresh(_) => fresh += 1,
            Claim::InFlight { .. } => in_flight += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((fresh, in_flight), (1, 19));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_token_is_void() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let Claim::Fresh(crashed) =
        ledger.claim("jobs", "cleanup-1", "fp", Duration::from_millis(200)).await.unwrap()
    else {
        panic!("fresh");
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let Claim::Fresh(taker) = ledger.claim("jobs", "cleanup-1", "fp", LEASE).await.unwrap() else {
        panic!("a stale lease is taken over");
    };
    assert_ne!(crashed, taker);
    assert!(matches!(
        ledger.complete(&crashed, &json!("late")).await,
        Err(store::Error::LeaseLost { .. })
    ));
    ledger.complete(&taker, &json!("done")).await.unwrap();
    assert_eq!(
        ledger.claim("jobs", "cleanup-1", "fp", LEASE).await.unwrap(),
        Claim::Done(json!("done"))
    );
}

#[tokio::test]
async fn a_released_claim_can_run_again() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let Claim::Fresh(first) = ledger.claim("webhook", "evt", "fp", LEASE).await.unwrap() else {
        panic!("fresh");
    };
    ledger.release(&first).await.unwrap();
    assert!(matches!(ledger.claim("webhook", "evt", "fp", LEASE).await.unwrap(), Claim::Fresh(_)));
}

#[tokio::test]
async fn scopes_isolate_keys() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let Claim::Fresh(a) = ledger.claim("stripe", "evt_1", "fp", LEASE).await.unwrap() else {
        panic!("fresh");
    };
    ledger.complete(&a, &json!({"scope": "stripe"})).await.unwrap();
    assert!(matches!(
        ledger.claim("pesapal", "evt_1", "fp", LEASE).await.unwrap(),
        Claim::Fresh(_)
    ));
    // Odd keys are fine too: slashes, long, unicode.
    let odd = format!("a/b/../{}", "é".repeat(1000));
    assert!(matches!(ledger.claim("stripe", &odd, "fp", LEASE).await.unwrap(), Claim::Fresh(_)));
}

#[tokio::test]
async fn a_record_past_its_ttl_counts_as_absent() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db).with_retention(Duration::from_millis(100));
    let Claim::Fresh(token) = ledger.claim("api", "old", "fp-a", LEASE).await.unwrap() else {
        panic!("fresh");
    };
    ledger.complete(&token, &json!(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Expired but not yet deleted by TTL: a new payload under the key is accepted.
    assert!(matches!(ledger.claim("api", "old", "fp-b", LEASE).await.unwrap(), Claim::Fresh(_)));
}

#[tokio::test]
async fn run_once_runs_replays_refuses_and_releases() {
    use store::ledger::{Outcome, RunError};
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let payload = json!({"order": "o1"});

    // A failure releases the key: the next delivery runs the work again at once.
    let failed = ledger
        .run_once("run", "k1", &payload, LEASE, || async { Err::<u32, _>("provider down") })
        .await;
    assert!(matches!(failed, Err(RunError::Work("provider down"))));
    let ran = ledger.run_once("run", "k1", &payload, LEASE, || async { Ok::<_, ()>(7u32) }).await;
    assert_eq!(ran.unwrap(), Outcome::Ran(7));

    // Done: the saved output is replayed and the work does not run.
    let replayed = ledger
        .run_once("run", "k1", &payload, LEASE, || async {
            panic!("the work ran twice");
            #[allow(unreachable_code)]
            Ok::<u32, ()>(0)
        })
        .await;
    assert_eq!(replayed.unwrap(), Outcome::Replayed(json!(7)));

    // Same key, other payload: a conflict, the work does not run.
    let other = ledger
        .run_once("run", "k1", &json!({"order": "o2"}), LEASE, || async { Ok::<_, ()>(8u32) })
        .await;
    assert_eq!(other.unwrap(), Outcome::Conflict);

    // Held by another delivery: busy, with the time left on its lease.
    let fp = store::ledger::fingerprint(&payload);
    assert!(matches!(ledger.claim("run", "k2", &fp, LEASE).await.unwrap(), Claim::Fresh(_)));
    match ledger.run_once("run", "k2", &payload, LEASE, || async { Ok::<_, ()>(9u32) }).await {
        Ok(Outcome::Busy { retry_after }) => assert!(retry_after <= LEASE),
        other => panic!("expected busy, got {other:?}"),
    }
}
