//! The one error type of `store`, with Firestore's retry classification.
//!
//! `is_retryable()` (also [`Retryable`]) is what functions use to choose between `runtime`'s *retry* (5xx/429: the
//! sender redelivers) and *permanent* outcomes. Messages may carry Firestore's own text: they
//! are for logs, and `runtime` never sends them to callers.

use crate::paths::PathError;
use firestore::errors::FirestoreError;
use firestore::gcloud_sdk::tonic;

pub use domain::status::Code;
use domain::status::Retryable;

/// The code of a gRPC status (`OK` maps to `Unknown`: it never describes a failure).
pub(crate) fn code_of(code: tonic::Code) -> Code {
    Code::from_i32(code as i32)
}

/// Firestore's retry lists over [`Code`].
pub(crate) trait RetryCodes {
    /// Codes worth retrying for any single request (nodejs-firestore transaction list, the
    /// widest of the client libraries): ABORTED, CANCELLED, UNKNOWN, DEADLINE_EXCEEDED,
    /// INTERNAL, UNAVAILABLE, UNAUTHENTICATED, RESOURCE_EXHAUSTED.
    fn is_firestore_retryable(&self) -> bool;

    /// Codes a bulk writer retries per write: BatchWrite's GAPIC retry codes
    /// (RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE), plus INTERNAL for deletes, as
    /// nodejs-firestore's BulkWriter.
    fn is_bulk_retryable(&self, is_delete: bool) -> bool;
}

impl RetryCodes for Code {
    fn is_firestore_retryable(&self) -> bool {
        matches!(
            self,
            Self::Aborted
                | Self::Cancelled
                | Self::Unknown
                | Self::DeadlineExceeded
                | Self::Internal
                | Self::Unavailable
                | Self::Unauthenticated
                | Self::ResourceExhausted
        )
    }

    fn is_bulk_retryable(&self, is_delete: bool) -> bool {
        matches!(self, Self::ResourceExhausted | Self::Aborted | Self::Unavailable)
            || (is_delete && *self == Self::Internal)
    }
}

/// Everything that can go wrong in `store`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A document path could not be built.
    #[error("invalid document path: {0}")]
    Path(#[from] PathError),
    /// The client could not be created or the connection could not be made.
    #[error("Firestore is unreachable: {0}")]
    Unreachable(String),
    /// Firestore answered with an error status.
    #[error("Firestore answered {code:?}: {message}")]
    Rpc {
        /// The status code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// A value could not be turned into a Firestore document.
    #[error("cannot encode {path}: {message}")]
    Encode {
        /// The document path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A stored document does not have the expected shape.
    #[error("cannot decode {path}: {message}")]
    Decode {
        /// The document path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The caller passed something that cannot work (bad configuration or argument).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A ledger token does not (or no longer) hold the lease it names.
    #[error("the idempotency lease on {key} is no longer held by this token")]
    LeaseLost {
        /// The scoped key.
        key: String,
    },
    /// The user was onboarded into the tenant and their membership has since been removed:
    /// provisioning from a sign-up or a token's claims never re-instates it.
    #[error("{uid} was onboarded into tenant {tenant_id} and removed from it; not re-provisioned")]
    MembershipRemoved {
        /// The tenant.
        tenant_id: String,
        /// The removed user.
        uid: String,
    },
}

impl Error {
    /// Whether trying again later may succeed (Firestore's retry codes, plus an unreachable
    /// service and `INVALID_ARGUMENT` "transaction has expired"). Also [`Retryable`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Rpc { code, message } => {
                code.is_firestore_retryable()
                    || (*code == Code::InvalidArgument
                        && message.contains("transaction has expired"))
            }
            Self::Path(_)
            | Self::Encode { .. }
            | Self::Decode { .. }
            | Self::Invalid(_)
            | Self::LeaseLost { .. }
            | Self::MembershipRemoved { .. } => false,
        }
    }

    /// The Firestore status code, when the error is Firestore's answer.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Rpc { code, .. } => Some(*code),
            Self::Unreachable(_) => Some(Code::Unavailable),
            _ => None,
        }
    }

    /// The same failure again, for each caller of a request several callers shared (a failed
    /// RPC is an [`Error::Rpc`] or an [`Error::Unreachable`]; anything else keeps its text).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Unreachable(message) => Self::Unreachable(message.clone()),
            Self::Rpc { code, message } => Self::rpc(*code, message.clone()),
            other => Self::rpc(Code::Unknown, other.to_string()),
        }
    }

    pub(crate) fn rpc(code: Code, message: impl Into<String>) -> Self {
        Self::Rpc { code, message: message.into() }
    }
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let code = code_of(status.code());
        // A refused or dropped connection surfaces as UNKNOWN/UNAVAILABLE "transport error".
        if matches!(code, Code::Unknown | Code::Unavailable)
            && status.message().contains("transport error")
        {
            return Self::Unreachable(status.message().to_owned());
        }
        Self::rpc(code, status.message())
    }
}

impl From<FirestoreError> for Error {
    fn from(error: FirestoreError) -> Self {
        match error {
            FirestoreError::DatabaseError(e) => {
                let code = code_from_name(&e.public.code);
                match code {
                    Some(code) => Self::rpc(code, e.details),
                    None if e.retry_possible => Self::Unreachable(e.details),
                    None => Self::rpc(Code::Unknown, e.details),
                }
            }
            FirestoreError::DataConflictError(e) => Self::rpc(Code::AlreadyExists, e.details),
            FirestoreError::DataNotFoundError(e) => {
                Self::rpc(Code::NotFound, e.data_detail_message)
            }
            FirestoreError::NetworkError(e) => Self::Unreachable(e.message),
            FirestoreError::SystemError(e) => Self::Unreachable(e.message),
            FirestoreError::InvalidParametersError(e) => Self::Invalid(e.to_string()),
            FirestoreError::SerializeError(e) => {
                Self::Encode { path: String::new(), message: e.to_string() }
            }
            FirestoreError::DeserializeError(e) => {
                Self::Decode { path: String::new(), message: e.to_string() }
            }
            other @ (FirestoreError::ErrorInTransaction(_) | FirestoreError::CacheError(_)) => {
                Self::rpc(Code::Unknown, other.to_string())
            }
        }
    }
}

/// The code named by the firestore crate's `public.code` (the `Debug` spelling of
/// `tonic::Code`, e.g. `Aborted`), if it is one.
fn code_from_name(name: &str) -> Option<Code> {
    Some(match name {
        "Cancelled" => Code::Cancelled,
        "Unknown" => Code::Unknown,
        "InvalidArgument" => Code::InvalidArgument,
        "DeadlineExceeded" => Code::DeadlineExceeded,
        "NotFound" => Code::NotFound,
        "AlreadyExists" => Code::AlreadyExists,
        "PermissionDenied" => Code::PermissionDenied,
        "ResourceExhausted" => Code::ResourceExhausted,
        "FailedPrecondition" => Code::FailedPrecondition,
        "Aborted" => Code::Aborted,
        "OutOfRange" => Code::OutOfRange,
        "Unimplemented" => Code::Unimplemented,
        "Internal" => Code::Internal,
        "Unavailable" => Code::Unavailable,
        "DataLoss" => Code::DataLoss,
        "Unauthenticated" => Code::Unauthenticated,
        _ => return None,
    })
}

/// Errors a transaction closure may return: `store::Error` itself, or a caller's own error that
/// can carry one (implement [`store_error`](Self::store_error)). Only errors that say they are
/// retryable make the transaction run again; a business-rule error ends it (rolled back).
pub trait TransactionError: From<Error> {
    /// The store error inside, if this error is one.
    fn store_error(&self) -> Option<&Error>;

    /// Whether the whole transaction should run again.
    fn is_retryable(&self) -> bool {
        self.store_error().is_some_and(Error::is_retryable)
    }
}

impl TransactionError for Error {
    fn store_error(&self) -> Option<&Error> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_firestore_retry_lists() {
        for code in [
            Code::Aborted,
            Code::Cancelled,
            Code::Unknown,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::Unavailable,
            Code::Unauthenticated,
            Code::ResourceExhausted,
        ] {
            assert!(Error::rpc(code, "x").is_retryable(), "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::FailedPrecondition,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::DataLoss,
        ] {
            assert!(!Error::rpc(code, "x").is_retryable(), "{code:?}");
        }
        assert!(Error::rpc(Code::InvalidArgument, "The transaction has expired.").is_retryable());
        assert!(Error::Unreachable("refused".to_owned()).is_retryable());
        assert!(!Error::Invalid("x".to_owned()).is_retryable());
        assert!(Code::Internal.is_bulk_retryable(true));
        assert!(!Code::Internal.is_bulk_retryable(false));
        assert!(Code::ResourceExhausted.is_bulk_retryable(false));
        assert!(!Code::DeadlineExceeded.is_bulk_retryable(false));
    }

    #[test]
    fn grpc_statuses_convert() {
        let e = Error::from(tonic::Status::aborted("Too much contention"));
        assert_eq!(e.code(), Some(Code::Aborted));
        let e = Error::from(tonic::Status::unknown("transport error"));
        assert!(matches!(e, Error::Unreachable(_)));
        assert_eq!(Code::from_i32(10), Code::Aborted);
        for n in 0..=16 {
            let code = tonic::Code::from_i32(n);
            assert_eq!(code_of(code), Code::from_i32(n), "{code:?}");
        }
        assert_eq!(code_of(tonic::Code::Ok), Code::Unknown);
    }
}
