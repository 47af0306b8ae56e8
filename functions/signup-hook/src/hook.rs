//! The two blocking endpoints: request checks, token verification, the admission decisions (pure,
//! in `domain::tenancy` for sign-up and `domain::admission` for sign-in), Firestore lookups (in
//! `store`), the answer (built by `gcp`) and the sign-up announcement on `user-signups`.
//!
//! Every failure is a [`runtime::Error`]: client mistakes and forged tokens are rejections in the
//! blocking error shape (`{"error":{"status","message"}}`, the route is `callable_style`),
//! blocked sign-ups are `PERMISSION_DENIED` with a message the client can show, and Firestore
//! or key-endpoint outages answer 503 so the identity provider reports a (retryable) error.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use bus::Attributes;
use chrono::Utc;
use domain::admission::{
    Fact, InvitationFacts, InvitationNeed, InvitationStep, Need, Refusal, RootFacts, SignIn,
    SignInFacts, TenantFacts, admit_sign_in, invitation_at_sign_in,
};
use domain::messages::{UserSignup, UserSignups, Version};
use domain::tenancy::{Assignment, Invitation, Lookups, Role, SignupFacts, Source, assign_tenant};
use gcp::blocking::{BlockingError, BlockingEvent, BlockingEventType, BlockingResponse};
use gcp::callable::Code;
use gcp::error::PublicError as _;
use runtime::Error;
use serde_json::{Map, Value};
use store::tenancy::{ConsumeError, TenantStatus};

use crate::state::AppState;

/// Shown when a sign-in is refused because the tenant is suspended.
pub const SUSPENDED_MESSAGE: &str =
    "Your workspace has been suspended. Please contact your workspace administrator.";
/// Shown when a sign-in is refused because the membership was removed.
pub const REMOVED_MESSAGE: &str =
    "You are no longer a member of this workspace. Please contact its administrator.";
/// Shown when the assigned tenant and role cannot be expressed as valid custom claims.
pub const INVALID_CLAIMS_MESSAGE: &str = "Your account could not be set up because its workspace \
     assignment is invalid. Please contact support.";
/// Shown when the request is not `Content-Type: application/json`.
pub const CONTENT_TYPE_MESSAGE: &str = "The request must be JSON (Content-Type: application/json).";

/// `POST /before-create`
#[tracing::instrument(name = "before_create", skip_all, fields(uid, event_id, tenant_id))]
pub(crate) async fn before_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    require_json(&headers)?;
    let event = state
        .inner
        .before_create
        .verify(&body)
        .await
        .and_then(|e| e.expect_type(BlockingEventType::BeforeCreate))
        .map_err(refused)?;
    record_event(&event);
    Box::pin(state.before_create(&event)).await.map(Json)
}

/// `POST /before-sign-in`
#[tracing::instrument(name = "before_sign_in", skip_all, fields(uid, event_id, tenant_id))]
pub(crate) async fn before_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    require_json(&headers)?;
    let event = state
        .inner
        .before_sign_in
        .verify(&body)
        .await
        .and_then(|e| e.expect_type(BlockingEventType::BeforeSignIn))
        .map_err(refused)?;
    record_event(&event);
    Box::pin(state.before_sign_in(&event)).await.map(Json)
}

/// Any other method on the two endpoints.
pub(crate) async fn method_not_allowed() -> Error {
    Error::Reject {
        code: Code::InvalidArgument,
        message: "Blocking functions are called with POST.".to_owned(),
        details: None,
        status: Some(axum::http::StatusCode::METHOD_NOT_ALLOWED),
    }
}

impl AppState {
    async fn before_create(&self, event: &BlockingEvent) -> Result<Value, Error> {
        let uid = event.uid().ok_or_else(no_user)?;
        let record = event.user_record.as_ref();
        let email = record.and_then(|r| r.email.as_deref()).filter(|e| !e.trim().is_empty());
        let facts = SignupFacts {
            uid,
            email,
            email_verified: record.is_some_and(|r| r.email_verified),
            sign_in_method: event.sign_in_method.as_deref(),
        };
        let mut lookups = Box::pin(self.lookups(&facts)).await?;
        let existing = record.and_then(|r| r.custom_claims.as_ref());
        let now = Utc::now();

        let mut decision = decide(&facts, &lookups, now)?;
        // Validate the claims before consuming anything: an invitation that cannot produce
        // valid claims stays pending.
        let mut body = decision.answer(existing)?;
        if let (Source::Invitation, Some(email)) = (decision.source, email) {
            // The user does not exist yet (another check may still refuse, or the creation
            // fail): the invitation is only reserved; the first sign-in makes it final.
            match self
                .inner
                .tenancy
                .reserve_invitation(email, uid, self.inner.invitation_hold)
                .await
            {
                Ok(consumed) => {
                    // Decide again on the invitation as the transaction read it.
                    lookups.invitation = Some(consumed.invitation);
                    tracing::info!(first_time = consumed.first_time, "invitation reserved");
                }
                Err(ConsumeError::Store(error)) => {
                    return Err(firestore_down(error, "consuming the invitation"));
                }
                Err(lost) => {
                    // Another account took it (or it expired) since the lookup.
                    tracing::info!(reason = %lost, "invitation no longer available; deciding without it");
                    lookups.invitation = None;
                }
            }
            decision = decide(&facts, &lookups, now)?;
            body = decision.answer(existing)?;
        }

        let Decision { tenant_id, role, source, tenant_is_new } = decision;
        tracing::Span::current().record("tenant_id", tenant_id.as_str());
        tracing::info!(?source, %role, tenant_is_new, "sign-up assigned");
        let announcement = UserSignup {
            v: Version,
            uid: uid.to_owned(),
            email: email.map(str::to_owned),
            tenant_id,
            role,
            tenant_is_new,
            event_id: event.event_id.clone(),
        };
        self.announce(&announcement).await;
        Ok(body)
    }

    async fn before_sign_in(&self, event: &BlockingEvent) -> Result<Value, Error> {
        let uid = event.uid().ok_or_else(no_user)?;
        let tenancy = &self.inner.tenancy;
        let existing = event.user_record.as_ref().and_then(|r| r.custom_claims.as_ref());
        if let Some(answer) = Box::pin(self.invitation_at_sign_in(event, uid)).await? {
            return Ok(answer);
        }

        // The decision is `domain::admission::admit_sign_in`; this loop reads what it asks for.
        let mut facts =
            SignInFacts::new(claim_str(existing, "tenant_id"), claim_str(existing, "role"));
        // The tenant whose membership was read, and whether a refusal was confirmed: the
        // membership is read before the user root, so onboarding can land between the two
        // reads (or the membership can come from the cache); the root then proves onboarding
        // while the membership answer predates it. Provisioning writes both in one commit, so a
        // fresh membership read after the root is the consistent answer.
        let mut read_tenant: Option<String> = None;
        let mut confirmed = false;
        let decision = loop {
            match admit_sign_in(&facts) {
                SignIn::Read(Need::UserRoot) => {
                    let root = tenancy
                        .user_root(uid)
                        .await
                        .map_err(|e| firestore_down(e, "reading the user root"))?;
                    facts.user_root = Fact::Known(root.map(RootFacts::from));
                }
                SignIn::Read(Need::Tenant(tenant_id)) => {
                    tracing::Span::current().record("tenant_id", tenant_id.as_str());
                    let (status, membership) = tokio::try_join!(
                        tenancy.tenant_status(&tenant_id),
                        tenancy.membership(&tenant_id, uid)
                    )
                    .map_err(|e| firestore_down(e, "reading the tenant and membership"))?;
                    facts.tenant = Fact::Known(TenantFacts {
                        suspended: status == Some(TenantStatus::Suspended),
                        membership: membership.map(|m| m.role),
                    });
                    read_tenant = Some(tenant_id);
                }
                SignIn::Refuse(Refusal::MembershipRemoved) if !confirmed => {
                    confirmed = true;
                    if let Some(tenant_id) = &read_tenant {
                        tenancy.forget_membership(tenant_id, uid).await;
                    }
                    facts.tenant = Fact::Unread;
                }
                decision => break decision,
            }
        };
        match decision {
            SignIn::Read(_) | SignIn::Admit => Ok(empty()),
            SignIn::RefreshClaims { tenant_id, role } => {
                tracing::info!(from = ?facts.claimed_role, to = %role, "refreshing claims");
                let claims = merged_claims(existing, &tenant_id, role);
                BlockingResponse::new()
                    .custom_claims(claims)
                    .to_json(BlockingEventType::BeforeSignIn)
                    .map_err(|e| invalid_claims(&e, &tenant_id))
            }
            SignIn::Refuse(Refusal::TenantSuspended) => {
                tracing::info!("sign-in refused: tenant suspended");
                Err(Error::reject(Code::PermissionDenied, SUSPENDED_MESSAGE))
            }
            SignIn::Refuse(Refusal::MembershipRemoved) => {
                tracing::info!("sign-in refused: membership removed");
                Err(Error::reject(Code::PermissionDenied, REMOVED_MESSAGE))
            }
        }
    }

    /// The invitation side of a sign-in, decided by `domain::admission::invitation_at_sign_in`
    /// (a fresh account confirms its sign-up's reservation; a proven invitee still in their
    /// personal tenant moves into the invitation's tenant, with its role, and is announced on
    /// `user-signups` for onboarding). `Some(answer)` when the user moves.
    async fn invitation_at_sign_in(
        &self,
        event: &BlockingEvent,
        uid: &str,
    ) -> Result<Option<Value>, Error> {
        let record = event.user_record.as_ref();
        let Some(email) = record.and_then(|r| r.email.as_deref()).filter(|e| !e.trim().is_empty())
        else {
            return Ok(None);
        };
        let person = SignupFacts {
            uid,
            email: Some(email),
            email_verified: record.is_some_and(|r| r.email_verified),
            sign_in_method: event.sign_in_method.as_deref(),
        };
        let existing = record.and_then(|r| r.custom_claims.as_ref());
        let created_at = record.and_then(|r| r.metadata.as_ref()).and_then(|m| m.creation_time);
        let mut facts = InvitationFacts::new(
            person,
            claim_str(existing, "tenant_id"),
            created_at,
            self.inner.invitation_hold,
            Utc::now(),
        );
        let tenancy = &self.inner.tenancy;
        let (tenant_id, role) = loop {
            match invitation_at_sign_in(&facts) {
                InvitationStep::Read(InvitationNeed::Invitation) => {
                    let invitation = tenancy
                        .invitation(email)
                        .await
                        .map_err(|e| firestore_down(e, "reading the invitation"))?;
                    facts.invitation = Fact::Known(invitation);
                }
                InvitationStep::Read(InvitationNeed::InvitedTenant(tenant_id)) => {
                    let status = tenancy
                        .tenant_status(&tenant_id)
                        .await
                        .map_err(|e| firestore_down(e, "reading the invited tenant"))?;
                    let suspended = status == Some(TenantStatus::Suspended);
                    if suspended {
                        tracing::info!("invitation left pending: its tenant is suspended");
                    }
                    facts.invited_tenant_suspended = Fact::Known(suspended);
                }
                InvitationStep::Ignore => return Ok(None),
                InvitationStep::Confirm => {
                    tenancy
                        .confirm_invitation(email, uid)
                        .await
                        .map_err(|e| firestore_down(e, "confirming the invitation"))?;
                    tracing::info!("invitation confirmed at the first sign-in");
                    return Ok(None);
                }
                InvitationStep::Adopt { tenant_id, role } => break (tenant_id, role),
            }
        };
        // Validate the claims before consuming anything.
        let claims = merged_claims(existing, &tenant_id, role);
        let body = BlockingResponse::new()
            .custom_claims(claims)
            .to_json(BlockingEventType::BeforeSignIn)
            .map_err(|e| invalid_claims(&e, &tenant_id))?;
        let consumed = match tenancy.consume_invitation(email, uid).await {
            Ok(consumed) => consumed,
            Err(ConsumeError::Store(error)) => {
                return Err(firestore_down(error, "consuming the invitation"));
            }
            Err(lost) => {
                tracing::info!(reason = %lost, "invitation no longer available at sign-in");
                return Ok(None);
            }
        };
        let Invitation { tenant_id, role, .. } = consumed.invitation;
        tracing::Span::current().record("tenant_id", tenant_id.as_str());
        tracing::info!(%role, "proven invitee moved into the invitation's tenant");
        let announcement = UserSignup {
            v: Version,
            uid: uid.to_owned(),
            email: Some(email.to_owned()),
            tenant_id,
            role,
            tenant_is_new: false,
            event_id: event.event_id.clone(),
        };
        self.announce(&announcement).await;
        Ok(Some(body))
    }

    /// Blocked domains, the invitation for the email and the claim on its domain, read at the
    /// same time.
    async fn lookups(&self, facts: &SignupFacts<'_>) -> Result<Lookups, Error> {
        let tenancy = &self.inner.tenancy;
        let domain = facts.email_domain();
        let invitation = async {
            match facts.email {
                Some(email) => tenancy.invitation(email).await,
                None => Ok(None),
            }
        };
        let claim = async {
            match &domain {
                Some(domain) => tenancy.domain_claim(domain).await,
                None => Ok(None),
            }
        };
        let (stored_blocked, invitation, domain_claim) =
            tokio::try_join!(tenancy.blocked_domains(), invitation, claim)
                .map_err(|e| firestore_down(e, "reading the sign-up lookups"))?;
        let mut blocked_domains = self.inner.blocked_domains.clone();
        blocked_domains.extend(stored_blocked.iter().cloned());
        Ok(Lookups { blocked_domains, invitation, domain_claim })
    }

    /// Publishes the sign-up within the configured deadline. Never fails the sign-up: onboarding
    /// also provisions lazily (client API) and through the repair endpoint.
    async fn announce(&self, message: &UserSignup) {
        let deadline = self.inner.publish_deadline;
        match self
            .inner
            .bus
            .publish_within::<UserSignups>(message, Attributes::new(), deadline)
            .await
        {
            Ok(id) => tracing::debug!(message_id = %id, "sign-up announced"),
            Err(error) => tracing::warn!(
                error = %format_args!("{:#}", anyhow::Error::new(error)),
                deadline_ms = deadline.as_millis() as u64,
                "could not announce the sign-up on user-signups; answering anyway"
            ),
        }
    }
}

/// A sign-up that is let in.
#[derive(Debug)]
struct Decision {
    tenant_id: String,
    role: Role,
    source: Source,
    tenant_is_new: bool,
}

impl Decision {
    /// The 200 body: the user's claims with `tenant_id` and `role`, checked against the
    /// reserved names and the 1000-byte limit.
    fn answer(&self, existing: Option<&Map<String, Value>>) -> Result<Value, Error> {
        BlockingResponse::new()
            .custom_claims(merged_claims(existing, &self.tenant_id, self.role))
            .to_json(BlockingEventType::BeforeCreate)
            .map_err(|e| invalid_claims(&e, &self.tenant_id))
    }
}

/// The pure decision of `domain`; a blocked sign-up is refused with its client message.
fn decide(
    facts: &SignupFacts<'_>,
    lookups: &Lookups,
    now: chrono::DateTime<Utc>,
) -> Result<Decision, Error> {
    match assign_tenant(facts, lookups, now) {
        Assignment::Blocked { message } => {
            tracing::info!("sign-up blocked: {message}");
            Err(Error::reject(Code::PermissionDenied, message))
        }
        Assignment::Assigned { tenant_id, role, source, tenant_is_new } => {
            Ok(Decision { tenant_id, role, source, tenant_is_new })
        }
    }
}

/// The user's custom claims with `tenant_id` and `role` set (other claims are kept: the
/// response replaces the whole set).
fn merged_claims(
    existing: Option<&Map<String, Value>>,
    tenant_id: &str,
    role: Role,
) -> Map<String, Value> {
    let mut claims = existing.cloned().unwrap_or_default();
    claims.insert("tenant_id".to_owned(), Value::String(tenant_id.to_owned()));
    claims.insert("role".to_owned(), Value::String(role.as_str().to_owned()));
    claims
}

fn claim_str<'a>(claims: Option<&'a Map<String, Value>>, name: &str) -> Option<&'a str> {
    claims?.get(name)?.as_str()
}

fn empty() -> Value {
    Value::Object(Map::new())
}

fn require_json(headers: &HeaderMap) -> Result<(), Error> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("application/json"));
    if is_json { Ok(()) } else { Err(Error::reject(Code::InvalidArgument, CONTENT_TYPE_MESSAGE)) }
}

fn record_event(event: &BlockingEvent) {
    let span = tracing::Span::current();
    span.record("event_id", event.event_id.as_str());
    if let Some(uid) = event.uid() {
        span.record("uid", uid);
    }
}

/// A refused request: a rejection with the verifier's public message, or 503 when the
/// signing keys could not be fetched.
fn refused(error: BlockingError) -> Error {
    if error.is_retryable() {
        return Error::retry(anyhow::Error::new(error).context("verifying the blocking token"));
    }
    tracing::info!(reason = %format_args!("{error:#}"), "blocking request refused");
    Error::reject(error.code(), error.public_message())
}

fn no_user() -> Error {
    Error::reject(Code::InvalidArgument, "The blocking event names no user.")
}

fn firestore_down(error: store::Error, doing: &'static str) -> Error {
    Error::retry(anyhow::Error::new(error).context(doing))
}

fn invalid_claims(error: &gcp::blocking::ResponseError, tenant_id: &str) -> Error {
    tracing::error!(
        error = %error,
        tenant_id.bytes = tenant_id.len(),
        "refusing to send invalid custom claims"
    );
    Error::reject(Code::FailedPrecondition, INVALID_CLAIMS_MESSAGE)
}
