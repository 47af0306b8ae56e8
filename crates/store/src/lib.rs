//! Firestore access for Hearth through the `firestore` crate: a lazily connected [`Db`], every
//! document path in [`paths`], transactions that retry on contention ([`Db::run_transaction`]),
//! a ramped [`BulkWriter`], the idempotency [`Ledger`] and the [`DeadLetters`] sink.
//!
//! The policies (ramp, backoff) are pure code in `domain`; this crate applies them.

pub mod bulk;
pub mod cleanup;
pub mod counters;
mod db;
mod dead_letters;
mod error;
pub mod feed;
pub mod inventory;
pub mod ledger;
pub mod onboarding;
mod ops;
pub mod paths;
pub mod payments;
pub mod query_log;
pub mod ratelimit;
mod rpc;
pub mod tenancy;
mod tx;

pub use bulk::{BulkReport, BulkWriter};
pub use db::{Db, DbConfig};
pub use dead_letters::DeadLetters;
pub use domain::backoff::Backoff;
pub use domain::ramp::{RampPolicy, RampProfile};
pub use error::{Code, Error, TransactionError};
pub use ledger::{Claim, LeaseToken, Ledger};
pub use paths::{CollectionPath, DocPath, PathError};
pub use tx::Tx;
