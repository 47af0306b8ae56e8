//! The notifier's configuration: the shared [`BaseConfig`] plus where pushes go, who the
//! operators are, the fan-out's page, pacing and write ramp, the inbox lifetime and the ledger
//! lease, all validated at start-up.

use std::time::Duration;

use domain::notify::SendPacing;
use domain::ramp::{RampPolicy, RampProfile};
use runtime::auth::PushAuth;
use runtime::{BaseConfig, ConfigError, Env};
use store::DbConfig;

/// Default lease on an event or task while it is processed.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(90);

/// Where pushes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FcmTarget {
    /// `https://fcm.googleapis.com` with Application Default Credentials.
    Production,
    /// `HEARTH_FCM_BASE_URL`: a local FCM (the fake), no token. Refused unless the Firestore
    /// emulator is configured, so a deploy cannot be pointed at it.
    Local(String),
}

/// Everything the function needs, checked before the first request.
#[derive(Debug, Clone)]
pub struct Config {
    /// The shared settings.
    pub base: BaseConfig,
    /// Firestore.
    pub db: DbConfig,
    /// Google OIDC of Pub/Sub push, Eventarc and Scheduler deliveries.
    pub push_auth: PushAuth,
    /// Where pushes go.
    pub fcm: FcmTarget,
    /// `HEARTH_NOTIFY_OPERATORS`: the uids stream alerts notify (comma-separated).
    pub operators: Vec<String>,
    /// `HEARTH_NOTIFY_PAGE_SIZE` (1-1000, default 500): followers per continuation task.
    pub page_size: u32,
    /// `HEARTH_NOTIFY_TTL_DAYS` (default 30): inbox entries are deleted by the TTL policy after.
    pub inbox_ttl: Duration,
    /// `HEARTH_NOTIFY_PUSH_TTL_SECS` (default 86400): how long FCM keeps a push for an offline
    /// device.
    pub push_ttl: Duration,
    /// `HEARTH_NOTIFY_LEASE_SECS` (default 90): how long a delivery holds its key in the ledger,
    /// and how long a claimed deferred push is held.
    pub lease: Duration,
    /// `HEARTH_FCM_QUOTA_PER_SEC` (default 10000, FCM's 600,000 per minute) shared by
    /// `HEARTH_WRITE_BUDGET_INSTANCES` instances.
    pub pacing: SendPacing,
    /// `HEARTH_NOTIFY_SEND_CONCURRENCY` (default 32): FCM requests in flight per page.
    pub send_concurrency: usize,
    /// `HEARTH_NOTIFY_RAMP` (`conservative`, `default`, `aggressive`) and
    /// `HEARTH_NOTIFY_RAMP_START_OPS`, divided among `HEARTH_WRITE_BUDGET_INSTANCES` instances:
    /// the pace of inbox writes.
    pub ramp: RampPolicy,
    /// `HEARTH_NOTIFY_DEFERRED_BATCH` (default 200): due pushes one `deliver-deferred` page sends.
    pub deferred_batch: u32,
}

impl Config {
    /// From `env` (tests pass a map), on top of `base`.
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        let push_auth = PushAuth::from_config(&base)?;
        let fcm = match env.string("HEARTH_FCM_BASE_URL") {
            None => FcmTarget::Production,
            Some(url) if base.firestore_emulator_host.is_none() => {
                return Err(ConfigError::invalid(
                    "HEARTH_FCM_BASE_URL",
                    "unset outside the emulators (production uses FCM with ADC)",
                    &url,
                ));
            }
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(ConfigError::invalid("HEARTH_FCM_BASE_URL", "an http(s) URL", &url));
            }
            Some(url) => FcmTarget::Local(url),
        };
        let page_size: u32 = env.parse_or("HEARTH_NOTIFY_PAGE_SIZE", "1 to 1000", 500)?;
        if !(1..=1000).contains(&page_size) {
            return Err(ConfigError::invalid(
                "HEARTH_NOTIFY_PAGE_SIZE",
                "1 to 1000",
                &page_size.to_string(),
            ));
        }
        let ttl_days: u64 = env.parse_or("HEARTH_NOTIFY_TTL_DAYS", "a whole number of days", 30)?;
        if ttl_days == 0 {
            return Err(ConfigError::invalid("HEARTH_NOTIFY_TTL_DAYS", "at least 1", "0"));
        }
        let quota: f64 = env.parse_or("HEARTH_FCM_QUOTA_PER_SEC", "a positive number", 10_000.0)?;
        if !(quota.is_finite() && quota > 0.0) {
            return Err(ConfigError::invalid(
                "HEARTH_FCM_QUOTA_PER_SEC",
                "a positive number",
                &quota.to_string(),
            ));
        }
        let send_concurrency: usize =
            env.parse_or("HEARTH_NOTIFY_SEND_CONCURRENCY", "1 to 256", 32)?;
        if !(1..=256).contains(&send_concurrency) {
            return Err(ConfigError::invalid(
                "HEARTH_NOTIFY_SEND_CONCURRENCY",
                "1 to 256",
                &send_concurrency.to_string(),
            ));
        }
        let profile: RampProfile = env.parse_or(
            "HEARTH_NOTIFY_RAMP",
            "conservative, default or aggressive",
            RampProfile::Default,
        )?;
        let mut ramp = RampPolicy::for_profile(profile);
        if let Some(start) =
            env.parse::<f64>("HEARTH_NOTIFY_RAMP_START_OPS", "a positive number")?
        {
            if !(start.is_finite() && start > 0.0) {
                return Err(ConfigError::invalid(
                    "HEARTH_NOTIFY_RAMP_START_OPS",
                    "a positive number",
                    &start.to_string(),
                ));
            }
            ramp.start_ops_per_sec = start.min(ramp.max_ops_per_sec);
        }
        let instances = base.write_budget_instances;
        let deferred_batch: u32 = env.parse_or("HEARTH_NOTIFY_DEFERRED_BATCH", "1 to 1000", 200)?;
        if !(1..=1000).contains(&deferred_batch) {
            return Err(ConfigError::invalid(
                "HEARTH_NOTIFY_DEFERRED_BATCH",
                "1 to 1000",
                &deferred_batch.to_string(),
            ));
        }
        Ok(Self {
            db,
            push_auth,
            fcm,
            operators: env.list("HEARTH_NOTIFY_OPERATORS"),
            page_size,
            inbox_ttl: Duration::from_secs(ttl_days * 24 * 3600),
            push_ttl: env
                .positive_secs_or("HEARTH_NOTIFY_PUSH_TTL_SECS", Duration::from_secs(86_400))?,
            lease: env.positive_secs_or("HEARTH_NOTIFY_LEASE_SECS", DEFAULT_LEASE)?,
            pacing: SendPacing { fcm_per_sec: quota, instances },
            send_concurrency,
            ramp: ramp.shared_by(instances),
            deferred_batch,
            base,
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
        ("HEARTH_OIDC_AUDIENCE", "https://notifier.example.run.app/"),
        ("HEARTH_OIDC_ALLOWED_EMAILS", "pubsub@demo-p.iam.gserviceaccount.com"),
    ];

    #[test]
    fn defaults_load_and_overrides_are_read() {
        let config = load(&GOOD).unwrap();
        assert_eq!(config.fcm, FcmTarget::Production);
        assert_eq!(config.page_size, 500);
        assert_eq!(config.pacing.per_instance(), 10_000.0);
        assert!(config.operators.is_empty());
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080"),
            ("HEARTH_FCM_BASE_URL", "http://127.0.0.1:9999"),
            ("HEARTH_NOTIFY_OPERATORS", "op1,op2"),
            ("HEARTH_WRITE_BUDGET_INSTANCES", "20"),
        ]);
        let config = load(&vars).unwrap();
        assert_eq!(config.fcm, FcmTarget::Local("http://127.0.0.1:9999".into()));
        assert_eq!(config.operators, ["op1", "op2"]);
        assert_eq!(config.pacing.per_instance(), 500.0);
        assert_eq!(config.ramp, RampPolicy::default().shared_by(20));
    }

    #[test]
    fn bad_values_name_their_variable() {
        // A local FCM outside the emulators is refused.
        let mut vars = GOOD.to_vec();
        vars.push(("HEARTH_FCM_BASE_URL", "http://127.0.0.1:9999"));
        assert_eq!(load(&vars).unwrap_err().var(), "HEARTH_FCM_BASE_URL");
        for (var, bad) in [
            ("HEARTH_NOTIFY_PAGE_SIZE", "0"),
            ("HEARTH_NOTIFY_TTL_DAYS", "0"),
            ("HEARTH_FCM_QUOTA_PER_SEC", "-3"),
            ("HEARTH_NOTIFY_SEND_CONCURRENCY", "0"),
            ("HEARTH_NOTIFY_RAMP", "fast"),
            ("HEARTH_NOTIFY_LEASE_SECS", "0"),
            ("HEARTH_NOTIFY_DEFERRED_BATCH", "5000"),
        ] {
            let mut vars = GOOD.to_vec();
            vars.push((var, bad));
            assert_eq!(load(&vars).unwrap_err().var(), var, "{var}={bad}");
        }
    }
}
