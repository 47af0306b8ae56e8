//! The follow side of the feed: following and unfollowing a vendor (the follow edge moves the
//! vendor's follower counter once), and the backfill and clean-up of one buyer's feed that a
//! follow or an unfollow triggers.

use chrono::{DateTime, Utc};
use domain::counters::{CounterField, Membership, MembershipOutcome};
use domain::feed::FeedItem;

use super::Feeds;
use super::fanout::{Fanout, RunStats, check};
use super::records::{FeedDoc, FollowerRecord};
use crate::counters;
use crate::error::Error;
use crate::paths;
use crate::rpc::{self, NAME};

impl Feeds {
    /// `buyer_id` follows `vendor_id` (idempotent; moves the vendor's follower counter once).
    pub async fn follow(
        &self,
        buyer_id: &str,
        vendor_id: &str,
        now: DateTime<Utc>,
    ) -> Result<MembershipOutcome, Error> {
        let db = &self.db;
        let marker = paths::follow(vendor_id, buyer_id)?;
        let record = FollowerRecord::new(vendor_id, buyer_id, now);
        counters::Counters::new(db)
            .set_membership(
                &marker,
                &paths::vendor(vendor_id)?,
                CounterField::Followers,
                Membership::Set,
                &record,
            )
            .await
    }

    /// `buyer_id` stops following `vendor_id` (idempotent).
    pub async fn unfollow(
        &self,
        buyer_id: &str,
        vendor_id: &str,
    ) -> Result<MembershipOutcome, Error> {
        let db = &self.db;
        let marker = paths::follow(vendor_id, buyer_id)?;
        let record = FollowerRecord::new(vendor_id, buyer_id, Utc::now());
        counters::Counters::new(db)
            .set_membership(
                &marker,
                &paths::vendor(vendor_id)?,
                CounterField::Followers,
                Membership::Clear,
                &record,
            )
            .await
    }
}

impl Fanout {
    /// Writes `items` into `buyer_id`'s feed (the backfill of a follow).
    pub async fn write_items(&self, buyer_id: &str, items: &[FeedItem]) -> Result<RunStats, Error> {
        let mut writer = self.writer();
        for item in items {
            writer.set(paths::feed_post(buyer_id, &item.post_id)?, &FeedDoc::from(item));
        }
        let mut stats = RunStats::default();
        stats.absorb(&check(writer.flush().await)?);
        Ok(stats)
    }

    /// Removes every entry of `vendor_id` from `buyer_id`'s feed (an unfollow).
    pub async fn remove_vendor(&self, buyer_id: &str, vendor_id: &str) -> Result<RunStats, Error> {
        let feed = paths::feed(buyer_id)?;
        let mut stats = RunStats::default();
        loop {
            let mut query = rpc::from(feed.id(), false);
            query.select = rpc::select(&[NAME]);
            query.r#where = rpc::and(vec![rpc::eq("vendorId", rpc::string(vendor_id))]);
            query.limit = Some(i32::try_from(self.policy.page_size.max(1)).unwrap_or(i32::MAX));
            let docs =
                rpc::run(&self.db, feed.parent_name(self.db.documents_root()), query).await?;
            stats.reads += 1;
            if docs.is_empty() {
                return Ok(stats);
            }
            let mut writer = self.writer();
            for doc in &docs {
                writer.delete(feed.doc(rpc::doc_id(doc))?);
            }
            stats.absorb(&check(writer.flush().await)?);
            if docs.len() < self.policy.page_size.max(1) as usize {
                return Ok(stats);
            }
        }
    }
}
