//! Notifications in Firestore ([`Notifications`]): the in-app inbox
//! (`users/{uid}/notifications/{id}`), its sharded unread counter (`users/{uid}/shards/unread_{n}`,
//! total in `users/{uid}.unreadNotifications` after aggregation), the registered devices
//! (`users/{uid}/config/devices`) and the recipients' preferences
//! (`users/{uid}/config/preferences`, its `notifications` map).
//!
//! Exactly once per (event, user): an entry's id is derived from the event
//! (`domain::notify::notification_id`) and it is *created* (precondition: does not exist) in
//! the same commit as its unread increment, so a redelivery or a retried fan-out page finds it
//! and neither counts nor pushes again. The push state lives on the entry:
//!
//! ```text
//! push = "none"      no push (pushes off, no device, opted for inbox only)
//! push = "pending"   a push is owed; pushAt is when it may be sent: the end of the quiet hours
//!                    for a deferred push, or the claim deadline of the sender that created it
//! push = "sent"      FCM accepted it for at least one device
//! push = "dropped"   every token was dead (pruned) or FCM refused it for good
//! ```
//! A sender that created the entry pushes at once and marks it sent; if it crashes first, the
//! entry stays `pending` with a past `pushAt` and the `deliver-deferred` job
//! ([`Notifications::due_pushes`], [`Notifications::claim_push`]) sends it, as it sends
//! deferred pushes whose time has come. A push may repeat only when a sender dies between
//! FCM's answer and the mark; the collapse key makes the device show it once.
//!
//! Marking read: the owner sets `readAt` (the only field the rules let a client write); the
//! notifier's `deliver-deferred` job finds such entries ([`Notifications::reads_to_count`]) and
//! calls [`Notifications::settle_read`], which clears `unread` and decrements the counter in
//! one transaction, once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::counters::CounterField;
use domain::notify::{Device, NotificationKind, Preferences, StoredPreferences};
use firestore::gcloud_sdk::google::firestore::v1::structured_query::field_filter::Operator;
use firestore::gcloud_sdk::google::firestore::v1::value::ValueType;
use firestore::gcloud_sdk::google::firestore::v1::{
    ArrayValue, Document, DocumentMask, MapValue, Value, Write, document_transform, write,
};
use firestore::gcloud_sdk::prost_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::counters::{increment_write, random_shard};
use crate::db::{Db, decode};
use crate::error::{Code, Error};
use crate::paths::{self, DocPath};
use crate::rpc;

/// Entries (each two writes) per optimistic commit of [`Notifications::create_entries`].
pub const CREATE_CHUNK: usize = 100;

/// Commits of one [`Notifications::create_entries`] call in flight at once.
const COMMITS_IN_FLIGHT: usize = 8;

/// The push state of an inbox entry (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    /// No push.
    None,
    /// Owed, from `push_at`.
    Pending,
    /// Accepted by FCM.
    Sent,
    /// Every token dead, or refused for good.
    Dropped,
}

impl PushState {
    /// The stored value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Dropped => "dropped",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::None, Self::Pending, Self::Sent, Self::Dropped].into_iter().find(|p| p.as_str() == s)
    }
}

/// One inbox entry as written and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// What it is about.
    pub kind: NotificationKind,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// The collapse key (FCM `collapse_key`, APNs `apns-collapse-id`, web `tag`).
    pub collapse_key: String,
    /// Ids the client opens it with (`orderId`, `postId`, `vendorId`, `streamId`).
    pub data: BTreeMap<String, String>,
    /// Who caused it (followers of a collapsed burst), appended without duplicates.
    pub actors: Vec<String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When Firestore's TTL policy deletes it.
    pub ttl_at: DateTime<Utc>,
    /// Its push.
    pub push: PushState,
    /// When a pending push may be sent.
    pub push_at: Option<DateTime<Utc>>,
}

/// The fields of an inbox entry.
pub mod fields {
    /// `kind`
    pub const KIND: &str = "kind";
    /// `push`
    pub const PUSH: &str = "push";
    /// `pushAt`
    pub const PUSH_AT: &str = "pushAt";
    /// `readAt`: set by the owner (rules).
    pub const READ_AT: &str = "readAt";
    /// `unread`: true until the read is counted.
    pub const UNREAD: &str = "unread";
    /// `actors`
    pub const ACTORS: &str = "actors";
    /// `ttlAt`: the TTL policy's field.
    pub const TTL_AT: &str = "ttlAt";
}

fn map_value(map: &BTreeMap<String, String>) -> Value {
    Value {
        value_type: Some(ValueType::MapValue(MapValue {
            fields: map.iter().map(|(k, v)| (k.clone(), rpc::string(v))).collect(),
        })),
    }
}

fn entry_document(db: &Db, path: &DocPath, entry: &InboxEntry) -> Document {
    let mut doc = Document { name: path.full_name(db.documents_root()), ..Default::default() };
    let f = &mut doc.fields;
    f.insert(fields::KIND.into(), rpc::string(entry.kind.key()));
    f.insert("title".into(), rpc::string(&entry.title));
    f.insert("body".into(), rpc::string(&entry.body));
    f.insert("collapseKey".into(), rpc::string(&entry.collapse_key));
    f.insert("data".into(), map_value(&entry.data));
    f.insert(fields::ACTORS.into(), rpc::strings(&entry.actors));
    f.insert("createdAt".into(), rpc::timestamp(entry.created_at));
    f.insert(fields::TTL_AT.into(), rpc::timestamp(entry.ttl_at));
    f.insert(fields::UNREAD.into(), rpc::boolean(true));
    f.insert(fields::READ_AT.into(), Value { value_type: Some(ValueType::NullValue(0)) });
    f.insert(fields::PUSH.into(), rpc::string(entry.push.as_str()));
    if let Some(at) = entry.push_at {
        f.insert(fields::PUSH_AT.into(), rpc::timestamp(at));
    }
    doc
}

/// Reads an inbox entry (`None` when it is not one).
pub fn entry_of(doc: &Document) -> Option<InboxEntry> {
    let data = match doc.fields.get("data").and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::MapValue(map)) => map
            .fields
            .iter()
            .filter_map(|(k, v)| match v.value_type.as_ref()? {
                ValueType::StringValue(s) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    let actors = match doc.fields.get(fields::ACTORS).and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::ArrayValue(a)) => a
            .values
            .iter()
            .filter_map(|v| match v.value_type.as_ref()? {
                ValueType::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(InboxEntry {
        kind: NotificationKind::parse(&rpc::get_string(doc, fields::KIND)?)?,
        title: rpc::get_string(doc, "title").unwrap_or_default(),
        body: rpc::get_string(doc, "body").unwrap_or_default(),
        collapse_key: rpc::get_string(doc, "collapseKey").unwrap_or_default(),
        data,
        actors,
        created_at: rpc::get_time(doc, "createdAt")?,
        ttl_at: rpc::get_time(doc, fields::TTL_AT)?,
        push: PushState::parse(&rpc::get_string(doc, fields::PUSH)?)?,
        push_at: rpc::get_time(doc, fields::PUSH_AT),
    })
}

/// What creating one entry found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Written now, with its unread increment: the caller owns its push.
    New,
    /// It existed already (an earlier delivery wrote it): nothing was written.
    Existed,
}

/// A user an event may notify, as read for a fan-out page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The user.
    pub uid: String,
    /// Their notification preferences (defaults when they have none).
    pub prefs: Preferences,
    /// Their registered devices.
    pub devices: Vec<Device>,
}

/// `users/{uid}/config/devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesDoc {
    /// Most recently seen first.
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Default, Deserialize)]
struct PreferencesDoc {
    #[serde(default)]
    notifications: Option<StoredPreferences>,
}

/// A pending push that is due, as the `deliver-deferred` job finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct DuePush {
    /// The owner.
    pub uid: String,
    /// The entry id.
    pub id: String,
    /// The entry.
    pub entry: InboxEntry,
    /// Its version when read (the claim is conditioned on it).
    pub version: Option<Timestamp>,
}

/// The inbox, devices and preferences.
#[derive(Debug, Clone)]
pub struct Notifications {
    db: Db,
}

impl Notifications {
    /// The repository on `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// The preferences and devices of `uids`, in order, in one `BatchGetDocuments`.
    pub async fn recipients(&self, uids: &[String]) -> Result<Vec<Recipient>, Error> {
        let db = &self.db;
        let mut paths_ = Vec::with_capacity(uids.len() * 2);
        for uid in uids {
            paths_.push(paths::user_preferences(uid)?);
            paths_.push(paths::user_devices(uid)?);
        }
        let names = paths_.iter().map(|p| p.full_name(db.documents_root())).collect();
        let docs = rpc::batch_get(db, names).await?;
        let mut out = Vec::with_capacity(uids.len());
        for (i, uid) in uids.iter().enumerate() {
            let prefs = match &docs[2 * i] {
                // Malformed preferences read as the defaults: a typo must not lose notifications.
                Some(doc) => decode::<PreferencesDoc>(&paths_[2 * i], doc)
                    .ok()
                    .and_then(|p| p.notifications)
                    .map(|p| p.parse())
                    .unwrap_or_default(),
                None => Preferences::default(),
            };
            let devices = match &docs[2 * i + 1] {
                Some(doc) => decode::<DevicesDoc>(&paths_[2 * i + 1], doc)
                    .map(|d| d.devices)
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            out.push(Recipient { uid: uid.clone(), prefs, devices });
        }
        Ok(out)
    }

    /// Creates each `(uid, id, entry)` with its unread increment, never over an existing
    /// entry. Optimistically [`CREATE_CHUNK`] entries per atomic commit; a chunk that meets an
    /// existing entry (a redelivery) is redone one entry per commit, so the answer says of
    /// every entry whether it is new. In the order given.
    pub async fn create_entries(
        &self,
        entries: &[(String, String, InboxEntry)],
    ) -> Result<Vec<Created>, Error> {
        let chunks: Vec<&[(String, String, InboxEntry)]> = entries.chunks(CREATE_CHUNK).collect();
        let mut out = Vec::with_capacity(entries.len());
        for group in chunks.chunks(COMMITS_IN_FLIGHT) {
            let results =
                futures::future::join_all(group.iter().map(|chunk| self.create_chunk(chunk))).await;
            for r in results {
                out.extend(r?);
            }
        }
        Ok(out)
    }

    fn create_writes(&self, uid: &str, id: &str, entry: &InboxEntry) -> Result<Vec<Write>, Error> {
        let db = &self.db;
        let path = paths::user_notification(uid, id)?;
        let mut create = Write {
            operation: Some(write::Operation::Update(entry_document(db, &path, entry))),
            ..Default::default()
        };
        create.current_document = Some(firestore::gcloud_sdk::google::firestore::v1::Precondition {
            condition_type: Some(
                firestore::gcloud_sdk::google::firestore::v1::precondition::ConditionType::Exists(
                    false,
                ),
            ),
        });
        let shard = random_shard(&paths::user(uid)?, CounterField::UnreadNotifications)?;
        Ok(vec![create, increment_write(db, &shard, 1)])
    }

    async fn create_chunk(
        &self,
        chunk: &[(String, String, InboxEntry)],
    ) -> Result<Vec<Created>, Error> {
        let mut writes = Vec::with_capacity(chunk.len() * 2);
        for (uid, id, entry) in chunk {
            writes.extend(self.create_writes(uid, id, entry)?);
        }
        match self.db.commit(writes).await {
            Ok(()) => return Ok(vec![Created::New; chunk.len()]),
            Err(e) if e.code() == Some(Code::AlreadyExists) && chunk.len() > 1 => {}
            Err(e) if e.code() == Some(Code::AlreadyExists) => return Ok(vec![Created::Existed]),
            Err(e) => return Err(e),
        }
        let mut out = Vec::with_capacity(chunk.len());
        for group in chunk.chunks(16) {
            let mut commits = Vec::with_capacity(group.len());
            for (uid, id, entry) in group {
                commits.push(self.db.commit(self.create_writes(uid, id, entry)?));
            }
            for result in futures::future::join_all(commits).await {
                out.push(match result {
                    Ok(()) => Created::New,
                    Err(e) if e.code() == Some(Code::AlreadyExists) => Created::Existed,
                    Err(e) => return Err(e),
                });
            }
        }
        Ok(out)
    }

    /// Adds `actor` to the existing entry's `actors` (without duplicates) and moves `createdAt`
    /// to `at`: a later event of a collapsed burst. No unread increment, no push.
    pub async fn add_actor(
        &self,
        uid: &str,
        id: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let db = &self.db;
        let path = paths::user_notification(uid, id)?;
        let mut doc = Document { name: path.full_name(db.documents_root()), ..Default::default() };
        doc.fields.insert("updatedAt".into(), rpc::timestamp(at));
        let write = Write {
            operation: Some(write::Operation::Update(doc)),
            update_mask: Some(DocumentMask { field_paths: vec!["updatedAt".into()] }),
            update_transforms: vec![document_transform::FieldTransform {
                field_path: fields::ACTORS.into(),
                transform_type: Some(
                    document_transform::field_transform::TransformType::AppendMissingElements(
                        ArrayValue { values: vec![rpc::string(actor)] },
                    ),
                ),
            }],
            current_document: Some(firestore::gcloud_sdk::google::firestore::v1::Precondition {
                condition_type: Some(
                    firestore::gcloud_sdk::google::firestore::v1::precondition::ConditionType::Exists(true),
                ),
            }),
        };
        db.commit(vec![write]).await
    }

    /// Sets the push state of the entries `(uid, id, state)` (in commits of up to 250).
    pub async fn mark_pushes(&self, marks: &[(String, String, PushState)]) -> Result<(), Error> {
        let db = &self.db;
        for chunk in marks.chunks(250) {
            let mut writes = Vec::with_capacity(chunk.len());
            for (uid, id, state) in chunk {
                let path = paths::user_notification(uid, id)?;
                let mut doc =
                    Document { name: path.full_name(db.documents_root()), ..Default::default() };
                doc.fields.insert(fields::PUSH.into(), rpc::string(state.as_str()));
                writes.push(Write {
                    operation: Some(write::Operation::Update(doc)),
                    update_mask: Some(DocumentMask { field_paths: vec![fields::PUSH.into()] }),
                    current_document: Some(firestore::gcloud_sdk::google::firestore::v1::Precondition {
                        condition_type: Some(
                            firestore::gcloud_sdk::google::firestore::v1::precondition::ConditionType::Exists(true),
                        ),
                    }),
                    ..Default::default()
                });
            }
            db.commit(writes).await?;
        }
        Ok(())
    }

    /// Up to `limit` pending pushes due at `now` (collection group `notifications`,
    /// `push == "pending"`, `pushAt <= now`, oldest first).
    pub async fn due_pushes(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<DuePush>, Error> {
        let db = &self.db;
        let mut query = rpc::from(paths::names::NOTIFICATIONS, true);
        query.r#where = rpc::and(vec![
            rpc::eq(fields::PUSH, rpc::string(PushState::Pending.as_str())),
            rpc::filter(fields::PUSH_AT, Operator::LessThanOrEqual, rpc::timestamp(now)),
        ]);
        query.order_by = vec![rpc::asc(fields::PUSH_AT), rpc::asc(rpc::NAME)];
        query.limit = Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        let root = format!("{}/", db.documents_root());
        Ok(docs
            .iter()
            .filter_map(|doc| {
                let relative = doc.name.strip_prefix(&root)?;
                let (uid, id) = paths::notification_of(relative)?;
                Some(DuePush {
                    uid: uid.to_owned(),
                    id: id.to_owned(),
                    entry: entry_of(doc)?,
                    version: doc.update_time,
                })
            })
            .collect())
    }

    /// Claims a due push until `until` (moves its `pushAt` there), only if the entry is
    /// unchanged since it was read: of two jobs that found it, one wins. `false` when another
    /// got it first.
    pub async fn claim_push(&self, due: &DuePush, until: DateTime<Utc>) -> Result<bool, Error> {
        let db = &self.db;
        let path = paths::user_notification(&due.uid, &due.id)?;
        let mut doc = Document { name: path.full_name(db.documents_root()), ..Default::default() };
        doc.fields.insert(fields::PUSH_AT.into(), rpc::timestamp(until));
        let write = Write {
            operation: Some(write::Operation::Update(doc)),
            update_mask: Some(DocumentMask { field_paths: vec![fields::PUSH_AT.into()] }),
            current_document: due.version.map(Db::update_time_precondition),
            ..Default::default()
        };
        match db.commit(vec![write]).await {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.code(), Some(Code::FailedPrecondition | Code::NotFound)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Up to `limit` entries their owners marked read whose read is not counted yet
    /// (collection group `notifications`, `unread == true`, `readAt` set), as (uid, id).
    pub async fn reads_to_count(&self, limit: u32) -> Result<Vec<(String, String)>, Error> {
        let db = &self.db;
        let mut query = rpc::from(paths::names::NOTIFICATIONS, true);
        query.select = rpc::select(&[rpc::NAME]);
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        query.r#where = rpc::and(vec![
            rpc::eq(fields::UNREAD, rpc::boolean(true)),
            rpc::filter(fields::READ_AT, Operator::GreaterThan, rpc::timestamp(epoch)),
        ]);
        query.order_by = vec![rpc::asc(fields::READ_AT), rpc::asc(rpc::NAME)];
        query.limit = Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        let root = format!("{}/", db.documents_root());
        Ok(docs
            .iter()
            .filter_map(|doc| {
                let (uid, id) = paths::notification_of(doc.name.strip_prefix(&root)?)?;
                Some((uid.to_owned(), id.to_owned()))
            })
            .collect())
    }

    /// Counts the read of an entry its owner marked (`readAt` set): clears `unread` and takes
    /// one off the unread counter, in one transaction, once. `false` when there was nothing to
    /// count (not read, already counted, or gone).
    pub async fn settle_read(&self, uid: &str, id: &str) -> Result<bool, Error> {
        let path = paths::user_notification(uid, id)?;
        let shard = random_shard(&paths::user(uid)?, CounterField::UnreadNotifications)?;
        let (path, shard) = (&path, &shard);
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let docs = tx.get_documents(std::slice::from_ref(path)).await?;
                    let Some(doc) = docs.into_iter().next().flatten() else {
                        return Ok::<_, Error>(false);
                    };
                    let read = rpc::get_time(&doc, fields::READ_AT).is_some();
                    let unread = rpc::get_bool(&doc, fields::UNREAD).unwrap_or(false);
                    if !(read && unread) {
                        return Ok(false);
                    }
                    let mut update = Document { name: doc.name, ..Default::default() };
                    update.fields.insert(fields::UNREAD.into(), rpc::boolean(false));
                    tx.push_write(Write {
                        operation: Some(write::Operation::Update(update)),
                        update_mask: Some(DocumentMask {
                            field_paths: vec![fields::UNREAD.into()],
                        }),
                        ..Default::default()
                    });
                    tx.push_write(increment_write(tx.db(), shard, -1));
                    Ok(true)
                })
            })
            .await
    }

    /// Sets `readAt` on the entry, as its owner's client does under the rules (the only field
    /// they may write); for tests and the local demo.
    pub async fn mark_read(&self, uid: &str, id: &str, at: DateTime<Utc>) -> Result<(), Error> {
        let db = &self.db;
        let path = paths::user_notification(uid, id)?;
        let mut doc = Document { name: path.full_name(db.documents_root()), ..Default::default() };
        doc.fields.insert(fields::READ_AT.into(), rpc::timestamp(at));
        db.commit(vec![Write {
            operation: Some(write::Operation::Update(doc)),
            update_mask: Some(DocumentMask { field_paths: vec![fields::READ_AT.into()] }),
            ..Default::default()
        }])
        .await
    }

    /// Moves a pending push's `pushAt` (tests: time passing for a deferred push).
    pub async fn set_push_at(&self, uid: &str, id: &str, at: DateTime<Utc>) -> Result<(), Error> {
        let db = &self.db;
        let path = paths::user_notification(uid, id)?;
        let mut doc = Document { name: path.full_name(db.documents_root()), ..Default::default() };
        doc.fields.insert(fields::PUSH_AT.into(), rpc::timestamp(at));
        db.commit(vec![Write {
            operation: Some(write::Operation::Update(doc)),
            update_mask: Some(DocumentMask { field_paths: vec![fields::PUSH_AT.into()] }),
            ..Default::default()
        }])
        .await
    }

    /// The entry `uid`/`id`, if any.
    pub async fn entry(&self, uid: &str, id: &str) -> Result<Option<InboxEntry>, Error> {
        let db = &self.db;
        let path = paths::user_notification(uid, id)?;
        let doc = db.get_document(&path, None).await?;
        Ok(doc.as_ref().and_then(entry_of))
    }

    /// The ids of `uid`'s inbox entries (tests and the demo; at most `limit`).
    pub async fn inbox_ids(&self, uid: &str, limit: u32) -> Result<Vec<String>, Error> {
        let db = &self.db;
        let collection = paths::user_notifications(uid)?;
        let mut query = rpc::from(paths::names::NOTIFICATIONS, false);
        query.select = rpc::select(&[rpc::NAME]);
        query.limit = Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        let parent = collection.parent_name(db.documents_root());
        let docs = rpc::run(db, parent, query).await?;
        Ok(docs.iter().map(|d| rpc::doc_id(d).to_owned()).collect())
    }

    /// The post as a new-post notification reads it, with its caption (`None` when it does
    /// not exist or is not a feed post).
    pub async fn post_for_notice(
        &self,
        post_id: &str,
    ) -> Result<Option<(domain::feed::PostFacts, String)>, Error> {
        let doc = self.db.get_document(&paths::post(post_id)?, None).await?;
        Ok(doc.and_then(|doc| {
            let facts = crate::feed::post_facts(&doc)?;
            Some((facts, rpc::get_string(&doc, "caption").unwrap_or_default()))
        }))
    }

    /// The unread count of `uid` (the sum of its shards).
    pub async fn unread(&self, uid: &str) -> Result<u64, Error> {
        crate::counters::Counters::new(&self.db)
            .read(&paths::user(uid)?, CounterField::UnreadNotifications)
            .await
    }

    /// `uid`'s devices.
    pub async fn devices(&self, uid: &str) -> Result<Vec<Device>, Error> {
        let doc: Option<DevicesDoc> = self.db.get(&paths::user_devices(uid)?).await?;
        Ok(doc.map(|d| d.devices).unwrap_or_default())
    }

    /// Rewrites `uid`'s devices with `change` applied to the current list, in a transaction
    /// (two registrations at once both land). Answers the new list.
    pub async fn update_devices<F>(&self, uid: &str, change: F) -> Result<Vec<Device>, Error>
    where
        F: Fn(Vec<Device>) -> Vec<Device> + Send + Sync,
    {
        let path = paths::user_devices(uid)?;
        let (path, change) = (&path, &change);
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let current: Option<DevicesDoc> = tx.get(path).await?;
                    let before = current.map(|d| d.devices).unwrap_or_default();
                    let devices = change(before.clone());
                    if devices != before {
                        tx.set(path, &DevicesDoc { devices: devices.clone() })?;
                    }
                    Ok::<_, Error>(devices)
                })
            })
            .await
    }

    /// Removes `tokens` (answered dead by FCM) from `uid`'s devices.
    pub async fn prune_tokens(&self, uid: &str, tokens: &[String]) -> Result<(), Error> {
        if tokens.is_empty() {
            return Ok(());
        }
        self.update_devices(uid, |mut devices| {
            devices.retain(|d| !tokens.contains(&d.token));
            devices
        })
        .await
        .map(drop)
    }
}
