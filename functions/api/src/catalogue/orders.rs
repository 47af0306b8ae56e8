//! The vendor-side order callables and refunds: `listVendorOrders`, `getVendorSales`,
//! `requestRefund`.
//!
//! - `listVendorOrders`: the caller's orders as a vendor (orders carry `vendor_ids`), by
//!   status, newest first, with a `(created_at, id)` cursor; each order shows the caller's
//!   lines only.
//! - `getVendorSales`: the caller's sales per day (UTC) from the counters the `order-paid`
//!   consumer keeps: one batched read of at most 31 day documents.
//! - `requestRefund`: the buyer (within `HEARTH_REFUND_WINDOW_DAYS` of the order) or a vendor
//!   of the order (for its own lines, any time) asks for money back on a paid order; the
//!   refund is recorded on the order in one transaction (`store::refunds`, rules in
//!   `domain::refunds`) and published on `refund-requests`, whose consumer calls the
//!   provider. `requestId` makes a retry find the same refund (and publish it again; the
//!   consumer runs each refund once).

use axum::extract::State;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use domain::messages::{RefundReason, RefundRequest, RefundRequests, Version};
use domain::payments::OrderStatus;
use domain::refunds::{RefundRefused, RefundStatus, Requester};
use gcp::callable::Code;
use runtime::Error;
use runtime::trigger::{Callable, CallableResult};
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::refunds::AskRefused;
use ts_rs::TS;

use crate::payments::{errors::store_error, limits};
use crate::{AppState, SignedIn};

/// `listVendorOrders` data.
#[derive(Debug, Default, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "ListVendorOrdersRequest")]
pub(crate) struct ListVendorOrdersRequest {
    #[serde(default)]
    #[ts(optional)]
    status: Option<OrderStatus>,
    #[serde(default)]
    #[ts(optional)]
    cursor: Option<String>,
    /// 1 to 50, default 20.
    #[serde(default)]
    #[ts(optional)]
    limit: Option<u32>,
}

/// One of the vendor's lines in an order.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "VendorOrderLine")]
pub(crate) struct VendorLine {
    pub(crate) product_id: String,
    pub(crate) variant_id: Option<String>,
    pub(crate) quantity: i64,
    pub(crate) unit_price_minor: i64,
}

/// An order as its vendor sees it.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "VendorOrderView")]
pub(crate) struct VendorOrder {
    pub(crate) order_id: String,
    pub(crate) status: OrderStatus,
    /// RFC 3339, milliseconds, UTC.
    pub(crate) created_at: String,
    pub(crate) currency: String,
    /// The vendor's lines only.
    pub(crate) lines: Vec<VendorLine>,
    /// The value of the vendor's lines, minor units.
    pub(crate) vendor_amount_minor: i64,
    /// Refunded on the whole order so far, minor units.
    pub(crate) refunded_minor: i64,
}

/// `listVendorOrders`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ListVendorOrdersResult")]
pub(crate) struct VendorOrderPage {
    pub(crate) orders: Vec<VendorOrder>,
    pub(crate) next_cursor: Option<String>,
}

fn decode_order_cursor(cursor: &str) -> Option<(DateTime<Utc>, String)> {
    let (millis, id) = cursor.split_once(':')?;
    let at = DateTime::from_timestamp_millis(millis.parse().ok()?)?;
    (!id.is_empty()).then(|| (at, id.to_owned()))
}

pub(crate) async fn list_vendor_orders(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<Option<ListVendorOrdersRequest>>,
) -> Result<CallableResult<VendorOrderPage>, Error> {
    let request = request.unwrap_or_default();
    let limit = request.limit.unwrap_or(20);
    if !(1..=store::vendor_orders::MAX_PAGE).contains(&limit) {
        return Err(Error::reject(Code::InvalidArgument, "Invalid limit (1 to 50)."));
    }
    let after = match &request.cursor {
        Some(c) => Some(
            decode_order_cursor(c)
                .ok_or_else(|| Error::reject(Code::InvalidArgument, "Invalid cursor."))?,
        ),
        None => None,
    };
    limits::check(&state, &who.uid, "listVendorOrders").await?;
    let orders = state
        .catalogue
        .vendor_orders
        .list(&who.uid, request.status, after, limit)
        .await
        .map_err(store_error)?;
    let next_cursor = orders.last().filter(|_| orders.len() == limit as usize).map(|o| {
        let at = o.created();
        format!("{}:{}", at.timestamp_millis(), o.id)
    });
    let orders = orders
        .into_iter()
        .map(|o| {
            let lines: Vec<VendorLine> = o
                .items
                .iter()
                .filter(|i| i.vendor_id.as_deref() == Some(who.uid.as_str()))
                .map(|i| VendorLine {
                    product_id: i.product_id.clone(),
                    variant_id: i.variant_id.clone(),
                    quantity: i.quantity,
                    unit_price_minor: i.unit_price_minor,
                })
                .collect();
            VendorOrder {
                vendor_amount_minor: lines.iter().map(|l| l.quantity * l.unit_price_minor).sum(),
                lines,
                created_at: o.created().to_rfc3339_opts(SecondsFormat::Millis, true),
                order_id: o.id,
                status: o.status,
                currency: o.currency,
                refunded_minor: o.refunded_minor,
            }
        })
        .collect();
    Ok(CallableResult(VendorOrderPage { orders, next_cursor }))
}

/// `getVendorSales` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "GetVendorSalesRequest")]
pub(crate) struct GetVendorSalesRequest {
    /// `YYYY-MM-DD` (UTC), inclusive.
    from_day: String,
    /// `YYYY-MM-DD` (UTC), inclusive; at most 30 days after `fromDay`.
    to_day: String,
    /// ISO 4217, lower case.
    currency: String,
}

/// One day of sales.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "VendorSalesDay")]
pub(crate) struct SalesDay {
    pub(crate) day: String,
    /// Paid orders with the vendor's lines.
    pub(crate) orders: i64,
    /// The value of the vendor's lines in them (gross of refunds), minor units.
    pub(crate) amount_minor: i64,
}

/// `getVendorSales`: days without sales are absent.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "GetVendorSalesResult")]
pub(crate) struct SalesAnswer {
    pub(crate) currency: String,
    pub(crate) days: Vec<SalesDay>,
}

pub(crate) async fn get_vendor_sales(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<GetVendorSalesRequest>,
) -> Result<CallableResult<SalesAnswer>, Error> {
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    let (Some(from), Some(to)) = (day(&request.from_day), day(&request.to_day)) else {
        return Err(Error::reject(Code::InvalidArgument, "Days are YYYY-MM-DD."));
    };
    if to < from || (to - from).num_days() > 30 {
        return Err(Error::reject(
            Code::InvalidArgument,
            "toDay must be on or after fromDay, at most 30 days later.",
        ));
    }
    domain::catalogue::currency(&request.currency)
        .map_err(|e| Error::reject(Code::InvalidArgument, format!("Invalid currency: {e}.")))?;
    limits::check(&state, &who.uid, "getVendorSales").await?;
    let days = state
        .catalogue
        .vendor_orders
        .sales(&who.uid, &request.currency, from, to)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|d| SalesDay { day: d.day, orders: d.orders, amount_minor: d.amount_minor })
        .collect();
    Ok(CallableResult(SalesAnswer { currency: request.currency, days }))
}

/// `requestRefund` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "RequestRefundRequest")]
pub(crate) struct RequestRefundRequest {
    order_id: String,
    /// Minor units; absent: everything the caller may ask back.
    #[serde(default)]
    #[ts(optional)]
    amount_minor: Option<i64>,
    /// The caller's id for this request (1 to 100 characters): a retry with the same id finds
    /// the same refund.
    request_id: String,
}

/// `requestRefund`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "RequestRefundResult")]
pub(crate) struct RefundView {
    pub(crate) refund_id: String,
    pub(crate) order_id: String,
    pub(crate) amount_minor: i64,
    pub(crate) currency: String,
    pub(crate) status: RefundStatus,
    /// False when the same `requestId` had recorded it before.
    pub(crate) created: bool,
}

/// `requestRefund` refused with `FAILED_PRECONDITION` over the amount: `details`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefundableDetails {
    /// The most the caller may ask back now, minor units.
    pub(crate) refundable_minor: i64,
}

fn refund_refused(refused: AskRefused) -> Error {
    match refused {
        AskRefused::NotFound => Error::reject(Code::NotFound, "No such order."),
        AskRefused::Conflict => Error::reject(
            Code::AlreadyExists,
            "This requestId was used for another refund; use a new one.",
        ),
        AskRefused::Refused(RefundRefused::NotPositive) => {
            Error::reject(Code::InvalidArgument, "amountMinor must be positive.")
        }
        AskRefused::Refused(RefundRefused::OverAmount { left }) => Error::reject(
            Code::FailedPrecondition,
            format!("At most {left} minor units can be refunded."),
        )
        .with_details(json!(RefundableDetails { refundable_minor: left })),
        AskRefused::Refused(other) => {
            Error::reject(Code::FailedPrecondition, format!("No refund: {other}."))
        }
    }
}

pub(crate) async fn request_refund(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<RequestRefundRequest>,
) -> Result<CallableResult<RefundView>, Error> {
    if request.request_id.is_empty()
        || request.request_id.len() > 100
        || request.request_id.chars().any(char::is_control)
    {
        return Err(Error::reject(Code::InvalidArgument, "requestId must be 1 to 100 characters."));
    }
    if request.amount_minor.is_some_and(|a| a > domain::catalogue::MAX_PRICE_MINOR * 1_000) {
        return Err(Error::reject(Code::InvalidArgument, "amountMinor is out of range."));
    }
    limits::check(&state, &who.uid, "requestRefund").await?;
    // Deterministic per (caller, order, request id), so a retry finds the same refund; a hash,
    // so it is short and safe as Stripe's Idempotency-Key and says nothing about the caller.
    let refund_id = {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for part in [&who.uid, &request.order_id, &request.request_id] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        format!("rf_{}", &hex::encode(hasher.finalize())[..40])
    };
    let recorded = state
        .catalogue
        .refunds
        .request(
            &request.order_id,
            &who.uid,
            request.amount_minor,
            &refund_id,
            Utc::now(),
            state.catalogue.refund_window,
        )
        .await
        .map_err(store_error)?
        .map_err(refund_refused)?;
    let entry = &recorded.entry;
    if entry.status == RefundStatus::Requested {
        let message = RefundRequest {
            v: Version,
            order_id: request.order_id.clone(),
            uid: recorded.uid.clone(),
            provider: recorded.payment.provider,
            payment_id: recorded.payment.provider_payment_id.clone().unwrap_or_default(),
            amount_minor: entry.amount_minor,
            currency: recorded.currency.clone(),
            reason: match entry.requester {
                Requester::Vendor => RefundReason::VendorRequest,
                Requester::Buyer | Requester::System => RefundReason::BuyerRequest,
            },
            refund_id: Some(entry.refund_id.clone()),
        };
        state
            .catalogue
            .bus
            .publish::<RefundRequests>(&message, bus::Attributes::new())
            .await
            .map_err(|e| {
                Error::retry(anyhow::Error::new(e).context("publishing the refund request"))
            })?;
    }
    Ok(CallableResult(RefundView {
        refund_id: entry.refund_id.clone(),
        order_id: request.order_id,
        amount_minor: entry.amount_minor,
        currency: recorded.currency,
        status: entry.status,
        created: recorded.created,
    }))
}
