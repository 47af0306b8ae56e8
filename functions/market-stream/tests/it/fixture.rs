//! The numbers stored by the function against the pandas reference
//! (`benches/market-stream/fixture.json`, written by `benches/market-stream/reference.py`):
//! the first 150 candles of the generated series (random walk with jumps and gaps) arrive out
//! of order through Eventarc events; every stored return, volatility, scaled return and label
//! whose inputs lie within them matches pandas within 1e-9.

use chrono::{DateTime, Utc};
use domain::market::Candle;
use domain::market::Granularity::H1;
use serde::Deserialize;

use crate::{Harness, stream};

const FIXTURE: &str = include_str!("../../../../benches/market-stream/fixture.json");
const SENT: usize = 150;
const TOLERANCE: f64 = 1e-9;

#[derive(Deserialize)]
struct Fixture {
    candles: Vec<Row>,
    expected: Vec<Expected>,
}

#[derive(Deserialize)]
struct Row {
    ts: DateTime<Utc>,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
}

#[derive(Deserialize)]
struct Expected {
    ts: DateTime<Utc>,
    ret: Option<f64>,
    vol: Option<f64>,
    scaled: Option<f64>,
    label: Option<serde_json::Value>,
}

fn near(what: &str, ts: DateTime<Utc>, got: Option<f64>, want: Option<f64>) {
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!((g - w).abs() <= TOLERANCE, "{what} at {ts}: {g} vs {w}"),
        _ => panic!("{what} at {ts}: {got:?} vs pandas {want:?}"),
    }
}

#[tokio::test]
async fn stored_features_and_labels_match_the_pandas_reference() {
    // The fixture's policy (span 20, window 50, barriers 1/1, vertical 10 candles).
    let h = Harness::start(&[
        ("HEARTH_MARKET_VOL_SPAN", "20"),
        ("HEARTH_MARKET_VOL_WINDOW", "50"),
        ("HEARTH_MARKET_VERTICAL_CANDLES", "10"),
    ])
    .await;
    let fixture: Fixture = serde_json::from_str(FIXTURE).unwrap();
    let key = stream("EUR_USD", H1);
    let candles: Vec<Candle> = fixture.candles[..SENT]
        .iter()
        .map(|r| Candle {
            ts: r.ts,
            o: r.o,
            h: r.h,
            l: r.l,
            c: r.c,
            v: r.v,
            bid: None,
            ask: None,
            complete: true,
        })
        .collect();
    // Blocks of 25, latest block first, each reversed.
    let indices: Vec<usize> = (0..SENT).collect();
    for block in indices.chunks(25).rev() {
        for &i in block.iter().rev() {
            h.deliver(&key, &candles[i]).await;
        }
    }
    let bars = h.bars(&key).await;
    assert_eq!(bars.len(), SENT);
    // A label looks at most 10 candles ahead: the first 140 depend on sent candles only.
    let mut labels = 0;
    for (bar, want) in bars.iter().zip(&fixture.expected).take(SENT - 10) {
        assert_eq!(bar.ts, want.ts);
        near("return", bar.ts, bar.ret, want.ret);
        near("volatility", bar.ts, bar.vol, want.vol);
        near("scaled return", bar.ts, bar.scaled, want.scaled);
        match (&bar.label, &want.label) {
            (None, None) => {}
            (Some(l), Some(w)) => {
                labels += 1;
                assert_eq!(i64::from(l.value), w["value"].as_i64().unwrap(), "label at {}", bar.ts);
                let at: DateTime<Utc> = w["resolved_at"].as_str().unwrap().parse().unwrap();
                assert_eq!(l.resolved_at, at, "label time at {}", bar.ts);
                near("label return", bar.ts, Some(l.ret), w["ret"].as_f64());
            }
            (got, want) => panic!("label at {}: {got:?} vs pandas {want:?}", bar.ts),
        }
    }
    assert!(labels > 80, "{labels} labels compared");
}
