//! Turns a Firestore Listen stream (documents that match, documents that stopped matching,
//! "current" marks) into document changes with the before and after snapshots Eventarc puts
//! in `DocumentEventData`. Pure: the listener feeds it, it keeps the last snapshot of every
//! document it has seen.
//!
//! Phases: the first snapshot after start-up only fills the cache (Eventarc never fires for
//! documents that existed before the trigger). After a reconnect or a `RESET`, the re-sent
//! snapshot is compared with the cache, so changes made while the stream was down still
//! produce their events (a document missing from the new snapshot was deleted meanwhile).

use std::collections::{BTreeSet, HashMap, HashSet};

use gcp::eventarc::FirestoreEventKind;
use gcp::firestore::FirestoreDocument;

/// One document change.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Created(FirestoreDocument),
    Updated {
        old: FirestoreDocument,
        new: FirestoreDocument,
        /// Top-level fields that were added, removed or changed.
        mask: Vec<String>,
    },
    Deleted(FirestoreDocument),
}

impl Change {
    pub fn kind(&self) -> FirestoreEventKind {
        match self {
            Change::Created(_) => FirestoreEventKind::Created,
            Change::Updated { .. } => FirestoreEventKind::Updated,
            Change::Deleted(_) => FirestoreEventKind::Deleted,
        }
    }

    /// The snapshot that names the document.
    pub fn document(&self) -> &FirestoreDocument {
        match self {
            Change::Created(doc) | Change::Deleted(doc) | Change::Updated { new: doc, .. } => doc,
        }
    }

    /// The relative path (`posts/p1`).
    pub fn path(&self) -> &str {
        self.document().path().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Filling the cache for the first time: no events.
    Initial,
    /// In sync: every message is a change.
    Live,
    /// Re-reading after a reconnect or reset: differences from the cache are changes.
    Resync,
}

/// The cache of last-seen snapshots of one listen target.
#[derive(Debug, Clone)]
pub struct Tracker {
    docs: HashMap<String, FirestoreDocument>,
    phase: Phase,
    seen: HashSet<String>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracker {
    pub fn new() -> Self {
        Self { docs: HashMap::new(), phase: Phase::Initial, seen: HashSet::new() }
    }

    /// Whether the first snapshot is complete.
    pub fn is_synced(&self) -> bool {
        self.phase != Phase::Initial
    }

    /// The stream restarted or the server reset the target: a full snapshot follows.
    pub fn reset(&mut self) {
        if self.phase != Phase::Initial {
            self.phase = Phase::Resync;
        }
        self.seen.clear();
    }

    /// A document matches the target with this content.
    pub fn document(&mut self, doc: FirestoreDocument) -> Option<Change> {
        if self.phase != Phase::Live {
            self.seen.insert(doc.name.clone());
        }
        let old = self.docs.insert(doc.name.clone(), doc.clone());
        if self.phase == Phase::Initial {
            return None;
        }
        match old {
            None => Some(Change::Created(doc)),
            Some(old) if old.fields == doc.fields && old.update_time == doc.update_time => None,
            Some(old) => {
                let mask = update_mask(&old, &doc);
                Some(Change::Updated { old, new: doc, mask })
            }
        }
    }

    /// A document was deleted or stopped matching.
    pub fn removed(&mut self, name: &str) -> Option<Change> {
        let old = self.docs.remove(name)?;
        (self.phase != Phase::Initial).then_some(Change::Deleted(old))
    }

    /// The target is current: the snapshot is complete. After a resync, documents the new
    /// snapshot did not contain were deleted while the stream was down.
    pub fn current(&mut self) -> Vec<Change> {
        let gone = match self.phase {
            Phase::Initial | Phase::Live => Vec::new(),
            Phase::Resync => {
                let mut gone: Vec<String> =
                    self.docs.keys().filter(|name| !self.seen.contains(*name)).cloned().collect();
                gone.sort();
                gone
            }
        };
        self.phase = Phase::Live;
        self.seen.clear();
        gone.iter().filter_map(|name| self.docs.remove(name)).map(Change::Deleted).collect()
    }
}

/// The top-level fields that differ between two snapshots, sorted.
pub fn update_mask(old: &FirestoreDocument, new: &FirestoreDocument) -> Vec<String> {
    let names: BTreeSet<&String> = old.fields.keys().chain(new.fields.keys()).collect();
    names.into_iter().filter(|n| old.fields.get(*n) != new.fields.get(*n)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use gcp::firestore::Value;

    fn doc(id: &str, version: i64, fields: &[(&str, Value)]) -> FirestoreDocument {
        FirestoreDocument {
            name: format!("projects/p/databases/(default)/documents/posts/{id}"),
            fields: fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            create_time: Some(Utc.timestamp_opt(1, 0).unwrap()),
            update_time: Some(Utc.timestamp_opt(version, 0).unwrap()),
        }
    }

    #[test]
    fn the_first_snapshot_fires_nothing_then_changes_fire() {
        let mut t = Tracker::new();
        assert_eq!(t.document(doc("a", 1, &[])), None);
        assert!(!t.is_synced());
        assert!(t.current().is_empty());
        assert!(t.is_synced());

        let b = doc("b", 2, &[("title", Value::String("hi".into()))]);
        assert_eq!(t.document(b.clone()), Some(Change::Created(b.clone())));

        let b2 = doc("b", 3, &[("title", Value::String("ho".into())), ("n", Value::Integer(1))]);
        match t.document(b2.clone()) {
            Some(Change::Updated { old, new, mask }) => {
                assert_eq!((old, new), (b, b2.clone()));
                assert_eq!(mask, ["n", "title"]);
            }
            other => panic!("{other:?}"),
        }
        // The same snapshot again (a second target, a duplicate message) is not a change.
        assert_eq!(t.document(b2.clone()), None);
        assert_eq!(t.removed(&b2.name), Some(Change::Deleted(b2.clone())));
        assert_eq!(t.removed(&b2.name), None);
    }

    #[test]
    fn a_resync_reports_what_changed_while_the_stream_was_down() {
        let mut t = Tracker::new();
        let (a, b, c) = (doc("a", 1, &[]), doc("b", 1, &[]), doc("c", 1, &[]));
        for d in [&a, &b, &c] {
            t.document(d.clone());
        }
        t.current();
        t.reset();
        // a unchanged, b updated, c deleted, d created while disconnected.
        assert_eq!(t.document(a), None);
        let b2 = doc("b", 2, &[("x", Value::Boolean(true))]);
        assert!(matches!(t.document(b2), Some(Change::Updated { .. })));
        let d = doc("d", 2, &[]);
        assert_eq!(t.document(d.clone()), Some(Change::Created(d)));
        assert_eq!(t.current(), vec![Change::Deleted(c)]);
        assert!(t.current().is_empty());
    }

    #[test]
    fn a_reset_before_the_first_snapshot_completes_stays_silent() {
        let mut t = Tracker::new();
        t.document(doc("a", 1, &[]));
        t.reset();
        assert_eq!(t.removed(&doc("a", 1, &[]).name), None);
        assert_eq!(t.document(doc("b", 1, &[])), None);
        assert!(t.current().is_empty());
    }
}
