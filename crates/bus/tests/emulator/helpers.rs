//! Shared setup: a bus on the emulator with a fresh project, topics with pull subscriptions, and
//! sample messages of each topic.

use bus::{Bus, BusConfig};
use chrono::{TimeZone as _, Utc};
use domain::messages::{
    FanoutAction, FanoutTask, FollowerCursor, PaymentEvent, PaymentEventKind, PaymentProvider,
    Topic, UserSignup, Version,
};
use domain::tenancy::Role;
use std::time::Duration;
use testkit::pubsub::Received;

/// A bus connected to the emulator, in its own project.
pub(crate) struct TestBus {
    pub(crate) bus: Bus,
    pub(crate) host: &'static str,
    pub(crate) project: String,
}

impl TestBus {
    pub(crate) async fn new() -> Self {
        let host = testkit::emulators::pubsub().await;
        let project = testkit::project_id();
        let bus =
            Bus::connect(BusConfig::new(project.clone(), Some(host.to_owned()))).await.unwrap();
        Self { bus, host, project }
    }

    /// Creates topic `T` and a pull subscription `{T}-sub` on it; returns the subscription.
    pub(crate) async fn with_topic<T: Topic>(&self) -> String {
        let subscription = format!("{}-sub", T::NAME);
        testkit::pubsub::create_topic(self.host, &self.project, T::NAME).await;
        testkit::pubsub::create_pull_subscription(self.host, &self.project, &subscription, T::NAME)
            .await;
        subscription
    }

    /// Pulls (and acks) until `n` messages arrived or 20 s passed.
    pub(crate) async fn receive(&self, subscription: &str, n: usize) -> Vec<Received> {
        testkit::pubsub::pull_at_least(
            self.host,
            &self.project,
            subscription,
            n,
            Duration::from_secs(20),
        )
        .await
    }
}

pub(crate) fn signup() -> UserSignup {
    UserSignup {
        v: Version,
        uid: "u_8f2k".to_owned(),
        email: Some("ada@example.com".to_owned()),
        tenant_id: "t-personal-u_8f2k".to_owned(),
        role: Role::Owner,
        tenant_is_new: true,
        event_id: "evt-signup-1".to_owned(),
    }
}

pub(crate) fn payment(order_id: &str) -> PaymentEvent {
    PaymentEvent {
        v: Version,
        provider: PaymentProvider::Stripe,
        provider_event_id: format!("evt_{order_id}"),
        kind: PaymentEventKind::Succeeded,
        provider_type: "payment_intent.succeeded".to_owned(),
        order_id: order_id.to_owned(),
        payment_id: format!("pi_{order_id}"),
        amount_minor: Some(125_000),
        currency: Some("kes".to_owned()),
        raw_status: Some("succeeded".to_owned()),
        amount_refunded_minor: None,
        occurred_at: Utc.timestamp_opt(1_748_781_045, 0).single().unwrap(),
    }
}

pub(crate) fn fanout(attempt: u32) -> FanoutTask {
    FanoutTask {
        v: Version,
        action: FanoutAction::Add,
        post_id: "p_9".to_owned(),
        vendor_id: "v_3".to_owned(),
        start_after: Some(FollowerCursor {
            followed_at: Utc.timestamp_opt(1_748_592_000, 1_000).single().unwrap(),
            doc_id: "v_3_b_17".to_owned(),
        }),
        end_at: None,
        page_size: 500,
        attempt,
    }
}
