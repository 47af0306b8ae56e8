//! A bulk writer in the manner of nodejs-firestore's BulkWriter:
//! BatchWrite requests of at most 20 writes by default ([`BulkWriter::with_batch_size`] changes
//! it; at most 10 when retrying), several in flight at once, the total rate held under a
//! [`RampPolicy`] (500/50/5 by default), and every write retried on its own on the retryable
//! codes with the [`Backoff::bulk_writer`] policy (`RESOURCE_EXHAUSTED` waits the maximum).
//!
//! The ramp is a budget for the whole deployment, not for one writer: a function that may run
//! N instances (the manifest's `max_instances`, `HEARTH_WRITE_BUDGET_INSTANCES`) gives each
//! writer `RampPolicy::shared_by(N)`, so N instances starting together stay within 500 ops/s.
//! The budget is divided rather than coordinated (a shared token counter in Firestore or
//! elsewhere): division costs no extra reads or writes per batch, has no failure mode of its
//! own, and errs on the slow side when fewer instances run. Every bulk writer is built this
//! way: the feed fan-out and removal (feed-fanout) and the follow backfill (api), both with the
//! profile the manifest selects (`HEARTH_FANOUT_RAMP`).
//!
//! BatchWrite is not atomic and each write has its own status, so the outcome is reported per
//! write. A request may carry one write per document: when the same document is written more
//! than once, later writes go in later waves, which keeps them in order.

use crate::db::{Db, encode};
use crate::error::{Code, Error, RetryCodes};
use crate::paths::DocPath;
use domain::backoff::Backoff;
use domain::ramp::{RampLimiter, RampPolicy};
use firestore::gcloud_sdk::google::firestore::v1::{BatchWriteRequest, Write, write};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// Writes per BatchWrite request by default (nodejs BulkWriter `MAX_BATCH_SIZE`).
pub const MAX_BATCH_SIZE: usize = 20;
/// Writes per request once writes are being retried (`RETRY_MAX_BATCH_SIZE`).
pub const RETRY_BATCH_SIZE: usize = 10;
/// Requests in flight at once (500 writes, nodejs' pending-ops limit).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 25;

/// What a flush did.
#[derive(Debug, Default)]
pub struct BulkReport {
    /// Writes that were applied.
    pub written: usize,
    /// Writes that failed for good, with the last error.
    pub failed: Vec<(DocPath, Error)>,
    /// Writes that needed at least one retry.
    pub retried: usize,
    /// BatchWrite requests sent.
    pub requests: usize,
    /// Wall time of the flush.
    pub elapsed: Duration,
}

impl BulkReport {
    /// Applied writes per second over the flush.
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.written as f64 / secs } else { 0.0 }
    }

    /// Whether every write was applied.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

#[derive(Debug)]
struct Op {
    path: DocPath,
    write: Write,
    attempts: u32,
    not_before: Instant,
}

impl Op {
    fn is_delete(&self) -> bool {
        matches!(self.write.operation, Some(write::Operation::Delete(_)))
    }
}

/// Collects writes, then applies them with [`flush`](Self::flush).
#[derive(Debug)]
pub struct BulkWriter {
    db: Db,
    limiter: RampLimiter,
    started: Option<Instant>,
    backoff: Backoff,
    max_in_flight: usize,
    batch_size: usize,
    ops: Vec<Op>,
    encode_failures: Vec<(DocPath, Error)>,
}

impl BulkWriter {
    /// A writer on `db` whose rate follows `ramp` (e.g. `RampPolicy::default()`, or
    /// `RampPolicy::for_profile(profile)`).
    pub fn new(db: &Db, ramp: RampPolicy) -> Self {
        Self {
            db: db.clone(),
            limiter: RampLimiter::new(ramp),
            started: None,
            backoff: Backoff::bulk_writer(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            batch_size: MAX_BATCH_SIZE,
            ops: Vec::new(),
            encode_failures: Vec::new(),
        }
    }

    /// Replaces the per-write retry policy.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Replaces the limit on requests in flight (at least 1).
    pub fn with_max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// Replaces the number of writes per BatchWrite request (1 to 500, Firestore's limit;
    /// default [`MAX_BATCH_SIZE`]). Retries still go [`RETRY_BATCH_SIZE`] at a time at most.
    pub fn with_batch_size(mut self, writes: usize) -> Self {
        self.batch_size = writes.clamp(1, 500);
        self
    }

    /// Queues a write replacing `path` with `value`. A value that cannot be encoded is
    /// reported as failed by the next flush.
    pub fn set<T: Serialize>(&mut self, path: DocPath, value: &T) -> &mut Self {
        match encode(&path, self.db.documents_root(), value) {
            Ok(doc) => self.push(
                path,
                Write { operation: Some(write::Operation::Update(doc)), ..Default::default() },
            ),
            Err(error) => self.encode_failures.push((path, error)),
        }
        self
    }

    /// Queues the deletion of `path`.
    pub fn delete(&mut self, path: DocPath) -> &mut Self {
        let write = self.db.delete_write(&path);
        self.push(path, write);
        self
    }

    /// Writes queued and not yet flushed.
    pub fn pending(&self) -> usize {
        self.ops.len()
    }

    fn push(&mut self, path: DocPath, write: Write) {
        self.ops.push(Op { path, write, attempts: 0, not_before: Instant::now() });
    }

    /// Applies every queued write and reports the outcome of each. The writer can be reused;
    /// its ramp keeps counting from the first flush.
    pub async fn flush(&mut self) -> BulkReport {
        let begun = Instant::now();
        let started = *self.started.get_or_insert(begun);
        let mut report = BulkReport {
            failed: std::mem::take(&mut self.encode_failures),
            ..BulkReport::default()
        };
        for wave in waves(std::mem::take(&mut self.ops)) {
            self.run_wave(wave, started, &mut report).await;
        }
        report.elapsed = begun.elapsed();
        report
    }

    async fn run_wave(&mut self, wave: Vec<Op>, started: Instant, report: &mut BulkReport) {
        let mut ready: VecDeque<Op> = wave.into();
        let mut waiting: Vec<Op> = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        loop {
            let now = Instant::now();
            let (due, later): (Vec<Op>, Vec<Op>) =
                waiting.drain(..).partition(|op| op.not_before <= now);
            waiting = later;
            ready.extend(due);

            while in_flight.len() < self.max_in_flight && !ready.is_empty() {
                let retrying = ready.front().is_some_and(|op| op.attempts > 0);
                let size =
                    if retrying { RETRY_BATCH_SIZE.min(self.batch_size) } else { self.batch_size };
                let batch: Vec<Op> = ready.drain(..size.min(ready.len())).collect();
                self.acquire(started, batch.len()).await;
                report.requests += 1;
                in_flight.push(send(self.db.clone(), batch));
            }

            if in_flight.is_empty() {
                match waiting.iter().map(|op| op.not_before).min() {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None if ready.is_empty() => return,
                    None => {}
                }
                continue;
            }

            let next_due = waiting.iter().map(|op| op.not_before).min();
            let finished = match next_due {
                Some(at) => tokio::select! {
                    finished = in_flight.next() => finished,
                    () = tokio::time::sleep_until(at) => None,
                },
                None => in_flight.next().await,
            };
            let Some(results) = finished else { continue };
            for (mut op, outcome) in results {
                op.attempts += 1;
                match outcome {
                    Ok(()) => {
                        report.written += 1;
                        if op.attempts > 1 {
                            report.retried += 1;
                        }
                    }
                    Err(error) => {
                        let retry =
                            error.code().is_some_and(|c| c.is_bulk_retryable(op.is_delete()))
                                && self.backoff.should_retry(op.attempts);
                        if retry {
                            let draw = rand::random::<f64>();
                            let delay = if error.code() == Some(Code::ResourceExhausted) {
                                self.backoff.exhausted_delay(draw)
                            } else {
                                self.backoff.delay(op.attempts, draw)
                            };
                            op.not_before = Instant::now() + delay;
                            waiting.push(op);
                        } else {
                            report.failed.push((op.path, error));
                        }
                    }
                }
            }
        }
    }

    /// Waits until the ramp allows `n` more writes.
    async fn acquire(&mut self, started: Instant, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        loop {
            match self.limiter.try_acquire(started.elapsed(), n) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// Splits ops into waves holding each document at most once, keeping per-document order.
fn waves(ops: Vec<Op>) -> Vec<Vec<Op>> {
    let mut seen: HashMap<DocPath, usize> = HashMap::new();
    let mut waves: Vec<Vec<Op>> = Vec::new();
    for op in ops {
        let count = seen.entry(op.path.clone()).or_insert(0);
        let wave = *count;
        *count += 1;
        if waves.len() <= wave {
            waves.push(Vec::new());
        }
        waves[wave].push(op);
    }
    waves
}

/// Sends one BatchWrite and pairs every op with its own outcome.
async fn send(db: Db, batch: Vec<Op>) -> Vec<(Op, Result<(), Error>)> {
    let request = BatchWriteRequest {
        database: db.database_name().to_owned(),
        writes: batch.iter().map(|op| op.write.clone()).collect(),
        ..Default::default()
    };
    let response = match db.client().await {
        Ok(mut client) => db.call(client.batch_write(request)).await,
        Err(error) => Err(error),
    };
    match response {
        Ok(response) => batch
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                let outcome = match response.status.get(i) {
                    Some(status) if status.code != 0 => {
                        Err(Error::rpc(Code::from_i32(status.code), status.message.clone()))
                    }
                    // A missing status alongside a write result means success; neither is
                    // an incomplete answer, retried like an unavailable server.
                    Some(_) => Ok(()),
                    None if response.write_results.get(i).is_some() => Ok(()),
                    None => Err(Error::rpc(Code::Unavailable, "no status for this write")),
                };
                (op, outcome)
            })
            .collect(),
        Err(error) => {
            let message = error.to_string();
            let code = error.code().unwrap_or(Code::Unknown);
            batch.into_iter().map(|op| (op, Err(Error::rpc(code, message.clone())))).collect()
        }
    }
}
