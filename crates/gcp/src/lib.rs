//! Google Cloud and Firebase wire formats, parsed once at the edge into typed values.
//!
//! Architecture invariant: handlers never see raw envelopes, base64, protobuf or JWT parts;
//! they get the typed values this crate produces. Nothing here reads the environment: callers
//! pass configuration (project id, audiences, emulator mode) in explicitly.

pub mod callable;
