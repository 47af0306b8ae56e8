//! New-post notification benchmark, end to end against the official Firestore and Pub/Sub
//! emulators and `testkit`'s fake FCM (not a timed test).
//!
//! Run with `cargo run -p notifier --example bench_notify [-- --followers N] [--in-flight K]
//! [--ramp-start OPS]`.
//!
//! Seeds N followers (default 20,000) of one vendor, each with one registered device, writes a
//! post, and delivers its Eventarc "created" event to the notifier served in-process (one
//! instance: `HEARTH_WRITE_BUDGET_INSTANCES=1`, so it holds the deployment's whole write
//! budget). The continuation tasks are pulled from the real `notify-tasks` topic and pushed
//! back K at a time (default 4, the manifest's `concurrency`), as Pub/Sub push would to one
//! instance. It ends when every follower's push has reached the fake FCM, then checks that
//! each did exactly once and that the inbox entries exist, and prints notifications per
//! second and the projection for 200,000 followers under the manifest's limits.
//!
//! `--ramp-start OPS` starts the write ramp at OPS instead of the 500/50/5 rule's 500 (a warm
//! key space; the emulator's own speed shows with 10000).

// A command-line report: printing is the point.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use domain::notify::{Device, NotificationKind, Platform, notification_id};
use gcp::eventarc::{
    DataEncoding, DocumentEventData, FirestoreEvent, FirestoreEventKind, FirestoreEventType,
    encode_document_event,
};
use gcp::firestore::{FirestoreDocument, Value as Fv};
use runtime::Env;
use store::feed::{FollowerRecord, PostRecord};
use store::notify::{DevicesDoc, Notifications};
use store::{BulkWriter, RampPolicy, paths};
use testkit::fake_fcm::FakeFcm;
use testkit::jwks::JwksServer;
use testkit::{keys, tokens};

const AUDIENCE: &str = "https://notifier.bench/";
const PUSH_SA: &str = "notifier-push@bench.iam.gserviceaccount.com";
const SUB: &str = "notify-tasks--bench";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let followers: usize = arg(&args, "--followers").map_or(Ok(20_000), |v| v.parse())?;
    let in_flight: usize = arg(&args, "--in-flight").map_or(Ok(4), |v| v.parse())?;
    let ramp_start = arg(&args, "--ramp-start");

    runtime::telemetry::init_for_tests();
    let firestore = testkit::emulators::firestore().await;
    let pubsub = testkit::emulators::pubsub().await;
    let project = testkit::project_id();
    testkit::pubsub::create_topic(pubsub, &project, "notify-tasks").await;
    testkit::pubsub::create_pull_subscription(pubsub, &project, SUB, "notify-tasks").await;
    let fcm = FakeFcm::start().await;
    let jwks = JwksServer::start(&[keys::primary()], 3600).await;
    let jwks_url = jwks.url();
    let mut vars: HashMap<String, String> = [
        ("GOOGLE_CLOUD_PROJECT", project.as_str()),
        ("FIRESTORE_EMULATOR_HOST", firestore),
        ("PUBSUB_EMULATOR_HOST", pubsub),
        ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.as_str()),
        ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
        ("HEARTH_OIDC_ALLOWED_EMAILS", PUSH_SA),
        ("HEARTH_FCM_BASE_URL", fcm.base_url.as_str()),
        ("HEARTH_WRITE_BUDGET_INSTANCES", "1"),
        ("HEARTH_NOTIFY_PAGE_SIZE", "500"),
        ("HEARTH_REQUEST_TIMEOUT_SECS", "300"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(start) = &ramp_start {
        vars.insert("HEARTH_NOTIFY_RAMP_START_OPS".to_owned(), start.clone());
    }
    let built = notifier::build("notifier", &Env::from_map(vars)).await?;
    let db = built.state.db().clone();
    let app = testkit::spawn_app(built.router).await;
    let token = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, PUSH_SA), keys::primary());

    // Seed: followers and their devices.
    let seeding = Instant::now();
    let vendor = "bench-vendor";
    let mut writer =
        BulkWriter::new(&db, RampPolicy { start_ops_per_sec: 10_000.0, ..RampPolicy::default() });
    let at = |i: usize| Utc.timestamp_opt(1_700_000_000 + i as i64, 0).single().unwrap();
    let mut buyers = Vec::with_capacity(followers);
    for i in 0..followers {
        let buyer = format!("b{i:06}");
        writer.set(paths::follow(vendor, &buyer)?, &FollowerRecord::new(vendor, &buyer, at(i)));
        let device = Device {
            device_id: "phone".to_owned(),
            token: format!("tok-{buyer}"),
            platform: if i % 2 == 0 { Platform::Android } else { Platform::Ios },
            seen_at: Utc::now(),
        };
        writer.set(paths::user_devices(&buyer)?, &DevicesDoc { devices: vec![device] });
        buyers.push(buyer);
    }
    let report = writer.flush().await;
    anyhow::ensure!(report.is_complete(), "seeding failed: {:?}", report.failed.first());
    let post = PostRecord::new(vendor, true, Utc::now(), "fresh bread");
    store::feed::Feeds::new(&db).write_post("bench-post", &post).await?;
    println!(
        "seeded {followers} followers with a device each in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    // The post's Eventarc event, then the continuation tasks, K at a time.
    let started = Instant::now();
    let fields = BTreeMap::from([
        ("vendorId".to_owned(), Fv::String(vendor.to_owned())),
        ("isActive".to_owned(), Fv::Boolean(true)),
        ("createdAt".to_owned(), Fv::Timestamp(Utc::now())),
    ]);
    let name = format!("projects/{project}/databases/(default)/documents/posts/bench-post");
    let mut event = FirestoreEvent::new(
        "bench-event",
        FirestoreEventType::new(FirestoreEventKind::Created),
        &project,
        "posts/bench-post",
    );
    event.data = Some(DocumentEventData {
        value: Some(FirestoreDocument { name, fields, create_time: None, update_time: None }),
        old_value: None,
        update_mask: None,
    });
    let (headers, body) = encode_document_event(&event, DataEncoding::Protobuf).to_binary()?;
    let first = app.client.post(app.url("/posts")).headers(headers).body(body).bearer_auth(&token);
    let first = tokio::spawn(first.send());
    let mut tasks: tokio::task::JoinSet<reqwest::Result<reqwest::Response>> =
        tokio::task::JoinSet::new();
    let mut delivered = 0usize;
    let mut first = Some(first);
    loop {
        while let Some(done) = tasks.try_join_next() {
            let res = done??;
            anyhow::ensure!(res.status() == 204, "task answered {}", res.status());
        }
        if fcm.accepted_count() >= followers && tasks.is_empty() && first.is_none() {
            break;
        }
        if first.as_ref().is_some_and(tokio::task::JoinHandle::is_finished) {
            let res = first.take().unwrap().await??;
            anyhow::ensure!(res.status() == 204, "post event answered {}", res.status());
        }
        while tasks.len() >= in_flight {
            let res = tasks.join_next().await.unwrap()??;
            anyhow::ensure!(res.status() == 204, "task answered {}", res.status());
        }
        let pulled =
            testkit::pubsub::pull_at_least(pubsub, &project, SUB, 1, Duration::from_millis(200))
                .await;
        // Every pulled task is delivered (pulling acknowledges it): the bound above keeps it small.
        for task in pulled {
            let envelope = gcp::pubsub::build_push_envelope_bytes(&gcp::pubsub::PushEvent {
                message_id: task.message_id.clone(),
                publish_time: Utc::now(),
                attributes: BTreeMap::new(),
                ordering_key: None,
                delivery_attempt: Some(1),
                subscription: format!("projects/{project}/subscriptions/{SUB}"),
                data: task.data.clone(),
            })?;
            let req = app
                .client
                .post(app.url("/pubsub/notify-tasks"))
                .header("content-type", "application/json")
                .bearer_auth(&token)
                .body(envelope);
            tasks.spawn(async move { req.send().await });
            delivered += 1;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            anyhow::bail!("not done within 30 minutes: {} pushes", fcm.accepted_count());
        }
        if tasks.is_empty() && first.is_none() && fcm.accepted_count() < followers {
            // Nothing in flight and nothing pulled yet: the next task is on its way.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let elapsed = started.elapsed();

    // Checks: one push per follower, inbox entries present.
    let accepted = fcm.accepted();
    anyhow::ensure!(
        accepted.len() == followers,
        "{} pushes for {followers} followers",
        accepted.len()
    );
    let mut per_token: HashMap<&str, usize> = HashMap::new();
    for m in &accepted {
        *per_token.entry(m["token"].as_str().unwrap_or_default()).or_default() += 1;
    }
    anyhow::ensure!(
        per_token.len() == followers && per_token.values().all(|n| *n == 1),
        "a follower got two pushes"
    );
    let id = notification_id(NotificationKind::NewPost, "bench-post");
    let repo = Notifications::new(&db);
    for b in buyers.iter().step_by((followers / 50).max(1)) {
        anyhow::ensure!(repo.entry(b, &id).await?.is_some(), "{b} has no inbox entry");
    }

    let rate = followers as f64 / elapsed.as_secs_f64();
    println!(
        "{followers} followers notified (inbox entry + push each) in {:.1} s: {rate:.0} notifications/s \
         ({} task deliveries, {in_flight} at a time, ramp start {})",
        elapsed.as_secs_f64(),
        delivered + 1,
        ramp_start.as_deref().unwrap_or("500 (500/50/5)"),
    );
    // The projection: 200,000 followers on the manifest's 20 instances, each measured as this one.
    let writes = 3.0 * 200_000.0;
    let ramp_secs = ramp_time(writes);
    let compute_secs = 200_000.0 / (rate * 20.0);
    let fcm_secs = 200_000.0 / 10_000.0;
    println!(
        "projection for 200,000: instances {:.0} s (20 x this rate), FCM quota {fcm_secs:.0} s, \
         write ramp {:.0} s (600,000 writes under 500/50/5): {:.0} s",
        compute_secs,
        ramp_secs,
        compute_secs.max(fcm_secs).max(ramp_secs)
    );
    Ok(())
}

/// Seconds the 500/50/5 ramp takes to allow `writes` writes (500/s, +50 % every 5 minutes).
fn ramp_time(writes: f64) -> f64 {
    let ramp = RampPolicy::default();
    let (mut done, mut t) = (0.0, 0.0);
    while done < writes {
        let rate = ramp.allowed_rate(Duration::from_secs_f64(t));
        done += rate;
        t += 1.0;
    }
    t
}
