//! Inventory against the emulator: a flash sale never oversells, and release / expiry return
//! units exactly once.

use chrono::{TimeDelta, Utc};
use domain::inventory::{ReservationStatus, Sku};
use futures::StreamExt;
use std::time::Instant;
use store::inventory::{EndOutcome, Inventory, Reservation, ReserveOutcome};

fn new_id() -> String {
    let bytes: [u8; 12] = rand::random();
    format!("r{}", hex::encode(bytes))
}

async fn all_reservations(db: &store::Db) -> Vec<Reservation> {
    let firestore = db.firestore().await.unwrap();
    firestore.fluent().select().from("reservations").obj().query().await.unwrap()
}

/// 2,000 buyers (200 in flight at once) race for 500 units spread over 25 shards: exactly 500
/// units are granted, no shard goes below zero, every granted reservation is stored, and the
/// stored reservations add up to 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flash_sale_grants_exactly_the_stock() {
    const UNITS: i64 = 500;
    const ATTEMPTS: usize = 2_000;
    const IN_FLIGHT: usize = 200;
    let db = crate::fresh_db().await;
    let inventory = Inventory::new(&db);
    let sku = Sku::product("flash-kettle");
    inventory.set_stock(&sku, UNITS, 25).await.unwrap();
    assert_eq!(inventory.availability(&sku).await.unwrap().unwrap().0, UNITS);

    let started = Instant::now();
    let outcomes: Vec<_> = futures::stream::iter(0..ATTEMPTS)
        .map(|i| {
            let (inventory, sku) = (inventory.clone(), sku.clone());
            async move {
                let id = new_id();
                let outcome =
                    inventory.reserve(&format!("buyer-{i}"), &sku, 1, &id, Utc::now()).await;
                (id, outcome)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let mut granted = Vec::new();
    let mut sold_out = 0;
    let mut max_conflicts = 0;
    for (id, outcome) in outcomes {
        match outcome.unwrap() {
            ReserveOutcome::Reserved { reservation, conflicts } => {
                assert_eq!(reservation.id, id);
                max_conflicts = max_conflicts.max(conflicts);
                granted.push(reservation);
            }
            ReserveOutcome::SoldOut { available } => {
                assert!(available >= 0);
                sold_out += 1;
            }
            ReserveOutcome::UnknownSku => panic!("the SKU exists"),
            ReserveOutcome::OverHoldCap { .. } => panic!("one unit per buyer is under the cap"),
        }
    }
    let units: i64 = granted.iter().map(|r| r.quantity).sum();
    assert_eq!(units, UNITS);
    assert_eq!(granted.len() + sold_out, ATTEMPTS);

    let (available, shards) = inventory.availability(&sku).await.unwrap().unwrap();
    assert_eq!(available, 0);
    assert!(shards.iter().all(|s| *s == 0), "{shards:?}");

    let stored = all_reservations(&db).await;
    assert_eq!(stored.len(), granted.len());
    assert_eq!(stored.iter().map(|r| r.quantity).sum::<i64>(), UNITS);
    for r in &granted {
        let found = stored.iter().find(|s| s.id == r.id).expect("granted reservation is stored");
        assert_eq!(found.status, ReservationStatus::Held);
        assert_eq!(found.takes, r.takes);
    }
    // Each shard handed out exactly what it held (25 shards x 20 units).
    let mut per_shard = [0i64; 25];
    for r in &stored {
        for t in &r.takes {
            per_shard[t.shard as usize] += t.units;
        }
    }
    assert!(per_shard.iter().all(|u| *u == 20), "{per_shard:?}");

    #[allow(clippy::cast_precision_loss)]
    let rate = ATTEMPTS as f64 / elapsed.as_secs_f64();
    eprintln!(
        "flash sale: {ATTEMPTS} attempts ({IN_FLIGHT} in flight) in {elapsed:.2?} = {rate:.0} \
         attempts/s; {units} units granted to {} buyers; {} lost commit races (retries), at \
         most {max_conflicts} for one buyer",
        granted.len(),
        inventory.conflicts()
    );
}

/// A reservation spanning shards, released concurrently many times, returns its units once;
/// a stranger cannot release it.
#[tokio::test]
async fn release_returns_units_exactly_once() {
    let db = crate::fresh_db().await;
    let inventory = Inventory::new(&db);
    let sku = Sku::variant("shirt", "red-m");
    inventory.set_stock(&sku, 6, 3).await.unwrap(); // 2 + 2 + 2
    let id = new_id();
    let ReserveOutcome::Reserved { reservation, .. } =
        inventory.reserve("ada", &sku, 5, &id, Utc::now()).await.unwrap()
    else {
        panic!("5 of 6 units can be reserved")
    };
    assert_eq!(reservation.takes.len(), 3, "5 units span three 2-unit shards");
    assert_eq!(inventory.availability(&sku).await.unwrap().unwrap().0, 1);
    assert_eq!(
        inventory.reserve("bob", &sku, 2, &new_id(), Utc::now()).await.unwrap(),
        ReserveOutcome::SoldOut { available: 1 }
    );

    assert_eq!(inventory.release(&id, "mallory", Utc::now()).await.unwrap(), EndOutcome::NotOwner);
    let releases = (0..8).map(|_| inventory.release(&id, "ada", Utc::now()));
    let results = futures::future::join_all(releases).await;
    let returned = results.iter().filter(|r| matches!(r, Ok(EndOutcome::Returned(_)))).count();
    assert_eq!(returned, 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(EndOutcome::Returned(_) | EndOutcome::AlreadyEnded(ReservationStatus::Released))
    )));
    assert_eq!(inventory.availability(&sku).await.unwrap().unwrap().0, 6);
    assert_eq!(inventory.release("nope", "ada", Utc::now()).await.unwrap(), EndOutcome::NotFound);
    assert_eq!(
        inventory.reserve("ada", &Sku::product("ghost"), 1, &new_id(), Utc::now()).await.unwrap(),
        ReserveOutcome::UnknownSku
    );
}

/// The sweep expires only reservations past their hold, returns their units once even when it
/// races a release and another sweep, and leaves released ones alone.
#[tokio::test]
async fn expiry_sweep_returns_units_exactly_once() {
    let db = crate::fresh_db().await;
    let inventory = Inventory::new(&db);
    let sku = Sku::product("lamp");
    inventory.set_stock(&sku, 10, 2).await.unwrap();
    let now = Utc::now();
    let (a, b, c) = (new_id(), new_id(), new_id());
    for (id, quantity) in [(&a, 2), (&b, 3), (&c, 1)] {
        assert!(matches!(
            inventory.reserve("ada", &sku, quantity, id, now).await.unwrap(),
            ReserveOutcome::Reserved { .. }
        ));
    }
    assert!(matches!(inventory.release(&c, "ada", now).await.unwrap(), EndOutcome::Returned(_)));
    assert_eq!(inventory.availability(&sku).await.unwrap().unwrap().0, 5);

    // Not due yet.
    let report = inventory.sweep_expired(now + TimeDelta::minutes(14), 100).await.unwrap();
    assert_eq!(report.expired, 0);
    assert_eq!(
        inventory.expire(&a, now + TimeDelta::minutes(14)).await.unwrap(),
        EndOutcome::NotDue
    );

    let later = now + TimeDelta::minutes(16);
    let (s1, s2, release) = tokio::join!(
        inventory.sweep_expired(later, 100),
        inventory.sweep_expired(later, 100),
        inventory.release(&a, "ada", later),
    );
    let (s1, s2) = (s1.unwrap(), s2.unwrap());
    let released = usize::from(matches!(release.unwrap(), EndOutcome::Returned(_)));
    assert_eq!(s1.expired + s2.expired + released, 2, "{s1:?} {s2:?}");
    assert_eq!(inventory.availability(&sku).await.unwrap().unwrap().0, 10);
    assert_eq!(inventory.sweep_expired(later, 100).await.unwrap().expired, 0);
    let statuses: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|id| async { inventory.reservation(id).await.unwrap().unwrap().status })
        .collect();
    let statuses = futures::future::join_all(statuses).await;
    assert_eq!(statuses[1], ReservationStatus::Expired);
    assert_eq!(statuses[2], ReservationStatus::Released);
    assert!(matches!(statuses[0], ReservationStatus::Expired | ReservationStatus::Released));
}
