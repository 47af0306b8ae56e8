//! What forwarding a Stripe event costs in Firestore operations and round trips, pinned: the
//! counts come from the runtime's per-request counter (`runtime::ops`, fed by `store` at the
//! RPC layer), the numbers `/metrics` exports as `hearth_firestore_ops_total`. A change that adds
//! a read, a write or a round trip fails here and has to update `docs/costs.json` (and the
//! README) on purpose.

use payment_webhook::{AppState, Config, app};
use runtime::ops::OpsSnapshot;
use runtime::{BaseConfig, Env, Metrics};
use testkit::costs::{Cost, minus, pinned};

use crate::{CURRENT, Harness, stripe_event};

fn as_cost(s: OpsSnapshot) -> Cost {
    [s.reads, s.writes, s.deletes, s.query_results, s.round_trips]
}

#[tokio::test]
async fn forwarding_a_stripe_event_costs_what_the_readme_says() {
    let h = Harness::start().await;
    // A second instance on the same emulators, built as `payment_webhook::build` builds it,
    // keeping the metrics handle.
    let base = BaseConfig::from_map(h.vars.clone()).unwrap();
    let config = Config::load(base, &Env::from_map(h.vars.clone())).unwrap();
    let state = AppState::build(&config).await.unwrap();
    let server = runtime::Server::new(
        "payment-webhook",
        &config.base,
        std::sync::Arc::new(runtime::LogDeadLetters),
    );
    let metrics: Metrics = server.metrics().clone();
    let app = testkit::spawn_app(server.router(app(state))).await;
    let send = |event: serde_json::Value| {
        let bytes = serde_json::to_vec(&event).unwrap();
        let header = providers::stripe::sign(CURRENT, chrono::Utc::now().timestamp(), &bytes);
        let request = app
            .client
            .post(app.url("/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", header)
            .body(bytes);
        async move { request.send().await.unwrap().status() }
    };

    let event = stripe_event("evt_cost", "payment_intent.succeeded", "ord_cost");
    let before = as_cost(metrics.firestore_ops("/stripe"));
    assert_eq!(send(event.clone()).await, 200);
    let first = minus(as_cost(metrics.firestore_ops("/stripe")), before);
    let middle = as_cost(metrics.firestore_ops("/stripe"));
    let again = send(event).await;
    let duplicate = minus(as_cost(metrics.firestore_ops("/stripe")), middle);
    let report = format!("first {first:?}, again ({again}) {duplicate:?}");
    assert_eq!(again, 409, "within the dedupe lease the same event is \"retry later\"");
    // [reads, writes, deletes, query results, round trips]
    assert_eq!(first, pinned("payment_webhook_event"), "a new event: {report}");
    assert_eq!(duplicate, pinned("payment_webhook_duplicate"), "the same event again: {report}");
    assert_eq!(h.published(1).await.len(), 1, "published once: {report}");
}
