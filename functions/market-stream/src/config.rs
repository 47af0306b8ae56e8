//! The market-stream function's configuration: the shared [`BaseConfig`] plus the streams
//! (instruments x granularities, each with a priority), the priority budgets, the silence grace
//! period and the feature policy, all validated at start-up (a bad value stops the process
//! naming the variable).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeDelta;
use domain::market::{Budgets, FeaturePolicy, Granularity, Priority, StreamKey};
use runtime::auth::PushAuth;
use runtime::metrics_auth::MetricsAuth;
use runtime::{BaseConfig, ConfigError, Env};
use store::DbConfig;

/// The instruments streamed when `HEARTH_MARKET_INSTRUMENTS` is not set.
pub const DEFAULT_INSTRUMENTS: &str = "EUR_USD,GBP_USD,USD_JPY,USD_CHF,AUD_USD";
/// The granularities streamed when `HEARTH_MARKET_GRANULARITIES` is not set.
pub const DEFAULT_GRANULARITIES: &str = "H1,H4,D,W";
/// Priorities when `HEARTH_MARKET_PRIORITIES` is not set: EUR_USD high, the rest the default.
pub const DEFAULT_PRIORITIES: &str = "EUR_USD=high";
/// Default lease on a candle event while it is processed.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Everything the function needs, checked before the first request.
#[derive(Debug, Clone)]
pub struct Config {
    /// The shared settings.
    pub base: BaseConfig,
    /// Firestore.
    pub db: DbConfig,
    /// Google OIDC of Eventarc, Cloud Scheduler and operators (`HEARTH_OIDC_ALLOWED_EMAILS`).
    pub push_auth: PushAuth,
    /// Readers of `GET /metrics/streams` (`HEARTH_METRICS_ALLOWED_EMAILS`).
    pub metrics_auth: MetricsAuth,
    /// Every stream processed, with its priority.
    pub streams: BTreeMap<StreamKey, Priority>,
    /// This instance's share of the budgets (`HEARTH_MARKET_BUDGETS`,
    /// `HEARTH_MARKET_GLOBAL_BUDGET`, divided by `HEARTH_WRITE_BUDGET_INSTANCES`).
    pub budgets: Budgets,
    /// `HEARTH_MARKET_SILENCE_GRACE_SECS` (default 600).
    pub grace: TimeDelta,
    /// Features and labels.
    pub policy: FeaturePolicy,
    /// `HEARTH_MARKET_LEASE_SECS` (default 60).
    pub lease: Duration,
}

impl Config {
    /// From `env` (tests pass a map), on top of `base`.
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        let push_auth = PushAuth::from_config(&base)?;
        let metrics_auth = MetricsAuth::from_config(&base);
        let streams = streams(env)?;
        let budgets = budgets(env)?.shared_by(base.write_budget_instances);
        let grace = env.secs_or("HEARTH_MARKET_SILENCE_GRACE_SECS", Duration::from_secs(600))?;
        let grace = TimeDelta::from_std(grace).map_err(|_| {
            ConfigError::invalid("HEARTH_MARKET_SILENCE_GRACE_SECS", "a number of seconds", "")
        })?;
        let policy = policy(env)?;
        let lease = env.positive_secs_or("HEARTH_MARKET_LEASE_SECS", DEFAULT_LEASE)?;
        Ok(Self { base, db, push_auth, metrics_auth, streams, budgets, grace, policy, lease })
    }

    /// The priority of a configured stream; `None` for a stream not configured.
    pub fn priority(&self, key: &StreamKey) -> Option<Priority> {
        self.streams.get(key).copied()
    }
}

fn listed(env: &Env, var: &str, default: &str) -> Vec<String> {
    let list = env.list(var);
    if list.is_empty() && !env.is_set(var) {
        return default.split(',').map(str::to_owned).collect();
    }
    list
}

/// `HEARTH_MARKET_INSTRUMENTS` x `HEARTH_MARKET_GRANULARITIES`, with priorities from
/// `HEARTH_MARKET_PRIORITIES` (`KEY=priority` pairs, a key naming an instrument or a stream
/// `{instrument}_{granularity}`, the stream winning) and `HEARTH_MARKET_DEFAULT_PRIORITY`
/// (default `medium`).
fn streams(env: &Env) -> Result<BTreeMap<StreamKey, Priority>, ConfigError> {
    const INSTRUMENTS: &str = "HEARTH_MARKET_INSTRUMENTS";
    const GRANULARITIES: &str = "HEARTH_MARKET_GRANULARITIES";
    const PRIORITIES: &str = "HEARTH_MARKET_PRIORITIES";
    let instruments = listed(env, INSTRUMENTS, DEFAULT_INSTRUMENTS);
    let granularities = listed(env, GRANULARITIES, DEFAULT_GRANULARITIES);
    if instruments.is_empty() {
        return Err(ConfigError::refused(INSTRUMENTS, "must name at least one instrument"));
    }
    if granularities.is_empty() {
        return Err(ConfigError::refused(GRANULARITIES, "must name at least one granularity"));
    }
    let granularities: Vec<Granularity> = granularities
        .iter()
        .map(|g| {
            g.parse().map_err(|_| {
                ConfigError::invalid(GRANULARITIES, "M1, M5, M15, M30, H1, H4, D or W", g)
            })
        })
        .collect::<Result<_, _>>()?;
    let default: Priority = env.parse_or(
        "HEARTH_MARKET_DEFAULT_PRIORITY",
        "critical, high, medium or low",
        Priority::Medium,
    )?;
    let mut streams = BTreeMap::new();
    for instrument in &instruments {
        for g in &granularities {
            let key = StreamKey::new(instrument, *g).map_err(|_| {
                ConfigError::invalid(INSTRUMENTS, "instrument names like EUR_USD", instrument)
            })?;
            streams.insert(key, default);
        }
    }
    let pairs = match env.string(PRIORITIES) {
        Some(text) => text,
        None => DEFAULT_PRIORITIES.to_owned(),
    };
    let mut by_instrument = Vec::new();
    let mut by_stream = Vec::new();
    for pair in pairs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, priority) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::invalid(PRIORITIES, "KEY=priority pairs", pair))?;
        let priority: Priority = priority
            .parse()
            .map_err(|_| ConfigError::invalid(PRIORITIES, "critical, high, medium or low", pair))?;
        let key = key.trim();
        if let Some(stream) = streams.keys().find(|k| k.id() == key) {
            by_stream.push((stream.clone(), priority));
        } else if instruments.iter().any(|i| i == key) {
            by_instrument.push((key.to_owned(), priority));
        } else if env.is_set(PRIORITIES) {
            return Err(ConfigError::invalid(
                PRIORITIES,
                "keys naming a configured instrument or stream",
                key,
            ));
        }
    }
    for (instrument, priority) in by_instrument {
        for (key, p) in &mut streams {
            if key.instrument == instrument {
                *p = priority;
            }
        }
    }
    for (key, priority) in by_stream {
        streams.insert(key, priority);
    }
    Ok(streams)
}

/// `HEARTH_MARKET_BUDGETS` (four numbers, candles per minute for critical, high, medium and
/// low; default `500,200,100,50`) and `HEARTH_MARKET_GLOBAL_BUDGET` (default 1000).
fn budgets(env: &Env) -> Result<Budgets, ConfigError> {
    const VAR: &str = "HEARTH_MARKET_BUDGETS";
    let mut budgets = Budgets::default();
    if let Some(text) = env.string(VAR) {
        let numbers: Vec<f64> = text
            .split(',')
            .map(|n| n.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| ConfigError::invalid(VAR, "four positive numbers", &text))?;
        if numbers.len() != 4 || numbers.iter().any(|n| !(n.is_finite() && *n > 0.0)) {
            return Err(ConfigError::invalid(VAR, "four positive numbers", &text));
        }
        budgets.per_priority.copy_from_slice(&numbers);
    }
    let global: f64 =
        env.parse_or("HEARTH_MARKET_GLOBAL_BUDGET", "a positive number", budgets.global)?;
    if !(global.is_finite() && global > 0.0) {
        return Err(ConfigError::invalid(
            "HEARTH_MARKET_GLOBAL_BUDGET",
            "a positive number",
            &global.to_string(),
        ));
    }
    budgets.global = global;
    Ok(budgets)
}

/// `HEARTH_MARKET_VOL_SPAN` (20), `HEARTH_MARKET_VOL_WINDOW` (50), `HEARTH_MARKET_PROFIT_TAKE`
/// (1), `HEARTH_MARKET_STOP_LOSS` (1), `HEARTH_MARKET_VERTICAL_CANDLES` (10).
fn policy(env: &Env) -> Result<FeaturePolicy, ConfigError> {
    let d = FeaturePolicy::default();
    let policy = FeaturePolicy {
        span: env.parse_or("HEARTH_MARKET_VOL_SPAN", "a number >= 1", d.span)?,
        window: env.parse_or("HEARTH_MARKET_VOL_WINDOW", "a whole number >= 2", d.window)?,
        profit_take: env.parse_or("HEARTH_MARKET_PROFIT_TAKE", "a number >= 0", d.profit_take)?,
        stop_loss: env.parse_or("HEARTH_MARKET_STOP_LOSS", "a number >= 0", d.stop_loss)?,
        vertical: env.parse_or(
            "HEARTH_MARKET_VERTICAL_CANDLES",
            "a whole number >= 1",
            d.vertical,
        )?,
    };
    policy.check().map_err(|why| ConfigError::refused("HEARTH_MARKET_VOL_WINDOW", why))?;
    if policy.window > 200 || policy.vertical > 200 {
        return Err(ConfigError::refused(
            "HEARTH_MARKET_VOL_WINDOW",
            "window and vertical barrier must stay within 200 candles (one commit rewrites them)",
        ));
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let base = BaseConfig::from_map(map.clone())?;
        Config::load(base, &Env::from_map(map))
    }

    const GOOD: [(&str, &str); 3] = [
        ("GOOGLE_CLOUD_PROJECT", "demo-p"),
        ("HEARTH_OIDC_AUDIENCE", "https://market-stream.example.run.app/"),
        ("HEARTH_OIDC_ALLOWED_EMAILS", "eventarc@demo-p.iam.gserviceaccount.com"),
    ];

    fn key(s: &str, g: Granularity) -> StreamKey {
        StreamKey::new(s, g).unwrap()
    }

    #[test]
    fn defaults_are_five_instruments_at_four_granularities() {
        let config = load(&GOOD).unwrap();
        assert_eq!(config.streams.len(), 20);
        assert_eq!(config.priority(&key("EUR_USD", Granularity::H1)), Some(Priority::High));
        assert_eq!(config.priority(&key("GBP_USD", Granularity::W)), Some(Priority::Medium));
        assert_eq!(config.priority(&key("EUR_USD", Granularity::M1)), None);
        assert_eq!(config.budgets, Budgets::default());
        assert_eq!(config.grace, TimeDelta::seconds(600));
        assert_eq!(config.policy, FeaturePolicy::default());
    }

    #[test]
    fn overrides_are_read_and_errors_name_the_variable() {
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("HEARTH_MARKET_INSTRUMENTS", "EUR_USD,XAU_USD"),
            ("HEARTH_MARKET_GRANULARITIES", "M1,H1"),
            ("HEARTH_MARKET_PRIORITIES", "EUR_USD=critical,XAU_USD_M1=low"),
            ("HEARTH_MARKET_BUDGETS", "6,4,2,1"),
            ("HEARTH_MARKET_GLOBAL_BUDGET", "10"),
            ("HEARTH_WRITE_BUDGET_INSTANCES", "2"),
        ]);
        let config = load(&vars).unwrap();
        assert_eq!(config.streams.len(), 4);
        assert_eq!(config.priority(&key("EUR_USD", Granularity::M1)), Some(Priority::Critical));
        assert_eq!(config.priority(&key("XAU_USD", Granularity::M1)), Some(Priority::Low));
        assert_eq!(config.priority(&key("XAU_USD", Granularity::H1)), Some(Priority::Medium));
        assert_eq!(config.budgets.per_priority, [3.0, 2.0, 1.0, 0.5]);
        assert_eq!(config.budgets.global, 5.0);
        for (var, bad) in [
            ("HEARTH_MARKET_INSTRUMENTS", "eur/usd"),
            ("HEARTH_MARKET_GRANULARITIES", "H2"),
            ("HEARTH_MARKET_PRIORITIES", "EUR_USD=urgent"),
            ("HEARTH_MARKET_PRIORITIES", "BTC_USD=high"),
            ("HEARTH_MARKET_PRIORITIES", "EUR_USD"),
            ("HEARTH_MARKET_BUDGETS", "1,2,3"),
            ("HEARTH_MARKET_BUDGETS", "1,2,3,-4"),
            ("HEARTH_MARKET_GLOBAL_BUDGET", "0"),
            ("HEARTH_MARKET_SILENCE_GRACE_SECS", "soon"),
            ("HEARTH_MARKET_VOL_WINDOW", "1"),
            ("HEARTH_MARKET_LEASE_SECS", "0"),
        ] {
            let mut vars = GOOD.to_vec();
            vars.push((var, bad));
            assert_eq!(load(&vars).unwrap_err().var(), var, "{var}={bad}");
        }
    }
}
