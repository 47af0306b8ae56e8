//! The provider API clients: Stripe PaymentIntents and Pesapal API 3.0, each over its own
//! [`ProviderHttp`] (timeouts, retries, circuit breaker). Base URLs come from configuration so
//! the local fake provider (testkit) stands in for both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::http::{CallPolicy, ProviderError, ProviderHttp};
use crate::pesapal::{
    BillingAddress, SubmitOrderRequest, SubmitOrderResponse, TokenRequest, TokenResponse,
    TransactionStatus, major_units,
};

/// What a new payment needs, whichever the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// Our order id (Stripe metadata `order_id`; Pesapal merchant reference).
    pub order_id: String,
    /// Our payment id.
    pub payment_id: String,
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// Shown to the buyer.
    pub description: String,
    /// The buyer's email, if known (Pesapal wants one).
    pub email: Option<String>,
    /// Sent as Stripe's `Idempotency-Key`, so a retried create never makes two intents.
    pub idempotency_key: String,
}

/// What the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedPayment {
    /// The provider's payment id (PaymentIntent id / order tracking id).
    pub provider_payment_id: String,
    /// Stripe: the PaymentIntent's `client_secret` for the client SDK.
    pub client_secret: Option<String>,
    /// Pesapal: where to send the buyer.
    pub redirect_url: Option<String>,
}

/// Stripe's PaymentIntents API.
#[derive(Debug, Clone)]
pub struct StripeClient {
    http: ProviderHttp,
    base_url: String,
    secret_key: SecretString,
}

#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    client_secret: Option<String>,
}

impl StripeClient {
    /// A client for `base_url` (`https://api.stripe.com` in production).
    pub fn new(
        base_url: &str,
        secret_key: SecretString,
        policy: CallPolicy,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            http: ProviderHttp::new("stripe", policy)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret_key,
        })
    }

    /// The HTTP layer (breaker state for health and tests).
    pub fn http(&self) -> &ProviderHttp {
        &self.http
    }

    /// `POST /v1/payment_intents` with the order in `metadata`.
    pub async fn create_payment_intent(
        &self,
        payment: &NewPayment,
    ) -> Result<CreatedPayment, ProviderError> {
        let url = format!("{}/v1/payment_intents", self.base_url);
        let form = [
            ("amount", payment.amount_minor.to_string()),
            ("currency", payment.currency.clone()),
            ("description", payment.description.clone()),
            ("metadata[order_id]", payment.order_id.clone()),
            ("metadata[payment_id]", payment.payment_id.clone()),
            ("automatic_payment_methods[enabled]", "true".to_owned()),
        ];
        let body = self
            .http
            .send(|client| {
                client
                    .post(&url)
                    .bearer_auth(self.secret_key.expose_secret())
                    .header("Idempotency-Key", &payment.idempotency_key)
                    .form(&form)
            })
            .await?;
        let intent: PaymentIntent = body.json("stripe")?;
        Ok(CreatedPayment {
            provider_payment_id: intent.id,
            client_secret: intent.client_secret,
            redirect_url: None,
        })
    }
}

/// A refund to make through the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    /// Our order id (Stripe metadata `order_id`).
    pub order_id: String,
    /// Our refund id (Stripe metadata `refund_id` and the `Idempotency-Key`, so a redelivered
    /// request never refunds twice).
    pub refund_id: String,
    /// The provider's payment id (Stripe PaymentIntent).
    pub provider_payment_id: String,
    /// Minor units.
    pub amount_minor: i64,
}

/// What the provider answered to a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedRefund {
    /// The provider's refund id.
    pub provider_refund_id: String,
    /// Stripe's `status`: `pending`, `succeeded`, `requires_action`, `failed`, `canceled`.
    /// The money is confirmed by the provider's webhook either way.
    pub status: String,
}

impl CreatedRefund {
    /// The provider accepted the request (the refund is under way or done).
    pub fn accepted(&self) -> bool {
        !matches!(self.status.as_str(), "failed" | "canceled")
    }
}

#[derive(Debug, Deserialize)]
struct StripeRefund {
    id: String,
    status: String,
}

impl StripeClient {
    /// `POST /v1/refunds` for `amount` of the PaymentIntent, with our ids in `metadata` and
    /// our refund id as `Idempotency-Key`. A refusal (Stripe's 4xx error object, e.g.
    /// `charge_already_refunded`, an amount over what is left) is [`ProviderError::Rejected`]
    /// with Stripe's message.
    pub async fn create_refund(&self, refund: &NewRefund) -> Result<CreatedRefund, ProviderError> {
        let url = format!("{}/v1/refunds", self.base_url);
        let form = [
            ("payment_intent", refund.provider_payment_id.clone()),
            ("amount", refund.amount_minor.to_string()),
            ("metadata[order_id]", refund.order_id.clone()),
            ("metadata[refund_id]", refund.refund_id.clone()),
        ];
        let body = self
            .http
            .send(|client| {
                client
                    .post(&url)
                    .bearer_auth(self.secret_key.expose_secret())
                    .header("Idempotency-Key", &refund.refund_id)
                    .form(&form)
            })
            .await?;
        let created: StripeRefund = body.json("stripe")?;
        Ok(CreatedRefund { provider_refund_id: created.id, status: created.status })
    }
}

/// Pesapal API 3.0 settings.
#[derive(Debug, Clone)]
pub struct PesapalSettings {
    /// `https://pay.pesapal.com/v3` in production.
    pub base_url: String,
    /// Merchant key.
    pub consumer_key: String,
    /// Merchant secret.
    pub consumer_secret: SecretString,
    /// The registered IPN id (`notification_id`).
    pub ipn_id: String,
    /// Where the buyer returns after paying.
    pub callback_url: String,
}

/// Pesapal API 3.0: token, SubmitOrderRequest, GetTransactionStatus.
#[derive(Debug, Clone)]
pub struct PesapalClient {
    http: ProviderHttp,
    settings: Arc<PesapalSettings>,
    token: Arc<Mutex<Option<(String, Instant)>>>,
}

/// Pesapal tokens live 5 minutes; renew a little early.
const TOKEN_LIFETIME: Duration = Duration::from_secs(240);

impl PesapalClient {
    /// A client with `settings`.
    pub fn new(settings: PesapalSettings, policy: CallPolicy) -> Result<Self, ProviderError> {
        let mut settings = settings;
        settings.base_url = settings.base_url.trim_end_matches('/').to_owned();
        Ok(Self {
            http: ProviderHttp::new("pesapal", policy)?,
            settings: Arc::new(settings),
            token: Arc::default(),
        })
    }

    /// The HTTP layer.
    pub fn http(&self) -> &ProviderHttp {
        &self.http
    }

    async fn token(&self) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some((token, at)) = cached.as_ref()
            && at.elapsed() < TOKEN_LIFETIME
        {
            return Ok(token.clone());
        }
        let url = format!("{}/api/Auth/RequestToken", self.settings.base_url);
        let request = TokenRequest {
            consumer_key: self.settings.consumer_key.clone(),
            consumer_secret: self.settings.consumer_secret.expose_secret().to_owned(),
        };
        let body = self.http.send(|client| client.post(&url).json(&request)).await?;
        let answer: TokenResponse = body.json("pesapal")?;
        let token =
            answer.token.filter(|t| !t.is_empty()).ok_or_else(|| ProviderError::Invalid {
                provider: "pesapal",
                message: "no token in RequestToken answer".to_owned(),
            })?;
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    /// `POST /api/Transactions/SubmitOrderRequest`.
    pub async fn submit_order(
        &self,
        payment: &NewPayment,
    ) -> Result<CreatedPayment, ProviderError> {
        let token = self.token().await?;
        let url = format!("{}/api/Transactions/SubmitOrderRequest", self.settings.base_url);
        let request = SubmitOrderRequest {
            id: payment.order_id.clone(),
            currency: payment.currency.to_uppercase(),
            amount: major_units(payment.amount_minor),
            description: payment.description.chars().take(100).collect(),
            callback_url: self.settings.callback_url.clone(),
            notification_id: self.settings.ipn_id.clone(),
            billing_address: BillingAddress { email_address: payment.email.clone() },
        };
        let body =
            self.http.send(|client| client.post(&url).bearer_auth(&token).json(&request)).await?;
        let answer: SubmitOrderResponse = body.json("pesapal")?;
        let tracking = answer.order_tracking_id.filter(|t| !t.is_empty()).ok_or_else(|| {
            ProviderError::Invalid {
                provider: "pesapal",
                message: "no order_tracking_id in SubmitOrderRequest answer".to_owned(),
            }
        })?;
        Ok(CreatedPayment {
            provider_payment_id: tracking,
            client_secret: None,
            redirect_url: answer.redirect_url,
        })
    }

    /// `GET /api/Transactions/GetTransactionStatus?orderTrackingId=`.
    pub async fn transaction_status(
        &self,
        order_tracking_id: &str,
    ) -> Result<TransactionStatus, ProviderError> {
        let token = self.token().await?;
        let url = format!("{}/api/Transactions/GetTransactionStatus", self.settings.base_url);
        let body = self
            .http
            .send(|client| {
                client
                    .get(&url)
                    .bearer_auth(&token)
                    .query(&[("orderTrackingId", order_tracking_id)])
            })
            .await?;
        body.json("pesapal")
    }
}
