//! The provisioning plan of a new user (tenant, membership, user root, paper-trading secrets and
//! account snapshot, trading status, preferences), as pure data.
//!
//! `store` executes the plan in one transaction: every planned document is created only when it
//! does not exist yet, so a redelivered message changes nothing, a document the user has edited
//! since is never overwritten, and a partly provisioned user is completed. The onboarding state
//! on the user root is the one field written on every run that finds work to do.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::tenancy::Role;

/// Paper trading until the user configures live keys.
pub const ALPACA_PAPER_BASE_URL: &str = "https://paper-api.alpaca.markets";

/// Bump when the plan gains documents, so older users can be completed by a re-run.
pub const PLAN_VERSION: u32 = 1;

/// Who is being provisioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionRequest {
    pub uid: String,
    pub email: Option<String>,
    pub tenant_id: String,
    pub role: Role,
    /// True when the sign-up created the tenant (a personal tenant).
    pub tenant_is_new: bool,
}

/// The documents of the plan. `store::paths` maps each to its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// `tenants/{tenantId}`
    Tenant,
    /// `tenants/{tenantId}/users/{uid}`
    Membership,
    /// `users/{uid}`
    UserRoot,
    /// `users/{uid}/secrets/alpaca`
    AlpacaSecrets,
    /// `users/{uid}/alpacaAccounts/snapshot`
    AccountSnapshot,
    /// `users/{uid}/status/trading`
    TradingStatus,
    /// `users/{uid}/config/preferences`
    Preferences,
}

impl DocKind {
    pub const ALL: [DocKind; 7] = [
        DocKind::Tenant,
        DocKind::Membership,
        DocKind::UserRoot,
        DocKind::AlpacaSecrets,
        DocKind::AccountSnapshot,
        DocKind::TradingStatus,
        DocKind::Preferences,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Tenant => "tenant",
            DocKind::Membership => "membership",
            DocKind::UserRoot => "user_root",
            DocKind::AlpacaSecrets => "alpaca_secrets",
            DocKind::AccountSnapshot => "account_snapshot",
            DocKind::TradingStatus => "trading_status",
            DocKind::Preferences => "preferences",
        }
    }
}

/// One document to create if missing.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDoc {
    pub kind: DocKind,
    /// The fields, without the server timestamps.
    pub fields: Value,
    /// Fields set to the server's request time on create.
    pub server_timestamps: &'static [&'static str],
}

/// The documents to ensure for `req`. The tenant document is planned only for a new tenant:
/// an existing tenant (invitation, company domain) is never created or changed here.
pub fn plan(req: &ProvisionRequest) -> Vec<PlannedDoc> {
    let mut docs = Vec::with_capacity(7);
    if req.tenant_is_new {
        docs.push(PlannedDoc {
            kind: DocKind::Tenant,
            fields: json!({
                "name": tenant_name(req),
                "owner_uid": req.uid,
                "plan": "free",
                "status": "active",
            }),
            server_timestamps: &["created_at"],
        });
    }
    docs.push(PlannedDoc {
        kind: DocKind::Membership,
        fields: json!({
            "role": req.role,
            "email": req.email,
            "onboarded": true,
        }),
        server_timestamps: &["joined_at"],
    });
    docs.push(PlannedDoc {
        kind: DocKind::UserRoot,
        fields: json!({
            "email": req.email,
            "tenant_id": req.tenant_id,
            "onboarded": true,
        }),
        server_timestamps: &["created_at"],
    });
    docs.push(PlannedDoc {
        kind: DocKind::AlpacaSecrets,
        fields: json!({"configured": false, "base_url": ALPACA_PAPER_BASE_URL}),
        server_timestamps: &["created_at"],
    });
    docs.push(PlannedDoc {
        kind: DocKind::AccountSnapshot,
        fields: json!({"configured": false, "equity": "0"}),
        server_timestamps: &["updated_at"],
    });
    docs.push(PlannedDoc {
        kind: DocKind::TradingStatus,
        fields: json!({
            "enabled": false,
            "mode": "safe",
            "reason": "New user onboarding - enable trading in Settings",
        }),
        server_timestamps: &["updated_at"],
    });
    docs.push(PlannedDoc {
        kind: DocKind::Preferences,
        fields: json!({
            "theme": "dark",
            "risk_tolerance": "moderate",
            "default_allocation": 0.1,
            "max_positions": 5,
        }),
        server_timestamps: &["updated_at"],
    });
    docs
}

/// A readable default name for a personal tenant.
fn tenant_name(req: &ProvisionRequest) -> String {
    match req.email.as_deref().and_then(|e| e.split_once('@')).map(|(local, _)| local) {
        Some(local) if !local.is_empty() => format!("{local}'s workspace"),
        _ => format!("Tenant {}", req.tenant_id),
    }
}

/// What a provisioning run found and did, per document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionReport {
    pub created: Vec<DocKind>,
    pub existing: Vec<DocKind>,
}

impl ProvisionReport {
    pub fn is_noop(&self) -> bool {
        self.created.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(tenant_is_new: bool) -> ProvisionRequest {
        ProvisionRequest {
            uid: "u1".into(),
            email: Some("ada@example.com".into()),
            tenant_id: "personal-abc".into(),
            role: Role::Owner,
            tenant_is_new,
        }
    }

    #[test]
    fn a_new_tenant_gets_all_seven_documents_with_the_seed_fields() {
        let docs = plan(&req(true));
        let kinds: Vec<DocKind> = docs.iter().map(|d| d.kind).collect();
        assert_eq!(kinds, DocKind::ALL);
        let by = |k: DocKind| docs.iter().find(|d| d.kind == k).unwrap().fields.clone();
        assert_eq!(
            by(DocKind::Tenant),
            json!({"name": "ada's workspace", "owner_uid": "u1", "plan": "free", "status": "active"})
        );
        assert_eq!(
            by(DocKind::Membership),
            json!({"role": "owner", "email": "ada@example.com", "onboarded": true})
        );
        assert_eq!(
            by(DocKind::UserRoot),
            json!({"email": "ada@example.com", "tenant_id": "personal-abc", "onboarded": true})
        );
        assert_eq!(
            by(DocKind::AlpacaSecrets),
            json!({"configured": false, "base_url": "https://paper-api.alpaca.markets"})
        );
        assert_eq!(by(DocKind::AccountSnapshot), json!({"configured": false, "equity": "0"}));
        assert_eq!(by(DocKind::TradingStatus)["enabled"], json!(false));
        assert_eq!(by(DocKind::TradingStatus)["mode"], json!("safe"));
        assert_eq!(
            by(DocKind::Preferences),
            json!({"theme": "dark", "risk_tolerance": "moderate", "default_allocation": 0.1, "max_positions": 5})
        );
    }

    #[test]
    fn an_existing_tenant_is_never_planned() {
        let docs = plan(&req(false));
        assert_eq!(docs.len(), 6);
        assert!(docs.iter().all(|d| d.kind != DocKind::Tenant));
    }

    #[test]
    fn tenant_name_falls_back_without_an_email() {
        let mut r = req(true);
        r.email = None;
        assert_eq!(plan(&r)[0].fields["name"], json!("Tenant personal-abc"));
    }
}
