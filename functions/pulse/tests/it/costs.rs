//! What a pulse minute costs in Firestore operations, pinned per task (fixed) and per (user,
//! strategy) run: idle (nothing open, no signal), marked (an open trade walked over a new
//! candle) and opened (an entry). Counts come from the runtime's per-request counter read back
//! from `/metrics`; a change that adds reads or writes fails here and updates
//! `docs/costs.json` (and the README) on purpose.

use testkit::costs::{Cost, minus, pinned, route_ops};

use crate::{Harness, PUSH_SA, bar, eur_usd_m1, oidc, strategy, task};

async fn ops(h: &Harness) -> Cost {
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(oidc(PUSH_SA)).send();
    route_ops(&response.await.unwrap().text().await.unwrap(), "/pubsub/pulse-tasks")
}

/// The cost of one task of minute `m` for strategy `s` (its users as seeded).
async fn minute(h: &Harness, id: &str, m: i64, s: &str, users: u64) -> Cost {
    let before = ops(h).await;
    h.deliver(id, &task(m, &[s], users)).await;
    minus(ops(h).await, before)
}

fn refs(users: &[String]) -> Vec<&str> {
    users.iter().map(String::as_str).collect()
}

fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

#[tokio::test]
async fn a_pulse_task_costs_a_fixed_part_plus_a_part_per_user_run() {
    let h = Harness::start(&[("HEARTH_METRICS_ALLOWED_EMAILS", PUSH_SA)]).await;
    let stream = eur_usd_m1();
    let (ten, thirty) = (users("a", 10), users("b", 30));
    h.seed_strategy("t1", "ten", &strategy(&refs(&ten))).await;
    h.seed_strategy("t1", "thirty", &strategy(&refs(&thirty))).await;
    // Minute 1: candle 0 has no signal: every run is idle.
    h.seed_bar(&stream, &bar(0, 100.2, 99.8, 100.0, 0.5)).await;
    let idle10 = minute(&h, "i10", 1, "ten", 10).await;
    let idle30 = minute(&h, "i30", 1, "thirty", 30).await;
    let per_idle = minus(idle30, idle10).map(|n| n / 20);
    assert_eq!(
        minus(idle30, idle10),
        per_idle.map(|n| n * 20),
        "idle runs are linear: {idle10:?} {idle30:?}"
    );
    let fixed = minus(idle10, per_idle.map(|n| n * 10));
    // Minute 2: candle 1 signals: every run opens a trade.
    h.seed_bar(&stream, &bar(1, 100.2, 99.8, 100.0, 2.0)).await;
    let opened = minus(minute(&h, "o10", 2, "ten", 10).await, fixed).map(|n| n / 10);
    // Minute 3: candle 2 inside the barriers: every run marks its trade.
    h.seed_bar(&stream, &bar(2, 100.5, 99.5, 100.3, 0.0)).await;
    let marked = minus(minute(&h, "k10", 3, "ten", 10).await, fixed).map(|n| n / 10);
    let report =
        format!("fixed {fixed:?}, idle {per_idle:?}, opened {opened:?}, marked {marked:?}");
    assert_eq!(fixed, pinned("pulse_task_fixed"), "{report}");
    assert_eq!(per_idle, pinned("pulse_user_minute_idle"), "{report}");
    assert_eq!(opened, pinned("pulse_user_minute_opened"), "{report}");
    assert_eq!(marked, pinned("pulse_user_minute_marked"), "{report}");
}
