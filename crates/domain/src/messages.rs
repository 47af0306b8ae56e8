//! Typed Pub/Sub messages: one Rust type per topic, shared by the publisher (`bus`) and the
//! subscriber (push handlers decode `data` into these types through `gcp`).
//!
//! Every message is a serialization boundary, so every body carries its schema version in a
//! `v` field ([`Version`]); a body with another version is refused at decode time instead of
//! being half-understood. Adding an optional field keeps the version; renaming, removing or
//! changing the meaning of a field bumps it (and the topic's [`Topic::SCHEMA_VERSION`]).
//! Unknown fields are ignored, so a newer publisher may add optional fields before every
//! subscriber knows them.
//!
//! Topics are marker types implementing [`Topic`]; the publisher names the topic explicitly
//! (`bus.publish::<UserSignups>(&msg, ..)`), which keeps the topic visible at every call site.

use crate::tenancy::Role;
use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A Pub/Sub topic with its message type.
pub trait Topic {
    /// The topic id (the last segment of `projects/{project}/topics/{id}`).
    const NAME: &'static str;
    /// The topic that receives messages Pub/Sub gives up on (subscription dead-letter policy).
    /// It carries the same message type as [`Topic::NAME`].
    const DEAD_LETTER: &'static str;
    /// The schema version written in every body (`v`) and in the `schema_version` attribute.
    const SCHEMA_VERSION: u32;
    /// The message body, published as JSON.
    type Message: Serialize + DeserializeOwned + fmt::Debug + Send + Sync + 'static;

    /// The ordering key for a message, if messages of this topic must be delivered in order
    /// per key (the subscription must enable message ordering for the key to matter).
    fn ordering_key(_msg: &Self::Message) -> Option<String> {
        None
    }
}

/// The schema version `N` of a message body. It is a zero-sized marker: it serializes as the
/// number `N` and refuses to deserialize any other number.
///
/// Construct it with the unit expression `Version` (the number is inferred from the field).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Version<const N: u32>;

impl<const N: u32> Version<N> {
    /// The version number.
    pub const NUMBER: u32 = N;
}

impl<const N: u32> fmt::Debug for Version<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{N}")
    }
}

impl<const N: u32> Serialize for Version<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(N)
    }
}

impl<'de, const N: u32> Deserialize<'de> for Version<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let got = u64::deserialize(deserializer)?;
        if got == u64::from(N) {
            Ok(Version)
        } else {
            Err(de::Error::custom(format_args!(
                "unsupported schema version {got}, this build reads version {N}"
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// user-signups
// ---------------------------------------------------------------------------------------------

/// Schema version of [`UserSignup`] bodies.
pub const USER_SIGNUP_VERSION: u32 = 1;

/// `user-signups`: the sign-up hook announces a new user; onboarding provisions their documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSignups;

impl Topic for UserSignups {
    const NAME: &'static str = "user-signups";
    const DEAD_LETTER: &'static str = "user-signups-dead-letter";
    const SCHEMA_VERSION: u32 = USER_SIGNUP_VERSION;
    type Message = UserSignup;
}

/// A user that Identity Platform is about to create, with the tenant the hook assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSignup {
    /// Schema version ([`USER_SIGNUP_VERSION`]).
    pub v: Version<USER_SIGNUP_VERSION>,
    /// Firebase Auth uid.
    pub uid: String,
    /// The email, when the sign-up has one (phone and some SSO sign-ups do not).
    pub email: Option<String>,
    /// The tenant the user was assigned to (the `tenant_id` custom claim).
    pub tenant_id: String,
    /// The role in that tenant (the `role` custom claim).
    pub role: Role,
    /// Whether the tenant is a new personal tenant that onboarding must create.
    pub tenant_is_new: bool,
    /// The blocking event's id (`event_id` of the blocking JWT), for tracing and dedupe.
    pub event_id: String,
}

// ---------------------------------------------------------------------------------------------
// payment-events
// ---------------------------------------------------------------------------------------------

/// Schema version of [`PaymentEvent`] bodies.
pub const PAYMENT_EVENT_VERSION: u32 = 1;

/// `payment-events`: the webhook receiver forwards verified provider events; the processor
/// applies them. Ordered by order id, so the events of one order reach the processor in the
/// order they were received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentEvents;

impl Topic for PaymentEvents {
    const NAME: &'static str = "payment-events";
    const DEAD_LETTER: &'static str = "payment-events-dead-letter";
    const SCHEMA_VERSION: u32 = PAYMENT_EVENT_VERSION;
    type Message = PaymentEvent;

    fn ordering_key(msg: &PaymentEvent) -> Option<String> {
        Some(msg.order_id.clone())
    }
}

/// The payment provider an event came from.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProvider {
    /// Stripe (PaymentIntents, signed webhooks).
    Stripe,
    /// Pesapal (SubmitOrderRequest, unsigned IPNs).
    Pesapal,
}

/// What the provider says happened, mapped from its own event type and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentEventKind {
    /// The payment went through (Stripe `payment_intent.succeeded`).
    Succeeded,
    /// The payment attempt failed (Stripe `payment_intent.payment_failed`).
    Failed,
    /// The payment was canceled (Stripe `payment_intent.canceled`).
    Canceled,
    /// The payment is in progress (Stripe `payment_intent.processing`).
    Processing,
    /// The payment was refunded (Stripe `charge.refunded`).
    Refunded,
    /// The status changed, but the notification does not say to what: the processor must ask
    /// the provider (Pesapal IPNs are unsigned hints).
    StatusChanged,
}

/// A verified (Stripe) or hinted (Pesapal) payment event, deduplicated by
/// (`provider`, `provider_event_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    /// Schema version ([`PAYMENT_EVENT_VERSION`]).
    pub v: Version<PAYMENT_EVENT_VERSION>,
    /// Where the event came from.
    pub provider: PaymentProvider,
    /// The provider's event id (Stripe `evt_...`; for Pesapal, derived from the IPN's
    /// `OrderTrackingId` and `OrderNotificationType`).
    pub provider_event_id: String,
    /// What happened, in our terms.
    pub kind: PaymentEventKind,
    /// The provider's own event type (`payment_intent.succeeded`, `IPNCHANGE`), for operators.
    pub provider_type: String,
    /// Our order id (Stripe metadata `order_id`; Pesapal `OrderMerchantReference`).
    pub order_id: String,
    /// The provider's payment id (Stripe PaymentIntent id; Pesapal `OrderTrackingId`).
    pub payment_id: String,
    /// Amount in minor units (cents), when the event carries it (Pesapal IPNs do not).
    pub amount_minor: Option<i64>,
    /// ISO 4217 currency code, lower case as Stripe sends it, when the event carries it.
    pub currency: Option<String>,
    /// The provider's raw status string (Stripe PaymentIntent `status`), when present.
    pub raw_status: Option<String>,
    /// For a refund: how much has been refunded so far, minor units (Stripe Charge
    /// `amount_refunded`, cumulative). Absent on other events and on older messages, where a
    /// refund is read as whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_refunded_minor: Option<i64>,
    /// When the provider says the event happened (Stripe `created`); for unsigned hints, when
    /// it was received. Drives the per-order watermark: Stripe does not order its events.
    pub occurred_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// order-paid / refund-requests
// ---------------------------------------------------------------------------------------------

/// Schema version of [`OrderPaid`] bodies.
pub const ORDER_PAID_VERSION: u32 = 1;

/// `order-paid`: the payment processor announces an order whose payment succeeded and whose
/// units are committed (fulfilment, receipts and notifications subscribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderPaidTopic;

impl Topic for OrderPaidTopic {
    const NAME: &'static str = "order-paid";
    const DEAD_LETTER: &'static str = "order-paid-dead-letter";
    const SCHEMA_VERSION: u32 = ORDER_PAID_VERSION;
    type Message = OrderPaid;

    fn ordering_key(msg: &OrderPaid) -> Option<String> {
        Some(msg.order_id.clone())
    }
}

/// A paid order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    /// Schema version ([`ORDER_PAID_VERSION`]).
    pub v: Version<ORDER_PAID_VERSION>,
    /// The order.
    pub order_id: String,
    /// The buyer.
    pub uid: String,
    /// The provider that took the money.
    pub provider: PaymentProvider,
    /// The provider's payment id.
    pub payment_id: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency, lower case.
    pub currency: String,
    /// The provider event that settled it.
    pub provider_event_id: String,
}

/// Schema version of [`RefundRequest`] bodies.
pub const REFUND_REQUEST_VERSION: u32 = 1;

/// `refund-requests`: a payment arrived after its reservation expired and no stock was left;
/// the order is flagged `refund_pending` and the refunder returns the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundRequests;

impl Topic for RefundRequests {
    const NAME: &'static str = "refund-requests";
    const DEAD_LETTER: &'static str = "refund-requests-dead-letter";
    const SCHEMA_VERSION: u32 = REFUND_REQUEST_VERSION;
    type Message = RefundRequest;

    fn ordering_key(msg: &RefundRequest) -> Option<String> {
        Some(msg.order_id.clone())
    }
}

/// Why a refund is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    /// Paid after the reservation expired, and the stock is gone.
    OutOfStock,
    /// The buyer asked (the `requestRefund` callable).
    BuyerRequest,
    /// A vendor of the order refunded it (the `requestRefund` callable).
    VendorRequest,
}

/// A refund to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// Schema version ([`REFUND_REQUEST_VERSION`]).
    pub v: Version<REFUND_REQUEST_VERSION>,
    /// The order.
    pub order_id: String,
    /// The buyer.
    pub uid: String,
    /// The provider holding the money.
    pub provider: PaymentProvider,
    /// The provider's payment id.
    pub payment_id: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency, lower case.
    pub currency: String,
    /// Why.
    pub reason: RefundReason,
    /// The refund recorded on the order (`requestRefund`); absent for the out-of-stock refund
    /// of the whole order, which the refunder records itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
}

/// Schema version of [`OrderRefunded`] bodies.
pub const ORDER_REFUNDED_VERSION: u32 = 1;

/// `order-refunded`: the provider confirmed a refund of an order (whole or partial) and the
/// order records it (receipts and notifications subscribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRefundedTopic;

impl Topic for OrderRefundedTopic {
    const NAME: &'static str = "order-refunded";
    const DEAD_LETTER: &'static str = "order-refunded-dead-letter";
    const SCHEMA_VERSION: u32 = ORDER_REFUNDED_VERSION;
    type Message = OrderRefunded;

    fn ordering_key(msg: &OrderRefunded) -> Option<String> {
        Some(msg.order_id.clone())
    }
}

/// A confirmed refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRefunded {
    /// Schema version ([`ORDER_REFUNDED_VERSION`]).
    pub v: Version<ORDER_REFUNDED_VERSION>,
    /// The order.
    pub order_id: String,
    /// The buyer.
    pub uid: String,
    /// The vendors of the order's items.
    pub vendor_ids: Vec<String>,
    /// The provider event (or refund id) that confirmed it; unique per refund.
    pub refund_id: String,
    /// This refund, minor units.
    pub amount_minor: i64,
    /// Refunded so far on the order, this refund included, minor units.
    pub refunded_total_minor: i64,
    /// ISO 4217 currency, lower case.
    pub currency: String,
    /// The whole amount is back with the buyer (the order is `refunded`).
    pub fully_refunded: bool,
}

// ---------------------------------------------------------------------------------------------
// stream-alerts
// ---------------------------------------------------------------------------------------------

/// Schema version of [`StreamAlert`] bodies.
pub const STREAM_ALERT_VERSION: u32 = 1;

/// `stream-alerts`: a market-data stream went silent or recovered (operators are notified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAlerts;

impl Topic for StreamAlerts {
    const NAME: &'static str = "stream-alerts";
    const DEAD_LETTER: &'static str = "stream-alerts-dead-letter";
    const SCHEMA_VERSION: u32 = STREAM_ALERT_VERSION;
    type Message = StreamAlert;

    fn ordering_key(msg: &StreamAlert) -> Option<String> {
        Some(msg.stream_id.clone())
    }
}

/// What happened to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamAlertKind {
    /// No complete candle within the stream's granularity plus its grace period.
    Silent,
    /// Complete candles arrive again after a silence.
    Recovered,
}

/// A stream's silence or recovery, announced once per transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAlert {
    /// Schema version ([`STREAM_ALERT_VERSION`]).
    pub v: Version<STREAM_ALERT_VERSION>,
    /// `{instrument}_{granularity}` (the `stream_health/{streamId}` document).
    pub stream_id: String,
    /// The instrument (`EUR_USD`).
    pub instrument: String,
    /// The granularity (`H1`).
    pub granularity: String,
    /// The stream's priority (`critical`, `high`, `medium`, `low`).
    pub priority: String,
    pub kind: StreamAlertKind,
    /// Start time of the last complete candle seen, if any.
    pub last_candle_at: Option<DateTime<Utc>>,
    /// When the transition was detected. With `stream_id` and `kind` it identifies the alert.
    pub detected_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// pulse-tasks
// ---------------------------------------------------------------------------------------------

/// Schema version of [`PulseTask`] bodies.
pub const PULSE_TASK_VERSION: u32 = 1;

/// `pulse-tasks`: one page of a minute's pulse (a few strategies, each run for its assigned
/// users), so a minute of many users is spread over many instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PulseTasks;

impl Topic for PulseTasks {
    const NAME: &'static str = "pulse-tasks";
    const DEAD_LETTER: &'static str = "pulse-tasks-dead-letter";
    const SCHEMA_VERSION: u32 = PULSE_TASK_VERSION;
    type Message = PulseTask;
}

/// A strategy of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StrategyRef {
    /// `tenants/{tenant_id}`.
    pub tenant_id: String,
    /// `tenants/{tenant_id}/strategies/{strategy_id}`.
    pub strategy_id: String,
}

/// One page of a pulse minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulseTask {
    /// Schema version ([`PULSE_TASK_VERSION`]).
    pub v: Version<PULSE_TASK_VERSION>,
    /// The minute (seconds zero) the task runs.
    pub minute: DateTime<Utc>,
    /// How many (user, strategy) runs the whole minute holds (drives the start jitter).
    pub runs_in_minute: u64,
    /// The strategies of this page.
    pub strategies: Vec<StrategyRef>,
}

// ---------------------------------------------------------------------------------------------
// fanout-tasks
// ---------------------------------------------------------------------------------------------

/// Schema version of [`FanoutTask`] bodies.
pub const FANOUT_TASK_VERSION: u32 = 1;

/// `fanout-tasks`: continuation tasks of the feed fan-out, each covering one cursor range of a
/// vendor's followers, so that every invocation stays within its time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutTasks;

impl Topic for FanoutTasks {
    const NAME: &'static str = "fanout-tasks";
    const DEAD_LETTER: &'static str = "fanout-tasks-dead-letter";
    const SCHEMA_VERSION: u32 = FANOUT_TASK_VERSION;
    type Message = FanoutTask;
}

/// Whether a task writes a post into feeds or removes it from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanoutAction {
    /// Write `feeds/{buyerId}/posts/{postId}` for each follower in range.
    Add,
    /// Delete `feeds/{buyerId}/posts/{postId}` for each follower in range.
    Remove,
    /// Rewrite the expiry (`expiresAt`, `ttlAt`) of every feed entry of the post to the
    /// post's current one (the range is unused: entries are found by `postId`).
    Retime,
}

/// A position in the follower query (`followers` where vendorId = v, ordered by followedAt,
/// then document id): the values of the last (or boundary) document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerCursor {
    /// `followedAt` of the boundary follower document.
    pub followed_at: DateTime<Utc>,
    /// Id of the boundary follower document (tie-breaker for equal `followedAt`).
    pub doc_id: String,
}

/// One slice of a fan-out: the followers after `start_after` up to and including `end_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanoutTask {
    /// Schema version ([`FANOUT_TASK_VERSION`]).
    pub v: Version<FANOUT_TASK_VERSION>,
    /// Add or remove the post.
    pub action: FanoutAction,
    /// The post being fanned out.
    pub post_id: String,
    /// Its vendor, whose followers are read.
    pub vendor_id: String,
    /// Start strictly after this follower; `None` starts at the first follower.
    pub start_after: Option<FollowerCursor>,
    /// Stop at (and include) this follower; `None` runs to the last follower.
    pub end_at: Option<FollowerCursor>,
    /// Followers read per page.
    pub page_size: u32,
    /// How many times this range has been handed on (0 for the first task of a range); a
    /// task that runs out of time re-publishes the rest of its range with `attempt + 1`.
    pub attempt: u32,
}

// ---------------------------------------------------------------------------------------------
// notify-tasks
// ---------------------------------------------------------------------------------------------

/// Schema version of [`NotifyTask`] bodies.
pub const NOTIFY_TASK_VERSION: u32 = 1;

/// `notify-tasks`: continuation tasks of the notifier's new-post fan-out, each one page of the
/// vendor's followers; a task hands the next page on before it works on its own, so pages run
/// on several instances at once and no instance holds the follower list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyTasks;

impl Topic for NotifyTasks {
    const NAME: &'static str = "notify-tasks";
    const DEAD_LETTER: &'static str = "notify-tasks-dead-letter";
    const SCHEMA_VERSION: u32 = NOTIFY_TASK_VERSION;
    type Message = NotifyTask;
}

/// One page of a new post's notifications: the followers after `start_after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTask {
    /// Schema version ([`NOTIFY_TASK_VERSION`]).
    pub v: Version<NOTIFY_TASK_VERSION>,
    /// The new post.
    pub post_id: String,
    /// Its vendor, whose followers are notified.
    pub vendor_id: String,
    /// Start strictly after this follower; `None` starts at the first.
    pub start_after: Option<FollowerCursor>,
    /// Followers per page.
    pub page_size: u32,
    /// Pages before this one.
    pub page: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(secs: i64, micros: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, micros * 1000).single().unwrap()
    }

    /// Decodes the fixed JSON into `expected` and encodes `expected` back to the same JSON.
    fn round_trip<T>(fixed: serde_json::Value, expected: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        let decoded: T = serde_json::from_value(fixed.clone()).unwrap();
        assert_eq!(&decoded, expected);
        assert_eq!(serde_json::to_value(expected).unwrap(), fixed);
        let bytes = serde_json::to_vec(expected).unwrap();
        assert_eq!(&serde_json::from_slice::<T>(&bytes).unwrap(), expected);
    }

    fn signup() -> UserSignup {
        UserSignup {
            v: Version,
            uid: "u_8f2k".to_owned(),
            email: Some("ada@example.com".to_owned()),
            tenant_id: "t-personal-u_8f2k".to_owned(),
            role: Role::Owner,
            tenant_is_new: true,
            event_id: "Ab3dEvt1".to_owned(),
        }
    }

    #[test]
    fn user_signup_round_trips() {
        let fixed = json!({
            "v": 1,
            "uid": "u_8f2k",
            "email": "ada@example.com",
            "tenant_id": "t-personal-u_8f2k",
            "role": "owner",
            "tenant_is_new": true,
            "event_id": "Ab3dEvt1"
        });
        round_trip(fixed, &signup());
    }

    #[test]
    fn user_signup_without_email_round_trips() {
        let fixed = json!({
            "v": 1,
            "uid": "u_phone",
            "email": null,
            "tenant_id": "acme",
            "role": "member",
            "tenant_is_new": false,
            "event_id": "e2"
        });
        let expected = UserSignup {
            uid: "u_phone".to_owned(),
            email: None,
            tenant_id: "acme".to_owned(),
            role: Role::Member,
            tenant_is_new: false,
            event_id: "e2".to_owned(),
            ..signup()
        };
        round_trip(fixed, &expected);
        // A publisher that leaves the optional field out is read the same way.
        let missing: UserSignup = serde_json::from_value(json!({
            "v": 1, "uid": "u_phone", "tenant_id": "acme", "role": "member",
            "tenant_is_new": false, "event_id": "e2"
        }))
        .unwrap();
        assert_eq!(missing, expected);
    }

    #[test]
    fn payment_event_round_trips() {
        let fixed = json!({
            "v": 1,
            "provider": "stripe",
            "provider_event_id": "evt_1PqR2sT3uV",
            "kind": "succeeded",
            "provider_type": "payment_intent.succeeded",
            "order_id": "ord_42",
            "payment_id": "pi_3PqR2sT3uV",
            "amount_minor": 125_000,
            "currency": "kes",
            "raw_status": "succeeded",
            "occurred_at": "2025-06-01T12:30:45Z"
        });
        let expected = PaymentEvent {
            v: Version,
            provider: PaymentProvider::Stripe,
            provider_event_id: "evt_1PqR2sT3uV".to_owned(),
            kind: PaymentEventKind::Succeeded,
            provider_type: "payment_intent.succeeded".to_owned(),
            order_id: "ord_42".to_owned(),
            payment_id: "pi_3PqR2sT3uV".to_owned(),
            amount_minor: Some(125_000),
            currency: Some("kes".to_owned()),
            raw_status: Some("succeeded".to_owned()),
            amount_refunded_minor: None,
            occurred_at: at(1_748_781_045, 0),
        };
        round_trip(fixed, &expected);
        assert_eq!(PaymentEvents::ordering_key(&expected).as_deref(), Some("ord_42"));
    }

    #[test]
    fn pesapal_hint_round_trips() {
        let fixed = json!({
            "v": 1,
            "provider": "pesapal",
            "provider_event_id": "b945e4af-80a5-4ec1-8706-e03f8332fb04:IPNCHANGE",
            "kind": "status_changed",
            "provider_type": "IPNCHANGE",
            "order_id": "ord_7",
            "payment_id": "b945e4af-80a5-4ec1-8706-e03f8332fb04",
            "amount_minor": null,
            "currency": null,
            "raw_status": null,
            "occurred_at": "2025-06-01T12:30:45.123456Z"
        });
        let expected = PaymentEvent {
            v: Version,
            provider: PaymentProvider::Pesapal,
            provider_event_id: "b945e4af-80a5-4ec1-8706-e03f8332fb04:IPNCHANGE".to_owned(),
            kind: PaymentEventKind::StatusChanged,
            provider_type: "IPNCHANGE".to_owned(),
            order_id: "ord_7".to_owned(),
            payment_id: "b945e4af-80a5-4ec1-8706-e03f8332fb04".to_owned(),
            amount_minor: None,
            currency: None,
            raw_status: None,
            amount_refunded_minor: None,
            occurred_at: at(1_748_781_045, 123_456),
        };
        round_trip(fixed, &expected);
    }

    #[test]
    fn fanout_task_round_trips() {
        let fixed = json!({
            "v": 1,
            "action": "add",
            "post_id": "p_9",
            "vendor_id": "v_3",
            "start_after": { "followed_at": "2025-05-30T08:00:00.000001Z", "doc_id": "v_3_b_17" },
            "end_at": { "followed_at": "2025-05-31T09:15:00Z", "doc_id": "v_3_b_912" },
            "page_size": 500,
            "attempt": 2
        });
        let expected = FanoutTask {
            v: Version,
            action: FanoutAction::Add,
            post_id: "p_9".to_owned(),
            vendor_id: "v_3".to_owned(),
            start_after: Some(FollowerCursor {
                followed_at: at(1_748_592_000, 1),
                doc_id: "v_3_b_17".to_owned(),
            }),
            end_at: Some(FollowerCursor {
                followed_at: at(1_748_682_900, 0),
                doc_id: "v_3_b_912".to_owned(),
            }),
            page_size: 500,
            attempt: 2,
        };
        round_trip(fixed, &expected);
        assert_eq!(FanoutTasks::ordering_key(&expected), None);
    }

    #[test]
    fn open_ended_removal_task_round_trips() {
        let fixed = json!({
            "v": 1, "action": "remove", "post_id": "p_9", "vendor_id": "v_3",
            "start_after": null, "end_at": null, "page_size": 300, "attempt": 0
        });
        let expected = FanoutTask {
            v: Version,
            action: FanoutAction::Remove,
            post_id: "p_9".to_owned(),
            vendor_id: "v_3".to_owned(),
            start_after: None,
            end_at: None,
            page_size: 300,
            attempt: 0,
        };
        round_trip(fixed, &expected);
    }

    #[test]
    fn notify_task_round_trips() {
        let fixed = json!({
            "v": 1, "post_id": "p_9", "vendor_id": "v_3",
            "start_after": { "followed_at": "2025-05-30T08:00:00.000001Z", "doc_id": "v_3:b_17" },
            "page_size": 500, "page": 4
        });
        let expected = NotifyTask {
            v: Version,
            post_id: "p_9".to_owned(),
            vendor_id: "v_3".to_owned(),
            start_after: Some(FollowerCursor {
                followed_at: at(1_748_592_000, 1),
                doc_id: "v_3:b_17".to_owned(),
            }),
            page_size: 500,
            page: 4,
        };
        round_trip(fixed, &expected);
        assert_eq!(NotifyTasks::DEAD_LETTER, format!("{}-dead-letter", NotifyTasks::NAME));
    }

    #[test]
    fn other_schema_versions_are_refused() {
        let mut body = serde_json::to_value(signup()).unwrap();
        body["v"] = json!(2);
        let err = serde_json::from_value::<UserSignup>(body.clone()).unwrap_err();
        assert!(err.to_string().contains("unsupported schema version 2"), "{err}");
        body["v"] = json!("1");
        assert!(serde_json::from_value::<UserSignup>(body.clone()).is_err());
        body.as_object_mut().unwrap().remove("v");
        assert!(serde_json::from_value::<UserSignup>(body).is_err());
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_kinds_refused() {
        let mut body = serde_json::to_value(signup()).unwrap();
        body["added_later"] = json!("x");
        assert_eq!(serde_json::from_value::<UserSignup>(body.clone()).unwrap(), signup());
        body["role"] = json!("superuser");
        assert!(serde_json::from_value::<UserSignup>(body).is_err());

        let bad = json!({
            "v": 1, "provider": "paypal", "provider_event_id": "e", "kind": "succeeded",
            "provider_type": "t", "order_id": "o", "payment_id": "p", "amount_minor": 1,
            "currency": "usd", "raw_status": null, "occurred_at": "2025-06-01T12:30:45Z"
        });
        assert!(serde_json::from_value::<PaymentEvent>(bad).is_err());
    }

    #[test]
    fn topic_constants_match_message_versions() {
        fn body_version<T: Topic>(msg: &T::Message) -> u64 {
            serde_json::to_value(msg).unwrap()["v"].as_u64().unwrap()
        }
        assert_eq!(body_version::<UserSignups>(&signup()), u64::from(UserSignups::SCHEMA_VERSION));
        let task = FanoutTask {
            v: Version,
            action: FanoutAction::Add,
            post_id: "p".to_owned(),
            vendor_id: "v".to_owned(),
            start_after: None,
            end_at: None,
            page_size: 1,
            attempt: 0,
        };
        assert_eq!(body_version::<FanoutTasks>(&task), u64::from(FanoutTasks::SCHEMA_VERSION));
        assert_eq!(Version::<PAYMENT_EVENT_VERSION>::NUMBER, PaymentEvents::SCHEMA_VERSION);
        for (name, dead_letter) in [
            (UserSignups::NAME, UserSignups::DEAD_LETTER),
            (PaymentEvents::NAME, PaymentEvents::DEAD_LETTER),
            (FanoutTasks::NAME, FanoutTasks::DEAD_LETTER),
        ] {
            assert_eq!(dead_letter, format!("{name}-dead-letter"));
        }
        assert_eq!(format!("{:?}", Version::<1>), "v1");
    }
}
