//! The payment-processor configuration: shared settings, push authentication, the Pesapal
//! client (status lookups) and the Stripe client (refunds).

use std::time::Duration;

use providers::{PesapalSettings, PesapalUse};
use runtime::auth::PushAuth;
use runtime::{BaseConfig, ConfigError, Env};
use secrecy::SecretString;
use store::DbConfig;

/// Default lease on an event while it is applied.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Everything the function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shared settings.
    pub base: BaseConfig,
    /// Firestore.
    pub db: DbConfig,
    /// Google OIDC of push deliveries (`HEARTH_OIDC_AUDIENCE`, `HEARTH_OIDC_ALLOWED_EMAILS`).
    pub push_auth: PushAuth,
    /// `HEARTH_PAYMENT_PROCESSOR_LEASE_SECS` (default 60).
    pub lease: Duration,
    /// Pesapal status lookups (`HEARTH_PESAPAL_*`, parsed by `providers::settings` for
    /// [`PesapalUse::StatusLookups`]). `None` when the key is unset: Pesapal hints are then
    /// dead-lettered.
    pub pesapal: Option<PesapalSettings>,
    /// Stripe refunds: `HEARTH_STRIPE_API_BASE` (default `https://api.stripe.com`) and
    /// `HEARTH_STRIPE_SECRET_KEY` (`None` when unset: Stripe refund requests are then
    /// dead-lettered).
    pub stripe: Option<(String, SecretString)>,
}

impl Config {
    /// From `env`, on top of `base`.
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        let push_auth = PushAuth::from_config(&base)?;
        let lease = env.positive_secs_or("HEARTH_PAYMENT_PROCESSOR_LEASE_SECS", DEFAULT_LEASE)?;
        let pesapal = PesapalSettings::from_env(env, PesapalUse::StatusLookups)?;
        let stripe = match env.secret("HEARTH_STRIPE_SECRET_KEY") {
            Some(key) => {
                Some((env.url_or("HEARTH_STRIPE_API_BASE", "https://api.stripe.com")?, key))
            }
            None => None,
        };
        Ok(Self { base, db, push_auth, lease, pesapal, stripe })
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
    fn defaults_and_errors() {
        let good = [
            ("GOOGLE_CLOUD_PROJECT", "demo-p"),
            ("HEARTH_OIDC_AUDIENCE", "https://processor.example/"),
            ("HEARTH_OIDC_ALLOWED_EMAILS", "push@demo-p.iam.gserviceaccount.com"),
        ];
        let config = load(&good).unwrap();
        assert!(config.pesapal.is_none());
        assert!(config.stripe.is_none());
        let mut with_key = good.to_vec();
        with_key.push(("HEARTH_PESAPAL_CONSUMER_KEY", "ck"));
        assert_eq!(load(&with_key).unwrap_err().var(), "HEARTH_PESAPAL_CONSUMER_SECRET");
        with_key.push(("HEARTH_PESAPAL_CONSUMER_SECRET", "cs"));
        let config = load(&with_key).unwrap();
        assert_eq!(config.pesapal.unwrap().base_url, "https://pay.pesapal.com/v3");
        let mut bad = good.to_vec();
        bad.push(("HEARTH_STRIPE_SECRET_KEY", "sk_test_x"));
        bad.push(("HEARTH_STRIPE_API_BASE", "not a url"));
        assert_eq!(load(&bad).unwrap_err().var(), "HEARTH_STRIPE_API_BASE");
    }
}
