//! Pub/Sub for the local stack: the emulator's REST surface ([`rest`]), the pure delivery
//! policy ([`schedule`]) and the push delivery loops ([`engine`]).

pub mod engine;
pub mod rest;
pub mod schedule;
