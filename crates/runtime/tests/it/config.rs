//! Config parsing: defaults, typed errors that name the variable, refused combinations, and the
//! binary failing fast on a bad value.

use std::collections::HashMap;
use std::time::Duration;

use runtime::config::{
    DEFAULT_GOOGLE_OIDC_JWKS_URL, DEFAULT_SECURETOKEN_JWKS_URL, LogFormat, Platform,
};
use runtime::{BaseConfig, ConfigError, Env};

fn load(pairs: &[(&str, &str)]) -> Result<BaseConfig, ConfigError> {
    BaseConfig::from_map(
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>(),
    )
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let c = load(&[]).unwrap();
    assert_eq!(c.port, 8080);
    assert_eq!(c.project_id, None);
    assert_eq!(c.securetoken_jwks_url, DEFAULT_SECURETOKEN_JWKS_URL);
    assert_eq!(c.google_oidc_jwks_url, DEFAULT_GOOGLE_OIDC_JWKS_URL);
    assert_eq!(c.google_oidc_jwks_url, "https://www.googleapis.com/oauth2/v3/certs");
    assert_eq!(c.shutdown_grace, Duration::from_secs(8));
    assert_eq!(c.request_timeout, Duration::from_secs(60));
    assert_eq!(c.body_limit, 1024 * 1024);
    assert!(c.cors_origins.is_empty());
    assert!(c.oidc_allowed_emails.is_empty());
    assert_eq!(c.log_format, LogFormat::Pretty);
    assert_eq!(c.platform(), Platform::CloudRun);
    assert!(
        !c.auth_emulator()
            && !c.firestore_emulator()
            && !c.pubsub_emulator()
            && !c.insecure_local_push
    );
    assert_eq!(c, BaseConfig::local());
}

#[test]
fn every_fixed_name_is_read() {
    let c = load(&[
        ("PORT", "9000"),
        ("GOOGLE_CLOUD_PROJECT", "demo"),
        ("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8081"),
        ("PUBSUB_EMULATOR_HOST", "localhost:8085"),
        ("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099"),
        ("HEARTH_SECURETOKEN_JWKS_URL", "http://127.0.0.1:1234/jwks"),
        ("HEARTH_GOOGLE_OIDC_JWKS_URL", "http://127.0.0.1:1234/oidc"),
        ("HEARTH_BLOCKING_AUDIENCE", "https://hook.example.com"),
        ("HEARTH_OIDC_AUDIENCE", "https://svc.example.com"),
        (
            "HEARTH_OIDC_ALLOWED_EMAILS",
            "push@p.iam.gserviceaccount.com, sched@p.iam.gserviceaccount.com",
        ),
        ("HEARTH_INSECURE_LOCAL_PUSH", "1"),
        ("RUST_LOG", "info,runtime=debug"),
        ("HEARTH_LOG_FORMAT", "json"),
        ("HEARTH_SHUTDOWN_GRACE_SECS", "3"),
        ("HEARTH_REQUEST_TIMEOUT_SECS", "20"),
        ("HEARTH_CORS_ORIGINS", "https://app.example.com,http://localhost:5173"),
        ("HEARTH_BODY_LIMIT_BYTES", "2048"),
    ])
    .unwrap();
    assert_eq!(c.port, 9000);
    assert_eq!(c.project_id.as_deref(), Some("demo"));
    assert!(c.firestore_emulator() && c.pubsub_emulator() && c.auth_emulator());
    assert_eq!(c.securetoken_jwks_url, "http://127.0.0.1:1234/jwks");
    assert_eq!(c.google_oidc_jwks_url, "http://127.0.0.1:1234/oidc");
    assert_eq!(c.blocking_audience.as_deref(), Some("https://hook.example.com"));
    assert_eq!(c.oidc_audience.as_deref(), Some("https://svc.example.com"));
    assert_eq!(
        c.oidc_allowed_emails,
        ["push@p.iam.gserviceaccount.com", "sched@p.iam.gserviceaccount.com"]
    );
    assert!(c.insecure_local_push);
    assert_eq!(c.log_filter.as_deref(), Some("info,runtime=debug"));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.shutdown_grace, Duration::from_secs(3));
    assert_eq!(c.request_timeout, Duration::from_secs(20));
    assert_eq!(c.cors_origins, ["https://app.example.com", "http://localhost:5173"]);
    assert_eq!(c.body_limit, 2048);
}

#[test]
fn log_format_defaults_to_json_on_the_platforms() {
    assert_eq!(load(&[("K_SERVICE", "api")]).unwrap().log_format, LogFormat::Json);
    assert_eq!(load(&[("AWS_LAMBDA_FUNCTION_NAME", "api")]).unwrap().log_format, LogFormat::Json);
    assert_eq!(
        load(&[("K_SERVICE", "api"), ("HEARTH_LOG_FORMAT", "pretty")]).unwrap().log_format,
        LogFormat::Pretty
    );
    assert_eq!(
        load(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]).unwrap().platform(),
        Platform::Lambda
    );
}

#[test]
fn errors_name_the_variable() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "HEARTH_REQUEST_TIMEOUT_SECS",
            "abc",
            r#"HEARTH_REQUEST_TIMEOUT_SECS: expected an integer number of seconds, got "abc""#,
        ),
        (
            "HEARTH_SHUTDOWN_GRACE_SECS",
            "8s",
            r#"HEARTH_SHUTDOWN_GRACE_SECS: expected an integer number of seconds, got "8s""#,
        ),
        (
            "HEARTH_REQUEST_TIMEOUT_SECS",
            "0",
            "HEARTH_REQUEST_TIMEOUT_SECS: expected a positive integer number of seconds",
        ),
        ("PORT", "99999", r#"PORT: expected a TCP port number (0-65535), got "99999""#),
        (
            "HEARTH_BODY_LIMIT_BYTES",
            "1MB",
            r#"HEARTH_BODY_LIMIT_BYTES: expected a positive integer number of bytes, got "1MB""#,
        ),
        ("HEARTH_LOG_FORMAT", "xml", r#"HEARTH_LOG_FORMAT: expected json or pretty, got "xml""#),
        ("HEARTH_INSECURE_LOCAL_PUSH", "perhaps", "HEARTH_INSECURE_LOCAL_PUSH: expected a boolean"),
        (
            "FIRESTORE_EMULATOR_HOST",
            "localhost",
            r#"FIRESTORE_EMULATOR_HOST: expected host:port, got "localhost""#,
        ),
        ("PUBSUB_EMULATOR_HOST", "http://x:1/", "PUBSUB_EMULATOR_HOST: expected host:port"),
        (
            "HEARTH_SECURETOKEN_JWKS_URL",
            "not a url",
            "HEARTH_SECURETOKEN_JWKS_URL: expected an absolute http(s) URL",
        ),
        (
            "HEARTH_GOOGLE_OIDC_JWKS_URL",
            "file:///etc/passwd",
            "HEARTH_GOOGLE_OIDC_JWKS_URL: expected an absolute http(s) URL",
        ),
        (
            "HEARTH_CORS_ORIGINS",
            "https://ok.example.com,*",
            r#"HEARTH_CORS_ORIGINS: expected a comma list of origins"#,
        ),
        (
            "HEARTH_CORS_ORIGINS",
            "https://app.example.com/path",
            "HEARTH_CORS_ORIGINS: expected a comma list of origins",
        ),
        ("RUST_LOG", "runtime=loud", r#"RUST_LOG: expected a tracing filter"#),
    ];
    for (var, value, expected) in cases {
        let err = load(&[(var, value)]).expect_err(var);
        assert_eq!(err.var(), *var);
        assert!(
            err.to_string().starts_with(expected),
            "{var}={value}: got {err}, want prefix {expected}"
        );
    }
}

#[test]
fn insecure_local_push_is_refused_outside_emulator_mode() {
    let err = load(&[("HEARTH_INSECURE_LOCAL_PUSH", "1")]).unwrap_err();
    assert_eq!(err.var(), "HEARTH_INSECURE_LOCAL_PUSH");
    assert!(err.to_string().contains("PUBSUB_EMULATOR_HOST"), "{err}");
    assert!(matches!(err, ConfigError::Refused { .. }));

    let ok =
        load(&[("HEARTH_INSECURE_LOCAL_PUSH", "1"), ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")])
            .unwrap();
    assert!(ok.insecure_local_push);
    assert!(!load(&[("HEARTH_INSECURE_LOCAL_PUSH", "0")]).unwrap().insecure_local_push);
}

#[test]
fn functions_can_build_their_own_config_on_env() {
    let env =
        Env::from_pairs([("HEARTH_FANOUT_PAGE", "250"), ("HEARTH_STRIPE_SECRET", "sk_test_123")]);
    let page: u32 = env.parse_or("HEARTH_FANOUT_PAGE", "an integer page size", 100).unwrap();
    assert_eq!(page, 250);
    let secret = env.required_secret("HEARTH_STRIPE_SECRET").unwrap();
    assert!(!format!("{secret:?}").contains("sk_test_123"));
    let missing = env.required("HEARTH_PESAPAL_KEY").unwrap_err();
    assert_eq!(missing.to_string(), "HEARTH_PESAPAL_KEY: required but not set");
}

#[tokio::test]
async fn the_binary_fails_fast_naming_the_variable() {
    for (env, needle) in [
        (
            vec![("HEARTH_REQUEST_TIMEOUT_SECS", "abc")],
            r#"HEARTH_REQUEST_TIMEOUT_SECS: expected an integer number of seconds, got "abc""#,
        ),
        (vec![("HEARTH_INSECURE_LOCAL_PUSH", "1")], "HEARTH_INSECURE_LOCAL_PUSH: refused"),
    ] {
        let output = tokio::time::timeout(
            Duration::from_secs(10),
            super::helpers::hello_command(&env).output(),
        )
        .await
        .expect("exits promptly")
        .expect("runs");
        assert!(!output.status.success(), "{env:?} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "stderr of {env:?}: {stderr}");
    }
}
