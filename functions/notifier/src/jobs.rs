//! `POST /jobs/deliver-deferred` (Cloud Scheduler, Google OIDC): sends the pushes that are due,
//! the deferred ones whose quiet hours ended and the ones left pending (FCM throttled past
//! the client's patience, or a sender died between creating an entry and pushing it).
//!
//! ```text
//! GoogleCaller                         forged / missing token -> 401
//! Notifications::due_pushes            push == "pending" and pushAt <= now, oldest first
//! Notifications::claim_push            pushAt moved a lease ahead, conditioned on the entry's
//!                                      version: of two runs, one sends each push
//! preferences and devices (batched)    pushes turned off meanwhile -> "none"; no device -> "dropped"
//! deliver::push_all, prune, mark       "sent" / "dropped"; a push FCM still defers stays pending
//!                                      and comes due again when its claim lapses
//! ```
//! Then it counts the reads owners marked (`readAt` set, `unread` still true): each is taken
//! off the unread counter once, in a transaction (`Notifications::settle_read`). Pages until
//! the run's budget (40 s, under the 60 s attempt deadline) is spent or nothing is due.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use runtime::Error;
use runtime::auth::GoogleCaller;
use serde::Serialize;
use store::notify::{Notifications, PushState};

use crate::AppState;
use crate::deliver::{self, Template};

/// How long one run works.
const BUDGET: Duration = Duration::from_secs(40);

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    due: usize,
    claimed: usize,
    sent: usize,
    dropped: usize,
    still_pending: usize,
    tokens_pruned: usize,
    pages: usize,
    reads_counted: usize,
}

/// `POST /jobs/deliver-deferred`.
pub(crate) async fn deliver_deferred(
    State(state): State<AppState>,
    GoogleCaller(_caller): GoogleCaller,
) -> Result<Json<Report>, Error> {
    let started = Instant::now();
    let repo = Notifications::new(&state.db);
    let mut report = Report::default();
    let lease = chrono::Duration::from_std(state.lease).unwrap_or_default();
    while started.elapsed() < BUDGET {
        let now = Utc::now();
        let due = repo
            .due_pushes(now, state.config.deferred_batch)
            .await
            .map_err(|e| deliver::store_failure(e, None))?;
        report.pages += 1;
        report.due += due.len();
        let full = due.len() == state.config.deferred_batch as usize;
        let mut claimed = Vec::new();
        for d in due {
            if repo
                .claim_push(&d, now + lease)
                .await
                .map_err(|e| deliver::store_failure(e, None))?
            {
                claimed.push(d);
            }
        }
        report.claimed += claimed.len();
        let uids: Vec<String> = claimed.iter().map(|d| d.uid.clone()).collect();
        let recipients =
            repo.recipients(&uids).await.map_err(|e| deliver::store_failure(e, None))?;
        let mut marks = Vec::new();
        for (d, r) in claimed.into_iter().zip(recipients) {
            if r.prefs.push_off || r.prefs.opted_out.contains(&d.entry.kind) {
                marks.push((d.uid, d.id, PushState::None));
                continue;
            }
            if r.devices.is_empty() {
                report.dropped += 1;
                marks.push((d.uid, d.id, PushState::Dropped));
                continue;
            }
            let mut data = d.entry.data.clone();
            data.insert("kind".into(), d.entry.kind.key().into());
            data.insert("notificationId".into(), d.id.clone());
            let template = Template {
                title: d.entry.title.clone(),
                body: d.entry.body.clone(),
                data,
                collapse_key: d.entry.collapse_key.clone(),
                high_priority: d.entry.kind.high_priority(),
                ttl: state.push_ttl,
            };
            // One user per template: entries of different events differ in content.
            for (uid, outcome) in
                deliver::push_all(&state, &template, vec![(d.uid.clone(), r.devices)]).await
            {
                report.tokens_pruned += outcome.dead.len();
                repo.prune_tokens(&uid, &outcome.dead)
                    .await
                    .map_err(|e| deliver::store_failure(e, None))?;
                match outcome.state {
                    Some(PushState::Sent) => report.sent += 1,
                    Some(_) => report.dropped += 1,
                    None => report.still_pending += 1,
                }
                if let Some(state) = outcome.state {
                    marks.push((uid, d.id.clone(), state));
                }
            }
        }
        repo.mark_pushes(&marks).await.map_err(|e| deliver::store_failure(e, None))?;
        if !full {
            break;
        }
    }
    // Reads the owners marked (`readAt`), counted off the unread counters once each.
    while started.elapsed() < BUDGET {
        let marked = repo
            .reads_to_count(state.config.deferred_batch)
            .await
            .map_err(|e| deliver::store_failure(e, None))?;
        for (uid, id) in &marked {
            if repo.settle_read(uid, id).await.map_err(|e| deliver::store_failure(e, None))? {
                report.reads_counted += 1;
            }
        }
        if marked.len() < state.config.deferred_batch as usize {
            break;
        }
    }
    tracing::info!(
        reads = report.reads_counted,
        due = report.due,
        sent = report.sent,
        dropped = report.dropped,
        pending = report.still_pending,
        "deliver-deferred run finished"
    );
    Ok(Json(report))
}
