//! Integration tests of `bus` against the real Pub/Sub emulator (started once by `testkit`).

mod failures;
mod helpers;
mod ordering_keys;
mod publish;
