//! The pinned Firestore cost of each business event: `docs/costs.json` holds them (the one
//! copy: the cost tests compare what they measure with it, `scripts/cost-model` prices it, the
//! README's table repeats it), and `/metrics` text is read back into the same five numbers.

use std::path::Path;

/// `[reads, writes, deletes, query results, round trips]`: what Firestore bills (query results
/// are included in reads), the documents queries returned, and the Firestore RPCs sent (not
/// billed; what the request waits for).
pub type Cost = [u64; 5];

const KINDS: [&str; 5] = ["reads", "writes", "deletes", "query_results", "round_trips"];

/// The pinned cost of `event` in `docs/costs.json`; panics naming the event when it is missing.
pub fn pinned(event: &str) -> Cost {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/costs.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let all: serde_json::Value = serde_json::from_str(&text).expect("docs/costs.json is JSON");
    let entry = all
        .get(event)
        .unwrap_or_else(|| panic!("docs/costs.json has no event {event:?}; add it on purpose"));
    KINDS.map(|kind| {
        entry[kind].as_u64().unwrap_or_else(|| panic!("docs/costs.json: {event}.{kind} missing"))
    })
}

/// The `hearth_firestore_ops_total` counts of `route` in a `/metrics` text.
pub fn route_ops(metrics: &str, route: &str) -> Cost {
    let route = format!(r#"route="{route}""#);
    let mut out = [0; 5];
    for line in metrics.lines().filter(|l| l.starts_with("hearth_firestore_ops_total{")) {
        if !line.contains(&route) {
            continue;
        }
        let n: u64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        for (i, kind) in
            ["read", "write", "delete", "query_result", "round_trip"].iter().enumerate()
        {
            if line.contains(&format!(r#"kind="{kind}""#)) {
                out[i] += n;
            }
        }
    }
    out
}

/// `after - before`, per kind.
pub fn minus(after: Cost, before: Cost) -> Cost {
    [0, 1, 2, 3, 4].map(|i| after[i] - before[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_is_read_per_route_and_kind() {
        let text = "# HELP x\n\
            hearth_firestore_ops_total{function=\"f\",route=\"/a\",kind=\"read\"} 3\n\
            hearth_firestore_ops_total{function=\"f\",route=\"/a\",kind=\"write\"} 2\n\
            hearth_firestore_ops_total{function=\"f\",route=\"/a\",kind=\"round_trip\"} 4\n\
            hearth_firestore_ops_total{function=\"f\",route=\"/b\",kind=\"read\"} 7\n";
        assert_eq!(route_ops(text, "/a"), [3, 2, 0, 0, 4]);
        assert_eq!(route_ops(text, "/b"), [7, 0, 0, 0, 0]);
        assert_eq!(minus([3, 2, 1, 0, 5], [1, 2, 0, 0, 2]), [2, 0, 1, 0, 3]);
    }

    #[test]
    fn every_pinned_event_has_five_numbers() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/costs.json"),
        )
        .unwrap();
        let all: serde_json::Value = serde_json::from_str(&text).unwrap();
        for event in all.as_object().unwrap().keys().filter(|k| !k.starts_with('_')) {
            pinned(event);
        }
    }
}
