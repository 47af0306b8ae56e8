//! Notifying a set of users of one event: read their preferences and devices (one batched read
//! per page), decide per user (`domain::notify::decide`), create the inbox entries with their
//! unread increments (never over an existing one: a redelivery finds them and does nothing),
//! push to the devices of the entries created now, prune the tokens FCM calls dead, and record
//! each push's outcome on its entry.
//!
//! Pacing: inbox writes go through the write ramp (`HEARTH_NOTIFY_RAMP`, this instance's
//! share), pushes through the instance's share of FCM's quota ([`SendPacer`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::notify::{
    Decision, Device, Facts, NotificationKind, collapse_key, collapsed_event_key, decide,
    notification_id, render,
};
use domain::ramp::{RampLimiter, RampPolicy};
use futures::StreamExt as _;
use providers::fcm::{FcmClient, Push, Sent};
use runtime::Error;
use serde::Serialize;
use store::notify::{Created, InboxEntry, Notifications, PushState};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::AppState;

/// One event's notification, before it is addressed to anyone.
#[derive(Debug, Clone)]
pub(crate) struct Notice {
    pub(crate) kind: NotificationKind,
    /// What it is about (the collapse key's subject): an order, a vendor, a stream.
    pub(crate) subject: String,
    /// The event's own key (see `domain::notify::notification_id`).
    pub(crate) event_id: String,
    pub(crate) facts: Facts,
    /// Ids for the app.
    pub(crate) data: BTreeMap<String, String>,
    /// Who caused it, for collapsed bursts.
    pub(crate) actor: Option<String>,
    /// When the event happened (collapse windows).
    pub(crate) at: DateTime<Utc>,
}

impl Notice {
    /// The inbox id every recipient's entry gets.
    pub(crate) fn id(&self) -> String {
        let key = collapsed_event_key(self.kind, &self.subject, &self.event_id, self.at);
        notification_id(self.kind, &key)
    }
}

/// What notifying did, saved in the ledger and logged.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) recipients: usize,
    pub(crate) opted_out: usize,
    pub(crate) inbox_written: usize,
    pub(crate) already_there: usize,
    pub(crate) pushes_sent: usize,
    pub(crate) pushes_deferred: usize,
    pub(crate) pushes_later: usize,
    pub(crate) tokens_pruned: usize,
}

/// Spaces this instance's FCM requests at its share of the quota (shared by every request the
/// instance serves).
#[derive(Debug, Clone)]
pub(crate) struct SendPacer {
    interval: Duration,
    next: Arc<Mutex<Instant>>,
}

impl SendPacer {
    pub(crate) fn new(per_sec: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / per_sec.max(1.0)),
            next: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Waits for this request's slot.
    pub(crate) async fn slot(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// This instance's share of the write ramp, shared by every request it serves at once (so
/// `concurrency` pages together stay within the share). The ramp starts over after
/// [`RAMP_IDLE_RESET`] without writes: a key range that cooled down is ramped up again.
#[derive(Debug, Clone)]
pub(crate) struct WritePacer {
    inner: Arc<Mutex<RampState>>,
}

#[derive(Debug)]
struct RampState {
    policy: RampPolicy,
    limiter: RampLimiter,
    started: Instant,
    last: Instant,
}

/// Idle time after which the ramp starts over.
pub(crate) const RAMP_IDLE_RESET: Duration = Duration::from_secs(5 * 60);

impl WritePacer {
    pub(crate) fn new(ramp: RampPolicy) -> Self {
        let now = Instant::now();
        let state =
            RampState { policy: ramp, limiter: RampLimiter::new(ramp), started: now, last: now };
        Self { inner: Arc::new(Mutex::new(state)) }
    }

    pub(crate) async fn acquire(&self, writes: usize) {
        if writes == 0 {
            return;
        }
        let n = u32::try_from(writes).unwrap_or(u32::MAX);
        loop {
            let wait = {
                let mut state = self.inner.lock().await;
                let now = Instant::now();
                if now.duration_since(state.last) > RAMP_IDLE_RESET {
                    state.limiter = RampLimiter::new(state.policy);
                    state.started = now;
                }
                state.last = now;
                let elapsed = now.duration_since(state.started);
                match state.limiter.try_acquire(elapsed, n) {
                    Ok(()) => return,
                    Err(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

pub(crate) fn store_failure(error: store::Error, key: Option<&str>) -> Error {
    Error::for_event(error, "notification", key)
}

/// Notifies `uids` of `notice`.
pub(crate) async fn notify(
    state: &AppState,
    notice: &Notice,
    uids: &[String],
) -> Result<Stats, Error> {
    let repo = Notifications::new(&state.db);
    let now = Utc::now();
    let id = notice.id();
    let (title, body) = render(&notice.facts);
    let collapse = collapse_key(notice.kind, &notice.subject);
    let mut stats = Stats::default();
    let mut data = notice.data.clone();
    data.insert("kind".into(), notice.kind.key().into());
    data.insert("notificationId".into(), id.clone());

    let recipients = repo.recipients(uids).await.map_err(|e| store_failure(e, None))?;
    stats.recipients = recipients.len();
    let mut entries = Vec::new();
    let mut plans = Vec::new();
    for r in recipients {
        let decision = decide(notice.kind, &r.prefs, !r.devices.is_empty(), now);
        if !decision.writes_inbox() {
            stats.opted_out += 1;
            continue;
        }
        let (push, push_at) = match decision {
            Decision::PushNow => (
                PushState::Pending,
                Some(now + chrono::Duration::from_std(state.lease).unwrap_or_default()),
            ),
            Decision::Deferred { at } => (PushState::Pending, Some(at)),
            Decision::InboxOnly | Decision::OptedOut => (PushState::None, None),
        };
        entries.push((
            r.uid.clone(),
            id.clone(),
            InboxEntry {
                kind: notice.kind,
                title: title.clone(),
                body: body.clone(),
                collapse_key: collapse.clone(),
                data: notice.data.clone(),
                actors: notice.actor.iter().cloned().collect(),
                created_at: now,
                ttl_at: now + chrono::Duration::from_std(state.inbox_ttl).unwrap_or_default(),
                push,
                push_at,
            },
        ));
        plans.push((r.uid, decision, r.devices));
    }
    // Two writes per entry (the entry and its unread shard).
    state.write_pacer.acquire(entries.len() * 2).await;
    let created = repo.create_entries(&entries).await.map_err(|e| store_failure(e, None))?;

    let mut to_push = Vec::new();
    for ((uid, decision, devices), created) in plans.into_iter().zip(created) {
        match created {
            Created::Existed => {
                stats.already_there += 1;
                // A later event of a collapsed burst: counted on the one entry, no push.
                if let (Some(actor), Some(_)) =
                    (&notice.actor, domain::notify::collapse_window(notice.kind))
                {
                    repo.add_actor(&uid, &id, actor, now)
                        .await
                        .map_err(|e| store_failure(e, None))?;
                }
            }
            Created::New => {
                stats.inbox_written += 1;
                match decision {
                    Decision::PushNow => to_push.push((uid, devices)),
                    Decision::Deferred { .. } => stats.pushes_deferred += 1,
                    Decision::InboxOnly | Decision::OptedOut => {}
                }
            }
        }
    }

    let template = Template {
        title,
        body,
        data,
        collapse_key: collapse,
        high_priority: notice.kind.high_priority(),
        ttl: state.push_ttl,
    };
    let outcomes = push_all(state, &template, to_push).await;
    let mut marks = Vec::new();
    for (uid, outcome) in outcomes {
        stats.tokens_pruned += outcome.dead.len();
        if !outcome.dead.is_empty() {
            repo.prune_tokens(&uid, &outcome.dead).await.map_err(|e| store_failure(e, None))?;
        }
        match outcome.state {
            Some(PushState::Sent) => stats.pushes_sent += 1,
            None => stats.pushes_later += 1,
            Some(_) => {}
        }
        if let Some(push) = outcome.state {
            marks.push((uid, id.clone(), push));
        }
    }
    state.write_pacer.acquire(marks.len()).await;
    repo.mark_pushes(&marks).await.map_err(|e| store_failure(e, None))?;
    Ok(stats)
}

/// A push's content, the same for every device.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) data: BTreeMap<String, String>,
    pub(crate) collapse_key: String,
    pub(crate) high_priority: bool,
    pub(crate) ttl: Duration,
}

/// What pushing to one user's devices came to.
#[derive(Debug, Default)]
pub(crate) struct UserOutcome {
    /// `Sent` (some device took it), `Dropped` (none can: dead tokens or refused), `None`
    /// (not now: left pending for the `deliver-deferred` job).
    pub(crate) state: Option<PushState>,
    /// Tokens to prune.
    pub(crate) dead: Vec<String>,
}

async fn push_user(
    fcm: &FcmClient,
    pacer: &SendPacer,
    template: &Template,
    devices: Vec<Device>,
) -> UserOutcome {
    let mut outcome = UserOutcome::default();
    let (mut sent, mut later) = (false, false);
    for device in devices {
        pacer.slot().await;
        let push = Push {
            token: device.token.clone(),
            platform: device.platform,
            title: template.title.clone(),
            body: template.body.clone(),
            data: template.data.clone(),
            collapse_key: template.collapse_key.clone(),
            high_priority: template.high_priority,
            ttl: template.ttl,
        };
        match fcm.send(&push).await {
            Sent::Accepted(_) => sent = true,
            Sent::DeadToken(code) => {
                tracing::info!(%code, "FCM token dead: pruning it");
                outcome.dead.push(device.token);
            }
            Sent::Later { reason, .. } => {
                tracing::warn!(%reason, "push not sent now: left for deliver-deferred");
                later = true;
            }
            Sent::Refused { status, code } => {
                tracing::error!(status, %code, "FCM refused a push");
            }
        }
    }
    outcome.state = if sent {
        Some(PushState::Sent)
    } else if later {
        None
    } else {
        Some(PushState::Dropped)
    };
    outcome
}

/// Pushes `template` to each user's devices, `send_concurrency` users at a time.
pub(crate) async fn push_all(
    state: &AppState,
    template: &Template,
    users: Vec<(String, Vec<Device>)>,
) -> Vec<(String, UserOutcome)> {
    let template = Arc::new(template.clone());
    let (fcm, pacer) = (state.fcm.clone(), state.send_pacer.clone());
    futures::stream::iter(users)
        .map(move |(uid, devices)| {
            let (fcm, pacer, template) = (fcm.clone(), pacer.clone(), Arc::clone(&template));
            async move {
                let outcome = push_user(&fcm, &pacer, &template, devices).await;
                (uid, outcome)
            }
        })
        .buffer_unordered(state.send_concurrency)
        .collect()
        .await
}
