//! Pesapal API 3.0 wire shapes: IPN notifications (unsigned hints), their acknowledgement,
//! and the bodies of `Auth/RequestToken`, `Transactions/SubmitOrderRequest` and
//! `Transactions/GetTransactionStatus`.
//!
//! An IPN carries `OrderTrackingId`, `OrderMerchantReference` (our order id) and
//! `OrderNotificationType` (`IPNCHANGE`), as a GET query or a POST JSON body depending on how
//! the IPN URL was registered. Pesapal expects the answer
//! `{"orderNotificationType", "orderTrackingId", "orderMerchantReference", "status": 200}`
//! (`500` when the notification could not be taken), and retries otherwise.

use chrono::{DateTime, Utc};
use domain::messages::{PaymentEvent, PaymentEventKind, PaymentProvider, Version};
use serde::{Deserialize, Serialize};

use crate::stripe::valid_id;

/// The notification types Pesapal sends.
pub const NOTIFICATION_TYPES: [&str; 2] = ["IPNCHANGE", "RECURRING"];

/// An IPN, as Pesapal sends it (query string or JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Ipn {
    /// Pesapal's id of the payment.
    #[serde(rename = "OrderTrackingId")]
    pub order_tracking_id: String,
    /// Our order id.
    #[serde(rename = "OrderMerchantReference")]
    pub order_merchant_reference: String,
    /// `IPNCHANGE` (or `RECURRING`).
    #[serde(rename = "OrderNotificationType")]
    pub order_notification_type: String,
}

/// Why an IPN is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpnError {
    /// An id is empty, too long or has characters ids never have.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// An unknown notification type.
    #[error("unknown notification type")]
    UnknownType,
}

impl Ipn {
    /// Checks the fields.
    pub fn validate(&self) -> Result<(), IpnError> {
        if !valid_id(&self.order_tracking_id) {
            return Err(IpnError::Malformed("OrderTrackingId"));
        }
        if !valid_id(&self.order_merchant_reference) {
            return Err(IpnError::Malformed("OrderMerchantReference"));
        }
        if !NOTIFICATION_TYPES.contains(&self.order_notification_type.as_str()) {
            return Err(IpnError::UnknownType);
        }
        Ok(())
    }

    /// The hint to forward. IPNs have no id of their own and Pesapal sends one per status
    /// change, all alike: the event id is tracking id + merchant reference + type + the minute
    /// it was received, so retries of one notification collapse while a later change still goes
    /// through (the processor asks Pesapal for the status anyway). The merchant reference is in
    /// the id so that a forged hint naming another order never shares (and so never spoils) the
    /// id of the genuine one.
    pub fn to_event(&self, received_at: DateTime<Utc>) -> PaymentEvent {
        let minute = received_at.timestamp().div_euclid(60);
        PaymentEvent {
            v: Version,
            provider: PaymentProvider::Pesapal,
            provider_event_id: format!(
                "{}:{}:{}:{minute}",
                self.order_tracking_id, self.order_merchant_reference, self.order_notification_type
            ),
            kind: PaymentEventKind::StatusChanged,
            provider_type: self.order_notification_type.clone(),
            order_id: self.order_merchant_reference.clone(),
            payment_id: self.order_tracking_id.clone(),
            amount_minor: None,
            currency: None,
            raw_status: None,
            amount_refunded_minor: None,
            occurred_at: received_at,
        }
    }

    /// Pesapal's expected acknowledgement: `status` 200 when taken, 500 when not.
    pub fn ack(&self, taken: bool) -> serde_json::Value {
        serde_json::json!({
            "orderNotificationType": self.order_notification_type,
            "orderTrackingId": self.order_tracking_id,
            "orderMerchantReference": self.order_merchant_reference,
            "status": if taken { 200 } else { 500 },
        })
    }
}

/// `POST /api/Auth/RequestToken` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Merchant key.
    pub consumer_key: String,
    /// Merchant secret.
    pub consumer_secret: String,
}

/// `POST /api/Auth/RequestToken` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// Bearer token (valid 5 minutes).
    pub token: Option<String>,
    /// When it expires.
    #[serde(default)]
    pub expiry_date: Option<String>,
    /// `"200"` on success.
    #[serde(default)]
    pub status: Option<String>,
}

/// `POST /api/Transactions/SubmitOrderRequest` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitOrderRequest {
    /// Our order id (merchant reference).
    pub id: String,
    /// ISO currency, upper case.
    pub currency: String,
    /// Major units, two decimals.
    pub amount: f64,
    /// Shown to the buyer.
    pub description: String,
    /// Where the buyer returns.
    pub callback_url: String,
    /// The registered IPN id.
    pub notification_id: String,
    /// At least an email or a phone.
    pub billing_address: BillingAddress,
}

/// The buyer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BillingAddress {
    /// Email.
    pub email_address: Option<String>,
}

/// `SubmitOrderRequest` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitOrderResponse {
    /// Pesapal's payment id.
    pub order_tracking_id: Option<String>,
    /// Echo of our id.
    #[serde(default)]
    pub merchant_reference: Option<String>,
    /// Where to send the buyer.
    pub redirect_url: Option<String>,
    /// `"200"` on success.
    #[serde(default)]
    pub status: Option<String>,
}

/// `GET /api/Transactions/GetTransactionStatus?orderTrackingId=` answer (fields we read).
///
/// Pesapal answers errors inside HTTP 200: the body's `status` is `"500"` and `error.code` says
/// what went wrong (`order_not_found` for a tracking id it does not know). Before the buyer pays,
/// the answer is `status_code` 0 (`INVALID` or `Pending Payment`), sometimes with
/// `error.code` `payment_details_not_found`: that is pending, not an error. Description casing
/// varies, so only the numeric `status_code` decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionStatus {
    /// 0 invalid (pending), 1 completed, 2 failed, 3 reversed.
    #[serde(default)]
    pub status_code: Option<i32>,
    /// `Completed`, `Failed`, ...
    #[serde(default)]
    pub payment_status_description: Option<String>,
    /// Major units.
    #[serde(default)]
    pub amount: Option<f64>,
    /// ISO currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// Our order id.
    #[serde(default)]
    pub merchant_reference: Option<String>,
    /// Pesapal's confirmation code.
    #[serde(default)]
    pub confirmation_code: Option<String>,
    /// `"200"` when the request was processed, `"500"` when not (read `error`).
    #[serde(default)]
    pub status: Option<String>,
    /// The error inside a 200 answer (every field null when there is none).
    #[serde(default)]
    pub error: Option<PesapalApiError>,
}

/// `error` of a Pesapal answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PesapalApiError {
    /// `api_error`, ...
    #[serde(default)]
    pub error_type: Option<String>,
    /// `order_not_found`, `payment_details_not_found`, ...
    #[serde(default)]
    pub code: Option<String>,
    /// Free text.
    #[serde(default)]
    pub message: Option<String>,
}

/// What a status answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusOutcome {
    /// Final: completed, failed or reversed.
    Final(PaymentEventKind),
    /// Not paid yet (the buyer may still pay): look again later.
    Pending,
    /// Pesapal refused or does not know the tracking id: nothing to apply, and not pending.
    Error {
        /// Pesapal's `error.code` (or a description of what was wrong).
        code: String,
        /// Pesapal's message, if any.
        message: String,
    },
}

impl TransactionStatus {
    /// What the answer means (see the type's docs).
    pub fn outcome(&self) -> StatusOutcome {
        let error_code = self.error.as_ref().and_then(|e| e.code.clone()).filter(|c| !c.is_empty());
        let message = self.error.as_ref().and_then(|e| e.message.clone()).unwrap_or_default();
        if error_code.as_deref() == Some("payment_details_not_found") {
            return StatusOutcome::Pending;
        }
        if let Some(code) = error_code {
            return StatusOutcome::Error { code, message };
        }
        if let Some(status) = self.status.as_deref().filter(|s| *s != "200") {
            return StatusOutcome::Error { code: format!("status {status}"), message };
        }
        match self.status_code {
            Some(0) => StatusOutcome::Pending,
            Some(1) => StatusOutcome::Final(PaymentEventKind::Succeeded),
            Some(2) => StatusOutcome::Final(PaymentEventKind::Failed),
            Some(3) => StatusOutcome::Final(PaymentEventKind::Refunded),
            Some(other) => {
                StatusOutcome::Error { code: format!("unknown status_code {other}"), message }
            }
            None => StatusOutcome::Error { code: "no status_code".to_owned(), message },
        }
    }

    /// The amount Pesapal reports, in minor units.
    pub fn amount_minor(&self) -> Option<i64> {
        self.amount.map(minor_units)
    }
}

/// Minor units to Pesapal's decimal amount (two-decimal currencies).
pub fn major_units(amount_minor: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let major = amount_minor as f64 / 100.0;
    major
}

/// Pesapal's decimal amount to minor units.
pub fn minor_units(amount: f64) -> i64 {
    #[allow(clippy::cast_possible_truncation)]
    let minor = (amount * 100.0).round() as i64;
    minor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipn() -> Ipn {
        Ipn {
            order_tracking_id: "b945e4af-80a5-4ec1-8706-e03f8332fb04".to_owned(),
            order_merchant_reference: "ord_7".to_owned(),
            order_notification_type: "IPNCHANGE".to_owned(),
        }
    }

    #[test]
    fn ipns_are_validated_and_acknowledged_in_pesapal_shape() {
        assert!(ipn().validate().is_ok());
        let bad = Ipn { order_merchant_reference: "a/b".to_owned(), ..ipn() };
        assert_eq!(bad.validate(), Err(IpnError::Malformed("OrderMerchantReference")));
        let unknown = Ipn { order_notification_type: "HELLO".to_owned(), ..ipn() };
        assert_eq!(unknown.validate(), Err(IpnError::UnknownType));
        let ack = ipn().ack(true);
        assert_eq!(ack["status"], 200);
        assert_eq!(ack["orderTrackingId"], "b945e4af-80a5-4ec1-8706-e03f8332fb04");
        assert_eq!(ack["orderMerchantReference"], "ord_7");
        assert_eq!(ack["orderNotificationType"], "IPNCHANGE");
        assert_eq!(ipn().ack(false)["status"], 500);
    }

    #[test]
    fn retries_within_a_minute_share_an_event_id() {
        let t = DateTime::from_timestamp(1_750_000_020, 0).unwrap();
        let a = ipn().to_event(t);
        let b = ipn().to_event(t + chrono::TimeDelta::seconds(30));
        let c = ipn().to_event(t + chrono::TimeDelta::seconds(60));
        assert_eq!(a.provider_event_id, b.provider_event_id);
        assert_ne!(a.provider_event_id, c.provider_event_id);
        let other_order = Ipn { order_merchant_reference: "ord_8".to_owned(), ..ipn() };
        assert_ne!(a.provider_event_id, other_order.to_event(t).provider_event_id);
        assert_eq!(a.kind, PaymentEventKind::StatusChanged);
        assert_eq!(a.order_id, "ord_7");
    }

    #[test]
    fn statuses_and_amounts() {
        let read = |body: serde_json::Value| {
            serde_json::from_value::<TransactionStatus>(body).unwrap().outcome()
        };
        let ok = |code: i32| {
            serde_json::json!({"status_code": code, "status": "200", "amount": 25.0,
                "currency": "KES", "merchant_reference": "ord_7",
                "error": {"error_type": null, "code": null, "message": null}})
        };
        assert_eq!(read(ok(1)), StatusOutcome::Final(PaymentEventKind::Succeeded));
        assert_eq!(read(ok(2)), StatusOutcome::Final(PaymentEventKind::Failed));
        assert_eq!(read(ok(3)), StatusOutcome::Final(PaymentEventKind::Refunded));
        assert_eq!(read(ok(0)), StatusOutcome::Pending);
        assert!(matches!(read(ok(7)), StatusOutcome::Error { .. }));
        // Errors inside a 200 answer are errors, not pending payments.
        let not_found = serde_json::json!({"status_code": 0, "payment_status_description": "INVALID",
            "status": "500", "error": {"code": "order_not_found"}});
        assert_eq!(
            read(not_found),
            StatusOutcome::Error { code: "order_not_found".to_owned(), message: String::new() }
        );
        let refused = serde_json::json!({"status": "500", "error": {"message": "denied"}});
        assert!(matches!(read(refused), StatusOutcome::Error { .. }));
        // Before the buyer pays.
        let unpaid = serde_json::json!({"status_code": 0, "payment_status_description": "Pending Payment",
            "status": "500", "error": {"code": "payment_details_not_found"}});
        assert_eq!(read(unpaid), StatusOutcome::Pending);
        let parsed: TransactionStatus = serde_json::from_value(ok(1)).unwrap();
        assert_eq!(parsed.amount_minor(), Some(2500));
        assert_eq!(minor_units(major_units(125_099)), 125_099);
    }
}
