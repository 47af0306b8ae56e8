//! Who may re-run provisioning for whom (the `POST /provision` repair endpoint), as pure rules.
//!
//! - **Operator**: a Google service account allowed by configuration. May repair any user in any
//!   tenant, and may set `tenant_is_new` to recreate a personal tenant document that was lost.
//! - **Tenant admin**: a signed-in user whose `tenant_id` claim is the requested tenant *and*
//!   whose membership document says `owner` or `admin` (the document decides, so a stale or
//!   forged role claim grants nothing). An admin repairs only users already in that tenant,
//!   cannot grant a role above their own, and cannot create tenants.
//!
//! The role only matters when the membership document is missing: an existing one is never
//! overwritten, like every other provisioned document.

use serde::Deserialize;

use crate::tenancy::Role;

/// The body of `POST /provision`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairRequest {
    /// The user to provision.
    pub uid: String,
    /// The tenant the user belongs to.
    pub tenant_id: String,
    /// The role, used when the membership document has to be created.
    pub role: Role,
    /// The user's email, used when documents that carry it have to be created.
    #[serde(default)]
    pub email: Option<String>,
    /// Create the tenant document too if it is missing (operators only; default false: the
    /// tenant must exist).
    #[serde(default)]
    pub tenant_is_new: bool,
}

/// Who is asking, with what the rules need to know about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester<'a> {
    /// A Google service account allowed by `HEARTH_OIDC_ALLOWED_EMAILS`.
    Operator,
    /// A signed-in Firebase user.
    TenantAdmin {
        /// Their `tenant_id` custom claim.
        claimed_tenant: Option<&'a str>,
        /// The role of their membership document in the requested tenant, if they have one.
        membership: Option<Role>,
    },
}

/// What is known about the user being repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetFacts {
    /// `users/{uid}.tenant_id`, when the root exists and has it.
    pub root_tenant: Option<String>,
    /// Whether `tenants/{tenant}/users/{uid}` exists for the requested tenant.
    pub member_of_requested_tenant: bool,
}

/// Why a repair is refused (403; the messages are shown to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("you can only repair users of your own tenant")]
    OtherTenant,
    #[error("only owners and admins of the tenant can repair its users")]
    NotAdmin,
    #[error("only operators can create tenants")]
    CannotCreateTenant,
    #[error("you cannot grant a role above your own")]
    RoleAboveOwn,
    #[error("the user is not a member of this tenant")]
    TargetNotInTenant,
    #[error("only operators can suspend tenants")]
    OperatorsOnly,
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Owner => 3,
        Role::Admin => 2,
        Role::Member => 1,
    }
}

/// Whether `requester` may repair users of `req.tenant_id` with `req`'s role and options.
pub fn authorize_requester(requester: &Requester<'_>, req: &RepairRequest) -> Result<(), Denied> {
    let Requester::TenantAdmin { claimed_tenant, membership } = requester else { return Ok(()) };
    if *claimed_tenant != Some(req.tenant_id.as_str()) {
        return Err(Denied::OtherTenant);
    }
    let own = match membership {
        Some(role @ (Role::Owner | Role::Admin)) => *role,
        Some(Role::Member) | None => return Err(Denied::NotAdmin),
    };
    if req.tenant_is_new {
        return Err(Denied::CannotCreateTenant);
    }
    if rank(req.role) > rank(own) {
        return Err(Denied::RoleAboveOwn);
    }
    Ok(())
}

/// Whether `requester` may remove a member whose membership in `tenant_id` says `target_role`
/// (`POST /members/remove`). Operators may remove anyone; a tenant admin only members of their
/// own tenant (claim and membership document, as for repairs), and never someone above their
/// own role (an admin cannot remove an owner).
pub fn authorize_removal(
    requester: &Requester<'_>,
    tenant_id: &str,
    target_role: Role,
) -> Result<(), Denied> {
    let Requester::TenantAdmin { claimed_tenant, membership } = requester else { return Ok(()) };
    if *claimed_tenant != Some(tenant_id) {
        return Err(Denied::OtherTenant);
    }
    let own = match membership {
        Some(role @ (Role::Owner | Role::Admin)) => *role,
        Some(Role::Member) | None => return Err(Denied::NotAdmin),
    };
    if rank(target_role) > rank(own) {
        return Err(Denied::RoleAboveOwn);
    }
    Ok(())
}

/// Whether `requester` may suspend a tenant (`POST /tenants/suspend`): operators only.
pub fn authorize_suspension(requester: &Requester<'_>) -> Result<(), Denied> {
    match requester {
        Requester::Operator => Ok(()),
        Requester::TenantAdmin { .. } => Err(Denied::OperatorsOnly),
    }
}

/// Whether the target of `req` belongs to the requested tenant (checked for tenant admins).
pub fn authorize_target(req: &RepairRequest, facts: &TargetFacts) -> Result<(), Denied> {
    let belongs = match &facts.root_tenant {
        Some(tenant) => *tenant == req.tenant_id,
        None => facts.member_of_requested_tenant,
    };
    if belongs { Ok(()) } else { Err(Denied::TargetNotInTenant) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(role: Role) -> RepairRequest {
        RepairRequest {
            uid: "target".to_owned(),
            tenant_id: "acme".to_owned(),
            role,
            email: None,
            tenant_is_new: false,
        }
    }

    fn admin(role: Option<Role>) -> Requester<'static> {
        Requester::TenantAdmin { claimed_tenant: Some("acme"), membership: role }
    }

    #[test]
    fn operators_may_do_anything() {
        let mut r = req(Role::Owner);
        r.tenant_is_new = true;
        assert_eq!(authorize_requester(&Requester::Operator, &r), Ok(()));
    }

    #[test]
    fn tenant_admins_are_checked_against_their_membership_and_tenant() {
        assert_eq!(authorize_requester(&admin(Some(Role::Admin)), &req(Role::Member)), Ok(()));
        assert_eq!(authorize_requester(&admin(Some(Role::Admin)), &req(Role::Admin)), Ok(()));
        assert_eq!(authorize_requester(&admin(Some(Role::Owner)), &req(Role::Owner)), Ok(()));
        assert_eq!(
            authorize_requester(&admin(Some(Role::Admin)), &req(Role::Owner)),
            Err(Denied::RoleAboveOwn)
        );
        assert_eq!(
            authorize_requester(&admin(Some(Role::Member)), &req(Role::Member)),
            Err(Denied::NotAdmin)
        );
        assert_eq!(authorize_requester(&admin(None), &req(Role::Member)), Err(Denied::NotAdmin));
        let other =
            Requester::TenantAdmin { claimed_tenant: Some("evil"), membership: Some(Role::Owner) };
        assert_eq!(authorize_requester(&other, &req(Role::Member)), Err(Denied::OtherTenant));
        let unclaimed =
            Requester::TenantAdmin { claimed_tenant: None, membership: Some(Role::Owner) };
        assert_eq!(authorize_requester(&unclaimed, &req(Role::Member)), Err(Denied::OtherTenant));
        let mut new_tenant = req(Role::Member);
        new_tenant.tenant_is_new = true;
        assert_eq!(
            authorize_requester(&admin(Some(Role::Owner)), &new_tenant),
            Err(Denied::CannotCreateTenant)
        );
    }

    #[test]
    fn targets_must_already_belong_to_the_tenant() {
        let r = req(Role::Member);
        let root = |t: &str| TargetFacts {
            root_tenant: Some(t.to_owned()),
            member_of_requested_tenant: false,
        };
        assert_eq!(authorize_target(&r, &root("acme")), Ok(()));
        assert_eq!(authorize_target(&r, &root("other")), Err(Denied::TargetNotInTenant));
        let member_only = TargetFacts { root_tenant: None, member_of_requested_tenant: true };
        assert_eq!(authorize_target(&r, &member_only), Ok(()));
        assert_eq!(authorize_target(&r, &TargetFacts::default()), Err(Denied::TargetNotInTenant));
        // A membership does not override a root that names another tenant.
        let conflicting =
            TargetFacts { root_tenant: Some("other".to_owned()), member_of_requested_tenant: true };
        assert_eq!(authorize_target(&r, &conflicting), Err(Denied::TargetNotInTenant));
    }

    #[test]
    fn removals_stay_inside_the_admins_tenant_and_rank() {
        assert_eq!(authorize_removal(&Requester::Operator, "acme", Role::Owner), Ok(()));
        assert_eq!(authorize_removal(&admin(Some(Role::Admin)), "acme", Role::Member), Ok(()));
        assert_eq!(authorize_removal(&admin(Some(Role::Owner)), "acme", Role::Owner), Ok(()));
        assert_eq!(
            authorize_removal(&admin(Some(Role::Admin)), "acme", Role::Owner),
            Err(Denied::RoleAboveOwn)
        );
        assert_eq!(
            authorize_removal(&admin(Some(Role::Owner)), "other", Role::Member),
            Err(Denied::OtherTenant),
            "an admin of acme removing a member of another tenant"
        );
        assert_eq!(
            authorize_removal(&admin(Some(Role::Member)), "acme", Role::Member),
            Err(Denied::NotAdmin)
        );
        assert_eq!(authorize_suspension(&Requester::Operator), Ok(()));
        assert_eq!(authorize_suspension(&admin(Some(Role::Owner))), Err(Denied::OperatorsOnly));
    }

    #[test]
    fn bodies_are_strict() {
        let ok: RepairRequest =
            serde_json::from_str(r#"{"uid":"u","tenant_id":"t","role":"member","email":"a@b.c"}"#)
                .unwrap();
        assert_eq!(ok.email.as_deref(), Some("a@b.c"));
        assert!(!ok.tenant_is_new);
        assert!(
            serde_json::from_str::<RepairRequest>(r#"{"uid":"u","tenant_id":"t","role":"root"}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<RepairRequest>(
                r#"{"uid":"u","tenant_id":"t","role":"member","x":1}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<RepairRequest>(r#"{"uid":"u","role":"member"}"#).is_err());
    }
}
