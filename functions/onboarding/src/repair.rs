//! `POST /provision`: re-runs provisioning for one user (repair), for a tenant admin or an
//! operator, and answers `{"created":[...],"existing":[...]}`.
//!
//! Who may repair whom (the pure rules live in `domain::repair`):
//!
//! - **Operator**: a Google OIDC token of a service account in `HEARTH_OIDC_ALLOWED_EMAILS`.
//!   May repair any user in any tenant, and may set `tenant_is_new` to recreate a personal
//!   tenant document that was lost.
//! - **Tenant admin**: a Firebase ID token whose `tenant_id` claim is the body's `tenant_id`
//!   *and* whose membership document `tenants/{tenant}/users/{caller}` says `owner` or `admin`
//!   (the document decides, so a stale or forged role claim grants nothing). An admin:
//!   - repairs only users already in that tenant: the target's `users/{uid}.tenant_id` is the
//!     tenant, or, when the root has none (missing, or lost that field), the target has a
//!     membership in the tenant. Admins never pull other users in; invitations do that;
//!   - cannot grant a role above their own (an admin cannot make an owner);
//!   - cannot create tenants (`tenant_is_new` is for operators).
//!
//! The role only matters when the membership document is missing: an existing one is never
//! overwritten, like every other provisioned document.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use domain::onboarding::{ProvisionReport, ProvisionRequest};
use domain::repair::{
    Denied, RepairRequest, Requester, TargetFacts, authorize_requester, authorize_target,
};
use gcp::callable::Code;
use runtime::Error;
use runtime::auth::Caller;
use store::onboarding::Onboarding;

use crate::AppState;

pub(crate) async fn provision(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<ProvisionReport>, Error> {
    let req: RepairRequest = serde_json::from_slice(&body).map_err(|e| {
        Error::reject(Code::InvalidArgument, format!("The request body is not valid: {e}"))
    })?;
    for (what, check) in [
        ("uid", store::paths::user(&req.uid).map(drop)),
        ("tenant_id", store::paths::tenant(&req.tenant_id).map(drop)),
    ] {
        check.map_err(|e| Error::reject(Code::InvalidArgument, format!("{what}: {e}")))?;
    }

    match &caller {
        Caller::Google(claims) => {
            authorize_requester(&Requester::Operator, &req).map_err(denied)?;
            tracing::info!(
                operator = claims.as_ref().map(|c| c.email.as_str()),
                uid = %req.uid,
                tenant_id = %req.tenant_id,
                "repair by an operator"
            );
        }
        Caller::Firebase(user) => {
            let claimed_tenant = user.claim_str("tenant_id");
            let own = if claimed_tenant == Some(req.tenant_id.as_str()) {
                Onboarding::new(&state.db)
                    .membership(&req.tenant_id, &user.uid)
                    .await
                    .map_err(read_failure)?
            } else {
                None
            };
            let requester =
                Requester::TenantAdmin { claimed_tenant, membership: own.map(|m| m.role) };
            authorize_requester(&requester, &req).map_err(denied)?;
            let facts = TargetFacts {
                root_tenant: Onboarding::new(&state.db)
                    .user_tenant(&req.uid)
                    .await
                    .map_err(read_failure)?,
                member_of_requested_tenant: Onboarding::new(&state.db)
                    .membership(&req.tenant_id, &req.uid)
                    .await
                    .map_err(read_failure)?
                    .is_some(),
            };
            authorize_target(&req, &facts).map_err(denied)?;
            tracing::info!(admin = %user.uid, uid = %req.uid, tenant_id = %req.tenant_id, "repair by a tenant admin");
        }
    }

    let request = ProvisionRequest {
        uid: req.uid,
        email: req.email,
        tenant_id: req.tenant_id,
        role: req.role,
        tenant_is_new: req.tenant_is_new,
    };
    match store::onboarding::Onboarding::new(&state.db).provision(&request).await {
        Ok(report) => Ok(Json(report)),
        Err(error) if error.is_retryable() => {
            Err(Error::retry(anyhow::Error::new(error).context("repair provisioning")))
        }
        Err(store::Error::Invalid(message)) => {
            tracing::info!(%message, "repair refused");
            Err(Error::reject(
                Code::FailedPrecondition,
                format!(
                    "Tenant {} does not exist; only an operator can recreate it (tenant_is_new).",
                    request.tenant_id
                ),
            ))
        }
        Err(error) => Err(internal(error)),
    }
}

fn denied(reason: Denied) -> Error {
    Error::reject(Code::PermissionDenied, reason.to_string())
}

fn read_failure(error: store::Error) -> Error {
    Error::for_caller(
        error,
        "checking repair permissions",
        Code::Internal,
        "Provisioning failed; the error was logged.",
    )
}

fn internal(error: store::Error) -> Error {
    tracing::error!(error = %error, "repair failed");
    Error::reject(Code::Internal, "Provisioning failed; the error was logged.")
}
