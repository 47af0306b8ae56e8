//! Payment providers: what Stripe and Pesapal send us (signed Stripe webhooks, unsigned
//! Pesapal IPNs) mapped to `domain::messages::PaymentEvent`, and the HTTP clients that create
//! payments and read their status (timeouts, retries that never repeat a 4xx, a circuit
//! breaker per provider). And Firebase Cloud Messaging (`fcm`): pushes over HTTP v1 with the same
//! retries and breaker, `Retry-After` honoured, dead tokens reported for pruning.

pub mod clients;
pub mod fcm;
pub mod http;
pub mod pesapal;
pub mod settings;
pub mod stripe;

pub use clients::{
    CreatedPayment, CreatedRefund, NewPayment, NewRefund, PesapalClient, PesapalSettings,
    StripeClient,
};
pub use http::{BreakerPolicy, BreakerState, CallPolicy, ProviderError};
pub use settings::PesapalUse;
