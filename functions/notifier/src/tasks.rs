//! `POST /pubsub/notify-tasks`: one page of a new post's followers per task.
//!
//! ```text
//! runtime::trigger::Push<NotifyTasks>   forged / missing token -> 401; undecodable -> permanent
//! Ledger::run_once, key = post + cursor  replayed -> 204 | busy -> 409 | conflict -> permanent
//!   the post must still exist and be active, else nothing
//!   read one page of followers (page_size, after the cursor)
//!   a full page: publish the next page's task first (so pages run on several instances at once)
//!   deliver::notify for the page (preferences, inbox entries created once, pushes)
//! ```
//! The key is the page (post, cursor, size), not the message id: a redelivered task, or a
//! second chain started by a redelivered post event, meets the first one's record and does
//! nothing (`busy` while it runs, replayed after). A task that fails is redelivered and redoes
//! its page: entries written before the failure exist, so their users get no second push.

use std::collections::BTreeMap;

use anyhow::anyhow;
use axum::extract::State;
use bus::Attributes;
use chrono::Utc;
use domain::messages::{NotifyTask, NotifyTasks, Version};
use domain::notify::{Facts, NotificationKind};
use http::StatusCode;
use runtime::Error;
use runtime::trigger::Push;
use serde_json::{Value, json};

use crate::AppState;
use crate::deliver::{self, Notice};
use crate::events::once;

/// The idempotency scope of follower pages.
pub const SCOPE: &str = "notify:post-page";

/// `POST /pubsub/notify-tasks`.
pub(crate) async fn notify_tasks(
    State(state): State<AppState>,
    Push { event, .. }: Push<NotifyTasks>,
) -> Result<StatusCode, Error> {
    let task = event.data;
    if task.page_size == 0
        || task.page_size > 1000
        || store::paths::post(&task.post_id).is_err()
        || store::paths::vendor(&task.vendor_id).is_err()
    {
        return Err(Error::permanent(
            "a notify-tasks message without post, vendor or a valid page size",
            anyhow!("message {}: {task:?}", event.message_id),
            Some(event.message_id),
        ));
    }
    if let Some(summary) = page(&state, &task).await? {
        tracing::info!(message_id = %event.message_id, post_id = %task.post_id, page = task.page, %summary, "notify page done");
    }
    Ok(StatusCode::NO_CONTENT)
}

fn page_key(task: &NotifyTask) -> String {
    let cursor = task.start_after.as_ref().map_or_else(
        || "^".to_owned(),
        |c| format!("{}@{}", c.doc_id, c.followed_at.timestamp_micros()),
    );
    format!("{}:{}:{cursor}", task.post_id, task.page_size)
}

/// Runs the page `task` names once in effect; `Some(summary)` when it ran now.
pub(crate) async fn page(state: &AppState, task: &NotifyTask) -> Result<Option<Value>, Error> {
    // The page number is bookkeeping: two chains reach the same page with the same number.
    once(state, SCOPE, &page_key(task), task, || run_page(state, task)).await
}

async fn run_page(state: &AppState, task: &NotifyTask) -> Result<Value, Error> {
    let feeds = store::feed::Feeds::new(&state.db);
    let post = store::notify::Notifications::new(&state.db)
        .post_for_notice(&task.post_id)
        .await
        .map_err(|e| deliver::store_failure(e, None))?;
    let Some((post, caption)) = post.filter(|(p, _)| p.active && p.vendor_id == task.vendor_id)
    else {
        return Ok(json!({"action": "none", "reason": "post gone or inactive"}));
    };
    let followers = feeds
        .follower_page(&task.vendor_id, task.start_after.as_ref(), None, task.page_size)
        .await
        .map_err(|e| deliver::store_failure(e, None))?;
    let full = followers.len() == task.page_size as usize;
    if full && let Some(last) = followers.last() {
        let next = NotifyTask {
            v: Version,
            post_id: task.post_id.clone(),
            vendor_id: task.vendor_id.clone(),
            start_after: Some(last.cursor()),
            page_size: task.page_size,
            page: task.page.saturating_add(1),
        };
        if let Err(error) = state.bus.publish::<NotifyTasks>(&next, Attributes::new()).await {
            return Err(Error::retry(
                anyhow::Error::new(error).context("publishing the next notify page"),
            ));
        }
    }
    let notice = Notice {
        kind: NotificationKind::NewPost,
        subject: task.vendor_id.clone(),
        event_id: task.post_id.clone(),
        facts: Facts::NewPost {
            vendor_id: task.vendor_id.clone(),
            post_id: task.post_id.clone(),
            caption,
        },
        data: BTreeMap::from([
            ("postId".to_owned(), task.post_id.clone()),
            ("vendorId".to_owned(), task.vendor_id.clone()),
        ]),
        actor: None,
        at: post.created_at.min(Utc::now()),
    };
    let uids: Vec<String> = followers.iter().map(|f| f.buyer_id.clone()).collect();
    let stats = deliver::notify(state, &notice, &uids).await?;
    Ok(json!({"followers": uids.len(), "handed_off": full, "stats": stats}))
}
