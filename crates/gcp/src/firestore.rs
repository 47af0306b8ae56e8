//! Typed Firestore documents as carried by Eventarc events: [`FirestoreDocument`] and
//! [`Value`], converted from and to the generated protobuf types and the proto3 JSON mapping,
//! and deserialized into the caller's serde types.
//!
//! Deserialization is a serde `Deserializer` over [`Value`] (not a detour through
//! `serde_json::Value`): integers stay exact `i64`, bytes reach `Vec<u8>`/byte buffers as bytes
//! (not as base64 text), and `Option`, enums and newtypes behave as with any self-describing
//! format. Mapping: null -> unit/`None`, boolean -> bool, integer -> i64, double -> f64,
//! timestamp -> RFC 3339 string (so `chrono::DateTime<Utc>` and `String` fields both work),
//! string and reference -> string, bytes -> bytes (or a sequence of u8), geo point -> map
//! `{latitude, longitude}`, array -> sequence, map -> map.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde_json::Value as Json;

use crate::proto::google::events::cloud::firestore::v1 as pb;
use crate::proto::google::r#type::LatLng;

/// A Firestore value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Integer(i64),
    Double(f64),
    Timestamp(DateTime<Utc>),
    String(String),
    Bytes(Vec<u8>),
    /// A document reference: `projects/P/databases/D/documents/PATH`.
    Reference(String),
    GeoPoint(GeoPoint),
    Array(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

/// A latitude/longitude pair in degrees.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

/// A Firestore document snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct FirestoreDocument {
    /// `projects/P/databases/D/documents/PATH`.
    pub name: String,
    pub fields: BTreeMap<String, Value>,
    pub create_time: Option<DateTime<Utc>>,
    pub update_time: Option<DateTime<Utc>>,
}

/// Why a Firestore value could not be converted or deserialized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirestoreValueError {
    #[error("timestamp out of range")]
    TimestampOutOfRange,
    #[error("invalid Firestore JSON value at {path}: {reason}")]
    Json { path: String, reason: String },
    #[error("{0}")]
    Deserialize(String),
}

impl de::Error for FirestoreValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FirestoreValueError::Deserialize(msg.to_string())
    }
}

impl FirestoreDocument {
    /// The document path relative to the database (`users/abc`), if the name has one.
    pub fn path(&self) -> Option<&str> {
        self.name.split_once("/documents/").map(|(_, path)| path)
    }

    /// The document id (last path segment).
    pub fn id(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or_default()
    }

    /// Deserializes the fields into `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, FirestoreValueError> {
        T::deserialize(Value::Map(self.fields.clone()))
    }
}

impl Value {
    /// Deserializes this value into `T`.
    pub fn deserialize_into<T: DeserializeOwned>(self) -> Result<T, FirestoreValueError> {
        T::deserialize(self)
    }

    /// The natural Firestore value of plain JSON (numbers that fit i64 become integers).
    pub fn from_plain_json(json: Json) -> Self {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Boolean(b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Integer(i),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => Value::String(s),
            Json::Array(a) => Value::Array(a.into_iter().map(Value::from_plain_json).collect()),
            Json::Object(o) => {
                Value::Map(o.into_iter().map(|(k, v)| (k, Value::from_plain_json(v))).collect())
            }
        }
    }
}

// ---- protobuf ----

fn timestamp_from_pb(ts: &prost_types::Timestamp) -> Result<DateTime<Utc>, FirestoreValueError> {
    let nanos = u32::try_from(ts.nanos).map_err(|_| FirestoreValueError::TimestampOutOfRange)?;
    DateTime::<Utc>::from_timestamp(ts.seconds, nanos)
        .ok_or(FirestoreValueError::TimestampOutOfRange)
}

fn timestamp_to_pb(time: &DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(999_999_999),
    }
}

impl TryFrom<pb::Value> for Value {
    type Error = FirestoreValueError;

    fn try_from(value: pb::Value) -> Result<Self, Self::Error> {
        use pb::value::ValueType as T;
        Ok(match value.value_type {
            None | Some(T::NullValue(_)) => Value::Null,
            Some(T::BooleanValue(b)) => Value::Boolean(b),
            Some(T::IntegerValue(i)) => Value::Integer(i),
            Some(T::DoubleValue(d)) => Value::Double(d),
            Some(T::TimestampValue(ts)) => Value::Timestamp(timestamp_from_pb(&ts)?),
            Some(T::StringValue(s)) => Value::String(s),
            Some(T::BytesValue(b)) => Value::Bytes(b),
            Some(T::ReferenceValue(r)) => Value::Reference(r),
            Some(T::GeoPointValue(g)) => {
                Value::GeoPoint(GeoPoint { latitude: g.latitude, longitude: g.longitude })
            }
            Some(T::ArrayValue(a)) => {
                Value::Array(a.values.into_iter().map(Value::try_from).collect::<Result<_, _>>()?)
            }
            Some(T::MapValue(m)) => Value::Map(fields_from_pb(m.fields)?),
        })
    }
}

fn fields_from_pb(
    fields: BTreeMap<String, pb::Value>,
) -> Result<BTreeMap<String, Value>, FirestoreValueError> {
    fields.into_iter().map(|(k, v)| Ok((k, Value::try_from(v)?))).collect()
}

impl From<&Value> for pb::Value {
    fn from(value: &Value) -> Self {
        use pb::value::ValueType as T;
        let value_type = match value {
            Value::Null => T::NullValue(prost_types::NullValue::NullValue as i32),
            Value::Boolean(b) => T::BooleanValue(*b),
            Value::Integer(i) => T::IntegerValue(*i),
            Value::Double(d) => T::DoubleValue(*d),
            Value::Timestamp(t) => T::TimestampValue(timestamp_to_pb(t)),
            Value::String(s) => T::StringValue(s.clone()),
            Value::Bytes(b) => T::BytesValue(b.clone()),
            Value::Reference(r) => T::ReferenceValue(r.clone()),
            Value::GeoPoint(g) => {
                T::GeoPointValue(LatLng { latitude: g.latitude, longitude: g.longitude })
            }
            Value::Array(a) => {
                T::ArrayValue(pb::ArrayValue { values: a.iter().map(pb::Value::from).collect() })
            }
            Value::Map(m) => T::MapValue(pb::MapValue { fields: fields_to_pb(m) }),
        };
        pb::Value { value_type: Some(value_type) }
    }
}

fn fields_to_pb(fields: &BTreeMap<String, Value>) -> BTreeMap<String, pb::Value> {
    fields.iter().map(|(k, v)| (k.clone(), pb::Value::from(v))).collect()
}

impl TryFrom<pb::Document> for FirestoreDocument {
    type Error = FirestoreValueError;

    fn try_from(doc: pb::Document) -> Result<Self, Self::Error> {
        Ok(Self {
            name: doc.name,
            fields: fields_from_pb(doc.fields)?,
            create_time: doc.create_time.as_ref().map(timestamp_from_pb).transpose()?,
            update_time: doc.update_time.as_ref().map(timestamp_from_pb).transpose()?,
        })
    }
}

impl From<&FirestoreDocument> for pb::Document {
    fn from(doc: &FirestoreDocument) -> Self {
        pb::Document {
            name: doc.name.clone(),
            fields: fields_to_pb(&doc.fields),
            create_time: doc.create_time.as_ref().map(timestamp_to_pb),
            update_time: doc.update_time.as_ref().map(timestamp_to_pb),
        }
    }
}

// ---- proto3 JSON mapping ----

fn json_err(path: &str, reason: impl Into<String>) -> FirestoreValueError {
    FirestoreValueError::Json {
        path: if path.is_empty() { "$".to_owned() } else { path.to_owned() },
        reason: reason.into(),
    }
}

/// Field lookup accepting the lowerCamelCase JSON name or the original proto field name.
pub(crate) fn json_field<'a>(
    object: &'a serde_json::Map<String, Json>,
    camel: &str,
    snake: &str,
) -> Option<&'a Json> {
    object.get(camel).or_else(|| object.get(snake)).filter(|v| !v.is_null())
}

pub(crate) fn timestamp_from_json(
    json: &Json,
    path: &str,
) -> Result<DateTime<Utc>, FirestoreValueError> {
    let text =
        json.as_str().ok_or_else(|| json_err(path, "timestamp must be an RFC 3339 string"))?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| json_err(path, "timestamp is not RFC 3339"))
}

pub(crate) fn timestamp_to_json(time: &DateTime<Utc>) -> Json {
    Json::String(time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // proto3 JSON: standard or URL-safe alphabet, with or without padding.
    let lenient =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&base64::alphabet::STANDARD, lenient)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient).decode(text))
        .ok()
}

impl Value {
    /// Decodes a Firestore `Value` in the proto3 JSON mapping (`{"integerValue":"1"}`, ...).
    pub fn from_proto_json(json: &Json) -> Result<Self, FirestoreValueError> {
        value_from_json(json, "")
    }

    /// Encodes in the canonical proto3 JSON mapping.
    pub fn to_proto_json(&self) -> Json {
        let (key, value) = match self {
            Value::Null => ("nullValue", Json::Null),
            Value::Boolean(b) => ("booleanValue", Json::Bool(*b)),
            Value::Integer(i) => ("integerValue", Json::String(i.to_string())),
            Value::Double(d) => ("doubleValue", double_to_json(*d)),
            Value::Timestamp(t) => ("timestampValue", timestamp_to_json(t)),
            Value::String(s) => ("stringValue", Json::String(s.clone())),
            Value::Bytes(b) => {
                ("bytesValue", Json::String(base64::engine::general_purpose::STANDARD.encode(b)))
            }
            Value::Reference(r) => ("referenceValue", Json::String(r.clone())),
            Value::GeoPoint(g) => (
                "geoPointValue",
                serde_json::json!({"latitude": double_to_json(g.latitude), "longitude": double_to_json(g.longitude)}),
            ),
            Value::Array(a) => (
                "arrayValue",
                serde_json::json!({"values": a.iter().map(Value::to_proto_json).collect::<Vec<_>>()}),
            ),
            Value::Map(m) => ("mapValue", serde_json::json!({"fields": fields_to_json(m)})),
        };
        let mut object = serde_json::Map::new();
        object.insert(key.to_owned(), value);
        Json::Object(object)
    }
}

fn double_to_json(d: f64) -> Json {
    if d.is_nan() {
        Json::String("NaN".to_owned())
    } else if d.is_infinite() {
        Json::String(if d > 0.0 { "Infinity" } else { "-Infinity" }.to_owned())
    } else {
        serde_json::Number::from_f64(d).map_or(Json::Null, Json::Number)
    }
}

fn double_from_json(json: &Json, path: &str) -> Result<f64, FirestoreValueError> {
    match json {
        Json::Number(n) => n.as_f64().ok_or_else(|| json_err(path, "bad double")),
        Json::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| json_err(path, "bad double")),
        },
        _ => Err(json_err(path, "double must be a number or a string")),
    }
}

pub(crate) fn fields_to_json(fields: &BTreeMap<String, Value>) -> Json {
    Json::Object(fields.iter().map(|(k, v)| (k.clone(), v.to_proto_json())).collect())
}

pub(crate) fn fields_from_json(
    json: Option<&Json>,
    path: &str,
) -> Result<BTreeMap<String, Value>, FirestoreValueError> {
    match json {
        None | Some(Json::Null) => Ok(BTreeMap::new()),
        Some(Json::Object(o)) => o
            .iter()
            .map(|(k, v)| Ok((k.clone(), value_from_json(v, &format!("{path}.{k}"))?)))
            .collect(),
        Some(_) => Err(json_err(path, "fields must be an object")),
    }
}

fn value_from_json(json: &Json, path: &str) -> Result<Value, FirestoreValueError> {
    let Json::Object(object) = json else {
        return Err(json_err(path, "a Firestore value is an object with one *Value key"));
    };
    let mut set = object.iter().filter(|(k, _)| k.ends_with("Value") || k.ends_with("_value"));
    let (Some((key, inner)), None) = (set.next(), set.next()) else {
        return Err(json_err(path, "a Firestore value has exactly one *Value key"));
    };
    let as_str = |what: &str| {
        inner.as_str().ok_or_else(|| json_err(path, format!("{what} must be a string")))
    };
    Ok(match key.as_str() {
        "nullValue" | "null_value" => match inner {
            Json::Null => Value::Null,
            Json::String(s) if s == "NULL_VALUE" => Value::Null,
            Json::Number(n) if n.as_i64() == Some(0) => Value::Null,
            _ => return Err(json_err(path, "bad nullValue")),
        },
        "booleanValue" | "boolean_value" => Value::Boolean(
            inner.as_bool().ok_or_else(|| json_err(path, "booleanValue must be a bool"))?,
        ),
        "integerValue" | "integer_value" => Value::Integer(match inner {
            Json::String(s) => {
                s.parse().map_err(|_| json_err(path, "integerValue is not an int64"))?
            }
            Json::Number(n) => {
                n.as_i64().ok_or_else(|| json_err(path, "integerValue is not an int64"))?
            }
            _ => return Err(json_err(path, "integerValue must be a string or a number")),
        }),
        "doubleValue" | "double_value" => Value::Double(double_from_json(inner, path)?),
        "timestampValue" | "timestamp_value" => Value::Timestamp(timestamp_from_json(inner, path)?),
        "stringValue" | "string_value" => Value::String(as_str("stringValue")?.to_owned()),
        "bytesValue" | "bytes_value" => Value::Bytes(
            decode_base64(as_str("bytesValue")?)
                .ok_or_else(|| json_err(path, "bytesValue is not base64"))?,
        ),
        "referenceValue" | "reference_value" => {
            Value::Reference(as_str("referenceValue")?.to_owned())
        }
        "geoPointValue" | "geo_point_value" => {
            let Json::Object(g) = inner else {
                return Err(json_err(path, "geoPointValue must be an object"));
            };
            let coord = |name: &str| g.get(name).map_or(Ok(0.0), |v| double_from_json(v, path));
            Value::GeoPoint(GeoPoint {
                latitude: coord("latitude")?,
                longitude: coord("longitude")?,
            })
        }
        "arrayValue" | "array_value" => {
            let Json::Object(a) = inner else {
                return Err(json_err(path, "arrayValue must be an object"));
            };
            match a.get("values") {
                None | Some(Json::Null) => Value::Array(Vec::new()),
                Some(Json::Array(values)) => Value::Array(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| value_from_json(v, &format!("{path}[{i}]")))
                        .collect::<Result<_, _>>()?,
                ),
                Some(_) => return Err(json_err(path, "arrayValue.values must be an array")),
            }
        }
        "mapValue" | "map_value" => {
            let Json::Object(m) = inner else {
                return Err(json_err(path, "mapValue must be an object"));
            };
            Value::Map(fields_from_json(m.get("fields"), path)?)
        }
        other => return Err(json_err(path, format!("unknown value kind {other:?}"))),
    })
}

impl FirestoreDocument {
    /// Decodes a `Document` in the proto3 JSON mapping.
    pub fn from_proto_json(json: &Json) -> Result<Self, FirestoreValueError> {
        let Json::Object(o) = json else {
            return Err(json_err("", "a document must be an object"));
        };
        Ok(Self {
            name: json_field(o, "name", "name")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned(),
            fields: fields_from_json(json_field(o, "fields", "fields"), "fields")?,
            create_time: json_field(o, "createTime", "create_time")
                .map(|t| timestamp_from_json(t, "createTime"))
                .transpose()?,
            update_time: json_field(o, "updateTime", "update_time")
                .map(|t| timestamp_from_json(t, "updateTime"))
                .transpose()?,
        })
    }

    /// Encodes in the canonical proto3 JSON mapping.
    pub fn to_proto_json(&self) -> Json {
        let mut o = serde_json::Map::new();
        o.insert("name".to_owned(), Json::String(self.name.clone()));
        o.insert("fields".to_owned(), fields_to_json(&self.fields));
        if let Some(t) = &self.create_time {
            o.insert("createTime".to_owned(), timestamp_to_json(t));
        }
        if let Some(t) = &self.update_time {
            o.insert("updateTime".to_owned(), timestamp_to_json(t));
        }
        Json::Object(o)
    }
}

// ---- serde Deserializer over Value ----

impl<'de> IntoDeserializer<'de, FirestoreValueError> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Self::Deserializer {
        self
    }
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = FirestoreValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Boolean(b) => visitor.visit_bool(b),
            Value::Integer(i) => visitor.visit_i64(i),
            Value::Double(d) => visitor.visit_f64(d),
            Value::Timestamp(t) => {
                visitor.visit_string(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            }
            Value::String(s) | Value::Reference(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::GeoPoint(g) => visitor.visit_map(MapDeserializer::new(
                [("latitude", g.latitude), ("longitude", g.longitude)].into_iter(),
            )),
            Value::Array(a) => {
                let mut seq = SeqDeserializer::new(a.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Map(m) => {
                let mut map = MapDeserializer::new(m.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            // `Vec<u8>` asks for a sequence: give it the bytes.
            Value::Bytes(b) => {
                let mut seq = SeqDeserializer::new(b.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Map(m) if m.len() == 1 => {
                visitor.visit_enum(MapAccessDeserializer::new(MapDeserializer::new(m.into_iter())))
            }
            other => Err(de::Error::invalid_type(
                other.unexpected(),
                &"a string or a single-entry map (enum)",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}

impl Value {
    fn unexpected(&self) -> de::Unexpected<'_> {
        match self {
            Value::Null => de::Unexpected::Unit,
            Value::Boolean(b) => de::Unexpected::Bool(*b),
            Value::Integer(i) => de::Unexpected::Signed(*i),
            Value::Double(d) => de::Unexpected::Float(*d),
            Value::Timestamp(_) => de::Unexpected::Other("timestamp"),
            Value::String(s) | Value::Reference(s) => de::Unexpected::Str(s),
            Value::Bytes(b) => de::Unexpected::Bytes(b),
            Value::GeoPoint(_) => de::Unexpected::Other("geo point"),
            Value::Array(_) => de::Unexpected::Seq,
            Value::Map(_) => de::Unexpected::Map,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Text,
        Image,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Post {
        author_id: String,
        likes: u64,
        score: f64,
        created_at: DateTime<Utc>,
        created_text: String,
        tags: Vec<String>,
        blob: Vec<u8>,
        location: GeoPoint,
        parent: Option<String>,
        missing: Option<i32>,
        kind: Kind,
        nested: BTreeMap<String, i64>,
        exact: i64,
    }

    #[test]
    fn every_value_kind_maps_into_serde() {
        let t = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let fields: BTreeMap<String, Value> = [
            ("authorId", Value::String("v1".into())),
            ("likes", Value::Integer(42)),
            ("score", Value::Integer(3)),
            ("createdAt", Value::Timestamp(t)),
            ("createdText", Value::Timestamp(t)),
            ("tags", Value::Array(vec![Value::String("a".into()), Value::String("b".into())])),
            ("blob", Value::Bytes(vec![0, 255, 7])),
            ("location", Value::GeoPoint(GeoPoint { latitude: 1.5, longitude: -2.25 })),
            ("parent", Value::Null),
            ("kind", Value::String("image".into())),
            ("nested", Value::Map([("x".to_owned(), Value::Integer(-1))].into())),
            ("exact", Value::Integer(i64::MAX)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let doc = FirestoreDocument {
            name: "projects/p/databases/(default)/documents/posts/p1".into(),
            fields,
            create_time: None,
            update_time: None,
        };
        let post: Post = doc.deserialize().unwrap();
        assert_eq!(post.likes, 42);
        assert!((post.score - 3.0).abs() < f64::EPSILON);
        assert_eq!(post.created_at, t);
        assert_eq!(post.created_text, "2024-05-06T07:08:09.123456Z");
        assert_eq!(post.blob, vec![0, 255, 7]);
        assert_eq!(post.location.longitude, -2.25);
        assert_eq!(post.parent, None);
        assert_eq!(post.missing, None);
        assert_eq!(post.kind, Kind::Image);
        assert_eq!(post.nested["x"], -1);
        assert_eq!(post.exact, i64::MAX);
        assert_eq!(doc.id(), "p1");
        assert_eq!(doc.path(), Some("posts/p1"));
        let _ = Kind::Text;
    }

    #[test]
    fn type_mismatches_are_errors() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct S {
            n: u8,
        }
        let v = Value::Map([("n".to_owned(), Value::Integer(300))].into());
        assert!(v.deserialize_into::<S>().is_err());
        let v = Value::Map([("n".to_owned(), Value::String("x".into()))].into());
        assert!(v.deserialize_into::<S>().is_err());
    }

    #[test]
    fn proto_json_accepts_both_spellings_and_string_integers() {
        let v = Value::from_proto_json(&json!({"mapValue": {"fields": {
            "a": {"integerValue": "9007199254740993"}, "b": {"integer_value": 5}, "c": {"doubleValue": "NaN"},
            "d": {"bytesValue": "AP8"}, "e": {"bytesValue": "_w=="}, "f": {"arrayValue": {}}, "g": {"nullValue": null}
        }}}))
        .unwrap();
        let Value::Map(m) = v else { panic!("map") };
        assert_eq!(m["a"], Value::Integer(9_007_199_254_740_993));
        assert_eq!(m["b"], Value::Integer(5));
        assert!(matches!(m["c"], Value::Double(d) if d.is_nan()));
        assert_eq!(m["d"], Value::Bytes(vec![0, 255]));
        assert_eq!(m["e"], Value::Bytes(vec![255]));
        assert_eq!(m["f"], Value::Array(vec![]));
        assert_eq!(m["g"], Value::Null);
        assert!(Value::from_proto_json(&json!({"integerValue": "1.5"})).is_err());
        assert!(Value::from_proto_json(&json!({"stringValue": "a", "integerValue": "1"})).is_err());
        assert!(Value::from_proto_json(&json!({"fooValue": 1})).is_err());
        assert!(Value::from_proto_json(&json!("plain")).is_err());
    }
}
