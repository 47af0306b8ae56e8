//! What processing a candle costs in Firestore operations, pinned: a new complete candle at the
//! head of a stream with a full window behind it, under the default policy (window 50, vertical
//! barrier 10): the ledger claim, one read of the health document and the stream's tail (its
//! latest 61 bars: no window query) that begins the transaction, one commit of the bar, the
//! health and the tail (each label the candle resolves would add a write; none does here), the
//! ledger settle; and a redelivered event
//! (the ledger answers it).
//! The counts come from the runtime's per-request counter read back from `/metrics`.

use domain::market::Granularity::M1;
use testkit::costs::{Cost, minus, pinned, route_ops};

use crate::{EVENTARC_SA, Harness, candle_event, oidc, series, stream};

async fn ops(h: &Harness) -> Cost {
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(oidc(EVENTARC_SA)).send();
    route_ops(&response.await.unwrap().text().await.unwrap(), "/")
}

#[tokio::test]
async fn a_candle_at_the_head_costs_two_reads_and_a_few_writes() {
    // The default policy, as deployed.
    let h = Harness::start(&[
        ("HEARTH_MARKET_VOL_SPAN", "20"),
        ("HEARTH_MARKET_VOL_WINDOW", "50"),
        ("HEARTH_MARKET_VERTICAL_CANDLES", "10"),
    ])
    .await;
    let key = stream("EUR_USD", M1);
    let candles = series(80);
    for c in &candles[..79] {
        h.deliver(&key, c).await;
    }
    let before = ops(&h).await;
    h.deliver(&key, &candles[79]).await;
    let head = minus(ops(&h).await, before);
    assert_eq!(head, pinned("market_candle_processed"), "new candle at the head: {head:?}");

    let before = ops(&h).await;
    let again = candle_event(
        &h,
        &format!("ce-{key}-{}", domain::market::candle::ts_id(candles[79].ts)),
        &key,
        None,
        Some(&candles[79]),
    );
    assert_eq!(h.send(&again).await.status(), 204);
    let duplicate = minus(ops(&h).await, before);
    assert_eq!(duplicate, pinned("market_candle_duplicate"), "redelivered: {duplicate:?}");

    // A correction near the head (a late or revised candle, as a feed sends them) finds its
    // whole window in the tail too: no query.
    let before = ops(&h).await;
    let old = candles[75];
    let mut fixed = old;
    fixed.c *= 1.001;
    fixed.h = fixed.h.max(fixed.c);
    let res = h.send(&candle_event(&h, "ce-fix-75", &key, Some(&old), Some(&fixed))).await;
    assert_eq!(res.status(), 204);
    let near = minus(ops(&h).await, before);
    assert_eq!((near[0], near[3]), (2, 0), "a correction near the head: {near:?}");
}
