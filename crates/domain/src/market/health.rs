//! Stream health: when a stream is silent, and the transitions the scheduled health job makes.
//!
//! A stream is silent when no complete candle arrived within its granularity plus a grace
//! period (600 s by default), counted from the last arrival, or, for a stream that never had a
//! candle, from when the health job first watched it. The job marks a healthy stream silent
//! once (one `stream-alerts` message) and a silent stream recovered once a candle arrived after
//! the silence began (one more message).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::candle::Granularity;

/// What the job last decided about a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStatus {
    /// Candles arrive.
    #[default]
    Healthy,
    /// No candle within the granularity plus the grace period.
    Silent,
}

/// The facts of a stream the rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthFacts {
    /// The stored status.
    pub status: StreamStatus,
    /// When the last complete candle arrived, if any.
    pub last_arrival_at: Option<DateTime<Utc>>,
    /// When the current silence was detected (while silent).
    pub silent_since: Option<DateTime<Utc>>,
    /// When the job first watched the stream.
    pub watched_since: DateTime<Utc>,
}

/// What the job does with a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changes.
    Stay,
    /// Mark it silent and alert.
    GoSilent,
    /// Mark it healthy again and alert.
    Recover,
}

/// Whether a stream whose last candle arrived at `last_arrival_at` (or that has been watched
/// since `watched_since` without one) is silent at `now`.
pub fn is_silent(
    last_arrival_at: Option<DateTime<Utc>>,
    watched_since: DateTime<Utc>,
    granularity: Granularity,
    grace: TimeDelta,
    now: DateTime<Utc>,
) -> bool {
    let since = last_arrival_at.unwrap_or(watched_since);
    now - since > granularity.length() + grace
}

/// The transition of a stream at `now`.
pub fn transition(
    facts: &HealthFacts,
    granularity: Granularity,
    grace: TimeDelta,
    now: DateTime<Utc>,
) -> Transition {
    let silent = is_silent(facts.last_arrival_at, facts.watched_since, granularity, grace, now);
    match facts.status {
        StreamStatus::Healthy if silent => Transition::GoSilent,
        StreamStatus::Silent => {
            let resumed = match (facts.last_arrival_at, facts.silent_since) {
                (Some(arrival), Some(since)) => arrival > since,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if resumed && !silent { Transition::Recover } else { Transition::Stay }
        }
        StreamStatus::Healthy => Transition::Stay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    #[test]
    fn silence_is_the_granularity_plus_the_grace_without_a_candle() {
        let grace = TimeDelta::seconds(600);
        // M1: 60 s + 600 s.
        assert!(!is_silent(Some(t(0)), t(0), Granularity::M1, grace, t(660)));
        assert!(is_silent(Some(t(0)), t(0), Granularity::M1, grace, t(661)));
        // The last arrival counts, even when it predates the first watch.
        assert!(is_silent(Some(t(0)), t(500), Granularity::M1, grace, t(661)));
        // Never a candle: counted from the first watch.
        assert!(!is_silent(None, t(100), Granularity::M1, grace, t(700)));
        assert!(is_silent(None, t(100), Granularity::M1, grace, t(761)));
    }

    #[test]
    fn one_transition_each_way() {
        let grace = TimeDelta::seconds(600);
        let healthy = HealthFacts {
            status: StreamStatus::Healthy,
            last_arrival_at: Some(t(0)),
            silent_since: None,
            watched_since: t(0),
        };
        assert_eq!(transition(&healthy, Granularity::M1, grace, t(600)), Transition::Stay);
        assert_eq!(transition(&healthy, Granularity::M1, grace, t(700)), Transition::GoSilent);
        let silent =
            HealthFacts { status: StreamStatus::Silent, silent_since: Some(t(700)), ..healthy };
        // Still silent: no second alert.
        assert_eq!(transition(&silent, Granularity::M1, grace, t(5_000)), Transition::Stay);
        // A candle after the silence began: recovered.
        let resumed = HealthFacts { last_arrival_at: Some(t(800)), ..silent };
        assert_eq!(transition(&resumed, Granularity::M1, grace, t(810)), Transition::Recover);
        // ... but not when that candle is itself too old by now (silent again at once).
        assert_eq!(transition(&resumed, Granularity::M1, grace, t(2_000)), Transition::Stay);
    }
}
