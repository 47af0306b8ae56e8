//! Stream health: the scheduled job marks a stream silent once and recovered once, with one
//! `stream-alerts` message each; `GET /health/streams` answers 503 while a critical stream is
//! silent.

use chrono::{TimeDelta, Utc};
use domain::market::Granularity::M1;
use domain::market::candle::ts_id;
use serde_json::Value;

use crate::{EVENTARC_SA, Harness, candle, fields, minute, oidc, raw_event, stream};

async fn run_job(h: &Harness) -> Value {
    let res = h
        .app
        .client
        .post(h.app.url("/jobs/stream-health"))
        .bearer_auth(oidc(EVENTARC_SA))
        .header("x-cloudscheduler", "true")
        .header("x-cloudscheduler-jobname", "stream-health")
        .header("x-cloudscheduler-scheduletime", Utc::now().to_rfc3339())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    res.json().await.unwrap()
}

async fn health(h: &Harness) -> (u16, Value) {
    let res = h.app.client.get(h.app.url("/health/streams")).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn a_silent_stream_is_alerted_once_and_its_recovery_once() {
    let h = Harness::start(&[("HEARTH_MARKET_SILENCE_GRACE_SECS", "0")]).await;
    let key = stream("EUR_USD", M1);
    // The last candle was written ten minutes ago: M1 plus no grace is long past.
    let long_ago = Utc::now() - TimeDelta::minutes(10);
    let c = candle(minute(0), 1.08);
    let event =
        raw_event(&h.project, "ce-old", &key, &ts_id(c.ts), None, Some(fields(&c)), long_ago);
    assert_eq!(h.send(&event).await.status(), 204);
    let (status, body) = health(&h).await;
    assert_eq!(status, 503, "a critical stream is silent: {body}");
    assert_eq!(body["critical_silent"], serde_json::json!(["EUR_USD_M1"]));

    let first = run_job(&h).await;
    assert_eq!(first["alerts"].as_array().unwrap().len(), 1, "{first}");
    let second = run_job(&h).await;
    assert!(second["alerts"].as_array().unwrap().is_empty(), "no second alert for one silence");
    let alerts = h.alerts(1).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["stream_id"], "EUR_USD_M1");
    assert_eq!(alerts[0]["kind"], "silent");
    assert_eq!(alerts[0]["priority"], "critical");
    assert_eq!(alerts[0]["last_candle_at"], "2026-01-05T00:00:00Z");
    // Streams never seen are watched from the first run, not alerted at once.
    assert!(h.alerts(0).await.is_empty());

    // Candles resume: recovered once.
    let c = candle(minute(1), 1.081);
    let event =
        raw_event(&h.project, "ce-new", &key, &ts_id(c.ts), None, Some(fields(&c)), Utc::now());
    assert_eq!(h.send(&event).await.status(), 204);
    let third = run_job(&h).await;
    assert_eq!(third["alerts"].as_array().unwrap().len(), 1, "{third}");
    assert!(run_job(&h).await["alerts"].as_array().unwrap().is_empty());
    let alerts = h.alerts(1).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["kind"], "recovered");
    assert!(h.alerts(0).await.is_empty());
    let (status, body) = health(&h).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.state.metrics().count("EUR_USD_M1", "silent_alerts"), 1);
    assert_eq!(h.state.metrics().count("EUR_USD_M1", "recovered_alerts"), 1);
}

#[tokio::test]
async fn the_job_is_refused_to_strangers_and_for_other_jobs() {
    let h = Harness::start(&[]).await;
    let res = h.app.client.post(h.app.url("/jobs/stream-health")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = h
        .app
        .client
        .post(h.app.url("/jobs/other"))
        .bearer_auth(oidc(EVENTARC_SA))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // A Scheduler request naming another job.
    let res = h
        .app
        .client
        .post(h.app.url("/jobs/stream-health"))
        .bearer_auth(oidc(EVENTARC_SA))
        .header("x-cloudscheduler", "true")
        .header("x-cloudscheduler-jobname", "expire-reservations")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}
