//! Features and labels of a stream, computed from its stored complete candles in time order
//! (`x_0 .. x_n`, closes `c_i`, start times `t_i`), following the conventions of Lopez de Prado,
//! *Advances in Financial Machine Learning* (2018), chapter 3:
//!
//! - **log return** `r_i = ln(c_i / c_{i-1})` over the previous stored candle (a gap is bridged:
//!   the return spans it); `r_0` is undefined.
//! - **volatility** `sigma_i`: the exponentially weighted standard deviation of the last
//!   `window` log returns `r_{i-window+1} .. r_i`, with span `span` (`alpha = 2 / (span + 1)`),
//!   exactly pandas' `Series.ewm(span=span, adjust=True).std()` (bias-corrected) evaluated on
//!   that window, i.e. the book's `getDailyVol` (snippet 3.1, `ewm(span=span0).std()`) truncated
//!   to a fixed window. Truncation is what makes every result depend on a bounded set of candles,
//!   so a correction or a late candle recomputes a bounded range. Undefined while fewer than
//!   `window` returns are stored.
//! - **volatility-scaled return** `z_i = r_i / sigma_{i-1}`: scaled by the estimate known before
//!   the candle (ex ante, no look-ahead); undefined when `sigma_{i-1}` is undefined or zero.
//! - **triple-barrier label** of candle `i` (snippets 3.2 to 3.4, side long, target
//!   `trgt = sigma_i`): the path return `c_j / c_i - 1` of the following candles is compared with
//!   the upper barrier `profit_take * sigma_i` and the lower barrier `-stop_loss * sigma_i`,
//!   strictly (`>` and `<`, as `applyPtSlOnT1` does); a multiplier of 0 disables its barrier.
//!   The vertical barrier is the first stored candle starting at or after
//!   `t_i + vertical * granularity` (`searchsorted` of `t1` in snippet 3.4); the path is the
//!   candles after `i` up to and including it. The label is `+1` when the upper barrier is
//!   touched first, `-1` for the lower one, and `0` when the vertical barrier comes first (the
//!   triple-barrier labelling of section 3.4; a horizontal touch at the vertical candle counts
//!   as horizontal). No label without a positive target. A label is *unresolved* (none yet)
//!   until a barrier is touched or the vertical candle is stored, so labels of earlier candles
//!   are written as later candles arrive.
//!
//! Only closes are used for barriers (as in the book); highs and lows are validated, not used.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::candle::Granularity;

/// The numbers of the features and labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeaturePolicy {
    /// EWMA span of the volatility (`alpha = 2 / (span + 1)`); at least 1.
    pub span: f64,
    /// How many log returns the volatility looks at; at least 2.
    pub window: usize,
    /// Upper barrier in multiples of the target (0: none).
    pub profit_take: f64,
    /// Lower barrier in multiples of the target (0: none).
    pub stop_loss: f64,
    /// The vertical barrier, in candles of the stream's granularity; at least 1.
    pub vertical: u32,
}

impl Default for FeaturePolicy {
    /// Span 20 over 50 returns, symmetric barriers at one target, vertical after 10 candles.
    fn default() -> Self {
        Self { span: 20.0, window: 50, profit_take: 1.0, stop_loss: 1.0, vertical: 10 }
    }
}

impl FeaturePolicy {
    /// Checks the numbers (what start-up validation reports).
    pub fn check(&self) -> Result<(), String> {
        if !(self.span.is_finite() && self.span >= 1.0) {
            return Err(format!("span {} must be at least 1", self.span));
        }
        if self.window < 2 {
            return Err(format!("window {} must be at least 2", self.window));
        }
        for (name, m) in [("profit_take", self.profit_take), ("stop_loss", self.stop_loss)] {
            if !(m.is_finite() && m >= 0.0) {
                return Err(format!("{name} {m} must be a number >= 0"));
            }
        }
        if self.profit_take == 0.0 && self.stop_loss == 0.0 {
            return Err("profit_take and stop_loss cannot both be 0".to_owned());
        }
        if self.vertical == 0 {
            return Err("vertical must be at least 1 candle".to_owned());
        }
        Ok(())
    }
}

/// Which barrier resolved a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelBarrier {
    /// Profit-take: `+1`.
    Upper,
    /// Stop-loss: `-1`.
    Lower,
    /// Time ran out: `0`.
    Vertical,
}

/// A resolved triple-barrier label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// `+1`, `-1` or `0`.
    pub value: i8,
    /// The barrier touched first.
    pub barrier: LabelBarrier,
    /// Start time of the candle that touched it.
    pub resolved_at: DateTime<Utc>,
    /// The path return `c_j / c_i - 1` at that candle.
    pub ret: f64,
    /// The target `sigma_i` the barriers were set from.
    pub target: f64,
}

/// Everything derived for one candle.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Derived {
    /// `r_i`
    pub ret: Option<f64>,
    /// `sigma_i`
    pub vol: Option<f64>,
    /// `z_i`
    pub scaled: Option<f64>,
    /// The label, once resolved.
    pub label: Option<Label>,
}

/// A stored candle as the features see it: start time and close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Start time.
    pub ts: DateTime<Utc>,
    /// Close.
    pub close: f64,
}

/// `ln(close / prev)`.
pub fn log_return(prev: f64, close: f64) -> f64 {
    (close / prev).ln()
}

/// pandas' `Series(xs).ewm(span=span, adjust=True).std().iloc[-1]`: weights `(1 - alpha)^k` for
/// the value `k` steps before the last, the weighted variance about the weighted mean, times the
/// bias correction `(sum w)^2 / ((sum w)^2 - sum w^2)`. `None` for fewer than two values (pandas
/// answers NaN), and a variance that rounds below zero is zero.
pub fn ewm_std(xs: &[f64], span: f64) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let decay = 1.0 - 2.0 / (span + 1.0);
    let n = xs.len();
    let mut weights = Vec::with_capacity(n);
    let mut w = 1.0;
    for _ in 0..n {
        weights.push(w);
        w *= decay;
    }
    weights.reverse();
    let sum_w: f64 = weights.iter().sum();
    let sum_w2: f64 = weights.iter().map(|w| w * w).sum();
    let mean = weights.iter().zip(xs).map(|(w, x)| w * x).sum::<f64>() / sum_w;
    let biased =
        weights.iter().zip(xs).map(|(w, x)| w * (x - mean) * (x - mean)).sum::<f64>() / sum_w;
    let denominator = sum_w * sum_w - sum_w2;
    if denominator <= 0.0 {
        return None;
    }
    Some((biased * sum_w * sum_w / denominator).max(0.0).sqrt())
}

/// Log returns of `bars` (`None` for the first).
pub fn log_returns(bars: &[Bar]) -> Vec<Option<f64>> {
    (0..bars.len()).map(|i| (i > 0).then(|| log_return(bars[i - 1].close, bars[i].close))).collect()
}

/// `sigma_i` of every bar: defined from the `window`-th return on.
pub fn volatilities(returns: &[Option<f64>], policy: &FeaturePolicy) -> Vec<Option<f64>> {
    (0..returns.len())
        .map(|i| {
            if i < policy.window {
                return None;
            }
            let window: Option<Vec<f64>> =
                returns[i + 1 - policy.window..=i].iter().copied().collect();
            ewm_std(&window?, policy.span)
        })
        .collect()
}

/// The triple-barrier label of bar `i` given its target, or `None` while unresolved.
pub fn label(
    bars: &[Bar],
    i: usize,
    target: f64,
    policy: &FeaturePolicy,
    granularity: Granularity,
) -> Option<Label> {
    if !(target.is_finite() && target > 0.0) {
        return None;
    }
    let start = bars[i];
    let vertical_at = start.ts + granularity.length() * i32::try_from(policy.vertical).ok()?;
    let upper = (policy.profit_take > 0.0).then_some(policy.profit_take * target);
    let lower = (policy.stop_loss > 0.0).then_some(-policy.stop_loss * target);
    for bar in &bars[i + 1..] {
        let ret = bar.close / start.close - 1.0;
        let resolved = |value, barrier| Label { value, barrier, resolved_at: bar.ts, ret, target };
        if upper.is_some_and(|u| ret > u) {
            return Some(resolved(1, LabelBarrier::Upper));
        }
        if lower.is_some_and(|l| ret < l) {
            return Some(resolved(-1, LabelBarrier::Lower));
        }
        if bar.ts >= vertical_at {
            return Some(resolved(0, LabelBarrier::Vertical));
        }
    }
    None
}

/// Everything derived for every bar of `bars` (sorted by time, distinct), from `bars` alone:
/// the caller decides which of them had their whole context in the slice
/// ([`super::window::recompute`]).
pub fn derive_all(bars: &[Bar], policy: &FeaturePolicy, granularity: Granularity) -> Vec<Derived> {
    let returns = log_returns(bars);
    let vols = volatilities(&returns, policy);
    (0..bars.len())
        .map(|i| {
            let scaled = match (returns[i], i.checked_sub(1).and_then(|p| vols[p])) {
                (Some(r), Some(v)) if v > 0.0 => Some(r / v),
                _ => None,
            };
            let label = vols[i].and_then(|v| label(bars, i, v, policy, granularity));
            Derived { ret: returns[i], vol: vols[i], scaled, label }
        })
        .collect()
}

/// How far a label looks ahead in time: `vertical` candles.
pub fn horizon(policy: &FeaturePolicy, granularity: Granularity) -> TimeDelta {
    granularity.length() * i32::try_from(policy.vertical).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn bars(closes: &[f64]) -> Vec<Bar> {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        closes
            .iter()
            .enumerate()
            .map(|(i, &close)| Bar { ts: t0 + TimeDelta::hours(i as i64), close })
            .collect()
    }

    #[test]
    fn ewm_std_matches_the_closed_form_of_two_values() {
        // Two values a, b, weights (d, 1): the bias-corrected weighted std is |a - b| / sqrt(2)
        // whatever the span (the correction exactly undoes the weighting for n = 2).
        let s = ewm_std(&[1.0, 3.0], 5.0).unwrap();
        assert!((s - 2.0 / 2f64.sqrt()).abs() < 1e-15, "{s}");
        assert_eq!(ewm_std(&[1.0], 5.0), None);
        assert_eq!(ewm_std(&[2.0, 2.0, 2.0], 5.0), Some(0.0));
        // A huge span weights equally: the ordinary sample standard deviation.
        let s = ewm_std(&[1.0, 2.0, 3.0, 4.0], 1e12).unwrap();
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-6, "{s}");
    }

    #[test]
    fn volatility_needs_a_full_window_and_scaling_uses_the_previous_one() {
        let policy = FeaturePolicy { window: 3, ..FeaturePolicy::default() };
        let d = derive_all(&bars(&[1.0, 1.01, 1.0, 1.02, 1.03]), &policy, Granularity::H1);
        assert_eq!(d[0].ret, None);
        assert!(d[2].vol.is_none(), "two returns do not fill a window of 3");
        assert!(d[3].vol.is_some());
        assert!(d[3].scaled.is_none(), "sigma_2 is undefined");
        let z = d[4].ret.unwrap() / d[3].vol.unwrap();
        assert_eq!(d[4].scaled, Some(z));
    }

    #[test]
    fn labels_follow_the_first_barrier_touched() {
        let policy = FeaturePolicy { vertical: 3, ..FeaturePolicy::default() };
        let b = bars(&[100.0, 100.5, 102.0, 99.0]);
        // Target 1%: +0.5% stays inside, +2% crosses the upper barrier.
        let l = label(&b, 0, 0.01, &policy, Granularity::H1).unwrap();
        assert_eq!((l.value, l.barrier, l.resolved_at), (1, LabelBarrier::Upper, b[2].ts));
        let b = bars(&[100.0, 99.5, 98.5, 103.0]);
        assert_eq!(label(&b, 0, 0.01, &policy, Granularity::H1).unwrap().value, -1);
        // Exactly at the barrier is not a touch (strict, as the book's code).
        let b = bars(&[100.0, 150.0, 100.0, 100.2]);
        let l = label(&b, 0, 0.5, &policy, Granularity::H1).unwrap();
        assert_eq!((l.value, l.barrier, l.resolved_at), (0, LabelBarrier::Vertical, b[3].ts));
        // Unresolved until the vertical candle is stored.
        assert_eq!(label(&b[..3], 0, 0.5, &policy, Granularity::H1), None);
        // A gap: the first candle at or after the vertical time closes the path.
        let mut gapped = bars(&[100.0, 100.1, 100.2]);
        gapped[2].ts = gapped[0].ts + TimeDelta::hours(7);
        let l = label(&gapped, 0, 0.01, &policy, Granularity::H1).unwrap();
        assert_eq!((l.value, l.resolved_at), (0, gapped[2].ts));
        // No target, no label; a disabled barrier is never touched.
        assert_eq!(label(&b, 0, 0.0, &policy, Granularity::H1), None);
        let long_only = FeaturePolicy { stop_loss: 0.0, ..policy };
        let b = bars(&[100.0, 90.0, 90.0, 90.0]);
        assert_eq!(label(&b, 0, 0.01, &long_only, Granularity::H1).unwrap().value, 0);
    }

    #[test]
    fn policies_are_checked() {
        assert_eq!(FeaturePolicy::default().check(), Ok(()));
        for bad in [
            FeaturePolicy { span: 0.5, ..FeaturePolicy::default() },
            FeaturePolicy { window: 1, ..FeaturePolicy::default() },
            FeaturePolicy { vertical: 0, ..FeaturePolicy::default() },
            FeaturePolicy { profit_take: -1.0, ..FeaturePolicy::default() },
            FeaturePolicy { profit_take: 0.0, stop_loss: 0.0, ..FeaturePolicy::default() },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
