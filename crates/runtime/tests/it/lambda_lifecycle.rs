//! The Lambda process's life around invocations, on the real `runtime-hello` binary against the
//! fake Runtime API: SIGTERM during an invocation, deadlines, concurrent invocations, start-up
//! logs.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::fake_lambda::{FakeLambda, Outcome};
use crate::helpers::hello_command;

/// The process's log lines (JSON), collected as they are written.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<Value>>>);

impl Logs {
    /// The first line whose message contains `text`.
    fn find(&self, text: &str) -> Option<Value> {
        self.0
            .lock()
            .iter()
            .find(|line| line["message"].as_str().is_some_and(|m| m.contains(text)))
            .cloned()
    }

    /// Waits (20 s at most) for a line whose message contains `text`.
    async fn wait_for(&self, text: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.find(text) {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line with {text:?} in {:?}", self.0.lock());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts `runtime-hello` in Lambda mode against `fake`, logging JSON to a pipe we read.
fn spawn_lambda(fake: &FakeLambda, extra: &[(&str, &str)]) -> (tokio::process::Child, Logs) {
    let mut env: Vec<(&str, String)> = fake.env();
    env.push(("HEARTH_LOG_FORMAT", "json".to_owned()));
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut child = hello_command(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning runtime-hello");
    let logs = Logs::default();
    let stdout = child.stdout.take().expect("piped stdout");
    let sink = logs.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                sink.0.lock().push(value);
            }
        }
    });
    (child, logs)
}

/// A function URL event for `GET path`.
fn get(path: &str, query: &str, id: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "xyz789.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "xyz789",
            "domainName": "xyz789.lambda-url.us-east-1.on.aws",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "t"},
            "requestId": id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1_583_348_638_390_u64
        },
        "isBase64Encoded": false
    })
}

fn sigterm(child: &tokio::process::Child) {
    let pid = i32::try_from(child.id().expect("running")).expect("pid fits");
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("send SIGTERM");
}

async fn exit_status(
    child: &mut tokio::process::Child,
    within: Duration,
) -> std::process::ExitStatus {
    tokio::time::timeout(within, child.wait()).await.expect("the process exits").unwrap()
}

#[tokio::test]
async fn sigterm_during_an_invocation_lets_it_finish_logs_it_and_exits_zero() {
    let mut fake = FakeLambda::start().await;
    let (mut child, logs) = spawn_lambda(&fake, &[("HEARTH_SHUTDOWN_GRACE_SECS", "20")]);
    fake.invoke("slow-1", get("/slow", "ms=3000", "slow-1"));
    fake.delivered("slow-1").await;
    // Let the runtime read the event and call the handler (a signal between the fake handing
    // the event out and the runtime reading it is not an invocation in flight yet).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    sigterm(&child);

    // The invocation in flight finishes and its answer is posted.
    let answer = fake.response("slow-1").await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(answer["body"], "slept 3000 ms");
    let status = exit_status(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");

    // It was logged, with the request id that was in flight.
    let signalled = logs.wait_for("shutdown signal received").await;
    assert!(signalled.to_string().contains("slow-1"), "{signalled}");
    logs.wait_for("all invocations finished").await;
    // Lambda sends SIGTERM only to a runtime with a registered extension.
    assert_eq!(fake.extensions(), ["hearth-graceful-shutdown"]);
}

#[tokio::test]
async fn an_invocation_still_running_when_the_grace_period_ends_is_reported() {
    let mut fake = FakeLambda::start().await;
    let (mut child, logs) = spawn_lambda(&fake, &[("HEARTH_SHUTDOWN_GRACE_SECS", "1")]);
    fake.invoke("stuck-1", get("/slow", "ms=60000", "stuck-1"));
    fake.delivered("stuck-1").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    sigterm(&child);
    let status = exit_status(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    let abandoned = logs.wait_for("grace period elapsed").await;
    assert!(abandoned.to_string().contains("stuck-1"), "{abandoned}");
}

#[tokio::test]
async fn an_expiring_deadline_gets_the_functions_own_timeout_answer_in_time() {
    let mut fake = FakeLambda::start().await;
    // The request timeout stays at its 60 s default: only the deadline can cut this short.
    let (mut child, _logs) = spawn_lambda(&fake, &[("HEARTH_LAMBDA_DEADLINE_MARGIN_MS", "2000")]);
    let deadline = SystemTime::now() + Duration::from_secs(6);
    fake.invoke_by("late-1", get("/slow", "ms=60000", "late-1"), deadline);
    let (body, at) = match fake.outcome(Duration::from_secs(30)).await {
        Outcome::Response { id, body, at } => {
            assert_eq!(id, "late-1");
            (body, at)
        }
        other => panic!("expected an answer, got {other:?}"),
    };
    assert!(at < deadline, "answered {:?} after the deadline", at.duration_since(deadline));
    assert_eq!(body["statusCode"], 504, "{body}");
    let problem: Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert_eq!(problem["status"], 504, "{problem}");
    assert_eq!(body["headers"]["content-type"], "application/problem+json");

    // An invocation with time to spare is not cut short by the margin.
    fake.invoke("quick-1", get("/slow", "ms=100", "quick-1"));
    assert_eq!(fake.response("quick-1").await["statusCode"], 200);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn with_max_concurrency_invocations_run_at_once_and_logs_say_what_applies() {
    let mut fake = FakeLambda::start().await;
    let (mut child, logs) = spawn_lambda(&fake, &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]);
    for i in 0..4 {
        let id = format!("c-{i}");
        fake.invoke(&id, get("/slow", "ms=3000", &id));
    }
    let mut answered = Vec::new();
    for _ in 0..4 {
        match fake.outcome(Duration::from_secs(30)).await {
            Outcome::Response { id, body, .. } => {
                assert_eq!(body["statusCode"], 200, "{body}");
                answered.push(id);
            }
            other => panic!("expected an answer, got {other:?}"),
        }
    }
    answered.sort();
    assert_eq!(answered, ["c-0", "c-1", "c-2", "c-3"]);
    assert_eq!(fake.max_outstanding(), 4, "all four were out at the same time");

    // Start-up logs print Lambda's settings, not Cloud Run's port.
    let starting = logs.wait_for("starting").await.to_string();
    assert!(starting.contains("Lambda") && starting.contains("max_concurrency"), "{starting}");
    assert!(!starting.contains("\\\"port\\\""), "{starting}");
    let serving = logs.wait_for("serving through the AWS Lambda runtime API").await;
    assert_eq!(serving["max_concurrency"], 4, "{serving}");
    assert!(logs.find("concurrency-tokio feature is not enabled").is_none());
    child.kill().await.unwrap();
}

#[tokio::test]
async fn without_max_concurrency_invocations_run_one_at_a_time() {
    let mut fake = FakeLambda::start().await;
    let (mut child, _logs) = spawn_lambda(&fake, &[]);
    for i in 0..2 {
        let id = format!("s-{i}");
        fake.invoke(&id, get("/slow", "ms=300", &id));
    }
    for i in 0..2 {
        assert_eq!(fake.response(&format!("s-{i}")).await["statusCode"], 200);
    }
    assert_eq!(fake.max_outstanding(), 1);
    child.kill().await.unwrap();
}
