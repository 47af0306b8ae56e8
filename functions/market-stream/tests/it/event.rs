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

/// The stream document's tail (`store::market::StreamTail`) lets most changes skip their window
/// queries; it must always be exactly the latest stored bars (or absent), through appends,
/// corrections far from, short of and near the head, and deletions, and the results must not
/// depend on whether a change read its window from the tail or by query. (Harness policy:
/// window 5, vertical 3, so a change reads 9 bars before it and 10 after, and the tail keeps
/// 19.)
#[tokio::test]
async fn the_tail_is_always_the_latest_bars_and_the_results_never_differ() {
    use domain::market::Candle;
    use store::market::StreamTail;

    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", M1);
    let tail_path = store::paths::stream(&key.id()).unwrap();
    let tail = || async { h.db.get::<StreamTail>(&tail_path).await.unwrap() };
    let check = |label: &'static str, candles: Vec<domain::market::Candle>| {
        let (h, key, tail) = (&h, &key, &tail);
        async move {
            let bars = h.bars(key).await;
            assert_eq!(derived(&bars), expected(&candles), "{label}: results");
            let t = tail().await.unwrap_or_else(|| panic!("{label}: no tail"));
            // The latest bars, as stored: up to 19 (a deleted head leaves one fewer until the
            // next append), never fewer than an append reads before it.
            let n = t.tail.len();
            assert!((9.min(bars.len())..=19).contains(&n), "{label}: {n} bars in the tail");
            assert_eq!(t.tail, &bars[bars.len() - n..], "{label}: the latest bars");
            assert!(!t.complete || n == bars.len(), "{label}: complete but not the whole stream");
            assert_eq!(t.cap, 19, "{label}: cap");
        }
    };

    let mut candles = series(56);
    for c in &candles[..4] {
        h.deliver(&key, c).await;
    }
    check("a young stream", candles[..4].to_vec()).await;
    assert!(tail().await.unwrap().complete, "a young stream's tail is all of it");
    for c in &candles[4..50] {
        h.deliver(&key, c).await;
    }
    check("50 appended", candles[..50].to_vec()).await;

    fn correct(candles: &mut [Candle], i: usize, factor: f64) -> [Candle; 2] {
        let old = candles[i];
        candles[i].c *= factor;
        candles[i].h = candles[i].c.max(candles[i].o) * 1.001;
        candles[i].l = candles[i].c.min(candles[i].o) * 0.999;
        [old, candles[i]]
    }
    // Far back: its window ends long before the tail starts.
    let [old, new] = correct(&mut candles, 5, 1.01);
    let res = h.send(&candle_event(&h, "ce-fix-far", &key, Some(&old), Some(&new))).await;
    assert_eq!(res.status(), 204);
    check("corrected far back", candles[..50].to_vec()).await;
    // Short of the head, its window overlapping the tail.
    let [old, new] = correct(&mut candles, 35, 0.99);
    let res = h.send(&candle_event(&h, "ce-fix-mid", &key, Some(&old), Some(&new))).await;
    assert_eq!(res.status(), 204);
    check("corrected short of the head", candles[..50].to_vec()).await;
    for c in &candles[50..52] {
        h.deliver(&key, c).await;
    }
    check("appended", candles[..52].to_vec()).await;
    // Near the head, from the tail.
    let [old, new] = correct(&mut candles, 49, 0.99);
    let res = h.send(&candle_event(&h, "ce-fix-near", &key, Some(&old), Some(&new))).await;
    assert_eq!(res.status(), 204);
    check("corrected near the head", candles[..52].to_vec()).await;

    // The head deleted, then appends again.
    let gone = candles[51];
    let res = h.send(&candle_event(&h, "ce-delete-head", &key, Some(&gone), None)).await;
    assert_eq!(res.status(), 204);
    check("head deleted", candles[..51].to_vec()).await;
    let mut rest = candles[..51].to_vec();
    for c in &candles[52..56] {
        h.deliver(&key, c).await;
        rest.push(*c);
    }
    check("appended after the deletion", rest).await;
}
