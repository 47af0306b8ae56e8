//! The Firestore side of the Eventarc bridge: one `Listen` collection-group target per
//! collection a trigger watches, changes tracked by [`Tracker`], matching routes served by
//! [`super::deliver`]. Reconnects after a dropped stream and reports what changed meanwhile.
//!
//! The emulator answers a change by resetting the target and re-sending its whole result
//! (`RESET`, documents, `CURRENT`), which the tracker turns back into the one change. It does
//! not update kindless (every-document) targets after their first snapshot, so patterns whose
//! last collection id is a wildcard are served by polling an all-descendants query instead
//! (every [`POLL_INTERVAL`]).

use std::collections::BTreeMap;
use std::time::Duration;

use firestore::gcloud_sdk::google::firestore::v1::listen_request::TargetChange as AddOrRemove;
use firestore::gcloud_sdk::google::firestore::v1::listen_response::ResponseType;
use firestore::gcloud_sdk::google::firestore::v1::run_query_request::QueryType as RunQueryType;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::CollectionSelector;
use firestore::gcloud_sdk::google::firestore::v1::target::query_target::QueryType;
use firestore::gcloud_sdk::google::firestore::v1::target::{QueryTarget, TargetType};
use firestore::gcloud_sdk::google::firestore::v1::target_change::TargetChangeType;
use firestore::gcloud_sdk::google::firestore::v1::{
    ListenRequest, RunQueryRequest, StructuredQuery, Target,
};
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::pattern::fires;
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

/// The bridge of one project.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub db: store::Db,
    pub project: String,
    pub routes: Vec<EventarcRoute>,
    pub http: reqwest::Client,
    pub retry: EventarcRetry,
}

struct Watched {
    group: String,
    tracker: Tracker,
}

impl Bridge {
    /// The collection groups to watch, numbered from 1 (the Listen target ids).
    fn targets(&self) -> BTreeMap<i32, String> {
        let mut groups: Vec<String> =
            self.routes.iter().map(|r| r.pattern.collection_group().to_owned()).collect();
        groups.sort();
        groups.dedup();
        groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| (i32::try_from(i).unwrap_or(i32::MAX - 1) + 1, g))
            .collect()
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
        let mut targets = self.targets();
        targets.retain(|_, group| !group.is_empty());
        if targets.is_empty() {
            let _ = ready.send(true);
            return;
        }
        let mut watched: BTreeMap<i32, Watched> = targets
            .iter()
            .map(|(id, group)| (*id, Watched { group: group.clone(), tracker: Tracker::new() }))
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
        targets: &BTreeMap<i32, String>,
        watched: &mut BTreeMap<i32, Watched>,
        ready: &watch::Sender<bool>,
    ) -> Result<(), String> {
        let firestore = self.db.firestore().await.map_err(|e| e.to_string())?;
        let mut client = firestore.client().get();
        let database = self.db.database_name().to_owned();
        let parent = self.db.documents_root().to_owned();
        let requests: Vec<ListenRequest> = targets
            .iter()
            .map(|(id, group)| ListenRequest {
                database: database.clone(),
                target_change: Some(AddOrRemove::AddTarget(Target {
                    target_id: *id,
                    target_type: Some(TargetType::Query(QueryTarget {
                        parent: parent.clone(),
                        query_type: Some(QueryType::StructuredQuery(StructuredQuery {
                            from: vec![CollectionSelector {
                                collection_id: group.clone(),
                                all_descendants: true,
                            }],
                            ..Default::default()
                        })),
                    })),
                    ..Default::default()
                })),
                ..Default::default()
            })
            .collect();
        // Keep the request side open: closing it ends the stream.
        let outbound = futures::stream::iter(requests).chain(futures::stream::pending());
        let mut stream = client.listen(outbound).await.map_err(|e| e.to_string())?.into_inner();
        while let Some(response) = stream.message().await.map_err(|e| e.to_string())? {
            let Some(response) = response.response_type else { continue };
            let mut changes: Vec<(String, Change)> = Vec::new();
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
                                            .map(|c| (w.group.clone(), c)),
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
                        let doc = convert::document(&doc);
                        for id in &dc.target_ids {
                            if let Some(w) = watched.get_mut(id)
                                && let Some(c) = w.tracker.document(doc.clone())
                            {
                                changes.push((w.group.clone(), c));
                            }
                        }
                        for id in &dc.removed_target_ids {
                            if let Some(w) = watched.get_mut(id)
                                && let Some(c) = w.tracker.removed(&doc.name)
                            {
                                changes.push((w.group.clone(), c));
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
            for (group, change) in changes {
                self.dispatch(&group, &change);
            }
        }
        Err("the stream closed".to_owned())
    }

    /// Polls every document for the wildcard-collection patterns (see the module docs).
    async fn poll(self, cancel: CancellationToken, ready: watch::Sender<bool>) {
        if !self.targets().values().any(String::is_empty) {
            let _ = ready.send(true);
            return;
        }
        let mut tracker = Tracker::new();
        let mut failing = false;
        loop {
            match self.query_all().await {
                Ok(docs) => {
                    failing = false;
                    tracker.reset();
                    let mut changes: Vec<Change> =
                        docs.into_iter().filter_map(|d| tracker.document(d)).collect();
                    changes.extend(tracker.current());
                    for change in changes {
                        self.dispatch("", &change);
                    }
                    let _ = ready.send(true);
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "polling Firestore for wildcard-collection triggers failed; retrying");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    async fn query_all(&self) -> Result<Vec<gcp::firestore::FirestoreDocument>, String> {
        let firestore = self.db.firestore().await.map_err(|e| e.to_string())?;
        let request = RunQueryRequest {
            parent: self.db.documents_root().to_owned(),
            query_type: Some(RunQueryType::StructuredQuery(StructuredQuery {
                from: vec![CollectionSelector {
                    collection_id: String::new(),
                    all_descendants: true,
                }],
                ..Default::default()
            })),
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
                docs.push(convert::document(&doc));
            }
        }
        Ok(docs)
    }

    fn dispatch(&self, group: &str, change: &Change) {
        let path = change.path();
        for route in &self.routes {
            if route.pattern.collection_group() != group
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

fn removed(watched: &mut BTreeMap<i32, Watched>, name: &str, ids: &[i32]) -> Vec<(String, Change)> {
    let all: Vec<i32> = watched.keys().copied().collect();
    let ids = if ids.is_empty() { all.as_slice() } else { ids };
    ids.iter()
        .filter_map(|id| {
            let w = watched.get_mut(id)?;
            w.tracker.removed(name).map(|c| (w.group.clone(), c))
        })
        .collect()
}
