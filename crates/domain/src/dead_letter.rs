//! The record kept when an event fails permanently and is acknowledged so it does not loop.

use serde::{Deserialize, Serialize};

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
