//! Integration tests of `store` against the official Firestore emulator (one per test binary,
//! started by testkit or reused from `FIRESTORE_EMULATOR_HOST`), one fresh project per test.

mod bulk;
mod counters;
mod db;
mod dead_letters;
mod feed;
mod inventory;
mod ledger;
mod onboarding;
mod payments;
mod refunds;
mod search;
mod tenancy;
mod tx;

use store::{Db, DbConfig};

/// A `Db` on the emulator, in a fresh project (so tests never see each other's data).
pub(crate) async fn fresh_db() -> Db {
    let host = testkit::emulators::firestore().await;
    Db::new(DbConfig::emulator(testkit::project_id(), host))
}
