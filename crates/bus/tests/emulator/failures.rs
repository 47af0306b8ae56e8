//! Failures: a missing topic is permanent and says so; an unreachable Pub/Sub is a retryable
//! error within the caller's deadline; an ordering key is usable again after a failure.

use crate::helpers::{TestBus, payment, signup};
use bus::{Attributes, Bus, BusConfig, PublishError};
use domain::messages::{PaymentEvents, UserSignups};
use std::time::{Duration, Instant};

#[tokio::test]
async fn missing_topic_is_a_clear_permanent_error() {
    let t = TestBus::new().await;

    let err = t
        .bus
        .publish_within::<UserSignups>(&signup(), Attributes::new(), Duration::from_secs(10))
        .await
        .unwrap_err();

    let path = format!("projects/{}/topics/user-signups", t.project);
    assert!(matches!(&err, PublishError::TopicNotFound { topic } if *topic == path), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(err.to_string(), format!("Pub/Sub topic `{path}` does not exist"));
}

#[tokio::test]
async fn unreachable_pubsub_gives_a_retryable_error_within_the_deadline() {
    // Arrange: a port that nothing listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let bus =
        Bus::connect(BusConfig::new("down", Some(format!("127.0.0.1:{port}")))).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "connect must not wait for Pub/Sub");

    // Act: twice on the same ordering key, which the client pauses after a failure.
    for _ in 0..2 {
        let started = Instant::now();
        let err = bus
            .publish_within::<PaymentEvents>(
                &payment("ord_down"),
                Attributes::new(),
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();

        // Assert
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            matches!(err, PublishError::Timeout { .. } | PublishError::Unavailable { .. }),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn an_ordering_key_works_again_after_a_failed_publish() {
    // Arrange: the first publish on the key fails (no topic yet), which pauses the key in the
    // client.
    let t = TestBus::new().await;
    let err =
        t.bus.publish::<PaymentEvents>(&payment("ord_7"), Attributes::new()).await.unwrap_err();
    assert!(matches!(err, PublishError::TopicNotFound { .. }), "{err:?}");

    // Act: the topic appears and the same key is published again.
    let subscription = t.with_topic::<PaymentEvents>().await;
    let id = t.bus.publish::<PaymentEvents>(&payment("ord_7"), Attributes::new()).await.unwrap();

    // Assert
    let received = t.receive(&subscription, 1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message_id, id.as_str());
    assert_eq!(received[0].ordering_key.as_deref(), Some("ord_7"));
}

#[tokio::test]
async fn unreachable_pubsub_after_the_retry_budget_is_unavailable_not_a_timeout() {
    // Arrange: a port that nothing listens on, and a retry budget far below the deadline.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = BusConfig {
        retry_budget: Duration::from_millis(100),
        ..BusConfig::new("down", Some(format!("127.0.0.1:{port}")))
    };
    let bus = Bus::connect(config).await.unwrap();

    // Act
    let err = bus
        .publish_within::<UserSignups>(&signup(), Attributes::new(), Duration::from_secs(10))
        .await
        .unwrap_err();

    // Assert: the client gave up on its own; the transport detail stays out of the message.
    assert!(matches!(err, PublishError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.is_timeout());
    assert_eq!(err.to_string(), "Pub/Sub is unavailable for `user-signups`");
    assert!(std::error::Error::source(&err).is_some());
}
