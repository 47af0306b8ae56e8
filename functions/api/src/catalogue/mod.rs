//! The catalogue callables: `becomeVendor`, `updateVendor`, `createProduct`, `updateProduct`,
//! `publishProduct`, `archiveProduct`, `setStock`, `addStock`, `listProducts`; and the vendor
//! orders and refunds: `listVendorOrders`, `getVendorSales`, `requestRefund`.
//!
//! - A user becomes a vendor by calling `becomeVendor` once: it creates `vendors/{uid}` and
//!   claims the handle in one transaction (`store::catalogue`); only vendors write products,
//!   and only their own (checked in the transaction that writes).
//! - Every write is validated by `domain::catalogue` first (`INVALID_ARGUMENT` naming the
//!   field); vendor fields on a product come from the vendor's profile, never from the request.
//! - `listProducts` is the buyers' read: active products only, by category, vendor and price,
//!   with a `(price, id)` cursor; each instance caches a page for `HEARTH_CATALOGUE_CACHE_SECS`
//!   (default 10) and availability is the product's `in_stock` summary, so a page costs one
//!   query and no stock reads.
//! - The vendor side of orders and refunds is in [`orders`]: `listVendorOrders`,
//!   `getVendorSales`, `requestRefund`.
//! - Every callable is rate limited per user like the others (`payments::limits`).

pub(crate) mod callables;
pub(crate) mod orders;

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use runtime::{BaseConfig, ConfigError, Env};
use store::Db;
use store::catalogue::{Catalogue, Listing};

use crate::AppState;
use crate::feed::TtlCache;

/// The callable paths this module serves.
pub const PATHS: [&str; 12] = [
    "/becomeVendor",
    "/updateVendor",
    "/createProduct",
    "/updateProduct",
    "/publishProduct",
    "/archiveProduct",
    "/setStock",
    "/addStock",
    "/listProducts",
    "/listVendorOrders",
    "/getVendorSales",
    "/requestRefund",
];

/// This module's own configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `HEARTH_CATALOGUE_CACHE_SECS` (default 10; 0 turns the cache off): how long an
    /// instance reuses a `listProducts` page.
    pub list_ttl: Duration,
    /// `HEARTH_REFUND_WINDOW_DAYS` (default 30): how long after payment a buyer may ask for a
    /// refund (vendors may refund their orders at any time).
    pub refund_window: chrono::TimeDelta,
    /// Where refund requests are published (`refund-requests`): the project and
    /// `PUBSUB_EMULATOR_HOST`.
    pub bus: Option<bus::BusConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            list_ttl: Duration::from_secs(10),
            refund_window: chrono::TimeDelta::days(30),
            bus: None,
        }
    }
}

impl Config {
    pub fn load(base: &BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let days: i64 = env.parse_or("HEARTH_REFUND_WINDOW_DAYS", "1 to 365 days", 30)?;
        if !(1..=365).contains(&days) {
            return Err(ConfigError::invalid(
                "HEARTH_REFUND_WINDOW_DAYS",
                "1 to 365 days",
                &days.to_string(),
            ));
        }
        Ok(Self {
            list_ttl: env.secs_or("HEARTH_CATALOGUE_CACHE_SECS", defaults.list_ttl)?,
            refund_window: chrono::TimeDelta::days(days),
            bus: Some(bus::BusConfig::new(
                base.required_project()?,
                base.pubsub_emulator_host.clone(),
            )),
        })
    }
}

/// This module's own state.
#[derive(Debug, Clone)]
pub struct State {
    pub(crate) catalogue: Catalogue,
    vendor_orders: store::vendor_orders::VendorOrders,
    refunds: store::refunds::Refunds,
    bus: bus::Bus,
    pages: TtlCache<Listing, callables::ProductPage>,
    refund_window: chrono::TimeDelta,
}

impl State {
    /// Builds the state; does no I/O (the publisher connects on first publish).
    pub async fn build(config: &Config, db: &Db) -> anyhow::Result<Self> {
        let bus_config = config
            .bus
            .clone()
            .unwrap_or_else(|| bus::BusConfig::new(db.config().project_id.clone(), None));
        Ok(Self {
            catalogue: Catalogue::new(db),
            vendor_orders: store::vendor_orders::VendorOrders::new(db),
            refunds: store::refunds::Refunds::new(db),
            bus: bus::Bus::connect(bus_config).await?,
            pages: TtlCache::new(config.list_ttl, 1_000),
            refund_window: config.refund_window,
        })
    }
}

/// This module's routes.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/becomeVendor", post(callables::become_vendor))
        .route("/updateVendor", post(callables::update_vendor))
        .route("/createProduct", post(callables::create_product))
        .route("/updateProduct", post(callables::update_product))
        .route("/publishProduct", post(callables::publish_product))
        .route("/archiveProduct", post(callables::archive_product))
        .route("/setStock", post(callables::set_stock))
        .route("/addStock", post(callables::add_stock))
        .route("/listProducts", post(callables::list_products))
        .route("/listVendorOrders", post(orders::list_vendor_orders))
        .route("/getVendorSales", post(orders::get_vendor_sales))
        .route("/requestRefund", post(orders::request_refund))
        .with_state(state)
}
