//! The record kept when an event fails permanently and is acknowledged so it does not loop,
//! and the [`DeadLetterSink`] trait that records it (`store` implements it over Firestore;
//! `runtime` hands every permanent error to one and provides log-only and in-memory sinks).
//! The trait is defined here, beside the record, so `store` needs no `runtime` to implement
//! it; this crate does no I/O itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// A boxed, sendable future (what object-safe async trait methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Records dead letters. Recording must be idempotent on `dl.id`: a redelivered event that
/// fails again produces the same id and should overwrite, not duplicate.
///
/// If `record` fails, `runtime`'s error middleware answers 503 instead of 200, so the sender
/// redelivers and nothing is lost.
pub trait DeadLetterSink: Send + Sync + 'static {
    fn record(&self, dl: DeadLetter) -> BoxFuture<'_, anyhow::Result<()>>;
}

impl fmt::Debug for dyn DeadLetterSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn DeadLetterSink")
    }
}

/// What `runtime` records (through a sink that `store` implements) before acknowledging an
/// event that can never succeed. Stored as `dead_letters/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Deterministic id: the stable event key when known (so a redelivery overwrites, never
    /// duplicates), otherwise a generated one.
    pub id: String,
    /// The function and route that gave up, e.g. `onboarding POST /pubsub/user-signups`.
    pub source: String,
    /// The stable event key (Pub/Sub message id, CloudEvent id, webhook event id), if any.
    pub event_id: Option<String>,
    /// A short, operator-facing reason.
    pub reason: String,
    /// The full error chain, for operators only (never sent to callers).
    pub detail: String,
    /// RFC 3339 time the failure was recorded.
    pub recorded_at: String,
    /// The event claimed to be about something it is not (an order it does not pay, a
    /// provider payment that is someone else's): a suspected forgery, for operators to look at.
    #[serde(default)]
    pub suspected_forgery: bool,
}
