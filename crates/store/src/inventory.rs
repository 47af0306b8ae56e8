//! Sharded stock and reservations that never oversell (rules in `domain::inventory`).
//!
//! ```text
//! products/{p}/stock/{key}            { product_id, variant_id, shards: N, total }
//! products/{p}/stock/{key}/shards/{n} { shard: n, available }       n in 0..N
//! reservations/{id}                   { uid, sku, quantity, takes: [{shard, units}], status,
//!                                       expires_at, created_at, updated_at, order_id }
//! ```
//!
//! `reserve`: read the stock document (shard count), then shards in ring order from a random
//! start until the shards read can cover the quantity (`domain::inventory::allocate`), then ONE
//! `Commit`: each shard taken from is rewritten to `available - units` under the precondition
//! `update_time = as read`, and the reservation is created (`exists = false`). Any concurrent
//! change to a shard read makes the whole commit fail (`FAILED_PRECONDITION`), so a unit can
//! never be handed out twice and `available` never goes below zero; the attempt is then
//! re-planned from a new random start. This is the optimistic transaction the client SDKs run,
//! without holding locks: the emulator's pessimistic transaction locks would serialize a hot
//! SKU behind 2-second lock timeouts, and production Firestore would abort the losers at commit
//! anyway. Shards that are read empty are skipped without a write, so a sold-out SKU costs
//! reads only.
//!
//! `release` / `expire`: read the reservation; while it is `held`, ONE `Commit` moves it to
//! `released` / `expired` (precondition `update_time = as read`) and increments each shard it
//! took from by the units taken. The precondition makes the return happen exactly once however
//! many releases, sweeps and payment commits race.
//!
//! `sweep_expired(now, limit)` is what the scheduled cleanup job calls: held reservations whose
//! `expires_at` has passed, oldest first (index: `reservations(status, expires_at)`), each
//! expired from the document the query read (its update time guards the commit, as a fresh
//! read's would): one query and one commit per reservation.
//!
//! The hold cap (`domain::inventory::may_hold`, default 30 units per user):
//! ```text
//! holds/{uid}   { uid, held: { <reservationId>: { units, until } } }
//! ```
//! `reserve` reads `holds/{uid}` with the shards, refuses when the unexpired holds plus the
//! quantity exceed the cap, and otherwise rewrites it (expired holds dropped, the new one added)
//! in the SAME commit as the shards and the reservation, under `update_time = as read` (or
//! `exists = false`). Two reservations of one user racing both read the same holds document;
//! only one commit can succeed, the other re-plans and sees the first's hold, so parallel
//! reservations cannot pass the cap. `release` and `expire` remove the reservation's hold in
//! their commit (whose own precondition makes that happen once). A hold whose `until` passed no
//! longer counts even before the sweep returns its units, and a reservation committed to a
//! paid order stops counting at its `until` at the latest (15 minutes), or at once when the
//! commit adds [`Inventory::release_hold_write`].

use crate::db::{Db, decode};
use crate::error::{Code, Error};
use crate::paths::{self, DocPath};
use crate::rpc;
use chrono::{DateTime, Utc};
use domain::inventory::{
    Allocation, EndDecision, Ending, ReservationStatus, Sku, Take, allocate, end, expires_at, ring,
    split_stock,
};
use firestore::FirestoreInstant;
use firestore::gcloud_sdk::google::firestore::v1::document_transform::FieldTransform;
use firestore::gcloud_sdk::google::firestore::v1::document_transform::field_transform::TransformType;
use firestore::gcloud_sdk::google::firestore::v1::precondition::ConditionType;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::field_filter::Operator;
use firestore::gcloud_sdk::google::firestore::v1::value::ValueType;
use firestore::gcloud_sdk::google::firestore::v1::{
    Document, DocumentMask, DocumentTransform, Precondition, Value, Write, write,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many lost races one reservation attempt tolerates before answering a retryable
/// `ABORTED` (each lost race means another buyer got units, so the SKU moved on).
const MAX_CONFLICTS: u32 = 64;

/// The stock document of a SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockDoc {
    /// The product.
    pub product_id: String,
    /// The variant, if any.
    pub variant_id: Option<String>,
    /// How many shards hold the units.
    pub shards: u32,
    /// Units the stock was last set to (informational; availability is the sum of shards).
    pub total: i64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ShardDoc {
    shard: u32,
    available: i64,
}

/// A reservation as stored in `reservations/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    /// The document id.
    pub id: String,
    /// The buyer.
    pub uid: String,
    /// What is reserved.
    pub product_id: String,
    /// The variant, if any.
    pub variant_id: Option<String>,
    /// `Sku::stock_key`.
    pub stock_key: String,
    /// Units held.
    pub quantity: i64,
    /// Where the units came from (returned there on release / expiry).
    pub takes: Vec<Take>,
    /// Where it is in its life.
    pub status: ReservationStatus,
    /// When the hold ends.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub expires_at: FirestoreInstant,
    /// When it was made.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub created_at: FirestoreInstant,
    /// Last change.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub updated_at: FirestoreInstant,
    /// The order it was committed to, once paid.
    #[serde(default)]
    pub order_id: Option<String>,
}

impl Reservation {
    /// The SKU it holds.
    pub fn sku(&self) -> Sku {
        Sku { product_id: self.product_id.clone(), variant_id: self.variant_id.clone() }
    }

    /// `expires_at` as a chrono time.
    pub fn expires(&self) -> DateTime<Utc> {
        to_chrono(self.expires_at)
    }
}

/// The answer to a reservation attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum ReserveOutcome {
    /// Units are held.
    Reserved {
        /// The new reservation.
        reservation: Box<Reservation>,
        /// Commits lost to concurrent buyers before this one won (a contention measure).
        conflicts: u32,
    },
    /// Not enough units left (`available` is what the walk saw).
    SoldOut {
        /// Units seen across all shards.
        available: i64,
    },
    /// The SKU has no stock document.
    UnknownSku,
    /// The user would hold more units than the cap (`domain::inventory::may_hold`).
    OverHoldCap {
        /// Units the user holds now.
        held: i64,
        /// The cap.
        max: i64,
    },
}

/// `holds/{uid}`: the user's unexpired holds, keyed by reservation id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HoldsDoc {
    // Absent when the document was first made by a release's field delete.
    #[serde(default)]
    uid: String,
    #[serde(default)]
    held: std::collections::BTreeMap<String, Hold>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hold {
    units: i64,
    #[serde(with = "firestore::serialize_as_timestamp")]
    until: FirestoreInstant,
}

/// The answer to a release or expiry.
#[derive(Debug, Clone, PartialEq)]
pub enum EndOutcome {
    /// The units went back; the reservation now has this status.
    Returned(Box<Reservation>),
    /// Nothing to do: it had already ended with this status.
    AlreadyEnded(ReservationStatus),
    /// Not expired yet (sweep only).
    NotDue,
    /// No such reservation.
    NotFound,
    /// It belongs to someone else (release only).
    NotOwner,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Candidates the query returned.
    pub examined: usize,
    /// Reservations this sweep expired.
    pub expired: usize,
    /// Units returned to stock.
    pub units_returned: i64,
}

/// Counters of contention (across all calls on this handle and its clones).
#[derive(Debug, Default)]
struct Stats {
    conflicts: AtomicU64,
}

/// Inventory operations on one database.
#[derive(Debug, Clone)]
pub struct Inventory {
    db: Db,
    stats: Arc<Stats>,
    max_held_units: i64,
}

impl Inventory {
    /// Inventory on `db`, with the default hold cap
    /// ([`domain::inventory::DEFAULT_MAX_HELD_UNITS`]).
    pub fn new(db: &Db) -> Self {
        Self {
            db: db.clone(),
            stats: Arc::default(),
            max_held_units: domain::inventory::DEFAULT_MAX_HELD_UNITS,
        }
    }

    /// Replaces the cap of units one user may hold at once.
    pub fn with_max_held_units(mut self, units: i64) -> Self {
        self.max_held_units = units.max(1);
        self
    }

    /// A write that removes `reservation`'s hold from its user's `holds/{uid}`, for a commit
    /// that moves the reservation out of `held` under a precondition (release, expiry, and the
    /// payment commit that marks it `committed`), so the units stop counting against the cap
    /// exactly when they stop being held.
    pub(crate) fn release_hold_write(&self, reservation: &Reservation) -> Result<Write, Error> {
        let path = paths::holds(&reservation.uid)?;
        let id = reservation.id.replace('\\', "\\\\").replace('`', "\\`");
        Ok(Write {
            operation: Some(write::Operation::Update(Document {
                name: path.full_name(self.db.documents_root()),
                ..Default::default()
            })),
            // A field named in the mask but absent from the document is deleted.
            update_mask: Some(DocumentMask { field_paths: vec![format!("held.`{id}`")] }),
            ..Default::default()
        })
    }

    /// Lost commit races so far (reservations, releases, expiries), for metrics and tests.
    pub fn conflicts(&self) -> u64 {
        self.stats.conflicts.load(Ordering::Relaxed)
    }

    /// Sets the stock of `sku` to `total` units over `shards` shards, replacing what was there
    /// (an operator / vendor action; it does not account for held reservations).
    pub async fn set_stock(&self, sku: &Sku, total: i64, shards: u32) -> Result<(), Error> {
        let shards = shards.clamp(1, domain::inventory::MAX_SHARDS);
        let stock = stock_path(sku)?;
        let mut writes = vec![self.db.set_write(
            &stock,
            &StockDoc {
                product_id: sku.product_id.clone(),
                variant_id: sku.variant_id.clone(),
                shards,
                total,
            },
        )?];
        for (n, available) in (0u32..).zip(split_stock(total, shards)) {
            writes.push(
                self.db.set_write(
                    &paths::counter_shard(&stock, n),
                    &ShardDoc { shard: n, available },
                )?,
            );
        }
        self.db.commit(writes).await
    }

    /// Adds `units` to `sku`, spread over its shards, growing the SKU to `shards` shards when
    /// it has fewer (never shrinking it); creates the SKU when it has no stock yet. Answers the
    /// shard count now. ONE commit: the stock document (shard count, `total` incremented) and
    /// a server-side increment of each shard's `available`, so units added while reservations
    /// run are never lost: a reservation writes a shard only under `update_time = as read`,
    /// and an increment changes that time, so the reservation re-plans on the new count. New
    /// shards appear in the stock document in the same commit that gives them units, and a
    /// reservation that read the old count simply does not visit them yet.
    pub async fn add_stock(&self, sku: &Sku, units: i64, shards: u32) -> Result<u32, Error> {
        let stock = stock_path(sku)?;
        let current = self.db.get::<StockDoc>(&stock).await?;
        let count = current
            .as_ref()
            .map_or(1, |s| s.shards)
            .max(shards)
            .clamp(1, domain::inventory::MAX_SHARDS);
        let mut fields = std::collections::HashMap::new();
        fields.insert("product_id".to_owned(), rpc::string(&sku.product_id));
        fields.insert(
            "variant_id".to_owned(),
            sku.variant_id.as_deref().map_or_else(rpc::null, rpc::string),
        );
        fields.insert("shards".to_owned(), rpc::integer(i64::from(count)));
        let increment = |by: i64| FieldTransform {
            field_path: "available".to_owned(),
            transform_type: Some(TransformType::Increment(rpc::integer(by))),
        };
        let mut writes = vec![Write {
            operation: Some(write::Operation::Update(Document {
                name: stock.full_name(self.db.documents_root()),
                fields,
                ..Default::default()
            })),
            update_mask: Some(DocumentMask {
                field_paths: vec!["product_id".into(), "variant_id".into(), "shards".into()],
            }),
            update_transforms: vec![FieldTransform {
                field_path: "total".to_owned(),
                transform_type: Some(TransformType::Increment(rpc::integer(units))),
            }],
            ..Default::default()
        }];
        for (n, add) in (0u32..).zip(split_stock(units, count)) {
            let shard = paths::counter_shard(&stock, n);
            let mut fields = std::collections::HashMap::new();
            fields.insert("shard".to_owned(), rpc::integer(i64::from(n)));
            writes.push(Write {
                operation: Some(write::Operation::Update(Document {
                    name: shard.full_name(self.db.documents_root()),
                    fields,
                    ..Default::default()
                })),
                update_mask: Some(DocumentMask { field_paths: vec!["shard".into()] }),
                update_transforms: vec![increment(add)],
                ..Default::default()
            });
        }
        self.db.commit(writes).await?;
        Ok(count)
    }

    /// The stock document of `sku`.
    pub async fn stock(&self, sku: &Sku) -> Result<Option<StockDoc>, Error> {
        self.db.get(&stock_path(sku)?).await
    }

    /// Units available (the sum of the shards), and each shard's count.
    pub async fn availability(&self, sku: &Sku) -> Result<Option<(i64, Vec<i64>)>, Error> {
        let stock_path = stock_path(sku)?;
        let Some(stock) = self.db.get::<StockDoc>(&stock_path).await? else { return Ok(None) };
        let reads = (0..stock.shards).map(|n| {
            let path = paths::counter_shard(&stock_path, n);
            async move { self.db.get::<ShardDoc>(&path).await }
        });
        let shards: Vec<i64> = futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .map(|s| s.map_or(0, |s| s.available))
            .collect();
        Ok(Some((shards.iter().sum(), shards)))
    }

    /// Reads `reservations/{id}`.
    pub async fn reservation(&self, id: &str) -> Result<Option<Reservation>, Error> {
        self.db.get(&paths::reservation(id)?).await
    }

    /// Holds `quantity` units of `sku` for `uid` until `now + RESERVATION_TTL`, under the new
    /// reservation id `reservation_id` (a fresh unique id; the first shard is drawn at random).
    pub async fn reserve(
        &self,
        uid: &str,
        sku: &Sku,
        quantity: i64,
        reservation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ReserveOutcome, Error> {
        domain::inventory::validate_request(sku, quantity)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let stock_path = stock_path(sku)?;
        // Validate the id before any I/O.
        paths::reservation(reservation_id)?;
        // The stock and the buyer's holds in one round trip; a retry reads the holds again.
        let holds_path = paths::holds(uid)?;
        let root = self.db.documents_root();
        let names = vec![stock_path.full_name(root), holds_path.full_name(root)];
        let mut first = crate::rpc::batch_get(&self.db, names).await?.into_iter();
        let Some(stock) = first.next().flatten() else {
            return Ok(ReserveOutcome::UnknownSku);
        };
        let stock: StockDoc = decode(&stock_path, &stock)?;
        let mut holds_read = Some(first.next().flatten());
        let mut conflicts = 0u32;
        let mut failures = 0u32;
        let backoff = self.db.config().transaction_backoff;
        loop {
            let start: u32 = rand::random();
            let error = match self
                .reserve_once(
                    &stock_path,
                    &stock,
                    holds_read.take(),
                    start,
                    (uid, quantity, now),
                    |takes| Reservation {
                        id: reservation_id.to_owned(),
                        uid: uid.to_owned(),
                        product_id: sku.product_id.clone(),
                        variant_id: sku.variant_id.clone(),
                        stock_key: sku.stock_key(),
                        quantity,
                        takes,
                        status: ReservationStatus::Held,
                        expires_at: to_instant(expires_at(now)),
                        created_at: to_instant(now),
                        updated_at: to_instant(now),
                        order_id: None,
                    },
                )
                .await
            {
                Ok(Attempt::Reserved(reservation)) => {
                    return Ok(ReserveOutcome::Reserved { reservation, conflicts });
                }
                Ok(Attempt::SoldOut(available)) => {
                    return Ok(ReserveOutcome::SoldOut { available });
                }
                Ok(Attempt::OverHoldCap(over)) => {
                    return Ok(ReserveOutcome::OverHoldCap { held: over.held, max: over.max });
                }
                Err(error) if is_conflict(&error) => {
                    conflicts += 1;
                    self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    if conflicts > MAX_CONFLICTS {
                        return Err(Error::rpc(
                            Code::Aborted,
                            format!("reservation lost {conflicts} races in a row"),
                        ));
                    }
                    continue;
                }
                Err(error) => error,
            };
            failures += 1;
            if !error.is_retryable() || !backoff.should_retry(failures) {
                return Err(error);
            }
            tokio::time::sleep(backoff.delay(failures, rand::random())).await;
        }
    }

    async fn reserve_once(
        &self,
        stock_path: &DocPath,
        stock: &StockDoc,
        holds_read: Option<Option<Document>>,
        start: u32,
        (uid, quantity, now): (&str, i64, DateTime<Utc>),
        make: impl FnOnce(Vec<Take>) -> Reservation,
    ) -> Result<Attempt, Error> {
        // The user's holds first (read with the stock on the first attempt): over the cap,
        // nothing else is read.
        let holds_path = paths::holds(uid)?;
        let holds_doc = match holds_read {
            Some(doc) => doc,
            None => self.db.get_document(&holds_path, None).await?,
        };
        let mut holds: HoldsDoc = match &holds_doc {
            Some(doc) => decode(&holds_path, doc)?,
            None => HoldsDoc { uid: uid.to_owned(), ..HoldsDoc::default() },
        };
        holds.held.retain(|_, hold| to_chrono(hold.until) > now);
        let held = domain::inventory::live_held(
            holds.held.values().map(|hold| (hold.units, to_chrono(hold.until))),
            now,
        );
        if let Err(over) = domain::inventory::may_hold(held, quantity, self.max_held_units) {
            return Ok(Attempt::OverHoldCap(over));
        }
        let mut read: Vec<(u32, i64)> = Vec::new();
        let mut docs: Vec<(DocPath, Document)> = Vec::new();
        let mut takes = None;
        for n in ring(start, stock.shards) {
            let path = paths::counter_shard(stock_path, n);
            let Some(doc) = self.db.get_document(&path, None).await? else { continue };
            let shard: ShardDoc = decode(&path, &doc)?;
            read.push((n, shard.available));
            docs.push((path, doc));
            if let Allocation::Take(t) = allocate(quantity, &read) {
                takes = Some(t);
                break;
            }
        }
        let Some(takes) = takes else {
            return Ok(Attempt::SoldOut(read.iter().map(|(_, a)| (*a).max(0)).sum()));
        };
        let reservation = make(takes.clone());
        let mut writes = Vec::with_capacity(takes.len() + 1);
        for take in &takes {
            let index = read.iter().position(|(n, _)| *n == take.shard).unwrap_or_default();
            let (path, doc) = &docs[index];
            let available = read[index].1 - take.units;
            let mut write = self.db.set_write(path, &ShardDoc { shard: take.shard, available })?;
            write.current_document = Some(updated_at_precondition(path, doc)?);
            writes.push(write);
        }
        writes.push(self.db.create_write(&paths::reservation(&reservation.id)?, &reservation)?);
        holds.held.insert(
            reservation.id.clone(),
            Hold { units: reservation.quantity, until: reservation.expires_at },
        );
        writes.push(match &holds_doc {
            Some(doc) => {
                let mut write = self.db.set_write(&holds_path, &holds)?;
                write.current_document = Some(updated_at_precondition(&holds_path, doc)?);
                write
            }
            None => self.db.create_write(&holds_path, &holds)?,
        });
        self.db.commit(writes).await?;
        Ok(Attempt::Reserved(Box::new(reservation)))
    }

    /// The buyer `uid` gives the units of `reservation_id` back.
    pub async fn release(
        &self,
        reservation_id: &str,
        uid: &str,
        now: DateTime<Utc>,
    ) -> Result<EndOutcome, Error> {
        self.end(reservation_id, Some(uid), Ending::Release, now).await
    }

    /// Expires `reservation_id` if its hold is over.
    pub async fn expire(
        &self,
        reservation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<EndOutcome, Error> {
        self.end(reservation_id, None, Ending::Expire, now).await
    }

    async fn end(
        &self,
        reservation_id: &str,
        uid: Option<&str>,
        ending: Ending,
        now: DateTime<Utc>,
    ) -> Result<EndOutcome, Error> {
        self.end_from(reservation_id, None, uid, ending, now).await
    }

    /// [`Inventory::end`] from `read`, the reservation's document as a query just read it (its
    /// update time guards the commit as a fresh read's would); read again after a lost race.
    async fn end_from(
        &self,
        reservation_id: &str,
        mut read: Option<Document>,
        uid: Option<&str>,
        ending: Ending,
        now: DateTime<Utc>,
    ) -> Result<EndOutcome, Error> {
        let path = paths::reservation(reservation_id)?;
        let mut conflicts = 0u32;
        loop {
            let doc = match read.take() {
                Some(doc) => doc,
                None => match self.db.get_document(&path, None).await? {
                    Some(doc) => doc,
                    None => return Ok(EndOutcome::NotFound),
                },
            };
            let mut reservation: Reservation = decode(&path, &doc)?;
            if uid.is_some_and(|uid| uid != reservation.uid) {
                return Ok(EndOutcome::NotOwner);
            }
            let status = match end(reservation.status, reservation.expires(), ending, now) {
                EndDecision::ReturnUnits(status) => status,
                EndDecision::AlreadyEnded(status) => return Ok(EndOutcome::AlreadyEnded(status)),
                EndDecision::NotDue => return Ok(EndOutcome::NotDue),
            };
            reservation.status = status;
            reservation.updated_at = to_instant(now);
            let mut writes = self.return_units_writes(&reservation)?;
            writes.push(self.release_hold_write(&reservation)?);
            let mut write = self.db.set_write(&path, &reservation)?;
            write.current_document = Some(updated_at_precondition(&path, &doc)?);
            writes.push(write);
            match self.db.commit(writes).await {
                Ok(()) => return Ok(EndOutcome::Returned(Box::new(reservation))),
                Err(error) if is_conflict(&error) && conflicts < MAX_CONFLICTS => {
                    conflicts += 1;
                    self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Increments of each shard `reservation` took from, by the units taken (for a commit that
    /// also moves the reservation out of `held` under a precondition).
    pub(crate) fn return_units_writes(
        &self,
        reservation: &Reservation,
    ) -> Result<Vec<Write>, Error> {
        let stock_path = paths::stock(&reservation.product_id, &reservation.stock_key)?;
        Ok(reservation
            .takes
            .iter()
            .map(|take| {
                increment_write(
                    &self.db,
                    &paths::counter_shard(&stock_path, take.shard),
                    take.units,
                )
            })
            .collect())
    }

    /// Expires up to `limit` held reservations whose hold ended before `now`, oldest first,
    /// returning their units. The scheduled cleanup job calls this (repeatedly while
    /// `expired == limit`).
    pub async fn sweep_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<SweepReport, Error> {
        // Whole documents: each is expired from what the query read (its update time guards the
        // commit), so a page costs its query and one commit per reservation.
        let mut query = rpc::from(paths::names::RESERVATIONS, false);
        query.r#where = rpc::and(vec![
            rpc::eq("status", rpc::string("held")),
            rpc::filter("expires_at", Operator::LessThanOrEqual, rpc::timestamp(now)),
        ]);
        query.order_by = vec![rpc::asc("expires_at")];
        query.limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
        let candidates = rpc::run(&self.db, self.db.documents_root().to_owned(), query).await?;
        let mut report = SweepReport { examined: candidates.len(), ..SweepReport::default() };
        for doc in candidates {
            let id = rpc::doc_id(&doc).to_owned();
            if let EndOutcome::Returned(r) =
                self.end_from(&id, Some(doc), None, Ending::Expire, now).await?
            {
                report.expired += 1;
                report.units_returned += r.quantity;
            }
        }
        if report.expired > 0 {
            tracing::info!(
                expired = report.expired,
                units = report.units_returned,
                "reservations expired"
            );
        }
        Ok(report)
    }
}

enum Attempt {
    Reserved(Box<Reservation>),
    SoldOut(i64),
    OverHoldCap(domain::inventory::OverHoldCap),
}

/// `products/{p}/stock/{key}` of `sku`.
pub fn stock_path(sku: &Sku) -> Result<DocPath, Error> {
    Ok(paths::stock(&sku.product_id, &sku.stock_key())?)
}

/// A commit refused because something read changed (or a create found its document).
pub(crate) fn is_conflict(error: &Error) -> bool {
    matches!(error.code(), Some(Code::FailedPrecondition | Code::AlreadyExists | Code::NotFound))
}

/// `update_time = as read` for `doc`.
pub(crate) fn updated_at_precondition(
    path: &DocPath,
    doc: &Document,
) -> Result<Precondition, Error> {
    let update_time = doc.update_time.ok_or_else(|| Error::Decode {
        path: path.relative(),
        message: "the document was read without an update time".to_owned(),
    })?;
    Ok(Precondition { condition_type: Some(ConditionType::UpdateTime(update_time)) })
}

/// A server-side increment of `available` on `path`.
pub(crate) fn increment_write(db: &Db, path: &DocPath, by: i64) -> Write {
    Write {
        operation: Some(write::Operation::Transform(DocumentTransform {
            document: path.full_name(db.documents_root()),
            field_transforms: vec![FieldTransform {
                field_path: "available".to_owned(),
                transform_type: Some(TransformType::Increment(Value {
                    value_type: Some(ValueType::IntegerValue(by)),
                })),
            }],
        })),
        ..Default::default()
    }
}

pub(crate) fn to_instant(time: DateTime<Utc>) -> FirestoreInstant {
    FirestoreInstant::from_microsecond(time.timestamp_micros()).unwrap_or(FirestoreInstant::MAX)
}

pub(crate) fn to_chrono(instant: FirestoreInstant) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(instant.as_microsecond()).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
