//! The payment-webhook configuration: the shared [`BaseConfig`] plus the Stripe secrets and
//! timings, validated at start-up.

use std::num::NonZeroU32;
use std::time::Duration;

use runtime::{BaseConfig, ConfigError, Env};
use secrecy::SecretString;
use store::DbConfig;

/// Largest webhook body accepted (Stripe events are a few KiB; IPNs far less).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything the function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shared settings.
    pub base: BaseConfig,
    /// Firestore (the idempotency ledger).
    pub db: DbConfig,
    /// `HEARTH_STRIPE_WEBHOOK_SECRETS` (required; comma list of `whsec_...`, every active
    /// signing secret during a rotation; from Secret Manager in production).
    pub stripe_secrets: Vec<SecretString>,
    /// `HEARTH_STRIPE_SIGNATURE_TOLERANCE_SECS` (default 300).
    pub tolerance: Duration,
    /// `HEARTH_WEBHOOK_PUBLISH_DEADLINE_MS` (default 2000): longest wait for Pub/Sub before
    /// answering 503 (the provider retries).
    pub publish_deadline: Duration,
    /// `HEARTH_PESAPAL_IPN_RATE_PER_SOURCE` (default 20): IPNs per second one source address
    /// may send to one instance; bursts of twice that.
    pub ipn_rate_per_source: NonZeroU32,
    /// Twice the rate.
    pub ipn_burst_per_source: NonZeroU32,
    /// `HEARTH_WEBHOOK_DEDUPE_LEASE_MS` (default 30000, more than the publish deadline): how
    /// long an event id is held after its first delivery; a delivery of the same id within it
    /// is answered "in flight, retry", one after it publishes again (`store::ledger`'s leased
    /// mode; the processor dedupes).
    pub lease: Duration,
}

impl Config {
    /// From `env`, on top of `base`.
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        const SECRETS: &str = "HEARTH_STRIPE_WEBHOOK_SECRETS";
        let stripe_secrets: Vec<SecretString> = env
            .list(SECRETS)
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(SecretString::from)
            .collect();
        if stripe_secrets.is_empty() {
            return Err(ConfigError::Missing { var: SECRETS.to_owned() });
        }
        let tolerance = env.positive_secs_or(
            "HEARTH_STRIPE_SIGNATURE_TOLERANCE_SECS",
            providers::stripe::DEFAULT_TOLERANCE,
        )?;
        let deadline_ms: u64 =
            env.parse_or("HEARTH_WEBHOOK_PUBLISH_DEADLINE_MS", "milliseconds", 2000)?;
        if deadline_ms == 0 {
            return Err(ConfigError::invalid(
                "HEARTH_WEBHOOK_PUBLISH_DEADLINE_MS",
                "a positive number of milliseconds",
                "0",
            ));
        }
        const LEASE: &str = "HEARTH_WEBHOOK_DEDUPE_LEASE_MS";
        let lease_ms: u64 = env.parse_or(LEASE, "milliseconds", 30_000)?;
        if lease_ms <= deadline_ms {
            return Err(ConfigError::invalid(
                LEASE,
                "milliseconds, more than HEARTH_WEBHOOK_PUBLISH_DEADLINE_MS",
                &lease_ms.to_string(),
            ));
        }
        const RATE: &str = "HEARTH_PESAPAL_IPN_RATE_PER_SOURCE";
        let rate: u32 = env.parse_or(RATE, "a positive number of requests per second", 20)?;
        let ipn_rate_per_source = NonZeroU32::new(rate).ok_or_else(|| {
            ConfigError::invalid(RATE, "a positive number of requests per second", "0")
        })?;
        Ok(Self {
            base,
            db,
            stripe_secrets,
            tolerance,
            publish_deadline: Duration::from_millis(deadline_ms),
            lease: Duration::from_millis(lease_ms),
            ipn_rate_per_source,
            ipn_burst_per_source: ipn_rate_per_source
                .saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN)),
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
        Config::load(BaseConfig::from_map(map.clone())?, &Env::from_map(map))
    }

    #[test]
    fn secrets_are_required_and_listed() {
        let config = load(&[
            ("GOOGLE_CLOUD_PROJECT", "demo-p"),
            ("HEARTH_STRIPE_WEBHOOK_SECRETS", "whsec_a, whsec_b"),
        ])
        .unwrap();
        assert_eq!(config.stripe_secrets.len(), 2);
        assert_eq!(config.tolerance, Duration::from_secs(300));
        assert_eq!(config.publish_deadline, Duration::from_secs(2));
        assert!(!format!("{config:?}").contains("whsec_a"), "secrets never show in Debug");
        let missing = load(&[("GOOGLE_CLOUD_PROJECT", "demo-p")]).unwrap_err();
        assert_eq!(missing.var(), "HEARTH_STRIPE_WEBHOOK_SECRETS");
        let bad = load(&[
            ("GOOGLE_CLOUD_PROJECT", "demo-p"),
            ("HEARTH_STRIPE_WEBHOOK_SECRETS", "whsec_a"),
            ("HEARTH_WEBHOOK_PUBLISH_DEADLINE_MS", "0"),
        ])
        .unwrap_err();
        assert_eq!(bad.var(), "HEARTH_WEBHOOK_PUBLISH_DEADLINE_MS");
        assert_eq!(config.lease, Duration::from_secs(30));
        let short = load(&[
            ("GOOGLE_CLOUD_PROJECT", "demo-p"),
            ("HEARTH_STRIPE_WEBHOOK_SECRETS", "whsec_a"),
            ("HEARTH_WEBHOOK_DEDUPE_LEASE_MS", "2000"),
        ])
        .unwrap_err();
        assert_eq!(short.var(), "HEARTH_WEBHOOK_DEDUPE_LEASE_MS", "not beyond the deadline");
    }
}
