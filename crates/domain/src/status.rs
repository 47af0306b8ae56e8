//! The canonical status codes (`google.rpc.Code`) shared by every crate that answers or
//! receives one: callables, blocking functions, Firestore and Pub/Sub RPCs; and [`Retryable`],
//! the one question every error of an outside service answers (may trying again succeed?).

use serde::{Deserialize, Serialize};

/// Canonical error codes (google.rpc.Code names) with their HTTP mapping.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    InvalidArgument,
    FailedPrecondition,
    OutOfRange,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    Aborted,
    ResourceExhausted,
    Cancelled,
    Unknown,
    Internal,
    DataLoss,
    Unimplemented,
    Unavailable,
    DeadlineExceeded,
}

impl Code {
    /// Every code, for exhaustive tests.
    pub const ALL: [Code; 16] = [
        Code::InvalidArgument,
        Code::FailedPrecondition,
        Code::OutOfRange,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::AlreadyExists,
        Code::Aborted,
        Code::ResourceExhausted,
        Code::Cancelled,
        Code::Unknown,
        Code::Internal,
        Code::DataLoss,
        Code::Unimplemented,
        Code::Unavailable,
        Code::DeadlineExceeded,
    ];

    /// The HTTP status firebase-functions answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::ResourceExhausted => 429,
            Code::Cancelled => 499,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::DeadlineExceeded => 504,
        }
    }

    /// The wire spelling, e.g. `PERMISSION_DENIED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::Aborted => "ABORTED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::Internal => "INTERNAL",
            Code::DataLoss => "DATA_LOSS",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Unavailable => "UNAVAILABLE",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Code {
    /// The code of a `google.rpc.Code` number (`OK` and unknown numbers map to `Unknown`: they
    /// never describe a failure).
    pub fn from_i32(code: i32) -> Self {
        match code {
            1 => Code::Cancelled,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// Whether a caller answered with this code may succeed by asking again later: the 5xx
    /// codes a server answers when it is not the request's fault.
    pub fn is_transient(self) -> bool {
        matches!(self, Code::Unavailable | Code::DeadlineExceeded | Code::Internal | Code::Unknown)
    }
}

/// An error of an outside service (Firestore, a payment provider, a token endpoint, Identity
/// Toolkit) that says whether the same request may succeed later. Handlers turn it into a
/// *retry* answer when it is, and into their own permanent or caller-facing answer when not.
pub trait Retryable {
    /// Whether trying again later may succeed.
    fn is_retryable(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_map_to_their_codes() {
        assert_eq!(Code::from_i32(10), Code::Aborted);
        assert_eq!(Code::from_i32(16), Code::Unauthenticated);
        assert_eq!(Code::from_i32(0), Code::Unknown);
        assert_eq!(Code::from_i32(99), Code::Unknown);
        for (n, code) in (1..=16).map(|n| (n, Code::from_i32(n))) {
            assert!(n == 2 || code != Code::Unknown, "{n}");
        }
        let numbered: std::collections::HashSet<Code> = (0..=16).map(Code::from_i32).collect();
        assert_eq!(numbered.len(), Code::ALL.len());
    }
}
