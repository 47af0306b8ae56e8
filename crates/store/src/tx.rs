//! Transactions that retry on contention: `db.run_transaction(|tx| Box::pin(async move {...}))`.
//!
//! Why not the firestore crate's own `run_transaction`: it retries every error the closure
//! returns through `?` (a `NOT_FOUND` or a business rule as much as `ABORTED`), never retries a
//! failed `BeginTransaction` (an `UNAVAILABLE` on the first call is final), and its backoff is
//! the `backoff` crate's, not the policy in `domain`. This helper drives the RPCs itself: the
//! first read begins the transaction (`BatchGetDocuments` with `new_transaction`, naming the
//! previous attempt in `retry_transaction`), so no `BeginTransaction` round trip is spent; later
//! reads go under the transaction id it answered; then `Commit`. A transaction whose closure
//! read nothing commits its writes as one plain atomic commit. A failed attempt is always
//! rolled back. It runs again only for the
//! retryable codes of the official Node client's transactions (ABORTED, CANCELLED, UNKNOWN, DEADLINE_EXCEEDED,
//! INTERNAL, UNAVAILABLE, UNAUTHENTICATED, RESOURCE_EXHAUSTED, INVALID_ARGUMENT "transaction has
//! expired"), with the bounded jittered [`Backoff`] of `domain` (RESOURCE_EXHAUSTED waits the
//! maximum), up to its attempt limit; then the last error is returned (still retryable, so the
//! caller answers *retry*).
//!
//! The closure may run more than once: read everything through `tx`, and keep side effects that
//! are not safe to repeat out of it.

use crate::db::{Db, decode};
use crate::error::{Code, Error, TransactionError};
use crate::paths::DocPath;
use domain::backoff::Backoff;
use firestore::gcloud_sdk::google::firestore::v1::batch_get_documents_request::ConsistencySelector as Selector;
use firestore::gcloud_sdk::google::firestore::v1::{
    DocumentTransform, RollbackRequest, TransactionOptions, Value, Write,
    document_transform::FieldTransform, document_transform::field_transform::TransformType,
    transaction_options, value::ValueType, write,
};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;

/// An open read-write transaction: reads go through it, writes are queued and committed when
/// the closure returns `Ok`.
///
/// The `'env` lifetime lets the closure's future borrow from the caller's scope.
pub struct Tx<'env> {
    db: Db,
    /// The transaction id, once the first read began it (shared with the attempt's rollback
    /// guard); the lock also makes concurrent first reads begin it once.
    id: Arc<tokio::sync::Mutex<Option<Vec<u8>>>>,
    /// The attempt this one retries, named when the first read begins the transaction.
    retrying: Option<Vec<u8>>,
    writes: Vec<Write>,
    _env: PhantomData<&'env ()>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("writes", &self.writes.len()).finish_non_exhaustive()
    }
}

impl Tx<'_> {
    /// Reads `path` in the transaction (locks it until commit); `None` when it does not exist.
    pub async fn get<T: DeserializeOwned>(&self, path: &DocPath) -> Result<Option<T>, Error> {
        let mut found = self.get_all::<T>(std::slice::from_ref(path)).await?;
        Ok(found.pop().flatten())
    }

    /// Reads every document of `paths` in the transaction, in one round trip (one
    /// `BatchGetDocuments`); `None` for a missing one, in the order asked.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        paths: &[DocPath],
    ) -> Result<Vec<Option<T>>, Error> {
        let docs = self.get_documents(paths).await?;
        paths
            .iter()
            .zip(docs)
            .map(|(path, doc)| doc.map(|doc| decode(path, &doc)).transpose())
            .collect()
    }

    /// [`Tx::get_all`] as raw documents (for reads of several types in one round trip).
    pub(crate) async fn get_documents(
        &self,
        paths: &[DocPath],
    ) -> Result<Vec<Option<firestore::gcloud_sdk::google::firestore::v1::Document>>, Error> {
        let names: Vec<String> =
            paths.iter().map(|p| p.full_name(self.db.documents_root())).collect();
        let docs = {
            let mut id = self.id.lock().await;
            let selector = match id.as_ref() {
                Some(id) => Selector::Transaction(id.clone()),
                None => Selector::NewTransaction(read_write(self.retrying.clone())),
            };
            let (docs, begun) = crate::rpc::batch_get_in(&self.db, names, Some(selector)).await?;
            if id.is_none() {
                *id = Some(begun.ok_or_else(|| {
                    Error::rpc(Code::Internal, "the first read began no transaction")
                })?);
            }
            docs
        };
        Ok(docs)
    }

    /// Queues a write replacing `path` with `value`.
    pub fn set<T: Serialize>(&mut self, path: &DocPath, value: &T) -> Result<(), Error> {
        let write = self.db.set_write(path, value)?;
        self.writes.push(write);
        Ok(())
    }

    /// Queues the creation of `path`; the commit fails with `ALREADY_EXISTS` if it exists.
    pub fn create<T: Serialize>(&mut self, path: &DocPath, value: &T) -> Result<(), Error> {
        let write = self.db.create_write(path, value)?;
        self.writes.push(write);
        Ok(())
    }

    /// Queues the deletion of `path`.
    pub fn delete(&mut self, path: &DocPath) {
        let write = self.db.delete_write(path);
        self.writes.push(write);
    }

    /// Queues a server-side increment of the integer field `field` of `path` (created if
    /// missing).
    pub fn increment(&mut self, path: &DocPath, field: &str, by: i64) {
        self.writes.push(Write {
            operation: Some(write::Operation::Transform(DocumentTransform {
                document: path.full_name(self.db.documents_root()),
                field_transforms: vec![FieldTransform {
                    field_path: field.to_owned(),
                    transform_type: Some(TransformType::Increment(Value {
                        value_type: Some(ValueType::IntegerValue(by)),
                    })),
                }],
            })),
            ..Default::default()
        });
    }

    /// Queues a write built by the caller (e.g. a counter shard increment).
    pub(crate) fn push_write(&mut self, write: Write) {
        self.writes.push(write);
    }

    /// The database the transaction runs on.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// How many writes are queued.
    pub fn pending_writes(&self) -> usize {
        self.writes.len()
    }
}

/// Rolls the transaction back if it was begun and neither committed nor rolled back (the
/// caller's future was dropped mid-way), so its locks do not linger until the 60 s idle expiry.
struct OpenTransaction {
    db: Db,
    id: Arc<tokio::sync::Mutex<Option<Vec<u8>>>>,
    done: bool,
}

impl OpenTransaction {
    /// The transaction id, if a read began it.
    async fn id(&self) -> Option<Vec<u8>> {
        self.id.lock().await.clone()
    }

    async fn rollback(mut self) {
        self.done = true;
        if let Some(id) = self.id().await {
            rollback(&self.db, id).await;
        }
    }

    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let id = self.id.try_lock().ok().and_then(|id| id.clone());
        if let Some(id) = id
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let db = self.db.clone();
            handle.spawn(async move { rollback(&db, id).await });
        }
    }
}

/// Read-write transaction options, naming the attempt this one retries.
fn read_write(retry_transaction: Option<Vec<u8>>) -> TransactionOptions {
    TransactionOptions {
        mode: Some(transaction_options::Mode::ReadWrite(transaction_options::ReadWrite {
            retry_transaction: retry_transaction.unwrap_or_default(),
            ..Default::default()
        })),
    }
}

async fn rollback(db: &Db, id: Vec<u8>) {
    let request = RollbackRequest {
        database: db.database_name().to_owned(),
        transaction: id,
        ..Default::default()
    };
    let result = match db.client().await {
        Ok(mut client) => db.call(client.rollback(request)).await,
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        tracing::debug!(%error, "transaction rollback failed (the transaction expires on its own)");
    }
}

impl Db {
    /// Runs `f` in a read-write transaction and commits its writes, retrying on contention and
    /// the other retryable codes with [`DbConfig::transaction_backoff`](crate::DbConfig).
    ///
    /// ```no_run
    /// # async fn example(db: store::Db) -> Result<(), store::Error> {
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Counter { value: i64 }
    ///
    /// let path = store::paths::counter_shard(&store::paths::product("p1")?, 0);
    /// let path = &path;
    /// let total = db
    ///     .run_transaction(|tx| Box::pin(async move {
    ///         let current: Option<Counter> = tx.get(path).await?;
    ///         let value = current.map_or(1, |c| c.value + 1);
    ///         tx.set(path, &Counter { value })?;
    ///         Ok::<_, store::Error>(value)
    ///     }))
    ///     .await?;
    /// # let _ = total;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_transaction<'env, T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: for<'a> FnMut(&'a mut Tx<'env>) -> BoxFuture<'a, Result<T, E>> + Send,
        E: TransactionError + Send,
        T: Send,
    {
        let backoff = self.config().transaction_backoff;
        self.run_transaction_with(backoff, f).await
    }

    /// [`run_transaction`](Self::run_transaction) with an explicit retry policy.
    pub async fn run_transaction_with<'env, T, E, F>(
        &self,
        backoff: Backoff,
        mut f: F,
    ) -> Result<T, E>
    where
        F: for<'a> FnMut(&'a mut Tx<'env>) -> BoxFuture<'a, Result<T, E>> + Send,
        E: TransactionError + Send,
        T: Send,
    {
        let mut previous: Option<Vec<u8>> = None;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(previous.take(), &mut f).await {
                Ok(value) => return Ok(value),
                Err((error, id)) => {
                    previous = id;
                    error
                }
            };
            if !error.is_retryable() || !backoff.should_retry(attempt) {
                return Err(error);
            }
            let draw = rand::random::<f64>();
            let delay = if error.is_resource_exhausted() {
                backoff.exhausted_delay(draw)
            } else {
                backoff.delay(attempt, draw)
            };
            tracing::debug!(attempt, ?delay, "transaction attempt failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt; on failure also returns the transaction id to name in the next attempt.
    async fn attempt<'env, T, E, F>(
        &self,
        previous: Option<Vec<u8>>,
        f: &mut F,
    ) -> Result<T, (E, Option<Vec<u8>>)>
    where
        F: for<'a> FnMut(&'a mut Tx<'env>) -> BoxFuture<'a, Result<T, E>> + Send,
        E: TransactionError + Send,
    {
        let id = Arc::new(tokio::sync::Mutex::new(None));
        let guard = OpenTransaction { db: self.clone(), id: id.clone(), done: false };
        let mut tx = Tx {
            db: self.clone(),
            id,
            retrying: previous.clone(),
            writes: Vec::new(),
            _env: PhantomData,
        };
        let outcome = f(&mut tx).await;
        // The id of this attempt if a read began it, else the one it would have retried.
        let id = guard.id().await;
        let named = id.clone().or(previous);
        match outcome {
            Ok(value) => {
                // Without a read there is no transaction: the writes commit atomically alone.
                let request = firestore::gcloud_sdk::google::firestore::v1::CommitRequest {
                    database: self.database_name().to_owned(),
                    writes: std::mem::take(&mut tx.writes),
                    transaction: id.unwrap_or_default(),
                    ..Default::default()
                };
                let committed = match self.client().await {
                    Ok(mut client) => self.call(client.commit(request)).await.map(drop),
                    Err(error) => Err(error),
                };
                match committed {
                    Ok(()) => {
                        guard.finish();
                        Ok(value)
                    }
                    Err(error) => {
                        // A failed commit normally ends the transaction already; rolling back
                        // is harmless and releases locks if it did not.
                        guard.rollback().await;
                        Err((E::from(error), named))
                    }
                }
            }
            Err(error) => {
                guard.rollback().await;
                Err((error, named))
            }
        }
    }
}

/// Whether a transaction error is `RESOURCE_EXHAUSTED` (then the backoff jumps to its maximum).
trait ResourceExhausted {
    fn is_resource_exhausted(&self) -> bool;
}

impl<E: TransactionError> ResourceExhausted for E {
    fn is_resource_exhausted(&self) -> bool {
        self.store_error().and_then(Error::code) == Some(Code::ResourceExhausted)
    }
}
