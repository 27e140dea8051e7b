//! Our small async layer over the UCX UCP API.
//!
//! The shape: a thread-safe [`Context`] (UCP features AM + WAKEUP); a single-threaded [`Worker`]
//! (`!Send`, shared as `Rc`) driven by a progress task on a current-thread tokio runtime with a
//! `LocalSet` ([`run_worker_thread`]), busy-polling or waiting on the worker's wakeup fd
//! ([`ProgressMode`]); a [`Listener`] whose connection requests can be accepted on another
//! thread's worker; [`Endpoint`]s created from a socket address or a connection request, whose
//! failure (UCX error callback) fails every pending and later operation; active message sends
//! with scatter-gather data ([`Endpoint::am_send`]); and an [`AmStream`] per AM id yielding
//! received messages, with rendezvous data fetched on demand into 64-byte aligned buffers.
//!
//! Non-blocking UCX operations are futures woken from UCX completion callbacks; the state a
//! callback touches (and every buffer UCX reads or writes) is owned by a reference that the
//! callback itself releases, so dropping a future early never frees memory UCX still uses.
//! Every UCX parameter struct is zero-initialised and then filled, with its field mask set.

mod am;
mod buffer;
mod context;
mod endpoint;
mod listener;
mod request;
pub mod sys;
mod worker;

pub use am::{held_descriptors, AmData, AmMessage, AmStream, RndvData};
pub use buffer::{aligned_bytes, AlignedBuf, BUFFER_ALIGNMENT};
pub use context::Context;
pub use endpoint::Endpoint;
pub use listener::{ConnectionRequest, Listener};
pub use worker::{run_worker_thread, ProgressMode, Worker, WorkerThread};

use std::fmt;
use ucx1_sys::{ucs_status_ptr_t, ucs_status_t};

/// A UCX status code (`ucs_status_t`), kept as its raw value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(i8);

impl Status {
    /// Success.
    pub const OK: Status = Status(0);
    /// The operation is in progress.
    pub const INPROGRESS: Status = Status(1);
    /// `UCS_ERR_BUSY`: there are unprocessed events.
    pub const BUSY: Status = Status(ucs_status_t::UCS_ERR_BUSY as i8);
    /// `UCS_ERR_CANCELED`.
    pub const CANCELED: Status = Status(ucs_status_t::UCS_ERR_CANCELED as i8);

    /// The raw code.
    pub fn raw(self) -> i8 {
        self.0
    }

    /// True for `UCS_OK`.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// True for an error code (negative).
    pub fn is_err(self) -> bool {
        self.0 < 0
    }

    /// `Ok(())` for `UCS_OK`, otherwise the error for operation `what`.
    pub fn check(self, what: &str) -> crate::error::Result<()> {
        if self.is_ok() {
            Ok(())
        } else {
            Err(crate::error::UcxError::from_status(what, self))
        }
    }

    /// Statuses that mean the connection is gone or could not be made.
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
        assert!(!Status::from(ucs_status_t::UCS_ERR_NO_MEMORY).is_connection_error());
    }
}
