//! Fixed-window rate limits per user and per callable, as pure rules.
//!
//! A window is `[start, start + length)` with `start = floor(now / length) * length` (aligned
//! to the epoch, so every instance computes the same window without coordination). The count
//! of a window lives in one Firestore document per (callable, user, window); a call is allowed
//! while the count is below the limit. A fixed window lets a burst of up to `2 x limit` straddle
//! a boundary; for "5 payment attempts per 15 minutes" that is acceptable, and it costs one
//! read and one write per allowed call (one read per refused call), where a sliding log would
//! cost a read of every recent attempt.

use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// A limit: at most `max` calls per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Calls allowed per window.
    pub max: u32,
    /// Window length.
    pub window: Duration,
}

impl Limit {
    /// `max` calls per `secs` seconds.
    pub const fn per_secs(max: u32, secs: u64) -> Self {
        Self { max, window: Duration::from_secs(secs) }
    }

    /// Parses `N/SECS` (e.g. `5/900`).
    pub fn parse(text: &str) -> Option<Self> {
        let (max, secs) = text.trim().split_once('/')?;
        let max: u32 = max.trim().parse().ok()?;
        let secs: u64 = secs.trim().parse().ok()?;
        (max > 0 && secs > 0).then_some(Self::per_secs(max, secs))
    }
}

/// The window `now` falls in: its start (unix seconds) and end.
pub fn window(limit: Limit, now: DateTime<Utc>) -> (i64, DateTime<Utc>) {
    let length = i64::try_from(limit.window.as_secs().max(1)).unwrap_or(i64::MAX);
    let start = now.timestamp().div_euclid(length) * length;
    let end = DateTime::from_timestamp(start.saturating_add(length), 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (start, end)
}

/// Whether a call is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead; `remaining` calls are left in this window after this one.
    Allowed {
        /// Calls left.
        remaining: u32,
    },
    /// Refused until the window ends.
    Limited {
        /// Time until the window ends (at least one second, for `Retry-After`).
        retry_after: Duration,
    },
}

/// Decides a call given `count` calls already made in the window ending at `end`.
pub fn decide(limit: Limit, count: u32, now: DateTime<Utc>, end: DateTime<Utc>) -> Verdict {
    if count < limit.max {
        return Verdict::Allowed { remaining: limit.max - count - 1 };
    }
    let left = (end - now).max(TimeDelta::seconds(1));
    Verdict::Limited { retry_after: left.to_std().unwrap_or(Duration::from_secs(1)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn limits_parse() {
        assert_eq!(Limit::parse("5/900"), Some(Limit::per_secs(5, 900)));
        assert_eq!(Limit::parse(" 20 / 60 "), Some(Limit::per_secs(20, 60)));
        for bad in ["", "5", "0/60", "5/0", "x/60", "5/-1"] {
            assert_eq!(Limit::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_fifth_payment_in_fifteen_minutes_is_the_last() {
        let limit = Limit::per_secs(5, 900);
        let now = DateTime::from_timestamp(1_750_000_100, 0).unwrap();
        let (start, end) = window(limit, now);
        assert_eq!(start % 900, 0);
        assert!(now.timestamp() >= start && now < end);
        assert_eq!(decide(limit, 4, now, end), Verdict::Allowed { remaining: 0 });
        let Verdict::Limited { retry_after } = decide(limit, 5, now, end) else { panic!() };
        assert_eq!(retry_after, (end - now).to_std().unwrap());
    }

    proptest! {
        #[test]
        fn windows_tile_time(secs in 0i64..4_000_000_000, length in 1u64..100_000) {
            let limit = Limit::per_secs(1, length);
            let now = DateTime::from_timestamp(secs, 0).unwrap();
            let (start, end) = window(limit, now);
            prop_assert!(start <= secs && secs < end.timestamp());
            prop_assert_eq!(end.timestamp() - start, length as i64);
        }

        #[test]
        fn never_more_than_max_per_window(max in 1u32..50, calls in 0u32..200) {
            let limit = Limit::per_secs(max, 60);
            let now = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
            let (_, end) = window(limit, now);
            let mut count = 0;
            for _ in 0..calls {
                if let Verdict::Allowed { .. } = decide(limit, count, now, end) {
                    count += 1;
                }
            }
            prop_assert_eq!(count, calls.min(max));
        }
    }
}
