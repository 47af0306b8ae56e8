//! Group commit of single-document creates: concurrent callers' creates travel together in one
//! `BatchWrite` request, each keeping its own precondition and its own answer.
//!
//! A create is one write with the precondition `exists = false`; many of them arriving at once
//! (a webhook under load claiming one ledger key per event) would each be one `Commit`. Here
//! they queue for one background task per [`Db`], which sends whatever has queued as soon as
//! one of its `max_in_flight` request slots is free: alone, a create goes out at once in a batch
//! of one (no added wait); under load, the creates that arrive while requests are in flight go
//! out together in the next. `BatchWrite` applies each write on its own and answers a status per
//! write, so a create that finds its document answers `ALREADY_EXISTS` exactly as its own commit
//! would, and the others are applied regardless. A request holds at most [`MAX_WRITES`] writes
//! and one write per document (Firestore refuses a request that writes a document twice): a
//! second create of a document already in the batch waits for the next request, and so answers
//! `ALREADY_EXISTS` if the first was applied.
//!
//! Accounting: each caller is charged the round trip it waited for and its own write, in its own
//! request's counts (`metering`), as if it had committed alone; Firestore bills per document
//! written, not per request, so the bill is unchanged and only the requests are fewer.
//!
//! The task holds the database weakly: it ends when the last [`Db`] handle is dropped. Should it
//! be gone (its runtime shut down, as between tests that share a handle), the next create starts
//! a new one on the caller's runtime; a create whose task vanished before answering fails as
//! `UNAVAILABLE` (retryable, as a dropped connection).

use crate::db::{Db, Inner};
use crate::error::{Code, Error};
use firestore::gcloud_sdk::google::firestore::v1::{BatchWriteRequest, Write, write};
use firestore::gcloud_sdk::prost_types::Timestamp;
use futures::stream::{FuturesUnordered, StreamExt};
use metering::{OpKind, OpsCounts};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use tokio::sync::{mpsc, oneshot};

/// Most writes in one `BatchWrite` request (Firestore's limit).
pub(crate) const MAX_WRITES: usize = 500;
/// Requests in flight at once per database handle.
pub(crate) const DEFAULT_MAX_IN_FLIGHT: usize = 2;

type Answer = Result<Option<Timestamp>, Error>;

struct Pending {
    name: String,
    write: Write,
    counts: Option<Arc<OpsCounts>>,
    answer: oneshot::Sender<Answer>,
}

/// The queue of one database handle, and the task that drains it.
#[derive(Debug, Default)]
pub(crate) struct Group {
    queue: Mutex<Option<mpsc::UnboundedSender<Pending>>>,
    stats: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    creates: AtomicU64,
}

/// What the group commit of one database handle has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// `BatchWrite` requests sent.
    pub requests: u64,
    /// Creates they carried.
    pub creates: u64,
}

impl Db {
    /// What this handle's group commit has sent so far.
    pub fn group_stats(&self) -> GroupStats {
        let stats = &self.group().stats;
        GroupStats {
            requests: stats.requests.load(Ordering::Relaxed),
            creates: stats.creates.load(Ordering::Relaxed),
        }
    }

    /// Applies `write` (a create: an update with the precondition `exists = false`) in the next
    /// group-committed `BatchWrite`, answering its update time, or its own error (for example
    /// `ALREADY_EXISTS`) as a lone `Commit` would.
    pub(crate) async fn create_grouped(&self, write: Write) -> Answer {
        let Some(write::Operation::Update(document)) = &write.operation else {
            return Err(Error::Invalid("a grouped create must be a document write".to_owned()));
        };
        let name = document.name.clone();
        let (answer, answered) = oneshot::channel();
        let pending = Pending { name, write, counts: metering::current(), answer };
        let pending = match self.group().enqueue(pending, self) {
            Ok(()) => {
                return match answered.await {
                    Ok(answer) => answer,
                    // The task ended before answering (its runtime stopped): a retryable
                    // failure, as a dropped connection would be.
                    Err(_) => Err(Error::rpc(Code::Unavailable, "the group commit task stopped")),
                };
            }
            Err(pending) => pending,
        };
        // No task could be started (no runtime to spawn on): commit alone.
        let times = self.commit_timed(vec![pending.write]).await?;
        Ok(times.into_iter().next().flatten())
    }
}

impl Group {
    /// Queues `pending`, starting the task when there is none (or the last one ended).
    fn enqueue(&self, pending: Pending, db: &Db) -> Result<(), Box<Pending>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = match queue.as_ref() {
            Some(sender) => match sender.send(pending) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(pending)) => pending,
            },
            None => pending,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            *queue = None;
            return Err(Box::new(pending));
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        runtime.spawn(drive(db.weak(), receiver, DEFAULT_MAX_IN_FLIGHT, self.stats.clone()));
        let sent = sender.send(pending).map_err(|mpsc::error::SendError(p)| Box::new(p));
        *queue = Some(sender);
        sent
    }
}

/// The task: keeps up to `max_in_flight` requests going, each with everything queued so far.
async fn drive(
    db: Weak<Inner>,
    mut queue: mpsc::UnboundedReceiver<Pending>,
    max_in_flight: usize,
    stats: Arc<Counters>,
) {
    let mut waiting: VecDeque<Pending> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            received = queue.recv(), if open => match received {
                Some(pending) => waiting.push_back(pending),
                None => open = false,
            },
            else => break,
        }
        while let Ok(pending) = queue.try_recv() {
            waiting.push_back(pending);
        }
        while in_flight.len() < max_in_flight && !waiting.is_empty() {
            let batch = take_batch(&mut waiting);
            match Db::upgrade(&db) {
                Some(db) => {
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                    stats.creates.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    in_flight.push(send(db, batch));
                }
                None => {
                    for pending in batch {
                        let _ = pending.answer.send(Err(Error::Unreachable(
                            "the database handle was dropped".to_owned(),
                        )));
                    }
                }
            }
        }
        if !open && waiting.is_empty() && in_flight.is_empty() {
            break;
        }
    }
}

/// Takes the next batch off the front of `waiting`: at most [`MAX_WRITES`], one per document;
/// a repeated document stays queued, in order, for a later batch. A create whose caller has
/// gone (its request was cancelled while it queued) is dropped unsent, as its lone commit would
/// never have been sent: a record nobody works on would answer "in flight" until its lease ends.
fn take_batch(waiting: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut names = HashSet::new();
    let mut batch = Vec::new();
    let mut later = VecDeque::new();
    while batch.len() < MAX_WRITES {
        let Some(pending) = waiting.pop_front() else { break };
        if pending.answer.is_closed() {
            continue;
        }
        if names.insert(pending.name.clone()) {
            batch.push(pending);
        } else {
            later.push_back(pending);
        }
    }
    while let Some(pending) = later.pop_back() {
        waiting.push_front(pending);
    }
    batch
}

/// Sends one batch and answers each caller with its own write's outcome.
async fn send(db: Db, batch: Vec<Pending>) {
    let (writes, callers): (Vec<Write>, Vec<_>) =
        batch.into_iter().map(|p| (p.write, (p.counts, p.answer))).unzip();
    let request =
        BatchWriteRequest { database: db.database_name().to_owned(), writes, ..Default::default() };
    // Sent outside any caller's counts: each caller is charged below.
    let response = match db.client().await {
        Ok(mut client) => db.call(client.batch_write(request)).await,
        Err(error) => Err(error),
    };
    for (i, (counts, answer)) in callers.into_iter().enumerate() {
        let outcome = match &response {
            Err(error) => Err(error.duplicate()),
            Ok(response) => match response.status.get(i) {
                Some(status) if status.code != 0 => {
                    Err(Error::rpc(Code::from_i32(status.code), status.message.clone()))
                }
                _ => match response.write_results.get(i) {
                    Some(result) => Ok(result.update_time),
                    None => Err(Error::rpc(Code::Unavailable, "no result for this write")),
                },
            },
        };
        if let Some(counts) = counts {
            counts.add(OpKind::RoundTrip, 1);
            if outcome.is_ok() {
                counts.add(OpKind::Write, 1);
            }
        }
        let _ = answer.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firestore::gcloud_sdk::google::firestore::v1::Document;

    fn pending(name: &str) -> (Pending, oneshot::Receiver<Answer>) {
        let (answer, answered) = oneshot::channel();
        let write = Write {
            operation: Some(write::Operation::Update(Document {
                name: name.to_owned(),
                ..Default::default()
            })),
            ..Default::default()
        };
        (Pending { name: name.to_owned(), write, counts: None, answer }, answered)
    }

    fn names(batch: &[Pending]) -> Vec<&str> {
        batch.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn a_batch_writes_each_document_once_and_keeps_repeats_in_order_for_later() {
        let (mut waiting, _answers): (VecDeque<Pending>, Vec<_>) =
            ["a", "b", "a", "c", "a", "b"].iter().map(|n| pending(n)).unzip();
        let first = take_batch(&mut waiting);
        assert_eq!(names(&first), ["a", "b", "c"]);
        let second = take_batch(&mut waiting);
        assert_eq!(names(&second), ["a", "b"]);
        let third = take_batch(&mut waiting);
        assert_eq!(names(&third), ["a"]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_create_whose_caller_has_gone_is_not_sent() {
        let (kept, _answered) = pending("a");
        let (gone, dropped) = pending("b");
        drop(dropped);
        let mut waiting: VecDeque<Pending> = [gone, kept].into_iter().collect();
        assert_eq!(names(&take_batch(&mut waiting)), ["a"]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_batch_holds_at_most_the_request_limit() {
        let (mut waiting, _answers): (VecDeque<Pending>, Vec<_>) =
            (0..MAX_WRITES + 3).map(|i| pending(&format!("d{i}"))).unzip();
        assert_eq!(take_batch(&mut waiting).len(), MAX_WRITES);
        assert_eq!(take_batch(&mut waiting).len(), 3);
    }
}
