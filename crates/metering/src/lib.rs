//! Firestore operations per request: `store` records every document read, write, delete and
//! query result, and every RPC it sends (a round trip), into the counter of the request being served (a task-local that `runtime`'s
//! request span middleware installs; `runtime` re-exports this crate as `runtime::ops`).
//! It is a crate of its own so that `store` can record without depending on `runtime`. When the request ends the counts go to
//! `/metrics` as `hearth_firestore_ops_total{function,route,kind}` and onto the
//! "request completed" log line (`firestore_reads`, `firestore_writes`, `firestore_deletes`,
//! `firestore_query_results`, `firestore_round_trips`, and `tenant` when the caller's token
//! named one).
//!
//! Round trips are not billed; they are what a request waits for. One is one Firestore RPC
//! (`Commit`, `GetDocument`, `BatchGetDocuments`, one `RunQuery` page, `BeginTransaction`,
//! `Rollback`, `BatchWrite`), counted whether it succeeds or fails: a create refused with
//! `ALREADY_EXISTS` costs a round trip and nothing billed.
//!
//! The tenant is a log field, not a metric label: one series per tenant would grow Prometheus
//! without bound, while Cloud Logging can group the log lines by tenant when needed.
//!
//! Work a handler moves to a task of its own (`tokio::spawn`) runs outside the request's
//! task-local and is not attributed to it; [`OpsCounts::scope`] lets such code carry the
//! counter along.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

tokio::task_local! {
    static CURRENT: Arc<OpsCounts>;
}

/// What Firestore bills (reads, writes, deletes), plus the documents queries returned and the
/// RPCs sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A document read (a lookup, found or not, a query result, or an empty query's minimum).
    Read,
    /// A document created, replaced, updated or transformed.
    Write,
    /// A document deleted.
    Delete,
    /// A document a query returned (also counted as a read).
    QueryResult,
    /// One Firestore RPC sent, answered or failed (not billed: latency, not money).
    RoundTrip,
}

impl OpKind {
    /// Every kind, in the order of [`OpsSnapshot`]'s fields.
    pub const ALL: [OpKind; 5] =
        [OpKind::Read, OpKind::Write, OpKind::Delete, OpKind::QueryResult, OpKind::RoundTrip];

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Delete => "delete",
            OpKind::QueryResult => "query_result",
            OpKind::RoundTrip => "round_trip",
        }
    }
}

/// The counts of one request (or of any scope that installs them).
#[derive(Debug, Default)]
pub struct OpsCounts {
    reads: AtomicU64,
    writes: AtomicU64,
    deletes: AtomicU64,
    query_results: AtomicU64,
    round_trips: AtomicU64,
    tenant: Mutex<Option<String>>,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpsSnapshot {
    pub reads: u64,
    pub writes: u64,
    pub deletes: u64,
    pub query_results: u64,
    pub round_trips: u64,
}

impl OpsSnapshot {
    /// The count of `kind`.
    pub fn get(&self, kind: OpKind) -> u64 {
        match kind {
            OpKind::Read => self.reads,
            OpKind::Write => self.writes,
            OpKind::Delete => self.deletes,
            OpKind::QueryResult => self.query_results,
            OpKind::RoundTrip => self.round_trips,
        }
    }
}

impl OpsCounts {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn cell(&self, kind: OpKind) -> &AtomicU64 {
        match kind {
            OpKind::Read => &self.reads,
            OpKind::Write => &self.writes,
            OpKind::Delete => &self.deletes,
            OpKind::QueryResult => &self.query_results,
            OpKind::RoundTrip => &self.round_trips,
        }
    }

    /// Adds `n` operations of `kind`.
    pub fn add(&self, kind: OpKind, n: u64) {
        self.cell(kind).fetch_add(n, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> OpsSnapshot {
        OpsSnapshot {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
            query_results: self.query_results.load(Ordering::Relaxed),
            round_trips: self.round_trips.load(Ordering::Relaxed),
        }
    }

    /// The tenant the request acted for, when a verified token named one.
    pub fn tenant(&self) -> Option<String> {
        self.tenant.lock().clone()
    }

    /// Runs `f` with these counts as the current ones.
    pub async fn scope<F: Future>(self: Arc<Self>, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }
}

/// Records `n` operations of `kind` into the current request's counts (nothing outside one).
pub fn record(kind: OpKind, n: u64) {
    if n > 0 {
        let _ = CURRENT.try_with(|counts| counts.add(kind, n));
    }
}

/// Notes the tenant of the current request (for its log line).
pub fn note_tenant(tenant: &str) {
    let _ = CURRENT.try_with(|counts| *counts.tenant.lock() = Some(tenant.to_owned()));
}

/// The current request's counts, if any (to carry into a spawned task with
/// [`OpsCounts::scope`]).
pub fn current() -> Option<Arc<OpsCounts>> {
    CURRENT.try_with(Arc::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_only_inside_a_scope() {
        record(OpKind::Read, 5);
        let counts = OpsCounts::new();
        counts
            .clone()
            .scope(async {
                record(OpKind::Read, 2);
                record(OpKind::Write, 1);
                record(OpKind::QueryResult, 3);
                record(OpKind::RoundTrip, 2);
                note_tenant("t1");
                let inner = current().unwrap();
                tokio::spawn(inner.scope(async { record(OpKind::Delete, 4) })).await.unwrap();
            })
            .await;
        let snap = counts.snapshot();
        assert_eq!(
            snap,
            OpsSnapshot { reads: 2, writes: 1, deletes: 4, query_results: 3, round_trips: 2 }
        );
        for kind in OpKind::ALL {
            assert!(snap.get(kind) > 0, "{kind:?} is kept apart");
        }
        assert_eq!(counts.tenant().as_deref(), Some("t1"));
    }
}
