//! Where permanently failed events are recorded before they are acknowledged.
//!
//! The error middleware hands every [`Error::Permanent`](crate::Error) to a [`DeadLetterSink`]
//! (the trait lives in `domain::dead_letter`, beside the record, and is re-exported here).
//! `store` implements the sink over Firestore (`dead_letters/{id}`); this module provides an
//! in-memory sink for tests and a logging-only one.

use std::sync::Arc;

use domain::dead_letter::DeadLetter;
pub use domain::dead_letter::{BoxFuture, DeadLetterSink};
use parking_lot::Mutex;

/// The log-only sink: writes the dead letter to the log at ERROR level and succeeds. A function
/// chooses it explicitly (`Server::new` takes a sink) when it consumes no redelivered events;
/// push and event consumers plug in `store`'s Firestore sink.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogDeadLetters;

impl DeadLetterSink for LogDeadLetters {
    fn record(&self, dl: DeadLetter) -> BoxFuture<'_, anyhow::Result<()>> {
        tracing::error!(
            dead_letter.id = %dl.id,
            dead_letter.source = %dl.source,
            dead_letter.event_id = dl.event_id.as_deref(),
            dead_letter.reason = %dl.reason,
            dead_letter.detail = %dl.detail,
            "dead letter (log only; no store configured)"
        );
        Box::pin(std::future::ready(Ok(())))
    }
}

/// An in-memory sink for tests: keeps every record, and can be told to fail.
#[derive(Debug, Clone, Default)]
pub struct MemoryDeadLetters {
    inner: Arc<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    records: Mutex<Vec<DeadLetter>>,
    failing: Mutex<bool>,
}

impl MemoryDeadLetters {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink whose every `record` call fails (to test the "lose nothing" path).
    pub fn failing() -> Self {
        let sink = Self::default();
        sink.set_failing(true);
        sink
    }

    /// Makes later `record` calls fail (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        *self.inner.failing.lock() = failing;
    }

    /// Everything recorded so far, oldest first. Records with an id already present replace
    /// the earlier one, as the Firestore sink does.
    pub fn records(&self) -> Vec<DeadLetter> {
        self.inner.records.lock().clone()
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    fn record(&self, dl: DeadLetter) -> BoxFuture<'_, anyhow::Result<()>> {
        let result = if *self.inner.failing.lock() {
            Err(anyhow::anyhow!("memory dead-letter sink set to fail"))
        } else {
            let mut records = self.inner.records.lock();
            match records.iter_mut().find(|r| r.id == dl.id) {
                Some(existing) => *existing = dl,
                None => records.push(dl),
            }
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dl(id: &str, reason: &str) -> DeadLetter {
        DeadLetter {
            id: id.to_owned(),
            source: "svc POST /x".to_owned(),
            event_id: Some(id.to_owned()),
            reason: reason.to_owned(),
            detail: "chain".to_owned(),
            recorded_at: "2026-01-01T00:00:00Z".to_owned(),
            suspected_forgery: false,
        }
    }

    #[tokio::test]
    async fn memory_sink_overwrites_by_id_and_can_fail() {
        let sink = MemoryDeadLetters::new();
        sink.record(dl("a", "first")).await.unwrap();
        sink.record(dl("b", "other")).await.unwrap();
        sink.record(dl("a", "second")).await.unwrap();
        let records = sink.records();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].reason, "second");

        sink.set_failing(true);
        assert!(sink.record(dl("c", "x")).await.is_err());
        assert_eq!(sink.records().len(), 2);
    }
}
