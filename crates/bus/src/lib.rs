//! Typed Pub/Sub publishing for Hearth, over the official `google-cloud-pubsub` crate
//! (googleapis/google-cloud-rust).
//!
//! Why this crate, and how it reaches the emulator: `google-cloud-pubsub` 1.x is Google's own
//! client (gRPC through tonic, batching, per-ordering-key sequencing, retries with backoff). It
//! does not read `PUBSUB_EMULATOR_HOST`, so [`Bus::connect`] points it at the emulator
//! explicitly: endpoint `http://{emulator_host}` (plaintext gRPC) and anonymous credentials
//! (`google_cloud_auth::credentials::anonymous`). In production it uses Application Default
//! Credentials and the default endpoint. The caller decides emulator mode from
//! `PUBSUB_EMULATOR_HOST` (read once by `runtime`'s config), exactly as the Google SDKs do.
//!
//! What the wrapper adds on top of the client:
//! - one [`Topic`] type per topic (from `domain::messages`): JSON body, the topic's ordering key,
//!   and the attributes `schema` (topic name) and `schema_version` on every message;
//! - a deadline per call ([`Bus::publish_within`]): a caller such as the sign-up hook never waits
//!   longer than it chose, whatever state Pub/Sub is in; the message may still be delivered
//!   afterwards (the client keeps retrying in the background within
//!   [`BusConfig::retry_budget`]), so subscribers must be idempotent (they are);
//! - one cached publisher (one batching task) per topic, created on first use, and replaced by
//!   a fresh one after [`BusConfig::keys_per_publisher`] ordering keys: the client (1.7) spawns
//!   a task with its own channel for every ordering key it sees and never removes it (its
//!   source's `TODO(#4012)`), so a publisher that takes one key per order, as the payment
//!   webhook's does, would grow by a task per order for as long as the instance lives. A
//!   replaced publisher finishes what it holds and its tasks end once no message uses it; a key
//!   with a message in flight stays on its publisher until that message is answered, so
//!   messages of one key are still sent one after another, in order, by one publisher;
//! - ordering keys that do not stay paused: the client pauses a key after a failed publish, and
//!   the wrapper resumes it so the next publish for that key is tried again;
//! - [`PublishError`], which says whether to retry ([`PublishError::is_retryable`]) and never
//!   shows transport details in its message (they stay in the error's `source` for logs).
//!
//! Connecting is cheap and does not touch the network: the gRPC channel connects lazily on the
//! first publish, so a function starts and answers `/healthz` while Pub/Sub is unreachable.

use domain::messages::Topic;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::retry_policy::RetryPolicyExt as _;
use google_cloud_pubsub::client::{BasePublisher, Publisher};
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::retry_policy::RetryableErrors;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Largest message body Pub/Sub accepts (10 MB).
pub const MAX_DATA_BYTES: usize = 10_000_000;
/// Most attributes a message may carry.
pub const MAX_ATTRIBUTES: usize = 100;
/// Longest attribute key, in bytes.
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 256;
/// Longest attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;
/// Attribute set by the bus on every message: the topic name of the schema.
pub const SCHEMA_ATTRIBUTE: &str = "schema";
/// Attribute set by the bus on every message: the schema version of the body.
pub const SCHEMA_VERSION_ATTRIBUTE: &str = "schema_version";

/// How to reach Pub/Sub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// The Google Cloud project that owns the topics.
    pub project_id: String,
    /// `host:port` of the Pub/Sub emulator (the value of `PUBSUB_EMULATOR_HOST`), or a full
    /// `http://` URL. `None` means production: default endpoint and Application Default
    /// Credentials.
    pub emulator_host: Option<String>,
    /// Deadline of [`Bus::publish`] (default 10 s).
    pub default_deadline: Duration,
    /// How long the client keeps retrying a message in the background, across transient
    /// failures, before giving up on it (default 60 s). Independent of a call's deadline.
    pub retry_budget: Duration,
    /// How long a publisher waits to fill a batch before sending it (default 5 ms).
    pub batch_delay: Duration,
    /// Ordering keys a topic's publisher takes before a fresh one replaces it (default 512):
    /// the client keeps a task for every ordering key it has seen, so it is rotated (below).
    pub keys_per_publisher: usize,
}

impl BusConfig {
    /// Defaults for `project_id`, in emulator mode when `emulator_host` is given.
    pub fn new(project_id: impl Into<String>, emulator_host: Option<String>) -> Self {
        Self {
            project_id: project_id.into(),
            emulator_host,
            default_deadline: Duration::from_secs(10),
            retry_budget: Duration::from_secs(60),
            batch_delay: Duration::from_millis(5),
            keys_per_publisher: 512,
        }
    }
}

/// The server-assigned id of a published message (the subscriber's `messageId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for MessageId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Extra attributes of one message, beside the `schema` and `schema_version` the bus adds.
///
/// Keys must not start with `goog` (reserved by Pub/Sub) nor be one of the bus's own keys;
/// Pub/Sub's limits on count and size are checked before anything is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes(BTreeMap<String, String>);

impl Attributes {
    /// No extra attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one attribute.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// Checks the caller's attributes and adds the schema attributes of `T`.
    fn finish<T: Topic>(self) -> Result<BTreeMap<String, String>, PublishError> {
        let invalid = |reason: String| PublishError::InvalidAttributes { topic: T::NAME, reason };
        let mut attributes = self.0;
        if attributes.len() + 2 > MAX_ATTRIBUTES {
            return Err(invalid(format!(
                "{} attributes, at most {} besides the schema attributes",
                attributes.len(),
                MAX_ATTRIBUTES - 2
            )));
        }
        for (key, value) in &attributes {
            if key.is_empty() || key.len() > MAX_ATTRIBUTE_KEY_BYTES {
                return Err(invalid(format!(
                    "attribute key of {} bytes, must be 1 to {MAX_ATTRIBUTE_KEY_BYTES}",
                    key.len()
                )));
            }
            if key.starts_with("goog") {
                return Err(invalid(format!("attribute key `{key}` is reserved by Pub/Sub")));
            }
            if key == SCHEMA_ATTRIBUTE || key == SCHEMA_VERSION_ATTRIBUTE {
                return Err(invalid(format!("attribute key `{key}` is set by the bus")));
            }
            if value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
                return Err(invalid(format!(
                    "value of `{key}` has {} bytes, at most {MAX_ATTRIBUTE_VALUE_BYTES}",
                    value.len()
                )));
            }
        }
        attributes.insert(SCHEMA_ATTRIBUTE.to_owned(), T::NAME.to_owned());
        attributes.insert(SCHEMA_VERSION_ATTRIBUTE.to_owned(), T::SCHEMA_VERSION.to_string());
        Ok(attributes)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Attributes {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`Bus::connect`] failed: the client could not be configured (a malformed emulator host,
/// or no Application Default Credentials in production).
#[derive(Debug, thiserror::Error)]
#[error("could not set up the Pub/Sub publisher client")]
pub struct ConnectError(#[source] BoxError);

/// Why a publish failed. The messages are safe to show; details are in `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// No answer within the caller's deadline. The message may still be published later.
    #[error("publishing to `{topic}` did not complete within {deadline:?}")]
    Timeout {
        /// The topic id.
        topic: &'static str,
        /// The deadline that passed.
        deadline: Duration,
    },
    /// Pub/Sub could not be reached or answered with a transient failure.
    #[error("Pub/Sub is unavailable for `{topic}`")]
    Unavailable {
        /// The topic id.
        topic: &'static str,
        /// What the client reported.
        #[source]
        source: BoxError,
    },
    /// The topic does not exist in the project.
    #[error("Pub/Sub topic `{topic}` does not exist")]
    TopicNotFound {
        /// The full topic path.
        topic: String,
    },
    /// The credentials were refused or are not allowed to publish to the topic.
    #[error("not allowed to publish to `{topic}`")]
    PermissionDenied {
        /// The topic id.
        topic: &'static str,
        /// What the client reported.
        #[source]
        source: BoxError,
    },
    /// Pub/Sub refused the message itself (invalid argument and the like).
    #[error("Pub/Sub rejected the message for `{topic}`")]
    Rejected {
        /// The topic id.
        topic: &'static str,
        /// What the client reported.
        #[source]
        source: BoxError,
    },
    /// The message could not be encoded as JSON.
    #[error("could not encode the message for `{topic}`")]
    Encode {
        /// The topic id.
        topic: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The encoded message is larger than Pub/Sub accepts.
    #[error("the message for `{topic}` has {bytes} bytes, more than Pub/Sub accepts")]
    TooLarge {
        /// The topic id.
        topic: &'static str,
        /// The encoded size.
        bytes: usize,
    },
    /// The attributes break Pub/Sub's rules or collide with the bus's own.
    #[error("invalid attributes for `{topic}`: {reason}")]
    InvalidAttributes {
        /// The topic id.
        topic: &'static str,
        /// Which rule was broken.
        reason: String,
    },
    /// An earlier message with the same ordering key failed; the key has been resumed, so the
    /// publish can be tried again.
    #[error("publishing to `{topic}` was paused for this ordering key after an earlier failure")]
    OrderingKeyPaused {
        /// The topic id.
        topic: &'static str,
    },
    /// The publisher's background task has stopped (the runtime is shutting down).
    #[error("the publisher for `{topic}` has shut down")]
    Shutdown {
        /// The topic id.
        topic: &'static str,
    },
}

impl PublishError {
    /// Whether the same publish may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::Unavailable { .. }
            | Self::OrderingKeyPaused { .. }
            | Self::Shutdown { .. } => true,
            Self::TopicNotFound { .. }
            | Self::PermissionDenied { .. }
            | Self::Rejected { .. }
            | Self::Encode { .. }
            | Self::TooLarge { .. }
            | Self::InvalidAttributes { .. } => false,
        }
    }

    /// Whether the caller's deadline passed (the outcome is unknown).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    fn from_client(
        topic: &'static str,
        topic_path: &str,
        error: google_cloud_pubsub::error::PublishError,
    ) -> Self {
        use google_cloud_pubsub::error::PublishError as Client;
        let rpc = match error {
            Client::Rpc(rpc) => rpc,
            Client::OrderingKeyPaused => return Self::OrderingKeyPaused { topic },
            Client::Shutdown => return Self::Shutdown { topic },
            other => return Self::Unavailable { topic, source: Box::new(other) },
        };
        let code = rpc.status().map(|status| status.code);
        let source: BoxError = Box::new(ArcError(rpc));
        match code {
            Some(Code::NotFound) => Self::TopicNotFound { topic: topic_path.to_owned() },
            Some(Code::PermissionDenied | Code::Unauthenticated) => {
                Self::PermissionDenied { topic, source }
            }
            Some(
                Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::OutOfRange
                | Code::AlreadyExists
                | Code::Unimplemented,
            ) => Self::Rejected { topic, source },
            // Unavailable, DeadlineExceeded, Aborted, Internal, ResourceExhausted, Unknown,
            // Cancelled, DataLoss, and errors without a status (I/O, connect, transport,
            // timeouts, exhausted retry budget, credentials that could not be fetched).
            _ => Self::Unavailable { topic, source },
        }
    }
}

/// The client's shared error, made into an owned `Error` for `source()` chains.
#[derive(Debug)]
struct ArcError(Arc<google_cloud_pubsub::Error>);

impl fmt::Display for ArcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ArcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// A Pub/Sub publisher for the typed topics of `domain::messages`. Cheap to clone; clones share
/// the connection and the per-topic publishers.
#[derive(Debug, Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    project_id: String,
    client: BasePublisher,
    publishers: Mutex<HashMap<&'static str, Rotation>>,
    default_deadline: Duration,
    batch_delay: Duration,
    keys_per_publisher: usize,
}

/// The publishers of one topic: the current one, and for every ordering key with a message in
/// flight, the publisher that message went to and how many are in flight.
#[derive(Debug)]
struct Rotation {
    current: Publisher,
    created: usize,
    keys_taken: usize,
    in_flight: HashMap<String, (Publisher, usize)>,
}

/// A message's hold on its ordering key's publisher, released when the message is answered.
struct KeyHold {
    bus: Arc<Inner>,
    topic: &'static str,
    key: String,
}

impl Drop for KeyHold {
    fn drop(&mut self) {
        let mut publishers = self.bus.publishers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rotation) = publishers.get_mut(self.topic)
            && let Some((_, count)) = rotation.in_flight.get_mut(&self.key)
        {
            *count -= 1;
            if *count == 0 {
                rotation.in_flight.remove(&self.key);
            }
        }
    }
}

impl Bus {
    /// Sets up the client. Does not contact Pub/Sub: the connection is made on first publish,
    /// so this succeeds (and startup goes on) while Pub/Sub is unreachable.
    pub async fn connect(config: BusConfig) -> Result<Self, ConnectError> {
        let retry_policy = RetryableErrors.with_time_limit(config.retry_budget);
        let mut builder = BasePublisher::builder().with_retry_policy(retry_policy);
        if let Some(host) = &config.emulator_host {
            let endpoint = if host.starts_with("http://") || host.starts_with("https://") {
                host.clone()
            } else {
                format!("http://{host}")
            };
            builder = builder.with_endpoint(endpoint).with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        let client = builder.build().await.map_err(|e| ConnectError(Box::new(e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                project_id: config.project_id,
                client,
                publishers: Mutex::new(HashMap::new()),
                default_deadline: config.default_deadline,
                batch_delay: config.batch_delay,
                keys_per_publisher: config.keys_per_publisher.max(1),
            }),
        })
    }

    /// The project the topics belong to.
    pub fn project_id(&self) -> &str {
        &self.inner.project_id
    }

    /// The full resource name of topic `T`: `projects/{project}/topics/{name}`.
    pub fn topic_path<T: Topic>(&self) -> String {
        format!("projects/{}/topics/{}", self.inner.project_id, T::NAME)
    }

    /// Publishes `msg` to topic `T` within [`BusConfig::default_deadline`].
    pub async fn publish<T: Topic>(
        &self,
        msg: &T::Message,
        attributes: Attributes,
    ) -> Result<MessageId, PublishError> {
        self.publish_within::<T>(msg, attributes, self.inner.default_deadline).await
    }

    /// Publishes `msg` to topic `T` as JSON, with `T`'s ordering key and the schema
    /// attributes, and waits at most `deadline` for the server's message id.
    ///
    /// After a [`PublishError::Timeout`] the message may still be published: the client keeps
    /// trying within [`BusConfig::retry_budget`], and the late outcome is logged.
    #[tracing::instrument(
        name = "bus.publish",
        skip_all,
        fields(topic = T::NAME, message_id = tracing::field::Empty),
    )]
    pub async fn publish_within<T: Topic>(
        &self,
        msg: &T::Message,
        attributes: Attributes,
        deadline: Duration,
    ) -> Result<MessageId, PublishError> {
        let data = serde_json::to_vec(msg)
            .map_err(|source| PublishError::Encode { topic: T::NAME, source })?;
        if data.len() > MAX_DATA_BYTES {
            return Err(PublishError::TooLarge { topic: T::NAME, bytes: data.len() });
        }
        let attributes = attributes.finish::<T>()?;
        let ordering_key = T::ordering_key(msg).filter(|key| !key.is_empty());
        let mut message = Message::new().set_data(data).set_attributes(attributes);
        if let Some(key) = &ordering_key {
            message = message.set_ordering_key(key.clone());
        }

        let (publisher, hold) = self.publisher::<T>(ordering_key.as_deref());
        let mut pending = publisher.publish(message);
        match tokio::time::timeout(deadline, &mut pending).await {
            Ok(Ok(id)) => {
                tracing::Span::current().record("message_id", id.as_str());
                Ok(MessageId(id))
            }
            Ok(Err(error)) => {
                if let Some(key) = ordering_key {
                    publisher.resume_publish(key);
                }
                let error = PublishError::from_client(T::NAME, &self.topic_path::<T>(), error);
                tracing::warn!(error = %error, source = ?std::error::Error::source(&error), "publish failed");
                Err(error)
            }
            Err(_elapsed) => {
                tracing::warn!(?deadline, "publish did not complete within its deadline");
                watch_late_outcome(T::NAME, publisher, pending, ordering_key, hold);
                Err(PublishError::Timeout { topic: T::NAME, deadline })
            }
        }
    }

    /// Sends every batched message now and waits for the answers (use before shutdown).
    pub async fn flush(&self) {
        let publishers: Vec<Publisher> = {
            let rotations = self.inner.publishers.lock().unwrap_or_else(PoisonError::into_inner);
            rotations
                .values()
                .flat_map(|r| {
                    std::iter::once(&r.current).chain(r.in_flight.values().map(|(p, _)| p))
                })
                .cloned()
                .collect()
        };
        for publisher in publishers {
            publisher.flush().await;
        }
    }

    /// Publishers created for topic `T` so far (each rotation adds one).
    pub fn publishers_created<T: Topic>(&self) -> usize {
        let rotations = self.inner.publishers.lock().unwrap_or_else(PoisonError::into_inner);
        rotations.get(T::NAME).map_or(0, |r| r.created)
    }

    /// The publisher for a message of topic `T` with `ordering_key`: the one its key's
    /// messages in flight use, else the current one (replaced by a fresh one when it has taken
    /// its share of keys); with a hold that keeps the key on it until the message is answered.
    fn publisher<T: Topic>(&self, ordering_key: Option<&str>) -> (Publisher, Option<KeyHold>) {
        let inner = &self.inner;
        let fresh = || {
            inner
                .client
                .publisher(self.topic_path::<T>())
                .set_delay_threshold(inner.batch_delay)
                .build()
        };
        let mut rotations = inner.publishers.lock().unwrap_or_else(PoisonError::into_inner);
        let rotation = rotations.entry(T::NAME).or_insert_with(|| Rotation {
            current: fresh(),
            created: 1,
            keys_taken: 0,
            in_flight: HashMap::new(),
        });
        let Some(key) = ordering_key else { return (rotation.current.clone(), None) };
        let hold = KeyHold { bus: Arc::clone(inner), topic: T::NAME, key: key.to_owned() };
        if let Some((publisher, count)) = rotation.in_flight.get_mut(key) {
            *count += 1;
            return (publisher.clone(), Some(hold));
        }
        if rotation.keys_taken > 0 && rotation.keys_taken.is_multiple_of(inner.keys_per_publisher) {
            rotation.current = fresh();
            rotation.created += 1;
        }
        rotation.keys_taken += 1;
        rotation.in_flight.insert(key.to_owned(), (rotation.current.clone(), 1));
        (rotation.current.clone(), Some(hold))
    }
}

/// Keeps watching a message whose caller stopped waiting: logs its late outcome, and resumes
/// its ordering key if it finally fails, so later messages with that key are not refused.
fn watch_late_outcome(
    topic: &'static str,
    publisher: Publisher,
    pending: google_cloud_pubsub::publisher::PublishFuture,
    ordering_key: Option<String>,
    hold: Option<KeyHold>,
) {
    tokio::spawn(async move {
        let _hold = hold;
        match pending.await {
            Ok(id) => tracing::info!(topic, message_id = %id, "late publish succeeded"),
            Err(error) => {
                tracing::warn!(topic, error = %error, "late publish failed");
                if let Some(key) = ordering_key {
                    publisher.resume_publish(key);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::messages::UserSignups;

    #[test]
    fn schema_attributes_are_added() {
        let attributes = Attributes::from([("event_id", "e1")]).finish::<UserSignups>().unwrap();
        assert_eq!(attributes.get("event_id").map(String::as_str), Some("e1"));
        assert_eq!(attributes.get(SCHEMA_ATTRIBUTE).map(String::as_str), Some("user-signups"));
        assert_eq!(attributes.get(SCHEMA_VERSION_ATTRIBUTE).map(String::as_str), Some("1"));
    }

    #[test]
    fn bad_attributes_are_refused_before_sending() {
        let cases = [
            Attributes::new().with("googclient_x", "1"),
            Attributes::new().with(SCHEMA_VERSION_ATTRIBUTE, "9"),
            Attributes::new().with("", "1"),
            Attributes::new().with("k".repeat(MAX_ATTRIBUTE_KEY_BYTES + 1), "1"),
            Attributes::new().with("k", "v".repeat(MAX_ATTRIBUTE_VALUE_BYTES + 1)),
            (0..MAX_ATTRIBUTES - 1).map(|i| (format!("k{i}"), "v")).collect(),
        ];
        for attributes in cases {
            let err = attributes.finish::<UserSignups>().unwrap_err();
            assert!(matches!(err, PublishError::InvalidAttributes { .. }), "{err:?}");
            assert!(!err.is_retryable());
        }
        let most: Attributes = (0..MAX_ATTRIBUTES - 2).map(|i| (format!("k{i}"), "v")).collect();
        assert_eq!(most.finish::<UserSignups>().unwrap().len(), MAX_ATTRIBUTES);
    }

    #[test]
    fn client_errors_are_classified() {
        use google_cloud_gax::error::rpc::Status;
        use google_cloud_pubsub::error::PublishError as Client;
        let rpc = |code| {
            Client::Rpc(Arc::new(google_cloud_pubsub::Error::service(
                Status::default().set_code(code).set_message("internal detail"),
            )))
        };
        let path = "projects/p/topics/user-signups";
        let not_found = PublishError::from_client("user-signups", path, rpc(Code::NotFound));
        assert!(matches!(&not_found, PublishError::TopicNotFound { topic } if topic == path));
        assert!(!not_found.is_retryable());

        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Internal, Code::Aborted] {
            let err = PublishError::from_client("t", path, rpc(code));
            assert!(matches!(err, PublishError::Unavailable { .. }), "{err:?}");
            assert!(err.is_retryable());
            assert!(!err.to_string().contains("internal detail"), "{err}");
        }
        for code in [Code::PermissionDenied, Code::InvalidArgument] {
            assert!(!PublishError::from_client("t", path, rpc(code)).is_retryable());
        }
        let io = Client::Rpc(Arc::new(google_cloud_pubsub::Error::io("connection refused")));
        assert!(PublishError::from_client("t", path, io).is_retryable());
        assert!(PublishError::from_client("t", path, Client::OrderingKeyPaused).is_retryable());
        assert!(PublishError::from_client("t", path, Client::Shutdown).is_retryable());
    }

    #[tokio::test]
    async fn connect_does_not_contact_pubsub() {
        // Nothing listens on port 9 of the loopback; connecting must still succeed at once.
        let config = BusConfig::new("p", Some("127.0.0.1:9".to_owned()));
        let bus = Bus::connect(config).await.unwrap();
        assert_eq!(bus.topic_path::<UserSignups>(), "projects/p/topics/user-signups");
    }
}
