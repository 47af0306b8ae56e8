//! Firestore access for Hearth through the `firestore` crate: a lazily connected [`Db`], every
//! document path in [`paths`], transactions that retry on contention ([`Db::run_transaction`]),
//! a ramped [`BulkWriter`], the idempotency [`Ledger`] and the [`DeadLetters`] sink.
//!
//! The policies (ramp, backoff) are pure code in `domain`; this crate applies them.
//!
//! One style: every module exposes its Firestore operations as methods of a repository struct
//! built from a `&Db` (plus its configuration): [`Ledger`], [`DeadLetters`], [`BulkWriter`],
//! [`inventory::Inventory`], [`payments::Payments`], [`tenancy::Tenancy`],
//! [`ratelimit::RateLimiter`], [`feed::Feeds`] and [`feed::Fanout`], [`counters::Counters`],
//! [`onboarding::Onboarding`], [`cleanup::Sweeper`], [`notify::Notifications`]. Why a struct rather than free functions
//! over `&Db`: several repositories carry state beside the handle (caches, retention, backoff,
//! the ramp, the feed policy), so a struct is needed there anyway, and one shape everywhere
//! means a function's state holds its repositories and a call reads `repo.op(..)` whatever the
//! repository. A repository is cheap to build and to clone (the [`Db`] handle is shared).
//! Free functions remain only for pure helpers that take no `Db`: path builders
//! ([`onboarding::doc_path`], [`counters::shard_paths`]) and document decoders
//! ([`feed::post_facts`]).

pub mod bulk;
pub mod catalogue;
pub mod cleanup;
pub mod counters;
mod db;
mod dead_letters;
mod error;
pub mod feed;
mod group;
pub mod inventory;
pub mod ledger;
pub mod market;
pub mod notify;
pub mod onboarding;
mod ops;
pub mod paths;
pub mod payments;
pub mod pulse;
pub mod query_log;
pub mod ratelimit;
pub mod refunds;
mod rpc;
pub mod search;
pub mod tenancy;
mod tx;
pub mod vendor_orders;

pub use bulk::{BulkReport, BulkWriter};
pub use db::{Db, DbConfig};
pub use dead_letters::DeadLetters;
pub use domain::backoff::Backoff;
pub use domain::ramp::{RampPolicy, RampProfile};
pub use error::{Code, Error, TransactionError};
pub use group::GroupStats;
pub use ledger::{Claim, LeaseToken, Ledger};
pub use paths::{CollectionPath, DocPath, PathError};
pub use tx::Tx;
