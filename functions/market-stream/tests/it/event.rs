//! `POST /`: complete candles only, idempotent rewrites, corrections, out-of-order arrival.

use domain::market::Granularity::M1;
use domain::market::candle::ts_id;

use crate::{Harness, candle, candle_event, derived, expected, series, stream};

#[tokio::test]
async fn only_complete_candles_are_processed() {
    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", M1);
    let mut c = candle(crate::minute(0), 1.08);
    c.complete = false;
    let res = h.send(&candle_event(&h, "ce-open", &key, None, Some(&c))).await;
    assert_eq!(res.status(), 204, "{}", h.reasons().await);
    assert!(h.bars(&key).await.is_empty(), "an incomplete candle is not processed");
    // The same candle completed: processed.
    let open = c;
    c.complete = true;
    let res = h.send(&candle_event(&h, "ce-done", &key, Some(&open), Some(&c))).await;
    assert_eq!(res.status(), 204, "{}", h.reasons().await);
    let bars = h.bars(&key).await;
    assert_eq!(bars.len(), 1);
    assert_eq!(bars[0].c, 1.08);
    assert_eq!(h.state.metrics().count("EUR_USD_M1", "processed"), 1);
}

#[tokio::test]
async fn a_redelivery_or_an_identical_rewrite_changes_nothing() {
    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", M1);
    let candles = series(12);
    for c in &candles {
        h.deliver(&key, c).await;
    }
    let before = h.bars(&key).await;
    assert_eq!(derived(&before), expected(&candles));
    let health_before =
        store::market::Market::new(&h.db).health(std::slice::from_ref(&key)).await.unwrap();

    // The same CloudEvent again: the ledger answers it.
    let c = candles[6];
    let first = candle_event(&h, &format!("ce-{key}-{}", ts_id(c.ts)), &key, None, Some(&c));
    assert_eq!(h.send(&first).await.status(), 204);
    // A rewrite with identical values (old == new): nothing read or written.
    let rewrite = candle_event(&h, "ce-rewrite", &key, Some(&c), Some(&c));
    assert_eq!(h.send(&rewrite).await.status(), 204);
    // A new event without the old value, same values: compared with the stored bar.
    let again = candle_event(&h, "ce-again", &key, None, Some(&c));
    assert_eq!(h.send(&again).await.status(), 204);

    assert_eq!(h.bars(&key).await, before);
    let health_after =
        store::market::Market::new(&h.db).health(std::slice::from_ref(&key)).await.unwrap();
    assert_eq!(health_after, health_before, "not even the health document was written");
    assert_eq!(h.state.metrics().count("EUR_USD_M1", "processed"), 12);
    assert_eq!(h.state.metrics().count("EUR_USD_M1", "unchanged"), 1);
}

#[tokio::test]
async fn a_correction_recomputes_everything_derived_from_it() {
    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", M1);
    let mut candles = series(20);
    for c in &candles {
        h.deliver(&key, c).await;
    }
    let before = h.bars(&key).await;
    let old = candles[9];
    candles[9].c *= 1.02;
    candles[9].h = candles[9].c * 1.001;
    let res = h.send(&candle_event(&h, "ce-fix", &key, Some(&old), Some(&candles[9]))).await;
    assert_eq!(res.status(), 204);
    let after = h.bars(&key).await;
    assert_eq!(derived(&after), expected(&candles), "as if the corrected series had come in");
    let changed = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    assert!(changed > 5, "the correction moved its neighbours' features and labels ({changed})");
    assert_eq!(before[0], after[0], "candles out of its reach are untouched");
}

#[tokio::test]
async fn out_of_order_arrival_gives_the_in_order_results() {
    let h = Harness::start(&[]).await;
    let in_order = stream("EUR_USD", M1);
    let shuffled = stream("GBP_USD", M1);
    let candles = series(30);
    for c in &candles {
        h.deliver(&in_order, c).await;
    }
    // Reversed blocks of 7, the last block first, and a late straggler.
    let mut order: Vec<usize> = Vec::new();
    let indices: Vec<usize> = (0..candles.len()).filter(|i| *i != 12).collect();
    for block in indices.chunks(7).rev() {
        order.extend(block.iter().rev());
    }
    order.push(12);
    for i in order {
        h.deliver(&shuffled, &candles[i]).await;
    }
    let a = derived(&h.bars(&in_order).await);
    let b = derived(&h.bars(&shuffled).await);
    assert_eq!(a, expected(&candles));
    assert_eq!(b, a, "arrival order does not change any stored result");
    // A deleted candle: its bar goes and the neighbours are recomputed without it.
    let gone = candles[12];
    let res = h.send(&candle_event(&h, "ce-delete", &shuffled, Some(&gone), None)).await;
    assert_eq!(res.status(), 204);
    let mut rest = candles.clone();
    rest.remove(12);
    assert_eq!(derived(&h.bars(&shuffled).await), expected(&rest));
}
