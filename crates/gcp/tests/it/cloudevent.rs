//! CloudEvents over HTTP: structured fixture, binary-mode malformations.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use gcp::PublicError;
use gcp::cloudevent::{CloudEvent, CloudEventError};

use crate::helpers::fixture;

pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn the_structured_fixture_parses() {
    let h = headers(&[("content-type", "application/cloudevents+json")]);
    let event =
        CloudEvent::from_http(&h, Bytes::from(fixture("cloudevent-structured-firestore.json")))
            .unwrap();
    assert_eq!(event.ty, "google.cloud.firestore.document.v1.written");
    assert_eq!(event.subject.as_deref(), Some("documents/posts/post-42"));
    assert_eq!(event.extension("location"), Some("nam5"));
    assert_eq!(event.data_content_type.as_deref(), Some("application/json"));
    assert!(event.data_schema.is_some());
    let data: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
    assert_eq!(data["value"]["fields"]["likes"]["integerValue"], "3");
}

#[test]
fn binary_mode_without_ce_id_is_refused() {
    let h = headers(&[
        ("ce-specversion", "1.0"),
        ("ce-source", "//firestore.googleapis.com/projects/p/databases/(default)"),
        ("ce-type", "google.cloud.firestore.document.v1.created"),
        ("content-type", "application/protobuf"),
    ]);
    let err = CloudEvent::from_http(&h, Bytes::from_static(b"\x0a\x00")).unwrap_err();
    assert!(matches!(err, CloudEventError::MissingAttribute("id")));
    assert_eq!(err.public_message(), "not a CloudEvent: missing id");
    assert_eq!(err.code().http_status(), 400);
}

#[test]
fn a_plain_request_is_not_a_cloud_event() {
    let h = headers(&[("content-type", "application/json")]);
    let err = CloudEvent::from_http(&h, Bytes::from_static(b"{}")).unwrap_err();
    assert!(matches!(err, CloudEventError::MissingAttribute("specversion")));
    let h = headers(&[("content-type", "application/cloudevents+xml")]);
    assert!(matches!(
        CloudEvent::from_http(&h, Bytes::new()),
        Err(CloudEventError::UnsupportedFormat(_))
    ));
    let structured = headers(&[("content-type", "application/cloudevents+json")]);
    let v03 = serde_json::json!({"specversion": "0.3", "id": "1", "source": "s", "type": "t"});
    assert!(matches!(
        CloudEvent::from_http(&structured, Bytes::from(v03.to_string())),
        Err(CloudEventError::UnsupportedSpecVersion(_))
    ));
    let nested = serde_json::json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "ext": {"a": 1}});
    assert!(matches!(
        CloudEvent::from_http(&structured, Bytes::from(nested.to_string())),
        Err(CloudEventError::BadAttribute(_))
    ));
    let both = serde_json::json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": 1, "data_base64": "AA=="});
    assert!(matches!(
        CloudEvent::from_http(&structured, Bytes::from(both.to_string())),
        Err(CloudEventError::BadAttribute(_))
    ));
}
