//! The integration tests of `gcp`: one binary, one module per wire format. Tokens are minted and
//! served by testkit (local JWKS server, test keys); Pub/Sub and Auth tests talk to the official
//! emulators.

mod blocking;
mod cloudevent;
mod eventarc;
mod firebase;
mod fixtures;
mod helpers;
mod jwks;
mod oidc;
mod props;
mod pubsub;
