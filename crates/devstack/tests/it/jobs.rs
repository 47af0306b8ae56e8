//! The local Cloud Scheduler against a test Router: jobs run on their cron (sped up), at once
//! with `--run-jobs-now`, with the Scheduler headers and an OIDC token, and retry as configured.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Timelike as _, Utc};
use devstack::identity::LocalKeys;
use devstack::jobs::{self, Clock, JobSpec, ScheduledJob};
use gcp::scheduler::SchedulerRequest;
use tokio_util::sync::CancellationToken;

use crate::support::{Recorder, eventually};

const AUDIENCE: &str = "http://cleanup.devstack.local";

fn job(app: &testkit::TestApp, retry_count: u32) -> ScheduledJob {
    ScheduledJob::new(JobSpec {
        function: "scheduled-cleanup",
        job: "expire-reservations",
        cron: "* * * * *",
        time_zone: "Etc/UTC",
        endpoint: app.url("/jobs/expire-reservations"),
        audience: AUDIENCE.into(),
        attempt_deadline: Duration::from_secs(30),
        retry_count,
    })
    .unwrap()
}

#[tokio::test]
async fn jobs_run_now_and_on_their_cron_with_scheduler_headers_and_a_token() {
    let project = testkit::project_id();
    let keys = LocalKeys::start().await;
    let recorder = Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, _| StatusCode::OK);
    let app = testkit::spawn_app(recorder.router()).await;
    let cancel = CancellationToken::new();
    // One virtual minute per real second.
    let clock = Clock::new(Instant::now(), Utc::now(), 60.0);
    let http = reqwest::Client::new();
    jobs::spawn(job(&app, 0), project.clone(), http, clock, true, cancel.clone());

    assert!(eventually(5, || recorder.accepted("/jobs/expire-reservations").len() >= 3).await);
    cancel.cancel();
    let seen = recorder.accepted("/jobs/expire-reservations");
    let requests: Vec<SchedulerRequest> =
        seen.iter().map(|s| SchedulerRequest::from_headers(&s.headers).unwrap()).collect();
    for (s, r) in seen.iter().zip(&requests) {
        assert_eq!(r.job_id, "expire-reservations");
        assert_eq!(s.headers["user-agent"], "Google-Cloud-Scheduler");
        assert!(s.headers["authorization"].to_str().unwrap().starts_with("Bearer "));
    }
    // The first run is the immediate one; the next ones are whole (virtual) minutes, one apart.
    let times: Vec<DateTime<Utc>> = requests.iter().map(|r| r.schedule_time.unwrap()).collect();
    assert_eq!((times[1].second(), times[2].second()), (0, 0), "{times:?}");
    assert_eq!(times[2] - times[1], chrono::Duration::minutes(1));
    assert!(times[1] > times[0]);
    // No request went unauthenticated.
    assert!(recorder.seen().iter().all(|s| s.status != 401));
}

#[tokio::test]
async fn a_failed_run_is_retried_retry_count_times_with_the_same_schedule_time() {
    let project = testkit::project_id();
    let keys = LocalKeys::start().await;
    let recorder = Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, n| {
        if n == 1 { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
    });
    let app = testkit::spawn_app(recorder.router()).await;
    // Speed 100: the 5 s first retry takes 50 ms.
    let clock = Clock::new(Instant::now(), Utc::now(), 100.0);
    let t = Utc::now();
    let status = jobs::run_once(
        &reqwest::Client::new(),
        &project,
        &job(&app, 1),
        t,
        &clock,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(status, Some(200));
    let seen = recorder.accepted("/jobs/expire-reservations");
    assert_eq!(seen.len(), 2);
    let times: Vec<_> = seen
        .iter()
        .map(|s| SchedulerRequest::from_headers(&s.headers).unwrap().schedule_time)
        .collect();
    assert_eq!(times[0], times[1]);
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(45));

    // Without retries the failure waits for the next schedule.
    let recorder = Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, _| {
        StatusCode::INTERNAL_SERVER_ERROR
    });
    let app = testkit::spawn_app(recorder.router()).await;
    let status = jobs::run_once(
        &reqwest::Client::new(),
        &project,
        &job(&app, 0),
        t,
        &clock,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(status, Some(500));
    assert_eq!(recorder.accepted("/jobs/expire-reservations").len(), 1);
}
