//! Provisioning: executes `domain::onboarding::plan` as one atomic commit, creating only what
//! is missing, with server timestamps, and records the onboarding state on the user root.
//!
//! ```text
//! provision(db, req)
//!   read every planned document (and, for an existing tenant, the tenant document), in one
//!   `BatchGetDocuments` round trip
//!   invited user whose tenant is missing     -> Error::Invalid (permanent; tenants are never invented)
//!   all present, root says complete at this plan version -> no-op, nothing written
//!   otherwise ONE Commit:
//!     each missing document: create (precondition exists=false) + REQUEST_TIME transforms
//!     user root missing: created with `onboarding` in it
//!     user root present: `onboarding` only (update mask), precondition update_time = as read
//!   commit refused on a precondition (ALREADY_EXISTS / FAILED_PRECONDITION / NOT_FOUND):
//!     someone else wrote in between -> read again and re-plan (bounded)
//!   retryable failure (UNAVAILABLE, ABORTED, ...) -> backoff of DbConfig, then again
//! ```
//!
//! Why one precondition-guarded `Commit` rather than [`Db::run_transaction`]: the store's
//! [`Tx`](crate::Tx) queues whole-document writes only, so inside it a creation could not carry
//! `REQUEST_TIME` transforms and the user root could not be merged field by field (a full
//! rewrite of a document the user may have edited would round-trip its values through serde and
//! turn its timestamps into strings). A `Commit` whose every write is guarded by a precondition
//! is all-or-nothing and is exactly the optimistic transaction the Firestore client SDKs run:
//! reads, then writes that only apply if nothing they depend on changed
//! (`exists=false` for creations, the read `update_time` for the root merge). A concurrent
//! provisioner makes the commit fail as a whole, and the next round sees its documents, so each
//! document is created once however many deliveries race.
//!
//! Server timestamps: every created document gets its `PlannedDoc::server_timestamps` fields
//! (and the root `onboarding.completed_at`) from `REQUEST_TIME` transforms, so all documents of
//! one run carry the same server time (millisecond precision, when Firestore received the commit).

use std::collections::HashMap;

use domain::onboarding::{DocKind, PLAN_VERSION, PlannedDoc, ProvisionReport, ProvisionRequest};
use domain::tenancy::Role;
use firestore::gcloud_sdk::google::firestore::v1::document_transform::FieldTransform;
use firestore::gcloud_sdk::google::firestore::v1::document_transform::field_transform::{
    ServerValue, TransformType,
};
use firestore::gcloud_sdk::google::firestore::v1::precondition::ConditionType;
use firestore::gcloud_sdk::google::firestore::v1::{Document, DocumentMask, Precondition, Write};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::db::{Db, decode};
use crate::error::{Code, Error};
use crate::paths::{self, DocPath, PathError};

/// The field of `users/{uid}` that records the onboarding state.
pub const ONBOARDING_FIELD: &str = "onboarding";

/// The `state` of a finished onboarding.
pub const STATE_COMPLETE: &str = "complete";

/// How many times a run re-plans after losing a race to another writer before giving up with
/// a retryable `ABORTED` (each lost race means the other writer made progress, so this is
/// reached only under pathological contention).
const MAX_CONFLICTS: u32 = 8;

/// The onboarding state on the user root (`users/{uid}.onboarding`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnboardingState {
    /// `complete` once every planned document exists.
    pub state: String,
    /// The [`PLAN_VERSION`] the user was provisioned with.
    pub plan_version: u32,
    /// The documents the run that recorded this state created.
    #[serde(default)]
    pub created: Vec<DocKind>,
}

impl OnboardingState {
    /// Whether this state says the user is provisioned at the current plan version.
    pub fn is_current(&self) -> bool {
        self.state == STATE_COMPLETE && self.plan_version >= PLAN_VERSION
    }
}

/// A tenant membership (`tenants/{tenantId}/users/{uid}`), as far as access checks need it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Membership {
    /// The member's role in the tenant.
    pub role: Role,
}

/// The document of `kind` for `req`.
pub fn doc_path(kind: DocKind, req: &ProvisionRequest) -> Result<DocPath, PathError> {
    let uid = req.uid.as_str();
    match kind {
        DocKind::Tenant => paths::tenant(&req.tenant_id),
        DocKind::Membership => paths::tenant_member(&req.tenant_id, uid),
        DocKind::UserRoot => paths::user(uid),
        DocKind::AlpacaSecrets => paths::user_alpaca_secret(uid),
        DocKind::AccountSnapshot => paths::user_alpaca_snapshot(uid),
        DocKind::TradingStatus => paths::user_trading_status(uid),
        DocKind::Preferences => paths::user_preferences(uid),
    }
}

/// The tenancy fields of `users/{uid}`.
#[derive(Deserialize)]
struct RootTenancy {
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    onboarded: bool,
}

impl RootTenancy {
    fn onboarded_into(&self, tenant_id: &str) -> bool {
        self.onboarded && self.tenant_id.as_deref() == Some(tenant_id)
    }
}

async fn provision_with(
    db: &Db,
    req: &ProvisionRequest,
    refuse_removed: bool,
) -> Result<ProvisionReport, Error> {
    let targets = targets(req)?;
    let backoff = db.config().transaction_backoff;
    let mut conflicts = 0u32;
    let mut failures = 0u32;
    loop {
        let error = match attempt(db, req, &targets, refuse_removed).await {
            Ok(report) => return Ok(report),
            Err(Failure::Conflict(error)) => {
                conflicts += 1;
                if conflicts > MAX_CONFLICTS {
                    return Err(Error::rpc(
                        Code::Aborted,
                        format!("provisioning lost {conflicts} races in a row: {error}"),
                    ));
                }
                tracing::debug!(uid = %req.uid, %error, "provisioning raced another writer; re-planning");
                continue;
            }
            Err(Failure::Other(error)) => error,
        };
        failures += 1;
        if !error.is_retryable() || !backoff.should_retry(failures) {
            return Err(error);
        }
        let draw = rand::random::<f64>();
        let delay = if error.code() == Some(Code::ResourceExhausted) {
            backoff.exhausted_delay(draw)
        } else {
            backoff.delay(failures, draw)
        };
        tracing::debug!(uid = %req.uid, %error, ?delay, "provisioning failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// One planned document and where it lives.
struct Target {
    doc: PlannedDoc,
    path: DocPath,
}

struct Targets {
    docs: Vec<Target>,
    /// The existing tenant an invited user joins (checked, never written).
    joined_tenant: Option<DocPath>,
}

fn targets(req: &ProvisionRequest) -> Result<Targets, Error> {
    let docs = domain::onboarding::plan(req)
        .into_iter()
        .map(|doc| Ok(Target { path: doc_path(doc.kind, req)?, doc }))
        .collect::<Result<Vec<_>, PathError>>()?;
    let joined_tenant = if req.tenant_is_new { None } else { Some(paths::tenant(&req.tenant_id)?) };
    Ok(Targets { docs, joined_tenant })
}

enum Failure {
    /// The commit was refused by a precondition: another writer got there first.
    Conflict(Error),
    Other(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Other(error)
    }
}

async fn attempt(
    db: &Db,
    req: &ProvisionRequest,
    targets: &Targets,
    refuse_removed: bool,
) -> Result<ProvisionReport, Failure> {
    // Every target and the joined tenant in one round trip (one `BatchGetDocuments`).
    let root = db.documents_root();
    let mut names: Vec<String> = targets.docs.iter().map(|t| t.path.full_name(root)).collect();
    if let Some(path) = &targets.joined_tenant {
        names.push(path.full_name(root));
    }
    let mut found = crate::rpc::batch_get(db, names).await?;
    let tenant_exists = targets.joined_tenant.as_ref().map(|_| found.pop().flatten().is_some());
    if tenant_exists == Some(false) {
        return Err(Failure::Other(Error::Invalid(format!(
            "tenant {} does not exist: a user who joins an existing tenant (invitation, company \
             domain) cannot be provisioned into a missing one, and onboarding never creates it",
            req.tenant_id
        ))));
    }

    let mut report = ProvisionReport::default();
    let mut root: Option<(&Target, Option<&Document>)> = None;
    for (target, doc) in targets.docs.iter().zip(&found) {
        if doc.is_some() {
            report.existing.push(target.doc.kind);
        } else {
            report.created.push(target.doc.kind);
        }
        if target.doc.kind == DocKind::UserRoot {
            root = Some((target, doc.as_ref()));
        }
    }
    let (root_target, root_doc) =
        root.ok_or_else(|| Error::Invalid("the provisioning plan has no user root".to_owned()))?;
    if refuse_removed && report.created.contains(&DocKind::Membership) {
        // Provisioning creates the root and the membership in one commit, so an onboarded root
        // without its membership means the member was removed.
        let onboarded = root_doc
            .and_then(|doc| decode::<RootTenancy>(&root_target.path, doc).ok())
            .is_some_and(|root| root.onboarded_into(&req.tenant_id));
        if onboarded {
            return Err(Failure::Other(Error::MembershipRemoved {
                tenant_id: req.tenant_id.clone(),
                uid: req.uid.clone(),
            }));
        }
    }
    let state_current = root_doc
        .and_then(|doc| read_state(&root_target.path, doc))
        .is_some_and(|state| state.is_current());
    if report.created.is_empty() && state_current {
        return Ok(report);
    }

    let state = OnboardingState {
        state: STATE_COMPLETE.to_owned(),
        plan_version: PLAN_VERSION,
        created: report.created.clone(),
    };
    let mut writes = Vec::with_capacity(report.created.len() + 1);
    for (target, doc) in targets.docs.iter().zip(&found) {
        if doc.is_some() || target.doc.kind == DocKind::UserRoot {
            continue;
        }
        writes.push(create_write(
            db,
            &target.path,
            &target.doc.fields,
            target.doc.server_timestamps,
        )?);
    }
    writes.push(match root_doc {
        None => {
            let mut fields = root_target.doc.fields.clone();
            if let Value::Object(map) = &mut fields {
                map.insert(ONBOARDING_FIELD.to_owned(), json!(state));
            }
            let mut write =
                create_write(db, &root_target.path, &fields, root_target.doc.server_timestamps)?;
            write.update_transforms.push(request_time(&completed_at_path()));
            write
        }
        Some(doc) => merge_state_write(db, &root_target.path, doc, &state)?,
    });
    match db.commit(writes).await {
        Ok(()) => {
            tracing::info!(
                uid = %req.uid,
                tenant_id = %req.tenant_id,
                created = ?report.created,
                "provisioned"
            );
            Ok(report)
        }
        Err(error)
            if matches!(
                error.code(),
                Some(Code::AlreadyExists | Code::FailedPrecondition | Code::NotFound)
            ) =>
        {
            Err(Failure::Conflict(error))
        }
        Err(error) => Err(Failure::Other(error)),
    }
}

/// The onboarding state in a user root document, if it has a readable one.
fn read_state(path: &DocPath, doc: &Document) -> Option<OnboardingState> {
    #[derive(Deserialize)]
    struct Root {
        #[serde(default)]
        onboarding: Option<OnboardingState>,
    }
    match decode::<Root>(path, doc) {
        Ok(root) => root.onboarding,
        Err(error) => {
            // A user-edited root whose `onboarding` is not ours: treat as not onboarded, so the
            // field is written again (only that field).
            tracing::warn!(%error, "unreadable onboarding state; it will be recorded again");
            None
        }
    }
}

/// `onboarding.completed_at`
fn completed_at_path() -> String {
    format!("{ONBOARDING_FIELD}.completed_at")
}

fn request_time(field_path: &str) -> FieldTransform {
    FieldTransform {
        field_path: field_path.to_owned(),
        transform_type: Some(TransformType::SetToServerValue(ServerValue::RequestTime as i32)),
    }
}

/// Creates `path` with `fields` (fails the commit if it exists) and the server timestamps.
fn create_write(
    db: &Db,
    path: &DocPath,
    fields: &Value,
    server_timestamps: &[&str],
) -> Result<Write, Error> {
    let mut write = db.create_write(path, fields)?;
    write.update_transforms = server_timestamps.iter().map(|f| request_time(f)).collect();
    Ok(write)
}

/// Sets only `onboarding` on an existing root, if it is still the version that was read.
fn merge_state_write(
    db: &Db,
    path: &DocPath,
    read: &Document,
    state: &OnboardingState,
) -> Result<Write, Error> {
    let update_time = read.update_time.ok_or_else(|| Error::Decode {
        path: path.relative(),
        message: "the document was read without an update time".to_owned(),
    })?;
    let mut write = db.set_write(path, &HashMap::from([(ONBOARDING_FIELD, state)]))?;
    write.update_mask = Some(DocumentMask { field_paths: vec![ONBOARDING_FIELD.to_owned()] });
    write.update_transforms = vec![request_time(&completed_at_path())];
    write.current_document =
        Some(Precondition { condition_type: Some(ConditionType::UpdateTime(update_time)) });
    Ok(write)
}

/// The user's documents: provisioning, memberships, removal and suspension.
#[derive(Debug, Clone)]
pub struct Onboarding {
    db: Db,
}

impl Onboarding {
    /// The repository on `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// Reads the membership of `uid` in `tenant_id` (`None` when there is none).
    pub async fn membership(
        &self,
        tenant_id: &str,
        uid: &str,
    ) -> Result<Option<Membership>, Error> {
        let db = &self.db;
        db.get(&paths::tenant_member(tenant_id, uid)?).await
    }

    /// The `tenant_id` recorded on `users/{uid}` (`None` when the root or the field is missing).
    pub async fn user_tenant(&self, uid: &str) -> Result<Option<String>, Error> {
        let db = &self.db;
        #[derive(Deserialize)]
        struct Root {
            #[serde(default)]
            tenant_id: Option<String>,
        }
        Ok(db.get::<Root>(&paths::user(uid)?).await?.and_then(|root| root.tenant_id))
    }

    /// Deletes the membership `tenants/{tenant_id}/users/{uid}`. Answers the role it had, `None`
    /// when there was none (nothing deleted).
    pub async fn remove_member(&self, tenant_id: &str, uid: &str) -> Result<Option<Role>, Error> {
        let db = &self.db;
        let path = paths::tenant_member(tenant_id, uid)?;
        let Some(member) = db.get::<Membership>(&path).await? else { return Ok(None) };
        db.delete(&path).await?;
        tracing::info!(%tenant_id, %uid, "membership removed");
        Ok(Some(member.role))
    }

    /// Sets `tenants/{tenant_id}.status` to `suspended` (that field only) and answers the uids of
    /// every member. `Ok(None)` when the tenant does not exist.
    pub async fn suspend_tenant(&self, tenant_id: &str) -> Result<Option<Vec<String>>, Error> {
        let db = &self.db;
        let path = paths::tenant(tenant_id)?;
        let mut write = db.set_write(&path, &json!({"status": "suspended"}))?;
        write.update_mask = Some(DocumentMask { field_paths: vec!["status".to_owned()] });
        write.current_document =
            Some(Precondition { condition_type: Some(ConditionType::Exists(true)) });
        match db.commit(vec![write]).await {
            Ok(()) => {}
            Err(error) if error.code() == Some(Code::NotFound) => return Ok(None),
            Err(error) => return Err(error),
        }
        tracing::info!(%tenant_id, "tenant suspended");
        let mut query = crate::rpc::from(paths::names::USERS, false);
        query.select = crate::rpc::select(&[crate::rpc::NAME]);
        let docs = crate::rpc::run(db, path.full_name(db.documents_root()), query).await?;
        Ok(Some(docs.iter().map(|doc| crate::rpc::doc_id(doc).to_owned()).collect()))
    }

    /// The onboarding state recorded on `users/{uid}` (`None` when absent or unreadable).
    pub async fn onboarding_state(&self, uid: &str) -> Result<Option<OnboardingState>, Error> {
        let db = &self.db;
        let path = paths::user(uid)?;
        let Some(doc) = db.get_document(&path, None).await? else { return Ok(None) };
        Ok(read_state(&path, &doc))
    }

    /// Provisions `req`: creates every planned document that is missing, never touches one that
    /// exists, and records the onboarding state on the user root. A fully provisioned user is a
    /// no-op (nothing is written). See the module docs for the concurrency argument.
    ///
    /// Errors: [`Error::Invalid`] when the user joins an existing tenant (`tenant_is_new` false)
    /// whose document does not exist (permanent: onboarding never invents tenants);
    /// [`Error::Path`] for ids Firestore cannot store; retryable errors after the retry budget.
    pub async fn provision(&self, req: &ProvisionRequest) -> Result<ProvisionReport, Error> {
        let db = &self.db;
        provision_with(db, req, false).await
    }

    /// [`Onboarding::provision`] for a sign-up message or a token's claims: refuses with
    /// [`Error::MembershipRemoved`] (and writes nothing) when the user root says the user was
    /// onboarded into `req.tenant_id` and the membership no longer exists. A removed member is
    /// never re-instated from a stale claim or a late message; only an explicit repair
    /// ([`Onboarding::provision`], `POST /provision`) or a new invitation brings them back.
    pub async fn provision_new(&self, req: &ProvisionRequest) -> Result<ProvisionReport, Error> {
        let db = &self.db;
        provision_with(db, req, true).await
    }

    /// Whether `users/{uid}` says the user was onboarded into `tenant_id` and their membership
    /// there is gone (a removed member). Two reads.
    pub async fn membership_removed(&self, tenant_id: &str, uid: &str) -> Result<bool, Error> {
        // One `BatchGetDocuments`, one snapshot: two separate reads could see the membership
        // before provisioning's commit and the root after it, which looks exactly like a removed
        // member (provisioning creates both in that one commit).
        let db = &self.db;
        let root_path = paths::user(uid)?;
        let member_path = paths::tenant_member(tenant_id, uid)?;
        let root = db.documents_root();
        let docs =
            crate::rpc::batch_get(db, vec![root_path.full_name(root), member_path.full_name(root)])
                .await?;
        let (root_doc, member_doc) = match docs.as_slice() {
            [root, member] => (root.as_ref(), member.as_ref()),
            _ => {
                return Err(Error::Invalid(
                    "BatchGetDocuments answered the wrong count".to_owned(),
                ));
            }
        };
        let onboarded = root_doc
            .map(|doc| decode::<RootTenancy>(&root_path, doc))
            .transpose()?
            .is_some_and(|r| r.onboarded_into(tenant_id));
        Ok(member_doc.is_none() && onboarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(tenant_is_new: bool) -> ProvisionRequest {
        ProvisionRequest {
            uid: "u1".to_owned(),
            email: Some("ada@example.com".to_owned()),
            tenant_id: "t1".to_owned(),
            role: Role::Owner,
            tenant_is_new,
        }
    }

    #[test]
    fn every_planned_document_has_its_seed_path() {
        let r = req(true);
        let paths: Vec<String> =
            DocKind::ALL.iter().map(|k| doc_path(*k, &r).unwrap().relative()).collect();
        assert_eq!(
            paths,
            [
                "tenants/t1",
                "tenants/t1/users/u1",
                "users/u1",
                "users/u1/secrets/alpaca",
                "users/u1/alpacaAccounts/snapshot",
                "users/u1/status/trading",
                "users/u1/config/preferences",
            ]
        );
        let t = targets(&req(false)).unwrap();
        assert_eq!(t.docs.len(), 6);
        assert_eq!(t.joined_tenant.unwrap().relative(), "tenants/t1");
        assert!(targets(&req(true)).unwrap().joined_tenant.is_none());
    }

    #[test]
    fn ids_firestore_cannot_store_are_refused_before_any_io() {
        let mut r = req(true);
        r.uid = "a/b".to_owned();
        assert!(matches!(targets(&r), Err(Error::Path(_))));
    }

    #[test]
    fn only_a_complete_state_at_the_current_version_is_current() {
        let mut s = OnboardingState {
            state: STATE_COMPLETE.to_owned(),
            plan_version: PLAN_VERSION,
            created: vec![],
        };
        assert!(s.is_current());
        s.plan_version = PLAN_VERSION - 1;
        assert!(!s.is_current());
        s.plan_version = PLAN_VERSION;
        s.state = "started".to_owned();
        assert!(!s.is_current());
    }
}
