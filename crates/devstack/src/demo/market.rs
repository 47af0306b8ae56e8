//! Stage 4: market data. Seventy hourly AUD_USD candles are written as a market-data feed writes
//! them (`candles/AUD_USD/H1/{ts}`, [`crate::candles`]); devstack's Eventarc bridge delivers each
//! write to market-stream -> every candle has its bar under `streams/AUD_USD_H1/bars` with
//! features, and labels have resolved for the candles whose vertical barrier has passed. An
//! impossible candle (`h < l`) is dead-lettered with its path and reason; the feed fixes it (the
//! fix is processed like any write) and the operator's `POST /replay` (Google OIDC) clears the
//! dead letter; a second replay changes nothing. `GET /health/streams` shows the stream.
//!
//! Not shown here: a stream going silent and recovering. At H1 silence takes the granularity plus
//! the 600 s grace (70 minutes) without a candle; `functions/market-stream/tests/it/health.rs`
//! covers it (one alert each way) on the emulators.

use std::time::{Duration, Instant};

use domain::market::Granularity;
use domain::market::candle::ts_id;
use serde_json::{Value, json};
use store::market::{CandleDocument, Market};

use super::{Ctx, DemoReport, eventually};
use crate::candles::{self, Plan};
use crate::identity::{self, Caller};

/// How long the pipeline may take for the whole series (bridge polls, then one transaction per
/// candle).
const WITHIN: Duration = Duration::from_secs(90);
/// Candles written.
const COUNT: usize = 70;

/// Runs the stage.
pub async fn run(ctx: &Ctx, report: &mut DemoReport) {
    let plan = Plan {
        instruments: vec!["AUD_USD".to_owned()],
        granularity: Granularity::H1,
        count: COUNT,
        rate: 0.0,
        start: candles::default_start(Granularity::H1, COUNT + 2),
        gap_every: 0,
        bad_every: 0,
        seed: 16,
    };
    let key = domain::market::StreamKey::new("AUD_USD", Granularity::H1)
        .unwrap_or_else(|_| unreachable!());
    let market = Market::new(&ctx.db);
    let started = Instant::now();
    let written = candles::write(&ctx.db, &plan).await;
    let step = "70 hourly AUD_USD candles written to candles/AUD_USD/H1/{ts}";
    let Ok(written) = written else {
        report.record(step, started, Err(format!("{:?}", written.err())));
        return;
    };
    report.record(
        step,
        started,
        Ok(format!("{} candles in {} ms", written.candles, written.elapsed.as_millis())),
    );
    let first = plan.start;
    let last = first + Granularity::H1.length() * i32::try_from(COUNT - 1).unwrap_or(0);

    let started = Instant::now();
    let result = eventually(WITHIN, "every candle processed with labels", || async {
        let bars = market.bars(&key, 10_000).await.map_err(|e| e.to_string())?;
        let ours: Vec<_> = bars.iter().filter(|b| b.ts >= first && b.ts <= last).collect();
        let labelled = ours.iter().filter(|b| b.label.is_some()).count();
        let with_vol = ours.iter().filter(|b| b.vol.is_some()).count();
        Ok((ours.len() == COUNT && labelled > 0).then(|| {
            format!("{} bars, {with_vol} with volatility, {labelled} labels resolved", ours.len())
        }))
    })
    .await;
    report.record(
        "market-stream turns them into features and labels (streams/AUD_USD_H1/bars)",
        started,
        result,
    );

    // An impossible candle one hour after the series.
    let bad_ts = last + Granularity::H1.length();
    let id = ts_id(bad_ts);
    let mut candle = candles::series(&Plan { count: 1, start: bad_ts, ..plan.clone() }, 0).0[0].0;
    let good = candle;
    candle.h = candle.l * 0.999;
    let started = Instant::now();
    let dead_letter = format!("market-stream-candle:AUD_USD:H1:{id}");
    let result = async {
        market
            .write_candle(&key, &CandleDocument::of(&candle), &id)
            .await
            .map_err(|e| e.to_string())?;
        eventually(WITHIN, "the dead letter", || async {
            let found = store::DeadLetters::new(&ctx.db)
                .get(&dead_letter)
                .await
                .map_err(|e| e.to_string())?;
            Ok(found.map(|dl| dl.reason))
        })
        .await
    }
    .await;
    if !report.record(
        "an impossible candle (h < l) is dead-lettered with its path and reason",
        started,
        result,
    ) {
        return;
    }

    let started = Instant::now();
    let result = async {
        market
            .write_candle(&key, &CandleDocument::of(&good), &id)
            .await
            .map_err(|e| e.to_string())?;
        eventually(WITHIN, "the fixed candle processed", || async {
            let bars = market.bars(&key, 10_000).await.map_err(|e| e.to_string())?;
            Ok(bars
                .iter()
                .any(|b| b.ts == bad_ts && b.c == good.c)
                .then(|| "its bar is stored".to_owned()))
        })
        .await?;
        let first = replay(ctx, &id).await?;
        let second = replay(ctx, &id).await?;
        if first["dead_letter_removed"] != true
            || second["outcome"] != "unchanged"
            || second["bars_written"] != 0
        {
            return Err(format!("replays answered {first} then {second}"));
        }
        Ok(format!(
            "fixed, replayed ({}), dead letter removed; replayed again: unchanged",
            first["outcome"]
        ))
    }
    .await;
    report.record(
        "the feed fixes it; the operator's replay clears the dead letter, idempotently",
        started,
        result,
    );

    let started = Instant::now();
    let result = async {
        let url = format!("{}/health/streams", ctx.url("market-stream")?);
        let res = ctx.http.get(&url).send().await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        let ours = body["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["stream_id"] == "AUD_USD_H1"))
            .ok_or("AUD_USD_H1 is not listed")?;
        let processed = ours["health"]["processed"].as_i64().unwrap_or(0);
        let failed = ours["health"]["failed"].as_i64().unwrap_or(0);
        if status != 200 || ours["silent"] != false || processed < COUNT as i64 || failed < 1 {
            return Err(format!("HTTP {status}: {ours}"));
        }
        Ok(format!("HTTP 200; AUD_USD_H1 processed {processed}, failed {failed}, not silent"))
    }
    .await;
    report.record("GET /health/streams shows the stream healthy with its counts", started, result);
}

async fn replay(ctx: &Ctx, ts: &str) -> Result<Value, String> {
    let base = ctx.url("market-stream")?;
    let token = identity::oidc_token(&ctx.target.project, Caller::Operator, base);
    let res = ctx
        .http
        .post(format!("{base}/replay"))
        .bearer_auth(token)
        .json(&json!({"dead_letter_id": format!("candle:AUD_USD:H1:{ts}")}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("replay: HTTP {status} {body}"));
    }
    Ok(body)
}
