//! Property tests: the Firestore value mapping (protobuf and proto3 JSON both ways, then serde)
//! and the push envelope round trip.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gcp::eventarc::DocumentEventData;
use gcp::firestore::{FirestoreDocument, GeoPoint, Value};
use gcp::pubsub::{PushEvent, build_push_envelope, parse_push};
use proptest::prelude::*;

fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    // 0001-01-01 .. 9999-12-31, nanosecond precision.
    (-62_135_596_800_i64..253_402_300_799_i64, 0_u32..1_000_000_000)
        .prop_map(|(s, n)| DateTime::<Utc>::from_timestamp(s, n).unwrap())
}

fn finite() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL | prop::num::f64::ZERO | prop::num::f64::SUBNORMAL
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::Integer),
        finite().prop_map(Value::Double),
        timestamp().prop_map(Value::Timestamp),
        ".{0,12}".prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
        "[a-z]{1,8}".prop_map(|p| Value::Reference(format!(
            "projects/p/databases/(default)/documents/c/{p}"
        ))),
        (-90.0..=90.0_f64, -180.0..=180.0_f64)
            .prop_map(|(latitude, longitude)| Value::GeoPoint(GeoPoint { latitude, longitude })),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,6}", inner, 0..4)
                .prop_map(Value::Map),
        ]
    })
}

fn document() -> impl Strategy<Value = FirestoreDocument> {
    (
        "[a-z]{1,10}",
        prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,6}", value(), 0..5),
        prop::option::of(timestamp()),
        prop::option::of(timestamp()),
    )
        .prop_map(|(id, fields, create_time, update_time)| FirestoreDocument {
            name: format!("projects/p/databases/(default)/documents/things/{id}"),
            fields,
            create_time,
            update_time,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn document_event_data_round_trips(
        value in prop::option::of(document()),
        old_value in prop::option::of(document()),
        update_mask in prop::option::of(prop::collection::vec("[a-z.]{1,8}", 0..4)),
    ) {
        let data = DocumentEventData { value, old_value, update_mask };
        prop_assert_eq!(&DocumentEventData::from_protobuf(&data.to_protobuf()).unwrap(), &data);
        let json = serde_json::to_vec(&data.to_json()).unwrap();
        prop_assert_eq!(&DocumentEventData::from_json(&json).unwrap(), &data);
    }

    #[test]
    fn plain_json_maps_into_serde_unchanged(json in plain_json()) {
        // Plain JSON -> Firestore value -> serde_json::Value through our Deserializer.
        let back: serde_json::Value = Value::from_plain_json(json.clone()).deserialize_into().unwrap();
        prop_assert_eq!(back, json);
    }

    #[test]
    fn push_envelopes_round_trip(
        id in "[0-9]{1,19}",
        time in timestamp(),
        attributes in prop::collection::btree_map("[a-zA-Z0-9_.-]{1,12}", ".{0,16}", 0..5),
        ordering_key in prop::option::of("[a-z0-9-]{1,12}"),
        delivery_attempt in prop::option::of(1_u32..100),
        data in prop::option::of(plain_json()),
    ) {
        // A message needs data or attributes.
        prop_assume!(data.as_ref().is_some_and(|d| !d.is_null()) || !attributes.is_empty());
        let event = PushEvent {
            message_id: id,
            publish_time: time,
            attributes,
            ordering_key,
            delivery_attempt,
            subscription: "projects/p/subscriptions/s".to_owned(),
            data: data.filter(|d| !d.is_null()),
        };
        let body = build_push_envelope(&event).unwrap();
        prop_assert_eq!(parse_push::<Option<serde_json::Value>>(&body).unwrap(), event);
    }
}

fn plain_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        finite().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        ".{0,10}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 20, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4).prop_map(
                |m: BTreeMap<String, serde_json::Value>| serde_json::Value::Object(
                    m.into_iter().collect()
                )
            ),
        ]
    })
}
