//! Tenant assignment at sign-up, as a pure function of what the hook looked up.
//!
//! Order of precedence (issue "Sign-up and onboarding"):
//! 1. a blocked email domain blocks the sign-up with a message the client can show;
//! 2. a pending, unexpired invitation for the email puts the user in that tenant with that role;
//! 3. a verified company domain puts a user with a verified email (or an SSO sign-in) in that
//!    tenant as member;
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

    /// The lower-cased domain of the email, if there is a well-formed one.
    pub fn email_domain(&self) -> Option<String> {
        email_domain(self.email?)
    }
}

/// A pending invitation (`invitations/{email}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub tenant_id: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    /// Set once the invitation has been used; a consumed invitation is never used again.
    #[serde(default)]
    pub consumed_by: Option<String>,
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
        && invitation.consumed_by.is_none()
        && invitation.expires_at > now
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
        && (facts.email_verified || facts.is_sso())
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
    fn a_pending_invitation_assigns_its_tenant_and_role() {
        let lookups =
            Lookups { invitation: Some(invitation(Duration::hours(1))), ..Lookups::default() };
        let got = assign_tenant(&facts("u1", "a@x.example", false, "password"), &lookups, now());
        assert_eq!(
            got,
            Assignment::Assigned {
                tenant_id: "acme".into(),
                role: Role::Admin,
                source: Source::Invitation,
                tenant_is_new: false
            }
        );
    }

    #[test]
    fn expired_or_consumed_invitations_are_ignored() {
        let expired =
            Lookups { invitation: Some(invitation(Duration::seconds(-1))), ..Lookups::default() };
        let mut used = invitation(Duration::hours(1));
        used.consumed_by = Some("someone".into());
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
    }
}
