//! The pulse function's configuration: the shared [`BaseConfig`] plus the page size, the write
//! ramp, the ledger lease and the concurrency of a task, all validated at start-up.

use std::time::Duration;

use domain::ramp::{RampPolicy, RampProfile};
use runtime::auth::PushAuth;
use runtime::{BaseConfig, ConfigError, Env};
use store::DbConfig;

/// Default lease on a job run or task while it is processed.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// Everything the function needs, checked before the first request.
#[derive(Debug, Clone)]
pub struct Config {
    /// The shared settings (port, project, emulators, OIDC audience and callers, ...).
    pub base: BaseConfig,
    /// Firestore: `GOOGLE_CLOUD_PROJECT` (required) and `FIRESTORE_EMULATOR_HOST`.
    pub db: DbConfig,
    /// Google OIDC of Cloud Scheduler and of Pub/Sub push.
    pub push_auth: PushAuth,
    /// `HEARTH_PULSE_TASK_STRATEGIES` (1-100, default 20): strategies per `pulse-tasks` message.
    pub task_strategies: usize,
    /// `HEARTH_PULSE_CONCURRENCY` (1-64, default 16): (user, strategy) runs of a task in flight.
    pub concurrency: usize,
    /// `HEARTH_PULSE_RAMP` (`conservative`, `default`, `aggressive`; default `default`, the
    /// 500/50/5 rule), divided among `HEARTH_WRITE_BUDGET_INSTANCES` instances: every pulse
    /// write takes its tokens first.
    pub ramp: RampPolicy,
    /// The write limit of the start jitter: the profile's start rate for the whole deployment.
    pub jitter_write_limit: f64,
    /// `HEARTH_PULSE_LEASE_SECS` (default 120): how long a run holds its key in the ledger.
    pub lease: Duration,
}

impl Config {
    /// From `env` (tests pass a map), on top of `base`.
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        let push_auth = PushAuth::from_config(&base)?;
        let task_strategies: usize =
            env.parse_or("HEARTH_PULSE_TASK_STRATEGIES", "1 to 100", 20)?;
        if !(1..=100).contains(&task_strategies) {
            return Err(ConfigError::invalid(
                "HEARTH_PULSE_TASK_STRATEGIES",
                "1 to 100",
                &task_strategies.to_string(),
            ));
        }
        let concurrency: usize = env.parse_or("HEARTH_PULSE_CONCURRENCY", "1 to 64", 16)?;
        if !(1..=64).contains(&concurrency) {
            return Err(ConfigError::invalid(
                "HEARTH_PULSE_CONCURRENCY",
                "1 to 64",
                &concurrency.to_string(),
            ));
        }
        let profile: RampProfile = env.parse_or(
            "HEARTH_PULSE_RAMP",
            "conservative, default or aggressive",
            RampProfile::Default,
        )?;
        let whole = RampPolicy::for_profile(profile);
        let ramp = whole.shared_by(base.write_budget_instances);
        let lease = env.positive_secs_or("HEARTH_PULSE_LEASE_SECS", DEFAULT_LEASE)?;
        Ok(Self {
            base,
            db,
            push_auth,
            task_strategies,
            concurrency,
            ramp,
            jitter_write_limit: whole.start_ops_per_sec,
            lease,
        })
    }
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
        ("HEARTH_OIDC_AUDIENCE", "https://pulse.example.run.app/"),
        ("HEARTH_OIDC_ALLOWED_EMAILS", "scheduler@demo-p.iam.gserviceaccount.com"),
    ];

    #[test]
    fn defaults_and_the_shared_ramp() {
        let config = load(&GOOD).unwrap();
        assert_eq!((config.task_strategies, config.concurrency), (20, 16));
        assert_eq!(config.ramp, RampPolicy::default());
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("HEARTH_PULSE_RAMP", "conservative"),
            ("HEARTH_WRITE_BUDGET_INSTANCES", "10"),
        ]);
        let config = load(&vars).unwrap();
        assert_eq!(config.ramp, RampPolicy::conservative().shared_by(10));
        assert_eq!(config.jitter_write_limit, 300.0);
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, bad) in [
            ("HEARTH_PULSE_TASK_STRATEGIES", "0"),
            ("HEARTH_PULSE_TASK_STRATEGIES", "101"),
            ("HEARTH_PULSE_CONCURRENCY", "0"),
            ("HEARTH_PULSE_RAMP", "fast"),
            ("HEARTH_PULSE_LEASE_SECS", "0"),
        ] {
            let mut vars = GOOD.to_vec();
            vars.push((var, bad));
            assert_eq!(load(&vars).unwrap_err().var(), var, "{var}={bad}");
        }
    }
}
