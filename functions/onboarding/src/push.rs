//! `POST /pubsub/user-signups`: the push subscription of the `user-signups` topic.
//!
//! ```text
//! OIDC (runtime::auth::GoogleCaller)      forged / missing token -> 401
//! parse_push::<UserSignup>                undecodable (envelope, base64, JSON, version) -> permanent
//! ledger claim (scope, message id)        Done -> 204 | InFlight -> 409 + Retry-After | Mismatch -> permanent
//! store::onboarding::provision            ok -> complete the claim, 204
//!                                          Firestore unavailable -> release, 503 (redelivered)
//!                                          invited tenant missing / bad ids -> release, permanent
//!                                          member removed since onboarding -> release, permanent
//! ```
//! Permanent failures are recorded in `dead_letters/` by the runtime and acknowledged with 200,
//! so a poison message never loops.

use anyhow::anyhow;
use axum::body::Bytes;
use axum::extract::State;
use domain::messages::UserSignup;
use domain::onboarding::ProvisionRequest;
use gcp::callable::Code;
use gcp::error::PublicError;
use gcp::pubsub::{parse_push, parse_push_bytes};
use http::StatusCode;
use runtime::Error;
use runtime::auth::GoogleCaller;
use sha2::{Digest, Sha256};
use store::Claim;

use crate::AppState;

/// The idempotency scope of `user-signups` deliveries (the key is the Pub/Sub message id).
pub const SCOPE: &str = "pubsub:user-signups";

pub(crate) async fn user_signups(
    State(state): State<AppState>,
    GoogleCaller(caller): GoogleCaller,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let event = match parse_push::<UserSignup>(&body) {
        Ok(event) => event,
        Err(error) => {
            // Name the dead letter after the message when the envelope itself is readable, so
            // a redelivery overwrites the same record.
            let message_id = parse_push_bytes(&body).ok().map(|event| event.message_id);
            let reason = format!("undecodable user-signups message: {}", error.public_message());
            return Err(Error::permanent(reason, error, message_id));
        }
    };
    let message_id = event.message_id;
    let signup = event.data;
    tracing::debug!(
        %message_id,
        uid = %signup.uid,
        caller = caller.as_ref().map(|c| c.email.as_str()),
        "user-signups delivery"
    );

    let claim = state
        .ledger
        .claim(SCOPE, &message_id, &signup_fingerprint(&signup), state.lease)
        .await
        .map_err(|error| store_failure(error, &message_id))?;
    let token = match claim {
        Claim::Fresh(token) => token,
        Claim::Done(_) => return Ok(StatusCode::NO_CONTENT),
        Claim::InFlight { retry_after } => {
            return Err(Error::Retry {
                source: anyhow!("message {message_id} is being provisioned by another delivery"),
                code: Code::Aborted,
                retry_after: Some(retry_after),
                details: None,
            });
        }
        Claim::Mismatch => {
            return Err(Error::permanent(
                "a user-signups message id was reused with a different payload",
                anyhow!("message {message_id}: fingerprint differs from the first delivery"),
                Some(message_id),
            ));
        }
    };

    let request = ProvisionRequest {
        uid: signup.uid,
        email: signup.email,
        tenant_id: signup.tenant_id,
        role: signup.role,
        tenant_is_new: signup.tenant_is_new,
    };
    // Never re-instates a member removed since onboarding (a late or replayed message).
    match store::onboarding::Onboarding::new(&state.db).provision_new(&request).await {
        Ok(report) => {
            let saved = serde_json::to_value(&report).unwrap_or_default();
            if let Err(error) = state.ledger.complete(&token, &saved).await {
                // Provisioning is idempotent on its own: acknowledging is still right; a later
                // duplicate takes the lease over once it expires and finds nothing to do.
                tracing::warn!(%message_id, %error, "could not settle the idempotency record");
            }
            Ok(StatusCode::NO_CONTENT)
        }
        Err(error) => {
            if let Err(release) = state.ledger.release(&token).await {
                tracing::warn!(%message_id, error = %release, "could not release the idempotency lease");
            }
            Err(store_failure(error, &message_id))
        }
    }
}

/// Retryable store failures ask Pub/Sub to redeliver; the others can never succeed.
fn store_failure(error: store::Error, message_id: &str) -> Error {
    if error.is_retryable() {
        return Error::retry(anyhow::Error::new(error).context("provisioning from user-signups"));
    }
    Error::permanent(
        format!("cannot provision this sign-up: {error}"),
        error,
        Some(message_id.to_owned()),
    )
}

/// Identifies the payload of a message id in the ledger (same id, other payload = Mismatch):
/// the SHA-256 of the message's JSON, in hex.
pub fn signup_fingerprint(signup: &UserSignup) -> String {
    let bytes = serde_json::to_vec(signup).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
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
