//! A publisher per ordering key's lifetime: many keys do not leave tasks behind, and a key's
//! messages stay on one publisher while any is in flight.

use crate::helpers::{TestBus, payment};
use bus::{Attributes, Bus, BusConfig};
use domain::messages::{PaymentEvent, PaymentEvents};
use std::collections::BTreeMap;
use std::time::Duration;

async fn bus_rotating_every(keys: usize) -> TestBus {
    let mut t = TestBus::new().await;
    let mut config = BusConfig::new(t.project.clone(), Some(t.host.to_owned()));
    config.keys_per_publisher = keys;
    t.bus = Bus::connect(config).await.unwrap();
    t
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

#[tokio::test]
async fn a_key_per_order_does_not_leave_a_task_per_order_behind() {
    // The payment webhook publishes with the order id as ordering key: one new key per order.
    let t = TestBus::new().await;
    let subscription = t.with_topic::<PaymentEvents>().await;
    let baseline = alive_tasks();
    let orders = 1_200;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..orders {
        let bus = t.bus.clone();
        tasks.spawn(async move {
            bus.publish::<PaymentEvents>(&payment(&format!("o-{i}")), Attributes::new()).await
        });
        if tasks.len() >= 32 {
            tasks.join_next().await.unwrap().unwrap().unwrap();
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(t.receive(&subscription, orders).await.len(), orders);
    // Replaced publishers finish and their tasks end (the client's per-key tasks with them):
    // what stays is the current publisher's, at most one per key it has taken.
    let bound = baseline + BusConfig::new("p", None).keys_per_publisher + 16;
    let mut alive = alive_tasks();
    for _ in 0..50 {
        if alive < bound {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        alive = alive_tasks();
    }
    assert!(
        alive < bound,
        "{alive} tasks alive after {orders} keys ({baseline} before): the client keeps one per key"
    );
    assert!(t.bus.publishers_created::<PaymentEvents>() >= orders / 512);
}

#[tokio::test]
async fn a_busy_key_stays_on_its_publisher_across_rotations_and_arrives_in_order() {
    let t = bus_rotating_every(4).await;
    let subscription = t.with_topic::<PaymentEvents>().await;
    // One hot order with 30 events in flight together, among 120 one-event orders: the
    // publishers rotate every 4 new keys meanwhile.
    let hot: Vec<PaymentEvent> = (0..30)
        .map(|i| {
            let mut event = payment("hot");
            event.provider_event_id = format!("evt_hot_{i:02}");
            event
        })
        .collect();
    let bus = t.bus.clone();
    let hot_run = tokio::spawn(async move {
        // Called in order (join_all polls each future in turn, which makes its publish call).
        let publishes = hot.iter().map(|e| bus.publish::<PaymentEvents>(e, Attributes::new()));
        futures::future::join_all(publishes).await
    });
    let mut others = tokio::task::JoinSet::new();
    for i in 0..120 {
        let bus = t.bus.clone();
        others.spawn(async move {
            bus.publish::<PaymentEvents>(&payment(&format!("c-{i}")), Attributes::new()).await
        });
    }
    let hot_ids: Vec<_> = hot_run.await.unwrap().into_iter().map(Result::unwrap).collect();
    while let Some(done) = others.join_next().await {
        done.unwrap().unwrap();
    }
    assert!(t.bus.publishers_created::<PaymentEvents>() > 2, "the publishers rotated");

    let received = t.receive(&subscription, 150).await;
    assert_eq!(received.len(), 150);
    // The hot order's events were sent in call order by one publisher: the server numbered
    // them in that order.
    let by_id: BTreeMap<&str, String> = received
        .iter()
        .map(|r| {
            let event: PaymentEvent = serde_json::from_slice(&r.data).unwrap();
            (r.message_id.as_str(), event.provider_event_id)
        })
        .collect();
    let mut hot_sent: Vec<(u64, &str)> = hot_ids
        .iter()
        .map(|id| (id.as_str().parse::<u64>().expect("numeric ids"), by_id[id.as_str()].as_str()))
        .collect();
    hot_sent.sort_unstable();
    let order: Vec<&str> = hot_sent.iter().map(|(_, e)| *e).collect();
    let expected: Vec<String> = (0..30).map(|i| format!("evt_hot_{i:02}")).collect();
    assert_eq!(order, expected);
}
