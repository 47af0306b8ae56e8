//! The dependency arrows between workspace crates: the library crates below the serving layer
//! (`domain`, `gcp`, `store`, `bus`) never depend on `runtime` or compile behind the Lambda
//! adapter, checked on the resolved graph of `cargo metadata` (normal dependencies). (`axum`
//! itself still reaches `store` through `tonic`, the gRPC transport of the Firestore client.)

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates that must stay free of the serving stack.
const BELOW_RUNTIME: [&str; 4] = ["domain", "gcp", "store", "bus"];
/// The serving layer.
const SERVING: [&str; 2] = ["runtime", "lambda_http"];

fn metadata() -> Value {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The host's platform only, so no manifest of another platform's crates is needed offline.
    let rustc = Command::new("rustc").arg("-vV").output().expect("running rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host])
        .current_dir(root)
        .output()
        .expect("running cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("cargo metadata JSON")
}

/// Package names reachable from `root` over normal (not dev, not build) dependencies.
fn normal_closure(metadata: &Value, root: &str) -> BTreeSet<String> {
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|id| names.get(id) == Some(&root))
        .unwrap_or_else(|| panic!("{root} is a workspace member"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[pkg].to_owned()) {
                stack.push(pkg);
            }
        }
    }
    seen
}

#[test]
fn library_crates_do_not_compile_behind_the_server_stack() {
    let metadata = metadata();
    for krate in BELOW_RUNTIME {
        let closure = normal_closure(&metadata, krate);
        let serving: Vec<_> = SERVING.iter().filter(|s| closure.contains(**s)).collect();
        assert!(serving.is_empty(), "{krate} depends (transitively) on {serving:?}");
    }
    // The check sees real edges: a function crate does reach the server stack.
    assert!(normal_closure(&metadata, "onboarding").contains("lambda_http"));
}
