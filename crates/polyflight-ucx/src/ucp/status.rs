//! UCX statuses and the one error type of the UCX layer.
//!
//! Every failure below the frame connection is a [`UcsError`]: what was being done and the
//! `ucs_status_t` it ended with. The few failures that UCX itself does not report (a closed
//! endpoint, an allocation that failed, the library missing) carry the UCX status that names the
//! same condition, so one rule turns them into Flight errors at the edge of this layer
//! ([`From<UcsError> for FlightError`]): a status that means the peer is gone or cannot be
//! reached is UNAVAILABLE, every other one INTERNAL.

use polyflight_core::FlightError;
use std::fmt;
use ucx1_sys::{ucs_status_ptr_t, ucs_status_t};

/// A UCX status code (`ucs_status_t`), kept as its raw value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(i8);

impl Status {
    /// Success.
    pub const OK: Status = Status(0);
    /// `UCS_ERR_BUSY`: there are unprocessed events.
    pub const BUSY: Status = Status(ucs_status_t::UCS_ERR_BUSY as i8);
    /// `UCS_ERR_NO_MEMORY`.
    pub const NO_MEMORY: Status = Status(ucs_status_t::UCS_ERR_NO_MEMORY as i8);
    /// `UCS_ERR_NO_RESOURCE`.
    pub const NO_RESOURCE: Status = Status(ucs_status_t::UCS_ERR_NO_RESOURCE as i8);
    /// `UCS_ERR_INVALID_PARAM`.
    pub const INVALID_PARAM: Status = Status(ucs_status_t::UCS_ERR_INVALID_PARAM as i8);
    /// `UCS_ERR_INVALID_ADDR`.
    pub const INVALID_ADDR: Status = Status(ucs_status_t::UCS_ERR_INVALID_ADDR as i8);
    /// `UCS_ERR_IO_ERROR`.
    pub const IO_ERROR: Status = Status(ucs_status_t::UCS_ERR_IO_ERROR as i8);
    /// `UCS_ERR_MESSAGE_TRUNCATED`.
    pub const MESSAGE_TRUNCATED: Status = Status(ucs_status_t::UCS_ERR_MESSAGE_TRUNCATED as i8);
    /// `UCS_ERR_NO_DEVICE`: UCX has nothing to reach peers with (also: the library is missing).
    pub const NO_DEVICE: Status = Status(ucs_status_t::UCS_ERR_NO_DEVICE as i8);
    /// `UCS_ERR_NOT_CONNECTED`.
    pub const NOT_CONNECTED: Status = Status(ucs_status_t::UCS_ERR_NOT_CONNECTED as i8);

    /// The raw code.
    pub fn raw(self) -> i8 {
        self.0
    }

    /// True for `UCS_OK`.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// `Ok(())` for `UCS_OK`, otherwise the error of operation `what`.
    pub fn check(self, what: &str) -> Result<(), UcsError> {
        if self.is_ok() {
            Ok(())
        } else {
            Err(UcsError::new(what, self))
        }
    }

    /// Statuses that mean the peer is gone or cannot be reached.
    pub fn is_connection_error(self) -> bool {
        use ucs_status_t::*;
        let code = self.0;
        code == UCS_ERR_UNREACHABLE as i8
            || code == UCS_ERR_IO_ERROR as i8
            || code == UCS_ERR_CANCELED as i8
            || code == UCS_ERR_REJECTED as i8
            || code == UCS_ERR_NOT_CONNECTED as i8
            || code == UCS_ERR_CONNECTION_RESET as i8
            || code == UCS_ERR_TIMED_OUT as i8
            || code == UCS_ERR_INVALID_ADDR as i8
            || code == UCS_ERR_NO_DEVICE as i8
            // the link and endpoint failure ranges
            || (UCS_ERR_LAST_ENDPOINT_FAILURE as i8..=UCS_ERR_FIRST_LINK_FAILURE as i8)
                .contains(&code)
    }

    /// The name of the code as in UCX (`UCS_ERR_CONNECTION_RESET`).
    pub fn name(self) -> &'static str {
        use ucs_status_t::*;
        const NAMES: &[(ucs_status_t, &str)] = &[
            (UCS_OK, "UCS_OK"),
            (UCS_INPROGRESS, "UCS_INPROGRESS"),
            (UCS_ERR_NO_MESSAGE, "UCS_ERR_NO_MESSAGE"),
            (UCS_ERR_NO_RESOURCE, "UCS_ERR_NO_RESOURCE"),
            (UCS_ERR_IO_ERROR, "UCS_ERR_IO_ERROR"),
            (UCS_ERR_NO_MEMORY, "UCS_ERR_NO_MEMORY"),
            (UCS_ERR_INVALID_PARAM, "UCS_ERR_INVALID_PARAM"),
            (UCS_ERR_UNREACHABLE, "UCS_ERR_UNREACHABLE"),
            (UCS_ERR_INVALID_ADDR, "UCS_ERR_INVALID_ADDR"),
            (UCS_ERR_NOT_IMPLEMENTED, "UCS_ERR_NOT_IMPLEMENTED"),
            (UCS_ERR_MESSAGE_TRUNCATED, "UCS_ERR_MESSAGE_TRUNCATED"),
            (UCS_ERR_NO_PROGRESS, "UCS_ERR_NO_PROGRESS"),
            (UCS_ERR_BUFFER_TOO_SMALL, "UCS_ERR_BUFFER_TOO_SMALL"),
            (UCS_ERR_NO_ELEM, "UCS_ERR_NO_ELEM"),
            (UCS_ERR_SOME_CONNECTS_FAILED, "UCS_ERR_SOME_CONNECTS_FAILED"),
            (UCS_ERR_NO_DEVICE, "UCS_ERR_NO_DEVICE"),
            (UCS_ERR_BUSY, "UCS_ERR_BUSY"),
            (UCS_ERR_CANCELED, "UCS_ERR_CANCELED"),
            (UCS_ERR_SHMEM_SEGMENT, "UCS_ERR_SHMEM_SEGMENT"),
            (UCS_ERR_ALREADY_EXISTS, "UCS_ERR_ALREADY_EXISTS"),
            (UCS_ERR_OUT_OF_RANGE, "UCS_ERR_OUT_OF_RANGE"),
            (UCS_ERR_TIMED_OUT, "UCS_ERR_TIMED_OUT"),
            (UCS_ERR_EXCEEDS_LIMIT, "UCS_ERR_EXCEEDS_LIMIT"),
            (UCS_ERR_UNSUPPORTED, "UCS_ERR_UNSUPPORTED"),
            (UCS_ERR_REJECTED, "UCS_ERR_REJECTED"),
            (UCS_ERR_NOT_CONNECTED, "UCS_ERR_NOT_CONNECTED"),
            (UCS_ERR_CONNECTION_RESET, "UCS_ERR_CONNECTION_RESET"),
            (UCS_ERR_ENDPOINT_TIMEOUT, "UCS_ERR_ENDPOINT_TIMEOUT"),
        ];
        NAMES
            .iter()
            .find(|(status, _)| *status as i8 == self.0)
            .map(|(_, name)| *name)
            .unwrap_or(if self.0 <= UCS_ERR_FIRST_LINK_FAILURE as i8 {
                "UCS_ERR_LINK_OR_ENDPOINT_FAILURE"
            } else {
                "UCS_ERR_UNKNOWN"
            })
    }
}

impl From<ucs_status_t> for Status {
    fn from(status: ucs_status_t) -> Self {
        Status(status as i8)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A failed UCX operation: what was being done and the UCX status it ended with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{context}: {status}")]
pub struct UcsError {
    /// The status (`ucs_status_t`) the operation ended with.
    pub status: Status,
    /// What failed, e.g. `ucp_ep_create` or `listening on 127.0.0.1:0`.
    pub context: String,
}

impl UcsError {
    /// The error of operation `context` that ended with `status`.
    pub fn new(context: impl Into<String>, status: Status) -> Self {
        UcsError {
            status,
            context: context.into(),
        }
    }

    /// An allocation that failed (`UCS_ERR_NO_MEMORY`), from the core's buffer error.
    pub fn no_memory(error: FlightError) -> Self {
        UcsError::new(error.message(), Status::NO_MEMORY)
    }
}

/// The edge of the UCX layer: a lost or unreachable peer is UNAVAILABLE (a retry may succeed),
/// any other failing UCX operation INTERNAL.
impl From<UcsError> for FlightError {
    fn from(error: UcsError) -> Self {
        if error.status.is_connection_error() {
            FlightError::unavailable(error.to_string())
        } else {
            FlightError::internal(error.to_string())
        }
    }
}

/// What a non-blocking UCX call returned: done now (with a status) or a request in flight.
pub(crate) enum Submitted {
    Done(Status),
    /// A request is in flight; its callback will report completion.
    Pending,
}

impl Submitted {
    /// Decodes a `ucs_status_ptr_t` (`UCS_PTR_IS_ERR` / `UCS_PTR_STATUS` in C; written here with
    /// wrapping arithmetic so a NULL pointer cannot overflow).
    pub(crate) fn from_ptr(ptr: ucs_status_ptr_t) -> Submitted {
        let value = ptr as usize;
        if value == 0 {
            Submitted::Done(Status::OK)
        } else if value >= (ucs_status_t::UCS_ERR_LAST as isize) as usize {
            // an error code in the pointer's low byte: the value is in [-100, -1]
            Submitted::Done(Status(value as isize as i8))
        } else {
            Submitted::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyflight_core::FlightCode;
    use std::ffi::c_void;

    #[test]
    fn status_pointer_decoding() {
        assert!(matches!(
            Submitted::from_ptr(std::ptr::null_mut()),
            Submitted::Done(s) if s.is_ok()
        ));
        let err = (ucs_status_t::UCS_ERR_CONNECTION_RESET as isize) as usize as *mut c_void;
        match Submitted::from_ptr(err) {
            Submitted::Done(s) => {
                assert_eq!(s, Status::from(ucs_status_t::UCS_ERR_CONNECTION_RESET));
                assert!(s.is_connection_error());
            }
            Submitted::Pending => panic!("error pointer decoded as a request"),
        }
        let mut request = 0u64;
        let ptr = &mut request as *mut u64 as *mut c_void;
        assert!(matches!(Submitted::from_ptr(ptr), Submitted::Pending));
        assert_eq!(Status::from(ucs_status_t::UCS_ERR_BUSY), Status::BUSY);
        assert_eq!(Status(-45).name(), "UCS_ERR_LINK_OR_ENDPOINT_FAILURE");
        assert!(Status(-45).is_connection_error());
        assert!(!Status::NO_MEMORY.is_connection_error());
    }

    #[test]
    fn flight_codes_at_the_edge() {
        let lost = FlightError::from(UcsError::new("UCX connection lost", Status::NOT_CONNECTED));
        assert_eq!(lost.code(), FlightCode::Unavailable);
        assert!(lost
            .message()
            .starts_with("UCX connection lost: UCS_ERR_NOT_CONNECTED"));
        let missing = FlightError::from(UcsError::new("cannot load UCX", Status::NO_DEVICE));
        assert_eq!(missing.code(), FlightCode::Unavailable);
        let bug = FlightError::from(UcsError::new("ucp_worker_create", Status::NO_MEMORY));
        assert_eq!(bug.code(), FlightCode::Internal);
    }
}
