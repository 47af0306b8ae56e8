//! Integration tests of the api function against the official emulators: callables over real
//! HTTP with the runtime's layers, Firebase ID tokens signed with testkit keys published by a
//! local JWKS server, one project per test.

mod attacks;
mod catalogue;
mod client_documents;
mod cors;
mod costs;
mod devices;
mod feed;
mod payments;
mod refunds;
mod signed_in;
mod strategies;
