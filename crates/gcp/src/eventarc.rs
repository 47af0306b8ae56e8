//! Eventarc Firestore events (contracts 3): `google.cloud.firestore.document.v1.{created,
//! updated,deleted,written}` and their `.withAuthContext` variants, decoded from a
//! [`CloudEvent`] into a typed [`FirestoreEvent`] whose [`DocumentEventData`] came from
//! protobuf (`application/protobuf`, the production default) or proto3 JSON
//! (`application/json`); and the reverse, [`encode_document_event`], for tests and the local
//! stack (which bridges emulator changes to binary-mode CloudEvents).
//!
//! `ce-type` is checked before any decoding: a Datastore-mode database emits
//! `google.cloud.datastore.entity.v1.*` with a different message (`EntityEventData`), which
//! decodes "successfully" but wrongly with the Firestore proto (google-cloudevents issue 621),
//! so it is refused with [`FirestoreEventError::DatastoreEvent`]. An empty body means Eventarc
//! dropped the data (oversized document): `data` is `None`.

use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use prost::Message as _;
use serde_json::Value as Json;

use crate::callable::Code;
use crate::cloudevent::{CloudEvent, CloudEventError};
use crate::error::PublicError;
use crate::firestore::{FirestoreDocument, FirestoreValueError, json_field};
use crate::proto::google::events::cloud::firestore::v1 as pb;

/// Prefix of every Firestore document event type.
pub const FIRESTORE_TYPE_PREFIX: &str = "google.cloud.firestore.document.v1.";
/// Prefix of Datastore-mode entity event types (refused).
pub const DATASTORE_TYPE_PREFIX: &str = "google.cloud.datastore.entity.v1.";
/// Content type of protobuf data.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/protobuf";
/// Content type of JSON data.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// What happened to the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FirestoreEventKind {
    Created,
    Updated,
    Deleted,
    /// Any of the three (the trigger's choice; look at `value`/`old_value`).
    Written,
}

impl FirestoreEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FirestoreEventKind::Created => "created",
            FirestoreEventKind::Updated => "updated",
            FirestoreEventKind::Deleted => "deleted",
            FirestoreEventKind::Written => "written",
        }
    }
}

/// A Firestore event type: the kind, and whether auth context attributes come with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FirestoreEventType {
    pub kind: FirestoreEventKind,
    pub with_auth_context: bool,
}

impl FirestoreEventType {
    pub fn new(kind: FirestoreEventKind) -> Self {
        Self { kind, with_auth_context: false }
    }

    /// Parses a `ce-type`.
    pub fn parse(ty: &str) -> Result<Self, FirestoreEventError> {
        if ty.starts_with(DATASTORE_TYPE_PREFIX) {
            return Err(FirestoreEventError::DatastoreEvent(ty.to_owned()));
        }
        let rest = ty
            .strip_prefix(FIRESTORE_TYPE_PREFIX)
            .ok_or_else(|| FirestoreEventError::UnexpectedType(ty.to_owned()))?;
        let (kind, with_auth_context) = match rest.strip_suffix(".withAuthContext") {
            Some(kind) => (kind, true),
            None => (rest, false),
        };
        let kind = match kind {
            "created" => FirestoreEventKind::Created,
            "updated" => FirestoreEventKind::Updated,
            "deleted" => FirestoreEventKind::Deleted,
            "written" => FirestoreEventKind::Written,
            _ => return Err(FirestoreEventError::UnexpectedType(ty.to_owned())),
        };
        Ok(Self { kind, with_auth_context })
    }
}

impl fmt::Display for FirestoreEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FIRESTORE_TYPE_PREFIX}{}", self.kind.as_str())?;
        if self.with_auth_context {
            f.write_str(".withAuthContext")?;
        }
        Ok(())
    }
}

/// The payload of a Firestore document event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocumentEventData {
    /// Post-operation snapshot; `None` for deletes.
    pub value: Option<FirestoreDocument>,
    /// Pre-operation snapshot; only for updates and deletes.
    pub old_value: Option<FirestoreDocument>,
    /// Changed field paths; only for updates.
    pub update_mask: Option<Vec<String>>,
}

impl DocumentEventData {
    /// Decodes the protobuf encoding.
    pub fn from_protobuf(bytes: &[u8]) -> Result<Self, FirestoreEventError> {
        let data = pb::DocumentEventData::decode(bytes).map_err(FirestoreEventError::Protobuf)?;
        Ok(Self {
            value: data.value.map(FirestoreDocument::try_from).transpose()?,
            old_value: data.old_value.map(FirestoreDocument::try_from).transpose()?,
            update_mask: data.update_mask.map(|m| m.field_paths),
        })
    }

    /// Encodes as protobuf (deterministic: maps are ordered).
    pub fn to_protobuf(&self) -> Vec<u8> {
        pb::DocumentEventData {
            value: self.value.as_ref().map(pb::Document::from),
            old_value: self.old_value.as_ref().map(pb::Document::from),
            update_mask: self
                .update_mask
                .as_ref()
                .map(|paths| pb::DocumentMask { field_paths: paths.clone() }),
        }
        .encode_to_vec()
    }

    /// Decodes the proto3 JSON mapping (`value`, `oldValue`, `updateMask.fieldPaths`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, FirestoreEventError> {
        let json: Json =
            serde_json::from_slice(bytes).map_err(|e| FirestoreEventError::Json(e.to_string()))?;
        Self::from_json_value(&json)
    }

    /// Decodes an already-parsed proto3 JSON value.
    pub fn from_json_value(json: &Json) -> Result<Self, FirestoreEventError> {
        let Json::Object(o) = json else {
            return Err(FirestoreEventError::Json(
                "DocumentEventData must be a JSON object".to_owned(),
            ));
        };
        let update_mask = match json_field(o, "updateMask", "update_mask") {
            None => None,
            Some(Json::Object(mask)) => Some(match json_field(mask, "fieldPaths", "field_paths") {
                None => Vec::new(),
                Some(Json::Array(paths)) => paths
                    .iter()
                    .map(|p| p.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        FirestoreEventError::Json(
                            "updateMask.fieldPaths must be strings".to_owned(),
                        )
                    })?,
                Some(_) => {
                    return Err(FirestoreEventError::Json(
                        "updateMask.fieldPaths must be an array".to_owned(),
                    ));
                }
            }),
            Some(_) => {
                return Err(FirestoreEventError::Json("updateMask must be an object".to_owned()));
            }
        };
        Ok(Self {
            value: json_field(o, "value", "value")
                .map(FirestoreDocument::from_proto_json)
                .transpose()?,
            old_value: json_field(o, "oldValue", "old_value")
                .map(FirestoreDocument::from_proto_json)
                .transpose()?,
            update_mask,
        })
    }

    /// Encodes in the canonical proto3 JSON mapping.
    pub fn to_json(&self) -> Json {
        let mut o = serde_json::Map::new();
        if let Some(v) = &self.value {
            o.insert("value".to_owned(), v.to_proto_json());
        }
        if let Some(v) = &self.old_value {
            o.insert("oldValue".to_owned(), v.to_proto_json());
        }
        if let Some(paths) = &self.update_mask {
            o.insert("updateMask".to_owned(), serde_json::json!({ "fieldPaths": paths }));
        }
        Json::Object(o)
    }
}

/// `authtype`/`authid` of `.withAuthContext` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    /// `service_account`, `api_key`, `system`, `unauthenticated` or `unknown`.
    pub auth_type: String,
    pub auth_id: Option<String>,
}

/// A Firestore document event, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct FirestoreEvent {
    /// The CloudEvent id: the idempotency key.
    pub id: String,
    pub event_type: FirestoreEventType,
    /// `//firestore.googleapis.com/projects/P/databases/D`.
    pub source: String,
    /// `documents/<path>`.
    pub subject: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub database: Option<String>,
    pub namespace: Option<String>,
    /// The matched document path (`users/abc`).
    pub document: Option<String>,
    pub location: Option<String>,
    pub project: Option<String>,
    pub auth: Option<AuthContext>,
    /// `None` when Eventarc dropped the payload (oversized document).
    pub data: Option<DocumentEventData>,
}

impl FirestoreEvent {
    /// A new event for `document_path` (e.g. `posts/p1`) in `project`'s `(default)` database,
    /// with the attributes Eventarc sets; add `data`, `time` and `auth` as needed.
    pub fn new(
        id: impl Into<String>,
        event_type: FirestoreEventType,
        project: &str,
        document_path: &str,
    ) -> Self {
        let database = "(default)";
        Self {
            id: id.into(),
            event_type,
            source: format!("//firestore.googleapis.com/projects/{project}/databases/{database}"),
            subject: Some(format!("documents/{document_path}")),
            time: None,
            database: Some(database.to_owned()),
            namespace: None,
            document: Some(document_path.to_owned()),
            location: None,
            project: Some(project.to_owned()),
            auth: None,
            data: None,
        }
    }

    /// The document path from `document`, else from `subject` (`documents/<path>`).
    pub fn document_path(&self) -> Option<&str> {
        self.document
            .as_deref()
            .or_else(|| self.subject.as_deref().and_then(|s| s.strip_prefix("documents/")))
    }

    /// Parses and decodes an HTTP request (binary or structured mode).
    pub fn from_http(headers: &HeaderMap, body: Bytes) -> Result<Self, FirestoreEventError> {
        let event = CloudEvent::from_http(headers, body)?;
        Self::from_cloud_event(&event)
    }

    /// Checks the type, then decodes the data according to `datacontenttype`.
    pub fn from_cloud_event(event: &CloudEvent) -> Result<Self, FirestoreEventError> {
        let event_type = FirestoreEventType::parse(&event.ty)?;
        let data = if event.data.is_empty() {
            None
        } else {
            let essence = event
                .data_content_type
                .as_deref()
                .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
            Some(match essence.as_deref() {
                Some(PROTOBUF_CONTENT_TYPE | "application/x-protobuf") => {
                    DocumentEventData::from_protobuf(&event.data)?
                }
                Some(JSON_CONTENT_TYPE) => DocumentEventData::from_json(&event.data)?,
                _ => {
                    return Err(FirestoreEventError::UnsupportedContentType(
                        event.data_content_type.clone(),
                    ));
                }
            })
        };
        let ext = |name: &str| event.extension(name).map(str::to_owned);
        let auth =
            ext("authtype").map(|auth_type| AuthContext { auth_type, auth_id: ext("authid") });
        Ok(Self {
            id: event.id.clone(),
            event_type,
            source: event.source.clone(),
            subject: event.subject.clone(),
            time: event.time,
            database: ext("database"),
            namespace: ext("namespace"),
            document: ext("document"),
            location: ext("location"),
            project: ext("project"),
            auth,
            data,
        })
    }
}

/// How [`encode_document_event`] encodes the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataEncoding {
    /// `application/protobuf`, what Eventarc sends by default.
    #[default]
    Protobuf,
    /// `application/json` (proto3 JSON mapping).
    Json,
}

/// The CloudEvent Eventarc would deliver for `event`; send it with
/// [`CloudEvent::to_binary`] (binary mode, as Eventarc does) or [`CloudEvent::to_structured`].
pub fn encode_document_event(event: &FirestoreEvent, encoding: DataEncoding) -> CloudEvent {
    let mut ce =
        CloudEvent::new(event.id.clone(), event.source.clone(), event.event_type.to_string());
    ce.subject.clone_from(&event.subject);
    ce.time = event.time;
    let mut ext = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            ce.extensions.insert(name.to_owned(), v.clone());
        }
    };
    ext("database", &event.database);
    ext("namespace", &event.namespace);
    ext("document", &event.document);
    ext("location", &event.location);
    ext("project", &event.project);
    if let Some(auth) = &event.auth {
        ext("authtype", &Some(auth.auth_type.clone()));
        ext("authid", &auth.auth_id);
    }
    let (content_type, body) = match encoding {
        DataEncoding::Protobuf => {
            (PROTOBUF_CONTENT_TYPE, event.data.as_ref().map(DocumentEventData::to_protobuf))
        }
        DataEncoding::Json => {
            (JSON_CONTENT_TYPE, event.data.as_ref().map(|d| d.to_json().to_string().into_bytes()))
        }
    };
    ce.data_content_type = Some(content_type.to_owned());
    ce.data = body.map(Bytes::from).unwrap_or_default();
    ce
}

/// Why a Firestore event was refused. All answer `INVALID_ARGUMENT` (redelivery cannot help).
#[derive(Debug, thiserror::Error)]
pub enum FirestoreEventError {
    #[error(transparent)]
    CloudEvent(#[from] CloudEventError),
    #[error(
        "event type {0:?} is a Datastore-mode entity event (EntityEventData), not a Firestore document event; \
         this endpoint serves Firestore Native mode databases only"
    )]
    DatastoreEvent(String),
    #[error("event type {0:?} is not a Firestore document event")]
    UnexpectedType(String),
    #[error(
        "Firestore event data content type {0:?} is not application/protobuf or application/json"
    )]
    UnsupportedContentType(Option<String>),
    #[error("Firestore event data is not a DocumentEventData protobuf")]
    Protobuf(#[source] prost::DecodeError),
    #[error("Firestore event data is not DocumentEventData JSON: {0}")]
    Json(String),
    #[error(transparent)]
    Value(#[from] FirestoreValueError),
}

impl PublicError for FirestoreEventError {
    fn code(&self) -> Code {
        match self {
            FirestoreEventError::CloudEvent(e) => e.code(),
            _ => Code::InvalidArgument,
        }
    }

    fn public_message(&self) -> String {
        match self {
            FirestoreEventError::CloudEvent(e) => e.public_message(),
            FirestoreEventError::DatastoreEvent(_) => {
                "Datastore-mode events are not supported".to_owned()
            }
            FirestoreEventError::UnexpectedType(_) => "unexpected event type".to_owned(),
            FirestoreEventError::UnsupportedContentType(_) => {
                "unsupported event data content type".to_owned()
            }
            _ => "malformed Firestore event data".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_parse_and_display() {
        for s in [
            "google.cloud.firestore.document.v1.created",
            "google.cloud.firestore.document.v1.updated",
            "google.cloud.firestore.document.v1.deleted",
            "google.cloud.firestore.document.v1.written.withAuthContext",
        ] {
            assert_eq!(FirestoreEventType::parse(s).unwrap().to_string(), s);
        }
        assert!(matches!(
            FirestoreEventType::parse("google.cloud.datastore.entity.v1.written"),
            Err(FirestoreEventError::DatastoreEvent(_))
        ));
        for bad in [
            "google.cloud.firestore.document.v1.moved",
            "google.cloud.pubsub.topic.v1.messagePublished",
            "",
        ] {
            assert!(
                matches!(
                    FirestoreEventType::parse(bad),
                    Err(FirestoreEventError::UnexpectedType(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn garbage_protobuf_is_an_error() {
        assert!(matches!(
            DocumentEventData::from_protobuf(&[0xff, 0xff, 0xff]),
            Err(FirestoreEventError::Protobuf(_))
        ));
    }
}
