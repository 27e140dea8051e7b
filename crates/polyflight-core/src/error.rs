//! One error type for the whole framework: a Flight status code, a message and the opaque
//! "extra info" bytes that Flight errors carry (`x-arrow-status-detail-bin` on gRPC,
//! `flight-status-detail-bin` on UCX). Backends convert to and from their wire at the edges only.

use bytes::Bytes;
use std::fmt;

/// The Flight status codes, numbered as Arrow C++'s `TransportStatusCode` (the UCX wire sends
/// these numbers; gRPC maps each to a gRPC status code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlightCode {
    /// Success. Never the code of a [`FlightError`]; present so status frames can be decoded.
    Ok = 0,
    /// An error of unknown origin, or a code this side does not know.
    Unknown = 1,
    /// A bug or broken invariant on the side that reports it.
    Internal = 2,
    /// The request was malformed: bad FlightData, a bad descriptor, a bad argument.
    InvalidArgument = 3,
    /// The deadline passed (gRPC `DEADLINE_EXCEEDED`).
    TimedOut = 4,
    /// The requested flight, ticket or resource does not exist.
    NotFound = 5,
    /// The resource to be created exists already.
    AlreadyExists = 6,
    /// The call was cancelled by either side.
    Cancelled = 7,
    /// No or invalid credentials.
    Unauthenticated = 8,
    /// Valid credentials without the right to do this (gRPC `PERMISSION_DENIED`).
    Unauthorized = 9,
    /// The server does not implement this method or action.
    Unimplemented = 10,
    /// The server cannot be reached or went away; retrying may succeed.
    Unavailable = 11,
}

impl FlightCode {
    /// All codes, in numeric order.
    pub const ALL: [FlightCode; 12] = [
        FlightCode::Ok,
        FlightCode::Unknown,
        FlightCode::Internal,
        FlightCode::InvalidArgument,
        FlightCode::TimedOut,
        FlightCode::NotFound,
        FlightCode::AlreadyExists,
        FlightCode::Cancelled,
        FlightCode::Unauthenticated,
        FlightCode::Unauthorized,
        FlightCode::Unimplemented,
        FlightCode::Unavailable,
    ];

    /// The code's number on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The code for a wire number; numbers this side does not know become [`FlightCode::Unknown`].
    pub fn from_number(number: i64) -> FlightCode {
        usize::try_from(number)
            .ok()
            .and_then(|i| FlightCode::ALL.get(i).copied())
            .unwrap_or(FlightCode::Unknown)
    }

    /// The Arrow C++ `StatusCode` an Arrow C++ server reports alongside this Flight code: the
    /// number in gRPC's `x-arrow-status` trailer and in the UCX status frame's
    /// `flight-status-code`. One table for every transport.
    ///
    /// An Arrow C++ server sends the code of the `arrow::Status` its handler returned. The codes
    /// Arrow has a `StatusCode` of its own for come from that status: NOT_FOUND = `KeyError` (2),
    /// INVALID_ARGUMENT = `Invalid` (4), UNKNOWN = `UnknownError` (9), UNIMPLEMENTED =
    /// `NotImplemented` (10), ALREADY_EXISTS = `AlreadyExists` (45). Every other Flight code
    /// (INTERNAL, TIMED_OUT, CANCELLED, UNAUTHENTICATED, UNAUTHORIZED, UNAVAILABLE) is made with
    /// `MakeFlightError`, which always builds an `IOError` (5) carrying the Flight code in a
    /// status detail — CANCELLED included. OK is 0.
    ///
    /// Arrow C++ peers read the Flight code, not this number, to know what failed; it matters
    /// where they rebuild an `arrow::Status` from it.
    pub fn arrow_status_code(self) -> u8 {
        match self {
            FlightCode::Ok => 0,
            FlightCode::NotFound => 2,
            FlightCode::InvalidArgument => 4,
            FlightCode::Unknown => 9,
            FlightCode::Unimplemented => 10,
            FlightCode::AlreadyExists => 45,
            FlightCode::Internal
            | FlightCode::TimedOut
            | FlightCode::Cancelled
            | FlightCode::Unauthenticated
            | FlightCode::Unauthorized
            | FlightCode::Unavailable => 5,
        }
    }

    /// The gRPC status code a Flight code travels as.
    pub fn grpc_code(self) -> u16 {
        use grpc_code as g;
        match self {
            FlightCode::Ok => g::OK,
            FlightCode::Unknown => g::UNKNOWN,
            FlightCode::Internal => g::INTERNAL,
            FlightCode::InvalidArgument => g::INVALID_ARGUMENT,
            FlightCode::TimedOut => g::DEADLINE_EXCEEDED,
            FlightCode::NotFound => g::NOT_FOUND,
            FlightCode::AlreadyExists => g::ALREADY_EXISTS,
            FlightCode::Cancelled => g::CANCELLED,
            FlightCode::Unauthenticated => g::UNAUTHENTICATED,
            FlightCode::Unauthorized => g::PERMISSION_DENIED,
            FlightCode::Unimplemented => g::UNIMPLEMENTED,
            FlightCode::Unavailable => g::UNAVAILABLE,
        }
    }

    /// The Flight code for a gRPC status code (codes Flight lacks map as Arrow C++ maps them).
    pub fn from_grpc_code(code: u16) -> FlightCode {
        use grpc_code as g;
        match code {
            g::OK => FlightCode::Ok,
            g::CANCELLED => FlightCode::Cancelled,
            g::INVALID_ARGUMENT | g::OUT_OF_RANGE => FlightCode::InvalidArgument,
            g::DEADLINE_EXCEEDED => FlightCode::TimedOut,
            g::NOT_FOUND => FlightCode::NotFound,
            g::ALREADY_EXISTS => FlightCode::AlreadyExists,
            g::PERMISSION_DENIED => FlightCode::Unauthorized,
            g::UNIMPLEMENTED => FlightCode::Unimplemented,
            g::INTERNAL | g::DATA_LOSS => FlightCode::Internal,
            g::UNAVAILABLE => FlightCode::Unavailable,
            g::UNAUTHENTICATED => FlightCode::Unauthenticated,
            _ => FlightCode::Unknown,
        }
    }

    /// The upper-case name used in messages and logs, e.g. `INVALID_ARGUMENT`.
    pub fn name(self) -> &'static str {
        match self {
            FlightCode::Ok => "OK",
            FlightCode::Unknown => "UNKNOWN",
            FlightCode::Internal => "INTERNAL",
            FlightCode::InvalidArgument => "INVALID_ARGUMENT",
            FlightCode::TimedOut => "TIMED_OUT",
            FlightCode::NotFound => "NOT_FOUND",
            FlightCode::AlreadyExists => "ALREADY_EXISTS",
            FlightCode::Cancelled => "CANCELLED",
            FlightCode::Unauthenticated => "UNAUTHENTICATED",
            FlightCode::Unauthorized => "UNAUTHORIZED",
            FlightCode::Unimplemented => "UNIMPLEMENTED",
            FlightCode::Unavailable => "UNAVAILABLE",
        }
    }
}

/// gRPC status codes, as the gRPC specification numbers them (Flight sends only some of them).
#[allow(missing_docs)] // the names are the spec's
pub mod grpc_code {
    pub const OK: u16 = 0;
    pub const CANCELLED: u16 = 1;
    pub const UNKNOWN: u16 = 2;
    pub const INVALID_ARGUMENT: u16 = 3;
    pub const DEADLINE_EXCEEDED: u16 = 4;
    pub const NOT_FOUND: u16 = 5;
    pub const ALREADY_EXISTS: u16 = 6;
    pub const PERMISSION_DENIED: u16 = 7;
    pub const RESOURCE_EXHAUSTED: u16 = 8;
    pub const FAILED_PRECONDITION: u16 = 9;
    pub const ABORTED: u16 = 10;
    pub const OUT_OF_RANGE: u16 = 11;
    pub const UNIMPLEMENTED: u16 = 12;
    pub const INTERNAL: u16 = 13;
    pub const UNAVAILABLE: u16 = 14;
    pub const DATA_LOSS: u16 = 15;
    pub const UNAUTHENTICATED: u16 = 16;
}

impl fmt::Display for FlightCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed Flight call or operation: code, human-readable message, and opaque extra-info bytes
/// that travel with the error between implementations.
#[derive(Clone, PartialEq, Eq)]
pub struct FlightError {
    code: FlightCode,
    message: String,
    extra_info: Bytes,
}

/// `Result` with [`FlightError`].
pub type Result<T, E = FlightError> = std::result::Result<T, E>;

macro_rules! constructors {
    ($($fn_name:ident => $code:ident),* $(,)?) => {
        $(
            #[doc = concat!("A `", stringify!($code), "` error with this message.")]
            pub fn $fn_name(message: impl Into<String>) -> Self {
                Self::new(FlightCode::$code, message)
            }
        )*
    };
}

impl FlightError {
    /// An error with `code` and `message` and no extra info.
    pub fn new(code: FlightCode, message: impl Into<String>) -> Self {
        FlightError {
            code,
            message: message.into(),
            extra_info: Bytes::new(),
        }
    }

    constructors! {
        unknown => Unknown,
        internal => Internal,
        invalid_argument => InvalidArgument,
        timed_out => TimedOut,
        not_found => NotFound,
        already_exists => AlreadyExists,
        cancelled => Cancelled,
        unauthenticated => Unauthenticated,
        unauthorized => Unauthorized,
        unimplemented => Unimplemented,
        unavailable => Unavailable,
    }

    /// Attaches opaque extra-info bytes (Arrow's "status detail") to the error.
    pub fn with_extra_info(mut self, extra_info: impl Into<Bytes>) -> Self {
        self.extra_info = extra_info.into();
        self
    }

    /// Prefixes the message with context, keeping code and extra info.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The Flight status code.
    pub fn code(&self) -> FlightCode {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The opaque extra-info bytes (empty when the peer sent none).
    pub fn extra_info(&self) -> &Bytes {
        &self.extra_info
    }
}

impl fmt::Debug for FlightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("FlightError");
        s.field("code", &self.code).field("message", &self.message);
        if !self.extra_info.is_empty() {
            s.field("extra_info", &self.extra_info);
        }
        s.finish()
    }
}

impl fmt::Display for FlightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for FlightError {}

impl From<arrow_schema::ArrowError> for FlightError {
    fn from(err: arrow_schema::ArrowError) -> Self {
        use arrow_schema::ArrowError as A;
        let code = match &err {
            A::NotYetImplemented(_) => FlightCode::Unimplemented,
            A::IoError(..) | A::ExternalError(_) => FlightCode::Internal,
            A::MemoryError(_) => FlightCode::Internal,
            _ => FlightCode::InvalidArgument,
        };
        FlightError::new(code, err.to_string())
    }
}

impl From<prost::DecodeError> for FlightError {
    fn from(err: prost::DecodeError) -> Self {
        FlightError::invalid_argument(format!("malformed protobuf message: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_numbers_map_to_unknown() {
        for code in FlightCode::ALL {
            assert_eq!(FlightCode::from_number(code.as_u8().into()), code);
        }
        assert_eq!(FlightCode::from_number(12), FlightCode::Unknown);
        assert_eq!(FlightCode::from_number(-1), FlightCode::Unknown);
    }

    #[test]
    fn arrow_status_codes_follow_arrow_cpp() {
        // Arrow C++ cpp/src/arrow/flight/types.cc, MakeFlightError: a Flight error is
        // `arrow::Status(StatusCode::IOError, message, FlightStatusDetail(code))` for every
        // FlightStatusCode, Cancelled included. cpp/src/arrow/flight/transport.cc,
        // TransportStatus::FromStatus: that detail's Cancelled becomes the Flight code kCancelled.
        // The status code beside it is the Status's own code, both in
        // cpp/src/arrow/flight/transport/ucx/ucx_internal.cc, HeadersFrame::Make
        // (`flight-status-code` = `status.code()`) and in
        // cpp/src/arrow/flight/transport/grpc/util_internal.cc, ToGrpcStatus (`x-arrow-status` =
        // `arrow_status.code()`). So an Arrow C++ server reports a Cancelled Flight error as
        // Flight code 7 with StatusCode::IOError (5). (TransportStatus::ToStatus turns a received
        // kCancelled into StatusCode::Cancelled (8), but that is how a C++ client reads a status
        // that came without a status code, not what a server sends.)
        assert_eq!(FlightCode::Cancelled.arrow_status_code(), 5);
        // Codes with an Arrow StatusCode of their own (FromStatus: IsKeyError, IsInvalid,
        // IsNotImplemented, IsAlreadyExists; an UnknownError status has no Flight detail).
        assert_eq!(FlightCode::NotFound.arrow_status_code(), 2);
        assert_eq!(FlightCode::InvalidArgument.arrow_status_code(), 4);
        assert_eq!(FlightCode::Unknown.arrow_status_code(), 9);
        assert_eq!(FlightCode::Unimplemented.arrow_status_code(), 10);
        assert_eq!(FlightCode::AlreadyExists.arrow_status_code(), 45);
        // The other MakeFlightError codes.
        for code in [
            FlightCode::Internal,
            FlightCode::TimedOut,
            FlightCode::Unauthenticated,
            FlightCode::Unauthorized,
            FlightCode::Unavailable,
        ] {
            assert_eq!(code.arrow_status_code(), 5, "{code}");
        }
        assert_eq!(FlightCode::Ok.arrow_status_code(), 0);
    }

    #[test]
    fn display_names_the_code() {
        let err = FlightError::not_found("no such flight").with_extra_info(&b"\x01\x02"[..]);
        assert_eq!(err.to_string(), "NOT_FOUND: no such flight");
        assert_eq!(err.extra_info().as_ref(), b"\x01\x02");
        assert_eq!(err.context("get").message(), "get: no such flight");
    }
}
