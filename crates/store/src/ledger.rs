//! The idempotency ledger: one document per scoped key in `idempotency/`, claimed and settled
//! with conditional writes (a transaction only when a claim finds a record), so that an event or
//! request is processed once in effect however often it is delivered.
//!
//! ```text
//! claim(scope, key, fingerprint, lease)
//!   no record (or record past expires_at) -> Fresh(token)      record: in_flight, lease
//!   other fingerprint                      -> Mismatch          (same key, other payload)
//!   done                                   -> Done(response)    (replay the saved answer)
//!   in_flight, lease running               -> InFlight{retry_after}
//!   in_flight, lease over (holder died)    -> Fresh(token)      (takeover, attempts + 1)
//!   released (holder failed)               -> Fresh(token)
//! complete(token, response) -> done, response saved     release(token) -> released
//! ```
//!
//! Callers go through [`Ledger::run_once`], which drives that protocol around their work:
//! claim, run, then complete with the work's output or release on failure, and answers
//! [`Outcome::Ran`], [`Outcome::Replayed`], [`Outcome::Busy`] or [`Outcome::Conflict`]. The
//! fingerprint is [`fingerprint`] of the payload: the SHA-256 of its serde JSON form, so renaming
//! a Rust item never changes it (only a change of the wire form does).
//!
//! # Round trips: the fast path and its fallbacks
//!
//! Most claims find no record, and most settles find the record as their claim left it, so
//! neither needs a transaction:
//!
//! ```text
//! claim     create, precondition exists = false                 1 round trip, 1 write
//!           ALREADY_EXISTS -> one plain read of the record      +1, 1 read
//!             done / in flight / other fingerprint: answered    (a read answers; nothing to write)
//!             released / lease over / past expires_at / gone:   +2 (its read, which begins it,
//!             the transaction of the table above                and its commit), 1 read, 1 write
//!           a retryable failure of the create -> the transaction (which retries)
//! complete  replace, precondition update_time = the claim's     1 round trip, 1 write
//! release   the same                                            1 round trip, 1 write
//!           precondition failed (the record changed since the claim: a later delivery took
//!           the lease over after it ran out, or the token settled already) -> LeaseLost
//!           a token from a transaction claim (a takeover) settles in a transaction (2)
//! ```
//!
//! The claim's create is group-committed (`crate::group`): creates of concurrent claims travel
//! in one `BatchWrite`, each with its own precondition and status, so a claim still waits for
//! one round trip and answers exactly as a lone commit would, while the requests are fewer.
//!
//! So [`Ledger::run_once`] costs 2 round trips and 2 writes on its happy path (it was 6 round
//! trips: begin, read, commit, twice; 2 reads, 2 writes), and a replay 2 round trips and 1 read
//! (it was 3). Transactions themselves begin with their first read (`crate::tx`). The answers are the table's: the plain read only answers what a transaction
//! would have answered from the same record (a done record never changes again; an in-flight
//! record read just before it settles answers "in flight", which a transaction reading at that
//! moment answers too), and every claim that writes still decides inside a transaction. A
//! settle conditioned on the claim's update time succeeds exactly when nobody wrote the record
//! since the claim, which is what the token check of the transactional settle proved.
//!
//! # The leased mode: one round trip, for work that is idempotent downstream
//!
//! [`Ledger::run_leased`] claims as above and runs the work, but never completes: the claim's
//! create is the only Firestore call of its happy path. The record then says "in flight" until
//! its lease ends, so a delivery of the same key within the lease answers [`Outcome::Busy`]
//! (the caller answers "retry later"), and one after the lease takes it over and runs the work
//! again. A failed work releases the key, so a retry runs at once. That is at least once, with
//! duplicates only for deliveries that arrive after the lease; it fits a caller whose work is
//! itself deduplicated further on, and only such a caller. `payment-webhook` uses it: the
//! payment processor applies each provider event once by its event id, so the webhook's dedupe
//! only keeps duplicate publishes rare. Crash safety: a crash after the create and before the
//! publish leaves an in-flight record and no 2xx to the provider, whose retries are answered
//! "busy" until the lease ends and then publish; the event is never lost as long as the
//! provider retries for longer than the lease (Stripe retries for days).
//!
//! Every record carries `expires_at`, a Firestore timestamp, for a TTL policy on the
//! `idempotency` collection group (default 24 h after the last change; TTL deletes within about
//! 24 h of that, so the ledger itself also treats a record past `expires_at` as absent).
//! The document id is `{scope}:{readable key prefix}:{sha-256 of scope and key, hex}`: the hash
//! makes it unique and safe whatever the key holds, the prefix keeps it readable.

use crate::db::Db;
use crate::error::{Code, Error};
use crate::paths::{self, DocPath};
use chrono::{DateTime, TimeDelta, Utc};
use domain::backoff::Backoff;
use firestore::FirestoreInstant;
use firestore::gcloud_sdk::prost_types::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::Duration;

/// Default time a record is kept after its last change (the TTL field's offset).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest readable prefix kept in a document id.
const PREFIX_CHARS: usize = 48;

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Nobody processed this key yet (or the previous holder failed or vanished): go ahead,
    /// then [`Ledger::complete`] or [`Ledger::release`] with the token.
    Fresh(LeaseToken),
    /// Another holder is processing it; ask again after `retry_after`.
    InFlight {
        /// Time left on the holder's lease.
        retry_after: Duration,
    },
    /// Already processed: this is the saved response.
    Done(serde_json::Value),
    /// The key was used with a different payload (fingerprint).
    Mismatch,
}

/// What became of [`Ledger::run_once`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// The work ran now and succeeded; its output is saved for later deliveries.
    Ran(T),
    /// The work ran before under this key: the output it saved then.
    Replayed(serde_json::Value),
    /// Another delivery holds the key right now; ask again after `retry_after`.
    Busy {
        /// Time left on the holder's lease.
        retry_after: Duration,
    },
    /// The key was used before with another payload: the work did not run.
    Conflict,
}

/// Why [`Ledger::run_once`] gave no [`Outcome`].
#[derive(Debug)]
pub enum RunError<E> {
    /// The ledger itself failed (the claim could not be made): the work did not run.
    Ledger(Error),
    /// The work failed; its claim was released so a retry runs it again.
    Work(E),
}

impl<E> RunError<E> {
    /// The work's error, or `ledger` applied to the ledger's.
    pub fn or_ledger(self, ledger: impl FnOnce(Error) -> E) -> E {
        match self {
            RunError::Ledger(error) => ledger(error),
            RunError::Work(error) => error,
        }
    }
}

/// The fingerprint of a payload: the SHA-256 of its serde JSON bytes, in hex. Same key with
/// another fingerprint is a [`Claim::Mismatch`] ([`Outcome::Conflict`]).
pub fn fingerprint<P: Serialize + ?Sized>(payload: &P) -> String {
    let bytes = serde_json::to_vec(payload).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Proof of holding the lease on a key: the record as the claim wrote it and, when the claim
/// was a plain create, the update time it got (what settling is conditioned on).
#[derive(Debug, Clone)]
pub struct LeaseToken {
    path: DocPath,
    record: Box<Record>,
    version: Option<Timestamp>,
}

impl PartialEq for LeaseToken {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.record.token == other.record.token
    }
}

impl Eq for LeaseToken {}

impl LeaseToken {
    /// The ledger document this token holds.
    pub fn path(&self) -> &DocPath {
        &self.path
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    InFlight,
    Done,
    Released,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    scope: String,
    key: String,
    fingerprint: String,
    state: State,
    token: String,
    attempts: u32,
    #[serde(with = "firestore::serialize_as_timestamp")]
    lease_until: FirestoreInstant,
    #[serde(with = "firestore::serialize_as_timestamp")]
    updated_at: FirestoreInstant,
    /// The TTL field.
    #[serde(with = "firestore::serialize_as_timestamp")]
    expires_at: FirestoreInstant,
    /// The saved response, as JSON text (exact round trip of any JSON value).
    #[serde(default)]
    response: Option<String>,
}

/// What the record found by a claim means (the table of the module docs).
enum Verdict {
    /// Answer without writing.
    Answer(Claim),
    /// Take the key: no live record, or its holder failed or vanished.
    Take {
        /// The attempt this claim is.
        attempts: u32,
    },
}

fn judge(
    path: &DocPath,
    existing: Option<&Record>,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Verdict, Error> {
    let live = existing.filter(|r| to_chrono(r.expires_at) > now);
    Ok(match live {
        None => Verdict::Take { attempts: 1 },
        Some(r) if r.fingerprint != fingerprint => Verdict::Answer(Claim::Mismatch),
        Some(r) if r.state == State::Done => {
            let saved = r.response.as_deref().unwrap_or("null");
            let value = serde_json::from_str(saved)
                .map_err(|e| Error::Decode { path: path.relative(), message: e.to_string() })?;
            Verdict::Answer(Claim::Done(value))
        }
        Some(r) if r.state == State::InFlight && to_chrono(r.lease_until) > now => {
            let left = (to_chrono(r.lease_until) - now).to_std().unwrap_or_default();
            Verdict::Answer(Claim::InFlight { retry_after: left })
        }
        // Released, or in flight with the lease over: take it over.
        Some(r) => Verdict::Take { attempts: r.attempts.saturating_add(1) },
    })
}

/// The ledger on one database.
#[derive(Debug, Clone)]
pub struct Ledger {
    db: Db,
    retention: Duration,
    backoff: Backoff,
}

impl Ledger {
    /// A ledger with the default 24 h retention.
    pub fn new(db: &Db) -> Self {
        Self {
            db: db.clone(),
            retention: DEFAULT_RETENTION,
            // Claims are short and contend on one document by design (concurrent redeliveries):
            // retry them more often and sooner than general transactions.
            backoff: Backoff {
                initial: Duration::from_millis(50),
                multiplier: 1.5,
                max: Duration::from_secs(2),
                max_attempts: 12,
                jitter_fraction: 0.5,
            },
        }
    }

    /// Replaces how long records are kept after their last change.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Replaces the retry policy of the ledger's transactions.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The ledger document of `key` in `scope`.
    pub fn path(scope: &str, key: &str) -> Result<DocPath, Error> {
        Ok(paths::idempotency(&scoped_id(scope, key))?)
    }

    /// Runs `work` at most once in effect for `key` in `scope` (payload `payload`, whose
    /// [`fingerprint`] must not change between deliveries), holding the key for `lease`.
    ///
    /// Success saves the output (its JSON; null if it has none) and answers
    /// [`Outcome::Ran`]; if saving fails, the output is still answered (the work is done; a
    /// later delivery takes the lease over once it ends and runs the work again, so work run
    /// here must be idempotent by itself). Failure releases the key (so a retry runs at once)
    /// and answers [`RunError::Work`]; a failed release is logged and the lease simply runs out.
    pub async fn run_once<P, T, E, F, Fut>(
        &self,
        scope: &str,
        key: &str,
        payload: &P,
        lease: Duration,
        work: F,
    ) -> Result<Outcome<T>, RunError<E>>
    where
        P: Serialize + ?Sized,
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run(scope, key, payload, lease, work, true).await
    }

    /// Runs `work` for `key` in `scope` unless a delivery ran it, or is running it, within the
    /// last `lease`: the leased mode of the module docs. Its happy path is one create and
    /// nothing else; the key is never completed, so a delivery after the lease runs the work
    /// again. Use it only when the work is deduplicated further on. Failure releases the key,
    /// as [`Ledger::run_once`] does. A record a [`Ledger::run_once`] completed is still
    /// [`Outcome::Replayed`].
    pub async fn run_leased<P, T, E, F, Fut>(
        &self,
        scope: &str,
        key: &str,
        payload: &P,
        lease: Duration,
        work: F,
    ) -> Result<Outcome<T>, RunError<E>>
    where
        P: Serialize + ?Sized,
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run(scope, key, payload, lease, work, false).await
    }

    async fn run<P, T, E, F, Fut>(
        &self,
        scope: &str,
        key: &str,
        payload: &P,
        lease: Duration,
        work: F,
        complete: bool,
    ) -> Result<Outcome<T>, RunError<E>>
    where
        P: Serialize + ?Sized,
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let claim =
            self.claim(scope, key, &fingerprint(payload), lease).await.map_err(RunError::Ledger)?;
        let token = match claim {
            Claim::Fresh(token) => token,
            Claim::Done(saved) => return Ok(Outcome::Replayed(saved)),
            Claim::InFlight { retry_after } => return Ok(Outcome::Busy { retry_after }),
            Claim::Mismatch => return Ok(Outcome::Conflict),
        };
        match work().await {
            Ok(output) => {
                if complete {
                    let saved = serde_json::to_value(&output).unwrap_or_default();
                    if let Err(error) = self.complete(&token, &saved).await {
                        tracing::warn!(scope, key, %error, "could not settle the idempotency record");
                    }
                }
                Ok(Outcome::Ran(output))
            }
            Err(error) => {
                if let Err(release) = self.release(&token).await {
                    tracing::warn!(scope, key, error = %release, "could not release the idempotency lease");
                }
                Err(RunError::Work(error))
            }
        }
    }

    /// Claims `key` in `scope` for a payload with `fingerprint`, leasing it for `lease`.
    /// Prefer [`Ledger::run_once`], which settles the claim too.
    pub async fn claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        lease: Duration,
    ) -> Result<Claim, Error> {
        if scope.is_empty() || key.is_empty() {
            return Err(Error::Invalid("idempotency scope and key must not be empty".to_owned()));
        }
        let path = Self::path(scope, key)?;
        let fields = Fields { scope, key, fingerprint, lease };

        // The fast path: create the record; nobody had the key.
        let record = self.fresh_record(&fields, 1, Utc::now());
        let create = self.db.create_write(&path, &record)?;
        // Group-committed: concurrent claims share one BatchWrite request (`crate::group`),
        // each with its own precondition and answer.
        match self.db.create_grouped(create).await {
            Ok(version) => {
                let record = Box::new(record);
                return Ok(Claim::Fresh(LeaseToken { path, record, version }));
            }
            Err(Error::Rpc { code: Code::AlreadyExists, .. }) => {
                // A record is there: one plain read answers every case that writes nothing.
                if let Ok(existing) = self.db.get::<Record>(&path).await
                    && let Verdict::Answer(claim) =
                        judge(&path, existing.as_ref(), fingerprint, Utc::now())?
                {
                    return Ok(claim);
                }
            }
            Err(error) if error.is_retryable() => {
                tracing::debug!(%error, "ledger create failed; claiming in a transaction");
            }
            Err(error) => return Err(error),
        }
        self.claim_in_transaction(&path, &fields).await
    }

    /// The claim of the table, decided and written in one transaction.
    async fn claim_in_transaction(
        &self,
        path: &DocPath,
        fields: &Fields<'_>,
    ) -> Result<Claim, Error> {
        self.db
            .run_transaction_with(self.backoff, |tx| {
                Box::pin(async move {
                    let now = Utc::now();
                    let existing: Option<Record> = tx.get(path).await?;
                    let attempts = match judge(path, existing.as_ref(), fields.fingerprint, now)? {
                        Verdict::Answer(claim) => return Ok(claim),
                        Verdict::Take { attempts } => attempts,
                    };
                    let record = Box::new(self.fresh_record(fields, attempts, now));
                    tx.set(path, &record)?;
                    Ok(Claim::Fresh(LeaseToken { path: path.clone(), record, version: None }))
                })
            })
            .await
    }

    fn fresh_record(&self, fields: &Fields<'_>, attempts: u32, now: DateTime<Utc>) -> Record {
        Record {
            scope: fields.scope.to_owned(),
            key: fields.key.to_owned(),
            fingerprint: fields.fingerprint.to_owned(),
            state: State::InFlight,
            token: new_token(),
            attempts,
            lease_until: to_instant(now + delta(fields.lease)),
            updated_at: to_instant(now),
            expires_at: to_instant(now + delta(self.retention)),
            response: None,
        }
    }

    /// Settles a claim: saves `response`, so later claims answer [`Claim::Done`].
    pub async fn complete(
        &self,
        token: &LeaseToken,
        response: &serde_json::Value,
    ) -> Result<(), Error> {
        let text = serde_json::to_string(response)
            .map_err(|e| Error::Encode { path: token.path.relative(), message: e.to_string() })?;
        self.settle(token, State::Done, Some(text)).await
    }

    /// Gives a claim up after a failure, so a retry can run at once.
    pub async fn release(&self, token: &LeaseToken) -> Result<(), Error> {
        self.settle(token, State::Released, None).await
    }

    async fn settle(
        &self,
        token: &LeaseToken,
        state: State,
        response: Option<String>,
    ) -> Result<(), Error> {
        let lost = || Error::LeaseLost { key: token.path.relative() };
        let settled = |mut record: Record| {
            let now = Utc::now();
            record.state = state;
            record.response.clone_from(&response);
            record.lease_until = to_instant(now);
            record.updated_at = to_instant(now);
            record.expires_at = to_instant(now + delta(self.retention));
            record
        };
        if let Some(version) = &token.version {
            // The fast path: replace the record if nobody wrote it since the claim.
            let mut write = self.db.set_write(&token.path, &settled((*token.record).clone()))?;
            write.current_document = Some(Db::update_time_precondition(*version));
            return match self.db.commit(vec![write]).await {
                Ok(()) => Ok(()),
                Err(Error::Rpc { code: Code::FailedPrecondition | Code::NotFound, .. }) => {
                    Err(lost())
                }
                Err(error) => Err(error),
            };
        }
        let settled = &settled;
        self.db
            .run_transaction_with(self.backoff, |tx| {
                Box::pin(async move {
                    let record: Record = tx.get(&token.path).await?.ok_or_else(lost)?;
                    if record.token != token.record.token || record.state != State::InFlight {
                        return Err(lost());
                    }
                    tx.set(&token.path, &settled(record))?;
                    Ok(())
                })
            })
            .await
    }
}

/// What a claim writes besides its state, token and times.
struct Fields<'a> {
    scope: &'a str,
    key: &'a str,
    fingerprint: &'a str,
    lease: Duration,
}

/// `{scope}:{key prefix}:{hex sha-256(scope NUL key)}`, safe as a document id for any input.
pub fn scoped_id(scope: &str, key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(scope.as_bytes());
    hasher.update([0u8]);
    hasher.update(key.as_bytes());
    let hash = hex::encode(hasher.finalize());
    format!("{}:{}:{hash}", readable(scope, 24), readable(key, PREFIX_CHARS))
}

fn readable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect()
}

fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

fn to_instant(time: DateTime<Utc>) -> FirestoreInstant {
    FirestoreInstant::from_microsecond(time.timestamp_micros()).unwrap_or(FirestoreInstant::MAX)
}

fn to_chrono(instant: FirestoreInstant) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(instant.as_microsecond()).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_ids_are_safe_and_distinct() {
        let a = scoped_id("payments", "evt/1");
        let b = scoped_id("payments", "evt_1");
        let c = scoped_id("payments:evt", "1");
        let d = scoped_id("payments", "evt:1");
        assert_ne!(a, b);
        assert_ne!(c, d);
        assert!(a.starts_with("payments:evt_1:"));
        for id in [
            &a,
            &b,
            &c,
            &d,
            &scoped_id("__x", "__"),
            &scoped_id(".", ".."),
            &scoped_id("s", &"k".repeat(5000)),
        ] {
            paths::validate_id("idempotency", id).unwrap();
            assert!(id.len() < 200);
        }
    }

    #[test]
    fn fingerprints_hash_the_serde_json_form() {
        #[derive(Serialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            // The Rust name differs from the wire name: only the wire name is hashed.
            #[serde(rename = "paid")]
            PaymentSucceeded,
        }
        #[derive(Serialize)]
        struct Payload<'a> {
            kind: Kind,
            order_id: &'a str,
        }
        let payload = Payload { kind: Kind::PaymentSucceeded, order_id: "o1" };
        let expected = hex::encode(Sha256::digest(br#"{"kind":"paid","order_id":"o1"}"#));
        assert_eq!(fingerprint(&payload), expected);
        assert_eq!(fingerprint(&serde_json::json!({"kind": "paid", "order_id": "o1"})), expected);
        assert_ne!(fingerprint(&payload), fingerprint(&Payload { order_id: "o2", ..payload }));
    }

    #[test]
    fn instants_round_trip() {
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
        assert_eq!(to_chrono(to_instant(now)), now);
    }
}
