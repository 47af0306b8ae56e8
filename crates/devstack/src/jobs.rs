//! Cloud Scheduler for the local stack: every `schedule` trigger of the manifest runs on its
//! cron, in its time zone, as an authenticated POST with the headers Cloud Scheduler sends
//! (contracts 5), retried `retry_count` times with Scheduler's backoff. `--speed N` runs a
//! virtual clock N times faster than the wall clock; `--run-jobs-now` fires every job once at
//! start-up. The calendar maths (next fire time, the virtual clock, retry delays, headers) are
//! pure functions.

use std::str::FromStr as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use croner::Cron;
use tokio_util::sync::CancellationToken;

use crate::identity::{self, Caller};

/// The User-Agent of Cloud Scheduler requests.
pub const USER_AGENT: &str = "Google-Cloud-Scheduler";

/// A job the manifest declares, ready to run.
#[derive(Debug, Clone)]
pub struct ScheduledJob {
    pub function: String,
    pub job: String,
    pub cron_text: String,
    pub time_zone: String,
    cron: Cron,
    tz: Tz,
    /// The full URL of the job's endpoint.
    pub endpoint: String,
    /// The OIDC audience the function expects.
    pub audience: String,
    pub attempt_deadline: Duration,
    pub retry_count: u32,
}

/// Why a job cannot be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("schedule `{job}`: cron `{cron}` does not parse: {message}")]
    BadCron { job: String, cron: String, message: String },
    #[error("schedule `{job}`: time zone `{tz}` is not an IANA time zone")]
    BadTimeZone { job: String, tz: String },
}

/// Everything a job needs, from the manifest and the stack.
#[derive(Debug, Clone)]
pub struct JobSpec<'a> {
    pub function: &'a str,
    pub job: &'a str,
    pub cron: &'a str,
    pub time_zone: &'a str,
    pub endpoint: String,
    pub audience: String,
    pub attempt_deadline: Duration,
    pub retry_count: u32,
}

impl ScheduledJob {
    pub fn new(spec: JobSpec<'_>) -> Result<Self, JobError> {
        let cron = Cron::from_str(spec.cron).map_err(|e| JobError::BadCron {
            job: spec.job.to_owned(),
            cron: spec.cron.to_owned(),
            message: e.to_string(),
        })?;
        let tz = spec.time_zone.parse::<Tz>().map_err(|_| JobError::BadTimeZone {
            job: spec.job.to_owned(),
            tz: spec.time_zone.to_owned(),
        })?;
        Ok(Self {
            function: spec.function.to_owned(),
            job: spec.job.to_owned(),
            cron_text: spec.cron.to_owned(),
            time_zone: spec.time_zone.to_owned(),
            cron,
            tz,
            endpoint: spec.endpoint,
            audience: spec.audience,
            attempt_deadline: spec.attempt_deadline,
            retry_count: spec.retry_count,
        })
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }
}

/// A clock that runs `speed` times faster than the wall clock from a common start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    real_start: Instant,
    virtual_start: DateTime<Utc>,
    speed: f64,
}

impl Clock {
    /// `speed` below 1 (or not finite) counts as 1.
    pub fn new(real_start: Instant, virtual_start: DateTime<Utc>, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed >= 1.0 { speed } else { 1.0 };
        Self { real_start, virtual_start, speed }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Virtual time at wall-clock instant `real`.
    pub fn virtual_at(&self, real: Instant) -> DateTime<Utc> {
        let elapsed = real.saturating_duration_since(self.real_start).mul_f64(self.speed);
        self.virtual_start + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }

    /// The wall-clock instant at which virtual time reaches `t` (now, if already past).
    pub fn real_at(&self, t: DateTime<Utc>) -> Instant {
        let ahead = (t - self.virtual_start).to_std().unwrap_or(Duration::ZERO);
        self.real_start + ahead.div_f64(self.speed)
    }

    /// A virtual duration in wall-clock time.
    pub fn real_duration(&self, d: Duration) -> Duration {
        d.div_f64(self.speed)
    }
}

/// Cloud Scheduler's wait before retry `retry` (1-based) with the default retry config:
/// minimum 5 s, doubled 5 times, then growing linearly by the last doubled step, at most 1 h.
pub fn retry_delay(retry: u32) -> Duration {
    const MIN: u64 = 5;
    const MAX: u64 = 3600;
    const DOUBLINGS: u32 = 5;
    let retry = retry.max(1);
    let secs = if retry <= DOUBLINGS + 1 {
        MIN << (retry - 1)
    } else {
        let step = MIN << DOUBLINGS;
        step + u64::from(retry - DOUBLINGS - 1) * step
    };
    Duration::from_secs(secs.min(MAX))
}

/// The headers Cloud Scheduler sets on an HTTP target request (plus the OIDC token).
pub fn headers(job: &str, schedule_time: DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        ("user-agent", USER_AGENT.to_owned()),
        (gcp::scheduler::HEADER_SCHEDULER, "true".to_owned()),
        (gcp::scheduler::HEADER_JOB_NAME, job.to_owned()),
        (
            gcp::scheduler::HEADER_SCHEDULE_TIME,
            schedule_time.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
    ]
}

/// One run of `job` for `schedule_time`: the first attempt and its retries. Returns the final
/// status (`None`: no answer).
pub async fn run_once(
    http: &reqwest::Client,
    project: &str,
    job: &ScheduledJob,
    schedule_time: DateTime<Utc>,
    clock: &Clock,
    cancel: &CancellationToken,
) -> Option<u16> {
    let mut last = None;
    for attempt in 1..=job.retry_count + 1 {
        let mut request = http
            .post(&job.endpoint)
            .bearer_auth(identity::oidc_token(project, Caller::Scheduler, &job.audience))
            .timeout(job.attempt_deadline);
        for (name, value) in headers(&job.job, schedule_time) {
            request = request.header(name, value);
        }
        last = request.send().await.ok().map(|r| r.status().as_u16());
        let ok = last.is_some_and(|s| (200..300).contains(&s));
        let status = last.map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        if ok {
            tracing::info!(function = %job.function, job = %job.job, %status, %schedule_time, attempt, "scheduled job ran");
            return last;
        }
        if attempt > job.retry_count {
            tracing::error!(function = %job.function, job = %job.job, %status, %schedule_time, attempt, "scheduled job failed; waiting for the next schedule");
            break;
        }
        let wait = retry_delay(attempt);
        tracing::warn!(function = %job.function, job = %job.job, %status, attempt, retry_in_s = wait.as_secs(), "scheduled job failed; retrying");
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(clock.real_duration(wait)) => {}
        }
    }
    last
}

/// Runs `job` on its cron until `cancel` fires (and once at start when `run_now`).
pub fn spawn(
    job: ScheduledJob,
    project: String,
    http: reqwest::Client,
    clock: Clock,
    run_now: bool,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = clock.virtual_at(Instant::now());
        if run_now {
            let (http, project, job, cancel) =
                (http.clone(), project.clone(), job.clone(), cancel.clone());
            tokio::spawn(
                async move { run_once(&http, &project, &job, last, &clock, &cancel).await },
            );
        }
        while let Some(next) = job.next_after(last) {
            let wake = tokio::time::Instant::from_std(clock.real_at(next));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(wake) => {}
            }
            // Runs may overlap, as in production when one outlasts the schedule.
            let (http, project, run, cancel) =
                (http.clone(), project.clone(), job.clone(), cancel.clone());
            tokio::spawn(
                async move { run_once(&http, &project, &run, next, &clock, &cancel).await },
            );
            last = next;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn job(cron: &str, tz: &str) -> Result<ScheduledJob, JobError> {
        ScheduledJob::new(JobSpec {
            function: "f",
            job: "expire-reservations",
            cron,
            time_zone: tz,
            endpoint: "http://127.0.0.1:1/jobs/expire-reservations".into(),
            audience: "http://127.0.0.1:1".into(),
            attempt_deadline: Duration::from_secs(30),
            retry_count: 0,
        })
    }

    #[test]
    fn next_fire_times_follow_the_cron_in_its_zone() {
        let every5 = job("*/5 * * * *", "Etc/UTC").unwrap();
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 10, 2, 30).unwrap();
        assert_eq!(every5.next_after(t), Some(Utc.with_ymd_and_hms(2024, 1, 1, 10, 5, 0).unwrap()));
        let on_the_dot = Utc.with_ymd_and_hms(2024, 1, 1, 10, 5, 0).unwrap();
        assert_eq!(
            every5.next_after(on_the_dot),
            Some(Utc.with_ymd_and_hms(2024, 1, 1, 10, 10, 0).unwrap())
        );
        // 03:00 in Nairobi (UTC+3) is midnight UTC.
        let daily = job("0 3 * * *", "Africa/Nairobi").unwrap();
        assert_eq!(daily.next_after(t), Some(Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap()));
    }

    #[test]
    fn bad_crons_and_zones_are_named() {
        assert!(matches!(job("61 * * * *", "Etc/UTC"), Err(JobError::BadCron { .. })));
        assert!(matches!(job("* * * * *", "Mars/Olympus"), Err(JobError::BadTimeZone { .. })));
    }

    #[test]
    fn the_virtual_clock_runs_faster_and_maps_back() {
        let start = Instant::now();
        let v0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let clock = Clock::new(start, v0, 60.0);
        assert_eq!(
            clock.virtual_at(start + Duration::from_secs(1)),
            v0 + chrono::Duration::seconds(60)
        );
        assert_eq!(
            clock.real_at(v0 + chrono::Duration::minutes(5)),
            start + Duration::from_secs(5)
        );
        assert_eq!(clock.real_at(v0 - chrono::Duration::minutes(5)), start);
        assert_eq!(clock.real_duration(Duration::from_secs(120)), Duration::from_secs(2));
        assert_eq!(Clock::new(start, v0, 0.0).speed(), 1.0);
        assert_eq!(Clock::new(start, v0, f64::NAN).speed(), 1.0);
    }

    #[test]
    fn retries_double_five_times_then_grow_linearly_up_to_an_hour() {
        let secs: Vec<u64> = (1..=9).map(|r| retry_delay(r).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 480, 640]);
        assert_eq!(retry_delay(100).as_secs(), 3600);
    }

    #[test]
    fn headers_are_the_ones_gcp_parses() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 5, 0).unwrap();
        let mut map = http::HeaderMap::new();
        for (k, v) in headers("expire-reservations", t) {
            map.insert(k, v.parse().unwrap());
        }
        assert_eq!(map["user-agent"], USER_AGENT);
        let parsed = gcp::scheduler::SchedulerRequest::from_headers(&map).unwrap();
        assert_eq!(parsed.job_id, "expire-reservations");
        assert_eq!(parsed.schedule_time, Some(t));
    }
}
