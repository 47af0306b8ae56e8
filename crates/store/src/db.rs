//! `Db`: the Firestore client, created lazily so a function starts (and answers `/healthz`)
//! while Firestore is unreachable.
//!
//! The `firestore` crate opens its gRPC channel when a `FirestoreDb` is created (gcloud-sdk's
//! `Channel::connect().await`, with a 30 s connect timeout). `Db::new` therefore does no I/O:
//! the client is built on first use behind a `tokio::sync::OnceCell`, bounded by
//! [`DbConfig::connect_timeout`]; a failed attempt leaves the cell empty, so the next operation
//! tries again, and the failure is a retryable [`Error::Unreachable`].
//!
//! Emulator vs production. The firestore crate reads `FIRESTORE_EMULATOR_HOST` itself in
//! `FirestoreDb::with_options` / `with_options_auth` (`FirestoreDbEndpoint::from_env`). `store`
//! takes the emulator host explicitly from its config instead: for the emulator it sets
//! `firebase_api_url` to `http://{host}` (which the crate prefers over the variable) and passes
//! its own credentials serving `Authorization: Bearer owner`, the token the Firebase tools send,
//! which the emulator requires for admin-only RPCs such as BatchWrite ("Batch writes require
//! admin authentication", firebase-tools #3833). For production it uses
//! `FirestoreDb::with_options` (Application Default Credentials); there the crate would still
//! switch to the emulator if `FIRESTORE_EMULATOR_HOST` were set in the process, which
//! `runtime`'s config also reads, so both always agree.

use crate::error::{Code, Error};
use crate::ops::Billable;
use crate::paths::{self, DocPath};
use domain::backoff::Backoff;
use firestore::gcloud_sdk::GoogleAuthMiddleware;
use firestore::gcloud_sdk::google::firestore::v1::firestore_client::FirestoreClient;
use firestore::gcloud_sdk::google::firestore::v1::{
    CommitRequest, Document, GetDocumentRequest, Precondition, Write, precondition, write,
};
use firestore::gcloud_sdk::google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use firestore::gcloud_sdk::google_cloud_auth::errors::CredentialsError;
use firestore::gcloud_sdk::prost_types::Timestamp;
use firestore::gcloud_sdk::tonic;
use firestore::{FirestoreDb, FirestoreDbOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::OnceCell;

/// How to reach Firestore, from plain values (a function's config reads them from the
/// environment through `runtime`).
#[derive(Debug, Clone, PartialEq)]
pub struct DbConfig {
    /// The Google Cloud project.
    pub project_id: String,
    /// The database id, `(default)` unless named.
    pub database_id: String,
    /// `host:port` of the Firestore emulator (`FIRESTORE_EMULATOR_HOST`), or `None` for
    /// production.
    pub emulator_host: Option<String>,
    /// Longest wait for the connection on first use.
    pub connect_timeout: Duration,
    /// Longest wait for one request (`None`: no limit).
    pub request_timeout: Option<Duration>,
    /// Retry policy of [`Db::run_transaction`].
    pub transaction_backoff: Backoff,
}

impl DbConfig {
    /// Production Firestore of `project_id`, default database.
    pub fn production(project_id: impl Into<String>) -> Self {
        Self {
            project_id: project_id.into(),
            database_id: firestore::FIREBASE_DEFAULT_DATABASE_ID.to_owned(),
            emulator_host: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Some(Duration::from_secs(30)),
            transaction_backoff: Backoff::firestore_transaction(),
        }
    }

    /// Firestore of `project_id`: the emulator at `emulator_host` (`host:port`, as
    /// `FIRESTORE_EMULATOR_HOST` names it) when given, production otherwise. A function's config
    /// calls this with the values `runtime`'s `BaseConfig` parsed.
    pub fn new(project_id: impl Into<String>, emulator_host: Option<String>) -> Self {
        match emulator_host {
            Some(host) => Self::emulator(project_id, host),
            None => Self::production(project_id),
        }
    }

    /// The emulator at `host` (`host:port`, as `FIRESTORE_EMULATOR_HOST` names it).
    pub fn emulator(project_id: impl Into<String>, host: impl Into<String>) -> Self {
        Self { emulator_host: Some(host.into()), ..Self::production(project_id) }
    }
}

/// A cheap-to-clone handle on Firestore; connects on first use.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: DbConfig,
    database: String,
    documents_root: String,
    client: OnceCell<FirestoreDb>,
    group: crate::group::Group,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("database", &self.inner.database)
            .field("emulator_host", &self.inner.config.emulator_host)
            .field("connected", &self.inner.client.initialized())
            .finish()
    }
}

impl Db {
    /// A handle for `config`. Does no I/O and cannot fail: the connection is made on first use.
    pub fn new(config: DbConfig) -> Self {
        let database = paths::database_name(&config.project_id, &config.database_id);
        let documents_root = paths::documents_root(&config.project_id, &config.database_id);
        Self {
            inner: Arc::new(Inner {
                config,
                database,
                documents_root,
                client: OnceCell::new(),
                group: crate::group::Group::default(),
            }),
        }
    }

    /// A handle that does not keep the database alive (for background tasks).
    pub(crate) fn weak(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// The handle behind `weak`, while any other handle lives.
    pub(crate) fn upgrade(weak: &Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }

    /// The group commit queue of this handle ([`crate::group`]).
    pub(crate) fn group(&self) -> &crate::group::Group {
        &self.inner.group
    }

    /// The configuration this handle was made with.
    pub fn config(&self) -> &DbConfig {
        &self.inner.config
    }

    /// `projects/{p}/databases/{d}`
    pub fn database_name(&self) -> &str {
        &self.inner.database
    }

    /// `projects/{p}/databases/{d}/documents`
    pub fn documents_root(&self) -> &str {
        &self.inner.documents_root
    }

    /// Whether the client has been created (the connection was made once).
    pub fn is_connected(&self) -> bool {
        self.inner.client.initialized()
    }

    /// The underlying `firestore` crate client, created on first call (for queries and other
    /// APIs `store` does not wrap; build their parents with [`crate::paths`]).
    pub async fn firestore(&self) -> Result<&FirestoreDb, Error> {
        self.inner.client.get_or_try_init(|| self.connect()).await
    }

    /// Connects (if not yet) and reads one document to prove Firestore answers.
    pub async fn ready(&self) -> Result<(), Error> {
        let probe = paths::config("readiness-probe")?;
        self.get::<serde_json::Value>(&probe).await.map(drop)
    }

    async fn connect(&self) -> Result<FirestoreDb, Error> {
        let config = &self.inner.config;
        let mut options = FirestoreDbOptions::new(config.project_id.clone())
            .with_database_id(config.database_id.clone());
        options.request_timeout = config.request_timeout;
        let connecting = async {
            match &config.emulator_host {
                Some(host) => {
                    let url =
                        if host.contains("://") { host.clone() } else { format!("http://{host}") };
                    let options = options.with_firebase_api_url(url);
                    FirestoreDb::with_options_auth(options, Credentials::from(EmulatorOwner::new()))
                        .await
                }
                None => FirestoreDb::with_options(options).await,
            }
        };
        match tokio::time::timeout(config.connect_timeout, connecting).await {
            Ok(Ok(db)) => Ok(db),
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot connect to Firestore yet");
                Err(Error::Unreachable(error.to_string()))
            }
            Err(_) => Err(Error::Unreachable(format!(
                "no connection within {:?}",
                config.connect_timeout
            ))),
        }
    }

    /// A raw gRPC client (auth and routing headers included).
    pub(crate) async fn client(&self) -> Result<FirestoreClient<GoogleAuthMiddleware>, Error> {
        Ok(self.firestore().await?.client().get())
    }

    /// Runs one RPC under the request timeout, mapping failures to [`Error`]; the round trip
    /// (answered or not) and what the answer cost are counted for the current request
    /// ([`crate::ops`]).
    pub(crate) async fn call<T, Fut>(&self, rpc: Fut) -> Result<T::Counted, Error>
    where
        T: Billable,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        metering::record(metering::OpKind::RoundTrip, 1);
        let result = match self.inner.config.request_timeout {
            Some(limit) => match tokio::time::timeout(limit, rpc).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(Error::rpc(
                        Code::DeadlineExceeded,
                        format!("no answer within {limit:?}"),
                    ));
                }
            },
            None => rpc.await,
        };
        result.map(|answer| answer.into_inner().bill()).map_err(Error::from)
    }

    /// Reads `path` as a `T`; `None` when it does not exist.
    pub async fn get<T: DeserializeOwned>(&self, path: &DocPath) -> Result<Option<T>, Error> {
        let doc = self.get_document(path, None).await?;
        doc.map(|doc| decode(path, &doc)).transpose()
    }

    pub(crate) async fn get_document(
        &self,
        path: &DocPath,
        transaction: Option<&[u8]>,
    ) -> Result<Option<Document>, Error> {
        use firestore::gcloud_sdk::google::firestore::v1::get_document_request::ConsistencySelector;
        let request = GetDocumentRequest {
            name: path.full_name(self.documents_root()),
            consistency_selector: transaction
                .map(|id| ConsistencySelector::Transaction(id.to_vec())),
            ..Default::default()
        };
        let mut client = self.client().await?;
        match self.call(client.get_document(request)).await {
            Ok(doc) => Ok(Some(doc)),
            Err(Error::Rpc { code: Code::NotFound, .. }) => {
                // A lookup of a missing document is billed as a read.
                metering::record(metering::OpKind::Read, 1);
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Writes `value` to `path`, replacing the document.
    pub async fn set<T: Serialize>(&self, path: &DocPath, value: &T) -> Result<(), Error> {
        let write = self.set_write(path, value)?;
        self.commit(vec![write]).await
    }

    /// Creates `path` with `value`; fails with `ALREADY_EXISTS` when it exists.
    pub async fn create<T: Serialize>(&self, path: &DocPath, value: &T) -> Result<(), Error> {
        let write = self.create_write(path, value)?;
        self.commit(vec![write]).await
    }

    /// Deletes `path` (no error when it does not exist).
    pub async fn delete(&self, path: &DocPath) -> Result<(), Error> {
        self.commit(vec![self.delete_write(path)]).await
    }

    /// Commits `writes` atomically, outside any transaction.
    pub(crate) async fn commit(&self, writes: Vec<Write>) -> Result<(), Error> {
        self.commit_timed(writes).await.map(drop)
    }

    /// [`commit`](Self::commit), answering the update time of each write (`None` for a
    /// delete), the version a later write can be conditioned on
    /// ([`Db::update_time_precondition`]).
    pub(crate) async fn commit_timed(
        &self,
        writes: Vec<Write>,
    ) -> Result<Vec<Option<Timestamp>>, Error> {
        let request = CommitRequest {
            database: self.database_name().to_owned(),
            writes,
            ..Default::default()
        };
        let mut client = self.client().await?;
        let response = self.call(client.commit(request)).await?;
        Ok(response.write_results.into_iter().map(|r| r.update_time).collect())
    }

    /// The precondition "the document was last written at `update_time`": the write fails
    /// with `FAILED_PRECONDITION` (or `NOT_FOUND`) if anyone wrote or deleted it since.
    pub(crate) fn update_time_precondition(update_time: Timestamp) -> Precondition {
        Precondition { condition_type: Some(precondition::ConditionType::UpdateTime(update_time)) }
    }

    pub(crate) fn set_write<T: Serialize>(
        &self,
        path: &DocPath,
        value: &T,
    ) -> Result<Write, Error> {
        Ok(Write {
            operation: Some(write::Operation::Update(encode(path, self.documents_root(), value)?)),
            ..Default::default()
        })
    }

    pub(crate) fn create_write<T: Serialize>(
        &self,
        path: &DocPath,
        value: &T,
    ) -> Result<Write, Error> {
        let mut write = self.set_write(path, value)?;
        write.current_document =
            Some(Precondition { condition_type: Some(precondition::ConditionType::Exists(false)) });
        Ok(write)
    }

    pub(crate) fn delete_write(&self, path: &DocPath) -> Write {
        Write {
            operation: Some(write::Operation::Delete(path.full_name(self.documents_root()))),
            ..Default::default()
        }
    }
}

/// Serializes `value` into the document at `path`.
pub(crate) fn encode<T: Serialize>(
    path: &DocPath,
    documents_root: &str,
    value: &T,
) -> Result<Document, Error> {
    FirestoreDb::serialize_to_doc(path.full_name(documents_root), value)
        .map_err(|e| Error::Encode { path: path.relative(), message: e.to_string() })
}

/// Deserializes the document at `path`.
pub(crate) fn decode<T: DeserializeOwned>(path: &DocPath, doc: &Document) -> Result<T, Error> {
    FirestoreDb::deserialize_doc_to(doc)
        .map_err(|e| Error::Decode { path: path.relative(), message: e.to_string() })
}

/// The next of a batch read's documents (in the order asked), decoded from `path`'s document;
/// `None` when it does not exist.
pub(crate) fn next_decoded<T: DeserializeOwned>(
    docs: &mut impl Iterator<Item = Option<Document>>,
    path: &DocPath,
) -> Result<Option<T>, Error> {
    docs.next().flatten().map(|doc| decode(path, &doc)).transpose()
}

/// Credentials for the emulator: always `Authorization: Bearer owner` (what the Firebase tools
/// send; the emulator then treats the caller as an admin, which BatchWrite requires).
#[derive(Debug)]
struct EmulatorOwner {
    tag: EntityTag,
}

impl EmulatorOwner {
    fn new() -> Self {
        Self { tag: EntityTag::new() }
    }
}

impl CredentialsProvider for EmulatorOwner {
    async fn headers(
        &self,
        extensions: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, CredentialsError> {
        if extensions.get::<EntityTag>() == Some(&self.tag) {
            return Ok(CacheableResource::NotModified);
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer owner"));
        Ok(CacheableResource::New { entity_tag: self.tag.clone(), data: headers })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}
