//! Typed configuration from the environment, validated once at start-up.
//!
//! [`Env`] is the only reader of the process environment outside `testkit`: it takes a snapshot
//! (or a map, in tests) and offers typed getters whose errors name the variable, e.g.
//! `HEARTH_REQUEST_TIMEOUT_SECS: expected an integer number of seconds, got "abc"`.
//! [`BaseConfig`] holds the names fixed by the design; functions build their own config structs
//! on top of the same [`Env`] so every value is checked before the first request.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

/// Default JWK set for blocking-function JWTs and Firebase ID tokens.
pub const DEFAULT_SECURETOKEN_JWKS_URL: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
/// Default JWK set for Google-signed OIDC tokens (Pub/Sub push, Scheduler, Eventarc).
pub const DEFAULT_GOOGLE_OIDC_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// Default grace period after SIGTERM (Cloud Run kills the container 10 s after SIGTERM).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
/// Default per-request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time kept back from a Lambda invocation's deadline to answer and post the response.
pub const DEFAULT_LAMBDA_DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// A configuration value that is missing, malformed or not allowed. The message always starts
/// with the variable name so an operator knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: expected {expected}, got {got:?}")]
    Invalid { var: String, expected: String, got: String },
    #[error("{var}: required but not set")]
    Missing { var: String },
    #[error("{var}: {reason}")]
    Refused { var: String, reason: String },
}

impl ConfigError {
    /// The variable the error is about.
    pub fn var(&self) -> &str {
        match self {
            ConfigError::Invalid { var, .. }
            | ConfigError::Missing { var }
            | ConfigError::Refused { var, .. } => var,
        }
    }

    /// A value that does not parse as `expected`.
    pub fn invalid(var: &str, expected: impl Into<String>, got: &str) -> Self {
        ConfigError::Invalid { var: var.to_owned(), expected: expected.into(), got: got.to_owned() }
    }

    /// A value (or combination of values) that parses but is not allowed.
    pub fn refused(var: &str, reason: impl Into<String>) -> Self {
        ConfigError::Refused { var: var.to_owned(), reason: reason.into() }
    }
}

/// A snapshot of environment variables with typed, self-describing getters.
///
/// Empty (or all-whitespace) values count as unset, so `FOO=` in a deploy file means "use the
/// default" rather than "parse the empty string". Values are trimmed.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl fmt::Debug for Env {
    // Values may be secrets: show only the names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    /// Snapshot of the process environment. Variables that are not valid UTF-8 are skipped
    /// (none of ours can be).
    pub fn from_process() -> Self {
        // Reading the environment is the point of this module.
        #[allow(clippy::disallowed_methods)]
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self { vars }
    }

    /// An environment made of the given map (tests, embedding).
    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Self { vars }
    }

    /// An environment made of `(name, value)` pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The trimmed value, or `None` when unset or empty.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Whether the variable is set to a non-empty value.
    pub fn is_set(&self, var: &str) -> bool {
        self.get(var).is_some()
    }

    /// An optional string.
    pub fn string(&self, var: &str) -> Option<String> {
        self.get(var).map(str::to_owned)
    }

    /// A string with a default.
    pub fn string_or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or(default).to_owned()
    }

    /// A string that must be set.
    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.string(var).ok_or_else(|| ConfigError::Missing { var: var.to_owned() })
    }

    /// A secret: kept in a [`SecretString`] so it never shows up in `Debug` output or logs.
    pub fn secret(&self, var: &str) -> Option<SecretString> {
        self.get(var).map(|v| SecretString::from(v.to_owned()))
    }

    /// A secret that must be set.
    pub fn required_secret(&self, var: &str) -> Result<SecretString, ConfigError> {
        self.secret(var).ok_or_else(|| ConfigError::Missing { var: var.to_owned() })
    }

    /// Any `FromStr` value; `expected` describes the format for the error message
    /// (e.g. "an integer between 1 and 100").
    pub fn parse<T: FromStr>(&self, var: &str, expected: &str) -> Result<Option<T>, ConfigError> {
        self.get(var)
            .map(|raw| raw.parse::<T>().map_err(|_| ConfigError::invalid(var, expected, raw)))
            .transpose()
    }

    /// Any `FromStr` value with a default.
    pub fn parse_or<T: FromStr>(
        &self,
        var: &str,
        expected: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        Ok(self.parse(var, expected)?.unwrap_or(default))
    }

    /// A boolean flag: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off` (any case); unset is false.
    pub fn flag(&self, var: &str) -> Result<bool, ConfigError> {
        let Some(raw) = self.get(var) else { return Ok(false) };
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::invalid(var, "a boolean (1/0, true/false, yes/no, on/off)", raw)),
        }
    }

    /// A duration given as an integer number of seconds.
    pub fn secs_or(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self
            .parse::<u64>(var, "an integer number of seconds")?
            .map_or(default, Duration::from_secs))
    }

    /// A duration given as an integer number of seconds that must be at least one second.
    pub fn positive_secs_or(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        let value = self.secs_or(var, default)?;
        if value.is_zero() {
            return Err(ConfigError::invalid(var, "a positive integer number of seconds", "0"));
        }
        Ok(value)
    }

    /// A size given as an integer number of bytes, at least 1.
    pub fn bytes_or(&self, var: &str, default: usize) -> Result<usize, ConfigError> {
        let value = self.parse_or::<usize>(var, "a positive integer number of bytes", default)?;
        if value == 0 {
            return Err(ConfigError::invalid(var, "a positive integer number of bytes", "0"));
        }
        Ok(value)
    }

    /// A comma-separated list; items are trimmed and empty items dropped. Unset is empty.
    pub fn list(&self, var: &str) -> Vec<String> {
        self.get(var)
            .map(|raw| {
                raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
            })
            .unwrap_or_default()
    }

    /// An absolute `http` or `https` URL with a host.
    pub fn url_or(&self, var: &str, default: &str) -> Result<String, ConfigError> {
        let Some(raw) = self.get(var) else { return Ok(default.to_owned()) };
        check_http_url(raw)
            .map_err(|()| ConfigError::invalid(var, "an absolute http(s) URL", raw))?;
        Ok(raw.to_owned())
    }

    /// A `host:port` pair (the form the emulator variables take).
    pub fn host_port(&self, var: &str) -> Result<Option<String>, ConfigError> {
        let Some(raw) = self.get(var) else { return Ok(None) };
        let ok = raw
            .parse::<http::uri::Authority>()
            .ok()
            .filter(|a| a.port_u16().is_some() && !a.host().is_empty() && !raw.contains('@'));
        if ok.is_none() {
            return Err(ConfigError::invalid(var, "host:port", raw));
        }
        Ok(Some(raw.to_owned()))
    }
}

fn check_http_url(raw: &str) -> Result<http::Uri, ()> {
    let uri: http::Uri = raw.parse().map_err(|_| ())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(uri),
        _ => Err(()),
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line in the Cloud Logging structured format.
    Json,
    /// Human-readable text for local runs.
    Pretty,
}

/// Where the process runs, decided from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Plain HTTP server on `$PORT` (Cloud Run, local runs, the dev stack).
    CloudRun,
    /// AWS Lambda: `AWS_LAMBDA_RUNTIME_API` is set; requests come through `lambda_http`.
    Lambda,
}

/// The settings every Hearth function shares, from the names fixed in the design.
///
/// Fields are public for reading (and for tests that tweak a parsed config); build it with
/// [`BaseConfig::from_env`], [`BaseConfig::from_map`] or [`BaseConfig::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct BaseConfig {
    /// `PORT` (default 8080). `0` asks the OS for a free port (tests, benchmarks).
    pub port: u16,
    /// `GOOGLE_CLOUD_PROJECT`.
    pub project_id: Option<String>,
    /// `FIRESTORE_EMULATOR_HOST` (`host:port`).
    pub firestore_emulator_host: Option<String>,
    /// `PUBSUB_EMULATOR_HOST` (`host:port`).
    pub pubsub_emulator_host: Option<String>,
    /// `FIREBASE_AUTH_EMULATOR_HOST` (`host:port`). Refused when `K_SERVICE` or
    /// `AWS_LAMBDA_FUNCTION_NAME` is set: emulator mode accepts unsigned tokens.
    pub firebase_auth_emulator_host: Option<String>,
    /// `HEARTH_SECURETOKEN_JWKS_URL`.
    pub securetoken_jwks_url: String,
    /// `HEARTH_GOOGLE_OIDC_JWKS_URL`.
    pub google_oidc_jwks_url: String,
    /// `HEARTH_BLOCKING_AUDIENCE`.
    pub blocking_audience: Option<String>,
    /// `HEARTH_OIDC_AUDIENCE`.
    pub oidc_audience: Option<String>,
    /// `HEARTH_OIDC_ALLOWED_EMAILS` (comma list).
    pub oidc_allowed_emails: Vec<String>,
    /// `HEARTH_METRICS_ALLOWED_EMAILS` (comma list): service accounts that may read `/metrics`
    /// with a Google OIDC token for `HEARTH_OIDC_AUDIENCE`. Empty: nobody.
    pub metrics_allowed_emails: Vec<String>,
    /// `HEARTH_INSECURE_LOCAL_PUSH=1`: skip OIDC on push/Scheduler endpoints. Only accepted
    /// while `PUBSUB_EMULATOR_HOST` is set.
    pub insecure_local_push: bool,
    /// `RUST_LOG` (validated as an `EnvFilter` directive list).
    pub log_filter: Option<String>,
    /// `HEARTH_LOG_FORMAT` (default `json` on Cloud Run / Lambda, else `pretty`).
    pub log_format: LogFormat,
    /// `HEARTH_SHUTDOWN_GRACE_SECS` (default 8).
    pub shutdown_grace: Duration,
    /// `HEARTH_REQUEST_TIMEOUT_SECS` (default 60).
    pub request_timeout: Duration,
    /// `HEARTH_CORS_ORIGINS` (comma list of exact origins; default: none allowed).
    pub cors_origins: Vec<String>,
    /// `HEARTH_WRITE_BUDGET_INSTANCES` (default 1): how many instances of this function may
    /// run at once (the manifest's `max_instances`, set by Terraform; devstack, one process, sets 1); bulk
    /// writers divide the Firestore write ramp by it (`domain::ramp::RampPolicy::shared_by`).
    pub write_budget_instances: u32,
    /// `HEARTH_BODY_LIMIT_BYTES` (default 1 MiB): the limit of routes that do not raise it.
    pub body_limit: usize,
    /// `K_SERVICE` (set by Cloud Run).
    pub k_service: Option<String>,
    /// `AWS_LAMBDA_RUNTIME_API` (set by Lambda).
    pub lambda_runtime_api: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda).
    pub lambda_function_name: Option<String>,
    /// `HEARTH_SERVICE_NAME`: the service name of logs and metrics when neither platform
    /// names it (the local stack), without posing as Cloud Run.
    pub service_name: Option<String>,
    /// `HEARTH_LAMBDA_DEADLINE_MARGIN_MS` (default 500): on Lambda, an invocation's timeout is
    /// its deadline (`Lambda-Runtime-Deadline-Ms`) minus this, capped by `request_timeout`.
    pub lambda_deadline_margin: Duration,
    /// `AWS_LAMBDA_MAX_CONCURRENCY` (set by Lambda Managed Instances): how many invocations
    /// one process runs at once; unset means one at a time.
    pub lambda_max_concurrency: Option<u32>,
}

impl BaseConfig {
    /// Parses the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(&Env::from_process())
    }

    /// Parses a map, so tests never touch the real environment.
    pub fn from_map(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::load(&Env::from_map(vars))
    }

    /// Parses the given environment.
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let port = env.parse_or::<u16>("PORT", "a TCP port number (0-65535)", 8080)?;
        let pubsub_emulator_host = env.host_port("PUBSUB_EMULATOR_HOST")?;
        let insecure_local_push = env.flag("HEARTH_INSECURE_LOCAL_PUSH")?;
        if insecure_local_push && pubsub_emulator_host.is_none() {
            return Err(ConfigError::refused(
                "HEARTH_INSECURE_LOCAL_PUSH",
                "refused: skipping push authentication is only allowed in emulator mode, \
                 and PUBSUB_EMULATOR_HOST is not set",
            ));
        }
        let log_filter = env.string("RUST_LOG");
        if let Some(filter) = &log_filter {
            tracing_subscriber::EnvFilter::try_new(filter).map_err(|_| {
                ConfigError::invalid(
                    "RUST_LOG",
                    "a tracing filter such as \"info,runtime=debug\"",
                    filter,
                )
            })?;
        }
        let k_service = env.string("K_SERVICE");
        let lambda_function_name = env.string("AWS_LAMBDA_FUNCTION_NAME");
        let firebase_auth_emulator_host = env.host_port("FIREBASE_AUTH_EMULATOR_HOST")?;
        if firebase_auth_emulator_host.is_some() {
            // Emulator mode accepts unsigned tokens: never on a real platform, where a stray
            // variable would let anyone forge any identity.
            let platform = if k_service.is_some() {
                Some("K_SERVICE (Cloud Run)")
            } else if lambda_function_name.is_some() {
                Some("AWS_LAMBDA_FUNCTION_NAME (AWS Lambda)")
            } else {
                None
            };
            if let Some(platform) = platform {
                return Err(ConfigError::refused(
                    "FIREBASE_AUTH_EMULATOR_HOST",
                    format!(
                        "refused: Auth emulator mode accepts unsigned tokens and is only allowed \
                         on a local machine, but {platform} is set"
                    ),
                ));
            }
        }
        let log_format = match env.get("HEARTH_LOG_FORMAT").map(str::to_ascii_lowercase).as_deref()
        {
            None if k_service.is_some() || lambda_function_name.is_some() => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(_) => {
                return Err(ConfigError::invalid(
                    "HEARTH_LOG_FORMAT",
                    "json or pretty",
                    env.get("HEARTH_LOG_FORMAT").unwrap_or_default(),
                ));
            }
        };
        let metrics_allowed_emails = env.list("HEARTH_METRICS_ALLOWED_EMAILS");
        if !metrics_allowed_emails.is_empty() && !env.is_set("HEARTH_OIDC_AUDIENCE") {
            return Err(ConfigError::refused(
                "HEARTH_OIDC_AUDIENCE",
                "is required to verify the metrics readers of HEARTH_METRICS_ALLOWED_EMAILS",
            ));
        }
        let cors_origins = env.list("HEARTH_CORS_ORIGINS");
        for origin in &cors_origins {
            check_origin(origin).map_err(|expected| {
                ConfigError::invalid("HEARTH_CORS_ORIGINS", expected, origin)
            })?;
        }
        Ok(Self {
            port,
            project_id: env.string("GOOGLE_CLOUD_PROJECT"),
            firestore_emulator_host: env.host_port("FIRESTORE_EMULATOR_HOST")?,
            pubsub_emulator_host,
            firebase_auth_emulator_host,
            securetoken_jwks_url: env
                .url_or("HEARTH_SECURETOKEN_JWKS_URL", DEFAULT_SECURETOKEN_JWKS_URL)?,
            google_oidc_jwks_url: env
                .url_or("HEARTH_GOOGLE_OIDC_JWKS_URL", DEFAULT_GOOGLE_OIDC_JWKS_URL)?,
            blocking_audience: env.string("HEARTH_BLOCKING_AUDIENCE"),
            oidc_audience: env.string("HEARTH_OIDC_AUDIENCE"),
            oidc_allowed_emails: env.list("HEARTH_OIDC_ALLOWED_EMAILS"),
            metrics_allowed_emails,
            insecure_local_push,
            log_filter,
            log_format,
            shutdown_grace: env.secs_or("HEARTH_SHUTDOWN_GRACE_SECS", DEFAULT_SHUTDOWN_GRACE)?,
            request_timeout: env
                .positive_secs_or("HEARTH_REQUEST_TIMEOUT_SECS", DEFAULT_REQUEST_TIMEOUT)?,
            cors_origins,
            body_limit: env.bytes_or("HEARTH_BODY_LIMIT_BYTES", DEFAULT_BODY_LIMIT_BYTES)?,
            write_budget_instances: write_budget_instances(env)?,
            k_service,
            lambda_runtime_api: env.string("AWS_LAMBDA_RUNTIME_API"),
            lambda_function_name,
            service_name: env.string("HEARTH_SERVICE_NAME"),
            lambda_deadline_margin: Duration::from_millis(env.parse_or::<u64>(
                "HEARTH_LAMBDA_DEADLINE_MARGIN_MS",
                "an integer number of milliseconds",
                millis(DEFAULT_LAMBDA_DEADLINE_MARGIN),
            )?),
            lambda_max_concurrency: env
                .parse::<u32>("AWS_LAMBDA_MAX_CONCURRENCY", "a positive number of invocations")?
                .filter(|n| *n > 0),
        })
    }

    /// Defaults only, as if the environment were empty (local runs and tests).
    pub fn local() -> Self {
        Self::load(&Env::default()).unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }

    /// `GOOGLE_CLOUD_PROJECT`, or a start-up error naming it (every function that talks to
    /// Firestore or Pub/Sub needs it).
    pub fn required_project(&self) -> Result<String, ConfigError> {
        self.project_id
            .clone()
            .ok_or_else(|| ConfigError::Missing { var: "GOOGLE_CLOUD_PROJECT".to_owned() })
    }

    /// Firestore calls go to the emulator.
    pub fn firestore_emulator(&self) -> bool {
        self.firestore_emulator_host.is_some()
    }

    /// Pub/Sub calls go to the emulator.
    pub fn pubsub_emulator(&self) -> bool {
        self.pubsub_emulator_host.is_some()
    }

    /// Firebase Auth is the emulator: unsigned (`alg: none`) tokens are accepted, as the Admin
    /// SDKs do. Never true in production.
    pub fn auth_emulator(&self) -> bool {
        self.firebase_auth_emulator_host.is_some()
    }

    /// Where the process runs.
    pub fn platform(&self) -> Platform {
        if self.lambda_runtime_api.is_some() { Platform::Lambda } else { Platform::CloudRun }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn write_budget_instances(env: &Env) -> Result<u32, ConfigError> {
    const VAR: &str = "HEARTH_WRITE_BUDGET_INSTANCES";
    const EXPECTED: &str = "a positive number of instances (the manifest's max_instances)";
    match env.parse::<u32>(VAR, EXPECTED)? {
        None => Ok(1),
        Some(0) => Err(ConfigError::invalid(VAR, EXPECTED, "0")),
        Some(n) => Ok(n),
    }
}

/// An origin is `scheme://host[:port]`, nothing more (what browsers send in `Origin`).
fn check_origin(origin: &str) -> Result<(), &'static str> {
    const EXPECTED: &str =
        "a comma list of origins like https://app.example.com (scheme, host, optional port)";
    let uri = check_http_url(origin).map_err(|()| EXPECTED)?;
    let bare = uri.path_and_query().is_none_or(|pq| pq.as_str() == "/") && !origin.ends_with('/');
    if !bare || http::HeaderValue::from_str(origin).is_err() {
        return Err(EXPECTED);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn errors_name_the_variable_and_quote_the_value() {
        let err = env(&[("HEARTH_X", "abc")]).secs_or("HEARTH_X", Duration::ZERO).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"HEARTH_X: expected an integer number of seconds, got "abc""#
        );
        assert_eq!(err.var(), "HEARTH_X");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let e = env(&[("A", "  "), ("B", " x ")]);
        assert_eq!(e.get("A"), None);
        assert_eq!(e.get("B"), Some("x"));
        assert_eq!(e.secs_or("A", Duration::from_secs(3)).unwrap(), Duration::from_secs(3));
    }

    #[test]
    fn flags_lists_and_urls() {
        let e = env(&[
            ("F", "Yes"),
            ("G", "maybe"),
            ("L", "a, b,,c "),
            ("U", "ftp://x"),
            ("H", "localhost"),
        ]);
        assert!(e.flag("F").unwrap());
        assert!(!e.flag("unset").unwrap());
        assert_eq!(e.flag("G").unwrap_err().var(), "G");
        assert_eq!(e.list("L"), ["a", "b", "c"]);
        assert!(e.url_or("U", "http://d").is_err());
        assert_eq!(e.url_or("unset", "http://d").unwrap(), "http://d");
        assert!(e.host_port("H").is_err());
    }

    #[test]
    fn origins_must_be_bare() {
        assert!(check_origin("https://app.example.com").is_ok());
        assert!(check_origin("http://localhost:5173").is_ok());
        assert!(check_origin("https://app.example.com/").is_err());
        assert!(check_origin("https://app.example.com/path").is_err());
        assert!(check_origin("*").is_err());
        assert!(check_origin("app.example.com").is_err());
    }

    #[test]
    fn auth_emulator_mode_is_refused_on_cloud_run_and_lambda() {
        const AUTH: (&str, &str) = ("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099");
        for platform in [("K_SERVICE", "api"), ("AWS_LAMBDA_FUNCTION_NAME", "api")] {
            let err = BaseConfig::load(&env(&[AUTH, platform])).unwrap_err();
            assert_eq!(err.var(), "FIREBASE_AUTH_EMULATOR_HOST", "{err}");
            assert!(matches!(err, ConfigError::Refused { .. }), "{err}");
            assert!(err.to_string().contains(platform.0), "{err}");
            // The platform alone, or the emulator alone on a local machine, is fine.
            assert!(BaseConfig::load(&env(&[platform])).is_ok());
        }
        let local = BaseConfig::load(&env(&[AUTH, ("HEARTH_SERVICE_NAME", "api")])).unwrap();
        assert!(local.auth_emulator());
        assert_eq!(local.service_name.as_deref(), Some("api"));
        assert_eq!(local.k_service, None);
    }

    #[test]
    fn lambda_settings_parse_and_errors_name_the_variable() {
        let c = BaseConfig::load(&env(&[
            ("HEARTH_LAMBDA_DEADLINE_MARGIN_MS", "1500"),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
        ]))
        .unwrap();
        assert_eq!(c.lambda_deadline_margin, Duration::from_millis(1500));
        assert_eq!(c.lambda_max_concurrency, Some(8));
        let d = BaseConfig::local();
        assert_eq!(d.lambda_deadline_margin, DEFAULT_LAMBDA_DEADLINE_MARGIN);
        assert_eq!(d.lambda_max_concurrency, None);
        for var in ["HEARTH_LAMBDA_DEADLINE_MARGIN_MS", "AWS_LAMBDA_MAX_CONCURRENCY"] {
            assert_eq!(BaseConfig::load(&env(&[(var, "soon")])).unwrap_err().var(), var);
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let e = env(&[("S", "hunter2")]);
        let secret = e.secret("S").unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{e:?}").contains("hunter2"));
    }
}
