//! Transactions: contention on one document resolves to exact counts, and errors are retried
//! only when retryable.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use store::{Backoff, Code, Error, TransactionError, paths};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Counter {
    value: i64,
}

fn quick_backoff(max_attempts: u32) -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        multiplier: 1.5,
        max: Duration::from_millis(200),
        max_attempts,
        jitter_fraction: 0.5,
    }
}

/// Two tasks increment one counter N times each with read-modify-write transactions. Their
/// first attempts both read before either writes (a barrier), so they conflict for sure: the
/// emulator locks pessimistically and answers ABORTED ("Transaction lock timeout") after about
/// 2 s, production answers ABORTED at commit. The retries must still end at exactly 2N.
#[tokio::test]
async fn concurrent_read_modify_write_transactions_lose_no_update() {
    const N: i64 = 8;
    let db = crate::fresh_db().await;
    let path = paths::counter_shard(&paths::product("hot").unwrap(), 0);
    let calls = Arc::new(AtomicU32::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let started = Instant::now();

    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (db, path, calls, barrier) = (db.clone(), path.clone(), calls.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut first = true;
            for _ in 0..N {
                let (path, calls, barrier, first) = (&path, &calls, &barrier, &mut first);
                db.run_transaction_with(quick_backoff(30), |tx| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let meet = std::mem::take(first);
                    Box::pin(async move {
                        let current: Option<Counter> = tx.get(path).await?;
                        let value = current.map_or(0, |c| c.value) + 1;
                        if meet {
                            barrier.wait().await;
                        }
                        tx.set(path, &Counter { value })?;
                        Ok::<_, Error>(value)
                    })
                })
                .await
                .expect("transaction");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let end: Counter = db.get(&path).await.unwrap().unwrap();
    let calls = calls.load(Ordering::SeqCst);
    println!(
        "2 x {N} contended increments: {calls} attempts ({} retried) in {:?}",
        i64::from(calls) - 2 * N,
        started.elapsed()
    );
    assert!(i64::from(calls) > 2 * N, "the transactions must have conflicted at least once");
    assert_eq!(end.value, 2 * N);
}

#[tokio::test]
async fn server_side_increments_in_transactions_add_up() {
    let db = crate::fresh_db().await;
    let path = paths::counter_shard(&paths::post("p").unwrap(), 3);
    let path = &path;
    for _ in 0..3 {
        db.run_transaction(|tx| {
            Box::pin(async move {
                tx.increment(path, "value", 2);
                Ok::<_, Error>(())
            })
        })
        .await
        .unwrap();
    }
    let counter: Counter = db.get(path).await.unwrap().unwrap();
    assert_eq!(counter.value, 6);
}

#[tokio::test]
async fn a_permanent_error_is_not_retried_and_writes_nothing() {
    let db = crate::fresh_db().await;
    let path = paths::order("o1").unwrap();
    let calls = AtomicU32::new(0);
    let (path, calls_ref) = (&path, &calls);
    let result = db
        .run_transaction_with(quick_backoff(5), |tx| {
            calls_ref.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tx.set(path, &Counter { value: 1 })?;
                Err::<(), _>(Error::Invalid("no such product".to_owned()))
            })
        })
        .await;
    assert!(matches!(result, Err(Error::Invalid(_))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(db.get::<Counter>(path).await.unwrap(), None, "rolled back, nothing written");
}

/// A caller's own error type: business rules end the transaction, store errors keep their class.
#[derive(Debug)]
enum ReserveError {
    OutOfStock,
    Store(Error),
}

impl From<Error> for ReserveError {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

impl TransactionError for ReserveError {
    fn store_error(&self) -> Option<&Error> {
        match self {
            Self::Store(e) => Some(e),
            Self::OutOfStock => None,
        }
    }
}

#[tokio::test]
async fn caller_errors_and_retryable_errors_are_told_apart() {
    let db = crate::fresh_db().await;
    let calls = AtomicU32::new(0);
    let result = db
        .run_transaction_with(quick_backoff(5), |_tx| {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Err::<(), _>(ReserveError::OutOfStock) })
        })
        .await;
    assert!(matches!(result, Err(ReserveError::OutOfStock)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A retryable error runs the closure up to the attempt limit, then comes back as it was.
    let calls = AtomicU32::new(0);
    let result = db
        .run_transaction_with(quick_backoff(4), |_tx| {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                Err::<(), _>(ReserveError::Store(Error::Rpc {
                    code: Code::Aborted,
                    message: "Too much contention".to_owned(),
                }))
            })
        })
        .await;
    let Err(ReserveError::Store(error)) = result else { panic!("expected the store error") };
    assert!(error.is_retryable());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

/// A document named twice in one batch read is read (and billed) once and answered at both
/// places, in a transaction or not; a missing one is missing at both.
#[tokio::test]
async fn a_document_named_twice_is_answered_twice() {
    let db = crate::fresh_db().await;
    let a = paths::config("twice-a").unwrap();
    let b = paths::config("twice-b").unwrap();
    let gone = paths::config("twice-gone").unwrap();
    db.set(&a, &Counter { value: 1 }).await.unwrap();
    db.set(&b, &Counter { value: 2 }).await.unwrap();
    let asked = [a.clone(), b.clone(), a.clone(), gone.clone(), gone, a];
    let want = vec![Some(1), Some(2), Some(1), None, None, Some(1)];
    let counts = metering::OpsCounts::new();
    let asked = &asked;
    let got = counts
        .clone()
        .scope(db.run_transaction(|tx| {
            Box::pin(async move {
                let docs = tx.get_all::<Counter>(asked).await?;
                Ok::<_, Error>(docs.into_iter().map(|c| c.map(|c| c.value)).collect::<Vec<_>>())
            })
        }))
        .await
        .unwrap();
    assert_eq!(got, want);
    // a, b and the missing one: 3 reads.
    assert_eq!(counts.snapshot().reads, 3);
}

/// The first read begins the transaction (no `BeginTransaction` round trip), `get_all` reads
/// several documents in one round trip, and a transaction that reads nothing is one commit.
#[tokio::test]
async fn transactions_begin_with_their_first_read() {
    let db = crate::fresh_db().await;
    let a = paths::config("tx-a").unwrap();
    let b = paths::config("tx-b").unwrap();
    db.set(&a, &Counter { value: 1 }).await.unwrap();
    let counts = metering::OpsCounts::new();
    let (a, b) = (&a, &b);
    let total = counts
        .clone()
        .scope(db.run_transaction(|tx| {
            Box::pin(async move {
                let both = tx.get_all::<Counter>(&[a.clone(), b.clone()]).await?;
                let again: Option<Counter> = tx.get(a).await?;
                let total = both.iter().flatten().map(|c| c.value).sum::<i64>()
                    + again.map_or(0, |c| c.value);
                tx.set(b, &Counter { value: total })?;
                Ok::<_, Error>(total)
            })
        }))
        .await
        .unwrap();
    assert_eq!(total, 2);
    let spent = counts.snapshot();
    // The batch read (which began it), the second read, the commit; 3 reads (b was missing).
    assert_eq!((spent.round_trips, spent.reads, spent.writes), (3, 3, 1));
    assert_eq!(db.get::<Counter>(b).await.unwrap(), Some(Counter { value: 2 }));

    let counts = metering::OpsCounts::new();
    counts
        .clone()
        .scope(db.run_transaction(|tx| {
            Box::pin(async move {
                tx.set(a, &Counter { value: 7 })?;
                Ok::<_, Error>(())
            })
        }))
        .await
        .unwrap();
    assert_eq!(counts.snapshot().round_trips, 1, "no read: one commit");
    assert_eq!(db.get::<Counter>(a).await.unwrap(), Some(Counter { value: 7 }));
}
