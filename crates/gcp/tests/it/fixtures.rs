//! Captured-shape fixtures round-trip: parse -> serialize -> reparse -> equal.

use bytes::Bytes;
use gcp::blocking::BlockingEvent;
use gcp::cloudevent::CloudEvent;
use gcp::eventarc::DocumentEventData;
use gcp::pubsub::{build_push_envelope, parse_push};
use serde_json::Value;

use crate::cloudevent::headers;
use crate::helpers::{fixture, fixture_json};
use crate::pubsub::UserSignup;

#[test]
fn push_envelopes_round_trip() {
    for name in ["pubsub-push-both-spellings.json", "pubsub-push-snake-case.json"] {
        let parsed = parse_push::<UserSignup>(&fixture(name)).unwrap();
        let rebuilt = build_push_envelope(&parsed).unwrap();
        assert_eq!(parse_push::<UserSignup>(&rebuilt).unwrap(), parsed, "{name}");
    }
    let parsed = parse_push::<Option<Value>>(&fixture("pubsub-push-attributes-only.json")).unwrap();
    let rebuilt = build_push_envelope(&parsed).unwrap();
    assert_eq!(parse_push::<Option<Value>>(&rebuilt).unwrap(), parsed);
    // The builder writes what Pub/Sub writes for the both-spellings capture.
    let original = fixture_json("pubsub-push-both-spellings.json");
    let parsed = parse_push::<Value>(&fixture("pubsub-push-both-spellings.json")).unwrap();
    let rebuilt: Value =
        serde_json::from_slice(&build_push_envelope(&parsed.map(|_| ())).unwrap()).unwrap();
    for key in
        ["messageId", "message_id", "publishTime", "publish_time", "orderingKey", "attributes"]
    {
        assert_eq!(rebuilt["message"][key], original["message"][key], "{key}");
    }
    assert_eq!(rebuilt["deliveryAttempt"], original["deliveryAttempt"]);
}

#[test]
fn the_blocking_payload_round_trips() {
    let parsed: BlockingEvent =
        serde_json::from_slice(&fixture("blocking-before-create-payload.json")).unwrap();
    let user = parsed.user_record.as_ref().unwrap();
    assert_eq!(
        user.metadata.as_ref().unwrap().creation_time.unwrap().timestamp_millis(),
        1_700_000_000_123
    );
    assert_eq!(user.tokens_valid_after_time.unwrap().timestamp(), 1_700_000_000);
    assert_eq!(
        user.multi_factor.as_ref().unwrap().enrolled_factors[0].factor_id.as_deref(),
        Some("phone")
    );
    assert_eq!(parsed.raw_user_info.as_ref().unwrap()["given_name"], "Ada");
    assert_eq!(
        parsed.oauth_access_token.as_ref().unwrap().expose(),
        "ya29.a0-example-access-token"
    );
    assert!(!format!("{parsed:?}").contains("ya29"), "OAuth tokens never reach Debug output");
    let serialized = serde_json::to_vec(&parsed).unwrap();
    let reparsed: BlockingEvent = serde_json::from_slice(&serialized).unwrap();
    assert_eq!(reparsed, parsed);
    // Same JSON as captured, modulo key order (raw_user_info is re-serialized JSON text).
    let mut original = fixture_json("blocking-before-create-payload.json");
    let mut again: Value = serde_json::from_slice(&serialized).unwrap();
    for v in [&mut original, &mut again] {
        let text = v["raw_user_info"].as_str().unwrap().to_owned();
        v["raw_user_info"] = serde_json::from_str(&text).unwrap();
    }
    assert_eq!(again, original);
}

#[test]
fn the_structured_cloud_event_round_trips() {
    let h = headers(&[("content-type", "application/cloudevents+json")]);
    let parsed =
        CloudEvent::from_http(&h, Bytes::from(fixture("cloudevent-structured-firestore.json")))
            .unwrap();
    let serialized = serde_json::to_vec(&parsed.to_structured()).unwrap();
    let reparsed = CloudEvent::from_http(&h, Bytes::from(serialized.clone())).unwrap();
    assert_eq!(reparsed, parsed);
    assert_eq!(
        serde_json::from_slice::<Value>(&serialized).unwrap(),
        fixture_json("cloudevent-structured-firestore.json")
    );
    // And through binary mode.
    let (bh, body) = parsed.to_binary().unwrap();
    assert_eq!(CloudEvent::from_http(&bh, body).unwrap(), parsed);
}

#[test]
fn document_event_data_round_trips_through_json_and_protobuf() {
    let parsed =
        DocumentEventData::from_json(&fixture("firestore-document-event-data.json")).unwrap();
    let json = parsed.to_json();
    assert_eq!(DocumentEventData::from_json_value(&json).unwrap(), parsed);
    assert_eq!(json, canonical(fixture_json("firestore-document-event-data.json")));
    let bytes = parsed.to_protobuf();
    let decoded = DocumentEventData::from_protobuf(&bytes).unwrap();
    assert_eq!(decoded, parsed);
    assert_eq!(decoded.to_protobuf(), bytes, "encoding is deterministic");
}

/// The canonical proto3 JSON of the fixture: empty arrays/maps spelled out.
fn canonical(mut v: Value) -> Value {
    let fields = &mut v["value"]["fields"];
    fields["emptyTags"] = serde_json::json!({"arrayValue": {"values": []}});
    fields["emptyStats"] = serde_json::json!({"mapValue": {"fields": {}}});
    v
}
