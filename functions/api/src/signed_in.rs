//! [`SignedIn`]: the verified caller of a callable, provisioned lazily.
//!
//! The `user-signups` message may not have been processed yet when a brand-new user makes their
//! first call (Pub/Sub is asynchronous, and a Pub/Sub outage at sign-up is tolerated). So the
//! first call of each user on an instance checks the onboarding state on the user root and, when
//! it is missing or stale, runs the same idempotent provisioning the onboarding function runs.
//! Users seen provisioned are remembered per instance, so the warm path does no extra read.
//! A user whose root says they were onboarded into the token's tenant but whose membership is
//! gone was removed: refused (`PERMISSION_DENIED`), never re-provisioned from the claim.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use domain::onboarding::ProvisionRequest;
use domain::tenancy::{Role, personal_tenant_id};
use gcp::callable::Code;
use gcp::firebase::FirebaseUser;
use http::request::Parts;
use parking_lot::Mutex;
use runtime::Error;

use crate::AppState;

/// How many provisioned uids an instance remembers before it starts over (a bound on memory).
const REMEMBERED: usize = 100_000;

/// The uids this instance has seen provisioned.
#[derive(Debug, Clone, Default)]
pub struct Provisioned(Arc<Mutex<HashSet<String>>>);

impl Provisioned {
    fn contains(&self, uid: &str) -> bool {
        self.0.lock().contains(uid)
    }

    fn insert(&self, uid: &str) {
        let mut set = self.0.lock();
        if set.len() >= REMEMBERED {
            set.clear();
        }
        set.insert(uid.to_owned());
    }
}

/// A signed-in user with the tenant and role of their custom claims, provisioned.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub uid: String,
    pub tenant_id: String,
    pub role: Role,
    pub user: FirebaseUser,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let user = state.firebase_auth.verify(&parts.headers).await?;
        let tenant_id = user.claim_str("tenant_id").map(str::to_owned);
        let role =
            user.claims.get("role").and_then(|r| serde_json::from_value::<Role>(r.clone()).ok());
        let (Some(tenant_id), Some(role)) = (tenant_id, role) else {
            return Err(Error::reject(
                Code::PermissionDenied,
                "This account has no tenant yet; sign in again to refresh your session.",
            ));
        };
        let signed_in = SignedIn { uid: user.uid.clone(), tenant_id, role, user };
        if !state.signed_in.contains(&signed_in.uid) {
            ensure_provisioned(state, &signed_in).await?;
            state.signed_in.insert(&signed_in.uid);
        }
        Ok(signed_in)
    }
}

async fn ensure_provisioned(state: &AppState, who: &SignedIn) -> Result<(), Error> {
    let onboarding = store::onboarding::Onboarding::new(&state.db);
    let (state_read, removed) = tokio::try_join!(
        onboarding.onboarding_state(&who.uid),
        onboarding.membership_removed(&who.tenant_id, &who.uid),
    )
    .map_err(store_error)?;
    if removed {
        return Err(removed_error(who));
    }
    if state_read.is_some_and(|s| s.is_current()) {
        return Ok(());
    }
    let request = ProvisionRequest {
        uid: who.uid.clone(),
        email: who.user.email.clone(),
        tenant_id: who.tenant_id.clone(),
        role: who.role,
        tenant_is_new: who.tenant_id == personal_tenant_id(&who.uid),
    };
    let report = match store::onboarding::Onboarding::new(&state.db).provision_new(&request).await {
        Ok(report) => report,
        Err(store::Error::MembershipRemoved { .. }) => return Err(removed_error(who)),
        Err(error) => return Err(store_error(error)),
    };
    if !report.is_noop() {
        tracing::info!(uid = %who.uid, created = ?report.created, "provisioned lazily on first call");
    }
    Ok(())
}

/// The caller's token still names a tenant they were removed from (claims change only when the
/// token is refreshed): refused, and the membership is never re-created from the claim.
fn removed_error(who: &SignedIn) -> Error {
    tracing::info!(uid = %who.uid, tenant_id = %who.tenant_id, "refused: membership removed");
    Error::reject(
        Code::PermissionDenied,
        "You are no longer a member of this workspace. Please contact its administrator.",
    )
}

fn store_error(error: store::Error) -> Error {
    Error::for_caller(
        error,
        "lazy provisioning",
        Code::FailedPrecondition,
        "Your account could not be set up; contact support.",
    )
}
