//! The onboarding function's configuration: the shared [`BaseConfig`] plus its own variables,
//! all validated at start-up into one typed value.

use std::time::Duration;

use runtime::auth::{FirebaseAuth, PushAuth};
use runtime::{BaseConfig, ConfigError, Env};
use store::DbConfig;

/// Default lease on a `user-signups` message while it is being provisioned.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Everything the function needs, checked before the first request.
#[derive(Debug, Clone)]
pub struct Config {
    /// The shared settings (port, project, emulators, OIDC audience and callers, ...).
    pub base: BaseConfig,
    /// Firestore: `GOOGLE_CLOUD_PROJECT` (required) and `FIRESTORE_EMULATOR_HOST`.
    pub db: DbConfig,
    /// Google OIDC verification of push deliveries and operators (`HEARTH_OIDC_AUDIENCE`,
    /// `HEARTH_OIDC_ALLOWED_EMAILS`, `HEARTH_GOOGLE_OIDC_JWKS_URL`, `HEARTH_INSECURE_LOCAL_PUSH`).
    pub push_auth: PushAuth,
    /// Firebase ID token verification of tenant admins (`HEARTH_SECURETOKEN_JWKS_URL`).
    pub firebase_auth: FirebaseAuth,
    /// `HEARTH_ONBOARDING_LEASE_SECS` (default 60): how long a delivery holds its message id in
    /// the idempotency ledger; a redelivery arriving meanwhile is told to come back later.
    pub lease: Duration,
}

impl Config {
    /// From `env` (tests pass a map), on top of `base`.
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        let push_auth = PushAuth::from_config(&base)?;
        let firebase_auth = FirebaseAuth::from_config(&base)?;
        let lease = env.positive_secs_or("HEARTH_ONBOARDING_LEASE_SECS", DEFAULT_LEASE)?;
        Ok(Self { base, db, push_auth, firebase_auth, lease })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = vars(pairs);
        let base = BaseConfig::from_map(map.clone())?;
        Config::load(base, &Env::from_map(map))
    }

    const GOOD: [(&str, &str); 3] = [
        ("GOOGLE_CLOUD_PROJECT", "demo-p"),
        ("HEARTH_OIDC_AUDIENCE", "https://onboarding.example.run.app/"),
        ("HEARTH_OIDC_ALLOWED_EMAILS", "push@demo-p.iam.gserviceaccount.com"),
    ];

    #[test]
    fn a_complete_environment_loads() {
        let config = load(&GOOD).unwrap();
        assert_eq!(config.db.project_id, "demo-p");
        assert_eq!(config.db.emulator_host, None);
        assert!(config.push_auth.is_verifying());
        assert_eq!(config.lease, DEFAULT_LEASE);
    }

    #[test]
    fn errors_name_the_variable() {
        let missing_project: Vec<_> = GOOD[1..].to_vec();
        assert_eq!(load(&missing_project).unwrap_err().var(), "GOOGLE_CLOUD_PROJECT");
        assert_eq!(load(&GOOD[..2]).unwrap_err().var(), "HEARTH_OIDC_ALLOWED_EMAILS");
        let mut bad_lease = GOOD.to_vec();
        bad_lease.push(("HEARTH_ONBOARDING_LEASE_SECS", "soon"));
        assert_eq!(load(&bad_lease).unwrap_err().var(), "HEARTH_ONBOARDING_LEASE_SECS");
        let mut zero = GOOD.to_vec();
        zero.push(("HEARTH_ONBOARDING_LEASE_SECS", "0"));
        assert_eq!(load(&zero).unwrap_err().var(), "HEARTH_ONBOARDING_LEASE_SECS");
    }

    #[test]
    fn the_emulator_and_insecure_local_push_are_honoured() {
        let config = load(&[
            ("GOOGLE_CLOUD_PROJECT", "demo-p"),
            ("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080"),
            ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085"),
            ("HEARTH_INSECURE_LOCAL_PUSH", "1"),
            ("HEARTH_ONBOARDING_LEASE_SECS", "90"),
        ])
        .unwrap();
        assert_eq!(config.db.emulator_host.as_deref(), Some("127.0.0.1:8080"));
        assert!(!config.push_auth.is_verifying());
        assert_eq!(config.lease, Duration::from_secs(90));
    }
}
