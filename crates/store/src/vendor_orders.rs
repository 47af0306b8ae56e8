//! What vendors see of their sales: their orders, and totals per day kept as counters.
//!
//! ```text
//! orders/{orderId}                          { vendor_ids: [..], status, created_at, .. }
//! vendor_sales/{vendorId}:{day}:{currency}  { vendor_id, day, currency, orders, amount_minor,
//!                                             updated_at }
//! ```
//!
//! - [`VendorOrders::list`]: `vendor_ids array-contains`, optionally `status ==`, newest first,
//!   resumed strictly after a `(created_at, id)` cursor. Indexes:
//!   `orders(vendor_ids CONTAINS, status, created_at DESC)` and
//!   `orders(vendor_ids CONTAINS, created_at DESC)`.
//! - [`VendorOrders::record_paid`]: the `order-paid` consumer adds the order's lines to each of
//!   its vendors' counter of the day (UTC) it was paid, with server-side increments in ONE
//!   commit; the caller runs it once per order (the idempotency ledger). A day's totals are
//!   then one document read ([`VendorOrders::sales`]), never a scan of orders. The counters are
//!   gross sales: refunds are announced separately (`order-refunded`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use firestore::gcloud_sdk::google::firestore::v1::document_transform::FieldTransform;
use firestore::gcloud_sdk::google::firestore::v1::document_transform::field_transform::TransformType;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::field_filter::Operator;
use firestore::gcloud_sdk::google::firestore::v1::{Document, DocumentMask, Write, write};
use serde::{Deserialize, Serialize};

use crate::db::{Db, decode};
use crate::error::Error;
use crate::paths;
use crate::payments::Order;
use crate::rpc::{self, NAME};

/// Most orders one page returns.
pub const MAX_PAGE: u32 = 50;

/// One vendor's paid sales of one day in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaySales {
    /// The vendor.
    pub vendor_id: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// ISO 4217, lower case.
    pub currency: String,
    /// Paid orders with at least one of the vendor's lines.
    pub orders: i64,
    /// The value of the vendor's lines in them, minor units.
    pub amount_minor: i64,
}

/// Vendor order listings and sales counters on one database.
#[derive(Debug, Clone)]
pub struct VendorOrders {
    db: Db,
}

impl VendorOrders {
    /// On `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// One page of `vendor_id`'s orders (see the module docs).
    pub async fn list(
        &self,
        vendor_id: &str,
        status: Option<domain::payments::OrderStatus>,
        after: Option<(DateTime<Utc>, String)>,
        limit: u32,
    ) -> Result<Vec<Order>, Error> {
        let mut filters =
            vec![rpc::filter("vendor_ids", Operator::ArrayContains, rpc::string(vendor_id))];
        if let Some(status) = status {
            let name = serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            filters.push(rpc::eq("status", rpc::string(&name)));
        }
        let mut query = rpc::from(paths::names::ORDERS, false);
        query.r#where = rpc::and(filters);
        query.order_by = vec![rpc::desc("created_at"), rpc::desc(NAME)];
        if let Some((at, id)) = after {
            let name = paths::order(&id)?.full_name(self.db.documents_root());
            query.start_at =
                Some(rpc::cursor(vec![rpc::timestamp(at), rpc::reference(name)], false));
        }
        query.limit = Some(i32::try_from(limit.clamp(1, MAX_PAGE)).unwrap_or(1));
        let docs = rpc::run(&self.db, self.db.documents_root().to_owned(), query).await?;
        let mut orders = Vec::with_capacity(docs.len());
        for doc in docs {
            let id = rpc::doc_id(&doc).to_owned();
            orders.push(decode::<Order>(&paths::order(&id)?, &doc)?);
        }
        Ok(orders)
    }

    /// Adds a paid order to its vendors' counters of `paid_at`'s day (see the module docs);
    /// answers the vendors counted. Run once per order.
    pub async fn record_paid(&self, order: &Order, paid_at: DateTime<Utc>) -> Result<usize, Error> {
        let day = paid_at.date_naive().format("%Y-%m-%d").to_string();
        let mut per_vendor: BTreeMap<&str, i64> = BTreeMap::new();
        for item in &order.items {
            if let Some(vendor) = item.vendor_id.as_deref() {
                *per_vendor.entry(vendor).or_default() += item.quantity * item.unit_price_minor;
            }
        }
        let mut writes = Vec::with_capacity(per_vendor.len());
        for (vendor, amount) in &per_vendor {
            let path = paths::vendor_sales(vendor, &day, &order.currency)?;
            let mut fields = std::collections::HashMap::new();
            fields.insert("vendor_id".to_owned(), rpc::string(vendor));
            fields.insert("day".to_owned(), rpc::string(&day));
            fields.insert("currency".to_owned(), rpc::string(&order.currency));
            fields.insert("updated_at".to_owned(), rpc::timestamp(paid_at));
            let increment = |field: &str, by: i64| FieldTransform {
                field_path: field.to_owned(),
                transform_type: Some(TransformType::Increment(rpc::integer(by))),
            };
            writes.push(Write {
                operation: Some(write::Operation::Update(Document {
                    name: path.full_name(self.db.documents_root()),
                    fields,
                    ..Default::default()
                })),
                update_mask: Some(DocumentMask {
                    field_paths: vec![
                        "vendor_id".into(),
                        "day".into(),
                        "currency".into(),
                        "updated_at".into(),
                    ],
                }),
                update_transforms: vec![increment("orders", 1), increment("amount_minor", *amount)],
                ..Default::default()
            });
        }
        if !writes.is_empty() {
            self.db.commit(writes).await?;
        }
        Ok(per_vendor.len())
    }

    /// `vendor_id`'s sales of each day from `from` to `to` (inclusive, at most 31 days) in
    /// `currency`: one batched read of the day documents; days without sales are absent.
    pub async fn sales(
        &self,
        vendor_id: &str,
        currency: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DaySales>, Error> {
        let mut paths_wanted = Vec::new();
        let mut day = from;
        while day <= to && paths_wanted.len() < 31 {
            let name = day.format("%Y-%m-%d").to_string();
            paths_wanted.push(paths::vendor_sales(vendor_id, &name, currency)?);
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        let names = paths_wanted.iter().map(|p| p.full_name(self.db.documents_root())).collect();
        let docs = rpc::batch_get(&self.db, names).await?;
        let mut sales = Vec::new();
        for (path, doc) in paths_wanted.iter().zip(docs) {
            if let Some(doc) = doc {
                sales.push(decode::<DaySales>(path, &doc)?);
            }
        }
        Ok(sales)
    }
}
