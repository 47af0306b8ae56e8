//! The market features and labels against the pandas reference: `benches/market-stream/
//! reference.py` generated a candle series (random walk with jumps and gaps) and computed log
//! returns, EWMA volatility, scaled returns and triple-barrier labels with pandas into
//! `fixture.json`; the Rust code must agree within 1e-9, computed on the whole series and
//! through the incremental recomputation with the candles arriving out of order.

use chrono::{DateTime, Utc};
use domain::market::features::{Bar, Derived, derive_all};
use domain::market::window::{Slice, context, recompute};
use domain::market::{FeaturePolicy, Granularity};
use serde::Deserialize;

const FIXTURE: &str = include_str!("../../../benches/market-stream/fixture.json");
const TOLERANCE: f64 = 1e-9;

#[derive(Deserialize)]
struct Fixture {
    granularity: String,
    policy: Policy,
    candles: Vec<CandleRow>,
    expected: Vec<Expected>,
}

#[derive(Deserialize)]
struct Policy {
    span: f64,
    window: usize,
    profit_take: f64,
    stop_loss: f64,
    vertical: u32,
}

#[derive(Deserialize)]
struct CandleRow {
    ts: DateTime<Utc>,
    c: f64,
}

#[derive(Deserialize)]
struct Expected {
    ts: DateTime<Utc>,
    ret: Option<f64>,
    vol: Option<f64>,
    scaled: Option<f64>,
    label: Option<ExpectedLabel>,
}

#[derive(Deserialize)]
struct ExpectedLabel {
    value: i8,
    barrier: String,
    resolved_at: DateTime<Utc>,
    ret: f64,
    target: f64,
}

fn load() -> (Fixture, FeaturePolicy, Granularity, Vec<Bar>) {
    let fixture: Fixture = serde_json::from_str(FIXTURE).expect("fixture.json");
    let p = &fixture.policy;
    let policy = FeaturePolicy {
        span: p.span,
        window: p.window,
        profit_take: p.profit_take,
        stop_loss: p.stop_loss,
        vertical: p.vertical,
    };
    let granularity: Granularity = fixture.granularity.parse().unwrap();
    let bars = fixture.candles.iter().map(|c| Bar { ts: c.ts, close: c.c }).collect();
    (fixture, policy, granularity, bars)
}

fn close(what: &str, ts: DateTime<Utc>, got: Option<f64>, want: Option<f64>) {
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) => {
            assert!((g - w).abs() <= TOLERANCE, "{what} at {ts}: {g} vs pandas {w}");
        }
        _ => panic!("{what} at {ts}: {got:?} vs pandas {want:?}"),
    }
}

fn check(expected: &[Expected], got: &[Derived]) -> usize {
    assert_eq!(expected.len(), got.len());
    let mut labels = 0;
    for (e, d) in expected.iter().zip(got) {
        close("log return", e.ts, d.ret, e.ret);
        close("volatility", e.ts, d.vol, e.vol);
        close("scaled return", e.ts, d.scaled, e.scaled);
        match (&d.label, &e.label) {
            (None, None) => {}
            (Some(l), Some(w)) => {
                labels += 1;
                assert_eq!(l.value, w.value, "label at {}", e.ts);
                let barrier = serde_json::to_value(l.barrier).unwrap();
                assert_eq!(barrier, w.barrier.as_str(), "barrier at {}", e.ts);
                assert_eq!(l.resolved_at, w.resolved_at, "resolution time at {}", e.ts);
                close("label return", e.ts, Some(l.ret), Some(w.ret));
                close("label target", e.ts, Some(l.target), Some(w.target));
            }
            (got, want) => panic!("label at {}: {got:?} vs pandas {}", e.ts, want.is_some()),
        }
    }
    labels
}

#[test]
fn the_whole_series_matches_pandas() {
    let (fixture, policy, granularity, bars) = load();
    let derived = derive_all(&bars, &policy, granularity);
    let labels = check(&fixture.expected, &derived);
    // The series exercises every case: all three barriers and open labels at the end.
    assert!(labels > 300, "{labels} labels");
    let kinds: std::collections::HashSet<i8> =
        derived.iter().filter_map(|d| d.label.map(|l| l.value)).collect();
    assert_eq!(kinds.len(), 3, "+1, -1 and 0 all occur");
    assert!(derived.last().unwrap().label.is_none(), "the last candles are still open");
    let gaps = bars.windows(2).filter(|w| w[1].ts - w[0].ts > granularity.length()).count();
    assert!(gaps > 5, "{gaps} gaps");
}

#[test]
fn candles_arriving_out_of_order_end_in_the_pandas_results() {
    let (fixture, policy, granularity, all) = load();
    let (before, after) = context(&policy);
    // Arrival order: blocks of 37 candles, last block first, every other block reversed.
    let indices: Vec<usize> = (0..all.len()).collect();
    let mut order: Vec<usize> = Vec::new();
    for (k, block) in indices.chunks(37).enumerate().rev() {
        let mut b = block.to_vec();
        if k % 2 == 0 {
            b.reverse();
        }
        order.extend(b);
    }
    let mut stored: Vec<Bar> = Vec::new();
    let mut results: Vec<Option<Derived>> = vec![None; all.len()];
    for i in order {
        let bar = all[i];
        let at = stored.partition_point(|b| b.ts < bar.ts);
        stored.insert(at, bar);
        let start = at.saturating_sub(before);
        let end = (at + 1 + after).min(stored.len());
        let slice = Slice {
            bars: stored[start..end].to_vec(),
            from_beginning: start == 0,
            to_head: end == stored.len(),
        };
        for (j, d) in recompute(&slice, bar.ts, &policy, granularity) {
            let ts = slice.bars[j].ts;
            let k = all.iter().position(|b| b.ts == ts).unwrap();
            results[k] = Some(d);
        }
    }
    let got: Vec<Derived> =
        results.into_iter().map(|d| d.expect("every candle computed")).collect();
    check(&fixture.expected, &got);
}
