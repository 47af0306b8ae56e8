//! `scripts/deploy-lambda.sh`: which functions go to AWS Lambda (recomputed here from the typed
//! manifest), the exact `--dry-run` plan, `--only` and variable checks, and a real run against
//! fake `cargo`, `aws`, `gcloud` and `curl` that executes what the dry run printed, writes the
//! secrets into a mode-600 env file and never prints them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{install_tools, logged_calls, logging_script, root, run_script};
use manifest::{FunctionSpec, HttpAuth, Manifest, Trigger};

const PROJECT: &str = "demo-hearth";
const REGION: &str = "eu-west-1";
const ROLE: &str = "arn:aws:iam::123456789012:role/hearth-lambda";

/// A callable API with secrets and CORS, a provider webhook, a private push consumer and a
/// public function with an operator (OIDC) route.
const MANIFEST: &str = r#"
version: 1
defaults:
  region: europe-west1
  resources: {cpu: "1", memory: 256Mi, concurrency: 80, min_instances: 0, max_instances: 20, timeout_seconds: 60}
topics:
  user-signups: {}
  user-signups-dead-letter: {dead_letter: true}
functions:
  web:
    crate: web-fn
    description: web
    public: true
    resources: {memory: 1Gi, timeout_seconds: 1200, max_instances: 7}
    cors:
      production: ["https://a.example", "https://b.example"]
      staging: ["https://s.example"]
    triggers:
      - {kind: http, path: /call, methods: [POST], auth: firebase}
    env: {HEARTH_Z: "2", HEARTH_A: "1"}
    secrets: {HEARTH_KEY: key-secret, HEARTH_B_KEY: b-secret}
  hook:
    crate: hook
    description: hook
    public: true
    triggers:
      - {kind: http, path: /stripe, methods: [POST], auth: provider}
  worker:
    crate: worker
    description: worker
    triggers:
      - {kind: pubsub, topic: user-signups, path: /pubsub/user-signups, ack_deadline_seconds: 60, min_backoff_seconds: 10, max_backoff_seconds: 600, max_delivery_attempts: 10, dead_letter_topic: user-signups-dead-letter}
  ops:
    crate: ops
    description: ops
    public: true
    triggers:
      - {kind: http, path: /a, methods: [POST], auth: firebase}
      - {kind: http, path: /b, methods: [POST], auth: oidc}
"#;

/// The rule: public, and every trigger is HTTP that the app authenticates itself.
fn lambda_capable(f: &FunctionSpec) -> bool {
    f.public
        && f.resources.min_instances.unwrap_or(0) == 0
        && !f.triggers.is_empty()
        && f.triggers.iter().all(|t| {
            matches!(t, Trigger::Http { auth: HttpAuth::Firebase | HttpAuth::Provider, .. })
        })
}

fn megabytes(memory: &str) -> u32 {
    if let Some(gi) = memory.strip_suffix("Gi") {
        gi.parse::<u32>().unwrap() * 1024
    } else {
        memory.strip_suffix("Mi").unwrap().parse().unwrap()
    }
}

/// The plan the script must print for `m` (commands only), recomputed from the typed manifest.
fn expected_plan(m: &Manifest, work: &str, creds: &str, only: Option<&[&str]>) -> Vec<String> {
    let creds_name = Path::new(creds).file_name().unwrap().to_str().unwrap();
    let mut plan = vec![format!("mkdir -p {work} && chmod 700 {work}")];
    for (name, f) in &m.functions {
        if !lambda_capable(f) || only.is_some_and(|o| !o.contains(&name.as_str())) {
            continue;
        }
        let res = f.resources.or(&m.defaults.resources);
        let (krate, file) = (&f.crate_name, format!("{work}/{name}.env"));
        plan.push(format!("cargo lambda build --release --arm64 --bin {krate} --output-format zip --include {creds}"));
        plan.push(format!("install -m 600 /dev/null {file}"));
        plan.push(format!("echo GOOGLE_CLOUD_PROJECT={PROJECT} >> {file}"));
        plan.push(format!("echo GOOGLE_APPLICATION_CREDENTIALS=/var/task/{creds_name} >> {file}"));
        let mut env = f.env.clone();
        let origins = f.cors_origins("production");
        if !origins.is_empty() {
            env.insert("HEARTH_CORS_ORIGINS".to_owned(), origins.join(","));
        }
        let max = res.max_instances.unwrap();
        env.insert("HEARTH_WRITE_BUDGET_INSTANCES".to_owned(), max.to_string());
        for (k, v) in &env {
            plan.push(format!("echo '{k}={v}' >> {file}"));
        }
        for (k, secret) in &f.secrets {
            plan.push(format!("echo {k}=\"$(gcloud secrets versions access latest --secret={secret} --project={PROJECT})\" >> {file}"));
        }
        let memory = megabytes(res.memory.as_deref().unwrap());
        let timeout = res.timeout_seconds.unwrap().min(900);
        plan.push(format!("cargo lambda deploy {name} --binary-name {krate} --region {REGION} --iam-role {ROLE} --memory {memory} --timeout {timeout} --enable-function-url --env-file {file} --tag hearth:function={name}"));
        plan.push(format!("aws lambda put-function-concurrency --function-name {name} --reserved-concurrent-executions {max} --region {REGION}"));
        plan.push(format!("curl -fsS --retry 5 --retry-all-errors \"$(aws lambda get-function-url-config --function-name {name} --region {REGION} --query FunctionUrl --output text)health\""));
    }
    plan
}

/// Where one test's files live.
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

    fn manifest(&self) -> (PathBuf, Manifest) {
        let path = self.path().join("functions.yaml");
        std::fs::write(&path, MANIFEST).unwrap();
        let m = Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
        (path, m)
    }

    /// Only what the script itself needs (bash, python3 with PyYAML, coreutils it calls).
    fn tools(&self) -> PathBuf {
        let dir = self.path().join("tools");
        std::fs::create_dir(&dir).unwrap();
        for tool in ["bash", "dirname", "basename", "sed", "mkdir", "chmod", "install"] {
            let out =
                Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap();
            assert!(out.status.success(), "{tool} is missing on this machine");
            let found = String::from_utf8(out.stdout).unwrap();
            std::os::unix::fs::symlink(found.trim(), dir.join(tool)).unwrap();
        }
        let out = Command::new("python3")
            .args(["-c", "import sys, yaml; print(sys.executable)"])
            .output()
            .unwrap_or_else(|e| panic!("python3 is missing ({e}): apt-get install python3"));
        assert!(
            out.status.success(),
            "python3 cannot import yaml: python3 -m pip install -r infra/requirements-test.txt"
        );
        let python = String::from_utf8(out.stdout).unwrap();
        std::os::unix::fs::symlink(python.trim(), dir.join("python3")).unwrap();
        dir
    }

    /// Fake cargo (with cargo-lambda), aws, gcloud and curl that log their arguments.
    fn fakes(&self) -> PathBuf {
        let dir = self.path().join("fakes");
        std::fs::create_dir(&dir).unwrap();
        let log = self.log();
        let script = |body: &str| logging_script(&log, body);
        let aws = script(
            r#"case "$*" in
  "lambda get-function-url-config"*) echo "https://$4.lambda-url.eu-west-1.on.aws/" ;;
esac
exit 0"#,
        );
        // `gcloud secrets versions access latest --secret=<id> ...` prints value-of-<id>.
        let gcloud = script(
            r#"case "$*" in
  "secrets versions access"*) echo "value-of-${5#--secret=}" ;;
esac
exit 0"#,
        );
        install_tools(
            &dir,
            vec![
                ("cargo", script("exit 0")),
                ("cargo-lambda", script("exit 0")),
                ("aws", aws),
                ("gcloud", gcloud),
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

/// Runs the script with PATH, HOME and the given variables only, from `home`.
fn deploy(path: &[&Path], home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_script("deploy-lambda.sh", path, home, args, env)
}

fn settings<'a>(manifest: &'a str, work: &'a str, creds: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("HEARTH_PROJECT_ID", PROJECT),
        ("HEARTH_AWS_REGION", REGION),
        ("HEARTH_LAMBDA_ROLE_ARN", ROLE),
        ("HEARTH_GCP_CREDENTIALS", creds),
        ("HEARTH_MANIFEST", manifest),
        ("HEARTH_LAMBDA_WORK_DIR", work),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn commands(stdout: &str) -> Vec<String> {
    stdout.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

#[test]
fn the_dry_run_plan_deploys_exactly_the_lambda_capable_functions() {
    let sb = Sandbox::new();
    let (path, m) = sb.manifest();
    let (manifest, work) =
        (path.display().to_string(), sb.path().join("work").display().to_string());
    let tools = sb.tools();
    let out =
        deploy(&[&tools], sb.path(), &["--dry-run"], &settings(&manifest, &work, "creds/gcp.json"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    assert_eq!(commands(&stdout), expected_plan(&m, &work, "creds/gcp.json", None));
    // The others are named with why they stay on Google Cloud.
    assert!(stdout.contains("# stays on Google Cloud: worker (private, pubsub)"), "{stdout}");
    assert!(stdout.contains("# stays on Google Cloud: ops (http auth oidc)"), "{stdout}");
    // The memory limit and the 900 s cap came through.
    assert!(stdout.contains("--memory 1024 --timeout 900"), "{stdout}");
    // Without the tools, the plan still prints and says what is missing.
    assert!(text(&out.stderr).contains("missing tools: cargo-lambda aws gcloud curl"));
    assert!(!work_exists(&work), "a dry run changes nothing");

    let only = deploy(
        &[&tools],
        sb.path(),
        &["--dry-run", "--only", "hook"],
        &settings(&manifest, &work, "creds/gcp.json"),
    );
    assert!(only.status.success(), "{}", text(&only.stderr));
    assert_eq!(
        commands(&text(&only.stdout)),
        expected_plan(&m, &work, "creds/gcp.json", Some(&["hook"]))
    );
}

fn work_exists(work: &str) -> bool {
    Path::new(work).exists()
}

#[test]
fn the_repository_manifest_sends_api_and_payment_webhook_to_lambda() {
    let m = Manifest::load(&root().join("shared/functions.yaml")).unwrap();
    let capable: Vec<&str> =
        m.functions.iter().filter(|(_, f)| lambda_capable(f)).map(|(n, _)| n.as_str()).collect();
    assert_eq!(capable, ["api", "payment-webhook"]);

    let sb = Sandbox::new();
    let tools = sb.tools();
    let manifest = root().join("shared/functions.yaml").display().to_string();
    let out = deploy(&[&tools], sb.path(), &["--dry-run"], &settings(&manifest, "w", "gcp.json"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(commands(&text(&out.stdout)), expected_plan(&m, "w", "gcp.json", None));
}

#[test]
fn functions_that_stay_on_google_cloud_and_missing_variables_are_refused() {
    let sb = Sandbox::new();
    let (path, _) = sb.manifest();
    let manifest = path.display().to_string();
    let tools = sb.tools();
    let base = settings(&manifest, "w", "gcp.json");
    for (only, says) in [
        ("worker", "worker stays on Google Cloud (private, pubsub)"),
        ("hook,nope", "unknown function in --only: nope"),
    ] {
        let out = deploy(&[&tools], sb.path(), &["--dry-run", "--only", only], &base);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
        assert_eq!(out.stdout, b"", "nothing planned");
    }
    for var in [
        "HEARTH_PROJECT_ID",
        "HEARTH_AWS_REGION",
        "HEARTH_LAMBDA_ROLE_ARN",
        "HEARTH_GCP_CREDENTIALS",
    ] {
        let env: Vec<_> = base.iter().copied().filter(|(k, _)| *k != var).collect();
        let out = deploy(&[&tools], sb.path(), &["--dry-run"], &env);
        assert!(!out.status.success(), "{var}");
        assert!(text(&out.stderr).contains(var), "{var}: {}", text(&out.stderr));
    }
    let mut bad_role = base.clone();
    bad_role.retain(|(k, _)| *k != "HEARTH_LAMBDA_ROLE_ARN");
    bad_role.push(("HEARTH_LAMBDA_ROLE_ARN", "hearth-lambda"));
    let out = deploy(&[&tools], sb.path(), &["--dry-run"], &bad_role);
    assert!(text(&out.stderr).contains("is not an IAM role ARN"), "{}", text(&out.stderr));
}

#[test]
fn a_real_run_executes_the_plan_and_keeps_secrets_out_of_the_output() {
    let sb = Sandbox::new();
    let (path, m) = sb.manifest();
    let manifest = path.display().to_string();
    let creds = sb.path().join("gcp.json");
    std::fs::write(&creds, "{}").unwrap();
    let creds = creds.display().to_string();
    let work = sb.path().join("work").display().to_string();
    let (tools, fakes) = (sb.tools(), sb.fakes());
    let env = settings(&manifest, &work, &creds);

    let dry = deploy(&[&fakes, &tools], sb.path(), &["--dry-run"], &env);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(sb.calls().is_empty(), "a dry run calls nothing: {:?}", sb.calls());
    let real = deploy(&[&fakes, &tools], sb.path(), &[], &env);
    let stdout = text(&real.stdout);
    assert!(real.status.success(), "{}\n{stdout}", text(&real.stderr));
    // It printed the same plan it ran.
    assert_eq!(commands(&stdout), commands(&text(&dry.stdout)));
    assert_eq!(commands(&stdout), expected_plan(&m, &work, &creds, None));

    // The external commands ran in plan order: per function build, secrets, deploy, cap, check.
    let calls = sb.calls();
    let expected_calls: Vec<String> = [("hook", vec![]), ("web", vec!["b-secret", "key-secret"])]
        .into_iter()
        .flat_map(|(name, secrets)| {
            let krate = &m.functions[name].crate_name;
            let mut c = vec![format!("cargo lambda build --release --arm64 --bin {krate} --output-format zip --include {creds}")];
            c.extend(secrets.iter().map(|s| format!("gcloud secrets versions access latest --secret={s} --project={PROJECT}")));
            c.push(format!("cargo lambda deploy {name} --binary-name {krate} --region {REGION} --iam-role {ROLE} --memory {} --timeout {} --enable-function-url --env-file {work}/{name}.env --tag hearth:function={name}",
                if name == "web" { 1024 } else { 256 }, if name == "web" { 900 } else { 60 }));
            c.push(format!("aws lambda put-function-concurrency --function-name {name} --reserved-concurrent-executions {} --region {REGION}", if name == "web" { 7 } else { 20 }));
            c.push(format!("aws lambda get-function-url-config --function-name {name} --region {REGION} --query FunctionUrl --output text"));
            c.push(format!("curl -fsS --retry 5 --retry-all-errors https://{name}.lambda-url.eu-west-1.on.aws/health"));
            c
        })
        .collect();
    assert_eq!(calls, expected_calls);

    // The env file holds the settings and the secrets, readable by the owner only.
    let file = Path::new(&work).join("web.env");
    let content = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        content.lines().collect::<Vec<_>>(),
        [
            format!("GOOGLE_CLOUD_PROJECT={PROJECT}"),
            "GOOGLE_APPLICATION_CREDENTIALS=/var/task/gcp.json".to_owned(),
            "HEARTH_A=1".to_owned(),
            "HEARTH_CORS_ORIGINS=https://a.example,https://b.example".to_owned(),
            "HEARTH_WRITE_BUDGET_INSTANCES=7".to_owned(),
            "HEARTH_Z=2".to_owned(),
            "HEARTH_B_KEY=value-of-b-secret".to_owned(),
            "HEARTH_KEY=value-of-key-secret".to_owned(),
        ]
    );
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!stdout.contains("value-of-"), "a secret was printed:\n{stdout}");
}
