//! The Firestore traffic ramp ("500/50/5": start at 500 ops/s, grow by 50 % every 5 minutes)
//! as pure code: [`RampPolicy`] says how many operations per second are allowed after a given
//! time, and [`RampLimiter`] is a token bucket that follows it with the time passed in.
//!
//! Source of the rule: Firestore best practices, "ramping up traffic", as nodejs-firestore's
//! BulkWriter implements it: start at 500 ops/s, x1.5 every 5 min,
//! at most 10,000 ops/s, bucket capacity = one second of the current rate.
//!
//! The three profiles are the trading product's (conservative / default / aggressive), whose
//! three numbers per profile are `batch_write_limit` / `doc_write_limit` /
//! `batch_cooldown_sec` = 300/30/10, 500/50/5 and 700/70/2. Its original reads "500/50/5" as
//! those three settings; the rule the name stands for is start-rate / growth-% / minutes, so each profile's
//! numbers are taken position by position: conservative = start 300 ops/s, +30 % every
//! 10 min; default = 500 ops/s, +50 % every 5 min; aggressive = 700 ops/s, +70 % every 2 min.
//! (The original's per-document limit of 50 writes/s is not a Firestore figure: the soft limit for
//! one document is about 1 write/s, which the counter shards handle, not this ramp.)
//!
//! The budget is for a deployment: [`RampPolicy::shared_by`] gives each of N instances its
//! share (start and ceiling divided by N, rounded down, at least 1 op/s).

use std::str::FromStr;
use std::time::Duration;

/// The ceiling of every profile: nodejs-firestore BulkWriter's `DEFAULT_MAXIMUM_OPS_PER_SECOND_LIMIT`.
pub const MAX_OPS_PER_SEC: f64 = 10_000.0;

/// The least rate a share of a ramp gets ([`RampPolicy::shared_by`]).
pub const MIN_SHARED_OPS_PER_SEC: f64 = 1.0;

/// A ramp: `start_ops_per_sec * growth^floor(elapsed / every)`, capped at `max_ops_per_sec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RampPolicy {
    /// Allowed rate during the first period.
    pub start_ops_per_sec: f64,
    /// Factor applied to the rate at the end of each period (1.5 = +50 %).
    pub growth: f64,
    /// Length of one period.
    pub every: Duration,
    /// The rate never grows beyond this.
    pub max_ops_per_sec: f64,
}

impl Default for RampPolicy {
    /// The 500/50/5 rule: 500 ops/s, +50 % every 5 minutes, up to 10,000 ops/s (the
    /// "default, normal load" profile: 500/50/5).
    fn default() -> Self {
        Self {
            start_ops_per_sec: 500.0,
            growth: 1.5,
            every: Duration::from_secs(5 * 60),
            max_ops_per_sec: MAX_OPS_PER_SEC,
        }
    }
}

impl RampPolicy {
    /// The "conservative, high load" profile (300/30/10): 300 ops/s, +30 % every 10 minutes.
    pub fn conservative() -> Self {
        Self {
            start_ops_per_sec: 300.0,
            growth: 1.3,
            every: Duration::from_secs(10 * 60),
            max_ops_per_sec: MAX_OPS_PER_SEC,
        }
    }

    /// The "aggressive, low load" profile (700/70/2): 700 ops/s, +70 % every 2 minutes. Meant for
    /// development and small tenants; it ramps faster than Google's guidance.
    pub fn aggressive() -> Self {
        Self {
            start_ops_per_sec: 700.0,
            growth: 1.7,
            every: Duration::from_secs(2 * 60),
            max_ops_per_sec: MAX_OPS_PER_SEC,
        }
    }

    /// The policy of a named profile.
    pub fn for_profile(profile: RampProfile) -> Self {
        match profile {
            RampProfile::Conservative => Self::conservative(),
            RampProfile::Default => Self::default(),
            RampProfile::Aggressive => Self::aggressive(),
        }
    }

    /// This ramp's share when `instances` writers run it at once (the function's
    /// `max_instances`): the start rate and the ceiling are divided by `instances`, rounded
    /// down to a whole operation per second so the shares never add up to more than the ramp,
    /// and never below [`MIN_SHARED_OPS_PER_SEC`] so that a writer always makes progress (with
    /// more instances than the start rate, the floor is the only excess). Growth and period
    /// stay: every share grows at the same moments, so together they follow the ramp.
    ///
    /// Dividing is chosen over coordinating the instances through a shared counter: it needs
    /// no extra Firestore reads or writes per batch, cannot fail, and errs on the slow side
    /// (fewer instances than the maximum write below the budget, never above it).
    #[must_use]
    pub fn shared_by(&self, instances: u32) -> Self {
        let n = f64::from(instances.max(1));
        let share = |rate: f64| (rate / n).floor().max(MIN_SHARED_OPS_PER_SEC);
        Self {
            start_ops_per_sec: share(self.start_ops_per_sec),
            max_ops_per_sec: share(self.max_ops_per_sec),
            ..*self
        }
    }

    /// Operations per second allowed `elapsed` after the ramp started. Never below the start
    /// rate nor above the maximum (for sane inputs: start > 0, growth >= 1, every > 0).
    pub fn allowed_rate(&self, elapsed: Duration) -> f64 {
        let start = self.start_ops_per_sec.max(0.0);
        let max = self.max_ops_per_sec.max(0.0);
        if !start.is_finite() || !max.is_finite() {
            return start.min(max);
        }
        let growth = if self.growth.is_finite() { self.growth.max(1.0) } else { 1.0 };
        if self.every.is_zero() {
            return if growth > 1.0 { max } else { start.min(max) };
        }
        let periods = elapsed.as_nanos() / self.every.as_nanos();
        let periods = i32::try_from(periods).unwrap_or(i32::MAX);
        let rate = start * growth.powi(periods);
        if rate.is_finite() { rate.min(max) } else { max }
    }

    /// The total operations the ramp allows over `[from, to]` (the integral of
    /// [`allowed_rate`](Self::allowed_rate)), used by tests and capacity planning.
    pub fn allowed_ops_between(&self, from: Duration, to: Duration) -> f64 {
        if to <= from {
            return 0.0;
        }
        if self.every.is_zero() {
            return self.allowed_rate(from) * (to - from).as_secs_f64();
        }
        let mut total = 0.0;
        let mut t = from;
        while t < to {
            let period = t.as_nanos() / self.every.as_nanos();
            let next = self.every.saturating_mul(u32::try_from(period + 1).unwrap_or(u32::MAX));
            let end = next.min(to);
            if end <= t {
                total += self.allowed_rate(t) * (to - t).as_secs_f64();
                break;
            }
            total += self.allowed_rate(t) * (end - t).as_secs_f64();
            t = end;
        }
        total
    }
}

/// The named ramp profiles (conservative, default, aggressive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RampProfile {
    /// 300 ops/s, +30 % every 10 min.
    Conservative,
    /// 500 ops/s, +50 % every 5 min (the 500/50/5 rule).
    #[default]
    Default,
    /// 700 ops/s, +70 % every 2 min.
    Aggressive,
}

/// A profile name that is not `conservative`, `default` or `aggressive`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ramp profile {0:?}: expected conservative, default or aggressive")]
pub struct UnknownRampProfile(pub String);

impl FromStr for RampProfile {
    type Err = UnknownRampProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "conservative" => Ok(Self::Conservative),
            "default" => Ok(Self::Default),
            "aggressive" => Ok(Self::Aggressive),
            _ => Err(UnknownRampProfile(s.to_owned())),
        }
    }
}

/// A token bucket following a [`RampPolicy`], with time passed in as the offset since the
/// limiter started (the caller owns the clock).
///
/// The bucket holds at most one second of the current rate and starts full (as nodejs
/// BulkWriter's `RateLimiter`). It refills at the rate in force at the start of each refill
/// interval; the rate only grows, so this never grants more than the ramp allows. A request for
/// more tokens than the bucket can hold is granted once the bucket holds one second of the start
/// rate and leaves a debt, so
/// over any window the granted total stays within the ramp plus one initial burst.
#[derive(Debug, Clone)]
pub struct RampLimiter {
    policy: RampPolicy,
    tokens: f64,
    last_refill: Duration,
}

impl RampLimiter {
    /// A limiter at time offset zero with a full bucket.
    pub fn new(policy: RampPolicy) -> Self {
        let tokens = policy.allowed_rate(Duration::ZERO);
        Self { policy, tokens, last_refill: Duration::ZERO }
    }

    /// The policy this limiter follows.
    pub fn policy(&self) -> &RampPolicy {
        &self.policy
    }

    /// Tokens available at the last refill (may be negative after an oversized grant).
    pub fn available(&self) -> f64 {
        self.tokens
    }

    /// Takes `n` tokens at `now` (offset since the limiter started), or says how long to wait
    /// before asking again. Times earlier than the last call are treated as the last call.
    pub fn try_acquire(&mut self, now: Duration, n: u32) -> Result<(), Duration> {
        self.refill(now);
        let wanted = f64::from(n);
        // An oversized request waits for the smallest bucket the ramp ever has (one second of
        // the start rate), which the bucket always reaches again, so waiting as advised works.
        let needed = wanted.min(self.policy.allowed_rate(Duration::ZERO));
        if self.tokens >= needed {
            self.tokens -= wanted;
            return Ok(());
        }
        let rate = self.policy.allowed_rate(self.last_refill);
        if rate <= 0.0 || !rate.is_finite() {
            return Err(Duration::from_secs(1));
        }
        let wait = (needed - self.tokens) / rate;
        // Round up to a whole microsecond so that waiting exactly this long always suffices.
        let micros = (wait * 1e6).ceil().max(1.0);
        Err(Duration::from_micros(if micros < 1e15 {
            micros as u64
        } else {
            1_000_000_000_000_000
        }))
    }

    fn refill(&mut self, now: Duration) {
        if now <= self.last_refill {
            return;
        }
        let rate = self.policy.allowed_rate(self.last_refill);
        let added = rate * (now - self.last_refill).as_secs_f64();
        let capacity = self.policy.allowed_rate(now);
        self.tokens = (self.tokens + added).min(capacity);
        self.last_refill = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn default_is_500_50_5() {
        let p = RampPolicy::default();
        assert_eq!(p.allowed_rate(Duration::ZERO), 500.0);
        assert_eq!(p.allowed_rate(5 * MIN - Duration::from_nanos(1)), 500.0);
        assert_eq!(p.allowed_rate(5 * MIN), 750.0);
        assert_eq!(p.allowed_rate(10 * MIN), 1125.0);
        assert_eq!(p.allowed_rate(10 * 60 * MIN), MAX_OPS_PER_SEC);
        assert_eq!(p.allowed_rate(Duration::MAX), MAX_OPS_PER_SEC);
    }

    #[test]
    fn profiles_follow_seed_000() {
        let c = RampPolicy::conservative();
        assert_eq!(c.allowed_rate(Duration::ZERO), 300.0);
        assert_eq!(c.allowed_rate(9 * MIN), 300.0);
        assert!((c.allowed_rate(10 * MIN) - 390.0).abs() < 1e-9);
        let a = RampPolicy::aggressive();
        assert_eq!(a.allowed_rate(Duration::ZERO), 700.0);
        assert!((a.allowed_rate(2 * MIN) - 1190.0).abs() < 1e-9);
        assert_eq!("Aggressive".parse::<RampProfile>(), Ok(RampProfile::Aggressive));
        assert_eq!(RampPolicy::for_profile(RampProfile::Default), RampPolicy::default());
        assert!("fast".parse::<RampProfile>().is_err());
    }

    #[test]
    fn limiter_starts_full_then_waits() {
        let mut l = RampLimiter::new(RampPolicy::default());
        for _ in 0..25 {
            assert_eq!(l.try_acquire(Duration::ZERO, 20), Ok(()));
        }
        // 500 tokens spent: 20 more need 20 / 500 s = 40 ms.
        assert_eq!(l.try_acquire(Duration::ZERO, 20), Err(Duration::from_millis(40)));
        assert!(l.try_acquire(Duration::from_millis(39), 20).is_err());
        assert_eq!(l.try_acquire(Duration::from_millis(40), 20), Ok(()));
    }

    #[test]
    fn oversized_requests_wait_for_a_full_bucket_and_leave_a_debt() {
        let policy = RampPolicy { start_ops_per_sec: 10.0, ..RampPolicy::default() };
        let mut l = RampLimiter::new(policy);
        assert_eq!(l.try_acquire(Duration::ZERO, 15), Ok(()));
        assert_eq!(l.available(), -5.0);
        assert_eq!(l.try_acquire(Duration::ZERO, 1), Err(Duration::from_millis(600)));
        assert!(l.try_acquire(Duration::from_millis(1400), 15).is_err());
        assert_eq!(l.try_acquire(Duration::from_millis(1500), 15), Ok(()));
    }

    #[test]
    fn shares_divide_the_budget_round_down_and_never_drop_below_one() {
        let p = RampPolicy::default();
        assert_eq!(p.shared_by(1), p);
        assert_eq!(p.shared_by(0), p, "zero instances counts as one");
        let twenty = p.shared_by(20);
        assert_eq!(twenty.start_ops_per_sec, 25.0);
        assert_eq!(twenty.max_ops_per_sec, 500.0);
        assert_eq!((twenty.growth, twenty.every), (p.growth, p.every));
        assert_eq!(twenty.allowed_rate(5 * MIN), 37.5, "shares grow with the ramp");
        // 500 / 3 = 166.67: rounded down, so three shares stay within 500.
        assert_eq!(p.shared_by(3).start_ops_per_sec, 166.0);
        assert_eq!(p.shared_by(100).start_ops_per_sec, 5.0);
        // More instances than ops/s: every share still writes one op/s.
        assert_eq!(p.shared_by(1000).start_ops_per_sec, MIN_SHARED_OPS_PER_SEC);
        assert_eq!(RampPolicy::conservative().shared_by(50).start_ops_per_sec, 6.0);
        assert_eq!(RampPolicy::conservative().shared_by(50).max_ops_per_sec, 200.0);
    }

    /// Two writers each holding the share for N = 2, both asking as fast as they can, are
    /// together granted no more than one writer holding the whole budget may be.
    #[test]
    fn two_writers_sharing_a_budget_stay_under_it() {
        let whole = RampPolicy::default();
        let share = whole.shared_by(2);
        let mut writers = [RampLimiter::new(share), RampLimiter::new(share)];
        let mut granted = 0.0;
        let step = Duration::from_millis(10);
        let mut now = Duration::ZERO;
        while now <= 12 * MIN {
            for w in &mut writers {
                while w.try_acquire(now, 20).is_ok() {
                    granted += 20.0;
                }
            }
            let bound =
                whole.allowed_rate(Duration::ZERO) + whole.allowed_ops_between(Duration::ZERO, now);
            assert!(granted <= bound + 1e-6, "at {now:?}: {granted} > {bound}");
            now += step;
        }
        // And they do use it: within 2 % of the whole ramp over 12 minutes.
        let whole_total = whole.allowed_ops_between(Duration::ZERO, 12 * MIN);
        assert!(granted >= 0.98 * whole_total, "{granted} of {whole_total}");
    }

    #[test]
    fn integral_matches_steps() {
        let p = RampPolicy::default();
        let ops = p.allowed_ops_between(Duration::ZERO, 10 * MIN);
        assert!((ops - (500.0 * 300.0 + 750.0 * 300.0)).abs() < 1e-6);
    }

    fn any_policy() -> impl Strategy<Value = RampPolicy> {
        (1.0f64..1000.0, 1.0f64..2.0, 1u64..600, 1.0f64..20_000.0).prop_map(
            |(start, growth, every, max)| RampPolicy {
                start_ops_per_sec: start,
                growth,
                every: Duration::from_secs(every),
                max_ops_per_sec: max.max(start),
            },
        )
    }

    proptest! {
        #[test]
        fn rate_is_monotone_and_bounded(p in any_policy(), a in 0u64..100_000, b in 0u64..100_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            let r_lo = p.allowed_rate(Duration::from_secs(lo));
            let r_hi = p.allowed_rate(Duration::from_secs(hi));
            prop_assert!(r_lo <= r_hi);
            prop_assert!(r_lo >= p.start_ops_per_sec.min(p.max_ops_per_sec));
            prop_assert!(r_hi <= p.max_ops_per_sec);
        }

        /// Whatever the request pattern, the tokens granted by time T never exceed the initial
        /// bucket plus the ramp's integral over [0, T].
        #[test]
        fn limiter_never_exceeds_the_ramp(
            p in any_policy(),
            steps in prop::collection::vec((0u64..2_000_000, 1u32..40), 1..400),
        ) {
            let mut limiter = RampLimiter::new(p);
            let mut now = Duration::ZERO;
            let mut granted = 0.0;
            // A request larger than the smallest bucket may overdraw it once (it leaves a debt).
            let mut overdraft: f64 = 0.0;
            let start = p.allowed_rate(Duration::ZERO);
            for (advance_micros, n) in steps {
                now += Duration::from_micros(advance_micros);
                match limiter.try_acquire(now, n) {
                    Ok(()) => {
                        granted += f64::from(n);
                        overdraft = overdraft.max(f64::from(n) - start);
                    }
                    Err(wait) => prop_assert!(wait > Duration::ZERO),
                }
                let bound = start + p.allowed_ops_between(Duration::ZERO, now) + overdraft;
                prop_assert!(granted <= bound + 1e-6, "granted {granted} > {bound}");
            }
        }

        /// Waiting the advised time always gets the tokens (for requests within capacity).
        #[test]
        fn advised_wait_suffices(p in any_policy(), n in 1u32..20, spend in 0u32..2000) {
            let mut limiter = RampLimiter::new(p);
            let _ = limiter.try_acquire(Duration::ZERO, spend);
            match limiter.try_acquire(Duration::ZERO, n) {
                Ok(()) => {}
                Err(wait) => prop_assert_eq!(limiter.try_acquire(wait, n), Ok(())),
            }
        }
    }
}
