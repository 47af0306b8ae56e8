//! One (user, strategy) of a pulse minute: the start jitter, the user's open trade walked over
//! the candles it has not seen, a possible entry, and the guarded writes, each paced through
//! the instance's share of the write ramp.

use chrono::{DateTime, TimeDelta, Utc};
use domain::market::StreamKey;
use domain::messages::{PulseTask, StrategyRef};
use domain::pulse::{
    EntrySignal, Execution, Features, ShadowTrade, Side, Step, StepContext, Strategy, execution,
    ledger_entry, start_jitter, step,
};
use serde::Serialize;
use store::pulse::{Committed, SignalRecord};

use crate::AppState;

/// One run to do.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) at: StrategyRef,
    pub(crate) strategy: Strategy,
    pub(crate) uid: String,
    pub(crate) stream: StreamKey,
    pub(crate) granularity: TimeDelta,
    pub(crate) features: Option<Features>,
}

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunOutcome {
    /// Nothing to write.
    Idle,
    /// The open trade was marked.
    Marked,
    /// The open trade closed (and went to the ledger).
    Closed,
    /// A trade was opened.
    Opened,
    /// A trade closed and a new one opened.
    ClosedAndOpened,
    /// Another run of the minute wrote first.
    Raced,
}

/// A task's tally.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Counts {
    pub(crate) runs: u64,
    pub(crate) idle: u64,
    pub(crate) marked: u64,
    pub(crate) opened: u64,
    pub(crate) closed: u64,
    pub(crate) raced: u64,
    pub(crate) skipped: u64,
}

impl Counts {
    pub(crate) fn add(&mut self, outcome: RunOutcome) {
        self.runs += 1;
        match outcome {
            RunOutcome::Idle => self.idle += 1,
            RunOutcome::Marked => self.marked += 1,
            RunOutcome::Closed => self.closed += 1,
            RunOutcome::Opened => self.opened += 1,
            RunOutcome::ClosedAndOpened => {
                self.closed += 1;
                self.opened += 1;
            }
            RunOutcome::Raced => self.raced += 1,
        }
    }
}

/// How old the latest features may be, past the end of their candle, for an entry: one more
/// candle (the market stream may not have processed the newest one yet).
fn max_staleness(granularity: TimeDelta) -> TimeDelta {
    granularity
}

pub(crate) async fn run_user(
    state: &AppState,
    task: &PulseTask,
    job: Job,
) -> Result<RunOutcome, store::Error> {
    let jitter = start_jitter(task.runs_in_minute, state.jitter_write_limit, rand::random::<f64>());
    if !jitter.is_zero() {
        tokio::time::sleep(jitter).await;
    }
    let open = state.pulse.open_trade(&job.uid, &job.at.strategy_id).await?;
    let bars = match &open {
        Some(open) => state.pulse.bars_after(&job.stream, open.trade.mark_ts).await?,
        None => Vec::new(),
    };
    let ctx = StepContext {
        uid: &job.uid,
        tenant_id: &job.at.tenant_id,
        strategy_id: &job.at.strategy_id,
        minute: task.minute,
        max_staleness: max_staleness(job.granularity),
        granularity: job.granularity,
    };
    let decided: Step =
        step(ctx, &job.strategy, open.as_ref().map(|o| &o.trade), &bars, job.features.as_ref());
    if decided.updated.is_none() && decided.opened.is_none() {
        return Ok(RunOutcome::Idle);
    }
    // The status decides how the trade is booked; only read when something is booked.
    let mode = if decided.closed.is_some() || decided.opened.is_some() {
        let status = state.pulse.trading_status(&job.uid).await?;
        execution(status.enabled, status.mode.as_deref())
    } else {
        Execution::Shadow
    };
    let mut outcome = RunOutcome::Idle;
    if let (Some(trade), Some(open)) = (&decided.updated, &open) {
        let entry = decided.closed.as_ref().and_then(ledger_entry);
        let close = decided.closed.as_ref().map(|t| close_signal(t, task.minute, mode));
        let writes = 1 + u32::from(entry.is_some()) + u32::from(close.is_some());
        state.pacer.take(writes).await;
        let signal = close.as_ref().map(|(id, record)| (id.as_str(), record));
        match state.pulse.record_advance(trade, open.version, entry.as_ref(), signal).await? {
            Committed::Raced => return Ok(RunOutcome::Raced),
            Committed::Applied => {
                outcome =
                    if decided.closed.is_some() { RunOutcome::Closed } else { RunOutcome::Marked };
            }
        }
    }
    if let Some(trade) = &decided.opened {
        let (id, record) = open_signal(trade, &job.strategy, task.minute, mode);
        state.pacer.take(2).await;
        match state.pulse.record_open(trade, (&id, &record)).await? {
            Committed::Raced => {
                return Ok(if outcome == RunOutcome::Idle { RunOutcome::Raced } else { outcome });
            }
            Committed::Applied => {
                outcome = if outcome == RunOutcome::Closed {
                    RunOutcome::ClosedAndOpened
                } else {
                    RunOutcome::Opened
                };
            }
        }
    }
    Ok(outcome)
}

fn execution_name(mode: Execution) -> &'static str {
    match mode {
        Execution::Shadow => "shadow",
        // The seam of a live order path: a broker client would place the order here. None
        // exists yet, so the trade is booked in shadow and the signal says live was asked for.
        Execution::LiveRequested => "live_requested",
    }
}

fn open_signal(
    trade: &ShadowTrade,
    strategy: &Strategy,
    minute: DateTime<Utc>,
    mode: Execution,
) -> (String, SignalRecord) {
    let id = trade.id();
    let reason = match strategy.entry {
        EntrySignal::VolScaledReturn { .. } => "vol_scaled_return",
        EntrySignal::Label => "label",
    };
    let record = SignalRecord {
        uid: trade.uid.clone(),
        strategy_id: trade.strategy_id.clone(),
        trade_id: id.clone(),
        action: match trade.side {
            Side::Long => "open_long".into(),
            Side::Short => "open_short".into(),
        },
        reason: reason.into(),
        price: trade.entry_price,
        candle_ts: trade.entry_ts,
        execution: execution_name(mode).into(),
        minute,
    };
    (format!("{id}-open"), record)
}

fn close_signal(
    trade: &ShadowTrade,
    minute: DateTime<Utc>,
    mode: Execution,
) -> (String, SignalRecord) {
    let id = trade.id();
    let reason = match trade.exit_reason {
        Some(domain::pulse::ExitReason::TakeProfit) => "take_profit",
        Some(domain::pulse::ExitReason::StopLoss) => "stop_loss",
        Some(domain::pulse::ExitReason::Vertical) | None => "vertical",
    };
    let record = SignalRecord {
        uid: trade.uid.clone(),
        strategy_id: trade.strategy_id.clone(),
        trade_id: id.clone(),
        action: "close".into(),
        reason: reason.into(),
        price: trade.mark_price,
        candle_ts: trade.mark_ts,
        execution: execution_name(mode).into(),
        minute,
    };
    (format!("{id}-close"), record)
}
