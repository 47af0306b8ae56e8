//! Per-source request limits for the unauthenticated Pesapal endpoint.
//!
//! Anyone can send an IPN, so a flood must cost little: each source address gets a GCRA budget
//! in memory (`governor`), checked before anything else is done. The limit is per instance:
//! with the manifest's `max_instances` (100) the whole service admits at most that many times
//! the per-source rate from one address, and every admitted request costs one Firestore read
//! before anything is claimed, published or asked of Pesapal (see `pesapal.rs`).
//!
//! The source is the client address Google's front end appends as the last entry of
//! `X-Forwarded-For` on Cloud Run (entries before it are whatever the client sent, so they are
//! never trusted); requests without the header share one bucket.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::HeaderMap;

/// How many checks between sweeps of idle sources (bounds the limiter's memory).
const SWEEP_EVERY: u64 = 4096;

/// A per-source limiter.
#[derive(Debug, Clone)]
pub struct SourceLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<Option<IpAddr>>>,
    checks: Arc<AtomicU64>,
}

impl SourceLimiter {
    /// `per_second` sustained requests per source, with bursts of `burst`.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self { limiter: Arc::new(RateLimiter::keyed(quota)), checks: Arc::default() }
    }

    /// Whether a request with `headers` may go on now.
    pub fn admit(&self, headers: &HeaderMap) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&source(headers)).is_ok()
    }
}

/// The client address: the last `X-Forwarded-For` entry (see the module docs).
pub(crate) fn source(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", xff.parse().unwrap());
        headers
    }

    #[test]
    fn the_source_is_the_address_the_front_end_appended() {
        assert_eq!(source(&from("203.0.113.9")), "203.0.113.9".parse().ok());
        // A client cannot pick its bucket by sending its own entries first.
        assert_eq!(source(&from("1.2.3.4, 198.51.100.7")), "198.51.100.7".parse().ok());
        assert_eq!(source(&HeaderMap::new()), None);
    }

    #[test]
    fn each_source_has_its_own_budget() {
        let limiter = SourceLimiter::new(NonZeroU32::MIN, NonZeroU32::new(3).unwrap());
        let a = from("203.0.113.9");
        assert!((0..3).all(|_| limiter.admit(&a)));
        assert!(!limiter.admit(&a));
        assert!(limiter.admit(&from("198.51.100.7")));
    }
}
