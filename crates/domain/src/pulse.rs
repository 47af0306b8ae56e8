//! The trading pulse as pure code: strategies and their validation, what one user's minute
//! does to a strategy's shadow trade (open, mark to market, close on a barrier), the ledger
//! entry of a closed trade, and the start jitter of a large pulse.
//!
//! One minute of one (user, strategy) is [`step`]: it takes the strategy, the user's open
//! trade of that strategy (at most one is open at a time), the complete candles of the
//! strategy's stream that the trade has not seen yet, and the stream's latest features, and
//! answers what to write. It reads no clock: the minute is passed in.
//!
//! Determinism is what makes a retried or overlapping minute harmless:
//! - a trade's id is a function of the strategy and the candle it entered on
//!   ([`trade_id`]), so two runs that decide to open the same trade create the same document
//!   (the second create finds it and does nothing);
//! - a trade's state after a run is a function of its state before and the candles after its
//!   mark ([`advance`]), and candles already seen (at or before `mark_ts`) are skipped, so
//!   running a minute twice moves the trade once;
//! - the ledger entry of a closed trade has the trade's id, so it is appended once.
//!
//! Conventions (triple barrier, as in Lopez de Prado, *Advances in Financial Machine
//! Learning*, 2018, ch. 3): with `sigma` the stream's EWMA volatility of log returns at entry,
//! a long trade's profit-take barrier is `entry * (1 + take_profit * sigma)` and its stop-loss
//! `entry * (1 - stop_loss * sigma)` (mirrored for a short); the vertical barrier closes the
//! trade at the close of its `max_candles`-th candle. Within one candle the high and low are
//! checked against the barriers; when a candle touches both, the stop-loss is taken (its order
//! inside the candle is unknown, so the conservative outcome is booked).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most users one strategy may be assigned to.
pub const MAX_ASSIGNED_USERS: usize = 100;

/// Longest strategy name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Most candles a trade may be held (the vertical barrier).
pub const MAX_HOLD_CANDLES: u32 = 1_000;

/// Largest barrier multiple of sigma.
pub const MAX_BARRIER_MULTIPLE: f64 = 50.0;

/// Largest notional of one trade, in the instrument's quote currency.
pub const MAX_NOTIONAL: f64 = 1_000_000_000.0;

/// Most unseen candles one step walks (a trade that has not been marked for longer is walked
/// over several minutes, oldest candles first, so one step stays small).
pub const MAX_CANDLES_PER_STEP: usize = 500;

/// What makes a strategy enter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum EntrySignal {
    /// Enter when the latest volatility-scaled return (log return / sigma) crosses
    /// `threshold`: long at `>= threshold`, short at `<= -threshold`.
    VolScaledReturn {
        /// In units of sigma, `> 0`.
        threshold: f64,
    },
    /// Enter in the direction of the latest resolved triple-barrier label (+1 long, -1 short;
    /// 0 never enters).
    Label,
}

/// Which sides a strategy may trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Sides {
    /// Long only.
    Long,
    /// Short only.
    Short,
    /// Both.
    Both,
}

/// A trade's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Bought; profits when the price rises.
    Long,
    /// Sold; profits when the price falls.
    Short,
}

impl Side {
    /// +1 for long, -1 for short.
    pub fn sign(self) -> f64 {
        match self {
            Side::Long => 1.0,
            Side::Short => -1.0,
        }
    }

    fn allowed_by(self, sides: Sides) -> bool {
        matches!(
            (self, sides),
            (_, Sides::Both) | (Side::Long, Sides::Long) | (Side::Short, Sides::Short)
        )
    }
}

/// `tenants/{t}/strategies/{id}`: a rule set, assigned to users of the tenant.
/// Unknown fields are refused: a strategy is exactly these rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Strategy {
    /// What users see.
    pub name: String,
    /// The users (uids, members of the tenant) the strategy runs for.
    pub assigned_uids: Vec<String>,
    /// The stream's instrument (`EUR_USD`).
    pub instrument: String,
    /// The stream's granularity (`M1`, `H1`, ...).
    pub granularity: String,
    /// A disabled strategy opens nothing; its open trades keep being marked and closed.
    pub enabled: bool,
    /// When to enter.
    pub entry: EntrySignal,
    /// Which sides.
    pub sides: Sides,
    /// Profit-take barrier, a multiple of sigma (`> 0`).
    pub take_profit: f64,
    /// Stop-loss barrier, a multiple of sigma (`> 0`).
    pub stop_loss: f64,
    /// Vertical barrier: close after this many candles (`1..=MAX_HOLD_CANDLES`).
    pub max_candles: u32,
    /// Notional of a trade when sigma equals `vol_target`, quote currency.
    pub notional: f64,
    /// The per-candle volatility the notional is sized for (`0 < vol_target <= 1`): the
    /// notional of a trade is `notional * vol_target / sigma`, at most `max_notional`.
    pub vol_target: f64,
    /// Cap of a trade's notional.
    pub max_notional: f64,
}

/// Why a strategy is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    /// The name is empty or too long.
    #[error("name must be 1 to {MAX_NAME_CHARS} characters")]
    Name,
    /// No users, too many, or an empty or repeated uid.
    #[error("assigned_uids must list 1 to {MAX_ASSIGNED_USERS} distinct, non-empty uids")]
    Assigned,
    /// The stream is not one the market stream processes.
    #[error("unknown stream {instrument}/{granularity}")]
    UnknownStream {
        /// As given.
        instrument: String,
        /// As given.
        granularity: String,
    },
    /// A number is not finite or out of its range.
    #[error("{field} must be {range}, got {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Its allowed range, in words.
        range: &'static str,
        /// As given.
        value: f64,
    },
}

fn check_range(
    field: &'static str,
    value: f64,
    range: &'static str,
    ok: bool,
) -> Result<(), StrategyError> {
    if value.is_finite() && ok {
        Ok(())
    } else {
        Err(StrategyError::OutOfRange { field, range, value })
    }
}

impl Strategy {
    /// Checks the strategy; `stream_known(instrument, granularity)` says whether the market
    /// stream processes that stream (the caller asks its configuration).
    pub fn validate(&self, stream_known: impl Fn(&str, &str) -> bool) -> Result<(), StrategyError> {
        let name = self.name.trim();
        if name.is_empty() || self.name.chars().count() > MAX_NAME_CHARS {
            return Err(StrategyError::Name);
        }
        let mut uids: Vec<&str> = self.assigned_uids.iter().map(String::as_str).collect();
        uids.sort_unstable();
        uids.dedup();
        if uids.is_empty()
            || uids.len() != self.assigned_uids.len()
            || uids.len() > MAX_ASSIGNED_USERS
            || uids.iter().any(|u| u.is_empty() || u.len() > 128 || u.contains('/'))
        {
            return Err(StrategyError::Assigned);
        }
        if !stream_known(&self.instrument, &self.granularity) {
            return Err(StrategyError::UnknownStream {
                instrument: self.instrument.clone(),
                granularity: self.granularity.clone(),
            });
        }
        if let EntrySignal::VolScaledReturn { threshold } = self.entry {
            check_range(
                "entry.threshold",
                threshold,
                "> 0 and <= 100",
                threshold > 0.0 && threshold <= 100.0,
            )?;
        }
        let multiple = "> 0 and <= 50";
        check_range(
            "take_profit",
            self.take_profit,
            multiple,
            self.take_profit > 0.0 && self.take_profit <= MAX_BARRIER_MULTIPLE,
        )?;
        check_range(
            "stop_loss",
            self.stop_loss,
            multiple,
            self.stop_loss > 0.0 && self.stop_loss <= MAX_BARRIER_MULTIPLE,
        )?;
        check_range(
            "max_candles",
            f64::from(self.max_candles),
            "1 to 1000",
            (1..=MAX_HOLD_CANDLES).contains(&self.max_candles),
        )?;
        check_range(
            "notional",
            self.notional,
            "> 0 and <= 1e9",
            self.notional > 0.0 && self.notional <= MAX_NOTIONAL,
        )?;
        check_range(
            "vol_target",
            self.vol_target,
            "> 0 and <= 1",
            self.vol_target > 0.0 && self.vol_target <= 1.0,
        )?;
        check_range(
            "max_notional",
            self.max_notional,
            ">= notional and <= 1e9",
            self.max_notional >= self.notional && self.max_notional <= MAX_NOTIONAL,
        )?;
        Ok(())
    }
}

/// One complete candle of the strategy's stream, as the pulse needs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// Start time of the candle.
    pub ts: DateTime<Utc>,
    /// Open.
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
}

/// The stream's latest features (what the market stream computed for its latest complete
/// candle), the entry's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// The candle they belong to.
    pub ts: DateTime<Utc>,
    /// Its close.
    pub close: f64,
    /// EWMA volatility of log returns, per candle; absent until enough history.
    pub sigma: Option<f64>,
    /// Log return / sigma; absent until enough history.
    pub vol_scaled_return: Option<f64>,
    /// The latest resolved triple-barrier label of the stream (-1, 0, +1), if any.
    pub label: Option<i8>,
}

/// Where a shadow trade is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeStatus {
    /// Held; marked to market each minute.
    Open,
    /// Closed; its P&L is final and it is in the ledger.
    Closed,
}

/// Why a trade closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The profit-take barrier was touched.
    TakeProfit,
    /// The stop-loss barrier was touched.
    StopLoss,
    /// The vertical barrier passed (held `max_candles` candles).
    Vertical,
}

/// `users/{uid}/shadowTradeHistory/{tradeId}`: a trade the pulse opened in shadow (no order
/// reaches a broker). Never deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowTrade {
    /// The user.
    pub uid: String,
    /// The user's tenant.
    pub tenant_id: String,
    /// `tenants/{tenant_id}/strategies/{strategy_id}`.
    pub strategy_id: String,
    /// Stream.
    pub instrument: String,
    /// Stream.
    pub granularity: String,
    /// Direction.
    pub side: Side,
    /// Units of the instrument.
    pub qty: f64,
    /// Close of the entry candle.
    pub entry_price: f64,
    /// Start time of the entry candle.
    pub entry_ts: DateTime<Utc>,
    /// Sigma at entry.
    pub sigma: f64,
    /// Profit-take price.
    pub take_profit_price: f64,
    /// Stop-loss price.
    pub stop_loss_price: f64,
    /// The vertical barrier, in candles after entry.
    pub max_candles: u32,
    /// Candles walked since entry.
    pub candles_held: u32,
    /// Open or closed.
    pub status: TradeStatus,
    /// The last price the P&L was computed at (the exit price once closed).
    pub mark_price: f64,
    /// The candle of `mark_price`.
    pub mark_ts: DateTime<Utc>,
    /// `qty * (mark_price - entry_price)` for a long (mirrored for a short): unrealised while
    /// open, realised once closed.
    pub pnl: f64,
    /// Why it closed.
    pub exit_reason: Option<ExitReason>,
    /// The pulse minute that opened it.
    pub opened_minute: DateTime<Utc>,
    /// The pulse minute that closed it.
    pub closed_minute: Option<DateTime<Utc>>,
}

/// The id of the trade a strategy enters on a candle: one per (strategy, entry candle), so a
/// repeated decision names the same document.
pub fn trade_id(strategy_id: &str, entry_ts: DateTime<Utc>) -> String {
    format!("{strategy_id}-{}", entry_ts.timestamp())
}

impl ShadowTrade {
    /// The trade's id ([`trade_id`]).
    pub fn id(&self) -> String {
        trade_id(&self.strategy_id, self.entry_ts)
    }

    fn mark(&mut self, price: f64, ts: DateTime<Utc>) {
        self.mark_price = price;
        self.mark_ts = ts;
        self.pnl = self.side.sign() * self.qty * (price - self.entry_price);
    }

    fn close(&mut self, price: f64, ts: DateTime<Utc>, reason: ExitReason, minute: DateTime<Utc>) {
        self.mark(price, ts);
        self.status = TradeStatus::Closed;
        self.exit_reason = Some(reason);
        self.closed_minute = Some(minute);
    }
}

/// Walks an open trade over candles, oldest first, skipping those at or before its mark: each
/// candle is checked against the stop-loss, then the profit-take (a candle touching both books
/// the stop-loss), then the vertical barrier; otherwise the trade is marked at its close.
/// Returns whether anything changed. A closed trade never changes.
pub fn advance(trade: &mut ShadowTrade, bars: &[Bar], minute: DateTime<Utc>) -> bool {
    let mut changed = false;
    let seen = trade.mark_ts;
    for bar in bars.iter().filter(|b| b.ts > seen).take(MAX_CANDLES_PER_STEP) {
        if trade.status == TradeStatus::Closed {
            break;
        }
        changed = true;
        trade.candles_held += 1;
        let (stop_hit, take_hit) = match trade.side {
            Side::Long => (bar.low <= trade.stop_loss_price, bar.high >= trade.take_profit_price),
            Side::Short => (bar.high >= trade.stop_loss_price, bar.low <= trade.take_profit_price),
        };
        if stop_hit {
            trade.close(trade.stop_loss_price, bar.ts, ExitReason::StopLoss, minute);
        } else if take_hit {
            trade.close(trade.take_profit_price, bar.ts, ExitReason::TakeProfit, minute);
        } else if trade.candles_held >= trade.max_candles {
            trade.close(bar.close, bar.ts, ExitReason::Vertical, minute);
        } else {
            trade.mark(bar.close, bar.ts);
        }
    }
    changed
}

/// Whether (and which way) the strategy enters on the latest features.
pub fn entry_side(strategy: &Strategy, features: &Features) -> Option<Side> {
    let side = match strategy.entry {
        EntrySignal::VolScaledReturn { threshold } => {
            let z = features.vol_scaled_return?;
            if z >= threshold {
                Side::Long
            } else if z <= -threshold {
                Side::Short
            } else {
                return None;
            }
        }
        EntrySignal::Label => match features.label? {
            1 => Side::Long,
            -1 => Side::Short,
            _ => return None,
        },
    };
    side.allowed_by(strategy.sides).then_some(side)
}

/// Why a step opened nothing although it could have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoEntry {
    /// The strategy is disabled.
    Disabled,
    /// A trade of the strategy is still open.
    Holding,
    /// No features yet, or sigma unknown or not positive.
    NoFeatures,
    /// The latest features are older than the stream's granularity allows (the stream is
    /// silent or behind): never enter on a stale price.
    Stale,
    /// The signal did not fire.
    NoSignal,
}

/// What one minute of one (user, strategy) does.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The open trade after walking the new candles, if it changed (write it).
    pub updated: Option<ShadowTrade>,
    /// The trade closed during this step (append it to the ledger; it is also `updated`).
    pub closed: Option<ShadowTrade>,
    /// A new trade to create (if absent).
    pub opened: Option<ShadowTrade>,
    /// Why nothing was opened.
    pub no_entry: Option<NoEntry>,
}

/// Who and what a step runs for.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// The user.
    pub uid: &'a str,
    /// The user's tenant.
    pub tenant_id: &'a str,
    /// The strategy's id.
    pub strategy_id: &'a str,
    /// The pulse minute.
    pub minute: DateTime<Utc>,
    /// How old the latest features may be (from the end of their candle) for an entry.
    pub max_staleness: TimeDelta,
    /// The stream's candle length.
    pub granularity: TimeDelta,
}

/// One minute of one (user, strategy): walk the open trade over the new candles, then maybe
/// enter on the latest features.
pub fn step(
    ctx: StepContext<'_>,
    strategy: &Strategy,
    open: Option<&ShadowTrade>,
    bars: &[Bar],
    features: Option<&Features>,
) -> Step {
    let mut out = Step { updated: None, closed: None, opened: None, no_entry: None };
    let mut still_open = false;
    if let Some(trade) = open.filter(|t| t.status == TradeStatus::Open) {
        let mut trade = trade.clone();
        if advance(&mut trade, bars, ctx.minute) {
            if trade.status == TradeStatus::Closed {
                out.closed = Some(trade.clone());
            } else {
                still_open = true;
            }
            out.updated = Some(trade);
        } else {
            still_open = true;
        }
    }
    out.no_entry = Some(if !strategy.enabled {
        NoEntry::Disabled
    } else if still_open {
        NoEntry::Holding
    } else {
        match features {
            None => NoEntry::NoFeatures,
            Some(f) => match f.sigma {
                Some(sigma) if sigma.is_finite() && sigma > 0.0 && f.close > 0.0 => {
                    if ctx.minute - (f.ts + ctx.granularity) > ctx.max_staleness {
                        NoEntry::Stale
                    } else if out.closed.as_ref().is_some_and(|c| c.entry_ts >= f.ts) {
                        // The trade that just closed entered on these features: wait for a new candle.
                        NoEntry::Holding
                    } else {
                        match entry_side(strategy, f) {
                            None => NoEntry::NoSignal,
                            Some(side) => {
                                out.opened = Some(open_trade(ctx, strategy, f, sigma, side));
                                return Step { no_entry: None, ..out };
                            }
                        }
                    }
                }
                _ => NoEntry::NoFeatures,
            },
        }
    });
    out
}

fn open_trade(
    ctx: StepContext<'_>,
    s: &Strategy,
    f: &Features,
    sigma: f64,
    side: Side,
) -> ShadowTrade {
    let notional = (s.notional * s.vol_target / sigma).min(s.max_notional);
    let sign = side.sign();
    ShadowTrade {
        uid: ctx.uid.to_owned(),
        tenant_id: ctx.tenant_id.to_owned(),
        strategy_id: ctx.strategy_id.to_owned(),
        instrument: s.instrument.clone(),
        granularity: s.granularity.clone(),
        side,
        qty: notional / f.close,
        entry_price: f.close,
        entry_ts: f.ts,
        sigma,
        take_profit_price: f.close * (1.0 + sign * s.take_profit * sigma),
        stop_loss_price: f.close * (1.0 - sign * s.stop_loss * sigma),
        max_candles: s.max_candles,
        candles_held: 0,
        status: TradeStatus::Open,
        mark_price: f.close,
        mark_ts: f.ts,
        pnl: 0.0,
        exit_reason: None,
        opened_minute: ctx.minute,
        closed_minute: None,
    }
}

/// The id of a closed trade's ledger entry: the user's and the trade's, since the tenant's
/// ledger holds the trades of every user (two users of one strategy enter on the same candle).
pub fn ledger_id(trade: &ShadowTrade) -> String {
    format!("{}-{}", trade.uid, trade.id())
}

/// `tenants/{t}/ledger_trades/{ledgerId}`: a closed trade, appended once ([`ledger_id`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerTrade {
    /// The user.
    pub uid: String,
    /// The strategy.
    pub strategy_id: String,
    /// The instrument.
    pub symbol: String,
    /// Direction.
    pub side: Side,
    /// Units.
    pub qty: f64,
    /// Entry price.
    pub price: f64,
    /// Exit price.
    pub exit_price: f64,
    /// Realised P&L.
    pub pnl: f64,
    /// Why it closed.
    pub exit_reason: ExitReason,
    /// Entry candle.
    pub entry_ts: DateTime<Utc>,
    /// Exit candle.
    pub ts: DateTime<Utc>,
    /// Always `shadow` until a broker path exists.
    pub note: String,
}

/// The ledger entry of a closed trade (`None` while it is open).
pub fn ledger_entry(trade: &ShadowTrade) -> Option<LedgerTrade> {
    let reason = trade.exit_reason?;
    (trade.status == TradeStatus::Closed).then(|| LedgerTrade {
        uid: trade.uid.clone(),
        strategy_id: trade.strategy_id.clone(),
        symbol: trade.instrument.clone(),
        side: trade.side,
        qty: trade.qty,
        price: trade.entry_price,
        exit_price: trade.mark_price,
        pnl: trade.pnl,
        exit_reason: reason,
        entry_ts: trade.entry_ts,
        ts: trade.mark_ts,
        note: "shadow".to_owned(),
    })
}

/// How a user's strategies may execute, from `users/{uid}/status/trading`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Execution {
    /// Shadow trades only (safe mode, trading disabled, or no status).
    Shadow,
    /// The user asked for live orders. No broker path exists yet, so the pulse still books
    /// shadow trades and records that live was asked for; a broker client goes here.
    LiveRequested,
}

/// The execution a trading status allows: only `enabled` with mode `live` asks for live
/// orders; `safe`, `paper`, disabled or missing status keep shadow.
pub fn execution(enabled: Option<bool>, mode: Option<&str>) -> Execution {
    match (enabled, mode) {
        (Some(true), Some("live")) => Execution::LiveRequested,
        _ => Execution::Shadow,
    }
}

/// The start jitter of a pulse task: when more than half the write limit's worth of users pulse
/// in one minute, each user's start is delayed by a uniform draw in
/// `[0, users / write_limit * 100 ms)`, so their writes spread instead of landing together.
/// `draw` is a uniform random number in `[0, 1)`.
pub fn start_jitter(users: u64, write_limit_per_sec: f64, draw: f64) -> Duration {
    if write_limit_per_sec <= 0.0 || (users as f64) <= write_limit_per_sec / 2.0 {
        return Duration::ZERO;
    }
    let base = users as f64 / write_limit_per_sec * 0.1;
    Duration::from_secs_f64(base * draw.clamp(0.0, 1.0))
}

/// The pulse minute a time belongs to (seconds and below dropped).
pub fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(60), 0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 60 + min * 60, 0).unwrap()
    }

    fn strategy() -> Strategy {
        Strategy {
            name: "z-cross".into(),
            assigned_uids: vec!["u1".into()],
            instrument: "EUR_USD".into(),
            granularity: "M1".into(),
            enabled: true,
            entry: EntrySignal::VolScaledReturn { threshold: 1.5 },
            sides: Sides::Both,
            take_profit: 2.0,
            stop_loss: 1.0,
            max_candles: 5,
            notional: 1_000.0,
            vol_target: 0.01,
            max_notional: 10_000.0,
        }
    }

    fn ctx(minute: DateTime<Utc>) -> StepContext<'static> {
        StepContext {
            uid: "u1",
            tenant_id: "t1",
            strategy_id: "s1",
            minute,
            max_staleness: TimeDelta::minutes(2),
            granularity: TimeDelta::minutes(1),
        }
    }

    fn features(min: i64, close: f64, z: f64) -> Features {
        Features { ts: t(min), close, sigma: Some(0.01), vol_scaled_return: Some(z), label: None }
    }

    fn bar(min: i64, high: f64, low: f64, close: f64) -> Bar {
        Bar { ts: t(min), open: close, high, low, close }
    }

    fn known(i: &str, g: &str) -> bool {
        i == "EUR_USD" && g == "M1"
    }

    #[test]
    fn a_strategy_is_validated_field_by_field() {
        assert_eq!(strategy().validate(known), Ok(()));
        let mut s = strategy();
        s.name = " ".into();
        assert_eq!(s.validate(known), Err(StrategyError::Name));
        let mut s = strategy();
        s.assigned_uids = vec!["u1".into(), "u1".into()];
        assert_eq!(s.validate(known), Err(StrategyError::Assigned));
        let mut s = strategy();
        s.granularity = "H1".into();
        assert!(matches!(s.validate(known), Err(StrategyError::UnknownStream { .. })));
        let mut s = strategy();
        s.take_profit = f64::NAN;
        assert!(matches!(
            s.validate(known),
            Err(StrategyError::OutOfRange { field: "take_profit", .. })
        ));
        let mut s = strategy();
        s.max_notional = 10.0;
        assert!(matches!(
            s.validate(known),
            Err(StrategyError::OutOfRange { field: "max_notional", .. })
        ));
        let mut s = strategy();
        s.max_candles = 0;
        assert!(matches!(
            s.validate(known),
            Err(StrategyError::OutOfRange { field: "max_candles", .. })
        ));
        let mut s = strategy();
        s.entry = EntrySignal::VolScaledReturn { threshold: -1.0 };
        assert!(matches!(
            s.validate(known),
            Err(StrategyError::OutOfRange { field: "entry.threshold", .. })
        ));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut json = serde_json::to_value(strategy()).unwrap();
        json["leverage"] = serde_json::json!(100);
        assert!(serde_json::from_value::<Strategy>(json).is_err());
    }

    #[test]
    fn enters_long_sized_by_volatility_with_barriers_from_sigma() {
        let s = step(ctx(t(1)), &strategy(), None, &[], Some(&features(0, 100.0, 2.0)));
        let trade = s.opened.expect("opened");
        assert_eq!(trade.side, Side::Long);
        assert_eq!(trade.qty, 10.0); // 1000 * 0.01 / 0.01 / 100
        assert_eq!(trade.take_profit_price, 102.0);
        assert_eq!(trade.stop_loss_price, 99.0);
        assert_eq!(trade.id(), format!("s1-{}", t(0).timestamp()));
        let short = step(ctx(t(1)), &strategy(), None, &[], Some(&features(0, 100.0, -2.0)))
            .opened
            .unwrap();
        assert_eq!(
            (short.side, short.take_profit_price, short.stop_loss_price),
            (Side::Short, 98.0, 101.0)
        );
    }

    #[test]
    fn no_entry_on_stale_features_disabled_or_weak_signal() {
        let s = step(ctx(t(10)), &strategy(), None, &[], Some(&features(0, 100.0, 2.0)));
        assert_eq!((s.opened, s.no_entry), (None, Some(NoEntry::Stale)));
        let mut off = strategy();
        off.enabled = false;
        assert_eq!(
            step(ctx(t(1)), &off, None, &[], Some(&features(0, 100.0, 2.0))).no_entry,
            Some(NoEntry::Disabled)
        );
        assert_eq!(
            step(ctx(t(1)), &strategy(), None, &[], Some(&features(0, 100.0, 1.0))).no_entry,
            Some(NoEntry::NoSignal)
        );
        let mut long_only = strategy();
        long_only.sides = Sides::Long;
        assert_eq!(
            step(ctx(t(1)), &long_only, None, &[], Some(&features(0, 100.0, -2.0))).no_entry,
            Some(NoEntry::NoSignal)
        );
        assert_eq!(
            step(ctx(t(1)), &strategy(), None, &[], None).no_entry,
            Some(NoEntry::NoFeatures)
        );
    }

    #[test]
    fn marks_each_new_candle_then_closes_on_the_profit_take_with_exact_pnl() {
        let opened =
            step(ctx(t(1)), &strategy(), None, &[], Some(&features(0, 100.0, 2.0))).opened.unwrap();
        let s = step(ctx(t(2)), &strategy(), Some(&opened), &[bar(1, 101.0, 99.5, 101.0)], None);
        let marked = s.updated.clone().unwrap();
        assert_eq!((marked.pnl, marked.candles_held, marked.status), (10.0, 1, TradeStatus::Open));
        assert_eq!(s.no_entry, Some(NoEntry::Holding));
        // The same minute again (a retry): the candle is already seen, nothing changes.
        let again =
            step(ctx(t(2)), &strategy(), Some(&marked), &[bar(1, 101.0, 99.5, 101.0)], None);
        assert_eq!(again.updated, None);
        let closed = step(
            ctx(t(3)),
            &strategy(),
            Some(&marked),
            &[bar(1, 101.0, 99.5, 101.0), bar(2, 102.5, 100.5, 102.2)],
            None,
        );
        let trade = closed.closed.unwrap();
        assert_eq!(
            (trade.exit_reason, trade.mark_price, trade.pnl),
            (Some(ExitReason::TakeProfit), 102.0, 20.0)
        );
        let entry = ledger_entry(&trade).unwrap();
        assert_eq!((entry.pnl, entry.exit_price, entry.price), (20.0, 102.0, 100.0));
    }

    #[test]
    fn a_candle_touching_both_barriers_books_the_stop_loss_and_shorts_mirror() {
        let long =
            step(ctx(t(1)), &strategy(), None, &[], Some(&features(0, 100.0, 2.0))).opened.unwrap();
        let s = step(ctx(t(2)), &strategy(), Some(&long), &[bar(1, 103.0, 98.0, 100.0)], None);
        let c = s.closed.unwrap();
        assert_eq!((c.exit_reason, c.pnl), (Some(ExitReason::StopLoss), -10.0));
        let short = step(ctx(t(1)), &strategy(), None, &[], Some(&features(0, 100.0, -2.0)))
            .opened
            .unwrap();
        let s = step(ctx(t(2)), &strategy(), Some(&short), &[bar(1, 100.5, 97.5, 98.0)], None);
        let c = s.closed.unwrap();
        assert_eq!(
            (c.exit_reason, c.mark_price, c.pnl),
            (Some(ExitReason::TakeProfit), 98.0, 20.0)
        );
    }

    #[test]
    fn the_vertical_barrier_closes_at_the_last_close_and_a_gap_is_walked_in_order() {
        let opened =
            step(ctx(t(1)), &strategy(), None, &[], Some(&features(0, 100.0, 2.0))).opened.unwrap();
        let bars: Vec<Bar> =
            (1..=7).map(|m| bar(m, 100.5, 99.5, 100.0 + m as f64 / 10.0)).collect();
        // Seven candles arrive at once (the pulse missed minutes): the fifth closes the trade.
        let s = step(ctx(t(8)), &strategy(), Some(&opened), &bars, None);
        let c = s.closed.unwrap();
        assert_eq!(
            (c.exit_reason, c.candles_held, c.mark_ts),
            (Some(ExitReason::Vertical), 5, t(5))
        );
        assert!((c.pnl - 5.0).abs() < 1e-9);
        // Walking the candles one minute at a time ends in the same trade.
        let mut trade = opened;
        for m in 1..=7 {
            let s = step(ctx(t(m + 1)), &strategy(), Some(&trade), &bars[..m as usize], None);
            if let Some(u) = s.updated {
                trade = u;
            }
        }
        assert_eq!((trade.status, trade.mark_ts, trade.pnl), (c.status, c.mark_ts, c.pnl));
    }

    #[test]
    fn a_closed_trade_does_not_reopen_on_the_features_it_entered_on() {
        let opened =
            step(ctx(t(1)), &strategy(), None, &[], Some(&features(0, 100.0, 2.0))).opened.unwrap();
        let s = step(
            ctx(t(2)),
            &strategy(),
            Some(&opened),
            &[bar(1, 100.0, 98.0, 99.0)],
            Some(&features(0, 100.0, 2.0)),
        );
        assert!(s.closed.is_some());
        assert_eq!((s.opened, s.no_entry), (None, Some(NoEntry::Holding)));
        // On a newer candle with a signal, a new trade (a new id) opens.
        let s = step(
            ctx(t(2)),
            &strategy(),
            Some(&opened),
            &[bar(1, 100.0, 98.0, 99.0)],
            Some(&features(1, 99.0, 1.6)),
        );
        assert_ne!(s.opened.unwrap().id(), opened.id());
    }

    #[test]
    fn label_entries_follow_the_label() {
        let mut s = strategy();
        s.entry = EntrySignal::Label;
        let f = |label| Features { label: Some(label), ..features(0, 100.0, 0.0) };
        assert_eq!(entry_side(&s, &f(1)), Some(Side::Long));
        assert_eq!(entry_side(&s, &f(-1)), Some(Side::Short));
        assert_eq!(entry_side(&s, &f(0)), None);
    }

    #[test]
    fn only_enabled_live_asks_for_live_orders() {
        assert_eq!(execution(Some(true), Some("live")), Execution::LiveRequested);
        assert_eq!(execution(Some(false), Some("live")), Execution::Shadow);
        assert_eq!(execution(Some(true), Some("paper")), Execution::Shadow);
        assert_eq!(execution(Some(false), Some("safe")), Execution::Shadow);
        assert_eq!(execution(None, None), Execution::Shadow);
    }

    #[test]
    fn jitter_starts_above_half_the_write_limit_and_scales_with_users() {
        assert_eq!(start_jitter(250, 500.0, 0.9), Duration::ZERO);
        assert_eq!(start_jitter(1_000, 500.0, 1.0), Duration::from_millis(200));
        assert_eq!(start_jitter(10_000, 500.0, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn minutes_drop_their_seconds() {
        let at = DateTime::from_timestamp(1_700_000_059, 0).unwrap();
        assert_eq!(minute_of(at).timestamp() % 60, 0);
    }
}
