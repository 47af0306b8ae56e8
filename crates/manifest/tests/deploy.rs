//! `scripts/deploy.sh`: the exact `--dry-run` plan for a given manifest (order, one build per
//! function, `--only` filtering, unknown functions refused), the early failures (variables,
//! tools, login), and a real run against fake `gcloud`, `terraform`, `firebase` and `curl` that
//! executes exactly the commands the dry run printed, and nothing when the login is missing.
//!
//! Every run gets a PATH made of symlinks to the few programs the script needs plus, when a
//! test wants them, the fakes: nothing here can reach a real cloud project.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{install_tools, logged_calls, logging_script, root, run_script};
use manifest::Manifest;

const PROJECT: &str = "demo-hearth";
const TAG: &str = "t0123abc";

/// Three functions: a public one with blocking triggers, a private one, and one in its own
/// region whose crate is named differently from the function.
const MANIFEST: &str = r#"
version: 1
defaults:
  region: europe-west1
  resources: {cpu: "1", memory: 256Mi, concurrency: 80, min_instances: 0, max_instances: 20, timeout_seconds: 60}
topics:
  user-signups: {}
  user-signups-dead-letter: {dead_letter: true}
functions:
  signup-hook:
    crate: signup-hook
    description: hook
    public: true
    triggers:
      - {kind: blocking, event: beforeCreate, path: /before-create}
    publishes: [user-signups]
  onboarding:
    crate: onboarding
    description: onboarding
    triggers:
      - {kind: pubsub, topic: user-signups, path: /pubsub/user-signups, ack_deadline_seconds: 60, min_backoff_seconds: 10, max_backoff_seconds: 600, max_delivery_attempts: 10, dead_letter_topic: user-signups-dead-letter}
  fanout:
    crate: feed-fanout
    description: fanout
    region: africa-south1
    triggers:
      - {kind: schedule, job: fanout-sweep, cron: "0 * * * *", path: /jobs/fanout-sweep, attempt_deadline_seconds: 60}
"#;

/// Where one test's files live.
#[derive(Debug)]
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The test manifest, checked by crates/manifest first.
    fn manifest(&self) -> (PathBuf, Manifest) {
        let path = self.path().join("functions.yaml");
        std::fs::write(&path, MANIFEST).unwrap();
        let m = Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
        (path, m)
    }

    /// A directory with only what the script itself needs (bash, python3 with PyYAML, ...).
    fn tools(&self) -> PathBuf {
        let dir = self.path().join("tools");
        if dir.exists() {
            return dir;
        }
        std::fs::create_dir(&dir).unwrap();
        for tool in ["bash", "dirname", "basename", "sed"] {
            let out =
                Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap();
            let found = String::from_utf8(out.stdout).unwrap();
            assert!(out.status.success(), "{tool} is missing on this machine");
            std::os::unix::fs::symlink(found.trim(), dir.join(tool)).unwrap();
        }
        let out = Command::new("python3")
            .args(["-c", "import sys, yaml; print(sys.executable)"])
            .output()
            .unwrap_or_else(|e| panic!("python3 is missing ({e}): apt-get install python3"));
        assert!(
            out.status.success(),
            "python3 cannot import yaml: python3 -m pip install -r infra/requirements-test.txt\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let python = String::from_utf8(out.stdout).unwrap();
        std::os::unix::fs::symlink(python.trim(), dir.join("python3")).unwrap();
        dir
    }

    /// Fake gcloud, terraform, firebase and curl that append their arguments to `calls.log`.
    fn fakes(&self) -> PathBuf {
        let dir = self.path().join("fakes");
        std::fs::create_dir(&dir).unwrap();
        let log = self.log();
        let script = |body: &str| logging_script(&log, body);
        let gcloud = script(
            r#"case "$*" in
  "auth print-access-token"*) [ -z "$FAKE_NO_LOGIN" ] || exit 1; echo access-token ;;
  "auth application-default print-access-token"*) echo adc-token ;;
  "auth print-identity-token"*) echo id-token ;;
  "storage buckets describe"*) exit 1 ;;
  "run services describe"*) echo "https://$4-xyz.a.run.app" ;;
esac
exit 0"#,
        );
        let terraform = script(
            r#"case "$*" in
  *" state show "*) exit 1 ;;
esac
exit 0"#,
        );
        install_tools(
            &dir,
            vec![
                ("gcloud", gcloud),
                ("terraform", terraform),
                ("firebase", script("exit 0")),
                ("curl", script("exit 0")),
            ],
        );
        dir
    }

    fn log(&self) -> PathBuf {
        self.path().join("calls.log")
    }

    fn calls(&self) -> Vec<String> {
        logged_calls(&self.log())
    }
}

/// Runs the script with a clean environment: PATH, HOME and the given variables only.
fn deploy(path: &[&Path], home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_script("deploy.sh", path, home, args, env)
}

fn settings(manifest: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("HEARTH_PROJECT_ID", PROJECT.to_owned()),
        ("HEARTH_FIRESTORE_LOCATION", "eur3".to_owned()),
        ("HEARTH_IMAGE_TAG", TAG.to_owned()),
        ("HEARTH_MANIFEST", manifest.display().to_string()),
    ]
}

fn as_env<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The command lines of a plan (comments dropped).
fn commands(stdout: &str) -> Vec<String> {
    stdout.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

/// What the script must print for `m`, recomputed here from the typed manifest.
fn expected_plan(m: &Manifest, only: Option<&[&str]>) -> Vec<String> {
    let region = &m.defaults.region;
    let repo = format!("{region}-docker.pkg.dev/{PROJECT}/hearth");
    let bucket = format!("{PROJECT}-hearth-tfstate");
    let vars = format!(
        "-var=project_id={PROJECT} -var=firestore_location=eur3 -var=image_repo={repo} -var=image_tag={TAG}"
    );
    let selected: Vec<&String> =
        m.functions.keys().filter(|name| only.is_none_or(|o| o.contains(&name.as_str()))).collect();
    let mut plan = Vec::new();
    if only.is_none() {
        plan.push(format!("gcloud services enable artifactregistry.googleapis.com cloudbuild.googleapis.com cloudresourcemanager.googleapis.com serviceusage.googleapis.com storage.googleapis.com --project={PROJECT}"));
        plan.push(format!("gcloud storage buckets describe gs://{bucket} --project={PROJECT} >/dev/null 2>&1 || gcloud storage buckets create gs://{bucket} --project={PROJECT} --location={region} --uniform-bucket-level-access"));
        plan.push(format!(
            "gcloud storage buckets update gs://{bucket} --versioning --project={PROJECT}"
        ));
        plan.push(format!("gcloud artifacts repositories describe hearth --location={region} --project={PROJECT} >/dev/null 2>&1 || gcloud artifacts repositories create hearth --repository-format=docker --location={region} --project={PROJECT} --description='Hearth function images'"));
    }
    for name in &selected {
        let krate = &m.functions[*name].crate_name;
        plan.push(format!("gcloud builds submit . --project={PROJECT} --config=cloudbuild.yaml --substitutions=_BIN={krate},_FN={name},_REPO={repo},_TAG={TAG}"));
    }
    plan.push(format!("terraform -chdir=infra init -input=false -reconfigure -backend-config=bucket={bucket} -backend-config=prefix=hearth"));
    if only.is_none() {
        plan.push(format!("terraform -chdir=infra state show google_firestore_database.default >/dev/null 2>&1 || ! gcloud firestore databases describe --database='(default)' --project={PROJECT} >/dev/null 2>&1 || terraform -chdir=infra import -input=false {vars} google_firestore_database.default 'projects/{PROJECT}/databases/(default)'"));
        let blocking = m
            .functions
            .values()
            .flat_map(|f| &f.triggers)
            .any(|t| matches!(t, manifest::Trigger::Blocking { .. }));
        if blocking {
            plan.push(format!("terraform -chdir=infra state show 'google_identity_platform_config.auth[0]' >/dev/null 2>&1 || ! curl -fsS -o /dev/null -H \"Authorization: Bearer $(gcloud auth print-access-token)\" -H 'x-goog-user-project: {PROJECT}' https://identitytoolkit.googleapis.com/admin/v2/projects/{PROJECT}/config || terraform -chdir=infra import -input=false {vars} 'google_identity_platform_config.auth[0]' projects/{PROJECT}/config"));
        }
        plan.push(format!("terraform -chdir=infra apply -input=false -auto-approve {vars}"));
        plan.push(format!(
            "firebase deploy --only firestore:rules,firestore:indexes --project={PROJECT} --non-interactive"
        ));
    } else {
        let targets: String = selected
            .iter()
            .map(|name| format!(" -target='google_cloud_run_v2_service.function[\"{name}\"]'"))
            .collect();
        plan.push(format!(
            "terraform -chdir=infra apply -input=false -auto-approve {vars}{targets}"
        ));
    }
    for name in &selected {
        let f = &m.functions[*name];
        let fn_region = f.region.as_ref().unwrap_or(region);
        let url = format!(
            "$(gcloud run services describe {name} --project={PROJECT} --region={fn_region} --format='value(status.url)')"
        );
        if f.public {
            plan.push(format!("curl -fsS --max-time 30 -o /dev/null \"{url}/health\""));
        } else {
            plan.push(format!("curl -fsS --max-time 30 -o /dev/null -H \"Authorization: Bearer $(gcloud auth print-identity-token)\" \"{url}/health\""));
        }
    }
    plan
}

fn assert_plan(found: &[String], want: &[String]) {
    for (i, (f, w)) in found.iter().zip(want).enumerate() {
        assert_eq!(f, w, "plan line {i} differs");
    }
    assert_eq!(
        found.len(),
        want.len(),
        "plan:\n{}\nexpected:\n{}",
        found.join("\n"),
        want.join("\n")
    );
}

#[test]
fn a_dry_run_prints_the_whole_plan_in_order() {
    let sandbox = Sandbox::new();
    let (manifest, m) = sandbox.manifest();
    let settings = settings(&manifest);
    let out = deploy(
        &[&sandbox.fakes(), &sandbox.tools()],
        sandbox.path(),
        &["--dry-run"],
        &as_env(&settings),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_plan(&commands(&stdout), &expected_plan(&m, None));
    let builds = commands(&stdout).iter().filter(|c| c.starts_with("gcloud builds submit")).count();
    assert_eq!(builds, m.functions.len(), "one build per function");
    assert!(stdout.contains("# manual steps that remain:"), "{stdout}");
    assert!(sandbox.calls().is_empty(), "a dry run ran {:?}", sandbox.calls());
}

/// The `# ` lines of a plan, without the `# `.
fn comments(stdout: &str) -> Vec<String> {
    stdout.lines().filter_map(|l| l.strip_prefix("# ")).map(str::to_owned).collect()
}

#[test]
fn the_health_check_avoids_the_paths_cloud_run_reserves() {
    let sandbox = Sandbox::new();
    let (manifest, m) = sandbox.manifest();
    let settings = settings(&manifest);
    let out = deploy(&[&sandbox.tools()], sandbox.path(), &["--dry-run"], &as_env(&settings));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let checks: Vec<String> = commands(&text(&out.stdout))
        .into_iter()
        .filter(|c| c.starts_with("curl -fsS --max-time"))
        .collect();
    assert_eq!(checks.len(), m.functions.len(), "{checks:#?}");
    for check in checks {
        // Cloud Run answers some paths ending in `z` (e.g. /healthz) itself on the public URL,
        // and every path under /_ah/: the check must reach the container.
        let path = check.rsplit(")").next().unwrap().trim_end_matches('"');
        assert_eq!(path, "/health", "{check}");
        assert!(!path.ends_with('z') && !path.starts_with("/_ah/"), "{check}");
    }
}

#[test]
fn a_dry_run_lists_the_slos_and_alert_policies_of_the_manifest() {
    let sandbox = Sandbox::new();
    let (manifest, m) = sandbox.manifest();
    let settings = settings(&manifest);
    let out = deploy(&[&sandbox.tools()], sandbox.path(), &["--dry-run"], &as_env(&settings));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let notes = comments(&stdout);
    let apply = stdout.lines().position(|l| l.starts_with("terraform -chdir=infra apply")).unwrap();
    let listed = |line: &str| {
        let at = stdout
            .lines()
            .position(|l| l == format!("# {line}"))
            .unwrap_or_else(|| panic!("the dry run does not show {line:?}:\n{stdout}"));
        assert!(at < apply, "{line:?} is listed after the apply that creates it");
    };
    listed(
        "monitoring (infra/monitoring.tf), every alert policy notifies: none (incidents show in the Cloud Monitoring console only)",
    );
    for (name, f) in &m.functions {
        let slo = m.slo_of(f);
        let (p95, p99) = (slo.latency_p95_ms.unwrap(), slo.latency_p99_ms.unwrap());
        let (errors, availability) =
            (slo.error_rate_percent.unwrap(), slo.availability_percent.unwrap());
        listed(&format!(
            "  {name}: SLOs availability {availability}%, p95 {p95} ms, p99 {p99} ms; alerts p95 > {p95} ms, p99 > {p99} ms, 5xx > {errors}%"
        ));
    }
    for (topic, t) in &m.topics {
        if t.dead_letter {
            listed(&format!("  dead letters: alert while {topic}--pull holds messages"));
        }
    }
    assert!(notes.iter().any(|n| n.contains("circuit breaker opens")), "{stdout}");

    // The test manifest sets no slo: the built-in objectives are shown.
    assert!(
        stdout.contains("onboarding: SLOs availability 99.95%, p95 300 ms, p99 800 ms"),
        "{stdout}"
    );
    // An override shows up.
    let overridden = sandbox.path().join("overridden.yaml");
    std::fs::write(
        &overridden,
        MANIFEST.replace("    description: onboarding\n", "    description: onboarding\n    slo: {latency_p95_ms: 1500, latency_p99_ms: 4000, error_rate_percent: 0.5}\n"),
    )
    .unwrap();
    Manifest::load(&overridden).unwrap_or_else(|e| panic!("{e}"));
    let mut settings = settings.clone();
    settings.retain(|(k, _)| *k != "HEARTH_MANIFEST");
    settings.push(("HEARTH_MANIFEST", overridden.display().to_string()));
    settings.push((
        "HEARTH_NOTIFICATION_CHANNELS",
        format!("projects/{PROJECT}/notificationChannels/123, projects/{PROJECT}/notificationChannels/456"),
    ));
    let out = deploy(&[&sandbox.tools()], sandbox.path(), &["--dry-run"], &as_env(&settings));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("#   onboarding: SLOs availability 99.95%, p95 1500 ms, p99 4000 ms; alerts p95 > 1500 ms, p99 > 4000 ms, 5xx > 0.5%"),
        "{stdout}"
    );
    let apply = commands(&stdout)
        .into_iter()
        .find(|c| c.starts_with("terraform -chdir=infra apply"))
        .unwrap();
    assert!(
        apply.ends_with(&format!(" -var='notification_channels=[\"projects/{PROJECT}/notificationChannels/123\",\"projects/{PROJECT}/notificationChannels/456\"]'")),
        "{apply}"
    );

    // --only does not apply monitoring, and says so.
    let out = deploy(
        &[&sandbox.tools()],
        sandbox.path(),
        &["--dry-run", "--only", "onboarding"],
        &as_env(&settings),
    );
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("SLOs availability"), "{stdout}");
    assert!(stdout.contains("# monitoring (SLOs, alert policies) is left as it is"), "{stdout}");
}

#[test]
fn only_builds_and_rolls_out_the_named_functions_in_manifest_order() {
    let sandbox = Sandbox::new();
    let (manifest, m) = sandbox.manifest();
    let settings = settings(&manifest);
    let out = deploy(
        &[&sandbox.tools()],
        sandbox.path(),
        &["--dry-run", "--only", "signup-hook,fanout"],
        &as_env(&settings),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = commands(&text(&out.stdout));
    assert_plan(&plan, &expected_plan(&m, Some(&["fanout", "signup-hook"])));
    assert!(plan.iter().all(|c| !c.contains("onboarding")), "{plan:#?}");
    assert!(
        plan.iter().all(|c| !c.starts_with("firebase")),
        "--only leaves rules and indexes alone"
    );
}

#[test]
fn unknown_functions_in_only_are_refused() {
    let sandbox = Sandbox::new();
    let (manifest, _) = sandbox.manifest();
    let settings = settings(&manifest);
    for only in ["onboarding,nope", "nope", ","] {
        let out = deploy(
            &[&sandbox.tools()],
            sandbox.path(),
            &["--dry-run", "--only", only],
            &as_env(&settings),
        );
        assert!(!out.status.success(), "--only {only} was accepted");
        assert!(out.stdout.is_empty(), "a refused run printed a plan");
        let stderr = text(&out.stderr);
        let expected = if only == "," {
            "at least one function"
        } else {
            "unknown function(s) in --only: nope"
        };
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn missing_variables_fail_early_even_in_a_dry_run() {
    let sandbox = Sandbox::new();
    let (manifest, _) = sandbox.manifest();
    let manifest = manifest.display().to_string();
    let out = deploy(
        &[&sandbox.tools()],
        sandbox.path(),
        &["--dry-run"],
        &[("HEARTH_MANIFEST", manifest.as_str())],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("HEARTH_PROJECT_ID") && stderr.contains("HEARTH_FIRESTORE_LOCATION"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let out = deploy(
        &[&sandbox.tools()],
        sandbox.path(),
        &["--dry-run"],
        &[
            ("HEARTH_MANIFEST", manifest.as_str()),
            ("HEARTH_PROJECT_ID", "Not_A_Project"),
            ("HEARTH_FIRESTORE_LOCATION", "eur3"),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("HEARTH_PROJECT_ID=Not_A_Project"), "{}", text(&out.stderr));
}

#[test]
fn missing_tools_stop_a_real_run_and_are_reported_by_a_dry_run() {
    let sandbox = Sandbox::new();
    let (manifest, m) = sandbox.manifest();
    let settings = settings(&manifest);
    let tools = sandbox.tools();

    let out = deploy(&[&tools], sandbox.path(), &[], &as_env(&settings));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for tool in ["gcloud", "terraform", "curl"] {
        assert!(stderr.contains(&format!("- {tool}:")), "{tool} not named: {stderr}");
    }
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    let out = deploy(&[&tools], sandbox.path(), &["--dry-run"], &as_env(&settings));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("a real run would stop here"), "{}", text(&out.stderr));
    assert_plan(&commands(&text(&out.stdout)), &expected_plan(&m, None));
}

#[test]
fn a_real_run_refuses_another_manifest_than_the_one_terraform_reads() {
    let sandbox = Sandbox::new();
    let (manifest, _) = sandbox.manifest();
    let settings = settings(&manifest);
    let out =
        deploy(&[&sandbox.fakes(), &sandbox.tools()], sandbox.path(), &[], &as_env(&settings));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("only for --dry-run"), "{}", text(&out.stderr));
    assert!(sandbox.calls().is_empty(), "{:?}", sandbox.calls());
}

#[test]
fn without_a_login_a_real_run_changes_nothing() {
    let sandbox = Sandbox::new();
    let fakes = sandbox.fakes();
    let out = deploy(
        &[&fakes, &sandbox.tools()],
        sandbox.path(),
        &[],
        &[
            ("HEARTH_PROJECT_ID", PROJECT),
            ("HEARTH_FIRESTORE_LOCATION", "eur3"),
            ("HEARTH_IMAGE_TAG", TAG),
            ("FAKE_NO_LOGIN", "1"),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not logged in"), "{}", text(&out.stderr));
    assert_eq!(sandbox.calls(), ["gcloud auth print-access-token"]);
}

#[test]
fn a_real_run_executes_exactly_the_dry_run_plan() {
    let sandbox = Sandbox::new();
    let fakes = sandbox.fakes();
    let tools = sandbox.tools();
    let env = [
        ("HEARTH_PROJECT_ID", PROJECT),
        ("HEARTH_FIRESTORE_LOCATION", "eur3"),
        ("HEARTH_IMAGE_TAG", TAG),
    ];
    let m = Manifest::load(&root().join("shared/functions.yaml")).unwrap_or_else(|e| panic!("{e}"));

    let dry = deploy(&[&fakes, &tools], sandbox.path(), &["--dry-run"], &env);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let planned = commands(&text(&dry.stdout));
    assert_plan(&planned, &expected_plan(&m, None));
    assert!(sandbox.calls().is_empty());

    let real = deploy(&[&fakes, &tools], sandbox.path(), &[], &env);
    assert!(real.status.success(), "{}\n{}", text(&real.stdout), text(&real.stderr));
    let executed: Vec<String> = text(&real.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("+ "))
        .map(str::to_owned)
        .collect();
    assert_eq!(executed, planned, "a real run must execute exactly the dry-run plan");

    let calls = sandbox.calls();
    assert_eq!(
        calls[0], "gcloud auth print-access-token",
        "the login is checked first: {calls:#?}"
    );
    let count = |prefix: &str| calls.iter().filter(|c| c.starts_with(prefix)).count();
    assert_eq!(count("gcloud builds submit"), m.functions.len(), "{calls:#?}");
    assert_eq!(count("terraform -chdir=infra apply"), 1, "{calls:#?}");
    assert_eq!(count("firebase deploy --only firestore:rules,firestore:indexes"), 1, "{calls:#?}");
    // The state bucket did not exist (fake describe fails): it was created.
    assert_eq!(count("gcloud storage buckets create"), 1, "{calls:#?}");
    // The image builds come before Terraform, Terraform before the rules.
    let first = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix)).unwrap();
    assert!(first("gcloud builds submit") < first("terraform -chdir=infra apply"));
    assert!(first("terraform -chdir=infra apply") < first("firebase deploy"));
    let health: BTreeSet<&String> =
        calls.iter().filter(|c| c.starts_with("curl") && c.ends_with("/health")).collect();
    assert_eq!(health.len(), m.functions.len(), "one health check per function: {calls:#?}");
}

#[test]
fn firebase_json_points_at_the_rules_and_indexes_and_pins_the_emulator_ports() {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("firebase.json")).unwrap())
            .unwrap();
    for key in ["rules", "indexes"] {
        let file =
            config["firestore"][key].as_str().unwrap_or_else(|| panic!("firestore.{key} unset"));
        assert!(root().join(file).is_file(), "firebase.json names {file}, which does not exist");
    }
    let mut ports = BTreeSet::new();
    for (emulator, port) in
        [("auth", 9099), ("firestore", 8080), ("pubsub", 8085), ("hub", 4400), ("logging", 4500)]
    {
        assert_eq!(config["emulators"][emulator]["port"], port, "{emulator} emulator port");
        assert_eq!(config["emulators"][emulator]["host"], "127.0.0.1", "{emulator} emulator host");
        assert!(ports.insert(port));
    }
    assert_eq!(config["emulators"]["ui"]["enabled"], false);
}

#[test]
fn one_dockerfile_and_one_cloud_build_config_build_every_function() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> =
        dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let position = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("Dockerfile lacks `{prefix}`"))
    };
    // The dependency layer is built before the sources are copied and before BIN is known, so
    // one cached layer serves every function.
    let cook = position("RUN cargo chef cook --release");
    let copy =
        cook + lines[cook..].iter().position(|l| *l == "COPY . .").expect("COPY . . after cook");
    let bin = position("ARG BIN");
    let build = position("&& cargo build --release --locked -p \"${BIN}\" --bin \"${BIN}\"");
    assert!(position("RUN cargo chef prepare") < cook && cook < copy && copy < bin && bin < build);
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    assert!(
        lines[last_from].starts_with("FROM gcr.io/distroless/cc-debian12:nonroot"),
        "{}",
        lines[last_from]
    );
    for wanted in ["USER nonroot:nonroot", "EXPOSE 8080", "ENTRYPOINT [\"/function\"]"] {
        assert!(lines[last_from..].contains(&wanted), "the runtime stage lacks `{wanted}`");
    }

    let m = Manifest::load(&root().join("shared/functions.yaml")).unwrap_or_else(|e| panic!("{e}"));
    for f in m.functions.values() {
        let main = root().join("functions").join(&f.crate_name).join("src/main.rs");
        assert!(
            main.is_file(),
            "BIN={} has no binary: {} is missing",
            f.crate_name,
            main.display()
        );
    }

    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let ignored: BTreeSet<&str> =
        ignore.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    for needed in ["crates", "functions", "shared", "Cargo.toml", "Cargo.lock"] {
        assert!(!ignored.contains(needed), ".dockerignore drops {needed}, which the build needs");
    }
    for heavy in ["target", "node_modules", ".git"] {
        assert!(ignored.contains(heavy), ".dockerignore must drop {heavy}");
    }

    let build: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root().join("cloudbuild.yaml")).unwrap())
            .unwrap();
    for substitution in ["_BIN", "_FN", "_REPO", "_TAG"] {
        assert!(
            build["substitutions"].get(substitution).is_some(),
            "cloudbuild.yaml lacks {substitution}"
        );
    }
    let script = build["steps"][0]["args"].as_array().unwrap().last().unwrap().as_str().unwrap();
    for wanted in
        ["--build-arg \"BIN=$$bin\"", "--tag \"$$repo/$$fn:$$tag\"", "--push", "build-cache:chef"]
    {
        assert!(script.contains(wanted), "the Cloud Build step lacks {wanted}:\n{script}");
    }
}
