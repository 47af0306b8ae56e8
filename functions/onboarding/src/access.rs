//! Taking tenant access away: `POST /members/remove` and `POST /tenants/suspend`.
//!
//! Access to a tenant is checked in three places: the `firestore.rules` (membership document
//! and tenant status), the sign-in hook (which refuses removed members and suspended tenants),
//! and the claims in the user's ID token. ID tokens keep their claims until they are refreshed,
//! and refreshing does not run the sign-in hook, so taking access away also revokes the user's
//! sessions: through the Identity Toolkit admin API, `validSince` = now (refresh tokens and ID
//! tokens issued before stop being accepted) and the custom claims without `tenant_id` and
//! `role`, in one call per user.
//!
//! Who may do what (pure rules in `domain::repair`, same caller checks as `POST /provision`):
//!
//! - `POST /members/remove` `{"tenant_id","uid"}`: an operator, or a tenant admin of that tenant
//!   (claim *and* membership document say owner/admin) removing someone not above their own
//!   role. The target must be a member of the tenant (`404` otherwise). Deletes the membership,
//!   then revokes the target. Answers `{"removed":true,"revoked":<bool>}` (`revoked: false` when
//!   the Auth user does not exist).
//! - `POST /tenants/suspend` `{"tenant_id"}`: operators only. Sets `status: suspended` (that
//!   field only), then revokes every member. Answers `{"suspended":true,"revoked":<n>}`.
//!
//! Both are idempotent: repeating a removal whose membership is already gone answers `404`
//! without revoking again; repeating a suspension revokes again (harmless).
//! A revocation that fails after the Firestore change answers 503: the change stands (the rules
//! and the sign-in hook already refuse the user), and the caller retries to finish revoking.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use domain::repair::{Denied, Requester, authorize_removal, authorize_suspension};
use gcp::callable::Code;
use gcp::identity_toolkit::{IdentityToolkit, ToolkitError};
use runtime::Error;
use runtime::auth::Caller;
use serde::Deserialize;
use serde_json::{Value, json};
use store::onboarding::Onboarding;

use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveRequest {
    tenant_id: String,
    uid: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendRequest {
    tenant_id: String,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| {
        Error::reject(Code::InvalidArgument, format!("The request body is not valid: {e}"))
    })
}

/// The caller as the pure rules see them (a tenant admin's membership read from Firestore only
/// when their claim names the tenant).
async fn requester<'a>(
    state: &AppState,
    caller: &'a Caller,
    tenant_id: &str,
) -> Result<Requester<'a>, Error> {
    match caller {
        Caller::Google(_) => Ok(Requester::Operator),
        Caller::Firebase(user) => {
            let claimed_tenant = user.claim_str("tenant_id");
            let own = if claimed_tenant == Some(tenant_id) {
                Onboarding::new(&state.db)
                    .membership(tenant_id, &user.uid)
                    .await
                    .map_err(store_failure)?
            } else {
                None
            };
            Ok(Requester::TenantAdmin { claimed_tenant, membership: own.map(|m| m.role) })
        }
    }
}

pub(crate) async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let req: RemoveRequest = parse(&body)?;
    store::paths::tenant_member(&req.tenant_id, &req.uid)
        .map_err(|e| Error::reject(Code::InvalidArgument, e.to_string()))?;
    let who = requester(&state, &caller, &req.tenant_id).await?;
    // Refuse a caller with no say over the tenant before revealing whether the target exists.
    if let Requester::TenantAdmin { .. } = who {
        authorize_removal(&who, &req.tenant_id, domain::tenancy::Role::Member).map_err(denied)?;
    }
    let target = Onboarding::new(&state.db)
        .membership(&req.tenant_id, &req.uid)
        .await
        .map_err(store_failure)?;
    let Some(target) = target else {
        return Err(Error::reject(Code::NotFound, "The user is not a member of this tenant."));
    };
    authorize_removal(&who, &req.tenant_id, target.role).map_err(denied)?;
    let toolkit = toolkit(&state)?;
    store::onboarding::Onboarding::new(&state.db)
        .remove_member(&req.tenant_id, &req.uid)
        .await
        .map_err(store_failure)?;
    let revoked = revoke(toolkit, &req.uid, &req.tenant_id).await?;
    tracing::info!(tenant_id = %req.tenant_id, uid = %req.uid, revoked, "member removed");
    Ok(Json(json!({"removed": true, "revoked": revoked})))
}

pub(crate) async fn suspend_tenant(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let req: SuspendRequest = parse(&body)?;
    store::paths::tenant(&req.tenant_id)
        .map_err(|e| Error::reject(Code::InvalidArgument, e.to_string()))?;
    let who = requester(&state, &caller, &req.tenant_id).await?;
    authorize_suspension(&who).map_err(denied)?;
    let toolkit = toolkit(&state)?;
    let Some(members) = store::onboarding::Onboarding::new(&state.db)
        .suspend_tenant(&req.tenant_id)
        .await
        .map_err(store_failure)?
    else {
        return Err(Error::reject(Code::NotFound, "There is no such tenant."));
    };
    let mut revoked = 0usize;
    for uid in &members {
        if revoke(toolkit, uid, &req.tenant_id).await? {
            revoked += 1;
        }
    }
    tracing::info!(tenant_id = %req.tenant_id, members = members.len(), revoked, "tenant suspended");
    Ok(Json(json!({"suspended": true, "revoked": revoked})))
}

/// Revokes `uid`'s sessions and drops `tenant_id`/`role` from their claims when those name
/// `tenant_id` (claims of another tenant are kept). `false` when the Auth user does not exist.
async fn revoke(toolkit: &IdentityToolkit, uid: &str, tenant_id: &str) -> Result<bool, Error> {
    let Some(account) = toolkit.lookup(uid).await.map_err(toolkit_failure)? else {
        return Ok(false);
    };
    let mut claims = account.custom_claims;
    if claims.get("tenant_id").and_then(Value::as_str) == Some(tenant_id) {
        claims.remove("tenant_id");
        claims.remove("role");
    }
    toolkit.revoke_sessions(uid, &claims, now_secs()).await.map_err(toolkit_failure)
}

/// Now, in UTC seconds (what `validSince` takes).
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn toolkit(state: &AppState) -> Result<&IdentityToolkit, Error> {
    state.toolkit.as_ref().ok_or_else(|| {
        Error::retry(anyhow::anyhow!("no Identity Toolkit credentials: sessions cannot be revoked"))
    })
}

fn denied(reason: Denied) -> Error {
    Error::reject(Code::PermissionDenied, reason.to_string())
}

fn store_failure(error: store::Error) -> Error {
    Error::for_caller(
        error,
        "changing tenant access",
        Code::Internal,
        "The change failed; the error was logged.",
    )
}

fn toolkit_failure(error: ToolkitError) -> Error {
    // Retryable or not, the caller should try again: the Firestore change already stands.
    Error::retry(anyhow::Error::new(error).context("revoking sessions"))
}
