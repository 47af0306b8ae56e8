//! Tenant assignment at sign-up, as a pure function of what the hook looked up.
//!
//! Order of precedence (issue "Sign-up and onboarding"):
//! 1. a blocked email domain blocks the sign-up with a message the client can show;
//! 2. a pending, unexpired invitation for the email puts the user in that tenant with that role,
//!    only when the email is proven (verified, an email-link sign-in, or an SSO sign-in): an
//!    unproven sign-up with the invitee's address never gets the invitation, which stays pending
//!    for the real invitee ([`adopts_invitation`] lets them take it at a later sign-in once the
//!    email is verified);
//! 3. a verified company domain puts a user with a proven email in that tenant as member;
//! 4. otherwise a new personal tenant, with an id derived from the uid, role owner.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A member's role in a tenant. Serialized in lower case, as it appears in custom claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the identity provider told us about the person signing up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignupFacts<'a> {
    pub uid: &'a str,
    pub email: Option<&'a str>,
    pub email_verified: bool,
    /// `password`, `google.com`, `oidc.acme`, `saml.acme`, ...
    pub sign_in_method: Option<&'a str>,
}

impl SignupFacts<'_> {
    /// SAML and OIDC providers are the enterprise (SSO) sign-ins: the IdP vouches for the email.
    pub fn is_sso(&self) -> bool {
        self.sign_in_method.is_some_and(|m| m.starts_with("saml.") || m.starts_with("oidc."))
    }

    /// An email-link sign-in proves the address: the link was opened from its mailbox.
    pub fn is_email_link(&self) -> bool {
        self.sign_in_method == Some("emailLink")
    }

    /// Whether the person controls the email address: the provider says it is verified, or the
    /// sign-in itself proves it (email link, SSO). Only a proven address may take what is
    /// addressed to it (an invitation, a company domain).
    pub fn email_proven(&self) -> bool {
        self.email.is_some() && (self.email_verified || self.is_email_link() || self.is_sso())
    }

    /// The lower-cased domain of the email, if there is a well-formed one.
    pub fn email_domain(&self) -> Option<String> {
        email_domain(self.email?)
    }
}

/// How long a sign-up holds the invitation it took before the user exists. The hook takes the
/// invitation before Identity Platform creates the user; the user's first sign-in (which follows
/// the creation within seconds) makes it final. A hold that lapsed unconfirmed belongs to a
/// sign-up that never completed, and another proven sign-up may take the invitation.
pub const RESERVATION_HOLD: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// A pending invitation (`invitations/{email}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub tenant_id: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    /// Set once the invitation has been taken; a consumed invitation is never used again by
    /// anyone else, unless it is only reserved and the reservation lapsed.
    #[serde(default)]
    pub consumed_by: Option<String>,
    /// While set, `consumed_by` only reserves the invitation (the sign-up that took it may not
    /// have produced a user); once this instant passes unconfirmed, the reservation lapses.
    /// `None` with `consumed_by` set: final.
    #[serde(default)]
    pub reserved_until: Option<DateTime<Utc>>,
}

impl Invitation {
    /// Whether `uid` may take the invitation at `now`: unexpired, and pending, already theirs
    /// (a retried event), or only reserved by another uid whose reservation lapsed.
    pub fn available_to(&self, uid: &str, now: DateTime<Utc>) -> bool {
        self.expires_at > now
            && match self.consumed_by.as_deref() {
                None => true,
                Some(by) if by == uid => true,
                Some(_) => self.reserved_until.is_some_and(|until| until <= now),
            }
    }
}

/// A company domain claimed by a tenant (`tenant_domains/{domain}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainClaim {
    pub tenant_id: String,
    pub verified: bool,
}

/// Everything the hook looked up before deciding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookups {
    /// Blocked domains from config and from the Firestore config document, lower case.
    pub blocked_domains: Vec<String>,
    pub invitation: Option<Invitation>,
    pub domain_claim: Option<DomainClaim>,
}

/// Why a tenant was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Invitation,
    VerifiedDomain,
    Personal,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    Blocked { message: String },
    Assigned { tenant_id: String, role: Role, source: Source, tenant_is_new: bool },
}

/// Decides the tenant and role of a new user. Pure: `now` and the lookups are passed in.
pub fn assign_tenant(facts: &SignupFacts<'_>, lookups: &Lookups, now: DateTime<Utc>) -> Assignment {
    let domain = facts.email_domain();
    if let Some(domain) = &domain
        && lookups.blocked_domains.iter().any(|b| domain_matches(domain, b))
    {
        return Assignment::Blocked {
            message: format!("Sign-ups with an email address at {domain} are not allowed."),
        };
    }
    if let Some(invitation) = &lookups.invitation
        && facts.email_proven()
        && invitation.available_to(facts.uid, now)
    {
        return Assignment::Assigned {
            tenant_id: invitation.tenant_id.clone(),
            role: invitation.role,
            source: Source::Invitation,
            tenant_is_new: false,
        };
    }
    if let Some(claim) = &lookups.domain_claim
        && claim.verified
        && facts.email_proven()
    {
        return Assignment::Assigned {
            tenant_id: claim.tenant_id.clone(),
            role: Role::Member,
            source: Source::VerifiedDomain,
            tenant_is_new: false,
        };
    }
    Assignment::Assigned {
        tenant_id: personal_tenant_id(facts.uid),
        role: Role::Owner,
        source: Source::Personal,
        tenant_is_new: true,
    }
}

/// Whether a sign-in of an existing user takes the pending `invitation` for their email: the
/// invitee who signed up before proving the address (and so got a personal tenant) moves into
/// the invitation's tenant once the email is proven. Only a user still in their own personal
/// tenant (or without a tenant) moves; a member of another tenant is never pulled out of it.
pub fn adopts_invitation(
    facts: &SignupFacts<'_>,
    current_tenant: Option<&str>,
    invitation: &Invitation,
    now: DateTime<Utc>,
) -> bool {
    let personal = personal_tenant_id(facts.uid);
    facts.email_proven()
        && invitation.available_to(facts.uid, now)
        && current_tenant.is_none_or(|t| t == personal)
        && invitation.tenant_id != personal
}

/// `personal-` plus the first 20 hex digits of SHA-256(uid): deterministic, so a retried
/// sign-up or a re-run of provisioning lands on the same tenant, and safe as a document id
/// whatever characters the uid holds.
pub fn personal_tenant_id(uid: &str) -> String {
    let digest = Sha256::digest(uid.as_bytes());
    format!("personal-{}", &hex::encode(digest)[..20])
}

/// The lower-cased domain part of a well-formed email address.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || domain.contains(char::is_whitespace)
    {
        return None;
    }
    Some(domain.trim_end_matches('.').to_ascii_lowercase())
}

/// `blocked` blocks its own domain and every subdomain of it.
fn domain_matches(domain: &str, blocked: &str) -> bool {
    let blocked =
        blocked.trim().trim_start_matches("*.").trim_start_matches('@').to_ascii_lowercase();
    !blocked.is_empty() && (domain == blocked || domain.ends_with(&format!(".{blocked}")))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;

    fn facts<'a>(uid: &'a str, email: &'a str, verified: bool, method: &'a str) -> SignupFacts<'a> {
        SignupFacts {
            uid,
            email: Some(email),
            email_verified: verified,
            sign_in_method: Some(method),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn invitation(expires_in: Duration) -> Invitation {
        Invitation {
            tenant_id: "acme".into(),
            role: Role::Admin,
            expires_at: now() + expires_in,
            consumed_by: None,
            reserved_until: None,
        }
    }

    #[test]
    fn blocked_domain_wins_over_everything_and_covers_subdomains() {
        let lookups = Lookups {
            blocked_domains: vec!["spam.example".into()],
            invitation: Some(invitation(Duration::days(1))),
            domain_claim: None,
        };
        for email in ["a@spam.example", "a@SPAM.example", "a@mail.spam.example"] {
            let got = assign_tenant(&facts("u1", email, true, "password"), &lookups, now());
            assert!(
                matches!(got, Assignment::Blocked { ref message } if message.contains("not allowed")),
                "{email}"
            );
        }
        let ok =
            assign_tenant(&facts("u1", "a@notspam.example", true, "password"), &lookups, now());
        assert!(matches!(ok, Assignment::Assigned { .. }));
    }

    #[test]
    fn a_pending_invitation_assigns_its_tenant_and_role_to_a_proven_email() {
        let lookups =
            Lookups { invitation: Some(invitation(Duration::hours(1))), ..Lookups::default() };
        let invited = Assignment::Assigned {
            tenant_id: "acme".into(),
            role: Role::Admin,
            source: Source::Invitation,
            tenant_is_new: false,
        };
        for proven in [
            facts("u1", "a@x.example", true, "password"),
            facts("u1", "a@x.example", false, "emailLink"),
            facts("u1", "a@x.example", false, "oidc.acme"),
            facts("u1", "a@x.example", false, "saml.acme"),
        ] {
            assert_eq!(assign_tenant(&proven, &lookups, now()), invited, "{proven:?}");
        }
    }

    #[test]
    fn an_unproven_email_never_gets_an_invitation() {
        // Anyone can type newhire@acme.com into a password sign-up: the invitation (and its
        // admin role) stays pending for the person who can prove the address.
        let lookups =
            Lookups { invitation: Some(invitation(Duration::hours(1))), ..Lookups::default() };
        let got = assign_tenant(&facts("u1", "a@x.example", false, "password"), &lookups, now());
        assert_eq!(
            got,
            Assignment::Assigned {
                tenant_id: personal_tenant_id("u1"),
                role: Role::Owner,
                source: Source::Personal,
                tenant_is_new: true
            }
        );
        let no_email = SignupFacts {
            uid: "u1",
            email: None,
            email_verified: true,
            sign_in_method: Some("saml.acme"),
        };
        assert!(!no_email.email_proven());
    }

    #[test]
    fn a_lapsed_reservation_can_be_taken_over_but_a_live_or_final_one_cannot() {
        let mut reserved = invitation(Duration::hours(1));
        reserved.consumed_by = Some("ghost".into());
        reserved.reserved_until = Some(now() + Duration::minutes(1));
        assert!(reserved.available_to("ghost", now()), "a retry of the holder");
        assert!(!reserved.available_to("u1", now()), "a live reservation");
        reserved.reserved_until = Some(now() - Duration::seconds(1));
        assert!(reserved.available_to("u1", now()), "a lapsed reservation");
        let lookups = Lookups { invitation: Some(reserved.clone()), ..Lookups::default() };
        let got = assign_tenant(&facts("u1", "a@x.example", true, "password"), &lookups, now());
        assert!(matches!(got, Assignment::Assigned { source: Source::Invitation, .. }));
        reserved.reserved_until = None;
        assert!(!reserved.available_to("u1", now()), "a final consumption");
        reserved.consumed_by = None;
        reserved.expires_at = now();
        assert!(!reserved.available_to("u1", now()), "expired");
    }

    #[test]
    fn a_later_proven_sign_in_adopts_the_invitation_from_a_personal_tenant_only() {
        let pending = invitation(Duration::hours(1));
        let personal = personal_tenant_id("u1");
        let verified = facts("u1", "a@x.example", true, "password");
        assert!(adopts_invitation(&verified, Some(&personal), &pending, now()));
        assert!(adopts_invitation(&verified, None, &pending, now()));
        let unverified = facts("u1", "a@x.example", false, "password");
        assert!(!adopts_invitation(&unverified, Some(&personal), &pending, now()));
        assert!(!adopts_invitation(&verified, Some("corp"), &pending, now()));
        assert!(!adopts_invitation(&verified, Some("acme"), &pending, now()), "already there");
        let mut taken = pending;
        taken.consumed_by = Some("u2".into());
        assert!(!adopts_invitation(&verified, Some(&personal), &taken, now()));
    }

    #[test]
    fn expired_or_consumed_invitations_are_ignored() {
        let expired =
            Lookups { invitation: Some(invitation(Duration::seconds(-1))), ..Lookups::default() };
        let mut used = invitation(Duration::hours(1));
        used.consumed_by = Some("someone".into());
        // (a final consumption: no reservation pending)
        let consumed = Lookups { invitation: Some(used), ..Lookups::default() };
        for lookups in [expired, consumed] {
            let got = assign_tenant(&facts("u1", "a@x.example", true, "password"), &lookups, now());
            assert!(matches!(got, Assignment::Assigned { source: Source::Personal, .. }));
        }
    }

    #[test]
    fn verified_domain_needs_a_verified_email_or_sso() {
        let lookups = Lookups {
            domain_claim: Some(DomainClaim { tenant_id: "corp".into(), verified: true }),
            ..Lookups::default()
        };
        let verified =
            assign_tenant(&facts("u1", "a@corp.example", true, "google.com"), &lookups, now());
        assert!(matches!(
            verified,
            Assignment::Assigned { source: Source::VerifiedDomain, role: Role::Member, .. }
        ));
        let sso =
            assign_tenant(&facts("u1", "a@corp.example", false, "saml.corp"), &lookups, now());
        assert!(matches!(sso, Assignment::Assigned { source: Source::VerifiedDomain, .. }));
        let unverified =
            assign_tenant(&facts("u1", "a@corp.example", false, "password"), &lookups, now());
        assert!(matches!(unverified, Assignment::Assigned { source: Source::Personal, .. }));
        let unclaimed = Lookups {
            domain_claim: Some(DomainClaim { tenant_id: "corp".into(), verified: false }),
            ..Lookups::default()
        };
        let got =
            assign_tenant(&facts("u1", "a@corp.example", true, "password"), &unclaimed, now());
        assert!(matches!(got, Assignment::Assigned { source: Source::Personal, .. }));
    }

    #[test]
    fn personal_tenant_is_new_owned_and_deterministic() {
        let got = assign_tenant(
            &facts("u1", "a@x.example", false, "password"),
            &Lookups::default(),
            now(),
        );
        assert_eq!(
            got,
            Assignment::Assigned {
                tenant_id: personal_tenant_id("u1"),
                role: Role::Owner,
                source: Source::Personal,
                tenant_is_new: true
            }
        );
        assert_eq!(personal_tenant_id("u1"), personal_tenant_id("u1"));
        assert_ne!(personal_tenant_id("u1"), personal_tenant_id("u2"));
    }

    #[test]
    fn email_domains_are_parsed_strictly() {
        assert_eq!(email_domain("A@Example.COM").as_deref(), Some("example.com"));
        assert_eq!(email_domain("a@b@example.com").as_deref(), Some("example.com"));
        assert_eq!(email_domain("nodomain"), None);
        assert_eq!(email_domain("@example.com"), None);
        assert_eq!(email_domain("a@localhost"), None);
    }

    proptest! {
        #[test]
        fn personal_ids_are_valid_document_ids(uid in "\\PC{1,128}") {
            let id = personal_tenant_id(&uid);
            prop_assert_eq!(id.len(), "personal-".len() + 20);
            prop_assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }

        #[test]
        fn no_lookups_means_a_new_personal_tenant(uid in "[a-zA-Z0-9]{1,28}", verified: bool) {
            let got = assign_tenant(&facts(&uid, "x@y.example", verified, "password"), &Lookups::default(), now());
            let is_personal = matches!(got, Assignment::Assigned { source: Source::Personal, tenant_is_new: true, .. });
            prop_assert!(is_personal);
        }

        /// An unproven email never joins an invited tenant or a company domain's tenant, and a
        /// blocked domain never gets in: whatever the lookups hold.
        #[test]
        fn an_unproven_email_joins_no_tenant_but_its_own(
            uid in "[a-z0-9]{1,12}",
            method in prop_oneof![Just("password"), Just("google.com"), Just("phone")],
            expires in -60i64..60,
            consumed_by in proptest::option::of(
                prop_oneof![Just("u1".to_owned()), Just("ghost".to_owned())]
            ),
            claim in proptest::option::of(any::<bool>()),
            blocked: bool,
        ) {
            let unproven = facts(&uid, "a@corp.example", false, method);
            let lookups = Lookups {
                blocked_domains: if blocked { vec!["corp.example".into()] } else { Vec::new() },
                invitation: Some(Invitation {
                    consumed_by,
                    ..invitation(Duration::minutes(expires))
                }),
                domain_claim: claim
                    .map(|verified| DomainClaim { tenant_id: "corp".into(), verified }),
            };
            let got = assign_tenant(&unproven, &lookups, now());
            if blocked {
                let is_blocked = matches!(got, Assignment::Blocked { .. });
                prop_assert!(is_blocked);
            } else {
                prop_assert_eq!(got, Assignment::Assigned {
                    tenant_id: personal_tenant_id(&uid),
                    role: Role::Owner,
                    source: Source::Personal,
                    tenant_is_new: true,
                });
            }
        }
    }
}
