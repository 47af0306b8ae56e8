//! Scheduled cleanup jobs: their names, what they report, and when a run stops.
//!
//! A job works in bounded pages inside a time budget below its Scheduler attempt deadline, so
//! it can be interrupted anywhere (the next run carries on) and can run twice at once (every
//! page is idempotent; see `store::cleanup`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every cleanup job; the manifest schedules each as `POST /jobs/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Job {
    /// Releases reservations whose hold expired (stock goes back exactly once).
    ExpireReservations,
    /// Deletes feed items past their `expiresAt`.
    ExpireFeedItems,
    /// Deletes idempotency records past `expires_at` (TTL is the backstop).
    PruneIdempotency,
    /// Writes the sum of each sharded counter to its parent field.
    AggregateCounters,
}

impl Job {
    pub const ALL: [Job; 4] = [
        Job::ExpireReservations,
        Job::ExpireFeedItems,
        Job::PruneIdempotency,
        Job::AggregateCounters,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Job::ExpireReservations => "expire-reservations",
            Job::ExpireFeedItems => "expire-feed-items",
            Job::PruneIdempotency => "prune-idempotency",
            Job::AggregateCounters => "aggregate-counters",
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown job name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job `{0}`")]
pub struct UnknownJob(pub String);

impl FromStr for Job {
    type Err = UnknownJob;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Job::ALL.into_iter().find(|j| j.as_str() == s).ok_or_else(|| UnknownJob(s.to_owned()))
    }
}

/// What one page of a job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Documents looked at.
    pub examined: u64,
    /// Documents changed (deleted, released, aggregated) by this page.
    pub changed: u64,
    /// Whether the page was full, so more may remain.
    pub full: bool,
}

/// What a run did, answered to Scheduler and logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub examined: u64,
    pub changed: u64,
    pub pages: u64,
    /// True when the run stopped on its budget with work left; the next run continues.
    pub remaining: bool,
}

impl Report {
    pub fn add(&mut self, page: Page) {
        self.examined += page.examined;
        self.changed += page.changed;
        self.pages += 1;
        self.remaining = page.full;
    }
}

/// How long a run may work: a share of the Scheduler attempt deadline, leaving room to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub deadline: Duration,
    pub max_pages: u64,
}

impl Budget {
    /// 80% of the attempt deadline, at most `max_pages` pages.
    pub fn within(attempt_deadline: Duration, max_pages: u64) -> Self {
        Self { deadline: attempt_deadline.mul_f64(0.8), max_pages }
    }

    /// Whether to fetch another page after `report`, `elapsed` into the run. Stops when the last
    /// page was not full (nothing left), on the page cap, or when another page of the slowest
    /// duration seen so far would cross the deadline.
    pub fn another_page(&self, report: &Report, elapsed: Duration, slowest_page: Duration) -> bool {
        if report.pages == 0 {
            return true;
        }
        report.remaining && report.pages < self.max_pages && elapsed + slowest_page < self.deadline
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn job_names_round_trip() {
        for job in Job::ALL {
            assert_eq!(job.as_str().parse::<Job>(), Ok(job));
            assert_eq!(serde_json::to_value(job).unwrap(), serde_json::json!(job.as_str()));
        }
        assert_eq!("drop-everything".parse::<Job>(), Err(UnknownJob("drop-everything".into())));
    }

    #[test]
    fn a_run_stops_when_a_page_is_not_full() {
        let budget = Budget::within(Duration::from_secs(60), 100);
        let mut report = Report::default();
        assert!(budget.another_page(&report, Duration::ZERO, Duration::ZERO));
        report.add(Page { examined: 500, changed: 500, full: true });
        assert!(budget.another_page(&report, Duration::from_secs(1), Duration::from_secs(1)));
        report.add(Page { examined: 10, changed: 10, full: false });
        assert!(!budget.another_page(&report, Duration::from_secs(2), Duration::from_secs(1)));
        assert!(!report.remaining);
    }

    #[test]
    fn a_run_stops_before_the_deadline_and_reports_work_left() {
        let budget = Budget::within(Duration::from_secs(10), 100);
        let mut report = Report::default();
        report.add(Page { examined: 500, changed: 500, full: true });
        assert!(!budget.another_page(&report, Duration::from_secs(7), Duration::from_millis(1500)));
        assert!(report.remaining);
    }

    proptest! {
        #[test]
        fn never_more_pages_than_the_cap(cap in 1u64..20, full: bool) {
            let budget = Budget::within(Duration::from_secs(3600), cap);
            let mut report = Report::default();
            let mut pages = 0;
            while budget.another_page(&report, Duration::ZERO, Duration::ZERO) && pages < 100 {
                report.add(Page { examined: 1, changed: 1, full });
                pages += 1;
            }
            prop_assert!(pages <= cap);
            prop_assert!(full || pages == 1);
        }
    }
}
