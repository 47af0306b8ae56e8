//! A local stand-in for the payment providers, speaking their real HTTP contracts, for tests
//! and the local stack:
//!
//! - Stripe: `POST /v1/payment_intents` (form-encoded, `Authorization: Bearer sk_...`,
//!   `Idempotency-Key` honoured as Stripe does: same key and parameters -> the same intent;
//!   same key, other parameters -> 400 `idempotency_error`), `GET /v1/payment_intents/{id}`,
//!   `POST /v1/payment_intents/{id}/confirm` (a test card: the intent succeeds),
//!   `POST /v1/refunds` (`payment_intent`, `amount`, `metadata[..]`; the same `Idempotency-Key`
//!   rules; Stripe's error objects: 404 `resource_missing` for an unknown intent, 400
//!   `charge_not_refundable` for an intent without a successful charge, 400
//!   `charge_already_refunded`, 400 `amount_too_large` over the unrefunded amount), the
//!   `charge.refunded` event of an intent's refunds ([`FakeProvider::charge_refunded_event`]),
//!   and correctly signed webhooks
//!   (`Stripe-Signature: t=..,v1=HMAC-SHA256(secret, "{t}.{body}")`).
//! - Pesapal API 3.0: `POST /api/Auth/RequestToken`, `POST /api/Transactions/SubmitOrderRequest`,
//!   `GET /api/Transactions/GetTransactionStatus?orderTrackingId=`, and IPNs
//!   (`GET ipn_url?OrderTrackingId=..&OrderMerchantReference=..&OrderNotificationType=IPNCHANGE`).
//!
//! [`FakeProvider::start`] serves it on a random loopback port for a test;
//! [`FakeProvider::serve`] on a given listener until a shutdown signal (the local stack). A
//! client in another process builds webhooks with the free functions [`stripe_event_for`],
//! [`stripe_signature`] and [`post_stripe_webhook`] from an intent it retrieved over HTTP.
//!
//! Failure injection: [`FakeProvider::fail_next`] makes the next API calls answer the given
//! HTTP statuses (5xx to exercise retries and the circuit breaker, 4xx to check that they are
//! not retried).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::Sha256;

/// The fake provider, served on a loopback port for the rest of the test.
#[derive(Debug, Clone)]
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT`: the Stripe API base and the Pesapal API base.
    pub base_url: String,
    state: Arc<Inner>,
}

/// Form parameters of a Stripe request, in order.
type Params = Vec<(String, String)>;

#[derive(Debug, Default)]
struct Inner {
    /// Idempotency-Key -> (parameters, intent).
    stripe_keys: Mutex<HashMap<String, (Params, Value)>>,
    /// PaymentIntent id -> intent.
    intents: Mutex<HashMap<String, Value>>,
    /// Refund id -> refund, in creation order.
    refunds: Mutex<Vec<Value>>,
    /// Tokens handed out.
    pesapal_tokens: Mutex<Vec<String>>,
    /// Tracking id -> (order request, status code).
    pesapal_orders: Mutex<HashMap<String, (Value, i32)>>,
    fail_next: Mutex<VecDeque<u16>>,
    delay: Mutex<std::time::Duration>,
    stripe_calls: AtomicUsize,
    pesapal_calls: AtomicUsize,
}

impl FakeProvider {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let state = Arc::new(Inner::default());
        let app = crate::spawn_app(router(state.clone())).await;
        Self { base_url: app.base_url, state }
    }

    /// Serves the fake on `listener` until `shutdown` completes; the handle ends when the
    /// server has stopped.
    pub fn serve(
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<(Self, tokio::task::JoinHandle<()>)> {
        let addr = listener.local_addr()?;
        let state = Arc::new(Inner::default());
        let router = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
        });
        Ok((Self { base_url: format!("http://{addr}"), state }, task))
    }

    /// The next API calls answer these HTTP statuses (in order) instead of working.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.fail_next.lock().extend(statuses.iter().copied());
    }

    /// Every API call waits `delay` before answering (a slow provider).
    pub fn set_delay(&self, delay: std::time::Duration) {
        *self.state.delay.lock() = delay;
    }

    /// Stripe API calls received (including injected failures).
    pub fn stripe_calls(&self) -> usize {
        self.state.stripe_calls.load(Ordering::SeqCst)
    }

    /// Pesapal API calls received (including injected failures).
    pub fn pesapal_calls(&self) -> usize {
        self.state.pesapal_calls.load(Ordering::SeqCst)
    }

    /// Distinct PaymentIntents created.
    pub fn intents(&self) -> Vec<Value> {
        self.state.intents.lock().values().cloned().collect()
    }

    /// Makes the PaymentIntent `id` paid (`succeeded`), creating it for `amount` `currency`
    /// with our `order_id` metadata when the fake does not know it (tests that record provider
    /// ids without creating intents).
    pub fn succeed_intent(&self, id: &str, order_id: &str, amount: i64, currency: &str) {
        let mut intents = self.state.intents.lock();
        let intent = intents.entry(id.to_owned()).or_insert_with(|| {
            json!({"id": id, "object": "payment_intent", "amount": amount, "currency": currency,
                   "metadata": {"order_id": order_id}, "livemode": false})
        });
        intent["status"] = json!("succeeded");
    }

    /// Refunds created through `POST /v1/refunds`, oldest first.
    pub fn refunds(&self) -> Vec<Value> {
        self.state.refunds.lock().clone()
    }

    /// The `charge.refunded` event Stripe sends after a refund of the PaymentIntent
    /// `intent_id`: its charge with the cumulative `amount_refunded` and `refunded` (true when
    /// all of it went back), created at `created` (unix seconds).
    pub fn charge_refunded_event(&self, event_id: &str, intent_id: &str, created: i64) -> Value {
        let intent = self.state.intents.lock().get(intent_id).cloned().unwrap_or_default();
        let refunded = refunded_on(&self.state, intent_id);
        charge_refunded_event_for(&intent, refunded, event_id, created)
    }

    /// Sets what GetTransactionStatus says for `tracking_id` (0 invalid/pending, 1 completed,
    /// 2 failed, 3 reversed).
    pub fn set_pesapal_status(&self, tracking_id: &str, status_code: i32) {
        if let Some(order) = self.state.pesapal_orders.lock().get_mut(tracking_id) {
            order.1 = status_code;
        }
    }

    /// Pesapal orders submitted: tracking id -> merchant reference.
    pub fn pesapal_orders(&self) -> HashMap<String, String> {
        self.state
            .pesapal_orders
            .lock()
            .iter()
            .map(|(k, (req, _))| (k.clone(), req["id"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// A Stripe event of `event_type` about the PaymentIntent `intent_id` (as created here, or
    /// a minimal one with `order_id` metadata), created at `created` (unix seconds).
    pub fn stripe_event(
        &self,
        event_id: &str,
        event_type: &str,
        intent_id: &str,
        order_id: &str,
        created: i64,
    ) -> Value {
        let intent = self.state.intents.lock().get(intent_id).cloned().unwrap_or_else(|| {
            json!({"id": intent_id, "object": "payment_intent", "amount": 1000,
                   "currency": "usd", "metadata": {"order_id": order_id}})
        });
        stripe_event_for(intent, event_id, event_type, created)
    }

    /// Sends `event` to `webhook_url` as Stripe does: raw JSON body, signed now with `secret`.
    pub async fn send_stripe_webhook(
        &self,
        webhook_url: &str,
        secret: &str,
        event: &Value,
    ) -> reqwest::Response {
        post_stripe_webhook(&client(), webhook_url, secret, event).await.expect("webhook delivery")
    }

    /// Sends a Pesapal IPN (GET) for `tracking_id` to `ipn_url`.
    pub async fn send_pesapal_ipn(&self, ipn_url: &str, tracking_id: &str) -> reqwest::Response {
        let reference = self.pesapal_orders().get(tracking_id).cloned().unwrap_or_default();
        client()
            .get(ipn_url)
            .query(&[
                ("OrderTrackingId", tracking_id),
                ("OrderMerchantReference", reference.as_str()),
                ("OrderNotificationType", "IPNCHANGE"),
            ])
            .send()
            .await
            .expect("IPN delivery")
    }
}

fn router(state: Arc<Inner>) -> Router {
    Router::new()
        .route("/v1/payment_intents", post(create_intent))
        .route("/v1/payment_intents/{id}", get(retrieve_intent))
        .route("/v1/payment_intents/{id}/confirm", post(confirm_intent))
        .route("/v1/refunds", post(create_refund))
        .route("/api/Auth/RequestToken", post(request_token))
        .route("/api/Transactions/SubmitOrderRequest", post(submit_order))
        .route("/api/Transactions/GetTransactionStatus", get(transaction_status))
        .with_state(state)
}

/// A Stripe event of `event_type` about `intent` (a PaymentIntent object as Stripe returns it),
/// created at `created` (unix seconds); the intent's `status` follows the event type.
pub fn stripe_event_for(
    mut intent: Value,
    event_id: &str,
    event_type: &str,
    created: i64,
) -> Value {
    intent["status"] = json!(match event_type {
        "payment_intent.succeeded" => "succeeded",
        "payment_intent.processing" => "processing",
        "payment_intent.canceled" => "canceled",
        _ => "requires_payment_method",
    });
    json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": intent},
    })
}

/// The `charge.refunded` event of `intent` (a PaymentIntent object as Stripe returns it) with
/// `amount_refunded` refunded so far (cumulative), created at `created` (unix seconds): its
/// charge carries the intent's metadata, `amount_refunded` and `refunded` (all of it back).
pub fn charge_refunded_event_for(
    intent: &Value,
    amount_refunded: i64,
    event_id: &str,
    created: i64,
) -> Value {
    let intent_id = intent["id"].as_str().unwrap_or_default();
    let amount = intent["amount"].as_i64().unwrap_or_default();
    json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "type": "charge.refunded",
        "data": {"object": {
            "id": format!("ch_{}", intent_id.trim_start_matches("pi_")),
            "object": "charge",
            "payment_intent": intent_id,
            "amount": amount,
            "amount_refunded": amount_refunded,
            "refunded": amount_refunded >= amount,
            "currency": intent["currency"],
            "metadata": intent["metadata"],
        }},
    })
}

/// POSTs `event` to `webhook_url` with `http` as Stripe does: raw JSON body, signed now with
/// `secret`.
pub async fn post_stripe_webhook(
    http: &reqwest::Client,
    webhook_url: &str,
    secret: &str,
    event: &Value,
) -> reqwest::Result<reqwest::Response> {
    let body = serde_json::to_vec(event).unwrap_or_default();
    let header = stripe_signature(secret, chrono::Utc::now().timestamp(), &body);
    http.post(webhook_url)
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", header)
        .body(body)
        .send()
        .await
}

/// `Stripe-Signature` for `body` at `t` signed with `secret`.
pub fn stripe_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("reqwest client")
}

fn injected(state: &Inner) -> Option<Response> {
    let status = state.fail_next.lock().pop_front()?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Some(
        (status, Json(json!({"error": {"type": "api_error", "message": "injected failure"}})))
            .into_response(),
    )
}

fn stripe_authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer sk_"))
}

fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"type": kind, "message": message}}))).into_response()
}

fn random_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// What every Stripe call goes through: counted, delayed, failed on demand, and refused without
/// a secret key. `Some` is the answer to give instead of serving the call.
async fn stripe_call(state: &Inner, headers: &HeaderMap) -> Option<Response> {
    state.stripe_calls.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock();
    tokio::time::sleep(delay).await;
    if let Some(failure) = injected(state) {
        return Some(failure);
    }
    if !stripe_authorized(headers) {
        return Some(stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        ));
    }
    None
}

async fn create_intent(
    State(state): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> Response {
    if let Some(refused) = stripe_call(&state, &headers).await {
        return refused;
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(amount) = param("amount").and_then(|a| a.parse::<i64>().ok()).filter(|a| *a > 0)
    else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Invalid integer: amount",
        );
    };
    let Some(currency) = param("currency").filter(|c| c.len() == 3) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: currency.",
        );
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut keys = state.stripe_keys.lock();
    if let Some(key) = &key
        && let Some((previous, intent)) = keys.get(key)
    {
        if previous != &params {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            );
        }
        return (StatusCode::OK, Json(intent.clone())).into_response();
    }
    let metadata: serde_json::Map<String, Value> = params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(|name| (name.to_owned(), json!(v)))
        })
        .collect();
    let id = random_id("pi");
    let intent = json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "currency": currency,
        "status": "requires_payment_method",
        "client_secret": format!("{id}_secret_{}", uuid::Uuid::new_v4().simple()),
        "metadata": metadata,
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
    });
    if let Some(key) = key {
        keys.insert(key, (params.clone(), intent.clone()));
    }
    state.intents.lock().insert(id, intent.clone());
    (StatusCode::OK, Json(intent)).into_response()
}

async fn retrieve_intent(
    State(state): State<Arc<Inner>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if let Some(refused) = stripe_call(&state, &headers).await {
        return refused;
    }
    match state.intents.lock().get(&id) {
        Some(intent) => (StatusCode::OK, Json(intent.clone())).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such payment_intent: '{id}'"),
        ),
    }
}

/// `POST /v1/payment_intents/{id}/confirm` (a test card always succeeds): the intent becomes
/// `succeeded`.
async fn confirm_intent(
    State(state): State<Arc<Inner>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if let Some(refused) = stripe_call(&state, &headers).await {
        return refused;
    }
    let mut intents = state.intents.lock();
    let Some(intent) = intents.get_mut(&id) else {
        return stripe_refusal(
            StatusCode::NOT_FOUND,
            "resource_missing",
            &format!("No such payment_intent: '{id}'"),
        );
    };
    intent["status"] = json!("succeeded");
    (StatusCode::OK, Json(intent.clone())).into_response()
}

/// Refunded so far on `intent_id` (refunds that did not fail).
fn refunded_on(state: &Inner, intent_id: &str) -> i64 {
    state
        .refunds
        .lock()
        .iter()
        .filter(|r| r["payment_intent"] == intent_id && r["status"] != "failed")
        .filter_map(|r| r["amount"].as_i64())
        .sum()
}

fn stripe_refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let error =
        json!({"error": {"type": "invalid_request_error", "code": code, "message": message}});
    (status, Json(error)).into_response()
}

async fn create_refund(
    State(state): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> Response {
    if let Some(refused) = stripe_call(&state, &headers).await {
        return refused;
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(key) = &key
        && let Some((previous, refund)) = state.stripe_keys.lock().get(key).cloned()
    {
        if previous != params {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            );
        }
        return (StatusCode::OK, Json(refund)).into_response();
    }
    let Some(intent_id) = param("payment_intent") else {
        return stripe_refusal(
            StatusCode::BAD_REQUEST,
            "parameter_missing",
            "Must provide one of charge or payment_intent.",
        );
    };
    let Some(intent) = state.intents.lock().get(&intent_id).cloned() else {
        return stripe_refusal(
            StatusCode::NOT_FOUND,
            "resource_missing",
            &format!("No such payment_intent: '{intent_id}'"),
        );
    };
    if intent["status"] != "succeeded" {
        return stripe_refusal(
            StatusCode::BAD_REQUEST,
            "charge_not_refundable",
            &format!(
                "This PaymentIntent ({intent_id}) does not have a successful charge to refund."
            ),
        );
    }
    let total = intent["amount"].as_i64().unwrap_or_default();
    let left = total - refunded_on(&state, &intent_id);
    if left <= 0 {
        return stripe_refusal(
            StatusCode::BAD_REQUEST,
            "charge_already_refunded",
            &format!("Charge for {intent_id} has already been refunded."),
        );
    }
    let amount = match param("amount").map(|a| a.parse::<i64>()) {
        None => left,
        Some(Ok(a)) if a > 0 => a,
        Some(_) => {
            return stripe_refusal(
                StatusCode::BAD_REQUEST,
                "parameter_invalid_integer",
                "Invalid integer: amount",
            );
        }
    };
    if amount > left {
        return stripe_refusal(
            StatusCode::BAD_REQUEST,
            "amount_too_large",
            &format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
            ),
        );
    }
    let metadata: serde_json::Map<String, Value> = params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(|name| (name.to_owned(), json!(v)))
        })
        .collect();
    let refund = json!({
        "id": random_id("re"),
        "object": "refund",
        "amount": amount,
        "currency": intent["currency"],
        "payment_intent": intent_id,
        "status": "succeeded",
        "metadata": metadata,
        "created": chrono::Utc::now().timestamp(),
    });
    if let Some(key) = key {
        state.stripe_keys.lock().insert(key, (params.clone(), refund.clone()));
    }
    state.refunds.lock().push(refund.clone());
    (StatusCode::OK, Json(refund)).into_response()
}

async fn request_token(State(state): State<Arc<Inner>>, Json(body): Json<Value>) -> Response {
    state.pesapal_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(failure) = injected(&state) {
        return failure;
    }
    let present = |k: &str| body[k].as_str().is_some_and(|v| !v.is_empty());
    if !present("consumer_key") || !present("consumer_secret") {
        // Pesapal answers errors with HTTP 200 and a status inside.
        return Json(json!({"token": null, "expiryDate": null, "status": "500",
            "error": {"error_type": "api_error", "code": "invalid_consumer_key_or_secret_provided",
                      "message": ""}}))
        .into_response();
    }
    let token = random_id("pesapal-token");
    state.pesapal_tokens.lock().push(token.clone());
    let expiry = chrono::Utc::now() + chrono::TimeDelta::minutes(5);
    Json(json!({"token": token, "expiryDate": expiry.to_rfc3339(), "error": null, "status": "200",
                "message": "Request processed successfully"}))
    .into_response()
}

fn pesapal_authorized(state: &Inner, headers: &HeaderMap) -> bool {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    state.pesapal_tokens.lock().iter().any(|t| t == token)
}

async fn submit_order(
    State(state): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.pesapal_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(failure) = injected(&state) {
        return failure;
    }
    if !pesapal_authorized(&state, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"status": "401"}))).into_response();
    }
    let valid = body["id"].as_str().is_some_and(|s| !s.is_empty())
        && body["amount"].as_f64().is_some_and(|a| a > 0.0)
        && body["notification_id"].as_str().is_some_and(|s| !s.is_empty());
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "400",
            "error": {"error_type": "api_error", "code": "invalid_request"}})),
        )
            .into_response();
    }
    let tracking = uuid::Uuid::new_v4().to_string();
    let reference = body["id"].clone();
    state.pesapal_orders.lock().insert(tracking.clone(), (body, 0));
    Json(json!({
        "order_tracking_id": tracking,
        "merchant_reference": reference,
        "redirect_url": format!("https://pay.pesapal.test/iframe?OrderTrackingId={tracking}"),
        "error": null,
        "status": "200",
    }))
    .into_response()
}

async fn transaction_status(
    State(state): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    state.pesapal_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(failure) = injected(&state) {
        return failure;
    }
    if !pesapal_authorized(&state, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"status": "401"}))).into_response();
    }
    let tracking = query.get("orderTrackingId").cloned().unwrap_or_default();
    let Some((order, code)) = state.pesapal_orders.lock().get(&tracking).cloned() else {
        return Json(json!({"status_code": 0, "payment_status_description": "INVALID",
            "status": "500", "error": {"code": "order_not_found"}}))
        .into_response();
    };
    let description = match code {
        1 => "Completed",
        2 => "Failed",
        3 => "Reversed",
        _ => "INVALID",
    };
    Json(json!({
        "payment_method": "Visa",
        "amount": order["amount"],
        "created_date": chrono::Utc::now().to_rfc3339(),
        "confirmation_code": if code == 1 { json!(random_id("conf")) } else { Value::Null },
        "payment_status_description": description,
        "description": "",
        "message": "Request processed successfully",
        "payment_account": "",
        "call_back_url": order["callback_url"],
        "status_code": code,
        "merchant_reference": order["id"],
        "payment_status_code": "",
        "currency": order["currency"],
        "error": {"error_type": null, "code": null, "message": null, "call_back_url": null},
        "status": "200",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_served_fake_hands_back_its_intents_and_stops_on_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (fake, task) = FakeProvider::serve(listener, async {
            let _ = stopped.await;
        })
        .unwrap();
        let http = client();
        let created: Value = http
            .post(format!("{}/v1/payment_intents", fake.base_url))
            .bearer_auth("sk_test_x")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("amount=2500&currency=usd&metadata%5Border_id%5D=ord_1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let url = format!("{}/v1/payment_intents/{id}", fake.base_url);
        let got: Value =
            http.get(&url).bearer_auth("sk_test_x").send().await.unwrap().json().await.unwrap();
        assert_eq!(got, created);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 401, "no API key");
        let unknown = format!("{}/v1/payment_intents/pi_nope", fake.base_url);
        assert_eq!(http.get(&unknown).bearer_auth("sk_x").send().await.unwrap().status(), 404);

        // An event built from the retrieved intent is the one the method builds.
        let event = stripe_event_for(got, "evt_1", "payment_intent.succeeded", 7);
        assert_eq!(event["data"]["object"]["status"], "succeeded");
        assert_eq!(event["data"]["object"]["metadata"]["order_id"], "ord_1");
        assert_eq!(event["data"]["object"]["amount"], 2500);
        assert_eq!(fake.stripe_event("evt_1", "payment_intent.succeeded", &id, "x", 7), event);

        stop.send(()).unwrap();
        task.await.unwrap();
        assert!(http.get(&url).send().await.is_err(), "stopped");
    }
}
