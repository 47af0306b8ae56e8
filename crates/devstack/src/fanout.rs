//! The feed fan-out through a running stack, timed: a vendor with N followers writes posts one
//! after another (as the server writes them, `store::feed::Feeds::write_post`); each post goes
//! through the Eventarc bridge to the real feed-fanout function, and the time from the write to
//! the last follower's feed entry is measured by polling who holds the post. Used by the
//! integration test (`tests/it/fanout.rs`) and the benchmark
//! (`cargo run -p devstack --example fanout`).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{TimeZone as _, Utc};
use domain::ramp::RampPolicy;
use store::feed::{Feeds, FollowerRecord, PostRecord};
use store::{BulkWriter, Db, paths};

use crate::Stack;

/// How often the feeds are checked while a post fans out.
pub const POLL: Duration = Duration::from_millis(50);

/// One post's fan-out.
#[derive(Debug, Clone, PartialEq)]
pub struct PostTiming {
    pub post_id: String,
    /// From the write to the first feed entry.
    pub first_entry: Duration,
    /// From the write to the last follower's entry.
    pub all_entries: Duration,
    /// Document snapshots the Eventarc bridge had received when the fan-out completed, since
    /// the first post was written (the bridge's initial snapshots of its targets, such as the
    /// existing follow edges the notifier's trigger watches, come before and are not counted).
    pub bridge_snapshots: u64,
}

/// Writes `followers` follow edges of `vendor` (buyers `b00000`, `b00001`, ...), unthrottled.
pub async fn seed_followers(db: &Db, vendor: &str, followers: usize) -> anyhow::Result<()> {
    let open = RampPolicy { start_ops_per_sec: 10_000.0, ..RampPolicy::default() };
    let mut writer = BulkWriter::new(db, open);
    for i in 0..followers {
        let buyer = format!("b{i:05}");
        let at = Utc
            .timestamp_opt(1_700_000_000 + i64::try_from(i)?, 0)
            .single()
            .context("a follow time")?;
        writer.set(paths::follow(vendor, &buyer)?, &FollowerRecord::new(vendor, &buyer, at));
    }
    let report = writer.flush().await;
    ensure!(report.is_complete(), "seeding followers failed: {:?}", report.failed.first());
    Ok(())
}

/// Writes `posts` posts of `vendor` one after another, each once the previous one is in all
/// `followers` feeds (at most `timeout` each).
pub async fn run(
    stack: &Stack,
    db: &Db,
    vendor: &str,
    followers: usize,
    posts: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<PostTiming>> {
    let feeds = Feeds::new(db);
    let mut timings = Vec::with_capacity(posts);
    let listened_before = stack.eventarc.listened();
    for n in 1..=posts {
        let post_id = format!("{vendor}-post-{n}");
        let started = Instant::now();
        feeds
            .write_post(&post_id, &PostRecord::new(vendor, true, Utc::now(), "fresh bread"))
            .await?;
        let mut first_entry = None;
        loop {
            let held = feeds.holders(&post_id).await?.len();
            if held > 0 && first_entry.is_none() {
                first_entry = Some(started.elapsed());
            }
            if held >= followers {
                break;
            }
            if started.elapsed() > timeout {
                bail!("post {n}: {held} of {followers} feeds hold it after {timeout:?}");
            }
            tokio::time::sleep(POLL).await;
        }
        let all_entries = started.elapsed();
        timings.push(PostTiming {
            post_id,
            first_entry: first_entry.unwrap_or(all_entries),
            all_entries,
            bridge_snapshots: stack.eventarc.listened() - listened_before,
        });
    }
    Ok(timings)
}

/// Whether the run meets its goal: every post in every feed within `within` of its write, and
/// the last post no slower than the first. `Ok` and `Err` both say why.
pub fn verdict(timings: &[PostTiming], within: Duration) -> Result<String, String> {
    let (Some(first), Some(last)) = (timings.first(), timings.last()) else {
        return Err("no posts".to_owned());
    };
    let slowest = timings.iter().map(|t| t.all_entries).max().unwrap_or_default();
    if slowest > within {
        return Err(format!("the slowest post took {slowest:.2?}, over {within:.2?}"));
    }
    if last.all_entries > first.all_entries {
        return Err(format!(
            "post {} took {:.2?}, slower than the first ({:.2?})",
            timings.len(),
            last.all_entries,
            first.all_entries
        ));
    }
    Ok(format!(
        "every post within {within:.2?} (slowest {slowest:.2?}); post {} {:.2?} <= the first {:.2?}",
        timings.len(),
        last.all_entries,
        first.all_entries
    ))
}

/// The timings as a table.
pub fn render(timings: &[PostTiming], followers: usize) -> String {
    let mut out = format!(
        "{:<6} {:>14} {:>14} {:>18}\n",
        "post", "first entry", "all entries", "bridge snapshots"
    );
    for (i, t) in timings.iter().enumerate() {
        out.push_str(&format!(
            "{:<6} {:>14} {:>14} {:>18}\n",
            i + 1,
            format!("{:.2?}", t.first_entry),
            format!("{:.2?}", t.all_entries),
            t.bridge_snapshots
        ));
    }
    out.push_str(&format!("({followers} followers each)\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(ms: u64) -> PostTiming {
        PostTiming {
            post_id: "p".into(),
            first_entry: Duration::from_millis(ms / 2),
            all_entries: Duration::from_millis(ms),
            bridge_snapshots: 1,
        }
    }

    #[test]
    fn the_verdict_wants_every_post_in_time_and_the_last_no_slower_than_the_first() {
        let within = Duration::from_secs(3);
        let ok = [2000, 2500, 1500, 1800, 1900].map(timing);
        assert!(verdict(&ok, within).is_ok(), "{:?}", verdict(&ok, within));
        let late = [2000, 3100, 1500].map(timing);
        assert!(verdict(&late, within).unwrap_err().contains("slowest"));
        let slower = [1000, 1200, 1500].map(timing);
        assert!(verdict(&slower, within).unwrap_err().contains("slower than the first"));
        assert!(verdict(&[], within).is_err());
        assert!(render(&ok, 1000).lines().count() == 7);
    }
}
