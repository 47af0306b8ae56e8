//! Sign-in admission: whether an existing user may sign in, with which custom claims, and whether
//! a sign-in moves them into the tenant of a pending invitation. Sign-up (a new user) is decided
//! by [`crate::tenancy::assign_tenant`].
//!
//! The hook reads Firestore only for what a decision needs, so each decision is a step function
//! over [`Fact`]s: a fact the decision needs but the caller has not read yet makes it answer
//! "read this" ([`SignIn::Read`], [`InvitationStep::Read`]); the caller reads it, fills it in and
//! asks again. With every fact known the answer is always final, so the loop ends after at most
//! two reads.
//!
//! The rules:
//! - a suspended tenant admits nobody; a missing membership refuses only a user whose user root
//!   says they were onboarded into that tenant (right after sign-up, onboarding has not run yet);
//! - claims are rewritten only when the stored role or tenant differs from the claimed one;
//! - a user without claims falls back to the tenant their user root names once onboarded;
//! - an invitation is looked at only for a fresh account (its sign-up may hold a reservation,
//!   which the first sign-in makes final) or for a proven email still in its personal tenant
//!   (which moves into the invitation's tenant, unless that tenant is suspended).

use chrono::{DateTime, TimeDelta, Utc};

use crate::tenancy::{Invitation, Role, SignupFacts, adopts_invitation, personal_tenant_id};

/// A fact the hook reads from Firestore only when a decision asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact<T> {
    /// Not read yet.
    Unread,
    /// Read: this is what Firestore holds.
    Known(T),
}

impl<T> Fact<T> {
    /// The value, if read.
    pub fn known(&self) -> Option<&T> {
        match self {
            Fact::Unread => None,
            Fact::Known(value) => Some(value),
        }
    }
}

/// What the sign-in decision reads of `users/{uid}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootFacts {
    /// The tenant the user was provisioned into.
    pub tenant_id: Option<String>,
    /// Whether onboarding completed.
    pub onboarded: bool,
}

impl RootFacts {
    /// Whether onboarding completed for the user in `tenant_id`.
    pub fn onboarded_into(&self, tenant_id: &str) -> bool {
        self.onboarded && self.tenant_id.as_deref() == Some(tenant_id)
    }
}

/// What the sign-in decision reads of the tenant it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantFacts {
    /// `tenants/{t}` has `status: suspended`.
    pub suspended: bool,
    /// The role of `tenants/{t}/users/{uid}`, if the membership exists.
    pub membership: Option<Role>,
}

/// Everything the sign-in decision may look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFacts<'a> {
    /// The `tenant_id` custom claim the user holds, if any.
    pub claimed_tenant: Option<&'a str>,
    /// The `role` custom claim the user holds, if any.
    pub claimed_role: Option<&'a str>,
    /// `users/{uid}`: `Known(None)` when it does not exist.
    pub user_root: Fact<Option<RootFacts>>,
    /// The tenant checked (the claimed one, or the user root's), once read.
    pub tenant: Fact<TenantFacts>,
}

impl<'a> SignInFacts<'a> {
    /// Facts with nothing read yet.
    pub fn new(claimed_tenant: Option<&'a str>, claimed_role: Option<&'a str>) -> Self {
        Self { claimed_tenant, claimed_role, user_root: Fact::Unread, tenant: Fact::Unread }
    }
}

/// What the sign-in decision needs read next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// `users/{uid}`.
    UserRoot,
    /// The status of `tenants/{t}` and the user's membership there.
    Tenant(String),
}

/// Why a sign-in is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The tenant is suspended.
    TenantSuspended,
    /// The user was onboarded into the tenant and their membership is gone.
    MembershipRemoved,
}

/// The sign-in decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// Read this fact and decide again.
    Read(Need),
    /// Let the user in with the claims they hold.
    Admit,
    /// Let the user in with `tenant_id` and `role` as claims.
    RefreshClaims { tenant_id: String, role: Role },
    /// Refuse the sign-in.
    Refuse(Refusal),
}

/// Decides a sign-in of an existing user (after [`invitation_at_sign_in`] left them where they
/// are). Pure and total; see the module documentation for the rules.
pub fn admit_sign_in(facts: &SignInFacts<'_>) -> SignIn {
    let tenant_id = match facts.claimed_tenant {
        Some(tenant) => tenant,
        // No claims yet (a user from before the hook): the provisioned tenant, once onboarded.
        None => match &facts.user_root {
            Fact::Unread => return SignIn::Read(Need::UserRoot),
            Fact::Known(Some(RootFacts { tenant_id: Some(tenant), onboarded: true })) => {
                tenant.as_str()
            }
            Fact::Known(_) => return SignIn::Admit,
        },
    };
    let tenant = match &facts.tenant {
        Fact::Unread => return SignIn::Read(Need::Tenant(tenant_id.to_owned())),
        Fact::Known(tenant) => tenant,
    };
    if tenant.suspended {
        return SignIn::Refuse(Refusal::TenantSuspended);
    }
    match tenant.membership {
        Some(role) => {
            if facts.claimed_tenant == Some(tenant_id) && facts.claimed_role == Some(role.as_str())
            {
                SignIn::Admit
            } else {
                SignIn::RefreshClaims { tenant_id: tenant_id.to_owned(), role }
            }
        }
        None => match &facts.user_root {
            Fact::Unread => SignIn::Read(Need::UserRoot),
            Fact::Known(Some(root)) if root.onboarded_into(tenant_id) => {
                SignIn::Refuse(Refusal::MembershipRemoved)
            }
            Fact::Known(_) => SignIn::Admit,
        },
    }
}

/// Everything the invitation side of a sign-in may look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationFacts<'a> {
    /// The person signing in; `email` is the non-blank address of the account.
    pub person: SignupFacts<'a>,
    /// The `tenant_id` custom claim the user holds, if any.
    pub claimed_tenant: Option<&'a str>,
    /// When the account was created, if the identity provider said.
    pub created_at: Option<DateTime<Utc>>,
    /// How long a sign-up's invitation reservation waits for the user.
    pub hold: TimeDelta,
    pub now: DateTime<Utc>,
    /// `invitations/{email}`: `Known(None)` when there is none.
    pub invitation: Fact<Option<Invitation>>,
    /// Whether the invitation's tenant is suspended, once read.
    pub invited_tenant_suspended: Fact<bool>,
}

impl<'a> InvitationFacts<'a> {
    /// Facts with nothing read yet.
    pub fn new(
        person: SignupFacts<'a>,
        claimed_tenant: Option<&'a str>,
        created_at: Option<DateTime<Utc>>,
        hold: TimeDelta,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            person,
            claimed_tenant,
            created_at,
            hold,
            now,
            invitation: Fact::Unread,
            invited_tenant_suspended: Fact::Unread,
        }
    }

    /// Created within the hold: its sign-up may hold an invitation reservation.
    pub fn is_fresh(&self) -> bool {
        self.created_at.is_some_and(|created| self.now - created <= self.hold)
    }

    /// A proven email still in its personal tenant (or without one) may move.
    pub fn may_move(&self) -> bool {
        let personal = personal_tenant_id(self.person.uid);
        self.person.email_proven() && self.claimed_tenant.is_none_or(|t| t == personal.as_str())
    }
}

/// What the invitation side of the sign-in needs read next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitationNeed {
    /// `invitations/{email}`.
    Invitation,
    /// The status of the invitation's tenant.
    InvitedTenant(String),
}

/// The invitation side of a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitationStep {
    /// Read this fact and decide again.
    Read(InvitationNeed),
    /// Nothing to do with an invitation: decide the sign-in with [`admit_sign_in`].
    Ignore,
    /// The user's own sign-up reserved the invitation: make it final, then decide the sign-in.
    Confirm,
    /// Move the user into the invitation's tenant with its role (consuming the invitation; if
    /// it was taken meanwhile, decide the sign-in instead).
    Adopt { tenant_id: String, role: Role },
}

/// Decides the invitation side of a sign-in. Pure and total; see the module documentation.
pub fn invitation_at_sign_in(facts: &InvitationFacts<'_>) -> InvitationStep {
    if facts.person.email.is_none_or(|e| e.trim().is_empty()) {
        return InvitationStep::Ignore;
    }
    if !facts.is_fresh() && !facts.may_move() {
        return InvitationStep::Ignore;
    }
    let invitation = match &facts.invitation {
        Fact::Unread => return InvitationStep::Read(InvitationNeed::Invitation),
        Fact::Known(None) => return InvitationStep::Ignore,
        Fact::Known(Some(invitation)) => invitation,
    };
    if invitation.consumed_by.as_deref() == Some(facts.person.uid)
        && invitation.reserved_until.is_some()
    {
        return InvitationStep::Confirm;
    }
    if !adopts_invitation(&facts.person, facts.claimed_tenant, invitation, facts.now) {
        return InvitationStep::Ignore;
    }
    match facts.invited_tenant_suspended {
        Fact::Unread => {
            InvitationStep::Read(InvitationNeed::InvitedTenant(invitation.tenant_id.clone()))
        }
        // The invitation stays pending while its tenant is suspended.
        Fact::Known(true) => InvitationStep::Ignore,
        Fact::Known(false) => {
            InvitationStep::Adopt { tenant_id: invitation.tenant_id.clone(), role: invitation.role }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    /// Drives the sign-in decision with an oracle answering every read: the decision, the
    /// number of reads, and whether the tenant was read.
    fn drive_sign_in(
        mut facts: SignInFacts<'_>,
        root: Option<RootFacts>,
        tenant: TenantFacts,
    ) -> (SignIn, usize) {
        for reads in 0..=3 {
            match admit_sign_in(&facts) {
                SignIn::Read(Need::UserRoot) => facts.user_root = Fact::Known(root.clone()),
                SignIn::Read(Need::Tenant(_)) => facts.tenant = Fact::Known(tenant),
                done => return (done, reads),
            }
        }
        panic!("the sign-in decision asked for more than two reads")
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Owner), Just(Role::Admin), Just(Role::Member)]
    }

    fn tenant_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("acme".to_owned()),
            Just("corp".to_owned()),
            Just(personal_tenant_id("u1"))
        ]
    }

    fn root() -> impl Strategy<Value = Option<RootFacts>> {
        proptest::option::of(
            (proptest::option::of(tenant_name()), any::<bool>())
                .prop_map(|(tenant_id, onboarded)| RootFacts { tenant_id, onboarded }),
        )
    }

    fn tenant_facts() -> impl Strategy<Value = TenantFacts> {
        (any::<bool>(), proptest::option::of(role()))
            .prop_map(|(suspended, membership)| TenantFacts { suspended, membership })
    }

    fn invitation() -> impl Strategy<Value = Invitation> {
        (
            tenant_name(),
            role(),
            -120i64..120,
            proptest::option::of(prop_oneof![Just("u1".to_owned()), Just("u2".to_owned())]),
            proptest::option::of(-20i64..20),
        )
            .prop_map(|(tenant_id, role, expires, consumed_by, reserved)| Invitation {
                tenant_id,
                role,
                expires_at: now() + Duration::minutes(expires),
                consumed_by,
                reserved_until: reserved.map(|m| now() + Duration::minutes(m)),
            })
    }

    #[test]
    fn a_matching_membership_admits_without_new_claims() {
        let facts = SignInFacts::new(Some("acme"), Some("admin"));
        let member = TenantFacts { suspended: false, membership: Some(Role::Admin) };
        assert_eq!(drive_sign_in(facts, None, member), (SignIn::Admit, 1));
        let changed = SignInFacts::new(Some("acme"), Some("member"));
        assert_eq!(
            drive_sign_in(changed, None, member).0,
            SignIn::RefreshClaims { tenant_id: "acme".into(), role: Role::Admin }
        );
    }

    #[test]
    fn a_user_without_claims_is_checked_in_the_tenant_they_were_onboarded_into() {
        let facts = SignInFacts::new(None, None);
        assert_eq!(admit_sign_in(&facts), SignIn::Read(Need::UserRoot));
        let root = RootFacts { tenant_id: Some("acme".into()), onboarded: true };
        let member = TenantFacts { suspended: false, membership: Some(Role::Member) };
        assert_eq!(
            drive_sign_in(facts.clone(), Some(root.clone()), member),
            (SignIn::RefreshClaims { tenant_id: "acme".into(), role: Role::Member }, 2)
        );
        let not_yet = RootFacts { onboarded: false, ..root };
        assert_eq!(drive_sign_in(facts.clone(), Some(not_yet), member), (SignIn::Admit, 1));
        assert_eq!(drive_sign_in(facts, None, member), (SignIn::Admit, 1));
    }

    #[test]
    fn a_missing_membership_refuses_only_after_onboarding_into_that_tenant() {
        let facts = SignInFacts::new(Some("acme"), Some("member"));
        let gone = TenantFacts { suspended: false, membership: None };
        let onboarded = RootFacts { tenant_id: Some("acme".into()), onboarded: true };
        assert_eq!(
            drive_sign_in(facts.clone(), Some(onboarded), gone),
            (SignIn::Refuse(Refusal::MembershipRemoved), 2)
        );
        let elsewhere = RootFacts { tenant_id: Some("corp".into()), onboarded: true };
        assert_eq!(drive_sign_in(facts.clone(), Some(elsewhere), gone).0, SignIn::Admit);
        assert_eq!(drive_sign_in(facts, None, gone).0, SignIn::Admit);
    }

    #[test]
    fn a_proven_invitee_in_their_personal_tenant_moves_unless_the_tenant_is_suspended() {
        let personal = personal_tenant_id("u1");
        let person = SignupFacts {
            uid: "u1",
            email: Some("a@x.example"),
            email_verified: true,
            sign_in_method: Some("password"),
        };
        let mut facts =
            InvitationFacts::new(person, Some(&personal), None, Duration::minutes(10), now());
        assert_eq!(invitation_at_sign_in(&facts), InvitationStep::Read(InvitationNeed::Invitation));
        facts.invitation = Fact::Known(Some(Invitation {
            tenant_id: "acme".into(),
            role: Role::Admin,
            expires_at: now() + Duration::days(1),
            consumed_by: None,
            reserved_until: None,
        }));
        assert_eq!(
            invitation_at_sign_in(&facts),
            InvitationStep::Read(InvitationNeed::InvitedTenant("acme".into()))
        );
        facts.invited_tenant_suspended = Fact::Known(true);
        assert_eq!(invitation_at_sign_in(&facts), InvitationStep::Ignore);
        facts.invited_tenant_suspended = Fact::Known(false);
        assert_eq!(
            invitation_at_sign_in(&facts),
            InvitationStep::Adopt { tenant_id: "acme".into(), role: Role::Admin }
        );
    }

    #[test]
    fn a_fresh_account_confirms_its_own_reservation() {
        let person = SignupFacts {
            uid: "u1",
            email: Some("a@x.example"),
            email_verified: false,
            sign_in_method: Some("password"),
        };
        let created = Some(now() - Duration::minutes(1));
        let mut facts =
            InvitationFacts::new(person, Some("acme"), created, Duration::minutes(10), now());
        assert!(facts.is_fresh() && !facts.may_move());
        facts.invitation = Fact::Known(Some(Invitation {
            tenant_id: "acme".into(),
            role: Role::Admin,
            expires_at: now() + Duration::days(1),
            consumed_by: Some("u1".into()),
            reserved_until: Some(now() + Duration::minutes(9)),
        }));
        assert_eq!(invitation_at_sign_in(&facts), InvitationStep::Confirm);
        facts.created_at = Some(now() - Duration::minutes(11));
        assert_eq!(
            invitation_at_sign_in(&facts),
            InvitationStep::Ignore,
            "neither fresh nor movable"
        );
    }

    proptest! {
        /// Totality: with an oracle for every read the decision ends within two reads, and it
        /// never refuses or rewrites claims without having read the tenant.
        #[test]
        fn sign_in_decisions_end(
            claimed_tenant in proptest::option::of(tenant_name()),
            claimed_role in proptest::option::of(role()),
            root in root(),
            tenant in tenant_facts(),
        ) {
            let facts = SignInFacts::new(claimed_tenant.as_deref(), claimed_role.map(Role::as_str));
            let (decision, reads) = drive_sign_in(facts, root, tenant);
            prop_assert!(reads <= 2);
            if reads == 0 {
                prop_assert_eq!(decision, SignIn::Admit);
            }
        }

        /// A suspended tenant never lets anyone in: whenever there is a tenant to check (a
        /// claimed one, or the one an onboarded user root names), the sign-in is refused.
        #[test]
        fn a_suspended_tenant_never_admits(
            claimed_tenant in proptest::option::of(tenant_name()),
            claimed_role in proptest::option::of(role()),
            root in root(),
            membership in proptest::option::of(role()),
        ) {
            let facts = SignInFacts::new(claimed_tenant.as_deref(), claimed_role.map(Role::as_str));
            let suspended = TenantFacts { suspended: true, membership };
            let has_tenant = claimed_tenant.is_some()
                || root.as_ref().is_some_and(|r| r.onboarded && r.tenant_id.is_some());
            let (decision, _) = drive_sign_in(facts, root, suspended);
            if has_tenant {
                prop_assert_eq!(decision, SignIn::Refuse(Refusal::TenantSuspended));
            } else {
                prop_assert_eq!(decision, SignIn::Admit);
            }
        }

        /// New claims always carry the stored membership's role in the checked tenant.
        #[test]
        fn refreshed_claims_are_the_membership(
            claimed_tenant in tenant_name(),
            claimed_role in proptest::option::of(role()),
            root in root(),
            tenant in tenant_facts(),
        ) {
            let facts = SignInFacts::new(Some(&claimed_tenant), claimed_role.map(Role::as_str));
            let (decision, _) = drive_sign_in(facts, root, tenant);
            if let SignIn::RefreshClaims { tenant_id, role } = decision {
                prop_assert_eq!(tenant_id, claimed_tenant);
                prop_assert_eq!(Some(role), tenant.membership);
                prop_assert!(claimed_role != Some(role));
            }
        }

        /// The invitation side: an unproven email never joins an invited tenant, a suspended
        /// invited tenant is never joined, a member of another tenant is never pulled out, and
        /// the decision ends within two reads.
        #[test]
        fn invitation_steps_are_safe_and_end(
            uid in prop_oneof![Just("u1"), Just("u2")],
            verified: bool,
            method in prop_oneof![
                Just("password"),
                Just("emailLink"),
                Just("saml.acme"),
                Just("google.com"),
            ],
            claimed in proptest::option::of(tenant_name()),
            created in proptest::option::of(-30i64..0),
            invitation in proptest::option::of(invitation()),
            suspended: bool,
        ) {
            let person = SignupFacts {
                uid,
                email: Some("a@x.example"),
                email_verified: verified,
                sign_in_method: Some(method),
            };
            let proven = person.email_proven();
            let mut facts = InvitationFacts::new(
                person,
                claimed.as_deref(),
                created.map(|m| now() + Duration::minutes(m)),
                Duration::minutes(10),
                now(),
            );
            let mut reads = 0;
            let step = loop {
                match invitation_at_sign_in(&facts) {
                    InvitationStep::Read(InvitationNeed::Invitation) => {
                        facts.invitation = Fact::Known(invitation.clone());
                    }
                    InvitationStep::Read(InvitationNeed::InvitedTenant(_)) => {
                        facts.invited_tenant_suspended = Fact::Known(suspended);
                    }
                    done => break done,
                }
                reads += 1;
                prop_assert!(reads <= 2);
            };
            if let InvitationStep::Adopt { tenant_id, role } = step {
                let invitation = invitation.unwrap();
                prop_assert!(proven);
                prop_assert!(!suspended);
                prop_assert_eq!(&tenant_id, &invitation.tenant_id);
                prop_assert_eq!(role, invitation.role);
                prop_assert!(claimed.is_none_or(|t| t == personal_tenant_id(uid)));
                prop_assert!(invitation.available_to(uid, now()));
            }
        }
    }
}
