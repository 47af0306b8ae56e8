//! `registerDevice` / `unregisterDevice`: the caller's FCM registration tokens, one per
//! device, in `users/{uid}/config/devices` (which the notifier reads).
//!
//! Registering again refreshes a device (its token may have rotated), a token seen under
//! another device id moves there, tokens unused for 270 days go, and a user keeps at most
//! `domain::notify::MAX_DEVICES` (the least recently seen is dropped). Both calls are
//! idempotent: repeating one changes nothing more.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use chrono::Utc;
use domain::notify::{Device, MAX_DEVICES, MAX_TOKEN_LEN, Platform, register_device};
use gcp::callable::Code;
use runtime::Error;
use runtime::trigger::{Callable, CallableResult};
use serde::{Deserialize, Serialize};
use store::notify::Notifications;
use ts_rs::TS;

use crate::payments::limits;
use crate::{AppState, SignedIn};

/// The callable paths this module serves.
pub const PATHS: [&str; 2] = ["/registerDevice", "/unregisterDevice"];

/// `registerDevice` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "RegisterDeviceData")]
pub(crate) struct RegisterRequest {
    device_id: String,
    token: String,
    platform: Platform,
}

/// `unregisterDevice` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "UnregisterDeviceData")]
pub(crate) struct UnregisterRequest {
    device_id: String,
}

/// Both answers.
#[derive(Debug, Serialize, TS)]
#[ts(rename = "DevicesResult")]
pub(crate) struct Devices {
    /// The caller's registered devices after the call.
    devices: usize,
}

fn valid_device_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::reject(Code::InvalidArgument, "deviceId is not a valid id"));
    }
    Ok(())
}

fn valid_token(token: &str) -> Result<(), Error> {
    let chars = token.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c));
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !chars {
        return Err(Error::reject(Code::InvalidArgument, "token is not an FCM registration token"));
    }
    Ok(())
}

fn store_error(error: store::Error) -> Error {
    Error::for_event(error, "devices store", None)
}

/// `registerDevice({deviceId, token, platform})` -> `{devices}`.
pub(crate) async fn register(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<RegisterRequest>,
) -> Result<CallableResult<Devices>, Error> {
    valid_device_id(&request.device_id)?;
    valid_token(&request.token)?;
    limits::check(&state, &who.uid, "registerDevice").await?;
    let device = Device {
        device_id: request.device_id,
        token: request.token,
        platform: request.platform,
        seen_at: Utc::now(),
    };
    let devices = Notifications::new(&state.db)
        .update_devices(&who.uid, |current| {
            register_device(current, device.clone(), Utc::now(), MAX_DEVICES)
        })
        .await
        .map_err(store_error)?;
    Ok(CallableResult(Devices { devices: devices.len() }))
}

/// `unregisterDevice({deviceId})` -> `{devices}` (signing out on that device).
pub(crate) async fn unregister(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<UnregisterRequest>,
) -> Result<CallableResult<Devices>, Error> {
    valid_device_id(&request.device_id)?;
    limits::check(&state, &who.uid, "unregisterDevice").await?;
    let devices = Notifications::new(&state.db)
        .update_devices(&who.uid, |mut current| {
            current.retain(|d| d.device_id != request.device_id);
            current
        })
        .await
        .map_err(store_error)?;
    Ok(CallableResult(Devices { devices: devices.len() }))
}

/// This module's routes.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/registerDevice", post(register))
        .route("/unregisterDevice", post(unregister))
        .with_state(state)
}
