//! Eventarc Firestore events: protobuf and JSON data, typed documents, the encoder, and the
//! refusals (Datastore events, wrong content types, garbage).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gcp::PublicError;
use gcp::cloudevent::CloudEvent;
use gcp::eventarc::{
    AuthContext, DataEncoding, DocumentEventData, FirestoreEvent, FirestoreEventError,
    FirestoreEventKind, FirestoreEventType, encode_document_event,
};
use gcp::firestore::{FirestoreDocument, GeoPoint, Value};
use serde::Deserialize;

use crate::cloudevent::headers;
use crate::helpers::fixture;

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Post {
    author_id: String,
    title: String,
    likes: i64,
    score: f64,
    published: bool,
    archived_at: Option<DateTime<Utc>>,
    published_at: DateTime<Utc>,
    thumbnail: Vec<u8>,
    vendor: String,
    shop: GeoPoint,
    tags: Vec<serde_json::Value>,
    empty_tags: Vec<String>,
    stats: Stats,
    empty_stats: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Stats {
    views: u32,
    ratio: f64,
}

fn fixture_data() -> DocumentEventData {
    DocumentEventData::from_json(&fixture("firestore-document-event-data.json")).unwrap()
}

#[test]
fn json_document_event_data_deserializes_into_a_struct() {
    let data = fixture_data();
    let doc = data.value.as_ref().unwrap();
    assert_eq!(doc.id(), "post-42");
    assert_eq!(doc.path(), Some("posts/post-42"));
    let post: Post = doc.deserialize().unwrap();
    assert_eq!(post.likes, 9_007_199_254_740_993, "int64 beyond f64 precision stays exact");
    assert_eq!(post.archived_at, None);
    assert_eq!(post.published_at.timestamp_subsec_micros(), 789_012);
    assert_eq!(post.thumbnail, b"\x89PNG\r\n\x1a\n");
    assert_eq!(post.vendor, "projects/hearth-demo/databases/(default)/documents/vendors/vendor-7");
    assert_eq!(post.shop, GeoPoint { latitude: 51.5074, longitude: -0.1278 });
    assert_eq!(post.tags, vec![serde_json::json!("sale"), serde_json::json!(2024)]);
    assert_eq!(post.stats, Stats { views: 120, ratio: 0.5 });
    assert!(post.empty_tags.is_empty() && post.empty_stats.is_empty());
    let old: std::collections::BTreeMap<String, serde_json::Value> =
        data.old_value.as_ref().unwrap().deserialize().unwrap();
    assert_eq!(old["likes"], 2);
    assert_eq!(data.update_mask.as_ref().unwrap().len(), 12);
}

#[test]
fn binary_mode_protobuf_events_decode_like_eventarc_sends_them() {
    let mut event = FirestoreEvent::new(
        "evt-1",
        FirestoreEventType { kind: FirestoreEventKind::Updated, with_auth_context: true },
        "hearth-demo",
        "posts/post-42",
    );
    event.time = Some(DateTime::parse_from_rfc3339("2024-03-01T12:34:56.789012Z").unwrap().into());
    event.location = Some("nam5".into());
    event.auth =
        Some(AuthContext { auth_type: "service_account".into(), auth_id: Some("sa@x.iam".into()) });
    event.data = Some(fixture_data());
    let ce = encode_document_event(&event, DataEncoding::Protobuf);
    let (h, body) = ce.to_binary().unwrap();
    assert_eq!(h["content-type"], "application/protobuf");
    assert_eq!(h["ce-type"], "google.cloud.firestore.document.v1.updated.withAuthContext");
    assert_eq!(
        h["ce-source"],
        "//firestore.googleapis.com/projects/hearth-demo/databases/(default)"
    );
    assert_eq!(h["ce-subject"], "documents/posts/post-42");
    assert_eq!(h["ce-authtype"], "service_account");
    let decoded = FirestoreEvent::from_http(&h, body).unwrap();
    assert_eq!(decoded, event);
    let post: Post = decoded.data.unwrap().value.unwrap().deserialize().unwrap();
    assert_eq!(post.title, "Spring sale");

    // JSON data and structured mode carry the same event.
    let ce = encode_document_event(&event, DataEncoding::Json);
    let (h, body) = ce.to_binary().unwrap();
    assert_eq!(FirestoreEvent::from_http(&h, body).unwrap(), event);
    let structured = serde_json::to_vec(&ce.to_structured()).unwrap();
    let h = headers(&[("content-type", "application/cloudevents+json")]);
    assert_eq!(FirestoreEvent::from_http(&h, Bytes::from(structured)).unwrap(), event);
}

#[test]
fn deletes_and_dropped_payloads() {
    let mut event = FirestoreEvent::new(
        "evt-2",
        FirestoreEventType::new(FirestoreEventKind::Deleted),
        "p",
        "posts/x",
    );
    event.data = Some(DocumentEventData {
        value: None,
        old_value: fixture_data().old_value,
        update_mask: None,
    });
    let (h, body) = encode_document_event(&event, DataEncoding::Protobuf).to_binary().unwrap();
    let decoded = FirestoreEvent::from_http(&h, body).unwrap();
    assert!(decoded.data.as_ref().unwrap().value.is_none());
    assert_eq!(decoded, event);
    // Oversized documents: Eventarc drops the data.
    event.data = None;
    let (h, body) = encode_document_event(&event, DataEncoding::Protobuf).to_binary().unwrap();
    assert!(body.is_empty());
    assert_eq!(FirestoreEvent::from_http(&h, body).unwrap().data, None);
}

fn base_headers(ty: &str, content_type: Option<&str>) -> axum::http::HeaderMap {
    let mut pairs = vec![
        ("ce-specversion", "1.0"),
        ("ce-id", "evt-3"),
        ("ce-source", "//firestore.googleapis.com/projects/p/databases/(default)"),
        ("ce-type", ty),
    ];
    if let Some(ct) = content_type {
        pairs.push(("content-type", ct));
    }
    headers(&pairs)
}

#[test]
fn datastore_mode_events_are_refused_before_decoding() {
    // The "outdated data.proto" sample of google-cloudevents issue 621 is an EntityEventData.
    let h = base_headers("google.cloud.datastore.entity.v1.written", Some("application/protobuf"));
    let err = FirestoreEvent::from_http(&h, Bytes::from_static(b"\x0a\x05\x0a\x03\x0a\x01s"))
        .unwrap_err();
    assert!(matches!(err, FirestoreEventError::DatastoreEvent(_)));
    assert!(err.to_string().contains("Datastore-mode"));
    assert_eq!(err.public_message(), "Datastore-mode events are not supported");
    let h = base_headers("google.cloud.pubsub.topic.v1.messagePublished", Some("application/json"));
    assert!(matches!(
        FirestoreEvent::from_http(&h, Bytes::from_static(b"{}")),
        Err(FirestoreEventError::UnexpectedType(_))
    ));
}

#[test]
fn wrong_content_types_and_garbage_are_refused() {
    let ty = "google.cloud.firestore.document.v1.created";
    let data = Bytes::from(fixture_data().to_protobuf());
    for ct in [Some("text/plain"), Some("application/octet-stream"), None] {
        let err = FirestoreEvent::from_http(&base_headers(ty, ct), data.clone()).unwrap_err();
        assert!(matches!(err, FirestoreEventError::UnsupportedContentType(_)), "{ct:?}: {err}");
    }
    let err = FirestoreEvent::from_http(
        &base_headers(ty, Some("application/protobuf")),
        Bytes::from_static(b"\xff\xff\xff"),
    )
    .unwrap_err();
    assert!(matches!(err, FirestoreEventError::Protobuf(_)));
    let err = FirestoreEvent::from_http(
        &base_headers(ty, Some("application/json")),
        Bytes::from_static(b"{\"value\": 5}"),
    )
    .unwrap_err();
    assert!(matches!(err, FirestoreEventError::Value(_)));
    let err = FirestoreEvent::from_http(
        &base_headers(ty, Some("application/json")),
        Bytes::from_static(b"nope"),
    )
    .unwrap_err();
    assert!(matches!(err, FirestoreEventError::Json(_)));
    let bad_value = br#"{"value": {"name": "n", "fields": {"a": {"integerValue": "x"}}}}"#;
    let err = FirestoreEvent::from_http(
        &base_headers(ty, Some("application/json")),
        Bytes::from_static(bad_value),
    )
    .unwrap_err();
    assert!(matches!(err, FirestoreEventError::Value(_)), "{err}");
    assert!(err.to_string().contains("fields.a"), "{err}");
}

#[test]
fn a_document_can_be_built_from_plain_json() {
    let doc = FirestoreDocument {
        name: "projects/p/databases/(default)/documents/users/u1".into(),
        fields: match Value::from_plain_json(
            serde_json::json!({"n": 1, "x": 1.5, "s": "a", "l": [true, null]}),
        ) {
            Value::Map(m) => m,
            other => panic!("{other:?}"),
        },
        create_time: None,
        update_time: None,
    };
    assert_eq!(doc.fields["n"], Value::Integer(1));
    assert_eq!(doc.fields["x"], Value::Double(1.5));
    let ce: CloudEvent = encode_document_event(
        &FirestoreEvent {
            data: Some(DocumentEventData {
                value: Some(doc.clone()),
                ..DocumentEventData::default()
            }),
            ..FirestoreEvent::new(
                "e",
                FirestoreEventType::new(FirestoreEventKind::Created),
                "p",
                "users/u1",
            )
        },
        DataEncoding::Protobuf,
    );
    assert_eq!(DocumentEventData::from_protobuf(&ce.data).unwrap().value.unwrap(), doc);
}
