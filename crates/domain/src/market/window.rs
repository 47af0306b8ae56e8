//! Which stored results a changed candle touches, and their new values.
//!
//! When the candle at time `t` is inserted, corrected or removed, let `a` be the position of
//! the first stored candle at or after `t` (after the change). With `W` the volatility window
//! and `N` the vertical barrier (in candles):
//!
//! - returns change at `a` and `a + 1`; volatilities whose window holds one of them, at
//!   `a ..= a + W`; scaled returns (which use the previous volatility) at `a ..= a + W + 1`;
//! - labels change where the target changed (`a ..= a + W`) and where the path holds the
//!   changed candle: the path of `i` ends at the first candle at or after
//!   `t_i + N * granularity`, and candles of one stream start at least one granularity apart, so
//!   only the `N` candles before `a` can reach it.
//!
//! So the affected range is `a - N ..= a + W + 1`. To recompute it from stored candles alone,
//! the slice must reach `W + 1` candles before its start (the first scaled return needs
//! `sigma` of the previous candle, whose window needs `W` returns before it) and `N` candles
//! after its end (the last label's path): [`context`] says how many to load on each side, and
//! [`recompute`] answers the new values of the affected range only. A result whose context the
//! slice does not hold (the slice was cut short by the loader) is not answered, never guessed.

use chrono::{DateTime, Utc};

use super::candle::Granularity;
use super::features::{Bar, Derived, FeaturePolicy, derive_all};

/// How many stored candles to load before the changed time (strictly earlier) and after it
/// (strictly later) to recompute everything the change touches.
pub fn context(policy: &FeaturePolicy) -> (usize, usize) {
    let n = policy.vertical as usize;
    let w = policy.window;
    (n + w + 1, w + 1 + n + 1)
}

/// A loaded slice of a stream's stored candles around a changed time.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// The stored candles in time order, the change applied (the changed candle present when it
    /// was inserted or corrected, absent when removed).
    pub bars: Vec<Bar>,
    /// Nothing is stored before `bars[0]` (fewer than asked were found before the change).
    pub from_beginning: bool,
    /// Nothing is stored after the last bar (fewer than asked were found after the change).
    pub to_head: bool,
}

/// The new derived values of every candle of the affected range of a change at `changed`
/// whose context `slice` holds, as `(index into slice.bars, values)`.
pub fn recompute(
    slice: &Slice,
    changed: DateTime<Utc>,
    policy: &FeaturePolicy,
    granularity: Granularity,
) -> Vec<(usize, Derived)> {
    let bars = &slice.bars;
    if bars.is_empty() {
        return Vec::new();
    }
    let a = bars.partition_point(|b| b.ts < changed);
    let n = policy.vertical as usize;
    let w = policy.window;
    let first = a.saturating_sub(n);
    let last = (a + w + 1).min(bars.len() - 1);
    if first > last {
        return Vec::new();
    }
    let derived = derive_all(bars, policy, granularity);
    (first..=last)
        .filter(|&i| slice.from_beginning || i > w)
        .filter(|&i| {
            // A label that is still open needs every later candle up to its vertical time: the
            // slice must reach the head, or hold a candle past that time.
            slice.to_head
                || derived[i].label.is_some()
                || derived[i].vol.is_none()
                || bars.last().is_some_and(|last| {
                    last.ts >= bars[i].ts + super::features::horizon(policy, granularity)
                })
        })
        .map(|i| (i, derived[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn series(n: usize) -> Vec<Bar> {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        // A deterministic wiggle with a trend and a few gaps.
        let mut ts = t0;
        (0..n)
            .map(|i| {
                ts += TimeDelta::hours(if i % 17 == 5 { 3 } else { 1 });
                let x = i as f64;
                Bar { ts, close: 100.0 * (1.0 + 0.002 * (x * 0.7).sin() + 0.0003 * x) }
            })
            .collect()
    }

    fn policy() -> FeaturePolicy {
        FeaturePolicy { window: 6, vertical: 4, span: 4.0, ..FeaturePolicy::default() }
    }

    /// Applies a change the way the function does: loads the context around `changed` from
    /// `stored` (the state after the change), recomputes, and writes the answers into `results`.
    fn apply(stored: &[Bar], results: &mut Vec<(DateTime<Utc>, Derived)>, changed: DateTime<Utc>) {
        let (before, after) = context(&policy());
        let a = stored.partition_point(|b| b.ts < changed);
        let start = a.saturating_sub(before);
        let at_changed = usize::from(stored.get(a).is_some_and(|b| b.ts == changed));
        let end = (a + at_changed + after).min(stored.len());
        let slice = Slice {
            bars: stored[start..end].to_vec(),
            from_beginning: start == 0,
            to_head: end == stored.len(),
        };
        results.retain(|(ts, _)| stored.iter().any(|b| b.ts == *ts));
        for (i, d) in recompute(&slice, changed, &policy(), Granularity::H1) {
            let ts = slice.bars[i].ts;
            match results.iter_mut().find(|(t, _)| *t == ts) {
                Some(slot) => slot.1 = d,
                None => results.push((ts, d)),
            }
        }
        results.sort_by_key(|(ts, _)| *ts);
    }

    fn everything(bars: &[Bar]) -> Vec<(DateTime<Utc>, Derived)> {
        let d = derive_all(bars, &policy(), Granularity::H1);
        bars.iter().map(|b| b.ts).zip(d).collect()
    }

    fn arrive_in(order: &[usize], all: &[Bar]) -> Vec<(DateTime<Utc>, Derived)> {
        let mut stored: Vec<Bar> = Vec::new();
        let mut results = Vec::new();
        for &i in order {
            let bar = all[i];
            let at = stored.partition_point(|b| b.ts < bar.ts);
            stored.insert(at, bar);
            apply(&stored, &mut results, bar.ts);
        }
        results
    }

    #[test]
    fn in_order_arrival_gives_what_the_whole_series_gives() {
        let all = series(60);
        let order: Vec<usize> = (0..all.len()).collect();
        assert_eq!(arrive_in(&order, &all), everything(&all));
    }

    #[test]
    fn any_arrival_order_gives_the_same_results() {
        let all = series(60);
        let expected = everything(&all);
        // Reversed, interleaved, and a late block.
        let reversed: Vec<usize> = (0..all.len()).rev().collect();
        assert_eq!(arrive_in(&reversed, &all), expected);
        let mut interleaved: Vec<usize> = (0..all.len()).step_by(2).collect();
        interleaved.extend((1..all.len()).step_by(2));
        assert_eq!(arrive_in(&interleaved, &all), expected);
        let mut late: Vec<usize> = (0..all.len()).filter(|i| !(20..30).contains(i)).collect();
        late.extend(20..30);
        assert_eq!(arrive_in(&late, &all), expected);
        // A pseudo-random permutation (a fixed linear congruential shuffle).
        let mut shuffled: Vec<usize> = (0..all.len()).collect();
        let mut seed: u64 = 42;
        for i in (1..shuffled.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (seed >> 33) as usize % (i + 1);
            shuffled.swap(i, j);
        }
        assert_eq!(arrive_in(&shuffled, &all), expected);
    }

    #[test]
    fn a_correction_or_a_removal_recomputes_what_depends_on_it() {
        let mut all = series(60);
        let order: Vec<usize> = (0..all.len()).collect();
        let mut results = arrive_in(&order, &all);
        // Correct candle 30: the results equal those of the corrected series from scratch.
        all[30].close *= 1.01;
        apply(&all, &mut results, all[30].ts);
        assert_eq!(results, everything(&all));
        // Remove candle 40.
        let gone = all.remove(40);
        apply(&all, &mut results, gone.ts);
        assert_eq!(results, everything(&all));
    }

    #[test]
    fn a_short_slice_answers_only_what_it_can_know() {
        let all = series(40);
        // A slice cut on both sides around candle 20 with less context than asked.
        let slice = Slice { bars: all[15..25].to_vec(), from_beginning: false, to_head: false };
        let answered = recompute(&slice, all[20].ts, &policy(), Granularity::H1);
        let whole = derive_all(&all, &policy(), Granularity::H1);
        for (i, d) in answered {
            assert_eq!(d, whole[15 + i], "index {}", 15 + i);
        }
    }
}
