//! Integration tests of the sign-up hook, served over real HTTP against the official Firestore,
//! Pub/Sub and Firebase Auth emulators. Every test has its own project id.

mod attacks;
mod bad_input;
mod costs;
mod e2e;
mod helpers;
mod signed;
mod signups;
mod tenancy;
