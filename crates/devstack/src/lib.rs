//! devstack: the whole Hearth system on one machine, against the official emulators.
//!
//! `cargo run -p devstack` ([`stack::Stack::up`]) starts the Firestore (with the repository's
//! rules), Pub/Sub and Firebase Auth emulators, creates every topic and subscription of the
//! manifest (`shared/functions.yaml`), serves the fake payment provider
//! (`testkit::fake_provider`) and every function in-process on its own port with the
//! configuration production would give it (provider base URLs pointing at the fake), registers
//! the blocking functions with the Auth emulator, and delivers what the emulators cannot:
//! Pub/Sub push with production semantics ([`pubsub`]), Eventarc Firestore events
//! ([`eventarc`]) and Cloud Scheduler jobs ([`jobs`]).
//! `invoke` ([`invoke`]) sends sample payloads to a running function; `demo` ([`demo`]) drives
//! the end-to-end scenario (sign-up, onboarding, follow, post, feed, like, reserve, pay, the
//! abandoned reservation's cleanup) and checks every step.
//!
//! Map: [`plan`] (pure: what runs where, with which env), [`registry`] (manifest name ->
//! Router builder), [`identity`] (local OIDC keys and callers), [`stack`] (bringing it up and
//! down), [`table`] (the what-runs-where tables), [`state`] (the running-stack file),
//! [`measure`] (RSS), [`fanout`] (a feed fan-out through the stack, timed), [`candles`]
//! (synthetic market data written into the stack), [`cli`] (the commands).

pub mod candles;
pub mod cli;
pub mod demo;
pub mod eventarc;
pub mod fanout;
pub mod identity;
pub mod invoke;
pub mod jobs;
pub mod measure;
pub mod plan;
pub mod pubsub;
pub mod registry;
pub mod stack;
pub mod state;
pub mod table;

use std::path::PathBuf;

pub use registry::Registry;
pub use stack::{Stack, StackOptions};

/// The project id devstack runs under by default (`demo-` ids are offline-only for the Firebase
/// emulators).
pub const DEFAULT_PROJECT: &str = "demo-hearth";

/// The first function port by default.
pub const DEFAULT_BASE_PORT: u16 = 8601;

/// The repository root (devstack is run from the workspace).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `shared/functions.yaml` of the repository.
pub fn default_manifest_path() -> PathBuf {
    repo_root().join("shared/functions.yaml")
}
