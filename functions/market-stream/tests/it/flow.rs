//! Priority budgets: a stream over its budget is answered 429 with `Retry-After` (Eventarc
//! redelivers), counted, and nothing is written; other streams go on.

use domain::market::Granularity::M1;

use crate::{Harness, candle, candle_event, minute, stream};

#[tokio::test]
async fn over_budget_a_stream_is_asked_to_come_back_later_and_others_go_on() {
    // Low: 2 candles per minute; GBP_USD is low, EUR_USD critical.
    let h = Harness::start(&[
        ("HEARTH_MARKET_PRIORITIES", "EUR_USD=critical,GBP_USD=low"),
        ("HEARTH_MARKET_BUDGETS", "100,50,10,2"),
    ])
    .await;
    let low = stream("GBP_USD", M1);
    h.deliver(&low, &candle(minute(0), 1.25)).await;
    h.deliver(&low, &candle(minute(1), 1.26)).await;
    let third = candle(minute(2), 1.27);
    let res = h.send(&candle_event(&h, "ce-third", &low, None, Some(&third))).await;
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "2 per minute: a token within 30 s, not {wait}");
    assert_eq!(h.bars(&low).await.len(), 2, "the refused candle was not processed");
    assert_eq!(h.state.metrics().count("GBP_USD_M1", "backpressure"), 1);
    // Another stream has its own budget.
    let critical = stream("EUR_USD", M1);
    h.deliver(&critical, &candle(minute(0), 1.08)).await;
    assert_eq!(h.bars(&critical).await.len(), 1);
    // The refusal came before the ledger: the event id is not claimed, so the redelivery runs.
    let claim = store::Ledger::path(market_stream::EVENT_SCOPE, "ce-third").unwrap();
    assert!(h.db.get::<serde_json::Value>(&claim).await.unwrap().is_none());
}

#[tokio::test]
async fn the_global_budget_caps_all_streams_together() {
    let h = Harness::start(&[("HEARTH_MARKET_GLOBAL_BUDGET", "3")]).await;
    let a = stream("EUR_USD", M1);
    let b = stream("GBP_USD", M1);
    h.deliver(&a, &candle(minute(0), 1.08)).await;
    h.deliver(&b, &candle(minute(0), 1.25)).await;
    h.deliver(&a, &candle(minute(1), 1.09)).await;
    let res = h.send(&candle_event(&h, "ce-over", &b, None, Some(&candle(minute(1), 1.26)))).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(h.bars(&b).await.len(), 1);
}
