//! CloudEvents 1.0 over HTTP, binary and structured content modes: [`CloudEvent`] from
//! `(&HeaderMap, Bytes)` and back.
//!
//! Why a small typed parser instead of `cloudevents-sdk` (0.9): the SDK's HTTP binding lives
//! behind framework features (its axum/reqwest integrations pin their own versions), its core
//! always pulls `url`, `uuid`, `hostname`, `snafu`, `delegate-attr` and `bitflags`, and its
//! `Event` is a dynamic attribute bag (`Data::{Binary,String,Json}`, `ExtensionValue`) that we
//! would have to re-validate into typed values anyway. What we need is narrow: CloudEvents 1.0
//! only (Eventarc sends nothing else), the four required attributes enforced, extension values
//! as strings, data as bytes, and errors we can map to public answers. That is ~200 lines here,
//! tested against the spec's rules, with no extra dependency but `percent-encoding`.
//!
//! Binary mode: attributes in `ce-*` headers (values percent-decoded per the HTTP binding),
//! `Content-Type` is `datacontenttype`, the body is the data. Structured mode: `Content-Type:
//! application/cloudevents+json`, the body is the JSON event (`data` or `data_base64`).
//! Batched mode is refused.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::callable::Code;
use crate::error::PublicError;

/// The only spec version accepted.
pub const SPEC_VERSION: &str = "1.0";
/// The structured-mode JSON media type.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";

/// Characters percent-encoded in binary-mode header values (HTTP binding 3.1.3.2): controls,
/// space, double quote, percent; non-ASCII is always encoded.
const HEADER_ENCODE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// Context attributes that are not extensions.
const CORE_ATTRIBUTES: [&str; 10] = [
    "id",
    "source",
    "specversion",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

/// A CloudEvent with typed core attributes, extensions as strings and data as bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub spec_version: String,
    pub ty: String,
    pub subject: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub data_content_type: Option<String>,
    pub data_schema: Option<String>,
    /// Extension attributes (names `[a-z0-9]+`), e.g. `database`, `document`, `authtype`.
    pub extensions: BTreeMap<String, String>,
    pub data: Bytes,
}

/// Why a request is not an acceptable CloudEvent. All answer `INVALID_ARGUMENT`.
#[derive(Debug, thiserror::Error)]
pub enum CloudEventError {
    #[error("CloudEvent attribute {0} is missing")]
    MissingAttribute(&'static str),
    #[error("CloudEvent specversion {0:?} is not supported (only 1.0)")]
    UnsupportedSpecVersion(String),
    #[error("CloudEvent time is not RFC 3339")]
    BadTime,
    #[error("CloudEvent attribute {0} has the wrong type")]
    BadAttribute(String),
    #[error("CloudEvent header {0} is not a valid value")]
    BadHeader(String),
    #[error("CloudEvent extension name {0:?} is not [a-z0-9]+")]
    BadExtensionName(String),
    #[error("batched CloudEvents are not supported")]
    BatchUnsupported,
    #[error("structured CloudEvent format {0:?} is not supported")]
    UnsupportedFormat(String),
    #[error("structured CloudEvent body is not a JSON object")]
    NotJson(#[source] serde_json::Error),
    #[error("CloudEvent data_base64 is not base64")]
    BadBase64,
}

impl PublicError for CloudEventError {
    fn code(&self) -> Code {
        Code::InvalidArgument
    }

    fn public_message(&self) -> String {
        match self {
            CloudEventError::MissingAttribute(name) => format!("not a CloudEvent: missing {name}"),
            CloudEventError::UnsupportedSpecVersion(_) => {
                "unsupported CloudEvents specversion".to_owned()
            }
            CloudEventError::BatchUnsupported | CloudEventError::UnsupportedFormat(_) => {
                "unsupported CloudEvents content mode".to_owned()
            }
            _ => "malformed CloudEvent".to_owned(),
        }
    }
}

fn is_json_media_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

fn check_extension_name(name: &str) -> Result<(), CloudEventError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(CloudEventError::BadExtensionName(name.to_owned()));
    }
    Ok(())
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, CloudEventError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| CloudEventError::BadTime)
}

impl CloudEvent {
    /// A CloudEvents 1.0 event with the required attributes and no data.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            spec_version: SPEC_VERSION.to_owned(),
            ty: ty.into(),
            subject: None,
            time: None,
            data_content_type: None,
            data_schema: None,
            extensions: BTreeMap::new(),
            data: Bytes::new(),
        }
    }

    /// An extension attribute.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions.get(name).map(String::as_str)
    }

    /// Parses an HTTP request in binary or structured mode (chosen by `Content-Type`).
    pub fn from_http(headers: &HeaderMap, body: Bytes) -> Result<Self, CloudEventError> {
        let content_type = match headers.get(CONTENT_TYPE) {
            Some(v) => Some(
                v.to_str().map_err(|_| CloudEventError::BadHeader("content-type".to_owned()))?,
            ),
            None => None,
        };
        let essence = content_type
            .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some(e) if e.starts_with("application/cloudevents-batch") => {
                Err(CloudEventError::BatchUnsupported)
            }
            Some(STRUCTURED_JSON) => Self::from_structured(&body),
            Some(e) if e.starts_with("application/cloudevents") => {
                Err(CloudEventError::UnsupportedFormat(e.to_owned()))
            }
            _ => Self::from_binary(headers, body),
        }
    }

    /// Parses binary mode: `ce-*` headers plus body.
    pub fn from_binary(headers: &HeaderMap, body: Bytes) -> Result<Self, CloudEventError> {
        let mut attributes: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let Some(attr) = name.as_str().strip_prefix("ce-") else { continue };
            let raw = value.to_str().map_err(|_| CloudEventError::BadHeader(name.to_string()))?;
            let decoded = percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| CloudEventError::BadHeader(name.to_string()))?
                .into_owned();
            if attributes.insert(attr.to_owned(), decoded).is_some() {
                return Err(CloudEventError::BadHeader(name.to_string()));
            }
        }
        let content_type = match headers.get(CONTENT_TYPE) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| CloudEventError::BadHeader("content-type".to_owned()))?
                    .to_owned(),
            ),
            None => None,
        };
        attributes.remove("datacontenttype");
        let mut event = Self::from_attributes(attributes)?;
        event.data_content_type = content_type;
        event.data = body;
        Ok(event)
    }

    /// Parses structured mode: the JSON event format.
    pub fn from_structured(body: &[u8]) -> Result<Self, CloudEventError> {
        let object: Map<String, Value> =
            serde_json::from_slice(body).map_err(CloudEventError::NotJson)?;
        let mut attributes = BTreeMap::new();
        let mut data_value = None;
        let mut data_base64 = None;
        for (name, value) in object {
            match name.as_str() {
                "data" => data_value = Some(value),
                "data_base64" => data_base64 = Some(value),
                _ => {
                    let text = match value {
                        Value::Null => continue,
                        Value::String(s) => s,
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        Value::Array(_) | Value::Object(_) => {
                            return Err(CloudEventError::BadAttribute(name));
                        }
                    };
                    attributes.insert(name, text);
                }
            }
        }
        let content_type = attributes.remove("datacontenttype");
        let mut event = Self::from_attributes(attributes)?;
        let data_value = data_value.filter(|v| !v.is_null());
        let data_base64 = data_base64.filter(|v| !v.is_null());
        event.data = match (data_value, data_base64) {
            (Some(_), Some(_)) => return Err(CloudEventError::BadAttribute("data".to_owned())),
            (None, Some(Value::String(b64))) => Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|_| CloudEventError::BadBase64)?,
            ),
            (None, Some(_)) => return Err(CloudEventError::BadAttribute("data_base64".to_owned())),
            (None, None) => Bytes::new(),
            (Some(Value::String(s)), None) if !is_json_media_type(content_type.as_deref()) => {
                Bytes::from(s)
            }
            (Some(v), None) => Bytes::from(v.to_string()),
        };
        event.data_content_type = content_type;
        Ok(event)
    }

    fn from_attributes(mut attributes: BTreeMap<String, String>) -> Result<Self, CloudEventError> {
        let spec_version = attributes
            .remove("specversion")
            .ok_or(CloudEventError::MissingAttribute("specversion"))?;
        if spec_version != SPEC_VERSION {
            return Err(CloudEventError::UnsupportedSpecVersion(spec_version));
        }
        let mut required = |name: &'static str| {
            attributes
                .remove(name)
                .filter(|v| !v.is_empty())
                .ok_or(CloudEventError::MissingAttribute(name))
        };
        let id = required("id")?;
        let source = required("source")?;
        let ty = required("type")?;
        let subject = attributes.remove("subject");
        let time = attributes.remove("time").map(|t| parse_time(&t)).transpose()?;
        let data_schema = attributes.remove("dataschema");
        for name in attributes.keys() {
            check_extension_name(name)?;
        }
        Ok(Self {
            id,
            source,
            spec_version,
            ty,
            subject,
            time,
            data_content_type: None,
            data_schema,
            extensions: attributes,
            data: Bytes::new(),
        })
    }

    fn attribute_pairs(&self) -> Vec<(&str, String)> {
        let mut pairs = vec![
            ("specversion", self.spec_version.clone()),
            ("id", self.id.clone()),
            ("source", self.source.clone()),
            ("type", self.ty.clone()),
        ];
        if let Some(s) = &self.subject {
            pairs.push(("subject", s.clone()));
        }
        if let Some(t) = &self.time {
            pairs.push(("time", t.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
        }
        if let Some(s) = &self.data_schema {
            pairs.push(("dataschema", s.clone()));
        }
        for (name, value) in &self.extensions {
            if !CORE_ATTRIBUTES.contains(&name.as_str()) {
                pairs.push((name.as_str(), value.clone()));
            }
        }
        pairs
    }

    /// Binary mode: `ce-*` headers (percent-encoded values), `Content-Type`, and the body.
    pub fn to_binary(&self) -> Result<(HeaderMap, Bytes), CloudEventError> {
        let mut headers = HeaderMap::new();
        for (name, value) in self.attribute_pairs() {
            check_extension_name(name)?;
            let header_name = HeaderName::from_bytes(format!("ce-{name}").as_bytes())
                .map_err(|_| CloudEventError::BadExtensionName(name.to_owned()))?;
            let encoded = utf8_percent_encode(&value, HEADER_ENCODE).to_string();
            let header_value = HeaderValue::from_str(&encoded)
                .map_err(|_| CloudEventError::BadHeader(header_name.to_string()))?;
            headers.insert(header_name, header_value);
        }
        if let Some(ct) = &self.data_content_type {
            let value = HeaderValue::from_str(ct)
                .map_err(|_| CloudEventError::BadHeader("content-type".to_owned()))?;
            headers.insert(CONTENT_TYPE, value);
        }
        Ok((headers, self.data.clone()))
    }

    /// Structured mode JSON: `data` when the content type is JSON and the data parses as JSON,
    /// otherwise `data_base64`. Send it with `Content-Type: application/cloudevents+json`.
    pub fn to_structured(&self) -> Value {
        let mut object = Map::new();
        for (name, value) in self.attribute_pairs() {
            object.insert(name.to_owned(), Value::String(value));
        }
        if let Some(ct) = &self.data_content_type {
            object.insert("datacontenttype".to_owned(), Value::String(ct.clone()));
        }
        if !self.data.is_empty() {
            let json = is_json_media_type(self.data_content_type.as_deref())
                .then(|| serde_json::from_slice::<Value>(&self.data).ok())
                .flatten();
            match json {
                Some(v) => object.insert("data".to_owned(), v),
                None => object.insert(
                    "data_base64".to_owned(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&self.data)),
                ),
            };
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const BASE: [(&str, &str); 4] = [
        ("ce-specversion", "1.0"),
        ("ce-id", "e1"),
        ("ce-source", "//src"),
        ("ce-type", "t.v1.created"),
    ];

    #[test]
    fn binary_mode_reads_headers_and_percent_decodes() {
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("ce-subject", "documents/users/a%20b"),
            ("ce-time", "2024-01-02T03:04:05.123456Z"),
            ("ce-database", "(default)"),
            ("content-type", "application/protobuf"),
        ]);
        let ev = CloudEvent::from_http(&headers(&pairs), Bytes::from_static(b"\x01\x02")).unwrap();
        assert_eq!(ev.subject.as_deref(), Some("documents/users/a b"));
        assert_eq!(ev.extension("database"), Some("(default)"));
        assert_eq!(ev.data_content_type.as_deref(), Some("application/protobuf"));
        assert_eq!(ev.time.unwrap().timestamp_subsec_micros(), 123_456);
        let (h, body) = ev.to_binary().unwrap();
        assert_eq!(h.get("ce-subject").unwrap(), "documents/users/a%20b");
        assert_eq!(CloudEvent::from_http(&h, body).unwrap(), ev);
    }

    #[test]
    fn required_attributes_and_spec_version() {
        for missing in ["ce-id", "ce-source", "ce-type", "ce-specversion"] {
            let pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != missing).collect();
            let err = CloudEvent::from_http(&headers(&pairs), Bytes::new()).unwrap_err();
            assert!(matches!(err, CloudEventError::MissingAttribute(_)), "{missing}: {err}");
        }
        let mut pairs = BASE.to_vec();
        pairs[0] = ("ce-specversion", "0.3");
        assert!(matches!(
            CloudEvent::from_http(&headers(&pairs), Bytes::new()),
            Err(CloudEventError::UnsupportedSpecVersion(_))
        ));
        let mut pairs = BASE.to_vec();
        pairs.push(("ce-time", "yesterday"));
        assert!(matches!(
            CloudEvent::from_http(&headers(&pairs), Bytes::new()),
            Err(CloudEventError::BadTime)
        ));
        let mut pairs = BASE.to_vec();
        pairs.push(("ce-bad_name", "x"));
        assert!(matches!(
            CloudEvent::from_http(&headers(&pairs), Bytes::new()),
            Err(CloudEventError::BadExtensionName(_))
        ));
    }

    #[test]
    fn structured_mode_json_and_base64_data() {
        let body = serde_json::json!({
            "specversion": "1.0", "id": "e1", "source": "//src", "type": "t", "datacontenttype": "application/json",
            "data": {"a": 1}, "traceparent": "00-abc", "count": 3
        });
        let h = headers(&[("content-type", "application/cloudevents+json; charset=utf-8")]);
        let ev = CloudEvent::from_http(&h, Bytes::from(body.to_string())).unwrap();
        assert_eq!(&ev.data[..], br#"{"a":1}"#);
        assert_eq!(ev.extension("count"), Some("3"));
        let body = serde_json::json!({
            "specversion": "1.0", "id": "e1", "source": "//src", "type": "t",
            "datacontenttype": "application/protobuf", "data_base64": "AQI="
        });
        let ev = CloudEvent::from_http(&h, Bytes::from(body.to_string())).unwrap();
        assert_eq!(&ev.data[..], &[1, 2]);
        assert_eq!(ev.to_structured()["data_base64"], "AQI=");
        let batch = headers(&[("content-type", "application/cloudevents-batch+json")]);
        assert!(matches!(
            CloudEvent::from_http(&batch, Bytes::from("[]")),
            Err(CloudEventError::BatchUnsupported)
        ));
        assert!(matches!(
            CloudEvent::from_http(&h, Bytes::from("nope")),
            Err(CloudEventError::NotJson(_))
        ));
    }
}
