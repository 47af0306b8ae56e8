//! The market-data stream in Firestore: processed candles with their features and labels
//! (`streams/{streamId}/bars/{ts}`), the stream's health (`stream_health/{streamId}`), and the
//! stream's dead letters.
//!
//! One change of a candle (inserted, corrected or removed) is applied in one transaction that
//! first reads the stream's health document and writes it back: every change of a stream
//! takes that document's lock, so changes of one stream are serialized, and the window read
//! after it sees every change committed before. The window (the stored bars around the changed
//! time, as many as `domain::market::window::context` asks) is read by two queries on the bars'
//! `ts` field, which need no composite index; the affected range is recomputed by
//! `domain::market::window::recompute`, and only bars whose stored values differ are rewritten,
//! all in the same commit as the health document.
//!
//! Most changes read no window: the stream document (`streams/{streamId}`, [`StreamTail`])
//! keeps the latest stored bars, enough for any change within the last `after` bars of
//! `context` (an append at the head, a late or corrected candle near it) to find its whole
//! window there, and is read with the health document in one `BatchGetDocuments` that also
//! begins the transaction. Every change rewrites the part of the tail its window covers in the
//! same commit ([`next_tail`]), so the tail is always the stream's latest bars as stored; a
//! change further back reads its window by query, as before.
//!
//! Times are stored as RFC 3339 strings (UTC, which sort as times do).

use chrono::{DateTime, Utc};
use domain::dead_letter::DeadLetter;
use domain::market::features::Bar;
use domain::market::health::{HealthFacts, StreamStatus};
use domain::market::window::{Slice, context, recompute};
use domain::market::{Candle, Derived, FeaturePolicy, Label, Priority, StreamKey};
use domain::messages::StreamAlertKind;
use firestore::gcloud_sdk::google::firestore::v1::{Document, structured_query::field_filter};
use serde::{Deserialize, Serialize};

use crate::db::{Db, decode};
use crate::error::Error;
use crate::paths::{self, DocPath};
use crate::rpc::{self, NAME};

/// The field bars are ordered by.
const TS: &str = "ts";

/// A candle document as the feed writes it, `candles/{instrument}/{granularity}/{ts}`: prices,
/// volume, optional quotes, `complete`, and optionally `ts` (which must then be the time the
/// document id names). Prices may be stored as integers or doubles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandleDocument {
    /// Open.
    pub o: f64,
    /// High.
    pub h: f64,
    /// Low.
    pub l: f64,
    /// Close.
    pub c: f64,
    /// Volume.
    #[serde(default)]
    pub v: f64,
    /// Bid at the close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid: Option<f64>,
    /// Ask at the close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<f64>,
    /// The period is over.
    #[serde(default)]
    pub complete: bool,
    /// The start time, if the writer repeats it in the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<DateTime<Utc>>,
}

impl CandleDocument {
    /// The candle starting at `ts` (the time its document id names).
    pub fn candle(&self, ts: DateTime<Utc>) -> Candle {
        Candle {
            ts,
            o: self.o,
            h: self.h,
            l: self.l,
            c: self.c,
            v: self.v,
            bid: self.bid,
            ask: self.ask,
            complete: self.complete,
        }
    }

    /// The document of `candle`.
    pub fn of(candle: &Candle) -> Self {
        Self {
            o: candle.o,
            h: candle.h,
            l: candle.l,
            c: candle.c,
            v: candle.v,
            bid: candle.bid,
            ask: candle.ask,
            complete: candle.complete,
            ts: Some(candle.ts),
        }
    }
}

/// A processed candle: the candle's values and what is derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarRecord {
    /// Start of the period.
    pub ts: DateTime<Utc>,
    /// Open.
    pub o: f64,
    /// High.
    pub h: f64,
    /// Low.
    pub l: f64,
    /// Close.
    pub c: f64,
    /// Volume.
    pub v: f64,
    /// Bid, if given.
    #[serde(default)]
    pub bid: Option<f64>,
    /// Ask, if given.
    #[serde(default)]
    pub ask: Option<f64>,
    /// Log return (`domain::market::features`).
    #[serde(default)]
    pub ret: Option<f64>,
    /// EWMA volatility.
    #[serde(default)]
    pub vol: Option<f64>,
    /// Volatility-scaled return.
    #[serde(default)]
    pub scaled: Option<f64>,
    /// The triple-barrier label, once resolved.
    #[serde(default)]
    pub label: Option<Label>,
}

impl BarRecord {
    fn of(candle: &Candle) -> Self {
        Self {
            ts: candle.ts,
            o: candle.o,
            h: candle.h,
            l: candle.l,
            c: candle.c,
            v: candle.v,
            bid: candle.bid,
            ask: candle.ask,
            ret: None,
            vol: None,
            scaled: None,
            label: None,
        }
    }

    /// The candle these values came from.
    pub fn candle(&self) -> Candle {
        Candle {
            ts: self.ts,
            o: self.o,
            h: self.h,
            l: self.l,
            c: self.c,
            v: self.v,
            bid: self.bid,
            ask: self.ask,
            complete: true,
        }
    }

    /// What is derived, as `domain` computes it.
    pub fn derived(&self) -> Derived {
        Derived { ret: self.ret, vol: self.vol, scaled: self.scaled, label: self.label }
    }

    fn with(&self, d: Derived) -> Self {
        Self { ret: d.ret, vol: d.vol, scaled: d.scaled, label: d.label, ..self.clone() }
    }
}

/// `streams/{streamId}`: the stream's latest stored bars, so that a change near the head reads
/// one document instead of its window (module doc). Its field `tail` is exempt from
/// indexing (`firestore.indexes.json`): nothing queries it, and a list of maps would otherwise
/// cost an index entry per value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamTail {
    /// The latest stored bars, oldest first: at most `cap` (fewer after a deleted head, or
    /// while the stream is young).
    pub tail: Vec<BarRecord>,
    /// `tail` holds every stored bar of the stream.
    pub complete: bool,
    /// The most bars it keeps, [`tail_cap`] of the policy it was kept for; under another
    /// policy the tail is not used.
    pub cap: usize,
}

/// The bars a stream's tail keeps: enough for any change within the last `after` bars to find
/// its whole window (`before` bars before it, everything after it) in the tail.
pub fn tail_cap(before: usize, after: usize) -> usize {
    before + after
}

impl StreamTail {
    /// The window of a change at `ts` as the two queries would read it (up to `before` bars
    /// strictly before `ts`, latest first; up to `after + 1` bars from `ts` on, earliest
    /// first), when the tail holds it: the tail is the stream's latest bars, so it holds
    /// everything from its first bar on, and the bars before `ts` are enough when there are
    /// `before` of them or the tail is the whole stream.
    pub fn window(
        &self,
        ts: DateTime<Utc>,
        before: usize,
        after: usize,
    ) -> Option<(Vec<&BarRecord>, Vec<&BarRecord>)> {
        let k = self.tail.partition_point(|b| b.ts < ts);
        if k < before && !self.complete {
            return None;
        }
        let earlier = self.tail[..k].iter().rev().take(before).collect();
        let later = self.tail[k..].iter().take(after + 1).collect();
        Some((earlier, later))
    }
}

/// The tail after a change at `changed`, or `None` when it stays as it is. `old` is the tail
/// read (of the current cap), `slice` the contiguous run of bars the change read, as stored
/// after it (`from_beginning`: nothing before it; `to_head`: nothing after it). Bars outside
/// the slice are untouched by the change (except the changed one, which is in the slice or
/// removed), so the new tail is the old one's bars before the slice, the slice, and, when the
/// slice stops short of the head, the old one's bars after it, cut to the latest `cap`. Without
/// an old tail it is the slice when that reaches the head, and nothing otherwise (what lies
/// between is unknown); an old tail that starts after the slice is untouched.
pub fn next_tail(
    old: Option<&StreamTail>,
    changed: DateTime<Utc>,
    slice: Vec<BarRecord>,
    (from_beginning, to_head): (bool, bool),
    cap: usize,
) -> Option<StreamTail> {
    let last = slice.last().map_or(changed, |b| b.ts.max(changed));
    let first = slice.first().map_or(changed, |b| b.ts.min(changed));
    let kept = |b: &&BarRecord| b.ts != changed;
    let mut bars = match old {
        Some(old) if to_head || old.tail.first().is_some_and(|f| f.ts <= last) => {
            let mut bars: Vec<BarRecord> =
                old.tail.iter().filter(kept).take_while(|b| b.ts < first).cloned().collect();
            bars.extend(slice);
            if !to_head {
                bars.extend(old.tail.iter().filter(kept).skip_while(|b| b.ts <= last).cloned());
            }
            bars
        }
        Some(_) => return None,
        None if to_head => slice,
        None => return None,
    };
    let complete = (from_beginning || old.is_some_and(|o| o.complete)) && bars.len() <= cap;
    let keep = bars.len().saturating_sub(cap);
    Some(StreamTail { tail: bars.split_off(keep), complete, cap })
}

#[cfg(test)]
mod tail_tests {
    use super::*;

    fn bar(minute: i64) -> BarRecord {
        let ts = DateTime::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap();
        BarRecord::of(&Candle {
            ts,
            o: 1.0,
            h: 1.0,
            l: 1.0,
            c: 1.0 + minute as f64,
            v: 0.0,
            bid: None,
            ask: None,
            complete: true,
        })
    }

    fn bars(minutes: std::ops::Range<i64>) -> Vec<BarRecord> {
        minutes.map(bar).collect()
    }

    fn minutes(tail: &StreamTail) -> Vec<i64> {
        tail.tail.iter().map(|b| (b.ts.timestamp() - 1_700_000_000) / 60).collect()
    }

    fn tail(minutes: std::ops::Range<i64>, complete: bool) -> StreamTail {
        StreamTail { tail: bars(minutes), complete, cap: 6 }
    }

    #[test]
    fn a_window_comes_from_the_tail_only_when_the_tail_holds_all_of_it() {
        let t = tail(10..16, false);
        let at = |m: i64| bar(m).ts;
        // An append: 2 before wanted, 6 are there; nothing after.
        let (before, after) = t.window(at(16), 2, 3).unwrap();
        assert_eq!(before.iter().map(|b| b.c).collect::<Vec<_>>(), [16.0, 15.0]);
        assert!(after.is_empty());
        // A change inside the tail: as the queries would read it, the changed bar first after.
        let (before, after) = t.window(at(13), 2, 1).unwrap();
        assert_eq!(before.iter().map(|b| b.c).collect::<Vec<_>>(), [13.0, 12.0]);
        assert_eq!(after.iter().map(|b| b.c).collect::<Vec<_>>(), [14.0, 15.0]);
        // Too few before it, and older bars may exist: the queries must read it.
        assert!(t.window(at(11), 2, 3).is_none());
        // ... unless the tail is the whole stream.
        let whole = tail(10..16, true);
        let (before, _) = whole.window(at(11), 2, 3).unwrap();
        assert_eq!(before.len(), 1);
        assert!(whole.window(at(5), 2, 3).unwrap().0.is_empty());
    }

    #[test]
    fn the_next_tail_is_always_the_latest_bars() {
        let cap = 6;
        let at = |m: i64| bar(m).ts;
        // An append at the head: the slice (the window and the new bar) reaches the head.
        let old = tail(10..16, false);
        let next = next_tail(Some(&old), at(16), bars(13..17), (false, true), cap).unwrap();
        assert_eq!(minutes(&next), [11, 12, 13, 14, 15, 16]);
        assert!(!next.complete);
        // A young stream: complete while it fits.
        let next = next_tail(None, at(2), bars(0..3), (true, true), cap).unwrap();
        assert_eq!((minutes(&next), next.complete), (vec![0, 1, 2], true));
        let grown = next_tail(Some(&next), at(7), bars(0..8), (true, true), cap).unwrap();
        assert_eq!((minutes(&grown), grown.complete), (vec![2, 3, 4, 5, 6, 7], false));
        // A change short of the head: the old bars after the slice are kept, updated inside it.
        let mut slice = bars(8..13);
        slice[2].ret = Some(0.5);
        let next = next_tail(Some(&old), at(10), slice, (false, false), cap).unwrap();
        assert_eq!(minutes(&next), [10, 11, 12, 13, 14, 15]);
        assert_eq!(next.tail[0].ret, Some(0.5));
        // A change whose slice ends before the tail starts: untouched.
        assert_eq!(next_tail(Some(&old), at(3), bars(1..6), (false, false), cap), None);
        // Without a tail, a change short of the head cannot make one.
        assert_eq!(next_tail(None, at(3), bars(1..6), (false, false), cap), None);
        // The head removed: the slice ends before it, and the old copy does not come back.
        let next = next_tail(Some(&old), at(15), bars(12..15), (false, true), cap).unwrap();
        assert_eq!(minutes(&next), [10, 11, 12, 13, 14]);
        // The first bar of a whole-stream tail removed, with nothing before it in the slice.
        let whole = tail(10..16, true);
        let next = next_tail(Some(&whole), at(10), bars(11..14), (true, false), cap).unwrap();
        assert_eq!((minutes(&next), next.complete), (vec![11, 12, 13, 14, 15], true));
        // A stream's only bar removed.
        let one = tail(10..11, true);
        let next = next_tail(Some(&one), at(10), Vec::new(), (true, true), cap).unwrap();
        assert_eq!((minutes(&next), next.complete), (vec![], true));
    }
}

/// A transition the health job decided and has yet to announce on `stream-alerts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAlert {
    /// Silent or recovered.
    pub kind: StreamAlertKind,
    /// When the job decided it (RFC 3339).
    pub detected_at: DateTime<Utc>,
}

/// `stream_health/{streamId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// `{instrument}_{granularity}`
    pub stream_id: String,
    /// `EUR_USD`
    pub instrument: String,
    /// `H1`
    pub granularity: String,
    /// `critical`, `high`, `medium`, `low`
    pub priority: Priority,
    /// What the health job last decided.
    #[serde(default)]
    pub status: StreamStatus,
    /// Start time of the latest complete candle processed.
    #[serde(default)]
    pub last_candle_at: Option<DateTime<Utc>>,
    /// When the latest complete candle was written (its document's update time).
    #[serde(default)]
    pub last_arrival_at: Option<DateTime<Utc>>,
    /// Write-to-processed latency of the latest candle, in milliseconds.
    #[serde(default)]
    pub lag_ms: Option<i64>,
    /// Candle changes processed.
    #[serde(default)]
    pub processed: i64,
    /// Candles dead-lettered.
    #[serde(default)]
    pub failed: i64,
    /// When the current silence was detected.
    #[serde(default)]
    pub silent_since: Option<DateTime<Utc>>,
    /// When the stream was first seen (by a candle or the health job).
    pub watched_since: DateTime<Utc>,
    /// A transition not yet announced.
    #[serde(default)]
    pub pending_alert: Option<PendingAlert>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
}

impl HealthRecord {
    /// A stream first seen at `now`.
    pub fn new(key: &StreamKey, priority: Priority, now: DateTime<Utc>) -> Self {
        Self {
            stream_id: key.id(),
            instrument: key.instrument.clone(),
            granularity: key.granularity.to_string(),
            priority,
            status: StreamStatus::Healthy,
            last_candle_at: None,
            last_arrival_at: None,
            lag_ms: None,
            processed: 0,
            failed: 0,
            silent_since: None,
            watched_since: now,
            pending_alert: None,
            updated_at: now,
        }
    }

    /// The facts the silence rule reads.
    pub fn facts(&self) -> HealthFacts {
        HealthFacts {
            status: self.status,
            last_arrival_at: self.last_arrival_at,
            silent_since: self.silent_since,
            watched_since: self.watched_since,
        }
    }
}

/// One change of a candle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CandleChange {
    /// A complete, valid candle written (new or corrected), with its document's update time.
    Upsert { candle: Candle, written_at: DateTime<Utc> },
    /// The candle document deleted (at `written_at`).
    Remove { ts: DateTime<Utc>, written_at: DateTime<Utc> },
}

impl CandleChange {
    fn ts(&self) -> DateTime<Utc> {
        match self {
            CandleChange::Upsert { candle, .. } => candle.ts,
            CandleChange::Remove { ts, .. } => *ts,
        }
    }

    fn written_at(&self) -> DateTime<Utc> {
        match self {
            CandleChange::Upsert { written_at, .. } | CandleChange::Remove { written_at, .. } => {
                *written_at
            }
        }
    }
}

/// What applying a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Applied {
    /// The stored candle already had these values (or was already absent): nothing written.
    pub unchanged: bool,
    /// Bars written or deleted (the changed one included).
    pub bars_written: usize,
    /// Labels that went from open to resolved.
    pub labels_resolved: usize,
    /// A neighbouring candle starts less than one granularity away: the change was not
    /// applied (a stream holds one candle per period).
    pub overlaps: bool,
}

/// The stream repository.
#[derive(Debug, Clone)]
pub struct Market {
    db: Db,
}

impl Market {
    /// The market data of `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// Applies `change` to the stream `key` at `now`: recomputes what depends on it and writes
    /// what differs, with the stream's health, in one transaction.
    pub async fn apply(
        &self,
        key: &StreamKey,
        priority: Priority,
        change: CandleChange,
        policy: &FeaturePolicy,
        now: DateTime<Utc>,
    ) -> Result<Applied, Error> {
        let stream_id = key.id();
        let health_path = paths::stream_health(&stream_id)?;
        let ts_id = domain::market::candle::ts_id(change.ts());
        let bar_path = paths::stream_bar(&stream_id, &ts_id)?;
        let (before_n, after_n) = context(policy);
        let db = &self.db;
        let (health_path, bar_path) = (&health_path, &bar_path);
        let stream_id = &stream_id;
        let tail_path = paths::stream(stream_id)?;
        let tail_path = &tail_path;
        db.run_transaction(|tx| {
            Box::pin(async move {
                // The lock and the tail, in the round trip that begins the transaction.
                let docs = tx.get_documents(&[health_path.clone(), tail_path.clone()]).await?;
                let mut docs = docs.into_iter();
                let health: Option<HealthRecord> =
                    docs.next().flatten().map(|d| decode(health_path, &d)).transpose()?;
                let tail: Option<StreamTail> =
                    docs.next().flatten().map(|d| decode(tail_path, &d)).transpose()?;
                let cap = tail_cap(before_n, after_n);
                let tail = tail.filter(|t| t.cap == cap && t.tail.len() <= cap);
                let from_tail =
                    tail.as_ref().and_then(|t| t.window(change.ts(), before_n, after_n));
                let bar = |b: &BarRecord| -> Result<(DocPath, BarRecord), Error> {
                    let id = domain::market::candle::ts_id(b.ts);
                    Ok((paths::stream_bar(stream_id, &id)?, b.clone()))
                };
                let (before, mut after) = match from_tail {
                    Some((before, after)) => (
                        before.into_iter().map(bar).collect::<Result<Vec<_>, Error>>()?,
                        after.into_iter().map(bar).collect::<Result<Vec<_>, Error>>()?,
                    ),
                    None => (
                        self.window(stream_id, change.ts(), false, before_n).await?,
                        self.window(stream_id, change.ts(), true, after_n + 1).await?,
                    ),
                };
                // Fewer than asked before it: the stream holds nothing earlier (either source).
                let from_beginning = before.len() < before_n;
                let existing = match after.first() {
                    Some((path, _)) if path == bar_path => Some(after.remove(0).1),
                    _ => None,
                };
                after.truncate(after_n);
                let to_head = after.len() < after_n;
                let granularity = key.granularity;
                let changed_bar = match (&change, &existing) {
                    (CandleChange::Upsert { candle, .. }, Some(stored))
                        if stored.candle() == *candle =>
                    {
                        return Ok(Applied { unchanged: true, ..Applied::default() });
                    }
                    (CandleChange::Remove { .. }, None) => {
                        return Ok(Applied { unchanged: true, ..Applied::default() });
                    }
                    (CandleChange::Upsert { candle, .. }, _) => Some(BarRecord::of(candle)),
                    (CandleChange::Remove { .. }, Some(_)) => None,
                };
                // One candle per period: a neighbour closer than the granularity is refused.
                if let Some(bar) = &changed_bar {
                    let near = |other: &BarRecord| (other.ts - bar.ts).abs() < granularity.length();
                    if before.first().is_some_and(|(_, b)| near(b))
                        || after.first().is_some_and(|(_, b)| near(b))
                    {
                        return Ok(Applied { overlaps: true, ..Applied::default() });
                    }
                }
                let mut slice: Vec<(DocPath, BarRecord)> = before.into_iter().rev().collect();
                if let Some(bar) = &changed_bar {
                    slice.push((bar_path.clone(), bar.clone()));
                }
                slice.extend(after);
                let bars: Vec<Bar> =
                    slice.iter().map(|(_, b)| Bar { ts: b.ts, close: b.c }).collect();
                let window = Slice { bars, from_beginning, to_head };
                let mut applied = Applied::default();
                if changed_bar.is_none() {
                    tx.delete(bar_path);
                    applied.bars_written += 1;
                }
                // The slice as stored after this commit (for the tail).
                let mut stored_after: Vec<BarRecord> =
                    slice.iter().map(|(_, b)| b.clone()).collect();
                let mut wrote_changed = false;
                for (i, derived) in recompute(&window, change.ts(), policy, granularity) {
                    let (path, stored) = &slice[i];
                    let is_changed = path == bar_path;
                    if !is_changed && stored.derived() == derived {
                        continue;
                    }
                    if derived.label.is_some() && stored.label.is_none() {
                        applied.labels_resolved += 1;
                    }
                    let record = stored.with(derived);
                    tx.set(path, &record)?;
                    stored_after[i] = record;
                    applied.bars_written += 1;
                    wrote_changed |= is_changed;
                }
                // The changed candle is stored even if its own results cannot be known yet.
                if let Some(bar) = changed_bar.as_ref().filter(|_| !wrote_changed) {
                    tx.set(bar_path, bar)?;
                    applied.bars_written += 1;
                }
                let next = next_tail(
                    tail.as_ref(),
                    change.ts(),
                    stored_after,
                    (from_beginning, to_head),
                    cap,
                );
                if let Some(next) = next {
                    tx.set(tail_path, &next)?;
                }
                let mut record = health.unwrap_or_else(|| HealthRecord::new(key, priority, now));
                record.priority = priority;
                if let Some(bar) = &changed_bar {
                    record.last_candle_at =
                        Some(record.last_candle_at.map_or(bar.ts, |t| t.max(bar.ts)));
                }
                let written_at = change.written_at();
                record.last_arrival_at =
                    Some(record.last_arrival_at.map_or(written_at, |t| t.max(written_at)));
                record.lag_ms = Some((now - written_at).num_milliseconds().max(0));
                record.processed += 1;
                record.updated_at = now;
                tx.set(health_path, &record)?;
                Ok::<_, Error>(applied)
            })
        })
        .await
    }

    /// Up to `limit` stored bars of the stream strictly before `ts` (latest first), or from
    /// `ts` on (earliest first), by their `ts` field (RFC 3339, whole seconds, fixed width: it
    /// sorts as the times do; a single-field index, which Firestore keeps by default).
    async fn window(
        &self,
        stream_id: &str,
        ts: DateTime<Utc>,
        from: bool,
        limit: usize,
    ) -> Result<Vec<(DocPath, BarRecord)>, Error> {
        let root = self.db.documents_root();
        let parent = paths::stream(stream_id)?.full_name(root);
        let mut query = rpc::from(paths::names::BARS, false);
        let (op, order) = if from {
            (field_filter::Operator::GreaterThanOrEqual, rpc::asc(TS))
        } else {
            (field_filter::Operator::LessThan, rpc::desc(TS))
        };
        let at = domain::market::candle::ts_id(ts);
        query.r#where = Some(rpc::filter(TS, op, rpc::string(&at)));
        query.order_by = vec![order];
        query.limit = Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        let docs = rpc::run(&self.db, parent, query).await?;
        docs.iter().map(|doc| self.bar_of(stream_id, doc)).collect()
    }

    fn bar_of(&self, stream_id: &str, doc: &Document) -> Result<(DocPath, BarRecord), Error> {
        let path = paths::stream_bar(stream_id, rpc::doc_id(doc))?;
        let bar = decode(&path, doc)?;
        Ok((path, bar))
    }

    /// The candle document `candles/{instrument}/{granularity}/{ts_id}` as it is now.
    pub async fn candle(
        &self,
        key: &StreamKey,
        ts_id: &str,
    ) -> Result<Option<CandleDocument>, Error> {
        let path = paths::candle(&key.instrument, key.granularity.as_str(), ts_id)?;
        self.db.get(&path).await
    }

    /// Writes a candle document (what a market-data feed does; devstack and tests).
    pub async fn write_candle(
        &self,
        key: &StreamKey,
        doc: &CandleDocument,
        ts_id: &str,
    ) -> Result<(), Error> {
        let path = paths::candle(&key.instrument, key.granularity.as_str(), ts_id)?;
        self.db.set(&path, doc).await
    }

    /// Every stored bar of the stream in time order, at most `limit` (tests, operators).
    pub async fn bars(&self, key: &StreamKey, limit: usize) -> Result<Vec<BarRecord>, Error> {
        let stream_id = key.id();
        let root = self.db.documents_root();
        let parent = paths::stream(&stream_id)?.full_name(root);
        let mut query = rpc::from(paths::names::BARS, false);
        query.order_by = vec![rpc::asc(NAME)];
        query.limit = Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        let docs = rpc::run(&self.db, parent, query).await?;
        docs.iter().map(|doc| Ok(self.bar_of(&stream_id, doc)?.1)).collect()
    }

    /// The health documents of `streams`, in the order asked (`None` for one never seen), in
    /// one round trip.
    pub async fn health(&self, streams: &[StreamKey]) -> Result<Vec<Option<HealthRecord>>, Error> {
        let paths: Vec<DocPath> =
            streams.iter().map(|k| paths::stream_health(&k.id())).collect::<Result<_, _>>()?;
        let names = paths.iter().map(|p| p.full_name(self.db.documents_root())).collect();
        let docs = rpc::batch_get(&self.db, names).await?;
        paths
            .iter()
            .zip(docs)
            .map(|(path, doc)| doc.map(|doc| decode(path, &doc)).transpose())
            .collect()
    }

    /// Counts a dead-lettered candle of the stream in its health (created when the stream was
    /// never seen): one read, one write.
    pub async fn count_failure(
        &self,
        key: &StreamKey,
        priority: Priority,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let path = paths::stream_health(&key.id())?;
        let path = &path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let mut record = tx
                        .get::<HealthRecord>(path)
                        .await?
                        .unwrap_or_else(|| HealthRecord::new(key, priority, now));
                    record.failed += 1;
                    record.updated_at = now;
                    tx.set(path, &record)?;
                    Ok::<_, Error>(())
                })
            })
            .await
    }

    /// The health job's step for one stream at `now`: reads its health (creating it when the
    /// stream was never seen), lets `decide` pick the transition from the record, stores it,
    /// and answers the alert to announce (a new transition's, or one an earlier run stored but
    /// could not announce).
    pub async fn check_health<F>(
        &self,
        key: &StreamKey,
        priority: Priority,
        now: DateTime<Utc>,
        decide: F,
    ) -> Result<(HealthRecord, Option<PendingAlert>), Error>
    where
        F: Fn(&HealthRecord) -> Option<StreamAlertKind> + Send + Sync,
    {
        let path = paths::stream_health(&key.id())?;
        let (path, decide) = (&path, &decide);
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let stored = tx.get::<HealthRecord>(path).await?;
                    let fresh = stored.is_none();
                    let mut record =
                        stored.unwrap_or_else(|| HealthRecord::new(key, priority, now));
                    record.priority = priority;
                    let Some(kind) = decide(&record) else {
                        if fresh {
                            tx.set(path, &record)?;
                        }
                        let pending = record.pending_alert.clone();
                        return Ok::<_, Error>((record, pending));
                    };
                    match kind {
                        StreamAlertKind::Silent => {
                            record.status = StreamStatus::Silent;
                            record.silent_since = Some(now);
                        }
                        StreamAlertKind::Recovered => {
                            record.status = StreamStatus::Healthy;
                            record.silent_since = None;
                        }
                    }
                    let alert = PendingAlert { kind, detected_at: now };
                    record.pending_alert = Some(alert.clone());
                    record.updated_at = now;
                    tx.set(path, &record)?;
                    Ok((record, Some(alert)))
                })
            })
            .await
    }

    /// Clears the stored pending alert once announced (unless a newer one replaced it).
    pub async fn alert_sent(&self, key: &StreamKey, sent: &PendingAlert) -> Result<(), Error> {
        let path = paths::stream_health(&key.id())?;
        let path = &path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    if let Some(mut record) = tx.get::<HealthRecord>(path).await?
                        && record.pending_alert.as_ref() == Some(sent)
                    {
                        record.pending_alert = None;
                        tx.set(path, &record)?;
                    }
                    Ok::<_, Error>(())
                })
            })
            .await
    }

    /// The dead letters recorded by `source` (`"market-stream POST /"`), at most `limit`.
    pub async fn dead_letters(&self, source: &str, limit: usize) -> Result<Vec<DeadLetter>, Error> {
        let mut query = rpc::from(paths::names::DEAD_LETTERS, false);
        query.r#where = Some(rpc::eq("source", rpc::string(source)));
        query.limit = Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        let docs = rpc::run(&self.db, self.db.documents_root().to_owned(), query).await?;
        docs.iter().map(|doc| decode(&paths::dead_letter(rpc::doc_id(doc))?, doc)).collect()
    }

    /// Deletes the dead letter `id` (after a successful replay).
    pub async fn forget_dead_letter(&self, id: &str) -> Result<(), Error> {
        self.db.delete(&crate::DeadLetters::path(id)?).await
    }
}
