//! Firestore documents as the emulator's Listen stream delivers them (the `firestore` crate's
//! generated `google.firestore.v1` types) into `gcp`'s typed [`FirestoreDocument`], the value
//! Eventarc events carry. Pure conversions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use firestore::gcloud_sdk::google::firestore::v1 as fs;
use firestore::gcloud_sdk::google::firestore::v1::value::ValueType;
use gcp::firestore::{FirestoreDocument, GeoPoint, Value};

/// A timestamp of the wire into UTC (`None` when out of range).
pub fn timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

/// One value. Values that only exist in queries and pipelines (field references, functions)
/// never appear in stored documents; they become `Null`.
pub fn value(v: &fs::Value) -> Value {
    match &v.value_type {
        None | Some(ValueType::NullValue(_)) => Value::Null,
        Some(ValueType::BooleanValue(b)) => Value::Boolean(*b),
        Some(ValueType::IntegerValue(i)) => Value::Integer(*i),
        Some(ValueType::DoubleValue(d)) => Value::Double(*d),
        Some(ValueType::TimestampValue(ts)) => timestamp(ts).map_or(Value::Null, Value::Timestamp),
        Some(ValueType::StringValue(s)) => Value::String(s.clone()),
        Some(ValueType::BytesValue(b)) => Value::Bytes(b.clone()),
        Some(ValueType::ReferenceValue(r)) => Value::Reference(r.clone()),
        Some(ValueType::GeoPointValue(p)) => {
            Value::GeoPoint(GeoPoint { latitude: p.latitude, longitude: p.longitude })
        }
        Some(ValueType::ArrayValue(a)) => Value::Array(a.values.iter().map(value).collect()),
        Some(ValueType::MapValue(m)) => Value::Map(fields(&m.fields)),
        Some(_) => Value::Null,
    }
}

fn fields(map: &std::collections::HashMap<String, fs::Value>) -> BTreeMap<String, Value> {
    map.iter().map(|(k, v)| (k.clone(), value(v))).collect()
}

/// A whole document.
pub fn document(doc: &fs::Document) -> FirestoreDocument {
    FirestoreDocument {
        name: doc.name.clone(),
        fields: fields(&doc.fields),
        create_time: doc.create_time.as_ref().and_then(timestamp),
        update_time: doc.update_time.as_ref().and_then(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firestore::gcloud_sdk::google::firestore::v1::{ArrayValue, MapValue};
    use firestore::gcloud_sdk::google::r#type::LatLng;

    fn v(t: ValueType) -> fs::Value {
        fs::Value { value_type: Some(t) }
    }

    #[test]
    fn every_stored_value_kind_converts() {
        let ts = prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5_000 };
        let nested = MapValue {
            fields: [("n".to_owned(), v(ValueType::IntegerValue(-3)))].into_iter().collect(),
        };
        let doc = fs::Document {
            name: "projects/p/databases/(default)/documents/posts/p1".to_owned(),
            fields: [
                ("null", v(ValueType::NullValue(0))),
                ("b", v(ValueType::BooleanValue(true))),
                ("i", v(ValueType::IntegerValue(i64::MAX))),
                ("d", v(ValueType::DoubleValue(0.5))),
                ("t", v(ValueType::TimestampValue(ts))),
                ("s", v(ValueType::StringValue("x".to_owned()))),
                ("bytes", v(ValueType::BytesValue(vec![0, 255]))),
                (
                    "r",
                    v(ValueType::ReferenceValue(
                        "projects/p/databases/(default)/documents/a/b".to_owned(),
                    )),
                ),
                ("g", v(ValueType::GeoPointValue(LatLng { latitude: 1.5, longitude: -2.0 }))),
                (
                    "a",
                    v(ValueType::ArrayValue(ArrayValue {
                        values: vec![v(ValueType::StringValue("y".to_owned()))],
                    })),
                ),
                ("m", v(ValueType::MapValue(nested))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            create_time: Some(ts),
            update_time: None,
        };
        let out = document(&doc);
        assert_eq!(out.path(), Some("posts/p1"));
        let f = &out.fields;
        assert_eq!(f["null"], Value::Null);
        assert_eq!(f["b"], Value::Boolean(true));
        assert_eq!(f["i"], Value::Integer(i64::MAX));
        assert_eq!(f["d"], Value::Double(0.5));
        assert_eq!(f["t"], Value::Timestamp(timestamp(&ts).unwrap()));
        assert_eq!(f["s"], Value::String("x".to_owned()));
        assert_eq!(f["bytes"], Value::Bytes(vec![0, 255]));
        assert!(matches!(&f["r"], Value::Reference(r) if r.ends_with("/a/b")));
        assert_eq!(f["g"], Value::GeoPoint(GeoPoint { latitude: 1.5, longitude: -2.0 }));
        assert_eq!(f["a"], Value::Array(vec![Value::String("y".to_owned())]));
        assert_eq!(
            f["m"],
            Value::Map([("n".to_owned(), Value::Integer(-3))].into_iter().collect())
        );
        assert_eq!(out.create_time.unwrap().timestamp_subsec_nanos(), 5_000);
        assert_eq!(out.update_time, None);
    }

    #[test]
    fn out_of_range_timestamps_are_dropped_not_panicking() {
        let bad = prost_types::Timestamp { seconds: 0, nanos: -1 };
        assert_eq!(timestamp(&bad), None);
        assert_eq!(value(&v(ValueType::TimestampValue(bad))), Value::Null);
    }
}
