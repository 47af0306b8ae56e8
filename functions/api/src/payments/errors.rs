//! How the payments callables answer a failure of the store or of a provider. A leaf: the
//! callables, the rate limits and the idempotency wrapper all use it, and it uses none of them.

use gcp::callable::Code;
use providers::ProviderError;
use runtime::Error;

/// Store failures: retryable ones ask the client to retry (503); a bad identifier is the
/// caller's (400); the rest are ours (dead-lettered, answered 500 without details).
pub(crate) fn store_error(error: store::Error) -> Error {
    if let store::Error::Path(path) = &error {
        return Error::reject(Code::InvalidArgument, format!("Invalid identifier: {path}"));
    }
    Error::for_event(error, "payments store", None)
}

/// Provider failures: an outage asks the client to retry (503); a refusal is final (400).
pub(crate) fn provider_error(error: ProviderError) -> Error {
    Error::for_caller(
        error,
        "payment provider",
        Code::FailedPrecondition,
        "The payment provider refused this payment.",
    )
}
