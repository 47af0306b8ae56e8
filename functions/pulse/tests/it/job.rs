//! `POST /jobs/pulse`: the minute's strategies handed out as `pulse-tasks` pages, once per
//! minute however often Scheduler calls.

use std::collections::BTreeSet;

use serde_json::json;
use store::paths;

use crate::{Harness, strategy, t};

#[tokio::test]
async fn the_job_pages_every_tenants_strategies_into_tasks_once_per_minute() {
    let h = Harness::start(&[("HEARTH_PULSE_TASK_STRATEGIES", "20")]).await;
    for i in 0..30 {
        h.seed_strategy("t1", &format!("s{i:02}"), &strategy(&["a", "b"])).await;
    }
    for i in 0..15 {
        h.seed_strategy("t2", &format!("s{i:02}"), &strategy(&["c"])).await;
    }
    // A strategy written around the API that does not decode is skipped and counted.
    h.db.set(&paths::strategy("t2", "broken").unwrap(), &json!({"name": "no rules"}))
        .await
        .unwrap();
    let (status, body) = h.run_job("pulse", t(7) + chrono::TimeDelta::seconds(3)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["strategies"].as_u64(),
            body["runs"].as_u64(),
            body["tasks"].as_u64(),
            body["invalid"].as_u64()
        ),
        (Some(45), Some(75), Some(3), Some(1)),
        "{body}"
    );
    assert_eq!(body["minute"], json!(t(7)));
    let tasks = h.pulled_tasks(3).await;
    assert_eq!(tasks.len(), 3);
    let mut seen = BTreeSet::new();
    for task in &tasks {
        assert_eq!((task.minute, task.runs_in_minute), (t(7), 75));
        assert!(task.strategies.len() <= 20);
        for s in &task.strategies {
            assert!(seen.insert((s.tenant_id.clone(), s.strategy_id.clone())), "{s:?} twice");
        }
    }
    assert_eq!(seen.len(), 45);

    // Scheduler calls again for the same minute (a retry, or two schedulers): nothing new.
    let (status, again) = h.run_job("pulse", t(7) + chrono::TimeDelta::seconds(40)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["replayed"], true, "{again}");
    assert!(h.pulled_tasks(0).await.is_empty(), "no task published twice");
    // The next minute is a new run.
    let (_, next) = h.run_job("pulse", t(8)).await;
    assert_eq!(next["tasks"].as_u64(), Some(3), "{next}");
}
