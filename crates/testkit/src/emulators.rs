//! The official emulators, started once per test process (or reused when the usual
//! `FIRESTORE_EMULATOR_HOST` / `PUBSUB_EMULATOR_HOST` variables point at running ones).
//!
//! Each emulator runs in its own process group under a small shell watchdog that kills the whole
//! group (the `gcloud` wrapper and its Java child) as soon as the test process exits, so no
//! orphan Java process outlives a test run, however the run ends. A missing `gcloud` or Java is
//! a loud failure that names what to install: tests never pass by skipping.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static FIRESTORE: OnceLock<String> = OnceLock::new();
static PUBSUB: OnceLock<String> = OnceLock::new();
static AUTH: OnceLock<String> = OnceLock::new();

/// `host:port` of a Firestore emulator (rules not enforced: server-side access).
pub async fn firestore() -> &'static str {
    record_queries();
    blocking(|| FIRESTORE.get_or_init(|| reuse_or_start(Kind::Firestore))).await
}

/// With `HEARTH_QUERY_LOG_DIR` set (`scripts/test.sh` sets it), every query shape `store` sends
/// from this process is recorded there for the index check (`testkit::indexes`).
#[allow(clippy::disallowed_methods)] // testkit reads its own test settings
fn record_queries() {
    if let Some(dir) = std::env::var_os("HEARTH_QUERY_LOG_DIR").filter(|d| !d.is_empty()) {
        store::query_log::record_into(std::path::PathBuf::from(dir));
    }
}

/// `host:port` of a Pub/Sub emulator.
pub async fn pubsub() -> &'static str {
    blocking(|| PUBSUB.get_or_init(|| reuse_or_start(Kind::PubSub))).await
}

/// `host:port` of a Firebase Auth emulator (`firebase-tools` from the repository's own
/// `node_modules`, installed by `scripts/prereqs.sh` from `package-lock.json`), or the one named
/// by `FIREBASE_AUTH_EMULATOR_HOST`. Projects are separate inside it, so tests share it.
pub async fn auth() -> &'static str {
    blocking(|| AUTH.get_or_init(|| reuse_or_start(Kind::Auth))).await
}

/// Starts a separate Firebase Auth emulator whose default project is `project` (client sign-ups
/// through `accounts:signUp?key=...` always land in the emulator's default project, so a test
/// that registers its own blocking functions needs its own instance). Lives until the test
/// process exits.
pub async fn auth_for_project(project: &str) -> String {
    let project = project.to_owned();
    tokio::task::spawn_blocking(move || start_auth(&project)).await.expect("emulator start task")
}

/// Starts a separate Firestore emulator that enforces the given `firestore.rules` file
/// (one per call; for rules tests). It lives until the test process exits.
pub async fn firestore_with_rules(rules: &Path) -> String {
    let rules = rules.to_path_buf();
    tokio::task::spawn_blocking(move || start(Kind::Firestore, Some(&rules), None))
        .await
        .expect("emulator start task")
}

async fn blocking(f: impl FnOnce() -> &'static String + Send + 'static) -> &'static str {
    tokio::task::spawn_blocking(f).await.expect("emulator start task").as_str()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Firestore,
    PubSub,
    Auth,
}

impl Kind {
    fn env(self) -> &'static str {
        match self {
            Kind::Firestore => "FIRESTORE_EMULATOR_HOST",
            Kind::PubSub => "PUBSUB_EMULATOR_HOST",
            Kind::Auth => "FIREBASE_AUTH_EMULATOR_HOST",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Firestore => "firestore",
            Kind::PubSub => "pubsub",
            Kind::Auth => "auth",
        }
    }

    fn command(self, host_port: &str, rules: Option<&Path>, project: &str) -> String {
        match self {
            Kind::Firestore => {
                let rules =
                    rules.map(|r| format!(" --rules={}", shell_quote(&r.display().to_string())));
                format!(
                    "gcloud emulators firestore start --quiet --host-port={host_port}{}",
                    rules.unwrap_or_default()
                )
            }
            Kind::PubSub => {
                format!("gcloud beta emulators pubsub start --quiet --host-port={host_port}")
            }
            Kind::Auth => {
                // firebase-tools wants a firebase.json; give each instance its own, with its own
                // hub and logging ports so several test binaries can run at once.
                let port: u16 =
                    host_port.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
                let dir =
                    std::env::temp_dir().join(format!("hearth-auth-{}-{port}", std::process::id()));
                std::fs::create_dir_all(&dir).expect("auth emulator dir");
                let config = serde_json::json!({
                    "emulators": {
                        "auth": {"host": "127.0.0.1", "port": port},
                        "hub": {"host": "127.0.0.1", "port": free_port()},
                        "logging": {"host": "127.0.0.1", "port": free_port()},
                        "ui": {"enabled": false},
                        "singleProjectMode": false
                    }
                });
                std::fs::write(dir.join("firebase.json"), config.to_string())
                    .expect("auth emulator config");
                format!(
                    "cd {dir} && {firebase} emulators:start --only auth --project {project} --non-interactive",
                    project = shell_quote(project),
                    dir = shell_quote(&dir.display().to_string()),
                    firebase = shell_quote(&firebase_bin().display().to_string()),
                )
            }
        }
    }
}

#[allow(clippy::disallowed_methods)] // testkit reads the emulator variables the way the Google SDKs do
fn reuse_or_start(kind: Kind) -> String {
    if let Ok(host) = std::env::var(kind.env())
        && !host.is_empty()
    {
        wait_ready(kind, &host, None, Duration::from_secs(30));
        return host;
    }
    match kind {
        Kind::Auth => start_auth(DEFAULT_AUTH_PROJECT),
        _ => start(kind, None, None),
    }
}

/// The default project of the shared Auth emulator.
pub const DEFAULT_AUTH_PROJECT: &str = "demo-hearth";

fn start_auth(project: &str) -> String {
    start(Kind::Auth, None, Some(project))
}

fn start(kind: Kind, rules: Option<&PathBuf>, project: Option<&str>) -> String {
    check_prerequisites(kind);
    let port = free_port();
    let host_port = format!("127.0.0.1:{port}");
    let log = log_path(kind, port);
    let parent = std::process::id();
    // The watchdog: run the emulator in the background, wait while both the test process and the
    // emulator live, then stop everything it started. `gcloud` makes itself a process-group
    // leader, so its group is killed by the gcloud pid; the Java child is also matched by its
    // unique port (the `[-]-` keeps the pattern from matching this script's own text).
    let script = format!(
        "{cmd} >>{log} 2>&1 & child=$!\n\
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done\n\
         for sig in TERM KILL; do\n\
           pkill -$sig -f '[-]-port={port}( |$)' 2>/dev/null\n\
           kill -$sig -- -$child 2>/dev/null\n\
           sleep 1\n\
         done\n\
         kill -KILL -- -$$ 2>/dev/null",
        cmd = kind.command(
            &host_port,
            rules.map(PathBuf::as_path),
            project.unwrap_or(DEFAULT_AUTH_PROJECT)
        ),
        log = shell_quote(&log.display().to_string()),
    );
    let mut watchdog = Command::new("setsid")
        .arg("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("could not start the {} emulator (setsid bash): {e}", kind.name())
        });
    // Reap the watchdog when it exits so it never lingers as a zombie.
    std::thread::spawn(move || watchdog.wait());
    wait_ready(kind, &host_port, Some(&log), Duration::from_secs(90));
    host_port
}

/// The repository's own firebase-tools.
fn firebase_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/.bin/firebase")
}

fn check_prerequisites(kind: Kind) {
    if let Kind::Auth = kind {
        assert!(
            firebase_bin().exists(),
            "{} is missing: the Auth emulator comes from the repository's firebase-tools. Run \
             `npm ci` at the repository root (scripts/prereqs.sh does). Tests do not skip.",
            firebase_bin().display()
        );
        return;
    }
    for (bin, hint) in [
        (
            "gcloud",
            "the Google Cloud CLI with the cloud-firestore-emulator and pubsub-emulator components",
        ),
        ("java", "Java 17 or newer (the emulators are Java programs)"),
    ] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {bin}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{bin}` is not on PATH: integration tests need the official emulators. Install {hint}. \
             Tests do not skip."
        );
    }
}

fn log_path(kind: Kind, port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join("hearth-emulators");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{}-{}-{port}.log", kind.name(), std::process::id()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn wait_ready(kind: Kind, host_port: &str, log: Option<&Path>, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if http_get_ok(host_port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let tail = log
        .and_then(|l| std::fs::read_to_string(l).ok())
        .map(|s| {
            s.lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    panic!(
        "the {} emulator at {host_port} was not ready within {limit:?}; its log ends with:\n{tail}",
        kind.name()
    );
}

/// `GET /` answers `Ok` on both emulators once they serve.
fn http_get_ok(host_port: &str) -> bool {
    let Ok(addr) = host_port.parse() else { return false };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET / HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
