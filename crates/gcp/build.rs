//! Generates the Eventarc Firestore event types (`DocumentEventData` and friends) at build time
//! from the vendored `.proto` files under `proto/`, with `protox` (a pure-Rust protobuf compiler,
//! which also bundles `google/protobuf/*.proto`) and `prost-build`. No system `protoc` needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["google/events/cloud/firestore/v1/data.proto"], ["proto"])?;
    prost_build::Config::new()
        // Ordered maps: encoding is deterministic, so encode -> decode -> encode is byte-stable.
        .btree_map(["."])
        .include_file("protos.rs")
        .compile_fds(descriptors)?;
    Ok(())
}
