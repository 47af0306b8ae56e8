//! `POST /pubsub/user-signups`: the push subscription of the `user-signups` topic.
//!
//! ```text
//! Push<UserSignups> (runtime::trigger)    forged / missing token -> 401
//!                                         undecodable (envelope, base64, JSON, version) -> permanent
//! ledger run_once (scope, message id)     Replayed -> 204 | Busy -> 409 + Retry-After | Conflict -> permanent
//! Onboarding::provision_new              ok -> complete the claim, 204
//!                                         Firestore unavailable -> release, 503 (redelivered)
//!                                         invited tenant missing / bad ids -> release, permanent
//!                                         member removed since onboarding -> release, permanent
//! ```
//! Permanent failures are recorded in `dead_letters/` by the runtime and acknowledged with 200,
//! so a poison message never loops.

use anyhow::anyhow;
use axum::extract::State;
use domain::messages::{UserSignup, UserSignups};
use domain::onboarding::ProvisionRequest;
use http::StatusCode;
use runtime::Error;
use runtime::trigger::Push;
use store::ledger::Outcome;

use crate::AppState;

/// The idempotency scope of `user-signups` deliveries (the key is the Pub/Sub message id).
pub const SCOPE: &str = "pubsub:user-signups";

pub(crate) async fn user_signups(
    State(state): State<AppState>,
    Push { caller, event }: Push<UserSignups>,
) -> Result<StatusCode, Error> {
    let message_id = event.message_id;
    let signup = event.data;
    tracing::debug!(
        %message_id,
        uid = %signup.uid,
        caller = caller.as_ref().map(|c| c.email.as_str()),
        "user-signups delivery"
    );

    let request = ProvisionRequest {
        uid: signup.uid.clone(),
        email: signup.email.clone(),
        tenant_id: signup.tenant_id.clone(),
        role: signup.role,
        tenant_is_new: signup.tenant_is_new,
    };
    // Never re-instates a member removed since onboarding (a late or replayed message).
    // Provisioning is idempotent on its own: if the outcome cannot be saved, acknowledging is
    // still right; a later duplicate takes the lease over once it expires and finds nothing to do.
    let onboarding = store::onboarding::Onboarding::new(&state.db);
    let outcome = state
        .ledger
        .run_once(SCOPE, &message_id, &signup, state.lease, || onboarding.provision_new(&request))
        .await
        .map_err(|e| store_failure(e.or_ledger(|e| e), &message_id))?;
    match outcome {
        Outcome::Ran(_) | Outcome::Replayed(_) => Ok(StatusCode::NO_CONTENT),
        Outcome::Busy { retry_after } => Err(Error::busy(
            anyhow!("message {message_id} is being provisioned by another delivery"),
            retry_after,
        )),
        Outcome::Conflict => Err(Error::permanent(
            "a user-signups message id was reused with a different payload",
            anyhow!("message {message_id}: fingerprint differs from the first delivery"),
            Some(message_id),
        )),
    }
}

/// Retryable store failures ask Pub/Sub to redeliver; the others can never succeed.
fn store_failure(error: store::Error, message_id: &str) -> Error {
    Error::for_event(error, "provisioning from user-signups", Some(message_id))
}

/// Identifies the payload of a message id in the ledger (same id, other payload = Mismatch):
/// the SHA-256 of the message's JSON, in hex.
pub fn signup_fingerprint(signup: &UserSignup) -> String {
    store::ledger::fingerprint(signup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::messages::Version;
    use domain::tenancy::Role;

    fn signup() -> UserSignup {
        UserSignup {
            v: Version,
            uid: "u1".to_owned(),
            email: None,
            tenant_id: "t1".to_owned(),
            role: Role::Owner,
            tenant_is_new: true,
            event_id: "e1".to_owned(),
        }
    }

    #[test]
    fn fingerprints_follow_the_payload() {
        assert_eq!(signup_fingerprint(&signup()), signup_fingerprint(&signup()));
        let other = UserSignup { role: Role::Member, ..signup() };
        assert_ne!(signup_fingerprint(&signup()), signup_fingerprint(&other));
        assert_eq!(signup_fingerprint(&signup()).len(), 64);
    }

    #[test]
    fn only_retryable_store_failures_are_retried() {
        let unavailable = store_failure(store::Error::Unreachable("down".to_owned()), "m1");
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        let missing_tenant =
            store_failure(store::Error::Invalid("tenant t does not exist".to_owned()), "m1");
        assert!(
            matches!(missing_tenant, Error::Permanent { event_id: Some(ref id), .. } if id == "m1")
        );
    }
}
