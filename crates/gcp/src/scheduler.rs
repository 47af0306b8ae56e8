//! Cloud Scheduler HTTP target requests (contracts 5): the `X-CloudScheduler*` headers into a
//! typed [`SchedulerRequest`]. Authentication is separate (the Google OIDC verifier).
//!
//! `X-CloudScheduler-JobName` may carry the short job id or the full resource name
//! (`projects/P/locations/L/jobs/ID`; contracts 10.11 leaves it open), so both are accepted and
//! the short id is exposed as [`SchedulerRequest::job_id`]. `X-CloudScheduler-ScheduleTime` is
//! only sent for unix-cron jobs, so it is optional; when present it must be RFC 3339. It is the
//! natural idempotency key of a run (retries of one run carry the same schedule time).

use chrono::{DateTime, Utc};
use http::HeaderMap;

use crate::callable::Code;
use crate::error::PublicError;

pub const HEADER_SCHEDULER: &str = "x-cloudscheduler";
pub const HEADER_JOB_NAME: &str = "x-cloudscheduler-jobname";
pub const HEADER_SCHEDULE_TIME: &str = "x-cloudscheduler-scheduletime";

/// Longest job id Cloud Scheduler allows.
const MAX_JOB_ID: usize = 500;

/// A request made by Cloud Scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerRequest {
    /// The header value as sent (short id or full resource name).
    pub job_name: String,
    /// The short job id (last segment of a resource name).
    pub job_id: String,
    /// From a full resource name, when given.
    pub project: Option<String>,
    /// From a full resource name, when given.
    pub location: Option<String>,
    /// The scheduled time of this run (unix-cron jobs).
    pub schedule_time: Option<DateTime<Utc>>,
}

/// Why a request is not a valid Cloud Scheduler request. All answer `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    #[error("not a Cloud Scheduler request (no `X-CloudScheduler: true`)")]
    NotScheduler,
    #[error("Cloud Scheduler request has no job name")]
    MissingJobName,
    #[error("Cloud Scheduler job name {0:?} is not a job id or a job resource name")]
    BadJobName(String),
    #[error("Cloud Scheduler schedule time is not RFC 3339")]
    BadScheduleTime,
}

impl PublicError for SchedulerError {
    fn code(&self) -> Code {
        Code::InvalidArgument
    }

    fn public_message(&self) -> String {
        match self {
            SchedulerError::NotScheduler => "not a Cloud Scheduler request",
            _ => "malformed Cloud Scheduler headers",
        }
        .to_owned()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_JOB_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SchedulerRequest {
    /// Whether the request says it comes from Cloud Scheduler (`X-CloudScheduler: true`).
    pub fn is_scheduler_request(headers: &HeaderMap) -> bool {
        header(headers, HEADER_SCHEDULER).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Reads the Scheduler headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, SchedulerError> {
        if !Self::is_scheduler_request(headers) {
            return Err(SchedulerError::NotScheduler);
        }
        let job_name = header(headers, HEADER_JOB_NAME)
            .filter(|v| !v.is_empty())
            .ok_or(SchedulerError::MissingJobName)?;
        let (job_id, project, location) = match job_name.split('/').collect::<Vec<_>>().as_slice() {
            [id] => ((*id).to_owned(), None, None),
            ["projects", project, "locations", location, "jobs", id]
                if !project.is_empty() && !location.is_empty() =>
            {
                ((*id).to_owned(), Some((*project).to_owned()), Some((*location).to_owned()))
            }
            _ => return Err(SchedulerError::BadJobName(job_name.to_owned())),
        };
        if !valid_job_id(&job_id) {
            return Err(SchedulerError::BadJobName(job_name.to_owned()));
        }
        let schedule_time = header(headers, HEADER_SCHEDULE_TIME)
            .filter(|v| !v.is_empty())
            .map(|v| DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)))
            .transpose()
            .map_err(|_| SchedulerError::BadScheduleTime)?;
        Ok(Self { job_name: job_name.to_owned(), job_id, project, location, schedule_time })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn short_id_and_resource_name() {
        let r = SchedulerRequest::from_headers(&headers(&[
            ("x-cloudscheduler", "true"),
            ("x-cloudscheduler-jobname", "expire-reservations"),
            ("x-cloudscheduler-scheduletime", "2024-01-01T00:05:00Z"),
        ]))
        .unwrap();
        assert_eq!(r.job_id, "expire-reservations");
        assert_eq!(r.schedule_time.unwrap().to_rfc3339(), "2024-01-01T00:05:00+00:00");
        let r = SchedulerRequest::from_headers(&headers(&[
            ("x-cloudscheduler", "true"),
            ("x-cloudscheduler-jobname", "projects/p1/locations/europe-west1/jobs/cleanup_1"),
        ]))
        .unwrap();
        assert_eq!(r.job_id, "cleanup_1");
        assert_eq!(r.project.as_deref(), Some("p1"));
        assert_eq!(r.location.as_deref(), Some("europe-west1"));
        assert_eq!(r.schedule_time, None);
    }

    #[test]
    fn rejections() {
        let job = ("x-cloudscheduler-jobname", "j");
        assert_eq!(
            SchedulerRequest::from_headers(&headers(&[job])),
            Err(SchedulerError::NotScheduler)
        );
        assert_eq!(
            SchedulerRequest::from_headers(&headers(&[("x-cloudscheduler", "false"), job])),
            Err(SchedulerError::NotScheduler)
        );
        assert_eq!(
            SchedulerRequest::from_headers(&headers(&[("x-cloudscheduler", "true")])),
            Err(SchedulerError::MissingJobName)
        );
        for bad in [
            "projects/p/jobs/j",
            "a b",
            "projects//locations/l/jobs/j",
            "projects/p/locations/l/jobs/",
        ] {
            assert!(
                matches!(
                    SchedulerRequest::from_headers(&headers(&[
                        ("x-cloudscheduler", "true"),
                        ("x-cloudscheduler-jobname", bad)
                    ])),
                    Err(SchedulerError::BadJobName(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            SchedulerRequest::from_headers(&headers(&[
                ("x-cloudscheduler", "true"),
                job,
                ("x-cloudscheduler-scheduletime", "tomorrow")
            ])),
            Err(SchedulerError::BadScheduleTime)
        );
    }
}
