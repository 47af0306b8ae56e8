//! Stage: the trading pulse. The demo user (their tenant's owner) saves a strategy through the
//! api's `saveStrategy`; hourly USD_CHF candles are written as a market-data feed writes them
//! and processed by market-stream (devstack's Eventarc bridge); the pulse job is then run, as
//! Cloud Scheduler runs it, for the minute after each new candle (devstack's Scheduler runner
//! with that schedule time; the job publishes `pulse-tasks`, devstack pushes them to pulse):
//!
//! 1. the history ends on a jump: the pulse opens a long shadow trade on it;
//! 2. the next candle rises inside the barriers: the trade is marked, its P&L positive;
//! 3. the candle after jumps through the profit-take: the trade closes at it and the tenant's
//!    ledger holds the closed trade;
//! 4. the notifier, triggered by the signals the pulse created with each step, puts the open
//!    and the close in the user's inbox and pushes them to the device.
//!
//! The candles are the hours before now, so each pulse minute is in the past: the pulse
//! replays them minute by minute (devstack's own every-minute pulse runs too; its entries need
//! fresh features, and what it marks it marks the same way).

use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::market::candle::ts_id;
use domain::market::{Granularity, StreamKey};
use domain::notify::{NotificationKind, notification_id};
use domain::pulse::{ShadowTrade, TradeStatus, ledger_id, trade_id};
use serde_json::{Value, json};
use store::market::{CandleDocument, Market};
use store::paths;
use tokio_util::sync::CancellationToken;

use super::{Ctx, DemoReport, SignedUp, eventually};
use crate::jobs::{self, Clock};

/// The pulse's scheduled job.
pub const PULSE_JOB: &str = "pulse";
/// Candles of history before the jump (the volatility needs 50 returns).
const HISTORY: i32 = 55;
/// How long one candle may take through the bridge and market-stream, or one pulse through
/// Scheduler, Pub/Sub and pulse.
const WITHIN: Duration = Duration::from_secs(60);

fn candle(close: f64, high: f64, low: f64) -> CandleDocument {
    CandleDocument {
        o: close,
        h: high,
        l: low,
        c: close,
        v: 100.0,
        bid: None,
        ask: None,
        complete: true,
        ts: None,
    }
}

/// Runs the stage.
pub async fn run(ctx: &Ctx, report: &mut DemoReport, user: &SignedUp) {
    let Ok(stream) = StreamKey::new("USD_CHF", Granularity::H1) else { return };
    let start = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap_or_else(|_| Utc::now())
        - TimeDelta::hours(i64::from(HISTORY) + 6);
    let hour = |i: i32| start + TimeDelta::hours(i64::from(i));
    let strategy_id = format!("demo-{}", ctx.suffix);

    // The strategy, through the api (validated; only owners and admins may save).
    let started = Instant::now();
    let data = json!({"strategyId": strategy_id, "strategy": {
        "name": "USD_CHF breakout", "assigned_uids": [user.uid], "instrument": "USD_CHF",
        "granularity": "H1", "enabled": true, "entry": {"kind": "vol_scaled_return", "threshold": 2.0},
        "sides": "both", "take_profit": 2.0, "stop_loss": 1.0, "max_candles": 10,
        "notional": 10000.0, "vol_target": 0.001, "max_notional": 100000.0}});
    let saved = ctx.call(&user.id_token, "saveStrategy", data, None).await;
    let tenant = match saved {
        Ok(v) => v["tenantId"].as_str().unwrap_or_default().to_owned(),
        Err(e) => {
            report.record("saveStrategy: a breakout strategy on USD_CHF H1", started, Err(e));
            return;
        }
    };
    report.record(
        "saveStrategy: a breakout strategy on USD_CHF H1",
        started,
        Ok(format!("tenant {tenant}, strategy {strategy_id}")),
    );

    // History: closes alternating 0.1 % up and down, then a 0.6 % jump.
    let started = Instant::now();
    let mut close = 0.9000_f64;
    let mut writes = Vec::new();
    for i in 0..HISTORY {
        close *= if i % 2 == 0 { 1.001 } else { 1.0 / 1.001 };
        writes.push((hour(i), candle(close, close * 1.0004, close * 0.9996)));
    }
    let jump = close * 1.006;
    writes.push((hour(HISTORY), candle(jump, jump * 1.0002, close)));
    let result = write_and_wait(ctx, &stream, &writes).await;
    if !report.record(
        "56 hourly USD_CHF candles, the last a 0.6 % jump, processed into bars",
        started,
        result,
    ) {
        return;
    }

    // Minute after the jump closed: the pulse enters long.
    let entry_ts = hour(HISTORY);
    let trade_path = match paths::shadow_trade(&user.uid, &trade_id(&strategy_id, entry_ts)) {
        Ok(p) => p,
        Err(e) => {
            report.record("pulse opens a shadow trade on the jump", started, Err(e.to_string()));
            return;
        }
    };
    let started = Instant::now();
    let opened =
        pulse_until(ctx, hour(HISTORY + 1) + TimeDelta::minutes(1), "the trade opened", || async {
            let trade: Option<ShadowTrade> =
                ctx.db.get(&trade_path).await.map_err(|e| e.to_string())?;
            Ok(trade)
        })
        .await
        .and_then(|t| {
            (t.status == TradeStatus::Open)
                .then(|| {
                    format!(
                        "{:?} {:.2} at {:.5}, profit-take {:.5}, stop-loss {:.5}",
                        t.side, t.qty, t.entry_price, t.take_profit_price, t.stop_loss_price
                    )
                })
                .ok_or_else(|| format!("the trade is {:?}", t.status))
        });
    if !report.record(
        "pulse opens a shadow trade on the jump (Scheduler -> pulse-tasks -> pulse)",
        started,
        opened,
    ) {
        return;
    }

    // The next hour rises a little, inside the barriers: marked, P&L up.
    let started = Instant::now();
    let up = jump * 1.0005;
    let marked = async {
        write_and_wait(
            ctx,
            &stream,
            &[(hour(HISTORY + 1), candle(up, up * 1.0001, jump * 0.9999))],
        )
        .await?;
        pulse_until(ctx, hour(HISTORY + 2) + TimeDelta::minutes(1), "the trade marked", || async {
            let trade: Option<ShadowTrade> =
                ctx.db.get(&trade_path).await.map_err(|e| e.to_string())?;
            Ok(trade.filter(|t| t.mark_ts == hour(HISTORY + 1)))
        })
        .await
        .and_then(|t| {
            (t.status == TradeStatus::Open && t.pnl > 0.0)
                .then(|| format!("marked at {:.5}: P&L {:+.2}", t.mark_price, t.pnl))
                .ok_or_else(|| format!("{:?} with P&L {}", t.status, t.pnl))
        })
    }
    .await;
    if !report.record("a candle inside the barriers moves the trade's P&L", started, marked) {
        return;
    }

    // The hour after jumps 1 %: through the profit-take, closed there, in the ledger.
    let started = Instant::now();
    let high = up * 1.01;
    let closed = async {
        write_and_wait(ctx, &stream, &[(hour(HISTORY + 2), candle(high, high * 1.001, up))])
            .await?;
        let trade = pulse_until(
            ctx,
            hour(HISTORY + 3) + TimeDelta::minutes(1),
            "the trade closed",
            || async {
                let trade: Option<ShadowTrade> =
                    ctx.db.get(&trade_path).await.map_err(|e| e.to_string())?;
                Ok(trade.filter(|t| t.status == TradeStatus::Closed))
            },
        )
        .await?;
        let ledger = paths::ledger_trade(&tenant, &ledger_id(&trade)).map_err(|e| e.to_string())?;
        let entry: Option<Value> = ctx.db.get(&ledger).await.map_err(|e| e.to_string())?;
        let entry = entry.ok_or("the closed trade is not in the tenant's ledger")?;
        Ok(format!(
            "closed {:?} at {:.5}, P&L {:+.2}; ledger_trades/{} P&L {}",
            trade.exit_reason,
            trade.mark_price,
            trade.pnl,
            ledger.id(),
            entry["pnl"]
        ))
    }
    .await;
    if !report.record(
        "a jump through the profit-take closes the trade; the ledger holds it",
        started,
        closed,
    ) {
        return;
    }

    // The pulse created a signal with each step (in the trade's own commit); the notifier's
    // trigger on them tells the user, on the device registered in the notifications stage.
    let started = Instant::now();
    let repo = store::notify::Notifications::new(&ctx.db);
    let trade = trade_path.id().to_owned();
    let heard = eventually(WITHIN, "both trade signals in the inbox, pushed", || async {
        let mut titles = Vec::new();
        for step in ["open", "close"] {
            let id = notification_id(NotificationKind::TradeSignal, &format!("{trade}-{step}"));
            let entry = repo.entry(&user.uid, &id).await.map_err(|e| e.to_string())?;
            match entry {
                Some(e) if e.push == store::notify::PushState::Sent => titles.push(e.title),
                _ => return Ok(None),
            }
        }
        Ok(Some(titles))
    })
    .await
    .map(|titles| format!("{} and {}, each pushed to the user's device", titles[0], titles[1]));
    report.record(
        "users/{uid}/signals -> notifier: the trade's open and close in the inbox and pushed",
        started,
        heard,
    );
}

/// Writes `candles` to `candles/{instrument}/{granularity}/{ts}` and waits until market-stream
/// has the last one's bar.
async fn write_and_wait(
    ctx: &Ctx,
    stream: &StreamKey,
    candles: &[(DateTime<Utc>, CandleDocument)],
) -> Result<String, String> {
    let market = Market::new(&ctx.db);
    for (ts, doc) in candles {
        market.write_candle(stream, doc, &ts_id(*ts)).await.map_err(|e| e.to_string())?;
    }
    let Some((last, _)) = candles.last() else { return Ok("nothing written".into()) };
    let bar_path = paths::stream_bar(&stream.id(), &ts_id(*last)).map_err(|e| e.to_string())?;
    // The bridge delivers a burst of candles concurrently, so the last bar may first be
    // computed before its history is in (no volatility yet) and recomputed when the history
    // lands: wait for its features, or the pulse would act on the first, partial version.
    let bar: Value = eventually(WITHIN, "market-stream's features of the last candle", || async {
        let bar = ctx.db.get::<Value>(&bar_path).await.map_err(|e| e.to_string())?;
        Ok(bar.filter(|b| !b["vol"].is_null() && !b["scaled"].is_null()))
    })
    .await?;
    Ok(format!(
        "{} candles; last bar sigma {}, scaled return {}",
        candles.len(),
        bar["vol"],
        bar["scaled"]
    ))
}

/// Runs the pulse job for `minute` as Cloud Scheduler does, then polls `probe`.
async fn pulse_until<T, F, Fut>(
    ctx: &Ctx,
    minute: DateTime<Utc>,
    what: &str,
    probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let plan = ctx.plan()?;
    let job = plan
        .jobs
        .iter()
        .find(|j| j.job == PULSE_JOB)
        .ok_or_else(|| format!("the manifest schedules no `{PULSE_JOB}`"))?;
    let clock = Clock::new(Instant::now(), Utc::now(), 1.0);
    match jobs::run_once(
        &ctx.http,
        &ctx.target.project,
        job,
        minute,
        &clock,
        &CancellationToken::new(),
    )
    .await
    {
        Some(status) if (200..300).contains(&status) => {}
        Some(status) => return Err(format!("{PULSE_JOB} answered HTTP {status}")),
        None => return Err(format!("{PULSE_JOB} did not answer")),
    }
    eventually(WITHIN, what, probe).await
}
