//! The trading pulse's Firestore side: pages of strategies for the minute's fan-out, one
//! user's open trade of a strategy and trading status, the stream's processed candles since a
//! trade's mark and its latest features (what the market stream wrote, `store::market`), and
//! the guarded writes of one step.
//!
//! A step's writes are conditioned so that two runs of the same minute (a retried task, two
//! overlapping pulses) apply once: an open trade is rewritten only if it is still the version
//! the step read (its update time), and a new trade, a ledger entry and a signal are created
//! only if absent (their ids are deterministic, `domain::pulse::trade_id`). A run that loses
//! such a race answers [`Committed::Raced`] and changes nothing.

use chrono::{DateTime, Utc};
use domain::market::StreamKey;
use domain::market::candle::ts_id;
use domain::messages::StrategyRef;
use domain::pulse::{
    Bar, Features, LedgerTrade, MAX_CANDLES_PER_STEP, ShadowTrade, Strategy, TradeStatus, ledger_id,
};
use firestore::FirestoreDb;
use firestore::gcloud_sdk::google::firestore::v1::{Document, Write};
use firestore::gcloud_sdk::prost_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::db::{Db, decode};
use crate::error::{Code, Error};
use crate::market::BarRecord;
use crate::paths;
use crate::rpc::{self, NAME};

/// A strategy as stored, or why it cannot be used.
#[derive(Debug, Clone)]
pub struct StoredStrategy {
    /// Where it is.
    pub at: StrategyRef,
    /// The decoded strategy, or the decode error (a strategy written around the API).
    pub strategy: Result<Strategy, String>,
}

/// A page of strategies and where the next one starts.
#[derive(Debug, Clone)]
pub struct StrategyPage {
    /// The strategies, in document-name order.
    pub strategies: Vec<StoredStrategy>,
    /// The full name of the last document, to continue after; `None` at the end.
    pub next: Option<String>,
}

/// An open trade with the version it was read at.
#[derive(Debug, Clone)]
pub struct OpenTrade {
    /// The trade.
    pub trade: ShadowTrade,
    /// Its update time: the step's rewrite is conditioned on it.
    pub version: Timestamp,
}

/// `users/{uid}/signals/{id}`: what a strategy decided and why, for the client to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// The user.
    pub uid: String,
    /// The strategy.
    pub strategy_id: String,
    /// The trade it opened or closed.
    pub trade_id: String,
    /// `open_long`, `open_short` or `close`.
    pub action: String,
    /// For a close: `take_profit`, `stop_loss` or `vertical`; for an open: the signal.
    pub reason: String,
    /// The price acted at.
    pub price: f64,
    /// The candle acted on.
    pub candle_ts: DateTime<Utc>,
    /// `shadow`, or `live_requested` (booked in shadow: no broker path exists yet).
    pub execution: String,
    /// The pulse minute.
    pub minute: DateTime<Utc>,
}

/// What a step's commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The writes landed.
    Applied,
    /// Another run of the same minute got there first; nothing was written.
    Raced,
}

/// The trading status fields the pulse reads (`users/{uid}/status/trading`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TradingStatus {
    /// Trading switched on.
    pub enabled: Option<bool>,
    /// `safe`, `paper` or `live`.
    pub mode: Option<String>,
}

/// The pulse's repository.
#[derive(Debug, Clone)]
pub struct Pulse {
    db: Db,
}

fn tenant_of(doc: &Document) -> Option<String> {
    // projects/{p}/databases/{d}/documents/tenants/{t}/strategies/{s}
    let mut parts = doc.name.rsplit('/');
    let _strategy = parts.next()?;
    let collection = parts.next()?;
    let tenant = parts.next()?;
    let root = parts.next()?;
    (collection == paths::names::STRATEGIES && root == paths::names::TENANTS)
        .then(|| tenant.to_owned())
}

impl Pulse {
    /// The repository on `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// Up to `limit` strategies of every tenant after the document `after` (a full name from
    /// a previous page), in document-name order. Disabled strategies are listed too: their
    /// open trades are still marked and closed.
    pub async fn strategies_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<StrategyPage, Error> {
        let db = &self.db;
        let mut query = rpc::from(paths::names::STRATEGIES, true);
        query.order_by = vec![rpc::asc(NAME)];
        if let Some(after) = after {
            if !after.starts_with(db.documents_root()) {
                return Err(Error::Invalid(format!(
                    "strategy cursor {after:?} is not a document of this database"
                )));
            }
            query.start_at = Some(rpc::cursor(vec![rpc::reference(after.to_owned())], false));
        }
        query.limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        let next = (docs.len() as u64 >= u64::from(limit))
            .then(|| docs.last().map(|d| d.name.clone()))
            .flatten();
        let strategies = docs
            .iter()
            .filter_map(|doc| {
                // Only tenants' strategies (a `strategies` collection elsewhere is not ours).
                let tenant_id = tenant_of(doc)?;
                let at = StrategyRef { tenant_id, strategy_id: rpc::doc_id(doc).to_owned() };
                let strategy = decode_strategy(doc);
                Some(StoredStrategy { at, strategy })
            })
            .collect();
        Ok(StrategyPage { strategies, next })
    }

    /// The strategies named, in one read (`None` for a missing one, and for a reference that
    /// cannot name a strategy document, which is not read at all).
    pub async fn strategies(
        &self,
        refs: &[StrategyRef],
    ) -> Result<Vec<Option<StoredStrategy>>, Error> {
        let db = &self.db;
        let names: Vec<Option<String>> = refs
            .iter()
            .map(|r| {
                paths::strategy(&r.tenant_id, &r.strategy_id)
                    .ok()
                    .map(|p| p.full_name(db.documents_root()))
            })
            .collect();
        let mut docs =
            rpc::batch_get(db, names.iter().flatten().cloned().collect()).await?.into_iter();
        Ok(refs
            .iter()
            .zip(&names)
            .map(|(at, name)| {
                let doc = name.as_ref().and_then(|_| docs.next()).flatten()?;
                Some(StoredStrategy { at: at.clone(), strategy: decode_strategy(&doc) })
            })
            .collect())
    }

    /// Of `uids`, those that are not members of `tenant_id` (one batched read).
    pub async fn not_members(
        &self,
        tenant_id: &str,
        uids: &[String],
    ) -> Result<Vec<String>, Error> {
        let db = &self.db;
        let names = uids
            .iter()
            .map(|uid| Ok(paths::tenant_member(tenant_id, uid)?.full_name(db.documents_root())))
            .collect::<Result<Vec<_>, Error>>()?;
        let found = rpc::batch_get(db, names).await?;
        Ok(uids
            .iter()
            .zip(found)
            .filter(|(_, doc)| doc.is_none())
            .map(|(uid, _)| uid.clone())
            .collect())
    }

    /// Writes `tenants/{tenant_id}/strategies/{strategy_id}` (the whole strategy).
    pub async fn save_strategy(
        &self,
        tenant_id: &str,
        strategy_id: &str,
        strategy: &Strategy,
    ) -> Result<(), Error> {
        self.db.set(&paths::strategy(tenant_id, strategy_id)?, strategy).await
    }

    /// `uid`'s open trade of `strategy_id`, if any (at most one is open at a time; the query
    /// is two equalities, served by single-field indexes).
    pub async fn open_trade(
        &self,
        uid: &str,
        strategy_id: &str,
    ) -> Result<Option<OpenTrade>, Error> {
        let db = &self.db;
        let collection = paths::shadow_trades(uid)?;
        let mut query = rpc::from(collection.id(), false);
        query.r#where = rpc::and(vec![
            rpc::eq("strategy_id", rpc::string(strategy_id)),
            rpc::eq("status", rpc::string("open")),
        ]);
        query.limit = Some(1);
        let parent = collection.parent_name(db.documents_root());
        let docs = rpc::run(db, parent, query).await?;
        let Some(doc) = docs.into_iter().next() else { return Ok(None) };
        let path = collection.doc(rpc::doc_id(&doc))?;
        let trade: ShadowTrade = decode(&path, &doc)?;
        let version = doc.update_time.ok_or_else(|| Error::Decode {
            path: path.relative(),
            message: "a stored trade without update time".into(),
        })?;
        Ok(Some(OpenTrade { trade, version }))
    }

    /// The processed candles of a stream (`streams/{streamId}/bars`, written by the market
    /// stream: validated complete candles only) that start after `after`, oldest first, at
    /// most [`MAX_CANDLES_PER_STEP`]. Bar ids are candle start times in RFC 3339, so id order
    /// is time order and the query needs no composite index.
    pub async fn bars_after(
        &self,
        stream: &StreamKey,
        after: DateTime<Utc>,
    ) -> Result<Vec<Bar>, Error> {
        let db = &self.db;
        let bars = paths::stream_bars(&stream.id())?;
        let mark = bars.doc(&ts_id(after))?;
        let mut query = rpc::from(bars.id(), false);
        query.order_by = vec![rpc::asc(NAME)];
        query.start_at =
            Some(rpc::cursor(vec![rpc::reference(mark.full_name(db.documents_root()))], false));
        query.limit = Some(i32::try_from(MAX_CANDLES_PER_STEP).unwrap_or(i32::MAX));
        let docs = rpc::run(db, bars.parent_name(db.documents_root()), query).await?;
        docs.iter()
            .map(|doc| {
                let record: BarRecord = decode(&bars.doc(rpc::doc_id(doc))?, doc)?;
                Ok(Bar {
                    ts: record.ts,
                    open: record.o,
                    high: record.h,
                    low: record.l,
                    close: record.c,
                })
            })
            .collect()
    }

    /// The stream's latest features: the newest processed candle's close, volatility and
    /// scaled return, and the newest label resolved among the last `label_lookback` candles
    /// (1 reads only the newest candle). One query, `label_lookback` reads at most.
    pub async fn latest_features(
        &self,
        stream: &StreamKey,
        label_lookback: u32,
    ) -> Result<Option<Features>, Error> {
        let db = &self.db;
        let bars = paths::stream_bars(&stream.id())?;
        let mut query = rpc::from(bars.id(), false);
        // Newest first by the stored start time (RFC 3339 strings sort as times do): Firestore
        // scans document keys only ascending, and a field's single-field index serves both ways.
        query.order_by = vec![rpc::desc("ts")];
        query.limit = Some(i32::try_from(label_lookback.max(1)).unwrap_or(i32::MAX));
        let docs = rpc::run(db, bars.parent_name(db.documents_root()), query).await?;
        let records = docs
            .iter()
            .map(|doc| decode::<BarRecord>(&bars.doc(rpc::doc_id(doc))?, doc))
            .collect::<Result<Vec<_>, Error>>()?;
        let Some(newest) = records.first() else { return Ok(None) };
        Ok(Some(Features {
            ts: newest.ts,
            close: newest.c,
            sigma: newest.vol,
            vol_scaled_return: newest.scaled,
            label: records.iter().find_map(|r| r.label.map(|l| l.value)),
        }))
    }

    /// `uid`'s trading status (default when absent).
    pub async fn trading_status(&self, uid: &str) -> Result<TradingStatus, Error> {
        Ok(self.db.get(&paths::user_trading_status(uid)?).await?.unwrap_or_default())
    }

    /// The writes of a step that moved an open trade: the trade rewritten if still at
    /// `version`, and when it closed, its ledger entry and its close signal created.
    pub async fn record_advance(
        &self,
        trade: &ShadowTrade,
        version: Timestamp,
        ledger: Option<&LedgerTrade>,
        signal: Option<(&str, &SignalRecord)>,
    ) -> Result<Committed, Error> {
        let db = &self.db;
        let id = trade.id();
        let mut writes: Vec<Write> = Vec::with_capacity(3);
        let mut rewrite = db.set_write(&paths::shadow_trade(&trade.uid, &id)?, trade)?;
        rewrite.current_document = Some(Db::update_time_precondition(version));
        writes.push(rewrite);
        if let Some(entry) = ledger {
            debug_assert_eq!(trade.status, TradeStatus::Closed);
            writes.push(
                db.create_write(&paths::ledger_trade(&trade.tenant_id, &ledger_id(trade))?, entry)?,
            );
        }
        if let Some((signal_id, record)) = signal {
            writes.push(db.create_write(&paths::signal(&trade.uid, signal_id)?, record)?);
        }
        commit_guarded(db, writes).await
    }

    /// The writes of a step that opened a trade: the trade and its open signal, created if absent.
    pub async fn record_open(
        &self,
        trade: &ShadowTrade,
        signal: (&str, &SignalRecord),
    ) -> Result<Committed, Error> {
        let db = &self.db;
        let writes = vec![
            db.create_write(&paths::shadow_trade(&trade.uid, &trade.id())?, trade)?,
            db.create_write(&paths::signal(&trade.uid, signal.0)?, signal.1)?,
        ];
        commit_guarded(db, writes).await
    }
}

/// A stored strategy, strictly: the Firestore decoder's own `_firestore_*` fields are dropped,
/// any other unknown field refuses it.
fn decode_strategy(doc: &Document) -> Result<Strategy, String> {
    let mut value: serde_json::Value =
        FirestoreDb::deserialize_doc_to(doc).map_err(|e| e.to_string())?;
    if let Some(fields) = value.as_object_mut() {
        fields.retain(|k, _| !k.starts_with("_firestore"));
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Commits `writes`; a failed precondition (the trade moved, or a created document exists)
/// means another run of the minute already did it.
async fn commit_guarded(db: &Db, writes: Vec<Write>) -> Result<Committed, Error> {
    match db.commit(writes).await {
        Ok(()) => Ok(Committed::Applied),
        Err(Error::Rpc {
            code: Code::FailedPrecondition | Code::AlreadyExists | Code::NotFound,
            ..
        }) => Ok(Committed::Raced),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::pulse::{EntrySignal, Sides};

    /// A strategy survives the trip through a Firestore document (tagged entry included).
    #[test]
    fn a_strategy_round_trips_through_a_firestore_document() {
        let strategy = Strategy {
            name: "z".into(),
            assigned_uids: vec!["u".into()],
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
        };
        let doc = FirestoreDb::serialize_to_doc(
            "projects/p/databases/(default)/documents/tenants/t/strategies/s",
            &strategy,
        )
        .unwrap();
        assert_eq!(decode_strategy(&doc), Ok(strategy.clone()));
        let mut extra = serde_json::to_value(&strategy).unwrap();
        extra["leverage"] = serde_json::json!(100);
        let path = "projects/p/databases/(default)/documents/tenants/t/strategies/s";
        let doc = FirestoreDb::serialize_to_doc(path, &extra).unwrap();
        assert!(decode_strategy(&doc).is_err(), "an unknown field refuses the strategy");
    }
}
