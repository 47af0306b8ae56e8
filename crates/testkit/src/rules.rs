//! Support for `firestore.rules` tests: one Firestore emulator per test process that enforces
//! the repository's rules, and the JSON-to-REST `fields` conversion the tests seed and probe with.

use serde_json::{Value, json};
use tokio::sync::OnceCell;

static RULES_EMULATOR: OnceCell<String> = OnceCell::const_new();

/// `host:port` of a Firestore emulator started with the repository's `firestore.rules`
/// (started once per test process, shared by every rules test in it).
pub async fn emulator() -> &'static str {
    RULES_EMULATOR
        .get_or_init(|| async {
            let rules =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firestore.rules");
            crate::emulators::firestore_with_rules(&rules.canonicalize().expect("firestore.rules"))
                .await
        })
        .await
}

/// Converts a plain JSON object into Firestore REST `fields`; `{"$ts": "<RFC 3339>"}` becomes a
/// timestamp.
pub fn fields(data: &Value) -> Value {
    fn value(v: &Value) -> Value {
        match v {
            Value::Null => json!({"nullValue": null}),
            Value::Bool(b) => json!({"booleanValue": b}),
            Value::Number(n) if n.is_i64() => json!({"integerValue": n.to_string()}),
            Value::Number(n) => json!({"doubleValue": n.as_f64()}),
            Value::String(s) => json!({"stringValue": s}),
            Value::Array(a) => {
                json!({"arrayValue": {"values": a.iter().map(value).collect::<Vec<_>>()}})
            }
            Value::Object(o) if o.contains_key("$ts") => json!({"timestampValue": o["$ts"]}),
            Value::Object(_) => json!({"mapValue": {"fields": fields(v)}}),
        }
    }
    let map = data.as_object().expect("an object");
    Value::Object(map.iter().map(|(k, v)| (k.clone(), value(v))).collect())
}

/// The `documents:commit` body writing `data` to the document named `name` (a full name): a
/// replacement, or with `merge` an update of just the given fields; `server_time` fields are
/// set to the request time by the server.
pub fn commit_body(name: &str, data: &Value, merge: bool, server_time: &[&str]) -> Value {
    let mut write = json!({"update": {"name": name, "fields": fields(data)}});
    if merge {
        let mut paths: Vec<String> = data.as_object().expect("an object").keys().cloned().collect();
        paths.extend(server_time.iter().map(|s| (*s).to_owned()));
        write["updateMask"] = json!({"fieldPaths": paths});
    }
    if !server_time.is_empty() {
        write["updateTransforms"] = json!(
            server_time
                .iter()
                .map(|f| json!({"fieldPath": f, "setToServerValue": "REQUEST_TIME"}))
                .collect::<Vec<_>>()
        );
    }
    json!({ "writes": [write] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_kind_and_timestamps_convert() {
        let got = fields(&json!({
            "n": 1, "x": 1.5, "s": "a", "b": true, "z": null,
            "l": [1], "m": {"k": "v"}, "t": {"$ts": "2026-01-01T00:00:00Z"}
        }));
        assert_eq!(got["n"], json!({"integerValue": "1"}));
        assert_eq!(got["x"], json!({"doubleValue": 1.5}));
        assert_eq!(got["l"], json!({"arrayValue": {"values": [{"integerValue": "1"}]}}));
        assert_eq!(got["m"], json!({"mapValue": {"fields": {"k": {"stringValue": "v"}}}}));
        assert_eq!(got["t"], json!({"timestampValue": "2026-01-01T00:00:00Z"}));
    }
}
