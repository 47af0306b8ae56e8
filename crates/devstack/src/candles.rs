//! `devstack candles`: writes synthetic market-data candles into the running stack's Firestore
//! emulator, as a market-data feed writes them (`candles/{instrument}/{granularity}/{ts}`,
//! through `store::market`), so the Eventarc bridge delivers them to market-stream and the
//! pipeline runs visibly. The series is a random walk of the log price with occasional jumps,
//! deterministic for a seed; options leave gaps (periods without a candle) and write impossible
//! candles (`h < l`) that market-stream dead-letters. Also used by the demo's market stage and
//! the benchmark (`scripts/bench-market-stream.sh`).

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use chrono::{DateTime, TimeDelta, Utc};
use domain::market::candle::ts_id;
use domain::market::{Candle, Granularity, StreamKey};
use store::Db;
use store::market::{CandleDocument, Market};

/// What to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Streams' instruments.
    pub instruments: Vec<String>,
    /// Their granularity.
    pub granularity: Granularity,
    /// Candles per instrument.
    pub count: usize,
    /// Candles written per second over all instruments (0: as fast as Firestore takes them).
    pub rate: f64,
    /// Start time of the first candle.
    pub start: DateTime<Utc>,
    /// One period in `gap_every` is left without a candle (0: none).
    pub gap_every: usize,
    /// One candle in `bad_every` is impossible (0: none).
    pub bad_every: usize,
    /// The random walk's seed.
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    /// Candles written, impossible ones included.
    pub candles: usize,
    /// Of them, impossible.
    pub bad: usize,
    /// Periods skipped.
    pub gaps: usize,
    /// Wall time of the writes.
    pub elapsed: Duration,
    /// `(stream, ts id, write time)` of every candle, in write order.
    pub log: Vec<(StreamKey, String, Instant)>,
}

/// A small deterministic generator (SplitMix64): no dependency, same series for a seed.
#[derive(Debug, Clone)]
pub struct Walk {
    state: u64,
}

impl Walk {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (sum of four uniforms, centred and scaled).
    pub fn normal(&mut self, sd: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0;
        s * sd * (3.0f64).sqrt()
    }
}

/// The candles of one instrument: `(candle, impossible?)`, gaps already left out.
pub fn series(plan: &Plan, instrument_index: usize) -> (Vec<(Candle, bool)>, usize) {
    let mut walk = Walk::new(plan.seed.wrapping_add(instrument_index as u64 * 7919));
    let mut price = 1.0 + 0.1 * instrument_index as f64;
    let mut out = Vec::with_capacity(plan.count);
    let mut gaps = 0;
    let mut period: i64 = 0;
    while out.len() < plan.count {
        let ts = plan.start + plan.granularity.length() * i32::try_from(period).unwrap_or(i32::MAX);
        period += 1;
        if plan.gap_every > 0 && period % plan.gap_every as i64 == 0 {
            gaps += 1;
            continue;
        }
        let mut shock = walk.normal(0.0015);
        if walk.uniform() < 0.03 {
            shock += if walk.uniform() < 0.5 { -0.008 } else { 0.008 };
        }
        let open = price;
        price *= shock.exp();
        let (hi, lo) = (open.max(price), open.min(price));
        let bad = plan.bad_every > 0 && out.len() % plan.bad_every == plan.bad_every - 1;
        let mut candle = Candle {
            ts,
            o: open,
            h: hi * (1.0 + walk.uniform() * 0.0005),
            l: lo * (1.0 - walk.uniform() * 0.0005),
            c: price,
            v: (50.0 + walk.uniform() * 5000.0).round(),
            bid: Some(price * 0.99995),
            ask: Some(price * 1.00005),
            complete: true,
        };
        if bad {
            candle.h = candle.l * 0.999;
        }
        out.push((candle, bad));
    }
    (out, gaps)
}

/// Writes `plan`'s candles into `db`, instruments interleaved, paced at `plan.rate`.
pub async fn write(db: &Db, plan: &Plan) -> anyhow::Result<Written> {
    ensure!(!plan.instruments.is_empty(), "name at least one instrument");
    let market = Market::new(db);
    let mut streams = Vec::new();
    let mut written = Written::default();
    for (i, instrument) in plan.instruments.iter().enumerate() {
        let key = StreamKey::new(instrument, plan.granularity)
            .with_context(|| format!("instrument {instrument}"))?;
        let (candles, gaps) = series(plan, i);
        written.gaps += gaps;
        streams.push((key, candles));
    }
    let started = Instant::now();
    let interval = (plan.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / plan.rate));
    for n in 0..plan.count {
        for (key, candles) in &streams {
            let (candle, bad) = &candles[n];
            if let Some(interval) = interval {
                let due = started + interval * u32::try_from(written.candles).unwrap_or(u32::MAX);
                tokio::time::sleep_until(due.into()).await;
            }
            let id = ts_id(candle.ts);
            market.write_candle(key, &CandleDocument::of(candle), &id).await?;
            written.log.push((key.clone(), id, Instant::now()));
            written.candles += 1;
            written.bad += usize::from(*bad);
        }
    }
    written.elapsed = started.elapsed();
    Ok(written)
}

/// The default start: whole hours, `count` periods before now (so every candle is in the past).
pub fn default_start(granularity: Granularity, count: usize) -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    let hour = now - now.rem_euclid(3_600);
    let back = granularity.seconds() * i64::try_from(count + 1).unwrap_or(i64::MAX / 2);
    DateTime::from_timestamp(hour - back, 0).unwrap_or_else(Utc::now) - TimeDelta::zero()
}

/// How fast a pipeline turned candles into bars, read from Firestore's own timestamps: a
/// candle's latency is its bar's create time minus the candle's update time (a bar is created
/// when its candle is processed; a label resolved later updates it without moving its create
/// time), and the throughput is the candles over the time from the first candle's write to the
/// last bar's creation. Both clocks are the emulator's, so any pipeline writing bars under
/// `streams/{stream}/bars/{ts}` (market-stream, or the Python peer of the benchmark) is measured
/// the same way, from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct Processing {
    /// Candles with a bar.
    pub processed: usize,
    /// Candles written.
    pub written: usize,
    /// Per candle, write to bar, sorted.
    pub latencies: Vec<Duration>,
    /// First candle written to last bar created.
    pub span: Duration,
}

impl Processing {
    /// Candles per second over [`Processing::span`].
    pub fn per_second(&self) -> f64 {
        self.processed as f64 / self.span.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of the latencies (nearest rank).
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

/// [`Processing`] from `(candle update time, bar create time)` per candle (`None`: no bar).
pub fn processing(times: &[(DateTime<Utc>, Option<DateTime<Utc>>)]) -> Processing {
    let to_duration = |d: TimeDelta| d.to_std().unwrap_or(Duration::ZERO);
    let mut latencies: Vec<Duration> =
        times.iter().filter_map(|(w, b)| b.map(|b| to_duration(b - *w))).collect();
    latencies.sort();
    let first = times.iter().map(|t| t.0).min();
    let last = times.iter().filter_map(|t| t.1).max();
    let span = match (first, last) {
        (Some(first), Some(last)) => to_duration(last - first),
        _ => Duration::ZERO,
    };
    Processing { processed: latencies.len(), written: times.len(), latencies, span }
}

/// The `(candle update time, bar create time)` of every candle of `plan`'s streams in `db`.
pub async fn processing_times(
    db: &Db,
    plan: &Plan,
) -> anyhow::Result<Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>> {
    use futures::TryStreamExt as _;

    let firestore = db.firestore().await?;
    let root = db.documents_root();
    let list = |parent: String, collection: String| async move {
        let docs: Vec<_> = firestore
            .fluent()
            .list()
            .fields(["c"])
            .from(collection.as_str())
            .parent(parent)
            .page_size(1_000)
            .stream_all_with_errors()
            .await?
            .try_collect()
            .await?;
        anyhow::Ok(
            docs.into_iter()
                .filter_map(|d| {
                    let id = d.name.rsplit('/').next()?.to_owned();
                    Some((id, d.create_time?, d.update_time?))
                })
                .collect::<Vec<_>>(),
        )
    };
    let time = |t: prost_types::Timestamp| {
        DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            .context("a Firestore timestamp")
    };
    let mut out = Vec::new();
    for instrument in &plan.instruments {
        let key = StreamKey::new(instrument, plan.granularity)?;
        let candles =
            list(format!("{root}/candles/{instrument}"), plan.granularity.to_string()).await?;
        let bars: std::collections::HashMap<String, DateTime<Utc>> =
            list(format!("{root}/streams/{}", key.id()), "bars".to_owned())
                .await?
                .into_iter()
                .map(|(id, created, _)| Ok((id, time(created)?)))
                .collect::<anyhow::Result<_>>()?;
        for (id, _, updated) in candles {
            out.push((time(updated)?, bars.get(&id).copied()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            instruments: vec!["EUR_USD".to_owned()],
            granularity: Granularity::H1,
            count: 200,
            rate: 0.0,
            start: default_start(Granularity::H1, 200),
            gap_every: 10,
            bad_every: 50,
            seed: 7,
        }
    }

    #[test]
    fn processing_is_measured_from_the_write_to_the_bar() {
        let at = |ms: i64| DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap();
        let p = processing(&[
            (at(0), Some(at(100))),
            (at(10), Some(at(310))),
            (at(20), None),
            (at(30), Some(at(1_030))),
        ]);
        assert_eq!((p.processed, p.written), (3, 4));
        assert_eq!(p.latencies, [100, 300, 1_000].map(Duration::from_millis));
        assert_eq!(p.span, Duration::from_millis(1_030));
        assert_eq!(p.latency(0.5), Duration::from_millis(300));
        assert_eq!(p.latency(0.99), Duration::from_millis(1_000));
        assert!((p.per_second() - 3.0 / 1.03).abs() < 1e-9);
        assert_eq!(processing(&[]).latency(0.5), Duration::ZERO);
    }

    #[test]
    fn series_are_deterministic_with_gaps_and_the_asked_bad_candles() {
        let (a, gaps) = series(&plan(), 0);
        let (b, _) = series(&plan(), 0);
        assert_eq!(
            a.iter().map(|c| c.0).collect::<Vec<_>>(),
            b.iter().map(|c| c.0).collect::<Vec<_>>()
        );
        assert_eq!(a.len(), 200);
        assert!(gaps >= 20, "{gaps}");
        let bad: Vec<&(Candle, bool)> = a.iter().filter(|c| c.1).collect();
        assert_eq!(bad.len(), 4);
        assert!(bad.iter().all(|c| c.0.validate().is_err()));
        assert!(a.iter().filter(|c| !c.1).all(|c| c.0.validate().is_ok()));
        assert!(a.windows(2).all(|w| w[1].0.ts - w[0].0.ts >= Granularity::H1.length()));
    }
}
