//! Inventory reservations: the pure rules behind "never oversell".
//!
//! Stock of one SKU (a product, or one variant of it) is split across `N` shard documents, each
//! holding part of the units, because one Firestore document sustains about one write per
//! second and a flash sale sends hundreds of reservation attempts per second. A reservation
//! takes its units from shards visited in ring order from a random start shard (so concurrent
//! buyers spread over the shards), moving on when a shard has too few units; the availability
//! of the SKU is the sum of its shards. A reservation holds its units for
//! [`RESERVATION_TTL`]; it then ends exactly once: released by the buyer, expired by the sweep
//! (both return the units to the shards they came from) or committed by a payment (the units
//! are sold).
//!
//! Everything here is pure: callers pass the clock and the random start shard.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// How long reserved units are held (15 minutes: long enough to pay, short enough that abandoned carts do not starve stock).
pub const RESERVATION_TTL: TimeDelta = TimeDelta::minutes(15);

/// Most units one reservation may hold.
pub const MAX_QUANTITY: i64 = 10;

/// Most shards one SKU may have.
pub const MAX_SHARDS: u32 = 200;

/// Sustained writes per second one shard document is planned for (Firestore's soft limit of
/// about one per second per document, with headroom for bursts).
pub const WRITES_PER_SHARD_PER_SEC: u32 = 1;

/// The unit of stock: a product, or one variant of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sku {
    /// `products/{product_id}`
    pub product_id: String,
    /// The variant, when the product has variants.
    pub variant_id: Option<String>,
}

impl Sku {
    /// A product without variants.
    pub fn product(product_id: impl Into<String>) -> Self {
        Self { product_id: product_id.into(), variant_id: None }
    }

    /// One variant of a product.
    pub fn variant(product_id: impl Into<String>, variant_id: impl Into<String>) -> Self {
        Self { product_id: product_id.into(), variant_id: Some(variant_id.into()) }
    }

    /// The id of the SKU's stock document under its product: `all` for the product itself,
    /// `v-{variant}` for a variant (the prefix keeps the two namespaces apart).
    pub fn stock_key(&self) -> String {
        match &self.variant_id {
            None => "all".to_owned(),
            Some(variant) => format!("v-{variant}"),
        }
    }
}

/// Why a reservation request is refused before any I/O.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The quantity is not within `1..=MAX_QUANTITY`.
    #[error("quantity must be between 1 and {MAX_QUANTITY}, got {0}")]
    Quantity(i64),
    /// The product id is empty.
    #[error("product id is empty")]
    NoProduct,
}

/// Checks a reservation request.
pub fn validate_request(sku: &Sku, quantity: i64) -> Result<(), RequestError> {
    if sku.product_id.is_empty() {
        return Err(RequestError::NoProduct);
    }
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(RequestError::Quantity(quantity));
    }
    Ok(())
}

/// How many shards a SKU needs for `peak_attempts_per_sec` reservation attempts per second
/// (every successful attempt writes one shard): at least 1, at most [`MAX_SHARDS`], and never
/// more shards than units (an empty shard is only a wasted read).
pub fn shards_for(peak_attempts_per_sec: u32, total_units: i64) -> u32 {
    let by_rate = peak_attempts_per_sec.div_ceil(WRITES_PER_SHARD_PER_SEC).max(1);
    let by_units = u32::try_from(total_units.max(1)).unwrap_or(u32::MAX);
    by_rate.min(by_units).min(MAX_SHARDS)
}

/// Splits `total` units over `shards` shards as evenly as possible (the first shards get the
/// remainder). `shards` 0 is treated as 1; a negative total as 0.
pub fn split_stock(total: i64, shards: u32) -> Vec<i64> {
    let n = i64::from(shards.max(1));
    let total = total.max(0);
    (0..n).map(|i| total / n + i64::from(i < total % n)).collect()
}

/// The shards in ring order starting at `start` (taken modulo `shards`).
pub fn ring(start: u32, shards: u32) -> impl Iterator<Item = u32> {
    let n = shards.max(1);
    (0..n).map(move |i| (start % n + i) % n)
}

/// Units taken from one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Take {
    /// The shard number.
    pub shard: u32,
    /// Units taken from it (positive).
    pub units: i64,
}

/// What the reservation walk decides after reading some shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// Take these units (they sum to the quantity); every shard named was read.
    Take(Vec<Take>),
    /// The shards read so far do not hold enough; read the next one.
    NeedMore,
}

/// Allocates `quantity` units from shards read in walk order (`(shard, available)` pairs).
/// Prefers a single shard that holds everything (one shard write); otherwise takes from the
/// shards in order. Negative availability (never written by us) counts as zero.
pub fn allocate(quantity: i64, read: &[(u32, i64)]) -> Allocation {
    if let Some(&(shard, _)) = read.iter().find(|(_, available)| *available >= quantity) {
        return Allocation::Take(vec![Take { shard, units: quantity }]);
    }
    let mut left = quantity;
    let mut takes = Vec::new();
    for &(shard, available) in read {
        let units = available.max(0).min(left);
        if units > 0 {
            takes.push(Take { shard, units });
            left -= units;
        }
        if left == 0 {
            return Allocation::Take(takes);
        }
    }
    Allocation::NeedMore
}

/// The life of a reservation.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Units are held until `expires_at`.
    Held,
    /// The buyer released it; the units went back.
    Released,
    /// The sweep expired it; the units went back.
    Expired,
    /// A payment committed it; the units are sold.
    Committed,
}

impl ReservationStatus {
    /// Whether the reservation still holds units.
    pub fn is_held(self) -> bool {
        self == Self::Held
    }
}

/// How a held reservation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// By the buyer.
    Release,
    /// By the sweep, once past `expires_at`.
    Expire,
}

/// What to do when asked to end a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndDecision {
    /// Move it to this status and return its units.
    ReturnUnits(ReservationStatus),
    /// It already ended (or is sold): nothing to do, nothing returned.
    AlreadyEnded(ReservationStatus),
    /// Not yet expired: the sweep leaves it alone.
    NotDue,
}

/// Decides how `ending` applies to a reservation in `status` expiring at `expires_at`.
pub fn end(
    status: ReservationStatus,
    expires_at: DateTime<Utc>,
    ending: Ending,
    now: DateTime<Utc>,
) -> EndDecision {
    match (status, ending) {
        (ReservationStatus::Held, Ending::Release) => {
            EndDecision::ReturnUnits(ReservationStatus::Released)
        }
        (ReservationStatus::Held, Ending::Expire) if now >= expires_at => {
            EndDecision::ReturnUnits(ReservationStatus::Expired)
        }
        (ReservationStatus::Held, Ending::Expire) => EndDecision::NotDue,
        (other, _) => EndDecision::AlreadyEnded(other),
    }
}

/// When a reservation made at `now` expires.
pub fn expires_at(now: DateTime<Utc>) -> DateTime<Utc> {
    now + RESERVATION_TTL
}

/// Units one user may hold at once across all their held reservations, by default.
///
/// Without a cap one account could hold about 3,000 units of a flash sale (20 reservations a
/// minute under the rate limit, 10 units each, 15 minutes each), so a few accounts could lock
/// a whole sale. 30 is three full reservations: a real cart, and a sale of a few hundred
/// units needs dozens of accounts to be locked.
pub const DEFAULT_MAX_HELD_UNITS: i64 = 30;

/// A reservation refused because the user would hold more than the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverHoldCap {
    /// Units the user holds now (unexpired holds).
    pub held: i64,
    /// The cap.
    pub max: i64,
}

/// Units still held among `holds` (units, hold end) at `now`: a hold whose end has passed no
/// longer counts, whether or not the expiry sweep has returned its units yet (they are no
/// longer the buyer's to pay for).
pub fn live_held(holds: impl IntoIterator<Item = (i64, DateTime<Utc>)>, now: DateTime<Utc>) -> i64 {
    holds.into_iter().filter(|(_, until)| *until > now).map(|(units, _)| units.max(0)).sum()
}

/// Whether a user holding `held` units may hold `quantity` more under the cap `max`.
pub fn may_hold(held: i64, quantity: i64, max: i64) -> Result<(), OverHoldCap> {
    if held.saturating_add(quantity) <= max { Ok(()) } else { Err(OverHoldCap { held, max }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_hold_cap_counts_unexpired_holds_only() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let soon = now + TimeDelta::minutes(5);
        let past = now - TimeDelta::seconds(1);
        assert_eq!(live_held([(10, soon), (10, soon), (7, past), (3, now)], now), 20);
        assert_eq!(may_hold(20, 10, 30), Ok(()));
        assert_eq!(may_hold(21, 10, 30), Err(OverHoldCap { held: 21, max: 30 }));
        assert_eq!(may_hold(0, 10, 5), Err(OverHoldCap { held: 0, max: 5 }));
        assert_eq!(may_hold(i64::MAX, 1, 30), Err(OverHoldCap { held: i64::MAX, max: 30 }));
    }

    #[test]
    fn stock_keys_keep_products_and_variants_apart() {
        assert_eq!(Sku::product("p").stock_key(), "all");
        assert_eq!(Sku::variant("p", "all").stock_key(), "v-all");
        assert_eq!(Sku::variant("p", "red").stock_key(), "v-red");
    }

    #[test]
    fn requests_are_checked() {
        assert!(validate_request(&Sku::product("p"), 1).is_ok());
        assert!(validate_request(&Sku::product("p"), MAX_QUANTITY).is_ok());
        assert_eq!(validate_request(&Sku::product("p"), 0), Err(RequestError::Quantity(0)));
        assert_eq!(validate_request(&Sku::product("p"), 11), Err(RequestError::Quantity(11)));
        assert_eq!(validate_request(&Sku::product(""), 1), Err(RequestError::NoProduct));
    }

    #[test]
    fn shard_count_follows_rate_and_units() {
        assert_eq!(shards_for(0, 500), 1);
        assert_eq!(shards_for(20, 500), 20);
        assert_eq!(shards_for(10_000, 500), MAX_SHARDS);
        assert_eq!(shards_for(50, 3), 3);
    }

    #[test]
    fn allocation_prefers_one_shard_then_spans() {
        assert_eq!(
            allocate(2, &[(3, 1), (4, 5)]),
            Allocation::Take(vec![Take { shard: 4, units: 2 }])
        );
        assert_eq!(
            allocate(3, &[(3, 1), (4, 2)]),
            Allocation::Take(vec![Take { shard: 3, units: 1 }, Take { shard: 4, units: 2 }])
        );
        assert_eq!(allocate(3, &[(3, 1), (4, 1)]), Allocation::NeedMore);
        assert_eq!(allocate(1, &[(0, -4)]), Allocation::NeedMore);
    }

    #[test]
    fn endings() {
        let now = Utc::now();
        let later = now + TimeDelta::minutes(1);
        use ReservationStatus::*;
        assert_eq!(end(Held, later, Ending::Release, now), EndDecision::ReturnUnits(Released));
        assert_eq!(end(Held, later, Ending::Expire, now), EndDecision::NotDue);
        assert_eq!(end(Held, now, Ending::Expire, now), EndDecision::ReturnUnits(Expired));
        for s in [Released, Expired, Committed] {
            assert_eq!(end(s, now, Ending::Release, later), EndDecision::AlreadyEnded(s));
            assert_eq!(end(s, now, Ending::Expire, later), EndDecision::AlreadyEnded(s));
        }
        assert_eq!(expires_at(now) - now, TimeDelta::minutes(15));
    }

    proptest! {
        #[test]
        fn split_preserves_the_total(total in 0i64..100_000, shards in 0u32..300) {
            let parts = split_stock(total, shards);
            prop_assert_eq!(parts.len() as u32, shards.max(1));
            prop_assert_eq!(parts.iter().sum::<i64>(), total);
            let (min, max) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
            prop_assert!(max - min <= 1);
        }

        #[test]
        fn ring_visits_every_shard_once(start in any::<u32>(), shards in 1u32..300) {
            let mut seen: Vec<u32> = ring(start, shards).collect();
            prop_assert_eq!(seen[0], start % shards);
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..shards).collect::<Vec<_>>());
        }

        #[test]
        fn allocation_never_takes_more_than_available_or_asked(
            quantity in 1i64..=MAX_QUANTITY,
            read in proptest::collection::vec((0u32..50, -3i64..8), 0..12),
        ) {
            // Shard numbers are distinct in a real walk.
            let mut seen = std::collections::HashSet::new();
            let read: Vec<(u32, i64)> = read.into_iter().filter(|(s, _)| seen.insert(*s)).collect();
            let total: i64 = read.iter().map(|(_, a)| (*a).max(0)).sum();
            match allocate(quantity, &read) {
                Allocation::Take(takes) => {
                    prop_assert_eq!(takes.iter().map(|t| t.units).sum::<i64>(), quantity);
                    for t in &takes {
                        let available = read.iter().find(|(s, _)| *s == t.shard).unwrap().1;
                        prop_assert!(t.units > 0 && t.units <= available);
                    }
                }
                Allocation::NeedMore => prop_assert!(total < quantity),
            }
        }
    }
}
