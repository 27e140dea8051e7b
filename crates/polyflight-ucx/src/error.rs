//! The error type of the UCX transport.
//!
//! Every failure carries a Flight status code (the numbers of the Flight protocol, which the UCX wire
//! sends in its status frames), a message, and optional "extra info" bytes. The codes follow one rule
//! set: a malformed frame from the peer is INVALID_ARGUMENT, a lost or refused connection is
//! UNAVAILABLE, and a failing UCX call that is not about the connection is INTERNAL.

use bytes::Bytes;
use std::fmt;

use crate::ucp::Status;

/// A Flight status code, numbered as on the wire (Arrow C++ `TransportStatusCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// 0: not an error; appears only when decoding a status frame.
    Ok = 0,
    /// 1: an error of unknown origin.
    Unknown = 1,
    /// 2: an internal error: a UCX call failed or an invariant broke.
    Internal = 2,
    /// 3: the peer sent something malformed or the caller passed a bad argument.
    InvalidArgument = 3,
    /// 4: a deadline passed.
    TimedOut = 4,
    /// 5: the requested thing does not exist.
    NotFound = 5,
    /// 6: the thing to create already exists.
    AlreadyExists = 6,
    /// 7: the call was cancelled.
    Cancelled = 7,
    /// 8: the caller is not authenticated.
    Unauthenticated = 8,
    /// 9: the caller may not do this.
    Unauthorized = 9,
    /// 10: the method is not implemented.
    Unimplemented = 10,
    /// 11: the connection is lost or cannot be made.
    Unavailable = 11,
}

impl ErrorCode {
    /// The code for a wire number; numbers outside 0..=11 become UNKNOWN, as peers may know codes we do not.
    pub fn from_number(number: i64) -> ErrorCode {
        match number {
            0 => ErrorCode::Ok,
            1 => ErrorCode::Unknown,
            2 => ErrorCode::Internal,
            3 => ErrorCode::InvalidArgument,
            4 => ErrorCode::TimedOut,
            5 => ErrorCode::NotFound,
            6 => ErrorCode::AlreadyExists,
            7 => ErrorCode::Cancelled,
            8 => ErrorCode::Unauthenticated,
            9 => ErrorCode::Unauthorized,
            10 => ErrorCode::Unimplemented,
            11 => ErrorCode::Unavailable,
            _ => ErrorCode::Unknown,
        }
    }

    /// The wire number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The Arrow C++ `StatusCode` that Arrow C++ reports for this Flight code (`flight-status-code`).
    ///
    /// Arrow C++ turns transport codes into `Status` values this way (`TransportStatus::ToStatus`):
    /// codes without a dedicated `StatusCode` become `IOError` (5) carrying a Flight status detail.
    pub fn arrow_status_code(self) -> i32 {
        match self {
            ErrorCode::Ok => 0,
            ErrorCode::Unknown => 9,
            ErrorCode::InvalidArgument => 4,
            ErrorCode::NotFound => 2,
            ErrorCode::AlreadyExists => 45,
            ErrorCode::Cancelled => 8,
            ErrorCode::Unimplemented => 10,
            ErrorCode::Internal
            | ErrorCode::TimedOut
            | ErrorCode::Unauthenticated
            | ErrorCode::Unauthorized
            | ErrorCode::Unavailable => 5,
        }
    }

    /// The upper-case name used in messages (`INVALID_ARGUMENT`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Ok => "OK",
            ErrorCode::Unknown => "UNKNOWN",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::TimedOut => "TIMED_OUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Unimplemented => "UNIMPLEMENTED",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error of the UCX transport: a Flight code, a message and the error's extra info bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct UcxError {
    /// The Flight status code.
    pub code: ErrorCode,
    /// A human-readable message naming what went wrong.
    pub message: String,
    /// Opaque extra information (`flight-status-detail-bin` on the wire); empty when absent.
    pub extra_info: Bytes,
}

/// The transport's result type.
pub type Result<T, E = UcxError> = std::result::Result<T, E>;

impl UcxError {
    /// An error with a code and message and no extra info.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        UcxError {
            code,
            message: message.into(),
            extra_info: Bytes::new(),
        }
    }

    /// A malformed frame or bad argument (INVALID_ARGUMENT).
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// A lost or refused connection (UNAVAILABLE).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// An internal failure (INTERNAL).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// A cancelled operation (CANCELLED).
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Cancelled, message)
    }

    /// Adds extra info bytes.
    pub fn with_extra_info(mut self, extra_info: impl Into<Bytes>) -> Self {
        self.extra_info = extra_info.into();
        self
    }

    /// The error for a failed UCX operation: connection-level UCX statuses map to UNAVAILABLE,
    /// everything else to INTERNAL. `what` names the operation.
    pub fn from_status(what: &str, status: Status) -> Self {
        let code = if status.is_connection_error() {
            ErrorCode::Unavailable
        } else {
            ErrorCode::Internal
        };
        Self::new(code, format!("{what}: {status}"))
    }
}
