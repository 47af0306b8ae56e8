//! Permanent failures: impossible, malformed and unknown candles are dead-lettered with their
//! path and reason and acknowledged; operators list them and replay them after a fix; a replay
//! is idempotent.

use domain::market::Granularity::{H1, M1};
use domain::market::candle::ts_id;
use gcp::firestore::Value as Fv;
use serde_json::json;
use store::DeadLetters;
use store::market::{CandleDocument, Market};

use crate::{Harness, OPERATOR_SA, candle, candle_event, fields, minute, oidc, raw_event, stream};

#[tokio::test]
async fn an_impossible_candle_is_dead_lettered_then_replayed_after_the_fix() {
    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", M1);
    let mut bad = candle(minute(3), 1.08);
    bad.h = bad.l * 0.99; // h < l
    let res = h.send(&candle_event(&h, "ce-bad", &key, None, Some(&bad))).await;
    assert_eq!(res.status(), 200, "acknowledged: retrying cannot fix it");
    assert!(h.bars(&key).await.is_empty());
    let id = market_stream::dead_letter_id("EUR_USD", "M1", &ts_id(bad.ts));
    let letter = DeadLetters::new(&h.db)
        .get(&format!("market-stream-{id}"))
        .await
        .unwrap()
        .expect("dead letter");
    assert!(letter.reason.contains("candles/EUR_USD/M1/2026-01-05T00:03:00Z"), "{}", letter.reason);
    assert!(letter.reason.contains("h "), "{}", letter.reason);
    let health = Market::new(&h.db).health(std::slice::from_ref(&key)).await.unwrap();
    assert_eq!(health[0].as_ref().unwrap().failed, 1);

    // Operators list it.
    let listed = h
        .app
        .client
        .get(h.app.url("/dead-letters"))
        .bearer_auth(oidc(OPERATOR_SA))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(listed["dead_letters"][0]["candle"], "candles/EUR_USD/M1/2026-01-05T00:03:00Z");

    // Replay before the fix: still failing, the dead letter stays.
    let body = json!({"dead_letter_id": id});
    let market = Market::new(&h.db);
    market.write_candle(&key, &CandleDocument::of(&bad), &ts_id(bad.ts)).await.unwrap();
    let res = h.post_json("/replay", &body, Some(&oidc(OPERATOR_SA))).await;
    assert_eq!(res.status(), 400, "{}", res.text().await.unwrap());
    assert!(DeadLetters::new(&h.db).get(&format!("market-stream-{id}")).await.unwrap().is_some());

    // The feed fixes the candle; the operator replays: processed, dead letter gone.
    let good = candle(minute(3), 1.08);
    market.write_candle(&key, &CandleDocument::of(&good), &ts_id(good.ts)).await.unwrap();
    let res = h.post_json("/replay", &body, Some(&oidc(OPERATOR_SA))).await;
    assert_eq!(res.status(), 200);
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(answer["outcome"], "processed");
    assert_eq!(answer["dead_letter_removed"], true);
    assert_eq!(h.bars(&key).await.len(), 1);
    assert!(DeadLetters::new(&h.db).get(&format!("market-stream-{id}")).await.unwrap().is_none());

    // Replayed again: nothing changes.
    let before = h.bars(&key).await;
    let res = h
        .post_json(
            "/replay",
            &json!({"candle": "candles/EUR_USD/M1/2026-01-05T00:03:00Z"}),
            Some(&oidc(OPERATOR_SA)),
        )
        .await;
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(answer["outcome"], "unchanged");
    assert_eq!(answer["bars_written"], 0);
    assert_eq!(answer["dead_letter_removed"], false);
    assert_eq!(h.bars(&key).await, before);
}

#[tokio::test]
async fn malformed_and_unknown_candles_are_dead_lettered_with_their_reason() {
    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", H1);
    // A price that is not a number.
    let mut f = fields(&candle(minute(60), 1.08));
    f.insert("c".to_owned(), Fv::String("1.08".to_owned()));
    let ts = ts_id(minute(60));
    let res = h
        .send(&raw_event(&h.project, "ce-malformed", &key, &ts, None, Some(f), chrono::Utc::now()))
        .await;
    assert_eq!(res.status(), 200);
    let id = market_stream::dead_letter_id("EUR_USD", "H1", &ts);
    let letter = DeadLetters::new(&h.db)
        .get(&format!("market-stream-{id}"))
        .await
        .unwrap()
        .expect("dead letter");
    assert!(letter.reason.contains("malformed candle"), "{}", letter.reason);

    // An instrument that is not configured.
    let unknown = stream("USD_JPY", H1);
    let res = h
        .send(&candle_event(&h, "ce-unknown", &unknown, None, Some(&candle(minute(60), 150.0))))
        .await;
    assert_eq!(res.status(), 200);
    let id = market_stream::dead_letter_id("USD_JPY", "H1", &ts);
    let letter = DeadLetters::new(&h.db)
        .get(&format!("market-stream-{id}"))
        .await
        .unwrap()
        .expect("dead letter");
    assert!(letter.reason.contains("unknown stream USD_JPY_H1"), "{}", letter.reason);
    // A replay of it is refused as the caller's mistake while it is not configured.
    let res =
        h.post_json("/replay", &json!({"dead_letter_id": id}), Some(&oidc(OPERATOR_SA))).await;
    assert_eq!(res.status(), 400);

    // A document id that is not a canonical time.
    let res = h
        .send(&raw_event(
            &h.project,
            "ce-ts",
            &key,
            "1767571200",
            None,
            Some(fields(&candle(minute(60), 1.08))),
            chrono::Utc::now(),
        ))
        .await;
    assert_eq!(res.status(), 200);
    let id = market_stream::dead_letter_id("EUR_USD", "H1", "1767571200");
    assert!(DeadLetters::new(&h.db).get(&format!("market-stream-{id}")).await.unwrap().is_some());

    // Two candles less than one granularity apart: the second is refused.
    h.deliver(&key, &candle(minute(60), 1.08)).await;
    let res =
        h.send(&candle_event(&h, "ce-near", &key, None, Some(&candle(minute(90), 1.09)))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(h.bars(&key).await.len(), 1);
    assert_eq!(h.state.metrics().count("EUR_USD_H1", "dead_letters"), 2);
}
