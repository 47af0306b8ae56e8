//! Counting what Firestore bills, at the one place every RPC passes: `Db::call` hands each
//! answer to [`Billable::bill`], which records it in the current request's counts
//! (`metering`; nothing outside a request).
//!
//! - `GetDocument`: one read (a missing document is billed a read too; `Db::get_document`
//!   records that case, which arrives as `NOT_FOUND`).
//! - `BatchGetDocuments`: one read per document asked, found or missing.
//! - `RunQuery`: one read and one query result per document returned, and one read for a
//!   query that returns nothing (Firestore's minimum charge).
//! - `Commit` and `BatchWrite`: one write or delete per applied write; a delete is told apart
//!   by its write result, which carries no `update_time` ("not set after a delete").
//!   Failed writes of a `BatchWrite` (a non-zero status) are not billed.
//!
//! Transactions' `BeginTransaction` / `Rollback` are free and not billed.
//!
//! Every RPC, whatever it answers, is also one round trip (`metering::OpKind::RoundTrip`,
//! recorded by `Db::call` before it sends): a `RunQuery` or `BatchGetDocuments` stream is one,
//! however many documents it carries; a transaction is each of its reads (the first begins it,
//! `crate::tx`) and its `Commit` (or `Rollback`).

use firestore::gcloud_sdk::google::firestore::v1::{
    BatchGetDocumentsResponse, BatchWriteResponse, CommitResponse, Document, RunQueryResponse,
    WriteResult,
};
use firestore::gcloud_sdk::tonic::{Status, Streaming};
use metering::{OpKind, record};

/// Spawns `task` on the runtime, counting what it costs into the current request's counts
/// (a spawned task runs outside the request's task-local otherwise).
pub(crate) fn spawn_counted<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match metering::current() {
        Some(counts) => tokio::spawn(counts.scope(task)),
        None => tokio::spawn(task),
    }
}

/// An RPC answer that knows what it cost.
pub(crate) trait Billable {
    /// The answer handed to the caller (a counting wrapper for streams).
    type Counted;
    fn bill(self) -> Self::Counted;
}

impl Billable for Document {
    type Counted = Document;
    fn bill(self) -> Document {
        record(OpKind::Read, 1);
        self
    }
}

fn bill_results<'a>(results: impl Iterator<Item = &'a WriteResult>) {
    let (mut writes, mut deletes) = (0, 0);
    for result in results {
        if result.update_time.is_some() {
            writes += 1;
        } else {
            deletes += 1;
        }
    }
    record(OpKind::Write, writes);
    record(OpKind::Delete, deletes);
}

impl Billable for CommitResponse {
    type Counted = CommitResponse;
    fn bill(self) -> CommitResponse {
        bill_results(self.write_results.iter());
        self
    }
}

impl Billable for BatchWriteResponse {
    type Counted = BatchWriteResponse;
    fn bill(self) -> BatchWriteResponse {
        let applied = self
            .write_results
            .iter()
            .enumerate()
            .filter(|(i, _)| self.status.get(*i).is_none_or(|s| s.code == 0))
            .map(|(_, r)| r);
        bill_results(applied);
        self
    }
}

impl Billable for () {
    type Counted = ();
    fn bill(self) {}
}

impl Billable for Streaming<RunQueryResponse> {
    type Counted = QueryStream;
    fn bill(self) -> QueryStream {
        QueryStream { inner: self, returned: 0, done: false }
    }
}

impl Billable for Streaming<BatchGetDocumentsResponse> {
    type Counted = BatchGetStream;
    fn bill(self) -> BatchGetStream {
        BatchGetStream { inner: self }
    }
}

/// A `RunQuery` answer that counts the documents as they arrive.
pub(crate) struct QueryStream {
    inner: Streaming<RunQueryResponse>,
    returned: u64,
    done: bool,
}

impl QueryStream {
    /// The next message, as `Streaming::message`.
    pub(crate) async fn message(&mut self) -> Result<Option<RunQueryResponse>, Status> {
        let next = self.inner.message().await?;
        match &next {
            Some(response) if response.document.is_some() => {
                self.returned += 1;
                record(OpKind::Read, 1);
                record(OpKind::QueryResult, 1);
            }
            Some(_) => {}
            None if !self.done => {
                self.done = true;
                if self.returned == 0 {
                    record(OpKind::Read, 1);
                }
            }
            None => {}
        }
        Ok(next)
    }
}

/// A `BatchGetDocuments` answer that counts a read per document, found or missing.
pub(crate) struct BatchGetStream {
    inner: Streaming<BatchGetDocumentsResponse>,
}

impl BatchGetStream {
    /// The next message, as `Streaming::message`.
    pub(crate) async fn message(&mut self) -> Result<Option<BatchGetDocumentsResponse>, Status> {
        let next = self.inner.message().await?;
        if next.as_ref().is_some_and(|r| r.result.is_some()) {
            record(OpKind::Read, 1);
        }
        Ok(next)
    }
}
