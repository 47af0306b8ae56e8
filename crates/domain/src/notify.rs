//! Notification rules: who an event notifies, what the user's preferences allow (per-kind
//! opt-outs, quiet hours in their own time zone), the deterministic id that makes a
//! notification happen once per (event, user), collapse keys and windows so a burst is one
//! notification, the registered devices of a user (at most [`MAX_DEVICES`]), how an FCM answer
//! is read (send, prune the token, retry honouring `Retry-After`, give up) and how fast a
//! fan-out may send.
//!
//! Quiet hours defer, they never drop: the inbox entry is written at once (it makes no sound)
//! and the push is stored on it as due at the end of the quiet hours ([`Decision::Deferred`]);
//! the notifier's `deliver-deferred` job sends the pushes that are due.
//!
//! Pure: the caller passes `now` and random draws in.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backoff::Backoff;

/// What a notification is about. The `snake_case` names are the opt-out keys of the
/// preferences and the `kind` field of inbox entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The buyer's order was paid (`order-paid`).
    OrderPaid,
    /// The buyer's order was refunded, whole or in part (`order-refunded`).
    OrderRefunded,
    /// A vendor the user follows posted (`posts/{postId}` created).
    NewPost,
    /// Someone followed the vendor (`followers/{docId}` created).
    NewFollower,
    /// A market-data stream went silent or recovered (`stream-alerts`, operators).
    StreamAlert,
    /// One of the user's strategies opened or closed a shadow trade (`users/{uid}/signals/{id}`
    /// created by the pulse).
    TradeSignal,
}

impl NotificationKind {
    /// Every kind.
    pub const ALL: [NotificationKind; 6] = [
        Self::OrderPaid,
        Self::OrderRefunded,
        Self::NewPost,
        Self::NewFollower,
        Self::StreamAlert,
        Self::TradeSignal,
    ];

    /// The key in preferences, inbox entries and ids.
    pub const fn key(self) -> &'static str {
        match self {
            Self::OrderPaid => "order_paid",
            Self::OrderRefunded => "order_refunded",
            Self::NewPost => "new_post",
            Self::NewFollower => "new_follower",
            Self::StreamAlert => "stream_alert",
            Self::TradeSignal => "trade_signal",
        }
    }

    /// The kind named `key`.
    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == key)
    }

    /// Android notification channel / priority class: transactional and trading kinds are high
    /// priority (a trade signal is stale within a candle).
    pub const fn high_priority(self) -> bool {
        matches!(
            self,
            Self::OrderPaid | Self::OrderRefunded | Self::StreamAlert | Self::TradeSignal
        )
    }
}

/// Who an event notifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// One user (the buyer of an order, the vendor followed).
    User(String),
    /// Every follower of the vendor, paged with continuation tasks.
    FollowersOf(String),
    /// The operators configured for the deployment.
    Operators,
}

/// The users an event of `kind` about `subject` notifies: the buyer for order events, the
/// vendor (a vendor's id is its owner's uid) for a new follower, the strategy's owner for a
/// trade signal, the vendor's followers for a new post, the operators for a stream alert.
pub fn audience(kind: NotificationKind, subject: &str) -> Audience {
    match kind {
        NotificationKind::OrderPaid
        | NotificationKind::OrderRefunded
        | NotificationKind::NewFollower
        | NotificationKind::TradeSignal => Audience::User(subject.to_owned()),
        NotificationKind::NewPost => Audience::FollowersOf(subject.to_owned()),
        NotificationKind::StreamAlert => Audience::Operators,
    }
}

/// Quiet hours: local wall-clock times; `start > end` spans midnight (22:00-07:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// When they begin, local time.
    pub start: NaiveTime,
    /// When they end, local time (exclusive).
    pub end: NaiveTime,
}

/// The notification preferences of a user: the `notifications` map of
/// `users/{uid}/config/preferences` (absent: everything on, no quiet hours).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preferences {
    /// Kinds the user turned off (no inbox entry, no push).
    pub opted_out: Vec<NotificationKind>,
    /// Whether pushes are wanted at all (inbox entries are written either way).
    pub push_off: bool,
    /// Quiet hours, if set.
    pub quiet: Option<QuietHours>,
    /// The IANA time zone of the quiet hours (`Africa/Nairobi`); UTC when absent or unknown.
    pub time_zone: Option<chrono_tz::Tz>,
}

/// The `notifications` map as stored (`optOut`, `pushOff`, `quietHours: {start, end}` as
/// `HH:MM`, `timeZone`). Unknown kinds and malformed values are ignored, never fatal: a
/// notification is not lost to a typo in someone's settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoredPreferences {
    /// Opted-out kind keys.
    #[serde(default)]
    pub opt_out: Vec<String>,
    /// No pushes at all.
    #[serde(default)]
    pub push_off: bool,
    /// `{start: "22:00", end: "07:00"}`.
    #[serde(default)]
    pub quiet_hours: Option<StoredQuietHours>,
    /// IANA zone name.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// Quiet hours as stored.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct StoredQuietHours {
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`.
    pub end: String,
}

impl StoredPreferences {
    /// The preferences these stored values mean.
    pub fn parse(&self) -> Preferences {
        let time = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").ok();
        let quiet = self.quiet_hours.as_ref().and_then(|q| {
            let (start, end) = (time(&q.start)?, time(&q.end)?);
            (start != end).then_some(QuietHours { start, end })
        });
        Preferences {
            opted_out: self.opt_out.iter().filter_map(|k| NotificationKind::parse(k)).collect(),
            push_off: self.push_off,
            quiet,
            time_zone: self.time_zone.as_deref().and_then(|z| z.parse().ok()),
        }
    }
}

/// What to do for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: the user opted out of this kind.
    OptedOut,
    /// The inbox entry only (pushes off, or no device).
    InboxOnly,
    /// The inbox entry and a push now.
    PushNow,
    /// The inbox entry now, the push at `at` (the end of the quiet hours).
    Deferred {
        /// When the push is due.
        at: DateTime<Utc>,
    },
}

impl Decision {
    /// Whether an inbox entry is written.
    pub fn writes_inbox(self) -> bool {
        !matches!(self, Decision::OptedOut)
    }
}

/// The decision for a notification of `kind` to a user with `prefs` and `has_devices`, at
/// `now`.
pub fn decide(
    kind: NotificationKind,
    prefs: &Preferences,
    has_devices: bool,
    now: DateTime<Utc>,
) -> Decision {
    if prefs.opted_out.contains(&kind) {
        return Decision::OptedOut;
    }
    if prefs.push_off || !has_devices {
        return Decision::InboxOnly;
    }
    match quiet_until(prefs, now) {
        Some(at) => Decision::Deferred { at },
        None => Decision::PushNow,
    }
}

/// When the quiet hours that contain `now` end (in UTC), or `None` when `now` is not within
/// quiet hours. Local times come from the user's zone (UTC without one), daylight-saving gaps
/// and folds included: an end time that does not exist that day (skipped by a spring-forward)
/// is read as the first instant after the gap.
pub fn quiet_until(prefs: &Preferences, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let quiet = prefs.quiet?;
    let zone = prefs.time_zone.unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&zone);
    let t = local.time();
    let today = local.date_naive();
    let (inside, end_date) = if quiet.start < quiet.end {
        (t >= quiet.start && t < quiet.end, today)
    } else if t >= quiet.start {
        (true, today.checked_add_days(Days::new(1))?)
    } else {
        (t < quiet.end, today)
    };
    if !inside {
        return None;
    }
    let end = end_date.and_time(quiet.end);
    let at = match zone.from_local_datetime(&end) {
        chrono::LocalResult::Single(at) => at,
        chrono::LocalResult::Ambiguous(first, _) => first,
        // In a spring-forward gap: an hour later exists.
        chrono::LocalResult::None => {
            zone.from_local_datetime(&(end + chrono::Duration::hours(1))).earliest()?
        }
    };
    Some(at.with_timezone(&Utc))
}

/// The id of a notification, the same for every delivery of the same event: the kind and a
/// hash of the event's own key (a CloudEvent id, an order id and refund id, an alert's stream
/// and time). With the user's uid in the path (`users/{uid}/notifications/{id}`) it names one
/// (event, user), so a redelivered event or a retried fan-out finds the entry it wrote.
pub fn notification_id(kind: NotificationKind, event_key: &str) -> String {
    let digest = Sha256::digest(format!("{}\n{event_key}", kind.key()).as_bytes());
    format!("{}_{}", kind.key(), &hex::encode(digest)[..32])
}

/// The collapse key of a notification (FCM `collapse_key` / APNs `apns-collapse-id` / web
/// `tag`): a newer notification with the same key replaces the older one on the device, so a
/// push repeated after a crash, or a burst, shows once.
pub fn collapse_key(kind: NotificationKind, subject: &str) -> String {
    // APNs caps `apns-collapse-id` at 64 bytes: long subjects are hashed.
    let key = format!("{}:{subject}", kind.key());
    if key.len() <= 64 {
        key
    } else {
        format!("{}:{}", kind.key(), &hex::encode(Sha256::digest(subject.as_bytes()))[..32])
    }
}

/// The collapse window of bursty kinds: events of the same kind and subject within one window
/// are one notification (one inbox entry counting them, one push). `None`: every event is its
/// own notification (orders, alerts, posts).
pub fn collapse_window(kind: NotificationKind) -> Option<Duration> {
    match kind {
        NotificationKind::NewFollower => Some(Duration::from_secs(15 * 60)),
        _ => None,
    }
}

/// The event key of a notification of `kind` about `subject` at `at`: for a collapsing kind,
/// the subject and the window `at` falls in (so the burst shares one id); else `event_id`.
pub fn collapsed_event_key(
    kind: NotificationKind,
    subject: &str,
    event_id: &str,
    at: DateTime<Utc>,
) -> String {
    match collapse_window(kind) {
        Some(window) => {
            let secs = i64::try_from(window.as_secs().max(1)).unwrap_or(i64::MAX);
            format!("{subject}@{}", at.timestamp().div_euclid(secs) * secs)
        }
        None => event_id.to_owned(),
    }
}

/// The most devices (FCM registration tokens) one user keeps.
pub const MAX_DEVICES: usize = 10;

/// A token unused this long is dropped at the next registration (FCM expires tokens of
/// devices inactive for 270 days).
pub const STALE_AFTER: Duration = Duration::from_secs(270 * 24 * 3600);

/// The longest FCM registration token accepted (real ones are about 160 characters).
pub const MAX_TOKEN_LEN: usize = 4096;

/// A device's platform: which FCM per-platform block its pushes carry.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// `android` block.
    Android,
    /// `apns` block.
    Ios,
    /// `webpush` block.
    Web,
}

/// One registered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The client's stable id of the installation (a token refresh keeps it).
    pub device_id: String,
    /// The FCM registration token.
    pub token: String,
    /// Platform.
    pub platform: Platform,
    /// Last registration or refresh.
    pub seen_at: DateTime<Utc>,
}

/// The devices after `device` registers at `now`: a device id or token already present is
/// replaced (a refreshed token replaces its predecessor), tokens unused for [`STALE_AFTER`]
/// are dropped, and beyond `max` the least recently seen go. Most recent first.
pub fn register_device(
    mut devices: Vec<Device>,
    device: Device,
    now: DateTime<Utc>,
    max: usize,
) -> Vec<Device> {
    devices.retain(|d| d.device_id != device.device_id && d.token != device.token);
    let stale = chrono::Duration::from_std(STALE_AFTER).unwrap_or(chrono::Duration::MAX);
    devices.retain(|d| now.signed_duration_since(d.seen_at) < stale);
    devices.push(device);
    devices.sort_by(|a, b| b.seen_at.cmp(&a.seen_at).then_with(|| a.device_id.cmp(&b.device_id)));
    devices.truncate(max.max(1));
    devices
}

/// What an FCM `messages:send` answer means for the token and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FcmVerdict {
    /// Delivered to FCM.
    Sent,
    /// The token is dead (`UNREGISTERED`, `INVALID_ARGUMENT`, `SENDER_ID_MISMATCH`): remove it.
    PruneToken,
    /// Try again later (429 `QUOTA_EXCEEDED`, 5xx `UNAVAILABLE` / `INTERNAL`).
    Retry,
    /// Our side is wrong (401 `THIRD_PARTY_AUTH_ERROR`, 403 `PERMISSION_DENIED`, other 4xx):
    /// retrying cannot help and the token is not to blame.
    Fail,
}

/// Reads an FCM v1 answer: its HTTP status and the `errorCode` of its `FcmError` detail (or
/// the `error.status` when there is no detail).
pub fn fcm_verdict(status: u16, error_code: Option<&str>) -> FcmVerdict {
    match (status, error_code) {
        (200..=299, _) => FcmVerdict::Sent,
        (_, Some("UNREGISTERED" | "INVALID_ARGUMENT" | "SENDER_ID_MISMATCH")) => {
            FcmVerdict::PruneToken
        }
        (404, _) => FcmVerdict::PruneToken,
        (429, _) | (500..=599, _) => FcmVerdict::Retry,
        (_, Some("QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL")) => FcmVerdict::Retry,
        _ => FcmVerdict::Fail,
    }
}

/// Whether an answer counts against FCM's health in the circuit breaker: 5xx and network
/// failures do; a 429 does not (FCM is up and asks us to slow down, which `Retry-After` and
/// the pacing do) and neither does any 4xx.
pub fn counts_as_outage(status: Option<u16>) -> bool {
    status.is_none_or(|s| s >= 500)
}

/// The wait before retry `retry` (1 = the first) of a send: the backoff's jittered delay, but
/// never less than the `Retry-After` FCM asked for. `None` when the wait would exceed
/// `max_wait` (the caller hands the message back for a later delivery instead of holding an
/// instance idle).
pub fn retry_wait(
    backoff: &Backoff,
    retry: u32,
    retry_after: Option<Duration>,
    max_wait: Duration,
    random_unit: f64,
) -> Option<Duration> {
    let wait = backoff.delay(retry, random_unit).max(retry_after.unwrap_or(Duration::ZERO));
    (wait <= max_wait).then_some(wait)
}

/// How fast a fan-out sends, per instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendPacing {
    /// FCM's quota for the project, messages per second (600,000 per minute by default).
    pub fcm_per_sec: f64,
    /// How many instances share it (the manifest's `max_instances` of the notifier).
    pub instances: u32,
}

impl Default for SendPacing {
    fn default() -> Self {
        Self { fcm_per_sec: 10_000.0, instances: 1 }
    }
}

impl SendPacing {
    /// Messages per second one instance may send: its share of the quota.
    pub fn per_instance(&self) -> f64 {
        (self.fcm_per_sec / f64::from(self.instances.max(1))).max(1.0)
    }

    /// The least time a page of `n` sends takes at this pace.
    pub fn page_time(&self, n: usize) -> Duration {
        #[allow(clippy::cast_precision_loss)]
        let secs = n as f64 / self.per_instance();
        Duration::from_secs_f64(secs)
    }
}

/// Facts an event gives its notification's text.
#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    /// An order was paid.
    OrderPaid {
        /// The order.
        order_id: String,
        /// Minor units.
        amount_minor: i64,
        /// ISO 4217, lower case.
        currency: String,
    },
    /// A refund was confirmed.
    OrderRefunded {
        /// The order.
        order_id: String,
        /// This refund, minor units.
        amount_minor: i64,
        /// ISO 4217, lower case.
        currency: String,
        /// Whole order refunded.
        fully: bool,
    },
    /// A vendor posted.
    NewPost {
        /// The vendor.
        vendor_id: String,
        /// The post.
        post_id: String,
        /// The caption's beginning.
        caption: String,
    },
    /// Someone followed the vendor.
    NewFollower {
        /// The follower.
        follower_id: String,
    },
    /// A stream changed health.
    StreamAlert {
        /// The stream.
        stream_id: String,
        /// `silent` / `recovered`.
        state: String,
        /// `critical` ...
        priority: String,
    },
    /// A strategy opened or closed a shadow trade.
    TradeSignal {
        /// The strategy.
        strategy_id: String,
        /// The trade.
        trade_id: String,
        /// `open_long`, `open_short` or `close`.
        action: String,
        /// Why: the entry signal, or `take_profit` / `stop_loss` / `vertical` for a close.
        reason: String,
        /// The price acted at.
        price: f64,
        /// Booked in shadow although live trading was asked for (no broker path exists).
        live_requested: bool,
    },
}

/// The user-visible text of a notification: title and body.
pub fn render(facts: &Facts) -> (String, String) {
    let money = |minor: i64, currency: &str| {
        format!("{} {}.{:02}", currency.to_uppercase(), minor / 100, (minor % 100).abs())
    };
    match facts {
        Facts::OrderPaid { order_id, amount_minor, currency } => (
            "Payment received".to_owned(),
            format!("Your order {order_id} is paid ({}).", money(*amount_minor, currency)),
        ),
        Facts::OrderRefunded { order_id, amount_minor, currency, fully } => (
            if *fully { "Order refunded" } else { "Partial refund" }.to_owned(),
            format!("{} is on its way back for order {order_id}.", money(*amount_minor, currency)),
        ),
        Facts::NewPost { caption, .. } => {
            let short: String = caption.chars().take(120).collect();
            (
                "New post".to_owned(),
                if short.is_empty() { "A vendor you follow posted.".to_owned() } else { short },
            )
        }
        Facts::NewFollower { .. } => {
            ("New follower".to_owned(), "Someone started following you.".to_owned())
        }
        Facts::StreamAlert { stream_id, state, priority } => {
            (format!("Stream {state}"), format!("{stream_id} ({priority}) is {state}."))
        }
        Facts::TradeSignal { strategy_id, action, reason, price, live_requested, .. } => {
            let (title, what) = match action.as_str() {
                "open_long" => ("Trade opened", "opened a long shadow trade"),
                "open_short" => ("Trade opened", "opened a short shadow trade"),
                _ => ("Trade closed", "closed its shadow trade"),
            };
            let why = match reason.as_str() {
                "take_profit" => "at the profit-take".to_owned(),
                "stop_loss" => "at the stop-loss".to_owned(),
                "vertical" => "at the time limit".to_owned(),
                "label" => "on the triple-barrier label".to_owned(),
                "vol_scaled_return" => "on the volatility-scaled return".to_owned(),
                other => format!("on {}", other.replace('_', " ")),
            };
            let shadow =
                if *live_requested { " (shadow: live trading is not available)" } else { "" };
            (title.to_owned(), format!("Strategy {strategy_id} {what} {why} at {price}{shadow}."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn quiet(start: &str, end: &str, zone: &str) -> Preferences {
        StoredPreferences {
            quiet_hours: Some(StoredQuietHours { start: start.to_owned(), end: end.to_owned() }),
            time_zone: Some(zone.to_owned()),
            ..Default::default()
        }
        .parse()
    }

    #[test]
    fn audiences_follow_the_kind() {
        assert_eq!(audience(NotificationKind::OrderPaid, "u1"), Audience::User("u1".into()));
        assert_eq!(audience(NotificationKind::OrderRefunded, "u1"), Audience::User("u1".into()));
        assert_eq!(audience(NotificationKind::NewFollower, "v1"), Audience::User("v1".into()));
        assert_eq!(audience(NotificationKind::NewPost, "v1"), Audience::FollowersOf("v1".into()));
        assert_eq!(audience(NotificationKind::StreamAlert, "s"), Audience::Operators);
    }

    #[test]
    fn opt_outs_and_push_off_and_devices_decide() {
        let now = at("2026-01-10T12:00:00Z");
        let prefs = StoredPreferences {
            opt_out: vec!["new_post".into(), "no_such_kind".into()],
            ..Default::default()
        }
        .parse();
        assert_eq!(prefs.opted_out, vec![NotificationKind::NewPost]);
        assert_eq!(decide(NotificationKind::NewPost, &prefs, true, now), Decision::OptedOut);
        assert!(!Decision::OptedOut.writes_inbox());
        assert_eq!(decide(NotificationKind::OrderPaid, &prefs, true, now), Decision::PushNow);
        assert_eq!(decide(NotificationKind::OrderPaid, &prefs, false, now), Decision::InboxOnly);
        let off = StoredPreferences { push_off: true, ..Default::default() }.parse();
        assert_eq!(decide(NotificationKind::OrderPaid, &off, true, now), Decision::InboxOnly);
        assert_eq!(
            decide(NotificationKind::OrderPaid, &Preferences::default(), true, now),
            Decision::PushNow
        );
    }

    #[test]
    fn quiet_hours_are_local_and_defer_to_their_end() {
        // Nairobi is UTC+3 all year: 23:30 local is 20:30Z; quiet 22:00-07:00 ends 04:00Z.
        let prefs = quiet("22:00", "07:00", "Africa/Nairobi");
        let now = at("2026-01-10T20:30:00Z");
        assert_eq!(quiet_until(&prefs, now), Some(at("2026-01-11T04:00:00Z")));
        assert_eq!(
            decide(NotificationKind::NewPost, &prefs, true, now),
            Decision::Deferred { at: at("2026-01-11T04:00:00Z") }
        );
        // 02:00 local (after midnight) ends the same morning.
        assert_eq!(
            quiet_until(&prefs, at("2026-01-10T23:00:00Z")),
            Some(at("2026-01-11T04:00:00Z"))
        );
        // 12:00 local: not quiet. The end is exclusive.
        assert_eq!(quiet_until(&prefs, at("2026-01-10T09:00:00Z")), None);
        assert_eq!(quiet_until(&prefs, at("2026-01-11T04:00:00Z")), None);
        // A daytime window (no midnight).
        let nap = quiet("13:00", "15:00", "UTC");
        assert_eq!(quiet_until(&nap, at("2026-01-10T14:00:00Z")), Some(at("2026-01-10T15:00:00Z")));
        assert_eq!(quiet_until(&nap, at("2026-01-10T15:00:00Z")), None);
        // No zone: UTC. Unknown zone: UTC. Equal start and end: no quiet hours.
        assert_eq!(quiet("22:00", "07:00", "Mars/Olympus").time_zone, None);
        assert_eq!(quiet("22:00", "22:00", "UTC").quiet, None);
    }

    #[test]
    fn quiet_hours_follow_daylight_saving() {
        // New York, 2026-03-08: clocks jump 02:00 -> 03:00. Quiet 22:00-02:30 ends at the first
        // instant after the gap, 03:30 EDT = 07:30Z.
        let prefs = quiet("22:00", "02:30", "America/New_York");
        assert_eq!(
            quiet_until(&prefs, at("2026-03-08T04:00:00Z")),
            Some(at("2026-03-08T07:30:00Z"))
        );
        // In summer, 07:00 local is 11:00Z; in winter 12:00Z.
        let prefs = quiet("22:00", "07:00", "America/New_York");
        assert_eq!(
            quiet_until(&prefs, at("2026-07-01T03:00:00Z")),
            Some(at("2026-07-01T11:00:00Z"))
        );
        assert_eq!(
            quiet_until(&prefs, at("2026-01-01T04:00:00Z")),
            Some(at("2026-01-01T12:00:00Z"))
        );
    }

    #[test]
    fn ids_are_deterministic_per_event_and_kind() {
        let a = notification_id(NotificationKind::OrderPaid, "ord_1");
        assert_eq!(a, notification_id(NotificationKind::OrderPaid, "ord_1"));
        assert_ne!(a, notification_id(NotificationKind::OrderRefunded, "ord_1"));
        assert_ne!(a, notification_id(NotificationKind::OrderPaid, "ord_2"));
        assert!(a.starts_with("order_paid_") && a.len() == "order_paid_".len() + 32);
        assert!(!notification_id(NotificationKind::NewPost, "a/b").contains('/'));
    }

    #[test]
    fn a_burst_of_follows_shares_one_key_per_window() {
        let k =
            |t: &str, id: &str| collapsed_event_key(NotificationKind::NewFollower, "v1", id, at(t));
        assert_eq!(k("2026-01-10T12:01:00Z", "e1"), k("2026-01-10T12:14:59Z", "e2"));
        assert_ne!(k("2026-01-10T12:14:59Z", "e1"), k("2026-01-10T12:15:00Z", "e1"));
        // Other kinds: one notification per event.
        assert_eq!(
            collapsed_event_key(NotificationKind::NewPost, "v1", "e1", at("2026-01-10T12:00:00Z")),
            "e1"
        );
        assert_eq!(collapse_key(NotificationKind::NewFollower, "v1"), "new_follower:v1");
        assert!(collapse_key(NotificationKind::NewPost, &"x".repeat(100)).len() <= 64);
    }

    fn device(id: &str, token: &str, seen: &str) -> Device {
        Device {
            device_id: id.into(),
            token: token.into(),
            platform: Platform::Android,
            seen_at: at(seen),
        }
    }

    #[test]
    fn registration_refreshes_replaces_and_caps() {
        let now = at("2026-01-10T12:00:00Z");
        let devices = vec![
            device("d1", "t1", "2026-01-01T00:00:00Z"),
            device("d2", "t2", "2026-01-02T00:00:00Z"),
        ];
        // A refreshed token replaces the device's old one.
        let out =
            register_device(devices.clone(), device("d1", "t1b", "2026-01-10T12:00:00Z"), now, 10);
        assert_eq!(out.iter().map(|d| d.token.as_str()).collect::<Vec<_>>(), ["t1b", "t2"]);
        // The same token under another device id moves (reinstall).
        let out =
            register_device(devices.clone(), device("d3", "t2", "2026-01-10T12:00:00Z"), now, 10);
        assert_eq!(out.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(), ["d3", "d1"]);
        // The cap evicts the least recently seen.
        let out = register_device(devices, device("d3", "t3", "2026-01-10T12:00:00Z"), now, 2);
        assert_eq!(out.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(), ["d3", "d2"]);
        // Stale tokens go.
        let old = vec![device("d0", "t0", "2025-01-01T00:00:00Z")];
        assert_eq!(
            register_device(old, device("d1", "t1", "2026-01-10T12:00:00Z"), now, 10).len(),
            1
        );
    }

    #[test]
    fn fcm_answers_are_read_as_the_v1_contract_says() {
        assert_eq!(fcm_verdict(200, None), FcmVerdict::Sent);
        assert_eq!(fcm_verdict(404, Some("UNREGISTERED")), FcmVerdict::PruneToken);
        assert_eq!(fcm_verdict(400, Some("INVALID_ARGUMENT")), FcmVerdict::PruneToken);
        assert_eq!(fcm_verdict(403, Some("SENDER_ID_MISMATCH")), FcmVerdict::PruneToken);
        assert_eq!(fcm_verdict(429, Some("QUOTA_EXCEEDED")), FcmVerdict::Retry);
        assert_eq!(fcm_verdict(503, Some("UNAVAILABLE")), FcmVerdict::Retry);
        assert_eq!(fcm_verdict(500, None), FcmVerdict::Retry);
        assert_eq!(fcm_verdict(401, Some("THIRD_PARTY_AUTH_ERROR")), FcmVerdict::Fail);
        assert_eq!(fcm_verdict(403, Some("PERMISSION_DENIED")), FcmVerdict::Fail);
        assert!(counts_as_outage(None) && counts_as_outage(Some(503)));
        assert!(!counts_as_outage(Some(429)) && !counts_as_outage(Some(404)));
    }

    #[test]
    fn retries_wait_at_least_retry_after_and_give_up_past_the_budget() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(10),
            max_attempts: 5,
            jitter_fraction: 0.0,
        };
        let max = Duration::from_secs(5);
        assert_eq!(retry_wait(&backoff, 1, None, max, 0.5), Some(Duration::from_millis(100)));
        assert_eq!(
            retry_wait(&backoff, 1, Some(Duration::from_secs(2)), max, 0.5),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_wait(&backoff, 3, Some(Duration::from_millis(10)), max, 0.5),
            Some(Duration::from_millis(400))
        );
        assert_eq!(retry_wait(&backoff, 1, Some(Duration::from_secs(60)), max, 0.5), None);
    }

    #[test]
    fn pacing_shares_the_quota_among_instances() {
        let pacing = SendPacing { fcm_per_sec: 10_000.0, instances: 20 };
        assert_eq!(pacing.per_instance(), 500.0);
        assert_eq!(pacing.page_time(500), Duration::from_secs(1));
        assert_eq!(SendPacing { fcm_per_sec: 10.0, instances: 100 }.per_instance(), 1.0);
    }

    #[test]
    fn texts_name_the_order_and_money() {
        let (title, body) = render(&Facts::OrderPaid {
            order_id: "ord_1".into(),
            amount_minor: 125_050,
            currency: "kes".into(),
        });
        assert_eq!(title, "Payment received");
        assert_eq!(body, "Your order ord_1 is paid (KES 1250.50).");
        let (title, _) = render(&Facts::OrderRefunded {
            order_id: "o".into(),
            amount_minor: 1,
            currency: "usd".into(),
            fully: false,
        });
        assert_eq!(title, "Partial refund");
    }

    #[test]
    fn trade_signals_say_what_the_strategy_did_and_why() {
        let signal = |action: &str, reason: &str, live_requested| Facts::TradeSignal {
            strategy_id: "momo".into(),
            trade_id: "t1".into(),
            action: action.into(),
            reason: reason.into(),
            price: 1.105,
            live_requested,
        };
        assert_eq!(
            render(&signal("open_long", "label", false)),
            (
                "Trade opened".to_owned(),
                "Strategy momo opened a long shadow trade on the triple-barrier label at 1.105."
                    .to_owned()
            )
        );
        let (title, body) = render(&signal("close", "take_profit", true));
        assert_eq!(title, "Trade closed");
        assert_eq!(
            body,
            "Strategy momo closed its shadow trade at the profit-take at 1.105 \
             (shadow: live trading is not available)."
        );
        assert_eq!(audience(NotificationKind::TradeSignal, "u1"), Audience::User("u1".into()));
        assert_eq!(NotificationKind::parse("trade_signal"), Some(NotificationKind::TradeSignal));
        assert!(NotificationKind::TradeSignal.high_priority());
    }
}
