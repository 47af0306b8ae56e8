//! SIGTERM on a real binary built on `runtime`: in-flight requests finish, new connections are
//! refused, and the process exits 0 within the grace period.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::{raw_client, start_hello};

fn sigterm(child: &tokio::process::Child) {
    let pid = i32::try_from(child.id().expect("running")).expect("pid fits");
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("send SIGTERM");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let (mut child, addr) = start_hello(&[("HEARTH_SHUTDOWN_GRACE_SECS", "5")]).await.unwrap();
    let client = raw_client();
    let started = Instant::now();
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.get(format!("http://{addr}/slow?ms=2000")).send().await }
    });
    // Let the request reach the handler, then ask the process to stop.
    tokio::time::sleep(Duration::from_millis(800)).await;
    sigterm(&child);
    let signalled = Instant::now();

    // The listener is closed right away: new connections are refused.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "a new connection was accepted after SIGTERM");

    let response = slow.await.unwrap().expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slept 2000 ms");
    assert!(started.elapsed() >= Duration::from_secs(2));

    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5), "took {:?}", signalled.elapsed());
}

#[tokio::test]
async fn past_the_grace_period_the_process_still_exits_zero() {
    let (mut child, addr) = start_hello(&[("HEARTH_SHUTDOWN_GRACE_SECS", "1")]).await.unwrap();
    let client = raw_client();
    let stuck =
        tokio::spawn(
            async move { client.get(format!("http://{addr}/slow?ms=30000")).send().await },
        );
    tokio::time::sleep(Duration::from_millis(800)).await;
    sigterm(&child);
    let signalled = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(4), child.wait())
        .await
        .expect("exits after the grace period")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let waited = signalled.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "exited after {waited:?}"
    );
    assert!(stuck.await.unwrap().is_err(), "the abandoned request gets no answer");
}

#[tokio::test]
async fn an_idle_process_exits_zero_at_once() {
    let (mut child, _) = start_hello(&[]).await.unwrap();
    let signalled = Instant::now();
    sigterm(&child);
    let status =
        tokio::time::timeout(Duration::from_secs(3), child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(1), "took {:?}", signalled.elapsed());
}
