//! The repository's manifest is valid and matches the workspace; every validation rule refuses
//! what it should.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use manifest::{Manifest, ManifestError};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn repo_manifest() -> Manifest {
    Manifest::load(&root().join("shared/functions.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_repository_manifest_is_valid() {
    let m = repo_manifest();
    assert!(m.functions.contains_key("signup-hook"));
}

#[test]
fn every_function_crate_is_in_the_manifest_and_the_reverse() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let declared: BTreeSet<String> =
        repo_manifest().functions.values().map(|f| f.crate_name.clone()).collect();
    assert_eq!(on_disk, declared, "functions/ and shared/functions.yaml disagree");
}

const VALID: &str = r#"
version: 1
defaults:
  region: europe-west1
  resources: {cpu: "1", memory: 256Mi, concurrency: 80, min_instances: 0, max_instances: 10, timeout_seconds: 60}
topics:
  jobs-done: {}
  jobs-done-dead-letter: {dead_letter: true}
functions:
  producer:
    crate: producer
    description: p
    triggers:
      - {kind: schedule, job: nightly, cron: "0 3 * * *", path: /jobs/nightly, attempt_deadline_seconds: 60}
    publishes: [jobs-done]
  consumer:
    crate: consumer
    description: c
    triggers:
      - kind: pubsub
        topic: jobs-done
        path: /pubsub/jobs-done
        ack_deadline_seconds: 60
        min_backoff_seconds: 10
        max_backoff_seconds: 600
        max_delivery_attempts: 5
        dead_letter_topic: jobs-done-dead-letter
"#;

fn problems(yaml: &str) -> Vec<String> {
    Manifest::parse(yaml).unwrap_or_else(|e| panic!("{e}")).validate().err().unwrap_or_default()
}

#[test]
fn a_small_valid_manifest_passes() {
    assert_eq!(problems(VALID), Vec::<String>::new());
}

#[test]
fn each_rule_refuses_what_it_should() {
    let cases = [
        (VALID.replace("topic: jobs-done\n", "topic: jobs-gone\n"), "undeclared topic `jobs-gone`"),
        (
            VALID.replace("publishes: [jobs-done]", "publishes: [jobs-done-dead-letter]"),
            "published to but nothing subscribes",
        ),
        (VALID.replace("path: /jobs/nightly", "path: /jobs/other"), "must target `/jobs/nightly`"),
        (VALID.replace("\"0 3 * * *\"", "\"0 3 * *\""), "five fields"),
        (
            VALID.replace("max_delivery_attempts: 5", "max_delivery_attempts: 2"),
            "max_delivery_attempts",
        ),
        (
            VALID.replace("ack_deadline_seconds: 60", "ack_deadline_seconds: 5"),
            "ack_deadline_seconds",
        ),
        (
            VALID
                .replace("jobs-done-dead-letter: {dead_letter: true}", "jobs-done-dead-letter: {}"),
            "not marked `dead_letter: true`",
        ),
        (VALID.replace("memory: 256Mi", "memory: lots"), "memory `lots`"),
        (VALID.replace("min_instances: 0", "min_instances: 50"), "exceeds max_instances"),
        (VALID.replace("path: /pubsub/jobs-done", "path: pubsub/jobs-done"), "must start with `/`"),
        (VALID.replace("version: 1", "version: 2"), "version 2"),
        (
            VALID.replace("  jobs-done: {}\n", "  jobs-done: {}\n  orphan-topic: {}\n"),
            "`orphan-topic` is declared but unused",
        ),
    ];
    for (yaml, expected) in cases {
        let found = problems(&yaml);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "expected a problem containing {expected:?}, got {found:?}"
        );
    }
}

#[test]
fn unknown_fields_and_bad_files_are_clear_errors() {
    let err = Manifest::parse(&VALID.replace("description: p", "description: p\n    triggerz: []"))
        .unwrap_err();
    assert!(err.contains("triggerz"), "{err}");
    let missing = Manifest::load(Path::new("/nonexistent/functions.yaml")).unwrap_err();
    assert!(matches!(missing, ManifestError::Read { .. }));
}

#[test]
fn cors_origins_are_exact_https_origins_per_environment() {
    let with = |origins: &str| {
        VALID.replace(
            "    description: c\n",
            &format!("    description: c\n    cors:\n      production: [{origins}]\n"),
        )
    };
    assert_eq!(
        problems(&with("\"https://app.example.com\", \"http://localhost:5173\"")),
        Vec::<String>::new()
    );
    for (origins, expected) in [
        ("\"*\"", "wildcard"),
        ("\"https://*.example.com\"", "wildcard"),
        ("\"http://app.example.com\"", "must use https"),
        ("\"https://app.example.com/\"", "no path"),
        ("\"https://app.example.com/app\"", "no path"),
        ("\"app.example.com\"", "scheme://host"),
    ] {
        let found = problems(&with(origins));
        assert!(found.iter().any(|p| p.contains(expected)), "{origins}: {expected} in {found:?}");
    }
    let m = repo_manifest();
    let api = &m.functions["api"];
    assert!(!api.cors_origins("local").is_empty(), "devstack serves the api to a local origin");
    assert!(!api.cors_origins("production").is_empty(), "deploys export the api's origins");
    assert!(m.functions["payment-processor"].cors_origins("production").is_empty());
}
