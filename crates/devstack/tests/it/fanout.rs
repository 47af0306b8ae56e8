//! Fan-out through the whole stack: a vendor with 1,000 followers writes five posts one after
//! another; each reaches every follower's feed through devstack's Eventarc bridge and the real
//! feed-fanout function, and the posts do not get slower as the feed entries accumulate.

use std::time::Duration;

use devstack::{Stack, StackOptions, fanout};
use store::{Db, DbConfig};

const FOLLOWERS: usize = 1_000;
const POSTS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_follower_fanout_keeps_pace_post_after_post() {
    let project = testkit::project_id();
    let options = StackOptions::on_testkit_emulators(&project).await;
    // The followers exist before the stack starts, as an established vendor's do: the
    // notifier's new-follower trigger (Eventarc never fires for documents older than the
    // trigger) has nothing to do, and what is timed is the posts' fan-out alone.
    let db = Db::new(DbConfig::emulator(&project, testkit::emulators::firestore().await));
    fanout::seed_followers(&db, "vendor", FOLLOWERS).await.unwrap();
    let stack = Stack::up(options).await.unwrap();

    let timings =
        fanout::run(&stack, &db, "vendor", FOLLOWERS, POSTS, Duration::from_secs(60)).await;
    stack.shutdown().await;
    let timings = timings.unwrap();
    println!("{}", fanout::render(&timings, FOLLOWERS));

    // The bridge reads the posts only (each post makes the emulator resend the posts so far:
    // 1 + 2 + ... + 5), none of the 5,000 feed entries that share their collection id. Before
    // it targeted the `posts` collection itself, this was millions of snapshots and the second
    // post did not reach every feed within two minutes.
    let last = timings.last().unwrap();
    assert!(last.bridge_snapshots <= 15, "{} snapshots", last.bridge_snapshots);
    // Timing, with room for a loaded 2-core CI machine (the goal, every post within 3 s and
    // the fifth no slower than the first, is `fanout::verdict`, which the example checks:
    // `cargo run -p devstack --example fanout`).
    let (first, fifth) = (timings[0].all_entries, last.all_entries);
    assert!(fifth <= first * 2 + Duration::from_secs(1), "{first:?} then {fifth:?}");
    for t in &timings {
        assert!(t.all_entries < Duration::from_secs(30), "{t:?}");
    }
}
