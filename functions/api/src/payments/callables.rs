//! The four payments callables.

use axum::extract::State;
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use domain::inventory::Sku;
use domain::messages::PaymentProvider;
use domain::payments::OrderIds;
use gcp::callable::Code;
use http::HeaderMap;
use providers::NewPayment;
use runtime::Error;
use runtime::trigger::{Callable, CallableResult};
use serde::Deserialize;
use serde_json::{Value, json};
use store::inventory::{EndOutcome, ReserveOutcome};
use store::payments::{Order, OrderRefused};
use ts_rs::TS;

use super::errors::{provider_error, store_error};
use super::idempotency;
use super::limits;
use crate::{AppState, SignedIn};

/// The answers of the four callables. Fields stand in the order of their wire names, so the
/// bytes are those the JSON maps built before them had (sorted keys).
mod answers {
    use domain::inventory::ReservationStatus;
    use domain::messages::PaymentProvider;
    use domain::payments::OrderStatus;
    use serde::Serialize;
    use ts_rs::TS;

    /// `reserveInventory`.
    #[derive(Debug, Serialize, TS)]
    #[serde(rename_all = "camelCase")]
    #[ts(rename = "ReserveInventoryResult")]
    pub(crate) struct Reserved {
        /// RFC 3339, milliseconds, UTC: the units return to stock then unless paid.
        pub(crate) expires_at: String,
        pub(crate) product_id: String,
        pub(crate) quantity: i64,
        pub(crate) reservation_id: String,
        pub(crate) variant_id: Option<String>,
    }

    /// `releaseReservation`.
    #[derive(Debug, Serialize, TS)]
    #[ts(rename = "ReleaseReservationResult")]
    pub(crate) struct Released {
        pub(crate) released: bool,
        /// The reservation's status, or `not_found` / `held`.
        pub(crate) status: ReleaseStatus,
    }

    /// Where a reservation is after `releaseReservation`.
    #[derive(Debug, Serialize, TS)]
    #[serde(untagged)]
    pub(crate) enum ReleaseStatus {
        /// Its status when it ended (now or before).
        Ended(ReservationStatus),
        /// `not_found` (no such reservation) or `held` (not due: never here for the owner).
        Other(#[ts(type = "\"not_found\" | \"held\"")] &'static str),
    }

    /// `initiatePayment` (also saved in the ledger and replayed as saved).
    #[derive(Debug, Serialize, TS)]
    #[serde(rename_all = "camelCase")]
    #[ts(rename = "InitiatePaymentResult")]
    pub(crate) struct Initiated {
        pub(crate) amount_minor: i64,
        pub(crate) client_secret: Option<String>,
        pub(crate) currency: String,
        pub(crate) order_id: String,
        pub(crate) payment_id: String,
        pub(crate) provider: PaymentProvider,
        pub(crate) provider_payment_id: String,
        pub(crate) redirect_url: Option<String>,
        /// False when this request ran; true when the answer is the saved result of an earlier
        /// request with the same key (set by `idempotency::once`; the `Idempotent-Replayed`
        /// header says the same to HTTP callers).
        pub(crate) replayed: bool,
        #[ts(type = "\"pending\"")]
        pub(crate) status: &'static str,
    }

    /// `getOrder`.
    #[derive(Debug, Serialize, TS)]
    #[serde(rename_all = "camelCase")]
    #[ts(rename = "GetOrderResult")]
    pub(crate) struct OrderView {
        pub(crate) amount_minor: i64,
        pub(crate) currency: String,
        pub(crate) items: Vec<ItemView>,
        pub(crate) order_id: String,
        pub(crate) payments: Vec<PaymentView>,
        pub(crate) refund_requested: bool,
        pub(crate) status: OrderStatus,
    }

    /// One line of an order.
    #[derive(Debug, Serialize, TS)]
    #[serde(rename_all = "camelCase")]
    #[ts(rename = "OrderItemView")]
    pub(crate) struct ItemView {
        pub(crate) product_id: String,
        pub(crate) quantity: i64,
        pub(crate) reservation_id: String,
        pub(crate) unit_price_minor: i64,
        pub(crate) variant_id: Option<String>,
    }

    /// One payment of an order.
    #[derive(Debug, Serialize, TS)]
    #[serde(rename_all = "camelCase")]
    #[ts(rename = "OrderPaymentView")]
    pub(crate) struct PaymentView {
        pub(crate) payment_id: String,
        pub(crate) provider: PaymentProvider,
    }

    /// `reserveInventory` refused with `FAILED_PRECONDITION`, sold out: `details`.
    #[derive(Debug, Serialize, TS)]
    pub(crate) struct SoldOutDetails {
        /// Units left (fewer than asked).
        pub(crate) available: i64,
    }

    /// `reserveInventory` refused with `FAILED_PRECONDITION`, over the held-units cap: `details`.
    #[derive(Debug, Serialize, TS)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct HoldCapDetails {
        /// Units the caller holds now.
        pub(crate) held_units: i64,
        /// The most one user may hold at once.
        pub(crate) max_held_units: i64,
    }
}

pub(crate) use answers::{
    HoldCapDetails, Initiated, ItemView, OrderView, PaymentView, ReleaseStatus, Released, Reserved,
    SoldOutDetails,
};

/// `reserveInventory` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "ReserveInventoryRequest")]
pub(crate) struct ReserveRequest {
    product_id: String,
    #[serde(default)]
    #[ts(optional)]
    variant_id: Option<String>,
    /// 1 to 10.
    quantity: i64,
}

pub(crate) async fn reserve_inventory(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<ReserveRequest>,
) -> Result<CallableResult<Reserved>, Error> {
    let sku = Sku { product_id: request.product_id, variant_id: request.variant_id };
    domain::inventory::validate_request(&sku, request.quantity)
        .map_err(|e| Error::reject(Code::InvalidArgument, e.to_string()))?;
    limits::check(&state, &who.uid, "reserveInventory").await?;
    let id = format!("res_{}", uuid_like());
    let outcome = state
        .payments
        .inventory
        .reserve(&who.uid, &sku, request.quantity, &id, Utc::now())
        .await
        .map_err(store_error)?;
    if matches!(outcome, ReserveOutcome::SoldOut { available: 0 }) {
        // The moment a listing's availability summary may have become false; the answer to
        // the buyer does not wait on it.
        let catalogue = state.catalogue.catalogue.clone();
        let product_id = sku.product_id.clone();
        tokio::spawn(async move {
            if let Err(error) = catalogue.refresh_in_stock(&product_id).await {
                tracing::warn!(%error, product_id, "refreshing the availability summary failed");
            }
        });
    }
    match outcome {
        ReserveOutcome::Reserved { reservation, .. } => Ok(CallableResult(Reserved {
            expires_at: reservation.expires().to_rfc3339_opts(SecondsFormat::Millis, true),
            reservation_id: reservation.id,
            product_id: reservation.product_id,
            variant_id: reservation.variant_id,
            quantity: reservation.quantity,
        })),
        ReserveOutcome::SoldOut { available } => Err(Error::reject(
            Code::FailedPrecondition,
            format!("Not enough stock: {available} left."),
        )
        .with_details(json!(SoldOutDetails { available }))),
        ReserveOutcome::UnknownSku => Err(Error::reject(Code::NotFound, "No such product.")),
        ReserveOutcome::OverHoldCap { held, max } => Err(Error::reject(
            Code::FailedPrecondition,
            format!(
                "You already hold {held} units; at most {max} can be held at once. \
                 Pay for or release a reservation first."
            ),
        )
        .with_details(json!(HoldCapDetails { held_units: held, max_held_units: max }))),
    }
}

/// `releaseReservation` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "ReleaseReservationRequest")]
pub(crate) struct ReleaseRequest {
    reservation_id: String,
}

pub(crate) async fn release_reservation(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<ReleaseRequest>,
) -> Result<CallableResult<Released>, Error> {
    limits::check(&state, &who.uid, "releaseReservation").await?;
    let outcome = state
        .payments
        .inventory
        .release(&request.reservation_id, &who.uid, Utc::now())
        .await
        .map_err(store_error)?;
    let (released, status) = match outcome {
        EndOutcome::Returned(r) => (true, ReleaseStatus::Ended(r.status)),
        EndOutcome::AlreadyEnded(status) => (false, ReleaseStatus::Ended(status)),
        EndOutcome::NotFound => (false, ReleaseStatus::Other("not_found")),
        EndOutcome::NotOwner => {
            return Err(Error::reject(Code::PermissionDenied, "Not your reservation."));
        }
        EndOutcome::NotDue => (false, ReleaseStatus::Other("held")),
    };
    Ok(CallableResult(Released { released, status }))
}

/// `initiatePayment` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "InitiatePaymentRequest")]
pub(crate) struct InitiateRequest {
    /// 1 to 20 of the caller's held reservations, each listed once.
    reservation_ids: Vec<String>,
    provider: PaymentProvider,
    /// The idempotency key of SDK callers. `idempotency::key` takes it out of `data` before
    /// this type is parsed, so it is always `None` here; it is declared for the client types.
    #[serde(default)]
    #[allow(dead_code)]
    #[ts(optional)]
    idempotency_key: Option<String>,
}

pub(crate) async fn initiate_payment(
    State(state): State<AppState>,
    who: SignedIn,
    headers: HeaderMap,
    Callable(mut data): Callable<Value>,
) -> Result<Response, Error> {
    // The key (header or `data.idempotencyKey`) is checked first and taken out of `data`: the
    // fingerprint covers the payment asked for, not which carrier brought the key.
    let key = idempotency::key(&headers, &mut data)?;
    let request: InitiateRequest = serde_json::from_value(data.clone())
        .map_err(|_| Error::reject(Code::InvalidArgument, "invalid request data"))?;
    domain::payments::check_initiate(&request.reservation_ids)
        .map_err(|refused| Error::reject(Code::InvalidArgument, refused.to_string()))?;
    let (state, who, key, request) = (&state, &who, &key, &request);
    // The rate limit is counted only once the key is claimed fresh: a replay of a completed
    // key (a client retrying after a lost answer), a retry while the first still runs and a
    // reused key are answered from the ledger without costing a slot. Over the limit, the
    // closure fails, so `once` releases the key and a later retry of it runs.
    idempotency::once(state, "initiatePayment", &who.uid, key, &data, || async move {
        limits::check(state, &who.uid, "initiatePayment").await?;
        initiate(state, who, key, request).await
    })
    .await
}

async fn initiate(
    state: &AppState,
    who: &SignedIn,
    key: &str,
    request: &InitiateRequest,
) -> Result<Initiated, Error> {
    let p = &state.payments;
    // Deterministic ids: a re-run of the same key finds what the first run created.
    let OrderIds { order_id, payment_id } = domain::payments::order_ids(&who.uid, key);
    // The order and its payment attempt in one transaction (three round trips).
    let (order, payment) = match p
        .payments
        .open_order(
            &who.uid,
            &order_id,
            &payment_id,
            &request.reservation_ids,
            request.provider,
            Utc::now(),
        )
        .await
        .map_err(store_error)?
    {
        Ok(opened) => opened,
        Err(refused) => return Err(refusal(refused)),
    };
    let new_payment = NewPayment {
        order_id: order.id.clone(),
        payment_id: payment.id.clone(),
        amount_minor: order.amount_minor,
        currency: order.currency.clone(),
        description: format!("Order {}", order.id),
        email: who.user.email.clone(),
        idempotency_key: payment.id.clone(),
    };
    let created = match request.provider {
        PaymentProvider::Stripe => {
            let Some(stripe) = &p.stripe else { return Err(unavailable_provider("Stripe")) };
            stripe.create_payment_intent(&new_payment).await
        }
        PaymentProvider::Pesapal => {
            let Some(pesapal) = &p.pesapal else { return Err(unavailable_provider("Pesapal")) };
            pesapal.submit_order(&new_payment).await
        }
    }
    .map_err(provider_error)?;
    p.payments
        .record_provider_payment(
            &order.id,
            &payment.id,
            &created.provider_payment_id,
            created.redirect_url.as_deref(),
            Utc::now(),
        )
        .await
        .map_err(store_error)?;
    Ok(Initiated {
        order_id: order.id,
        payment_id: payment.id,
        provider: request.provider,
        provider_payment_id: created.provider_payment_id,
        client_secret: created.client_secret,
        redirect_url: created.redirect_url,
        amount_minor: order.amount_minor,
        currency: order.currency,
        replayed: false,
        status: "pending",
    })
}

fn refusal(refused: OrderRefused) -> Error {
    let (code, message) = match refused {
        OrderRefused::Empty => (Code::InvalidArgument, "No reservations given.".to_owned()),
        OrderRefused::UnknownReservation(id) => (Code::NotFound, format!("No reservation {id}.")),
        OrderRefused::NotHeld(id) => (
            Code::FailedPrecondition,
            format!("Reservation {id} is no longer held; reserve again."),
        ),
        OrderRefused::NoPrice(id) => {
            (Code::FailedPrecondition, format!("Product {id} has no price."))
        }
        OrderRefused::MixedCurrencies => (
            Code::InvalidArgument,
            "Products in different currencies cannot be paid together.".to_owned(),
        ),
        OrderRefused::Conflict => {
            (Code::FailedPrecondition, "This order already exists.".to_owned())
        }
        OrderRefused::DuplicateReservation(id) => {
            (Code::InvalidArgument, format!("Reservation {id} is listed more than once."))
        }
        OrderRefused::NotPayable => {
            (Code::FailedPrecondition, "This order cannot take a payment now.".to_owned())
        }
    };
    Error::reject(code, message)
}

fn unavailable_provider(name: &str) -> Error {
    Error::reject(Code::FailedPrecondition, format!("{name} payments are not available."))
}

/// `getOrder` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GetOrderRequest {
    order_id: String,
}

pub(crate) async fn get_order(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<GetOrderRequest>,
) -> Result<CallableResult<OrderView>, Error> {
    limits::check(&state, &who.uid, "getOrder").await?;
    let order = state.payments.payments.order(&request.order_id).await.map_err(store_error)?;
    let Some(order) = order.filter(|o| domain::payments::may_view(&o.uid, &who.uid)) else {
        return Err(Error::reject(Code::NotFound, "No such order."));
    };
    Ok(CallableResult(view(&order)))
}

fn view(order: &Order) -> OrderView {
    OrderView {
        order_id: order.id.clone(),
        status: order.status,
        amount_minor: order.amount_minor,
        currency: order.currency.clone(),
        items: order
            .items
            .iter()
            .map(|i| ItemView {
                product_id: i.product_id.clone(),
                variant_id: i.variant_id.clone(),
                quantity: i.quantity,
                unit_price_minor: i.unit_price_minor,
                reservation_id: i.reservation_id.clone(),
            })
            .collect(),
        payments: order
            .payments
            .iter()
            .map(|p| PaymentView { payment_id: p.payment_id.clone(), provider: p.provider })
            .collect(),
        refund_requested: order.refund_requested,
    }
}

/// 128 random bits in hex: reservation ids.
fn uuid_like() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed answers write the same bytes as the JSON maps they replaced.
    #[test]
    fn answers_keep_their_wire_bytes() {
        let reserved = Reserved {
            expires_at: "2026-01-01T00:00:00.000Z".to_owned(),
            product_id: "p1".to_owned(),
            quantity: 2,
            reservation_id: "res_1".to_owned(),
            variant_id: None,
        };
        let before = json!({
            "reservationId": "res_1",
            "productId": "p1",
            "variantId": null,
            "quantity": 2,
            "expiresAt": "2026-01-01T00:00:00.000Z",
        });
        assert_eq!(serde_json::to_string(&reserved).unwrap(), before.to_string());

        let initiated = Initiated {
            amount_minor: 500,
            client_secret: Some("cs".to_owned()),
            currency: "KES".to_owned(),
            order_id: "ord_1".to_owned(),
            payment_id: "pay_1".to_owned(),
            provider: PaymentProvider::Pesapal,
            provider_payment_id: "trk".to_owned(),
            redirect_url: None,
            replayed: false,
            status: "pending",
        };
        let before = json!({
            "orderId": "ord_1",
            "paymentId": "pay_1",
            "provider": PaymentProvider::Pesapal,
            "providerPaymentId": "trk",
            "clientSecret": "cs",
            "redirectUrl": null,
            "replayed": false,
            "amountMinor": 500,
            "currency": "KES",
            "status": "pending",
        });
        assert_eq!(serde_json::to_string(&initiated).unwrap(), before.to_string());

        let order = OrderView {
            amount_minor: 500,
            currency: "KES".to_owned(),
            items: vec![ItemView {
                product_id: "p1".to_owned(),
                quantity: 1,
                reservation_id: "res_1".to_owned(),
                unit_price_minor: 500,
                variant_id: Some("v".to_owned()),
            }],
            order_id: "ord_1".to_owned(),
            payments: vec![PaymentView {
                payment_id: "pay_1".to_owned(),
                provider: PaymentProvider::Stripe,
            }],
            refund_requested: false,
            status: domain::payments::OrderStatus::Paid,
        };
        let before = json!({
            "orderId": "ord_1",
            "status": domain::payments::OrderStatus::Paid,
            "amountMinor": 500,
            "currency": "KES",
            "items": [{
                "productId": "p1",
                "variantId": "v",
                "quantity": 1,
                "unitPriceMinor": 500,
                "reservationId": "res_1",
            }],
            "payments": [{"paymentId": "pay_1", "provider": PaymentProvider::Stripe}],
            "refundRequested": false,
        });
        assert_eq!(serde_json::to_string(&order).unwrap(), before.to_string());
        let released = Released {
            released: true,
            status: ReleaseStatus::Ended(domain::inventory::ReservationStatus::Released),
        };
        assert_eq!(
            serde_json::to_string(&released).unwrap(),
            json!({ "released": true, "status": "released" }).to_string()
        );
    }
}
