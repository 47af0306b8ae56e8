//! `POST /pubsub/fanout-tasks`: continuation tasks of a fan-out or a removal.
//!
//! ```text
//! runtime::trigger::Push<FanoutTasks>     forged / missing token -> 401
//!                                         undecodable (envelope, base64, JSON, version) -> permanent
//! Ledger::run_once (message id)           replayed -> 204 | busy -> 409 | conflict -> permanent
//! domain::feed::task_action on the post now:
//! Add: the post must still be active      else nothing (its removal handles the feeds)
//!      followers in (start_after, end_at] until the time budget; then the post is read again:
//!      gone or inactive -> its entries removed (write, then re-check), else the rest re-published
//! Remove: unless the post is active again, delete its entries until the budget; the rest re-published
//! Retime: while the post is active, rewrite its entries' expiry to the post's until the budget
//! ```
//! A crash mid-task leaves the message unacknowledged: Pub/Sub redelivers it and the range is
//! rewritten (same documents, same content), so nothing is lost and nothing is doubled.

use anyhow::anyhow;
use axum::extract::State;
use domain::feed::{PostAction, Skip, task_action};
use domain::messages::{FanoutTask, FanoutTasks};
use http::StatusCode;
use runtime::Error;
use runtime::trigger::Push;
use serde_json::Value;

use crate::AppState;
use crate::event::skipped;
use crate::work::{self, store_failure};

/// The idempotency scope of `fanout-tasks` deliveries (the key is the Pub/Sub message id).
pub const SCOPE: &str = "pubsub:fanout-tasks";

pub(crate) async fn fanout_tasks(
    State(state): State<AppState>,
    Push { event, .. }: Push<FanoutTasks>,
) -> Result<StatusCode, Error> {
    let message_id = event.message_id;
    let task = event.data;
    if task.page_size == 0 || task.post_id.is_empty() {
        return Err(Error::permanent(
            "a fanout-tasks message without post or page size",
            anyhow!("message {message_id}: {task:?}"),
            Some(message_id),
        ));
    }
    // Fingerprinted by the ledger from the task's serde JSON (the same bytes as before).
    let Some(summary) =
        work::once(&state, SCOPE, &message_id, &task, || handle(&state, &task)).await?
    else {
        return Ok(StatusCode::NO_CONTENT);
    };
    tracing::info!(%message_id, post_id = %task.post_id, attempt = task.attempt, %summary, "fan-out task handled");
    Ok(StatusCode::NO_CONTENT)
}

async fn handle(state: &AppState, task: &FanoutTask) -> Result<Value, Error> {
    let current = store::feed::Feeds::new(&state.db)
        .post(&task.post_id)
        .await
        .map_err(|e| store_failure(e, None))?;
    let active = current.as_ref().filter(|p| p.active);
    match (task_action(task.action, active.is_some()), active) {
        (PostAction::Add, Some(post)) => {
            let item = work::item(state, &task.post_id, post);
            work::add(
                state,
                &item,
                task.start_after.as_ref(),
                task.end_at.as_ref(),
                None,
                task.attempt,
            )
            .await
        }
        (PostAction::Remove, _) => {
            work::remove(state, &task.post_id, &task.vendor_id, None, task.attempt).await
        }
        (PostAction::Retime, Some(post)) => {
            let item = work::item(state, &task.post_id, post);
            work::retime(state, &item, None, task.attempt).await
        }
        (PostAction::Skip(skip), _) => Ok(skipped(skip)),
        // The table adds and retimes only an active post.
        (PostAction::Add | PostAction::Retime, None) => Ok(skipped(Skip::NoLongerActive)),
    }
}
