//! The idempotency ledger against the emulator.

use firestore::gcloud_sdk::google::firestore::v1::GetDocumentRequest;
use firestore::gcloud_sdk::google::firestore::v1::value::ValueType;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use store::ledger::{Outcome, RunError};
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

/// What `f` cost: `[reads, writes, round trips]`, counted as a request's are. (`f` is boxed:
/// the ledger's futures are large.)
async fn cost<F: std::future::Future>(f: std::pin::Pin<Box<F>>) -> (F::Output, [u64; 3]) {
    let counts = metering::OpsCounts::new();
    let out = counts.clone().scope(f).await;
    let s = counts.snapshot();
    (out, [s.reads, s.writes, s.round_trips])
}

#[tokio::test]
async fn the_happy_path_is_one_create_and_one_conditional_write() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let (claim, claimed) = cost(Box::pin(ledger.claim("fast", "k", "fp", LEASE))).await;
    let Claim::Fresh(token) = claim.unwrap() else { panic!("fresh") };
    assert_eq!(claimed, [0, 1, 1], "[reads, writes, round trips] of a claim");
    let (done, settled) = cost(Box::pin(ledger.complete(&token, &json!({"ok": true})))).await;
    done.unwrap();
    assert_eq!(settled, [0, 1, 1], "[reads, writes, round trips] of a settle");
    let raw: serde_json::Value = db.get(token.path()).await.unwrap().unwrap();
    assert_eq!((raw["state"].as_str(), raw["attempts"].as_i64()), (Some("done"), Some(1)));

    // run_once: two round trips in all, where it took six (begin, read, commit, twice).
    let payload = json!({"order": "o1"});
    let (ran, total) = cost(Box::pin(
        ledger.run_once("fast", "k2", &payload, LEASE, || async { Ok::<_, ()>(1u8) }),
    ))
    .await;
    assert_eq!(ran.unwrap(), Outcome::Ran(1));
    assert_eq!(total, [0, 2, 2]);
}

#[tokio::test]
async fn a_done_in_flight_or_mismatched_record_is_answered_by_one_read() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let Claim::Fresh(token) = ledger.claim("fb", "k", "fp-a", LEASE).await.unwrap() else {
        panic!("fresh");
    };
    // In flight: the create fails, one read answers.
    let (claim, spent) = cost(Box::pin(ledger.claim("fb", "k", "fp-a", LEASE))).await;
    assert!(matches!(claim.unwrap(), Claim::InFlight { retry_after } if retry_after <= LEASE));
    assert_eq!(spent, [1, 0, 2]);
    // Another payload: a mismatch, the same price.
    let (claim, spent) = cost(Box::pin(ledger.claim("fb", "k", "fp-b", LEASE))).await;
    assert_eq!(claim.unwrap(), Claim::Mismatch);
    assert_eq!(spent, [1, 0, 2]);
    // Done: the replay, the same price (it was 3 round trips: begin, read, commit).
    ledger.complete(&token, &json!("saved")).await.unwrap();
    let (claim, spent) = cost(Box::pin(ledger.claim("fb", "k", "fp-a", LEASE))).await;
    assert_eq!(claim.unwrap(), Claim::Done(json!("saved")));
    assert_eq!(spent, [1, 0, 2]);
}

#[tokio::test]
async fn a_released_or_expired_lease_is_taken_over_in_a_transaction() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    // Released: the create fails, the read sees it released, the transaction takes it over.
    let Claim::Fresh(first) = ledger.claim("fb", "rel", "fp", LEASE).await.unwrap() else {
        panic!("fresh");
    };
    ledger.release(&first).await.unwrap();
    let (claim, spent) = cost(Box::pin(ledger.claim("fb", "rel", "fp", LEASE))).await;
    let Claim::Fresh(second) = claim.unwrap() else { panic!("a released key is taken") };
    // create, read, then the transaction: its read (which begins it) and its commit.
    assert_eq!(spent, [2, 1, 4]);
    let raw: serde_json::Value = db.get(second.path()).await.unwrap().unwrap();
    assert_eq!((raw["state"].as_str(), raw["attempts"].as_i64()), (Some("in_flight"), Some(2)));
    // A token from a transaction settles in a transaction (read, commit).
    let (done, spent) = cost(Box::pin(ledger.complete(&second, &json!(2)))).await;
    done.unwrap();
    assert_eq!(spent, [1, 1, 2]);
    assert_eq!(ledger.claim("fb", "rel", "fp", LEASE).await.unwrap(), Claim::Done(json!(2)));

    // Lease over: the same takeover.
    let short = Duration::from_millis(200);
    assert!(matches!(ledger.claim("fb", "gone", "fp", short).await.unwrap(), Claim::Fresh(_)));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (claim, spent) = cost(Box::pin(ledger.claim("fb", "gone", "fp", LEASE))).await;
    assert!(matches!(claim.unwrap(), Claim::Fresh(_)));
    assert_eq!(spent, [2, 1, 4]);
}

#[tokio::test]
async fn a_settle_after_a_takeover_fails_its_precondition_and_changes_nothing() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let Claim::Fresh(slow) =
        ledger.claim("fb", "k", "fp", Duration::from_millis(200)).await.unwrap()
    else {
        panic!("fresh");
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let Claim::Fresh(taker) = ledger.claim("fb", "k", "fp", LEASE).await.unwrap() else {
        panic!("the lease ran out: taken over");
    };
    // The slow holder finishes late: its write is conditioned on its claim's update time,
    // which the takeover changed. One round trip, refused, nothing written.
    for settle in [ledger.complete(&slow, &json!("late")).await, ledger.release(&slow).await] {
        assert!(matches!(settle, Err(store::Error::LeaseLost { .. })), "{settle:?}");
    }
    let (late, spent) = cost(Box::pin(ledger.complete(&slow, &json!("late")))).await;
    assert!(matches!(late, Err(store::Error::LeaseLost { .. })));
    assert_eq!(spent, [0, 0, 1]);
    let raw: serde_json::Value = db.get(taker.path()).await.unwrap().unwrap();
    assert_eq!((raw["state"].as_str(), raw["attempts"].as_i64()), (Some("in_flight"), Some(2)));
    // The taker still holds it, and settles.
    ledger.complete(&taker, &json!("taker")).await.unwrap();
    assert_eq!(ledger.claim("fb", "k", "fp", LEASE).await.unwrap(), Claim::Done(json!("taker")));
}

#[tokio::test]
async fn a_record_past_its_ttl_is_taken_over_whatever_it_says() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db).with_retention(Duration::from_millis(100));
    // An in-flight record with a long lease, past its TTL: absent for the ledger.
    assert!(matches!(ledger.claim("fb", "old", "fp-a", LEASE).await.unwrap(), Claim::Fresh(_)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (claim, spent) = cost(Box::pin(ledger.claim("fb", "old", "fp-b", LEASE))).await;
    let Claim::Fresh(token) = claim.unwrap() else { panic!("expired: fresh") };
    assert_eq!(spent, [2, 1, 4]);
    let raw: serde_json::Value = db.get(token.path()).await.unwrap().unwrap();
    assert_eq!((raw["fingerprint"].as_str(), raw["attempts"].as_i64()), (Some("fp-b"), Some(1)));
}

#[tokio::test]
async fn run_leased_is_one_create_busy_within_the_lease_and_runs_again_after_it() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let payload = json!({"event": "evt_1"});
    let lease = Duration::from_millis(600);
    let runs = std::sync::atomic::AtomicU32::new(0);
    let work = || async {
        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, &str>("published")
    };

    let (first, spent) =
        cost(Box::pin(ledger.run_leased("lease", "evt_1", &payload, lease, work))).await;
    assert_eq!(first.unwrap(), Outcome::Ran("published"));
    assert_eq!(spent, [0, 1, 1], "one create and nothing else");
    // Within the lease: busy (the holder may not have published yet), nothing runs.
    let (again, spent) =
        cost(Box::pin(ledger.run_leased("lease", "evt_1", &payload, lease, work))).await;
    assert!(matches!(again.unwrap(), Outcome::Busy { retry_after } if retry_after <= lease));
    assert_eq!(spent, [1, 0, 2]);
    // Other content under the same key: refused, nothing runs.
    let other = ledger.run_leased("lease", "evt_1", &json!({"event": "x"}), lease, work).await;
    assert_eq!(other.unwrap(), Outcome::Conflict);
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    // After the lease (the holder finished, or crashed before publishing): it runs again.
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let late = ledger.run_leased("lease", "evt_1", &payload, lease, work).await;
    assert_eq!(late.unwrap(), Outcome::Ran("published"));
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn run_leased_releases_on_failure_so_the_retry_runs_at_once() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    let payload = json!({"event": "evt_2"});
    let (failed, spent) =
        cost(Box::pin(ledger.run_leased("lease", "evt_2", &payload, LEASE, || async {
            Err::<u8, _>("pubsub down")
        })))
        .await;
    assert!(matches!(failed, Err(RunError::Work("pubsub down"))));
    assert_eq!(spent, [0, 2, 2], "the create, then the conditional release");
    // Well within the lease, the retry runs.
    let retry =
        ledger.run_leased("lease", "evt_2", &payload, LEASE, || async { Ok::<_, ()>(1u8) }).await;
    assert_eq!(retry.unwrap(), Outcome::Ran(1));
    // A key a run_once completed is a replay for run_leased too.
    ledger
        .run_once("lease", "evt_3", &payload, LEASE, || async { Ok::<_, ()>(3u8) })
        .await
        .unwrap();
    let replay =
        ledger.run_leased("lease", "evt_3", &payload, LEASE, || async { Ok::<_, ()>(4u8) }).await;
    assert_eq!(replay.unwrap(), Outcome::Replayed(json!(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_share_batch_writes_and_each_keeps_its_own_answer() {
    let db = crate::fresh_db().await;
    let ledger = Ledger::new(&db);
    // Connect first, so the claims below queue behind each other rather than the connection.
    let Claim::Fresh(_) = ledger.claim("group", "warm", "fp", LEASE).await.unwrap() else {
        panic!("fresh");
    };
    let before = db.group_stats();
    // 300 distinct keys and 30 claims of one key, all at once.
    let claims = (0..300).map(|i| format!("k{i}")).chain((0..30).map(|_| "same".to_owned()));
    let tasks: Vec<_> = claims
        .map(|key| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let (claim, spent) = cost(Box::pin(ledger.claim("group", &key, "fp", LEASE))).await;
                (key, claim.unwrap(), spent)
            })
        })
        .collect();
    let mut fresh_same = 0;
    for task in tasks {
        let (key, claim, spent) = task.await.unwrap();
        match (key.as_str(), claim) {
            ("same", Claim::Fresh(_)) => {
                fresh_same += 1;
                assert_eq!(spent, [0, 1, 1], "the winner: one create");
            }
            ("same", Claim::InFlight { .. }) => {
                // Its create answered ALREADY_EXISTS, then one read: as if committed alone.
                assert_eq!(spent, [1, 0, 2]);
            }
            (_, Claim::Fresh(token)) => {
                assert_eq!(spent, [0, 1, 1], "{key}: one create, one round trip");
                let raw: serde_json::Value = db.get(token.path()).await.unwrap().unwrap();
                assert_eq!(raw["key"], key.as_str());
            }
            (key, other) => panic!("{key}: {other:?}"),
        }
    }
    assert_eq!(fresh_same, 1, "one claim of a key wins, however many arrive together");
    let sent = db.group_stats();
    let (requests, creates) = (sent.requests - before.requests, sent.creates - before.creates);
    assert_eq!(creates, 330, "every claim's create was sent once");
    assert!(requests < 100, "330 concurrent creates went out in {requests} requests");
}
