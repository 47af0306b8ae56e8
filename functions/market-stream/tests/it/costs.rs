//! What processing a candle costs in Firestore operations, pinned: a new complete candle at the
//! head of a stream with a full window behind it (the steady state: the ledger claim, the
//! health read that begins the transaction, the window before it (9 bars with window 5 and
//! vertical 3) and the empty one after it, one commit of the bar, the health and the one label
//! this candle resolves, the ledger settle), and a redelivered event (the ledger answers it).
//! The counts come from the runtime's per-request counter read back from `/metrics`.

use domain::market::Granularity::M1;
use testkit::costs::{Cost, minus, pinned, route_ops};

use crate::{EVENTARC_SA, Harness, candle_event, oidc, series, stream};

async fn ops(h: &Harness) -> Cost {
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(oidc(EVENTARC_SA)).send();
    route_ops(&response.await.unwrap().text().await.unwrap(), "/")
}

#[tokio::test]
async fn a_candle_costs_its_window_reads_and_a_few_writes() {
    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", M1);
    // Window 5, vertical 3: a full window is 3 + 5 + 1 = 9 bars before the new one.
    let candles = series(30);
    for c in &candles[..29] {
        h.deliver(&key, c).await;
    }
    let before = ops(&h).await;
    h.deliver(&key, &candles[29]).await;
    let head = minus(ops(&h).await, before);
    assert_eq!(head, pinned("market_candle_processed"), "new candle at the head: {head:?}");

    let before = ops(&h).await;
    let again = candle_event(
        &h,
        &format!("ce-{key}-{}", domain::market::candle::ts_id(candles[29].ts)),
        &key,
        None,
        Some(&candles[29]),
    );
    assert_eq!(h.send(&again).await.status(), 204);
    let duplicate = minus(ops(&h).await, before);
    assert_eq!(duplicate, pinned("market_candle_duplicate"), "redelivered: {duplicate:?}");
}
