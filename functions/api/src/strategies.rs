//! `saveStrategy`: tenant admins write their tenant's strategies through the API, never
//! directly (the rules refuse client writes to `tenants/{t}/strategies`), so every stored
//! strategy has passed `domain::pulse::Strategy::validate`:
//!
//! - only an `owner` or `admin` of the caller's tenant (from the ID token's claims; the tenant is
//!   never taken from the request) may save;
//! - the strategy is exactly the stored shape, unknown fields refused;
//! - its stream must be one the market stream processes (`HEARTH_MARKET_INSTRUMENTS` x
//!   `HEARTH_MARKET_GRANULARITIES`, the market-stream's own variables and defaults);
//! - every assigned user must be a member of the tenant;
//! - the id is the client's (a retry rewrites the same document).

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use domain::market::{Granularity, StreamKey};
use domain::pulse::Strategy;
use domain::tenancy::Role;
use gcp::callable::Code;
use runtime::trigger::{Callable, CallableResult};
use runtime::{ConfigError, Env, Error};
use serde::{Deserialize, Serialize};
use store::pulse::Pulse;
use ts_rs::TS;

use crate::feed::valid_id;
use crate::payments::limits;
use crate::{AppState, SignedIn};

/// The callables of this module.
pub const PATHS: [&str; 1] = ["/saveStrategy"];

/// The instruments the market stream processes when `HEARTH_MARKET_INSTRUMENTS` is not set.
const DEFAULT_INSTRUMENTS: &str = "EUR_USD,GBP_USD,USD_JPY,USD_CHF,AUD_USD";
/// The granularities the market stream processes when `HEARTH_MARKET_GRANULARITIES` is not set.
const DEFAULT_GRANULARITIES: &str = "H1,H4,D,W";

/// The streams a strategy may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub streams: BTreeSet<StreamKey>,
}

impl Config {
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let list = |var: &str, default: &str| {
            let list = env.list(var);
            if list.is_empty() && !env.is_set(var) {
                default.split(',').map(str::to_owned).collect()
            } else {
                list
            }
        };
        let mut streams = BTreeSet::new();
        for g in list("HEARTH_MARKET_GRANULARITIES", DEFAULT_GRANULARITIES) {
            let granularity: Granularity = g.parse().map_err(|_| {
                ConfigError::invalid(
                    "HEARTH_MARKET_GRANULARITIES",
                    "M1, M5, M15, M30, H1, H4, D or W",
                    &g,
                )
            })?;
            for i in list("HEARTH_MARKET_INSTRUMENTS", DEFAULT_INSTRUMENTS) {
                streams.insert(StreamKey::new(&i, granularity).map_err(|_| {
                    ConfigError::invalid(
                        "HEARTH_MARKET_INSTRUMENTS",
                        "instrument names like EUR_USD",
                        &i,
                    )
                })?);
            }
        }
        Ok(Self { streams })
    }

    fn knows(&self, instrument: &str, granularity: &str) -> bool {
        granularity
            .parse::<Granularity>()
            .ok()
            .and_then(|g| StreamKey::new(instrument, g).ok())
            .is_some_and(|key| self.streams.contains(&key))
    }
}

/// `saveStrategy` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "SaveStrategyData")]
pub(crate) struct SaveStrategy {
    /// The strategy's id in the tenant (a retry with the same id rewrites it).
    strategy_id: String,
    strategy: Strategy,
}

/// `saveStrategy` result.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "SaveStrategyResult")]
pub(crate) struct Saved {
    strategy_id: String,
    tenant_id: String,
}

/// `saveStrategy({strategyId, strategy})` -> `{strategyId, tenantId}`.
pub(crate) async fn save_strategy(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<SaveStrategy>,
) -> Result<CallableResult<Saved>, Error> {
    if !matches!(who.role, Role::Owner | Role::Admin) {
        return Err(Error::reject(
            Code::PermissionDenied,
            "only tenant owners and admins may save strategies",
        ));
    }
    valid_id("strategyId", &request.strategy_id)?;
    let strategy = request.strategy;
    strategy
        .validate(|i, g| state.strategies.knows(i, g))
        .map_err(|e| Error::reject(Code::InvalidArgument, e.to_string()))?;
    limits::check(&state, &who.uid, "saveStrategy").await?;
    let pulse = Pulse::new(&state.db);
    let strangers =
        pulse.not_members(&who.tenant_id, &strategy.assigned_uids).await.map_err(store_error)?;
    if !strangers.is_empty() {
        return Err(Error::reject(
            Code::InvalidArgument,
            format!(
                "assigned_uids holds {} user(s) who are not members of your tenant",
                strangers.len()
            ),
        ));
    }
    pulse
        .save_strategy(&who.tenant_id, &request.strategy_id, &strategy)
        .await
        .map_err(store_error)?;
    Ok(CallableResult(Saved { strategy_id: request.strategy_id, tenant_id: who.tenant_id }))
}

fn store_error(error: store::Error) -> Error {
    Error::for_event(error, "strategies store", None)
}

/// This module's routes.
pub fn routes(state: AppState) -> Router {
    Router::new().route("/saveStrategy", post(save_strategy)).with_state(state)
}
