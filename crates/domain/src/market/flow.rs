//! Priority budgets of the streams: each stream may be processed at the rate of its priority
//! (candles per minute), and all streams together at a global rate. Over budget, a candle is not
//! dropped: it is refused for now with the time to wait, and the sender (Eventarc, with the
//! trigger's retry policy) delivers it again later.
//!
//! The budgets are token buckets (capacity one minute's budget, refilled continuously) kept in
//! memory by each instance, and each instance holds `1 / instances` of every budget (the
//! manifest's `max_instances`, as the write ramp is shared): the deployment as a whole never
//! exceeds the budget and a budget check costs no Firestore operation, at the price of admitting
//! less than the budget when load is spread unevenly over instances.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A stream's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// 500 candles per minute by default; its silence fails `GET /health/streams`.
    Critical,
    /// 200 per minute.
    High,
    /// 100 per minute.
    Medium,
    /// 50 per minute.
    Low,
}

impl Priority {
    /// Every priority, highest first.
    pub const ALL: [Priority; 4] =
        [Priority::Critical, Priority::High, Priority::Medium, Priority::Low];

    /// The lower-case name (`critical`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("{s:?} is not critical, high, medium or low"))
    }
}

/// Candles per minute by priority, and for all streams together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budgets {
    /// Critical, high, medium, low (in [`Priority::ALL`] order).
    pub per_priority: [f64; 4],
    /// Every stream together.
    pub global: f64,
}

impl Default for Budgets {
    /// 500, 200, 100 and 50 per minute, 1,000 in all.
    fn default() -> Self {
        Self { per_priority: [500.0, 200.0, 100.0, 50.0], global: 1_000.0 }
    }
}

impl Budgets {
    /// The budget of one priority, per minute.
    pub fn of(&self, priority: Priority) -> f64 {
        let i = Priority::ALL.iter().position(|p| *p == priority).unwrap_or(0);
        self.per_priority[i]
    }

    /// This instance's share when `instances` share the budgets.
    #[must_use]
    pub fn shared_by(self, instances: u32) -> Self {
        let n = f64::from(instances.max(1));
        Self { per_priority: self.per_priority.map(|b| b / n), global: self.global / n }
    }
}

/// A token bucket: `capacity` tokens, refilled at `per_sec`, full at first use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at: Option<DateTime<Utc>>,
}

impl TokenBucket {
    /// A bucket of one minute of `per_minute` (at least one token).
    pub fn per_minute(per_minute: f64) -> Self {
        Self { capacity: per_minute.max(1.0), per_sec: per_minute / 60.0, tokens: 0.0, at: None }
    }

    fn refill(&mut self, now: DateTime<Utc>) {
        match self.at {
            None => self.tokens = self.capacity,
            Some(at) => {
                let secs = (now - at).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6;
                self.tokens = (self.tokens + secs * self.per_sec).min(self.capacity);
            }
        }
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
    }

    /// Takes a token at `now`, or answers how long until one is there.
    pub fn take(&mut self, now: DateTime<Utc>) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        let secs = if self.per_sec > 0.0 { missing / self.per_sec } else { 60.0 };
        Err(Duration::from_secs_f64(secs.clamp(0.001, 3_600.0)))
    }

    /// Gives back a token taken by mistake (the other budget refused).
    pub fn give_back(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
    }
}

/// Whether a candle may be processed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Admit,
    /// Over the stream's budget: come back after `retry_after`.
    StreamBudget { retry_after: Duration },
    /// Over the global budget: come back after `retry_after`.
    GlobalBudget { retry_after: Duration },
}

/// The budgets of one instance: a bucket per stream and one for all.
#[derive(Debug, Clone)]
pub struct FlowControl {
    budgets: Budgets,
    global: TokenBucket,
    streams: HashMap<String, TokenBucket>,
}

impl FlowControl {
    /// Fresh buckets for `budgets` (already this instance's share).
    pub fn new(budgets: Budgets) -> Self {
        Self { global: TokenBucket::per_minute(budgets.global), budgets, streams: HashMap::new() }
    }

    /// Takes one candle of `stream` (of `priority`) at `now` from both budgets, or neither.
    pub fn admit(&mut self, stream: &str, priority: Priority, now: DateTime<Utc>) -> Admission {
        let per_minute = self.budgets.of(priority);
        let bucket = self
            .streams
            .entry(stream.to_owned())
            .or_insert_with(|| TokenBucket::per_minute(per_minute));
        if let Err(retry_after) = bucket.take(now) {
            return Admission::StreamBudget { retry_after };
        }
        if let Err(retry_after) = self.global.take(now) {
            bucket.give_back();
            return Admission::GlobalBudget { retry_after };
        }
        Admission::Admit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    #[test]
    fn a_stream_gets_its_minute_then_waits_for_the_refill() {
        let budgets = Budgets { per_priority: [500.0, 200.0, 100.0, 3.0], global: 1_000.0 };
        let mut flow = FlowControl::new(budgets);
        for _ in 0..3 {
            assert_eq!(flow.admit("EUR_USD_M1", Priority::Low, t(0)), Admission::Admit);
        }
        let Admission::StreamBudget { retry_after } = flow.admit("EUR_USD_M1", Priority::Low, t(0))
        else {
            panic!("over budget");
        };
        assert_eq!(retry_after, Duration::from_secs(20), "3 per minute: one every 20 s");
        // Another stream has its own bucket.
        assert_eq!(flow.admit("GBP_USD_M1", Priority::Low, t(0)), Admission::Admit);
        // 20 s later one token is back.
        assert_eq!(flow.admit("EUR_USD_M1", Priority::Low, t(20)), Admission::Admit);
        assert!(matches!(
            flow.admit("EUR_USD_M1", Priority::Low, t(20)),
            Admission::StreamBudget { .. }
        ));
    }

    #[test]
    fn the_global_budget_caps_all_streams_and_refunds_the_stream() {
        let budgets = Budgets { per_priority: [5.0, 5.0, 5.0, 5.0], global: 2.0 };
        let mut flow = FlowControl::new(budgets);
        assert_eq!(flow.admit("A_H1", Priority::High, t(0)), Admission::Admit);
        assert_eq!(flow.admit("B_H1", Priority::High, t(0)), Admission::Admit);
        assert!(matches!(flow.admit("A_H1", Priority::High, t(0)), Admission::GlobalBudget { .. }));
        // The refused candle did not spend A's own budget: 4 left once the global refills.
        let mut admitted = 0;
        for s in 0..10 {
            if flow.admit("A_H1", Priority::High, t(60 * (s + 1))) == Admission::Admit {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 10);
    }

    #[test]
    fn instances_share_the_budgets_and_priorities_parse() {
        let shared = Budgets::default().shared_by(4);
        assert_eq!(shared.of(Priority::Critical), 125.0);
        assert_eq!(shared.global, 250.0);
        assert_eq!("HIGH".parse::<Priority>(), Ok(Priority::High));
        assert!("urgent".parse::<Priority>().is_err());
        // A clock that goes backwards does not mint tokens.
        let mut bucket = TokenBucket::per_minute(1.0);
        assert!(bucket.take(t(10)).is_ok());
        assert!(bucket.take(t(0)).is_err());
    }
}
