//! The Firestore side of the Eventarc bridge: one `Listen` target per [`Scope`] the triggers
//! watch, changes tracked by [`Tracker`], matching routes served by [`super::deliver`].
//! Reconnects after a dropped stream and reports what changed meanwhile.
//!
//! The emulator answers a change by resetting the target and re-sending its whole result
//! (`RESET`, documents, `CURRENT`), which the tracker turns back into the one change. So the
//! target is the narrowest query that holds the pattern's documents: for `posts/{postId}`, the
//! top-level `posts` collection, not the `posts` collection group, which also holds every feed
//! entry (`feeds/{uid}/posts/{postId}`): with the group, each of a fan-out's writes made the
//! emulator resend every post and feed entry, and the bridge compare them all. Writes outside
//! a collection target are never sent; writes to a group target's collection id outside its
//! name range still make the emulator resend the (in-range) result. [`BridgeStats`] counts
//! what arrives. The emulator does not update kindless (every-document) targets after their
//! first snapshot, so patterns whose last collection id is a wildcard are served by polling an
//! all-descendants query of their scope instead (every [`POLL_INTERVAL`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use firestore::gcloud_sdk::google::firestore::v1::listen_request::TargetChange as AddOrRemove;
use firestore::gcloud_sdk::google::firestore::v1::listen_response::ResponseType;
use firestore::gcloud_sdk::google::firestore::v1::run_query_request::QueryType as RunQueryType;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::{
    CollectionSelector, CompositeFilter, FieldFilter, FieldReference, Filter, composite_filter,
    field_filter, filter::FilterType,
};
use firestore::gcloud_sdk::google::firestore::v1::target::query_target::QueryType;
use firestore::gcloud_sdk::google::firestore::v1::target::{QueryTarget, TargetType};
use firestore::gcloud_sdk::google::firestore::v1::target_change::TargetChangeType;
use firestore::gcloud_sdk::google::firestore::v1::value::ValueType;
use firestore::gcloud_sdk::google::firestore::v1::{
    ListenRequest, RunQueryRequest, StructuredQuery, Target, Value,
};
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pattern::{Scope, fires};
use super::tracker::{Change, Tracker};
use super::{EventarcRetry, EventarcRoute, build_event, convert, deliver};

/// How often wildcard-collection patterns are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("the Firestore emulator did not answer the Listen stream within {0:?}")]
    NotReady(Duration),
}

/// What the bridge has read from Firestore (the work it does grows with these).
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Document snapshots received on the Listen stream.
    pub listened: AtomicU64,
    /// Documents read by the polls of wildcard-collection patterns.
    pub polled: AtomicU64,
}

impl BridgeStats {
    /// Document snapshots received on the Listen stream so far.
    pub fn listened(&self) -> u64 {
        self.listened.load(Ordering::Relaxed)
    }

    /// Documents polled so far.
    pub fn polled(&self) -> u64 {
        self.polled.load(Ordering::Relaxed)
    }
}

/// The bridge of one project.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub db: store::Db,
    pub project: String,
    pub routes: Vec<EventarcRoute>,
    pub http: reqwest::Client,
    pub retry: EventarcRetry,
    /// Shared with whoever wants to watch the bridge's reads.
    pub stats: Arc<BridgeStats>,
}

struct Watched {
    scope: Scope,
    tracker: Tracker,
}

impl Bridge {
    /// The scopes the routes watch, each once.
    fn scopes(&self) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = self.routes.iter().map(|r| r.pattern.scope()).collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// The scopes served by Listen, numbered from 1 (the Listen target ids).
    fn targets(&self) -> BTreeMap<i32, Scope> {
        self.scopes()
            .into_iter()
            .filter(|s| !matches!(s, Scope::Everything { .. }))
            .enumerate()
            .map(|(i, s)| (i32::try_from(i).unwrap_or(i32::MAX - 1) + 1, s))
            .collect()
    }

    /// The query of `scope`: its parent (a full resource name) and structured query.
    fn query(&self, scope: &Scope) -> (String, StructuredQuery) {
        let root = self.db.documents_root();
        let parent = match scope.parent() {
            "" => root.to_owned(),
            path => format!("{root}/{path}"),
        };
        let from = match scope {
            Scope::Collection { collection, .. } => {
                CollectionSelector { collection_id: collection.clone(), all_descendants: false }
            }
            Scope::Group { collection, .. } => {
                CollectionSelector { collection_id: collection.clone(), all_descendants: true }
            }
            Scope::Everything { .. } => {
                CollectionSelector { collection_id: String::new(), all_descendants: true }
            }
        };
        let r#where = scope.name_range().map(|(low, high)| {
            let bound = |op: field_filter::Operator, path: String| Filter {
                filter_type: Some(FilterType::FieldFilter(FieldFilter {
                    field: Some(FieldReference { field_path: "__name__".to_owned() }),
                    op: op as i32,
                    value: Some(Value {
                        value_type: Some(ValueType::ReferenceValue(format!("{root}/{path}"))),
                    }),
                })),
            };
            Filter {
                filter_type: Some(FilterType::CompositeFilter(CompositeFilter {
                    op: composite_filter::Operator::And as i32,
                    filters: vec![
                        bound(field_filter::Operator::GreaterThanOrEqual, low),
                        bound(field_filter::Operator::LessThan, high),
                    ],
                })),
            }
        });
        (parent, StructuredQuery { from: vec![from], r#where, ..Default::default() })
    }

    /// Starts listening and returns once every target has its first snapshot (so writes made
    /// after this returns produce events), or fails after `ready_within`.
    pub async fn start(
        self,
        cancel: CancellationToken,
        ready_within: Duration,
    ) -> Result<tokio::task::JoinHandle<()>, BridgeError> {
        let (listen_tx, mut listen_rx) = watch::channel(false);
        let (poll_tx, mut poll_rx) = watch::channel(false);
        let poller = self.clone();
        let stop = cancel.clone();
        let listen = tokio::spawn(async move { self.run(cancel, listen_tx).await });
        let poll = tokio::spawn(async move { poller.poll(stop, poll_tx).await });
        let both = async {
            listen_rx.wait_for(|r| *r).await.map(drop)?;
            poll_rx.wait_for(|r| *r).await.map(drop)
        };
        match tokio::time::timeout(ready_within, both).await {
            Ok(Ok(())) => Ok(tokio::spawn(async move {
                let _ = tokio::join!(listen, poll);
            })),
            _ => {
                listen.abort();
                poll.abort();
                Err(BridgeError::NotReady(ready_within))
            }
        }
    }

    async fn run(self, cancel: CancellationToken, ready: watch::Sender<bool>) {
        let targets = self.targets();
        if targets.is_empty() {
            let _ = ready.send(true);
            return;
        }
        let mut watched: BTreeMap<i32, Watched> = targets
            .iter()
            .map(|(id, scope)| (*id, Watched { scope: scope.clone(), tracker: Tracker::new() }))
            .collect();
        let mut failures = 0u32;
        loop {
            for w in watched.values_mut() {
                w.tracker.reset();
            }
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                r = self.listen_once(&targets, &mut watched, &ready) => r,
            };
            if let Err(error) = result {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(%error, "Firestore listen stream ended; reconnecting");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn listen_once(
        &self,
        targets: &BTreeMap<i32, Scope>,
        watched: &mut BTreeMap<i32, Watched>,
        ready: &watch::Sender<bool>,
    ) -> Result<(), String> {
        let firestore = self.db.firestore().await.map_err(|e| e.to_string())?;
        let mut client = firestore.client().get();
        let database = self.db.database_name().to_owned();
        let requests: Vec<ListenRequest> = targets
            .iter()
            .map(|(id, scope)| {
                let (parent, query) = self.query(scope);
                ListenRequest {
                    database: database.clone(),
                    target_change: Some(AddOrRemove::AddTarget(Target {
                        target_id: *id,
                        target_type: Some(TargetType::Query(QueryTarget {
                            parent,
                            query_type: Some(QueryType::StructuredQuery(query)),
                        })),
                        ..Default::default()
                    })),
                    ..Default::default()
                }
            })
            .collect();
        // Keep the request side open: closing it ends the stream.
        let outbound = futures::stream::iter(requests).chain(futures::stream::pending());
        let mut stream = client.listen(outbound).await.map_err(|e| e.to_string())?.into_inner();
        while let Some(response) = stream.message().await.map_err(|e| e.to_string())? {
            let Some(response) = response.response_type else { continue };
            let mut changes: Vec<(Scope, Change)> = Vec::new();
            match response {
                ResponseType::TargetChange(tc) => {
                    let ids = if tc.target_ids.is_empty() {
                        watched.keys().copied().collect()
                    } else {
                        tc.target_ids.clone()
                    };
                    match TargetChangeType::try_from(tc.target_change_type) {
                        Ok(TargetChangeType::Current) => {
                            for id in ids {
                                if let Some(w) = watched.get_mut(&id) {
                                    changes.extend(
                                        w.tracker
                                            .current()
                                            .into_iter()
                                            .map(|c| (w.scope.clone(), c)),
                                    );
                                }
                            }
                            if watched.values().all(|w| w.tracker.is_synced()) {
                                let _ = ready.send(true);
                            }
                        }
                        Ok(TargetChangeType::Reset) => {
                            for id in ids {
                                if let Some(w) = watched.get_mut(&id) {
                                    w.tracker.reset();
                                }
                            }
                        }
                        Ok(TargetChangeType::Remove) => {
                            let cause = tc.cause.map(|c| c.message).unwrap_or_default();
                            return Err(format!("the emulator removed a listen target: {cause}"));
                        }
                        _ => {}
                    }
                }
                ResponseType::DocumentChange(dc) => {
                    if let Some(doc) = dc.document {
                        self.stats.listened.fetch_add(1, Ordering::Relaxed);
                        let doc = convert::document(&doc);
                        for id in &dc.target_ids {
                            if let Some(w) = watched.get_mut(id)
                                && let Some(c) = w.tracker.document(doc.clone())
                            {
                                changes.push((w.scope.clone(), c));
                            }
                        }
                        for id in &dc.removed_target_ids {
                            if let Some(w) = watched.get_mut(id)
                                && let Some(c) = w.tracker.removed(&doc.name)
                            {
                                changes.push((w.scope.clone(), c));
                            }
                        }
                    }
                }
                ResponseType::DocumentDelete(dd) => {
                    changes.extend(removed(watched, &dd.document, &dd.removed_target_ids));
                }
                ResponseType::DocumentRemove(dr) => {
                    changes.extend(removed(watched, &dr.document, &dr.removed_target_ids));
                }
                ResponseType::Filter(_) => {
                    // The server cannot say which documents left: start over with a resync.
                    return Err("existence filter mismatch; resyncing".to_owned());
                }
            }
            for (scope, change) in changes {
                self.dispatch(&scope, &change);
            }
        }
        Err("the stream closed".to_owned())
    }

    /// Polls the scopes of the wildcard-collection patterns (see the module docs).
    async fn poll(self, cancel: CancellationToken, ready: watch::Sender<bool>) {
        let mut polled: Vec<(Scope, Tracker)> = self
            .scopes()
            .into_iter()
            .filter(|s| matches!(s, Scope::Everything { .. }))
            .map(|s| (s, Tracker::new()))
            .collect();
        if polled.is_empty() {
            let _ = ready.send(true);
            return;
        }
        let mut failing = false;
        loop {
            let mut all_read = true;
            for (scope, tracker) in &mut polled {
                match self.query_all(scope).await {
                    Ok(docs) => {
                        tracker.reset();
                        let mut changes: Vec<Change> =
                            docs.into_iter().filter_map(|d| tracker.document(d)).collect();
                        changes.extend(tracker.current());
                        for change in changes {
                            self.dispatch(scope, &change);
                        }
                    }
                    Err(error) => {
                        if !failing {
                            tracing::warn!(%error, "polling Firestore for wildcard-collection triggers failed; retrying");
                        }
                        all_read = false;
                    }
                }
            }
            failing = !all_read;
            if all_read {
                let _ = ready.send(true);
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    async fn query_all(
        &self,
        scope: &Scope,
    ) -> Result<Vec<gcp::firestore::FirestoreDocument>, String> {
        let firestore = self.db.firestore().await.map_err(|e| e.to_string())?;
        let (parent, query) = self.query(scope);
        let request = RunQueryRequest {
            parent,
            query_type: Some(RunQueryType::StructuredQuery(query)),
            ..Default::default()
        };
        let mut stream = firestore
            .client()
            .get()
            .run_query(request)
            .await
            .map_err(|e| e.message().to_owned())?
            .into_inner();
        let mut docs = Vec::new();
        while let Some(item) = stream.message().await.map_err(|e| e.message().to_owned())? {
            if let Some(doc) = item.document {
                self.stats.polled.fetch_add(1, Ordering::Relaxed);
                docs.push(convert::document(&doc));
            }
        }
        Ok(docs)
    }

    /// Delivers `change`, seen in `scope`, to the routes of that scope it concerns (a change
    /// seen in another scope too is that scope's routes' business).
    fn dispatch(&self, scope: &Scope, change: &Change) {
        let path = change.path();
        for route in &self.routes {
            if route.pattern.scope() != *scope
                || !route.pattern.matches(path)
                || !fires(route.event_type, change.kind())
            {
                continue;
            }
            let event = build_event(&self.project, route, change);
            tokio::spawn(deliver(
                self.http.clone(),
                self.project.clone(),
                route.clone(),
                event,
                self.retry,
            ));
        }
    }
}

fn removed(watched: &mut BTreeMap<i32, Watched>, name: &str, ids: &[i32]) -> Vec<(Scope, Change)> {
    let all: Vec<i32> = watched.keys().copied().collect();
    let ids = if ids.is_empty() { all.as_slice() } else { ids };
    ids.iter()
        .filter_map(|id| {
            let w = watched.get_mut(id)?;
            w.tracker.removed(name).map(|c| (w.scope.clone(), c))
        })
        .collect()
}
