//! The feed-fanout function's configuration: the shared [`BaseConfig`] plus the feed policy,
//! the write ramp and the ledger lease, all validated at start-up.

use std::time::Duration;

use domain::feed::FeedPolicy;
use domain::ramp::{RampPolicy, RampProfile};
use runtime::auth::PushAuth;
use runtime::{BaseConfig, ConfigError, Env};
use store::DbConfig;

/// Default lease on an event or task while it is processed (longer than the time budget).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(90);

/// Everything the function needs, checked before the first request.
#[derive(Debug, Clone)]
pub struct Config {
    /// The shared settings (port, project, emulators, OIDC audience and callers, ...).
    pub base: BaseConfig,
    /// Firestore: `GOOGLE_CLOUD_PROJECT` (required) and `FIRESTORE_EMULATOR_HOST`.
    pub db: DbConfig,
    /// Google OIDC verification of Eventarc and Pub/Sub push deliveries.
    pub push_auth: PushAuth,
    /// The feed numbers (see [`feed_policy`]).
    pub policy: FeedPolicy,
    /// `HEARTH_FANOUT_RAMP` (`conservative`, `default`, `aggressive`; default `default`, the
    /// 500/50/5 rule) and `HEARTH_FANOUT_RAMP_START_OPS` (overrides the start rate, e.g. for a
    /// key space known to be warm), divided among `HEARTH_WRITE_BUDGET_INSTANCES` instances.
    pub ramp: RampPolicy,
    /// `HEARTH_FANOUT_LEASE_SECS` (default 90): how long a delivery holds its id in the ledger.
    pub lease: Duration,
}

impl Config {
    /// From `env` (tests pass a map), on top of `base`.
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        let push_auth = PushAuth::from_config(&base)?;
        let policy = feed_policy(env)?;
        let profile: RampProfile = env.parse_or(
            "HEARTH_FANOUT_RAMP",
            "conservative, default or aggressive",
            RampProfile::Default,
        )?;
        let mut ramp = RampPolicy::for_profile(profile);
        if let Some(start) =
            env.parse::<f64>("HEARTH_FANOUT_RAMP_START_OPS", "a positive number")?
        {
            if !(start.is_finite() && start > 0.0) {
                return Err(ConfigError::invalid(
                    "HEARTH_FANOUT_RAMP_START_OPS",
                    "a positive number",
                    &start.to_string(),
                ));
            }
            ramp.start_ops_per_sec = start.min(ramp.max_ops_per_sec);
        }
        // The budget holds for the deployment: each instance writes its share of it.
        let ramp = ramp.shared_by(base.write_budget_instances);
        let lease = env.positive_secs_or("HEARTH_FANOUT_LEASE_SECS", DEFAULT_LEASE)?;
        Ok(Self { base, db, push_auth, policy, ramp, lease })
    }
}

/// The feed policy from `HEARTH_FEED_PAGE_SIZE` (1-1000, default 500),
/// `HEARTH_FEED_INLINE_PAGES` (default 4), `HEARTH_FEED_TIME_BUDGET_SECS` (default 30),
/// `HEARTH_FEED_HIGH_FOLLOWERS` (default 100000) and `HEARTH_FEED_TTL_SECS` (default 7 days).
pub fn feed_policy(env: &Env) -> Result<FeedPolicy, ConfigError> {
    let defaults = FeedPolicy::default();
    let page_size: u32 = env.parse_or("HEARTH_FEED_PAGE_SIZE", "1 to 1000", defaults.page_size)?;
    if !(1..=1000).contains(&page_size) {
        return Err(ConfigError::invalid(
            "HEARTH_FEED_PAGE_SIZE",
            "1 to 1000",
            &page_size.to_string(),
        ));
    }
    let inline_pages: u32 =
        env.parse_or("HEARTH_FEED_INLINE_PAGES", "a whole number", defaults.inline_pages)?;
    if inline_pages == 0 {
        return Err(ConfigError::invalid("HEARTH_FEED_INLINE_PAGES", "at least 1", "0"));
    }
    Ok(FeedPolicy {
        page_size,
        inline_pages,
        time_budget: env.positive_secs_or("HEARTH_FEED_TIME_BUDGET_SECS", defaults.time_budget)?,
        high_follower_threshold: env.parse_or(
            "HEARTH_FEED_HIGH_FOLLOWERS",
            "a whole number",
            defaults.high_follower_threshold,
        )?,
        default_ttl: env.positive_secs_or("HEARTH_FEED_TTL_SECS", defaults.default_ttl)?,
    })
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
        ("HEARTH_OIDC_AUDIENCE", "https://feed-fanout.example.run.app/"),
        ("HEARTH_OIDC_ALLOWED_EMAILS", "eventarc@demo-p.iam.gserviceaccount.com"),
    ];

    #[test]
    fn defaults_load() {
        let config = load(&GOOD).unwrap();
        assert_eq!(config.policy, FeedPolicy::default());
        assert_eq!(config.ramp, RampPolicy::default());
        assert_eq!(config.lease, DEFAULT_LEASE);
    }

    #[test]
    fn overrides_are_read_and_errors_name_the_variable() {
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("HEARTH_FEED_PAGE_SIZE", "100"),
            ("HEARTH_FEED_HIGH_FOLLOWERS", "50"),
            ("HEARTH_FANOUT_RAMP", "aggressive"),
            ("HEARTH_FANOUT_RAMP_START_OPS", "5000"),
        ]);
        let config = load(&vars).unwrap();
        assert_eq!(config.policy.page_size, 100);
        assert_eq!(config.policy.high_follower_threshold, 50);
        assert_eq!(config.ramp.start_ops_per_sec, 5000.0);
        assert_eq!(config.ramp.growth, RampPolicy::aggressive().growth);

        // Twenty instances share the manifest's profile: each starts at a twentieth of it.
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("HEARTH_FANOUT_RAMP", "conservative"),
            ("HEARTH_WRITE_BUDGET_INSTANCES", "20"),
        ]);
        let config = load(&vars).unwrap();
        assert_eq!(config.ramp, RampPolicy::conservative().shared_by(20));
        assert_eq!(config.ramp.start_ops_per_sec, 15.0);
        for (var, bad) in [
            ("HEARTH_WRITE_BUDGET_INSTANCES", "0"),
            ("HEARTH_FEED_PAGE_SIZE", "0"),
            ("HEARTH_FEED_PAGE_SIZE", "5000"),
            ("HEARTH_FEED_INLINE_PAGES", "0"),
            ("HEARTH_FEED_HIGH_FOLLOWERS", "many"),
            ("HEARTH_FANOUT_RAMP", "fast"),
            ("HEARTH_FANOUT_RAMP_START_OPS", "-1"),
            ("HEARTH_FANOUT_LEASE_SECS", "0"),
        ] {
            let mut vars = GOOD.to_vec();
            vars.push((var, bad));
            assert_eq!(load(&vars).unwrap_err().var(), var, "{var}={bad}");
        }
    }
}
