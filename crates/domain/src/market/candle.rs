//! Candles and streams: the validated shape of one candle (`o h l c v ts bid ask complete`),
//! the granularities a stream may have, and the stream key `{instrument}_{granularity}`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// The granularities a stream may have (OANDA's names): minutes, hours, a day, a week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Granularity {
    /// One minute (for tests and demos).
    M1,
    /// Five minutes.
    M5,
    /// Fifteen minutes.
    M15,
    /// Thirty minutes.
    M30,
    /// One hour.
    H1,
    /// Four hours.
    H4,
    /// One day.
    D,
    /// One week.
    W,
}

impl Granularity {
    /// Every granularity, shortest first.
    pub const ALL: [Granularity; 8] = [
        Granularity::M1,
        Granularity::M5,
        Granularity::M15,
        Granularity::M30,
        Granularity::H1,
        Granularity::H4,
        Granularity::D,
        Granularity::W,
    ];

    /// The length of one candle, in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Granularity::M1 => 60,
            Granularity::M5 => 300,
            Granularity::M15 => 900,
            Granularity::M30 => 1_800,
            Granularity::H1 => 3_600,
            Granularity::H4 => 14_400,
            Granularity::D => 86_400,
            Granularity::W => 604_800,
        }
    }

    /// The length of one candle.
    pub fn length(self) -> TimeDelta {
        TimeDelta::seconds(self.seconds())
    }

    /// The name used in paths and configuration (`H1`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Granularity::M1 => "M1",
            Granularity::M5 => "M5",
            Granularity::M15 => "M15",
            Granularity::M30 => "M30",
            Granularity::H1 => "H1",
            Granularity::H4 => "H4",
            Granularity::D => "D",
            Granularity::W => "W",
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = CandleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Granularity::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| CandleError::UnknownGranularity(s.to_owned()))
    }
}

/// Whether `s` may name an instrument: 3 to 32 characters of `A-Z`, `0-9` and `_`, starting
/// with a letter (`EUR_USD`, `XAU_USD`, `SPX500_USD`).
pub fn valid_instrument(s: &str) -> bool {
    (3..=32).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// One stream: an instrument at a granularity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// `EUR_USD`
    pub instrument: String,
    /// `H1`
    pub granularity: Granularity,
}

impl StreamKey {
    /// The stream of `instrument` at `granularity`, if the instrument name is valid.
    pub fn new(instrument: &str, granularity: Granularity) -> Result<Self, CandleError> {
        if !valid_instrument(instrument) {
            return Err(CandleError::BadInstrument(instrument.to_owned()));
        }
        Ok(Self { instrument: instrument.to_owned(), granularity })
    }

    /// `{instrument}_{granularity}`: the `stream_health/{streamId}` and `streams/{streamId}`
    /// document id (`EUR_USD_H1`).
    pub fn id(&self) -> String {
        format!("{}_{}", self.instrument, self.granularity)
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.instrument, self.granularity)
    }
}

/// The document id of the candle starting at `ts`: RFC 3339 in UTC with whole seconds
/// (`2026-01-05T13:00:00Z`), fixed width, so ids sort as times do.
pub fn ts_id(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The start time a candle document id names; only the canonical form of [`ts_id`] is accepted
/// (a second spelling of the same time would be a second document of the same candle).
pub fn parse_ts_id(id: &str) -> Result<DateTime<Utc>, CandleError> {
    let ts = DateTime::parse_from_rfc3339(id)
        .map_err(|_| CandleError::BadTimestamp(id.to_owned()))?
        .with_timezone(&Utc);
    if ts_id(ts) != id {
        return Err(CandleError::BadTimestamp(id.to_owned()));
    }
    Ok(ts)
}

/// A candle as written: open, high, low, close, volume, optional bid and ask, and whether the
/// period is over (`complete`). Only complete candles are processed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candle {
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
    /// Volume (ticks or units).
    pub v: f64,
    /// Bid at the close, if the feed gives it.
    #[serde(default)]
    pub bid: Option<f64>,
    /// Ask at the close, if the feed gives it.
    #[serde(default)]
    pub ask: Option<f64>,
    /// The period is over and the values are final (until a correction).
    pub complete: bool,
}

impl Candle {
    /// Checks that the prices are possible: every number finite, prices positive, volume not
    /// negative, `h >= max(o, c)`, `l <= min(o, c)` (so `h >= l`), and `bid <= ask` when both
    /// are given. A failure can never be fixed by retrying: the candle is dead-lettered.
    pub fn validate(&self) -> Result<(), CandleError> {
        let named = [("o", self.o), ("h", self.h), ("l", self.l), ("c", self.c)];
        for (name, value) in named {
            if !value.is_finite() || value <= 0.0 {
                return Err(CandleError::Impossible(format!(
                    "{name} = {value} is not a positive price"
                )));
            }
        }
        if !self.v.is_finite() || self.v < 0.0 {
            return Err(CandleError::Impossible(format!("v = {} is not a volume", self.v)));
        }
        if self.h < self.l {
            return Err(CandleError::Impossible(format!("h {} < l {}", self.h, self.l)));
        }
        if self.h < self.o.max(self.c) {
            return Err(CandleError::Impossible(format!(
                "h {} below max(o, c) {}",
                self.h,
                self.o.max(self.c)
            )));
        }
        if self.l > self.o.min(self.c) {
            return Err(CandleError::Impossible(format!(
                "l {} above min(o, c) {}",
                self.l,
                self.o.min(self.c)
            )));
        }
        for (name, value) in [("bid", self.bid), ("ask", self.ask)] {
            if let Some(value) = value
                && (!value.is_finite() || value <= 0.0)
            {
                return Err(CandleError::Impossible(format!(
                    "{name} = {value} is not a positive price"
                )));
            }
        }
        if let (Some(bid), Some(ask)) = (self.bid, self.ask)
            && bid > ask
        {
            return Err(CandleError::Impossible(format!("bid {bid} > ask {ask}")));
        }
        Ok(())
    }

    /// Whether `other` carries the same values (a rewrite that changes nothing). Prices are
    /// compared exactly: a correction by one ulp is still a correction.
    pub fn same_values(&self, other: &Candle) -> bool {
        self == other
    }
}

/// Why a candle or stream name cannot be processed (never fixed by retrying).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandleError {
    /// Prices that cannot happen (`h < l`, a negative price, `bid > ask`, ...).
    #[error("impossible candle: {0}")]
    Impossible(String),
    /// A document id that is not a canonical candle start time.
    #[error("not a canonical candle timestamp: {0:?}")]
    BadTimestamp(String),
    /// A granularity not in [`Granularity::ALL`].
    #[error("unknown granularity {0:?}")]
    UnknownGranularity(String),
    /// An instrument name that is not of the accepted form.
    #[error("not an instrument name: {0:?}")]
    BadInstrument(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn candle(o: f64, h: f64, l: f64, c: f64) -> Candle {
        Candle {
            ts: Utc.with_ymd_and_hms(2026, 1, 5, 13, 0, 0).unwrap(),
            o,
            h,
            l,
            c,
            v: 10.0,
            bid: Some(c - 0.0001),
            ask: Some(c + 0.0001),
            complete: true,
        }
    }

    #[test]
    fn possible_candles_pass_and_impossible_ones_say_why() {
        assert_eq!(candle(1.1, 1.2, 1.0, 1.15).validate(), Ok(()));
        // A doji: every price equal.
        assert_eq!(candle(1.1, 1.1, 1.1, 1.1).validate(), Ok(()));
        for (bad, why) in [
            (candle(1.1, 1.0, 1.2, 1.1), "h 1 < l 1.2"),
            (candle(1.1, 1.12, 1.0, 1.15), "h 1.12 below max(o, c) 1.15"),
            (candle(1.1, 1.2, 1.11, 1.15), "l 1.11 above min(o, c) 1.1"),
            (candle(-1.0, 1.2, 1.0, 1.15), "o = -1 is not a positive price"),
            (candle(f64::NAN, 1.2, 1.0, 1.15), "o = NaN is not a positive price"),
            (candle(1.1, f64::INFINITY, 1.0, 1.15), "h = inf is not a positive price"),
        ] {
            assert_eq!(bad.validate(), Err(CandleError::Impossible(why.to_owned())));
        }
        let mut crossed = candle(1.1, 1.2, 1.0, 1.15);
        crossed.bid = Some(1.16);
        crossed.ask = Some(1.15);
        assert_eq!(
            crossed.validate(),
            Err(CandleError::Impossible("bid 1.16 > ask 1.15".to_owned()))
        );
        let mut no_quotes = candle(1.1, 1.2, 1.0, 1.15);
        no_quotes.bid = None;
        no_quotes.ask = None;
        assert_eq!(no_quotes.validate(), Ok(()));
        let mut negative_volume = candle(1.1, 1.2, 1.0, 1.15);
        negative_volume.v = -1.0;
        assert!(negative_volume.validate().is_err());
    }

    #[test]
    fn candle_ids_are_canonical_times_that_sort_as_times() {
        let ts = Utc.with_ymd_and_hms(2026, 1, 5, 13, 0, 0).unwrap();
        assert_eq!(ts_id(ts), "2026-01-05T13:00:00Z");
        assert_eq!(parse_ts_id("2026-01-05T13:00:00Z"), Ok(ts));
        for other in ["2026-01-05T13:00:00+00:00", "2026-01-05T13:00:00.000Z", "1767618000", ""] {
            assert!(parse_ts_id(other).is_err(), "{other}");
        }
        let earlier = ts_id(ts - TimeDelta::hours(30));
        assert!(earlier < ts_id(ts));
    }

    #[test]
    fn streams_and_granularities_have_one_spelling() {
        for g in Granularity::ALL {
            assert_eq!(g.as_str().parse::<Granularity>(), Ok(g));
        }
        assert!("H2".parse::<Granularity>().is_err());
        let key = StreamKey::new("EUR_USD", Granularity::H1).unwrap();
        assert_eq!(key.id(), "EUR_USD_H1");
        for bad in ["eur_usd", "E", "EUR/USD", "1EUR", "EUR USD"] {
            assert!(StreamKey::new(bad, Granularity::H1).is_err(), "{bad}");
        }
    }
}
