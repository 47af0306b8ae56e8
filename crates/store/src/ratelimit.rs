//! Rate limits that hold across instances: one counter document per (scope, user, window) in
//! `rate_limits/`, checked and counted in one transaction (rules in `domain::ratelimit`).
//!
//! Cost per call: one document read and one write when allowed, one read when refused. The
//! documents carry `expires_at` (window end + 1 h) for a TTL policy on `rate_limits`.

use chrono::{DateTime, TimeDelta, Utc};
use domain::ratelimit::{Limit, Verdict, decide, window};
use firestore::FirestoreInstant;
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::Error;
use crate::inventory::to_instant;
use crate::ledger::scoped_id;
use crate::paths;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counter {
    scope: String,
    count: u32,
    window_start: i64,
    #[serde(with = "firestore::serialize_as_timestamp")]
    expires_at: FirestoreInstant,
}

/// Fixed-window limiter on one database.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    db: Db,
}

impl RateLimiter {
    /// A limiter on `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// Counts a call of `uid` to `scope` under `limit` at `now`, unless the window is full.
    pub async fn hit(
        &self,
        scope: &str,
        uid: &str,
        limit: Limit,
        now: DateTime<Utc>,
    ) -> Result<Verdict, Error> {
        let (start, end) = window(limit, now);
        let path = paths::rate_limit(&scoped_id(scope, &format!("{uid}@{start}")))?;
        let path = &path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let count = tx.get::<Counter>(path).await?.map_or(0, |c| c.count);
                    let verdict = decide(limit, count, now, end);
                    if let Verdict::Allowed { .. } = verdict {
                        tx.set(
                            path,
                            &Counter {
                                scope: scope.to_owned(),
                                count: count + 1,
                                window_start: start,
                                expires_at: to_instant(end + TimeDelta::hours(1)),
                            },
                        )?;
                    }
                    Ok(verdict)
                })
            })
            .await
    }
}
