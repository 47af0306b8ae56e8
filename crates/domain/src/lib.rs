//! Pure business rules and policies of Hearth.
//!
//! Architecture invariant: nothing in this crate does I/O, spawns tasks, sleeps or reads the clock
//! on its own. Callers pass the current time and random draws in, so every rule is a plain
//! function that unit and property tests can drive exhaustively.

pub mod backoff;
pub mod cleanup;
pub mod dead_letter;
pub mod messages;
pub mod onboarding;
pub mod ramp;
pub mod repair;
pub mod tenancy;
