//! Per-user, per-callable rate limits (fixed windows in Firestore, `store::ratelimit`), for
//! every callable of the api (payments and feed).
//!
//! Defaults: `initiatePayment` 5 per 15 minutes (each fresh key may call the provider); the
//! others follow three tiers: writes that hold stock like the expensive tier (`reserveInventory` 20/min),
//! cheap writes like its trades tier (`releaseReservation` 100/min), reads like its charts tier
//! (`getOrder` 50/min). The feed callables: `followVendor` and `unfollowVendor` 20/min each
//! (a follow backfills up to 20 feed entries and an unfollow deletes them, so a follow/unfollow
//! loop is the most expensive thing a client can repeat; nobody follows 20 vendors a minute by
//! hand), `likePost` / `unlikePost` 60/min each, `recordView` 120/min (one per post scrolled
//! past), `getFeed` 60/min, `getStories` 30/min (cached per user for a minute). The
//! catalogue: `becomeVendor` / `updateVendor` 5/min (an update rewrites every product of the
//! vendor), `createProduct` 30/min, the other product and stock writes 60/min,
//! `listProducts` 120/min (a page is cached per instance), `listVendorOrders` and
//! `getVendorSales` 60/min each,
//! `requestRefund` 10/min (each may call the provider).
//! Override with `HEARTH_RATE_LIMITS=initiatePayment=5/900,...`.

use std::collections::BTreeMap;

use anyhow::anyhow;
use domain::ratelimit::{Limit, Verdict};
use runtime::{ConfigError, Env, Error};

use crate::AppState;

const VAR: &str = "HEARTH_RATE_LIMITS";

/// The limit of each callable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits(BTreeMap<String, Limit>);

impl Default for Limits {
    fn default() -> Self {
        Self(BTreeMap::from([
            ("initiatePayment".to_owned(), Limit::per_secs(5, 15 * 60)),
            ("reserveInventory".to_owned(), Limit::per_secs(20, 60)),
            ("releaseReservation".to_owned(), Limit::per_secs(100, 60)),
            ("getOrder".to_owned(), Limit::per_secs(50, 60)),
            ("getFeed".to_owned(), Limit::per_secs(60, 60)),
            ("getStories".to_owned(), Limit::per_secs(30, 60)),
            ("followVendor".to_owned(), Limit::per_secs(20, 60)),
            ("unfollowVendor".to_owned(), Limit::per_secs(20, 60)),
            ("likePost".to_owned(), Limit::per_secs(60, 60)),
            ("unlikePost".to_owned(), Limit::per_secs(60, 60)),
            ("recordView".to_owned(), Limit::per_secs(120, 60)),
            ("saveStrategy".to_owned(), Limit::per_secs(30, 60)),
            ("registerDevice".to_owned(), Limit::per_secs(20, 60)),
            ("unregisterDevice".to_owned(), Limit::per_secs(20, 60)),
            ("becomeVendor".to_owned(), Limit::per_secs(5, 60)),
            ("updateVendor".to_owned(), Limit::per_secs(5, 60)),
            ("createProduct".to_owned(), Limit::per_secs(30, 60)),
            ("updateProduct".to_owned(), Limit::per_secs(60, 60)),
            ("publishProduct".to_owned(), Limit::per_secs(60, 60)),
            ("archiveProduct".to_owned(), Limit::per_secs(60, 60)),
            ("setStock".to_owned(), Limit::per_secs(60, 60)),
            ("addStock".to_owned(), Limit::per_secs(60, 60)),
            ("listProducts".to_owned(), Limit::per_secs(120, 60)),
            ("listVendorOrders".to_owned(), Limit::per_secs(60, 60)),
            ("getVendorSales".to_owned(), Limit::per_secs(60, 60)),
            ("requestRefund".to_owned(), Limit::per_secs(10, 60)),
        ]))
    }
}

impl Limits {
    /// Defaults, overridden by `HEARTH_RATE_LIMITS`.
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let mut limits = Self::default();
        for item in env.list(VAR) {
            let parsed = item
                .split_once('=')
                .and_then(|(name, limit)| Some((name.trim(), Limit::parse(limit)?)))
                .filter(|(name, _)| limits.0.contains_key(*name));
            let Some((name, limit)) = parsed else {
                return Err(ConfigError::invalid(
                    VAR,
                    "callable=N/SECS items for known callables",
                    &item,
                ));
            };
            limits.0.insert(name.to_owned(), limit);
        }
        Ok(limits)
    }

    /// The limit of `callable`.
    pub fn of(&self, callable: &str) -> Option<Limit> {
        self.0.get(callable).copied()
    }
}

/// Counts a call of `uid` to `callable`; 429 with `Retry-After` when over the limit.
pub(crate) async fn check(
    state: &AppState,
    uid: &str,
    callable: &'static str,
) -> Result<(), Error> {
    let Some(limit) = state.payments.limits.of(callable) else { return Ok(()) };
    let verdict = state
        .payments
        .limiter
        .hit(callable, uid, limit, chrono::Utc::now())
        .await
        .map_err(super::errors::store_error)?;
    match verdict {
        Verdict::Allowed { .. } => Ok(()),
        Verdict::Limited { retry_after } => Err(Error::retry_after(
            anyhow!("{uid} is over the {callable} limit of {} per {:?}", limit.max, limit.window),
            retry_after,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_callable_has_a_default_limit() {
        let limits = Limits::default();
        for path in crate::payments::PATHS
            .iter()
            .chain(&crate::feed::PATHS)
            .chain(&crate::strategies::PATHS)
            .chain(&crate::catalogue::PATHS)
            .chain(&crate::devices::PATHS)
        {
            let name = path.trim_start_matches('/');
            assert!(limits.of(name).is_some(), "{name} has no rate limit");
        }
    }
}
