//! devstack integration tests, against the official emulators: push delivery semantics, the
//! Eventarc bridge, the scheduler, a whole stack from a test manifest, and the demo.

mod demo;
mod eventarc;
mod fanout;
mod jobs;
mod push;
mod stack;
mod support;
