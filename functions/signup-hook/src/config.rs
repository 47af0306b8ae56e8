//! The sign-up hook's configuration: the shared [`BaseConfig`] plus the `HEARTH_` variables of
//! this function, all validated at start-up with errors that name the variable.

use std::time::Duration;

use runtime::{BaseConfig, ConfigError, Env};
use store::DbConfig;

/// Default deadline for announcing a sign-up on `user-signups`.
pub const DEFAULT_PUBLISH_DEADLINE: Duration = Duration::from_millis(1500);
/// Longest publish deadline accepted: the identity provider waits 7 s for the whole answer.
pub const MAX_PUBLISH_DEADLINE: Duration = Duration::from_millis(5000);
/// Longest cache time-to-live accepted: a suspension or removal must apply within it.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(600);

/// Longest invitation reservation accepted.
pub const MAX_INVITATION_HOLD: Duration = Duration::from_secs(3600);

/// The endpoint of the beforeCreate trigger.
pub const BEFORE_CREATE_PATH: &str = "/before-create";
/// The endpoint of the beforeSignIn trigger.
pub const BEFORE_SIGN_IN_PATH: &str = "/before-sign-in";

/// Everything the hook needs, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The settings every function shares (port, emulators, key URLs, ...).
    pub base: BaseConfig,
    /// `GOOGLE_CLOUD_PROJECT` (required): the issuer of blocking tokens names it.
    pub project_id: String,
    /// Firestore: the project and `FIRESTORE_EMULATOR_HOST`.
    pub db: DbConfig,
    /// `HEARTH_BLOCKING_AUDIENCE` (required): the hook's public base URL. Identity Platform
    /// puts the registered function URI in `aud`, so a token for `/before-create` must carry
    /// exactly `<base>/before-create`, and one for `/before-sign-in` `<base>/before-sign-in`.
    pub blocking_audience: String,
    /// `HEARTH_BLOCKED_EMAIL_DOMAINS` (comma list, lower-cased): blocked on top of the
    /// `config/signup` document. A domain blocks its subdomains too.
    pub blocked_domains: Vec<String>,
    /// `HEARTH_SIGNUP_PUBLISH_DEADLINE_MS` (default 1500, 1..=5000): the longest wait for
    /// Pub/Sub when announcing a sign-up.
    pub publish_deadline: Duration,
    /// `HEARTH_TENANCY_CACHE_TTL_SECS` (default 30, at most 600; 0 turns caching off): how long
    /// blocked domains, company domains, tenant status, memberships and user roots are reused.
    pub cache_ttl: Duration,
    /// `HEARTH_INVITATION_HOLD_SECS` (default 600, 1..=3600): how long a sign-up's reservation
    /// of an invitation waits for the user's first sign-in to make it final before another
    /// proven sign-up may take the invitation.
    pub invitation_hold: Duration,
}

impl Config {
    /// Adds this function's settings from `env` to the already parsed `base`, as every
    /// function's config does.
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let project_id = base.required_project()?;
        let db = DbConfig::new(project_id.clone(), base.firestore_emulator_host.clone());

        const AUDIENCE: &str = "HEARTH_BLOCKING_AUDIENCE";
        let audience = env.url_or(AUDIENCE, "")?;
        if audience.is_empty() {
            return Err(ConfigError::Missing { var: AUDIENCE.to_owned() });
        }
        if audience.contains(['?', '#']) {
            return Err(ConfigError::invalid(
                AUDIENCE,
                "the hook's base URL without query or fragment",
                &audience,
            ));
        }
        let blocking_audience = audience.trim_end_matches('/').to_owned();

        const BLOCKED: &str = "HEARTH_BLOCKED_EMAIL_DOMAINS";
        let blocked_domains = env
            .list(BLOCKED)
            .iter()
            .map(|raw| {
                normalize_domain(raw).ok_or_else(|| {
                    ConfigError::invalid(BLOCKED, "a comma list of domains like spam.example", raw)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        const DEADLINE: &str = "HEARTH_SIGNUP_PUBLISH_DEADLINE_MS";
        const DEADLINE_EXPECTED: &str = "an integer number of milliseconds from 1 to 5000";
        let millis = env.parse_or::<u64>(
            DEADLINE,
            DEADLINE_EXPECTED,
            DEFAULT_PUBLISH_DEADLINE.as_millis() as u64,
        )?;
        let publish_deadline = Duration::from_millis(millis);
        if publish_deadline.is_zero() || publish_deadline > MAX_PUBLISH_DEADLINE {
            return Err(ConfigError::invalid(DEADLINE, DEADLINE_EXPECTED, &millis.to_string()));
        }

        const TTL: &str = "HEARTH_TENANCY_CACHE_TTL_SECS";
        let cache_ttl = env.secs_or(TTL, store::tenancy::DEFAULT_CACHE_TTL)?;
        if cache_ttl > MAX_CACHE_TTL {
            return Err(ConfigError::invalid(
                TTL,
                "an integer number of seconds from 0 to 600",
                &cache_ttl.as_secs().to_string(),
            ));
        }

        const HOLD: &str = "HEARTH_INVITATION_HOLD_SECS";
        let default_hold =
            domain::tenancy::RESERVATION_HOLD.to_std().unwrap_or(MAX_INVITATION_HOLD);
        let invitation_hold = env.secs_or(HOLD, default_hold)?;
        if invitation_hold.is_zero() || invitation_hold > MAX_INVITATION_HOLD {
            return Err(ConfigError::invalid(
                HOLD,
                "an integer number of seconds from 1 to 3600",
                &invitation_hold.as_secs().to_string(),
            ));
        }

        Ok(Self {
            base,
            project_id,
            db,
            blocking_audience,
            blocked_domains,
            publish_deadline,
            cache_ttl,
            invitation_hold,
        })
    }

    /// The exact `aud` a token for the endpoint at `path` must carry.
    pub fn audience_for(&self, path: &str) -> String {
        format!("{}{path}", self.blocking_audience)
    }
}

/// A blocked-domain entry in lower case, without a leading `*.` or `@`; `None` if it is not a
/// domain name.
fn normalize_domain(raw: &str) -> Option<String> {
    let domain = raw
        .trim()
        .trim_start_matches("*.")
        .trim_start_matches('@')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    valid.then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Base settings and this function's, from `env`.
    fn load(env: &Env) -> Result<Config, ConfigError> {
        Config::load(BaseConfig::load(env)?, env)
    }

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut pairs = vec![
            ("GOOGLE_CLOUD_PROJECT", "demo-p"),
            ("HEARTH_BLOCKING_AUDIENCE", "https://hook.example/"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_and_derived_audiences() {
        let config = load(&env(&[])).unwrap();
        assert_eq!(config.project_id, "demo-p");
        assert_eq!(config.audience_for(BEFORE_CREATE_PATH), "https://hook.example/before-create");
        assert_eq!(config.audience_for(BEFORE_SIGN_IN_PATH), "https://hook.example/before-sign-in");
        assert_eq!(config.publish_deadline, Duration::from_millis(1500));
        assert_eq!(config.cache_ttl, Duration::from_secs(30));
        assert_eq!(config.invitation_hold, Duration::from_secs(600));
        assert!(config.blocked_domains.is_empty());
    }

    #[test]
    fn every_error_names_its_variable() {
        let cases: [(&[(&str, &str)], &str); 8] = [
            (&[("HEARTH_INVITATION_HOLD_SECS", "0")], "HEARTH_INVITATION_HOLD_SECS"),
            (&[("HEARTH_INVITATION_HOLD_SECS", "7200")], "HEARTH_INVITATION_HOLD_SECS"),
            (&[("HEARTH_BLOCKING_AUDIENCE", "not a url")], "HEARTH_BLOCKING_AUDIENCE"),
            (&[("HEARTH_BLOCKING_AUDIENCE", "https://h.example/?x=1")], "HEARTH_BLOCKING_AUDIENCE"),
            (
                &[("HEARTH_BLOCKED_EMAIL_DOMAINS", "ok.example, bad domain")],
                "HEARTH_BLOCKED_EMAIL_DOMAINS",
            ),
            (&[("HEARTH_SIGNUP_PUBLISH_DEADLINE_MS", "0")], "HEARTH_SIGNUP_PUBLISH_DEADLINE_MS"),
            (&[("HEARTH_SIGNUP_PUBLISH_DEADLINE_MS", "9000")], "HEARTH_SIGNUP_PUBLISH_DEADLINE_MS"),
            (&[("HEARTH_TENANCY_CACHE_TTL_SECS", "3600")], "HEARTH_TENANCY_CACHE_TTL_SECS"),
        ];
        for (vars, var) in cases {
            let err = load(&env(vars)).unwrap_err();
            assert_eq!(err.var(), var, "{err}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
        let missing = load(&Env::from_pairs([("GOOGLE_CLOUD_PROJECT", "p")])).unwrap_err();
        assert_eq!(missing.var(), "HEARTH_BLOCKING_AUDIENCE");
        let missing =
            load(&Env::from_pairs([("HEARTH_BLOCKING_AUDIENCE", "https://h")])).unwrap_err();
        assert_eq!(missing.var(), "GOOGLE_CLOUD_PROJECT");
    }

    #[test]
    fn blocked_domains_are_normalized() {
        let config = load(&env(&[(
            "HEARTH_BLOCKED_EMAIL_DOMAINS",
            "Spam.Example, *.mailinator.com,@trash.example.,ru",
        )]))
        .unwrap();
        assert_eq!(
            config.blocked_domains,
            ["spam.example", "mailinator.com", "trash.example", "ru"]
        );
        let config = load(&env(&[("HEARTH_TENANCY_CACHE_TTL_SECS", "0")])).unwrap();
        assert!(config.cache_ttl.is_zero());
    }
}
