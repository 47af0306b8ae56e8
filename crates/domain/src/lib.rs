//! Pure business rules and policies of Hearth.
//!
//! Architecture invariant: nothing in this crate does I/O, spawns tasks, sleeps or reads the clock
//! on its own. Callers pass the current time and random draws in, so every rule is a plain
//! function that unit and property tests can drive exhaustively.

pub mod admission;
pub mod backoff;
pub mod catalogue;
pub mod cleanup;
pub mod counters;
pub mod dead_letter;
pub mod feed;
pub mod inventory;
pub mod market;
pub mod messages;
pub mod notify;
pub mod onboarding;
pub mod payments;
pub mod pulse;
pub mod ramp;
pub mod ratelimit;
pub mod refunds;
pub mod repair;
pub mod search;
pub mod status;
pub mod tenancy;
