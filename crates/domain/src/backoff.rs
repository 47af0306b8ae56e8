//! Retry backoff policies: bounded, jittered exponential backoff as a pure function.
//!
//! Nothing here sleeps, reads a clock or draws random numbers: the caller passes the attempt
//! number and a uniform draw in `[0, 1)` and gets a [`Duration`] back, so the policy is fully
//! deterministic under test. `store` applies it to transactions and to bulk writes.
//!
//! Reference behaviour (the official Node client, nodejs-firestore `dev/src/backoff.ts`,
//! `transaction.ts`, `bulk-writer.ts`):
//! - transactions: 5 attempts, exponential backoff 1 s x1.5 up to 60 s between them;
//! - BulkWriter, per write: 10 attempts, 1 s x1.5 up to 60 s, 30 % jitter, and a
//!   `RESOURCE_EXHAUSTED` answer jumps straight to the maximum delay.

use std::time::Duration;

/// A bounded, jittered exponential backoff policy.
///
/// Attempts are counted from 1 (the first try). The wait before *retry* `r` (the attempt
/// `r + 1`) is `initial * multiplier^(r - 1)`, capped at `max`, then jittered by up to
/// `± jitter_fraction` of itself and finally clamped to `[0, max]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Base delay before the first retry.
    pub initial: Duration,
    /// Growth factor of the base delay per retry (values below 1 are treated as 1).
    pub multiplier: f64,
    /// Upper bound of any delay, jitter included.
    pub max: Duration,
    /// Total attempts allowed, the first one included (so `1` means never retry).
    pub max_attempts: u32,
    /// Relative jitter in `[0, 1]`: the delay lands in `base * (1 ± jitter_fraction)`.
    pub jitter_fraction: f64,
}

impl Backoff {
    /// Transactions, as nodejs-firestore runs them: 5 attempts in all
    /// (`DEFAULT_MAX_TRANSACTION_ATTEMPTS`), 1 s x1.5 up to 60 s, with the `ExponentialBackoff`
    /// default jitter factor of 1.0, which spreads a delay over `base ± 50 %`.
    pub const fn firestore_transaction() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 1.5,
            max: Duration::from_secs(60),
            max_attempts: 5,
            jitter_fraction: 0.5,
        }
    }

    /// One write of a bulk writer, as nodejs-firestore's BulkWriter retries it: 10 attempts
    /// (`MAX_RETRY_ATTEMPTS`), 1 s x1.5 up to 60 s, 30 % jitter. Use
    /// [`exhausted_delay`](Self::exhausted_delay) after `RESOURCE_EXHAUSTED`.
    pub const fn bulk_writer() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 1.5,
            max: Duration::from_secs(60),
            max_attempts: 10,
            jitter_fraction: 0.3,
        }
    }

    /// Whether another attempt may follow `attempts_made` attempts (counted from 1).
    pub fn should_retry(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }

    /// The base (pre-jitter) delay before retry number `retry` (1 = the first retry), capped at
    /// `max`. `retry = 0` is treated as 1. Non-decreasing in `retry`.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let max = self.max.as_secs_f64();
        let initial = self.initial.as_secs_f64().min(max);
        let multiplier = if self.multiplier.is_finite() { self.multiplier.max(1.0) } else { 1.0 };
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = initial * multiplier.powi(exponent);
        secs(if base.is_finite() { base.min(max) } else { max })
    }

    /// The delay before retry number `retry`, jittered with `random_unit`, a uniform draw in
    /// `[0, 1)` (values outside are clamped): `0.5` gives the base delay, `0` the low end and
    /// values near `1` the high end. Always within `[0, max]`.
    pub fn delay(&self, retry: u32, random_unit: f64) -> Duration {
        self.jittered(self.base_delay(retry), random_unit)
    }

    /// The delay after a `RESOURCE_EXHAUSTED` answer: the maximum, jittered (downwards only,
    /// since no delay exceeds `max`).
    pub fn exhausted_delay(&self, random_unit: f64) -> Duration {
        self.jittered(self.max, random_unit)
    }

    fn jittered(&self, base: Duration, random_unit: f64) -> Duration {
        let unit = if random_unit.is_finite() { random_unit.clamp(0.0, 1.0) } else { 0.5 };
        let fraction = if self.jitter_fraction.is_finite() {
            self.jitter_fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let base = base.as_secs_f64();
        let jittered = base * (1.0 + fraction * (2.0 * unit - 1.0));
        secs(jittered.clamp(0.0, self.max.as_secs_f64()))
    }
}

fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bulk_writer_preset_matches_nodejs() {
        let b = Backoff::bulk_writer();
        assert_eq!(b.delay(1, 0.5), Duration::from_secs(1));
        assert_eq!(b.delay(2, 0.5), Duration::from_millis(1500));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(2250));
        assert_eq!(b.delay(100, 0.5), Duration::from_secs(60));
        assert!(b.should_retry(9));
        assert!(!b.should_retry(10));
        // 30 % jitter around 1 s.
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(700));
        assert!((b.delay(1, 0.999_999).as_secs_f64() - 1.3).abs() < 1e-3);
        assert!(b.exhausted_delay(0.5) == Duration::from_secs(60));
        assert_eq!(b.exhausted_delay(0.0), Duration::from_secs(42));
    }

    #[test]
    fn transaction_preset_allows_five_attempts() {
        let b = Backoff::firestore_transaction();
        assert!((1..5).all(|a| b.should_retry(a)));
        assert!(!b.should_retry(5));
        assert_eq!(b.delay(1, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn nonsense_inputs_stay_bounded() {
        let b = Backoff {
            initial: Duration::from_secs(10),
            multiplier: f64::NAN,
            max: Duration::from_secs(2),
            max_attempts: 0,
            jitter_fraction: 7.0,
        };
        assert_eq!(b.base_delay(0), Duration::from_secs(2));
        assert!(b.delay(5, f64::INFINITY) <= Duration::from_secs(2));
        assert!(b.delay(5, -3.0) <= Duration::from_secs(2));
        assert!(!b.should_retry(0));
    }

    fn any_backoff() -> impl Strategy<Value = Backoff> {
        (0u64..5_000, 1.0f64..3.0, 0u64..120_000, 1u32..20, 0.0f64..=1.0).prop_map(
            |(initial, multiplier, max, max_attempts, jitter_fraction)| Backoff {
                initial: Duration::from_millis(initial),
                multiplier,
                max: Duration::from_millis(max),
                max_attempts,
                jitter_fraction,
            },
        )
    }

    proptest! {
        #[test]
        fn delay_is_within_bounds(b in any_backoff(), retry in 0u32..200, r in 0.0f64..1.0) {
            let base = b.base_delay(retry).as_secs_f64();
            let d = b.delay(retry, r);
            prop_assert!(d <= b.max);
            let low = base * (1.0 - b.jitter_fraction);
            let high = (base * (1.0 + b.jitter_fraction)).min(b.max.as_secs_f64());
            prop_assert!(d.as_secs_f64() >= low - 1e-6, "{d:?} < {low}");
            prop_assert!(d.as_secs_f64() <= high + 1e-6, "{d:?} > {high}");
        }

        #[test]
        fn base_delay_is_monotone_and_capped(b in any_backoff(), retry in 0u32..200) {
            prop_assert!(b.base_delay(retry) <= b.base_delay(retry + 1));
            prop_assert!(b.base_delay(retry) <= b.max);
        }

        #[test]
        fn retries_are_bounded(b in any_backoff(), attempts in 0u32..100) {
            prop_assert_eq!(b.should_retry(attempts), attempts < b.max_attempts);
        }

        #[test]
        fn exhausted_delay_is_the_jittered_max(b in any_backoff(), r in 0.0f64..1.0) {
            let d = b.exhausted_delay(r).as_secs_f64();
            let max = b.max.as_secs_f64();
            prop_assert!(d <= max + 1e-9);
            prop_assert!(d >= max * (1.0 - b.jitter_fraction) - 1e-6);
        }
    }
}
