//! The write side of the feed: fanning a post out to its vendor's followers, removing it from
//! every feed, carrying its new expiry to its entries ([`Fanout`]), and the follower and holder
//! queries a fan-out and its tests read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::feed::{FeedItem, FeedPolicy, Progress, Step, next_step};
use domain::messages::FollowerCursor;
use domain::ramp::RampPolicy;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::field_filter::Operator;
use firestore::gcloud_sdk::google::firestore::v1::{Document, StructuredQuery};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Feeds;
use super::records::{FeedDoc, Follower};
use crate::bulk::{BulkReport, BulkWriter};
use crate::db::Db;
use crate::error::Error;
use crate::paths::{self, DocPath};
use crate::rpc::{self, NAME};

fn follower_cursor_values(
    db: &Db,
    cursor: &FollowerCursor,
) -> Result<Vec<firestore::gcloud_sdk::google::firestore::v1::Value>, Error> {
    let doc = paths::follower(&cursor.doc_id)?;
    Ok(vec![rpc::timestamp(cursor.followed_at), rpc::reference(doc.full_name(db.documents_root()))])
}

/// The query of `vendor_id`'s followers (ordered by `followedAt`, then id): strictly after
/// `start_after`, up to and including `end_at`, at most `limit`.
fn follower_query(
    db: &Db,
    vendor_id: &str,
    start_after: Option<&FollowerCursor>,
    end_at: Option<&FollowerCursor>,
    limit: u32,
) -> Result<StructuredQuery, Error> {
    let mut query = rpc::from(paths::names::FOLLOWERS, false);
    query.select = rpc::select(&["buyerId", "followedAt"]);
    query.r#where = rpc::and(vec![rpc::eq("vendorId", rpc::string(vendor_id))]);
    query.order_by = vec![rpc::asc("followedAt"), rpc::asc(NAME)];
    if let Some(after) = start_after {
        query.start_at = Some(rpc::cursor(follower_cursor_values(db, after)?, false));
    }
    if let Some(end) = end_at {
        query.end_at = Some(rpc::cursor(follower_cursor_values(db, end)?, false));
    }
    query.limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
    Ok(query)
}

fn follower(doc: &Document) -> Result<Follower, Error> {
    let bad = |what: &str| Error::Decode {
        path: doc.name.clone(),
        message: format!("follower without {what}"),
    };
    Ok(Follower {
        doc_id: rpc::doc_id(doc).to_owned(),
        buyer_id: rpc::get_string(doc, "buyerId").ok_or_else(|| bad("buyerId"))?,
        followed_at: rpc::get_time(doc, "followedAt").ok_or_else(|| bad("followedAt"))?,
    })
}

/// Follower pages one streamed query of a fan-out run covers at most (10,000 followers at the
/// default page size): one round trip instead of one per page, and no query held open for long.
pub const PAGES_PER_QUERY: u32 = 20;

/// Pages read ahead of the writer, at most: two flushes' worth at the default batch size and
/// requests in flight (5,000 followers, well under a megabyte), so reading goes on while a
/// flush is written.
const READ_AHEAD_PAGES: usize = 10;

/// Aborts the follower reader when the run that owns it ends (or is dropped mid-way).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads `vendor_id`'s followers in (`start_after`, `end_at`] as pages of `size` (the last one
/// shorter), at most `max_pages` pages, into a channel a few pages ahead of its consumer. One
/// query streams up to [`PAGES_PER_QUERY`] pages; the next one starts after the last follower
/// read. The channel closes when the range is exhausted; an error ends it.
///
/// Why one streamed query rather than a query per page: each query is a round trip, and the
/// Firestore emulator evaluates every query over the whole collection (no index), so a query
/// per page made the reads, not the writes, the bound of a fan-out there (21 queries of about
/// 30 ms for 10,000 followers; see the feed-fanout README).
fn follower_pages(
    db: &Db,
    vendor_id: &str,
    start_after: Option<&FollowerCursor>,
    end_at: Option<&FollowerCursor>,
    size: u32,
    max_pages: Option<u32>,
    queries: Arc<AtomicUsize>,
) -> (mpsc::Receiver<Result<Vec<Follower>, Error>>, AbortOnDrop) {
    let (tx, rx) = mpsc::channel(READ_AHEAD_PAGES);
    let (db, vendor_id) = (db.clone(), vendor_id.to_owned());
    let (mut after, end_at) = (start_after.cloned(), end_at.cloned());
    let task = crate::ops::spawn_counted(async move {
        let page_len = size as usize;
        let mut pages_sent = 0u32;
        loop {
            let pages = max_pages
                .map_or(PAGES_PER_QUERY, |max| max.saturating_sub(pages_sent))
                .min(PAGES_PER_QUERY);
            if pages == 0 {
                return;
            }
            let limit = pages.saturating_mul(size);
            let streamed = async {
                let query =
                    follower_query(&db, &vendor_id, after.as_ref(), end_at.as_ref(), limit)?;
                queries.fetch_add(1, Ordering::Relaxed);
                let request = rpc::query_request(db.documents_root().to_owned(), query);
                let mut client = db.client().await?;
                db.call(client.run_query(request)).await
            };
            let mut stream = match streamed.await {
                Ok(stream) => stream,
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
            };
            let (mut page, mut read) = (Vec::with_capacity(page_len), 0u32);
            loop {
                let doc = match stream.message().await {
                    Ok(Some(response)) => match response.document {
                        Some(doc) => doc,
                        None => continue,
                    },
                    Ok(None) => break,
                    Err(status) => {
                        let _ = tx.send(Err(Error::from(status))).await;
                        return;
                    }
                };
                read += 1;
                match follower(&doc) {
                    Ok(f) => page.push(f),
                    Err(error) => {
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                }
                if page.len() == page_len {
                    after = page.last().map(Follower::cursor);
                    let full = std::mem::replace(&mut page, Vec::with_capacity(page_len));
                    if tx.send(Ok(full)).await.is_err() {
                        return;
                    }
                    pages_sent += 1;
                }
            }
            if !page.is_empty() {
                let _ = tx.send(Ok(page)).await;
                return;
            }
            if read < limit {
                return;
            }
        }
    });
    (rx, AbortOnDrop(task.abort_handle()))
}

/// How a fan-out run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Everything in range is done.
    Done,
    /// The run stopped at its page allowance or time budget; the rest starts strictly after
    /// this follower (removals restart from the beginning and carry `None`).
    HandOff(Option<FollowerCursor>),
}

/// What a fan-out run did, for logs, metrics and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Feed entries written or deleted.
    pub written: usize,
    /// Pages processed.
    pub pages: u32,
    /// Query round trips (follower pages, collection-group pages).
    pub reads: usize,
    /// BatchWrite round trips.
    pub write_requests: usize,
    /// Writes that needed a retry.
    pub retried: usize,
    /// Entries deleted again right after being written, because their follower had
    /// unfollowed meanwhile (see [`Fanout::add`]).
    pub dropped: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl RunStats {
    /// Firestore round trips in all.
    pub fn round_trips(&self) -> usize {
        self.reads + self.write_requests
    }

    pub(super) fn absorb(&mut self, report: &BulkReport) {
        self.written += report.written;
        self.write_requests += report.requests;
        self.retried += report.retried;
    }
}

/// The first permanent failure of a flush, as the run's error.
pub(super) fn check(report: BulkReport) -> Result<BulkReport, Error> {
    let mut report = report;
    match report.failed.pop() {
        None => Ok(report),
        Some((path, error)) => {
            tracing::warn!(failed = report.failed.len() + 1, %path, %error, "feed writes failed");
            Err(error)
        }
    }
}

/// Writes per BatchWrite request of a fan-out (the bulk writer's generic default is
/// nodejs' 20). Against the emulator, whose cost is mostly per request, 100 writes per request
/// fan out about 1.5 times faster than 20 (functions/feed-fanout/README.md); against Firestore
/// it means a fifth of the round trips, each still far below the 500-write limit, and the ramp
/// counts writes, not requests, so the 500/50/5 pacing is the same.
pub const FANOUT_BATCH_SIZE: usize = 100;

/// Writes and removes feed entries.
#[derive(Debug, Clone)]
pub struct Fanout {
    pub(super) db: Db,
    pub(super) policy: FeedPolicy,
    ramp: RampPolicy,
    max_in_flight: usize,
    batch_size: usize,
}

impl Fanout {
    /// A fan-out on `db` with `policy`, its writes paced by `ramp`.
    pub fn new(db: &Db, policy: FeedPolicy, ramp: RampPolicy) -> Self {
        Self {
            db: db.clone(),
            policy,
            ramp,
            max_in_flight: crate::bulk::DEFAULT_MAX_IN_FLIGHT,
            batch_size: FANOUT_BATCH_SIZE,
        }
    }

    /// Replaces the number of BatchWrite requests in flight.
    pub fn with_max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// Replaces the number of writes per BatchWrite request (see
    /// [`BulkWriter::with_batch_size`]).
    pub fn with_batch_size(mut self, writes: usize) -> Self {
        self.batch_size = writes.clamp(1, 500);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &FeedPolicy {
        &self.policy
    }

    pub(super) fn writer(&self) -> BulkWriter {
        BulkWriter::new(&self.db, self.ramp)
            .with_max_in_flight(self.max_in_flight)
            .with_batch_size(self.batch_size)
    }

    /// Writes `item` into the feed of every follower of its vendor in the range
    /// (`start_after`, `end_at`], page by page, until the range ends or `max_pages` pages
    /// (`None`: no limit) or the policy's time budget are used up.
    pub async fn add(
        &self,
        item: &FeedItem,
        start_after: Option<&FollowerCursor>,
        end_at: Option<&FollowerCursor>,
        max_pages: Option<u32>,
    ) -> Result<(RunEnd, RunStats), Error> {
        let began = Instant::now();
        let mut stats = RunStats::default();
        let mut writer = self.writer();
        let doc = FeedDoc::from(item);
        let size = self.policy.page_size.max(1);
        // Pages are read by one streamed query per `PAGES_PER_QUERY` pages, ahead of the
        // writes, so reading the next page overlaps writing this one.
        let queries = Arc::new(AtomicUsize::new(0));
        let (mut pages, _reader) = follower_pages(
            &self.db,
            &item.vendor_id,
            start_after,
            end_at,
            size,
            max_pages,
            Arc::clone(&queries),
        );
        let mut page = pages.recv().await.transpose()?.unwrap_or_default();
        loop {
            let Some(mut last) = page.last().map(Follower::cursor) else {
                stats.reads = queries.load(Ordering::Relaxed);
                stats.elapsed = began.elapsed();
                return Ok((RunEnd::Done, stats));
            };
            // After the first, a flush fills every request slot (`batch_size` x
            // `max_in_flight` writes, 2,500 by default) when the range has that many followers
            // left: a flush ends with a wave of requests that must all finish before the next
            // starts, so fewer, fuller flushes leave the writer idle less (bench_fanout, 6
            // rounds: mean 2.9x -> 3.4x the seed). Progress still counts pages; the
            // hand-off cursor is the last follower written.
            let flush_target = self.batch_size.saturating_mul(self.max_in_flight);
            let mut buffered = page.len();
            let mut batch = vec![page];
            while buffered < flush_target
                && batch.last().is_some_and(|p| p.len() >= size as usize)
                && end_at.is_none_or(|end| end.doc_id != last.doc_id)
            {
                // The first flush takes only what has arrived, so writing starts as soon as
                // the first page is read; later ones wait for a full flush.
                let more = if stats.pages == 0 {
                    match pages.try_recv() {
                        Ok(more) => more,
                        Err(_) => break,
                    }
                } else {
                    match pages.recv().await {
                        Some(more) => more,
                        None => break,
                    }
                };
                let more = more?;
                let Some(cursor) = more.last().map(Follower::cursor) else { break };
                last = cursor;
                buffered += more.len();
                batch.push(more);
            }
            let reached_end = end_at.is_some_and(|end| end.doc_id == last.doc_id);
            for follower in batch.iter().flatten() {
                match paths::feed_post(&follower.buyer_id, &item.post_id) {
                    Ok(path) => {
                        writer.set(path, &doc);
                    }
                    // One malformed follower record must not block everyone else's feed.
                    Err(error) => {
                        tracing::warn!(doc_id = %follower.doc_id, %error, "follower skipped");
                    }
                }
            }
            stats.pages += u32::try_from(batch.len()).unwrap_or(u32::MAX);
            let page_len = batch.last().map_or(0, |p| u32::try_from(p.len()).unwrap_or(u32::MAX));
            stats.absorb(&check(writer.flush().await)?);
            // Write, then re-check the follow edges (see `drop_unfollowed`).
            let gone = self.unfollowed(batch.iter().flatten()).await?;
            stats.reads += batch.iter().map(Vec::len).sum::<usize>().div_ceil(100);
            if !gone.is_empty() {
                for follower in &gone {
                    if let Ok(path) = paths::feed_post(&follower.buyer_id, &item.post_id) {
                        writer.delete(path);
                    }
                }
                let report = check(writer.flush().await)?;
                stats.dropped += report.written;
                stats.write_requests += report.requests;
                tracing::info!(post_id = %item.post_id, dropped = gone.len(), "entries of followers who unfollowed during the fan-out removed");
            }
            stats.reads = queries.load(Ordering::Relaxed);
            let progress = Progress {
                page_len,
                reached_end,
                pages_done: stats.pages,
                elapsed: began.elapsed(),
            };
            match next_step(progress, &self.policy, max_pages) {
                Step::Done => {
                    stats.elapsed = began.elapsed();
                    return Ok((RunEnd::Done, stats));
                }
                Step::HandOff => {
                    stats.elapsed = began.elapsed();
                    return Ok((RunEnd::HandOff(Some(last)), stats));
                }
                Step::NextPage => page = pages.recv().await.transpose()?.unwrap_or_default(),
            }
        }
    }

    /// After a page of a run that restarts from the top when handed off (removal, retime):
    /// where the run ends, or `None` to go on with the next page.
    fn page_end(
        &self,
        page_len: u32,
        stats: &mut RunStats,
        began: Instant,
        max_pages: Option<u32>,
    ) -> Option<RunEnd> {
        let progress = Progress {
            page_len,
            reached_end: false,
            pages_done: stats.pages,
            elapsed: began.elapsed(),
        };
        let end = match next_step(progress, &self.policy, max_pages) {
            Step::NextPage => return None,
            Step::Done => RunEnd::Done,
            Step::HandOff => RunEnd::HandOff(None),
        };
        stats.elapsed = began.elapsed();
        Some(end)
    }

    /// Deletes `post_id` from every feed that holds it, a page at a time, until none is left
    /// or `max_pages` / the time budget are used up (then `HandOff(None)`: run again).
    pub async fn remove(
        &self,
        post_id: &str,
        max_pages: Option<u32>,
    ) -> Result<(RunEnd, RunStats), Error> {
        let began = Instant::now();
        let mut stats = RunStats::default();
        let mut writer = self.writer();
        let size = self.policy.page_size.max(1);
        let feeds_prefix = format!("{}/{}/", self.db.documents_root(), paths::names::FEEDS);
        let mut after: Option<String> = None;
        loop {
            let mut query = rpc::from(paths::names::POSTS, true);
            query.select = rpc::select(&[NAME]);
            query.r#where = rpc::and(vec![rpc::eq("postId", rpc::string(post_id))]);
            query.order_by = vec![rpc::asc(NAME)];
            if let Some(name) = after.take() {
                query.start_at = Some(rpc::cursor(vec![rpc::reference(name)], false));
            }
            query.limit = Some(i32::try_from(size).unwrap_or(i32::MAX));
            let docs = rpc::run(&self.db, self.db.documents_root().to_owned(), query).await?;
            stats.reads += 1;
            let page_len = u32::try_from(docs.len()).unwrap_or(u32::MAX);
            after = docs.last().map(|d| d.name.clone());
            for doc in &docs {
                if let Some(path) = feed_entry_path(&feeds_prefix, doc) {
                    writer.delete(path);
                }
            }
            stats.pages += 1;
            stats.absorb(&check(writer.flush().await)?);
            if let Some(end) = self.page_end(page_len, &mut stats, began, max_pages) {
                return Ok((end, stats));
            }
        }
    }

    /// The followers of `written` whose follow edge no longer exists, read after their
    /// entries were written ("write, then re-check", as `feed-fanout` does for the post).
    ///
    /// Why this closes the race with an unfollow U of follower B (the `unfollowVendor`
    /// callable deletes the edge `followers/{vendor}:{B}`, then deletes the vendor's entries
    /// in B's feed with a query on `vendorId`):
    /// - every entry of this flush was committed before the flush returned, so before the
    ///   re-check reads the edges (Firestore reads are strongly consistent);
    /// - if the re-check finds B's edge, it read before U's delete committed, so B's entry was
    ///   written before U's delete and U's removal query, which runs after its delete, finds
    ///   and deletes the entry;
    /// - if the re-check does not find the edge, this run deletes B's entry itself.
    ///
    /// Either way no entry of an unfollowed vendor outlives both. The cost is one document read
    /// per follower written (batched gets of 100).
    async fn unfollowed<'a>(
        &self,
        written: impl Iterator<Item = &'a Follower>,
    ) -> Result<Vec<Follower>, Error> {
        let written: Vec<&Follower> = written.collect();
        let names = written
            .iter()
            .map(|f| Ok(paths::follower(&f.doc_id)?.full_name(self.db.documents_root())))
            .collect::<Result<Vec<_>, Error>>()?;
        let batches = names.chunks(100).map(|chunk| rpc::batch_get(&self.db, chunk.to_vec()));
        let found = futures::future::try_join_all(batches).await?;
        let present: std::collections::HashSet<String> =
            found.into_iter().flatten().flatten().map(|doc| rpc::doc_id(&doc).to_owned()).collect();
        Ok(written.into_iter().filter(|f| !present.contains(&f.doc_id)).cloned().collect())
    }

    /// Sets the expiry (`expiresAt` and `ttlAt`) of every feed entry of `item.post_id` to
    /// `item.expires_at`, a page at a time, until none differs or `max_pages` / the time
    /// budget are used up (then `HandOff(None)`: run again). Entries are found with
    /// collection-group queries on `postId` and `ttlAt` below, then above, the new expiry, so
    /// an entry rewritten drops out of the next page (a re-run starts over without a cursor,
    /// like [`Fanout::remove`]). Each update requires the entry to exist, so an entry deleted
    /// meanwhile (an unfollow, a removal) is never recreated.
    pub async fn retime(
        &self,
        item: &FeedItem,
        max_pages: Option<u32>,
    ) -> Result<(RunEnd, RunStats), Error> {
        use firestore::gcloud_sdk::google::firestore::v1::precondition::ConditionType;
        use firestore::gcloud_sdk::google::firestore::v1::{
            BatchWriteRequest, DocumentMask, Precondition, Write, write,
        };
        let began = Instant::now();
        let mut stats = RunStats::default();
        let size = self.policy.page_size.clamp(1, 500);
        let feeds_prefix = format!("{}/{}/", self.db.documents_root(), paths::names::FEEDS);
        let expiry = rpc::timestamp(item.expires_at);
        loop {
            let mut docs = Vec::new();
            for op in [Operator::LessThan, Operator::GreaterThan] {
                let left = size as usize - docs.len();
                if left == 0 {
                    break;
                }
                let mut query = rpc::from(paths::names::POSTS, true);
                query.select = rpc::select(&[NAME]);
                query.r#where = rpc::and(vec![
                    rpc::eq("postId", rpc::string(&item.post_id)),
                    rpc::filter("ttlAt", op, expiry.clone()),
                ]);
                query.limit = Some(i32::try_from(left).unwrap_or(i32::MAX));
                docs.extend(rpc::run(&self.db, self.db.documents_root().to_owned(), query).await?);
                stats.reads += 1;
            }
            let page_len = u32::try_from(docs.len()).unwrap_or(u32::MAX);
            let writes: Vec<Write> = docs
                .iter()
                .filter(|doc| feed_entry_path(&feeds_prefix, doc).is_some())
                .map(|doc| Write {
                    operation: Some(write::Operation::Update(Document {
                        name: doc.name.clone(),
                        fields: [
                            ("expiresAt".to_owned(), expiry.clone()),
                            ("ttlAt".to_owned(), expiry.clone()),
                        ]
                        .into_iter()
                        .collect(),
                        ..Default::default()
                    })),
                    update_mask: Some(DocumentMask {
                        field_paths: vec!["expiresAt".to_owned(), "ttlAt".to_owned()],
                    }),
                    current_document: Some(Precondition {
                        condition_type: Some(ConditionType::Exists(true)),
                    }),
                    ..Default::default()
                })
                .collect();
            if !writes.is_empty() {
                let request = BatchWriteRequest {
                    database: self.db.database_name().to_owned(),
                    writes,
                    ..Default::default()
                };
                let mut client = self.db.client().await?;
                let response = self.db.call(client.batch_write(request)).await?;
                stats.write_requests += 1;
                for status in &response.status {
                    match status.code {
                        0 => stats.written += 1,
                        // NOT_FOUND: the entry was deleted meanwhile; it stays deleted.
                        5 => {}
                        code => {
                            return Err(Error::rpc(
                                crate::error::Code::from_i32(code),
                                status.message.clone(),
                            ));
                        }
                    }
                }
            }
            stats.pages += 1;
            if let Some(end) = self.page_end(page_len, &mut stats, began, max_pages) {
                return Ok((end, stats));
            }
        }
    }
}

/// The path of a collection-group result when it is a feed entry (`feeds/{uid}/posts/{id}`).
fn feed_entry_path(feeds_prefix: &str, doc: &Document) -> Option<DocPath> {
    let rest = doc.name.strip_prefix(feeds_prefix)?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(uid), Some(paths::names::POSTS), Some(post), None) => {
            paths::feed_post(uid, post).ok()
        }
        _ => None,
    }
}

impl Feeds {
    /// One page of `vendor_id`'s followers (ordered by `followedAt`, then id): strictly after
    /// `start_after`, up to and including `end_at`, at most `limit`.
    pub async fn follower_page(
        &self,
        vendor_id: &str,
        start_after: Option<&FollowerCursor>,
        end_at: Option<&FollowerCursor>,
        limit: u32,
    ) -> Result<Vec<Follower>, Error> {
        let db = &self.db;
        let query = follower_query(db, vendor_id, start_after, end_at, limit)?;
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        docs.iter().map(follower).collect()
    }

    /// The uids whose feed holds `post_id` (one per feed entry, so a duplicate would show twice).
    pub async fn holders(&self, post_id: &str) -> Result<Vec<String>, Error> {
        let db = &self.db;
        let feeds_prefix = format!("{}/{}/", db.documents_root(), paths::names::FEEDS);
        let mut query = rpc::from(paths::names::POSTS, true);
        query.select = rpc::select(&[NAME]);
        query.r#where = rpc::and(vec![rpc::eq("postId", rpc::string(post_id))]);
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        Ok(docs
            .iter()
            .filter_map(|doc| {
                let path = feed_entry_path(&feeds_prefix, doc)?;
                Some(path.collection().parent()?.id().to_owned())
            })
            .collect())
    }
}
