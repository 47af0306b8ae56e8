//! Publishing typed messages: each arrives once, decodes to the same value, and carries the
//! schema attributes, the caller's attributes and the topic's ordering key.

use crate::helpers::{TestBus, fanout, payment, signup};
use bus::{Attributes, MessageId, SCHEMA_ATTRIBUTE, SCHEMA_VERSION_ATTRIBUTE};
use domain::messages::{FanoutTask, FanoutTasks, PaymentEvents, Topic, UserSignups};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Duration;

/// Publishes `msg` on `T`, pulls it back and checks everything the subscriber relies on.
async fn assert_round_trip<T>(t: &TestBus, msg: &T::Message)
where
    T: Topic,
    T::Message: PartialEq + Debug,
{
    // Arrange
    let subscription = t.with_topic::<T>().await;

    // Act
    let attributes = Attributes::new().with("event_id", "e-123");
    let id = t.bus.publish::<T>(msg, attributes).await.unwrap();
    let received = t.receive(&subscription, 1).await;

    // Assert
    assert_eq!(received.len(), 1, "{received:?}");
    let got = &received[0];
    assert_eq!(got.message_id, id.as_str());
    let decoded: T::Message = serde_json::from_slice(&got.data).unwrap();
    assert_eq!(&decoded, msg);
    let expected: BTreeMap<String, String> = [
        ("event_id".to_owned(), "e-123".to_owned()),
        (SCHEMA_ATTRIBUTE.to_owned(), T::NAME.to_owned()),
        (SCHEMA_VERSION_ATTRIBUTE.to_owned(), T::SCHEMA_VERSION.to_string()),
    ]
    .into();
    assert_eq!(got.attributes, expected);
    assert_eq!(got.ordering_key, T::ordering_key(msg));
}

#[tokio::test]
async fn user_signup_arrives_decoded_with_attributes() {
    let t = TestBus::new().await;
    assert_round_trip::<UserSignups>(&t, &signup()).await;
}

#[tokio::test]
async fn payment_event_arrives_with_the_order_id_as_ordering_key() {
    let t = TestBus::new().await;
    let msg = payment("ord_42");
    assert_eq!(PaymentEvents::ordering_key(&msg).as_deref(), Some("ord_42"));
    assert_round_trip::<PaymentEvents>(&t, &msg).await;
}

#[tokio::test]
async fn fanout_task_arrives_decoded_without_ordering_key() {
    let t = TestBus::new().await;
    assert_round_trip::<FanoutTasks>(&t, &fanout(3)).await;
}

#[tokio::test]
async fn publish_within_a_short_deadline_succeeds_when_pubsub_is_up() {
    let t = TestBus::new().await;
    let subscription = t.with_topic::<UserSignups>().await;
    // Warm the connection the way a running hook is warm, then publish with the hook's deadline.
    t.bus.publish::<UserSignups>(&signup(), Attributes::new()).await.unwrap();

    let id = t
        .bus
        .publish_within::<UserSignups>(&signup(), Attributes::new(), Duration::from_millis(500))
        .await
        .unwrap();

    let received = t.receive(&subscription, 2).await;
    assert!(received.iter().any(|r| r.message_id == id.as_str()), "{received:?}");
}

#[tokio::test]
async fn hundred_concurrent_publishes_arrive_exactly_once() {
    // Arrange
    let t = TestBus::new().await;
    let subscription = t.with_topic::<FanoutTasks>().await;

    // Act
    let mut tasks = tokio::task::JoinSet::new();
    for attempt in 0..100 {
        let bus = t.bus.clone();
        tasks.spawn(async move {
            bus.publish::<FanoutTasks>(&fanout(attempt), Attributes::new()).await.unwrap()
        });
    }
    let published: BTreeSet<MessageId> = tasks.join_all().await.into_iter().collect();
    let received = t.receive(&subscription, 100).await;
    // Anything delivered twice (or more than published) would still be waiting here.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let extra = testkit::pubsub::pull(t.host, &t.project, &subscription, 100).await;

    // Assert
    assert!(extra.is_empty(), "unexpected extra deliveries: {extra:?}");

    assert_eq!(published.len(), 100, "message ids must be distinct");
    assert_eq!(received.len(), 100, "each message exactly once");
    let received_ids: BTreeSet<&str> = received.iter().map(|r| r.message_id.as_str()).collect();
    let published_ids: BTreeSet<&str> = published.iter().map(MessageId::as_str).collect();
    assert_eq!(received_ids, published_ids);
    let attempts: BTreeSet<u32> = received
        .iter()
        .map(|r| serde_json::from_slice::<FanoutTask>(&r.data).unwrap().attempt)
        .collect();
    assert_eq!(attempts, (0..100).collect());
}
