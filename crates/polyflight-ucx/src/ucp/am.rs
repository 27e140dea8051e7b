//! Receiving active messages: one [`AmStream`] per AM id on a worker.
//!
//! UCX hands an active message to our callback in one of three forms, and each has its own rule:
//!
//! - eager: the data is valid only during the callback → copied into a 64-byte aligned buffer;
//! - "data" (`UCP_AM_RECV_ATTR_FLAG_DATA`): UCX could let us keep its descriptor, but holding
//!   transport receive buffers while the application works would starve the transport, and the
//!   data is small (below the rendezvous threshold) and must be copied for alignment anyway → read
//!   in place (copied) and `UCS_OK` returned, so UCX releases the descriptor itself, exactly once;
//! - rendezvous (`UCP_AM_RECV_ATTR_FLAG_RNDV`): only a descriptor arrives; we return
//!   `UCS_INPROGRESS` to keep it and hand it out as [`RndvData`], whose [`RndvData::receive`] fetches
//!   the data with `ucp_am_recv_data_nbx` into a buffer we own (64-byte aligned, exactly the length
//!   UCX reports), and whose drop releases an unfetched descriptor with `ucp_am_data_release`.
//!
//! Fetching rendezvous data only when the consumer asks is also our back-pressure for large
//! messages: the sender's request completes only once the data has been pulled. Eager data is
//! counted against the worker's [`ReceiveBudget`] from the callback until the consumer is done
//! with it; the worker stops progressing while the budget is spent. Eager data that arrives while
//! the worker progresses over the budget (for a fetch) once the overdraft is used up, or that is
//! longer than the stream's largest message, is not copied: the consumer gets an
//! [`AmData::Refused`] in its place.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::{c_uint, c_void};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use ucx1_sys::{
    size_t, ucp_am_cb_flags, ucp_am_handler_param_field, ucp_am_handler_param_t,
    ucp_am_recv_attr_t, ucp_am_recv_param_t, ucs_status_t,
};

use polyflight_core::AlignedBuf;

use super::budget::{Held, ReceiveBudget};
use super::request::{submit, Callback};
use super::status::{Status, UcsError};
use super::worker::{CallbackState, Worker};

type Result<T, E = UcsError> = std::result::Result<T, E>;

/// Rendezvous descriptors kept (callback returned `UCS_INPROGRESS`) and not yet fetched or released,
/// over the whole process.
static HELD_DESCRIPTORS: AtomicUsize = AtomicUsize::new(0);

/// How many UCX receive descriptors this process holds right now: a diagnostic for leak tests
/// (after a connection is done it must be 0). "Data" descriptors are never held (see above).
#[cfg(test)]
pub fn held_descriptors() -> usize {
    HELD_DESCRIPTORS.load(Ordering::Relaxed)
}

fn descriptor_done() {
    HELD_DESCRIPTORS.fetch_sub(1, Ordering::Relaxed);
}

/// What the callback stored for one message.
enum RawData {
    Bytes(Bytes, Held),
    Rndv { desc: *mut c_void, length: usize },
    Refused(Refusal),
    Failed(UcsError),
}

struct RawMessage {
    header: Bytes,
    data: RawData,
}

/// Messages of one AM id waiting for the consumer. The callback's `arg` points here.
pub(crate) struct AmInbox {
    queue: RefCell<VecDeque<RawMessage>>,
    waker: Cell<Option<Waker>>,
    /// Set when the stream is dropped or discards: later messages are discarded by UCX.
    closed: Cell<bool>,
    /// The worker's receive budget, charged with the eager data queued here.
    budget: Rc<ReceiveBudget>,
    /// Eager data longer than this is refused rather than copied.
    max_data: Cell<usize>,
}

impl AmInbox {
    fn push(&self, message: RawMessage) {
        self.queue.borrow_mut().push_back(message);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Releases every queued rendezvous descriptor (the stream or the worker is going away).
    pub(crate) fn release_all(&self, worker: &Worker) {
        let drained: Vec<RawMessage> = self.queue.borrow_mut().drain(..).collect();
        for message in drained {
            if let RawData::Rndv { desc, .. } = message.data {
                // SAFETY: an unfetched descriptor we kept by returning UCS_INPROGRESS; released once.
                unsafe { (worker.api().ucp_am_data_release)(worker.handle(), desc) };
                descriptor_done();
            }
        }
    }
}

impl CallbackState for AmInbox {
    fn release(&self, worker: &Worker) {
        self.release_all(worker);
    }
}

/// A received active message.
pub struct AmMessage {
    /// The AM header bytes (copied; headers are small).
    pub header: Bytes,
    /// The AM data.
    pub data: AmData,
    /// What the data holds of the worker's receive budget (eager data only).
    pub held: Option<Held>,
}

/// Why eager data was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It arrived while the receive budget and its overdraft were spent (the worker progressed
    /// for a fetch).
    OverBudget {
        /// The data length.
        length: usize,
        /// The budget's limit.
        limit: usize,
    },
    /// It is longer than the stream's largest message.
    TooLong {
        /// The data length.
        length: usize,
    },
}

/// The data of a received active message.
pub enum AmData {
    /// Already here (eager or "data" kind), in a 64-byte aligned buffer.
    Ready(Bytes),
    /// Rendezvous: still at the sender; fetch it with [`RndvData::receive`].
    Rndv(RndvData),
    /// Eager data that was dropped unread (see [`Refusal`]).
    Refused(Refusal),
}

impl AmData {
    /// The data length (as UCX reports it).
    pub fn len(&self) -> usize {
        match self {
            AmData::Ready(bytes) => bytes.len(),
            AmData::Rndv(rndv) => rndv.len(),
            AmData::Refused(Refusal::OverBudget { length, .. } | Refusal::TooLong { length }) => {
                *length
            }
        }
    }
}

/// A rendezvous descriptor: the data is still on the sender's side.
///
/// Dropping it without [`RndvData::receive`] releases the descriptor (the sender's request then
/// completes without the data being transferred).
pub struct RndvData {
    worker: Rc<Worker>,
    desc: *mut c_void,
    length: usize,
    consumed: bool,
}

impl RndvData {
    /// The data length UCX reports for this message.
    pub fn len(&self) -> usize {
        self.length
    }

    /// Fetches the data into a new 64-byte aligned buffer of exactly [`RndvData::len`] bytes.
    pub async fn receive(mut self) -> Result<Bytes> {
        let length = self.length;
        let mut buffer = AlignedBuf::with_capacity(length).map_err(UcsError::no_memory)?;
        let target = buffer.as_mut_ptr() as *mut c_void;
        let worker = self.worker.clone();
        let desc = self.desc;
        // From here on UCX owns the descriptor: it must not be released, even if the call fails.
        self.consumed = true;
        descriptor_done();
        let operation = submit(
            buffer,
            Callback::AmRecv,
            length,
            |_, _| {},
            |param, ()| {
                // SAFETY: desc is a rendezvous descriptor kept from our callback and not yet used;
                // `target` points to `length` writable bytes owned by the operation until completion.
                unsafe {
                    (worker.api().ucp_am_recv_data_nbx)(
                        worker.handle(),
                        desc,
                        target,
                        length as size_t,
                        param,
                    )
                }
            },
        );
        worker.poke();
        let (status, received, buffer) = operation.await;
        status.check("receiving rendezvous data")?;
        let mut buffer = buffer.ok_or_else(|| {
            UcsError::new(
                "rendezvous buffer missing after completion",
                Status::NO_MEMORY,
            )
        })?;
        if received != length {
            return Err(UcsError::new(
                format!("rendezvous receive delivered {received} of {length} bytes"),
                Status::MESSAGE_TRUNCATED,
            ));
        }
        // SAFETY: UCX wrote `received` bytes, which fit the capacity (checked equal to length).
        unsafe { buffer.set_filled(received) };
        Ok(buffer.into_bytes())
    }
}

impl Drop for RndvData {
    fn drop(&mut self) {
        if !self.consumed {
            // SAFETY: an unfetched rendezvous descriptor we kept; released exactly once, here.
            unsafe { (self.worker.api().ucp_am_data_release)(self.worker.handle(), self.desc) };
            descriptor_done();
            self.worker.poke();
        }
    }
}

/// The received messages of one AM id on one worker.
pub struct AmStream {
    worker: Rc<Worker>,
    inbox: Rc<AmInbox>,
}

impl AmStream {
    /// Registers the receive handler for `id` on `worker`. One stream per id and worker.
    pub fn new(worker: &Rc<Worker>, id: u16) -> Result<AmStream> {
        let inbox = Rc::new(AmInbox {
            queue: RefCell::new(VecDeque::new()),
            waker: Cell::new(None),
            closed: Cell::new(false),
            budget: worker.receive_budget().clone(),
            max_data: Cell::new(usize::MAX),
        });
        // SAFETY: ucp_am_handler_param_t is a plain C struct; all-zero is valid.
        let mut param: ucp_am_handler_param_t = unsafe { std::mem::zeroed() };
        param.field_mask = (ucp_am_handler_param_field::UCP_AM_HANDLER_PARAM_FIELD_ID
            | ucp_am_handler_param_field::UCP_AM_HANDLER_PARAM_FIELD_FLAGS
            | ucp_am_handler_param_field::UCP_AM_HANDLER_PARAM_FIELD_CB
            | ucp_am_handler_param_field::UCP_AM_HANDLER_PARAM_FIELD_ARG)
            .0 as u64;
        param.id = c_uint::from(id);
        param.flags = ucp_am_cb_flags::UCP_AM_FLAG_WHOLE_MSG.0;
        param.cb = Some(am_callback);
        param.arg = Rc::as_ptr(&inbox) as *mut c_void;
        // the worker keeps the inbox alive for as long as the handler may be called
        worker.keep(inbox.clone());
        // SAFETY: valid worker and parameters; arg outlives the worker (see Worker::keep).
        let status =
            unsafe { (worker.api().ucp_worker_set_am_recv_handler)(worker.handle(), &param) };
        Status::from(status).check("ucp_worker_set_am_recv_handler")?;
        Ok(AmStream {
            worker: worker.clone(),
            inbox,
        })
    }

    /// The next message, waiting for one. Never ends by itself; combine it with the endpoint's
    /// failure ([`super::endpoint::Endpoint::failed`]) to stop waiting on a dead connection.
    pub async fn recv(&self) -> AmMessage {
        poll_fn(|cx| match self.try_recv() {
            Some(message) => Poll::Ready(message),
            None => {
                self.inbox.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    /// The next message if one is queued. A message whose data could not be stored (out of
    /// memory) is dropped here with an error log.
    pub fn try_recv(&self) -> Option<AmMessage> {
        loop {
            let raw = self.inbox.queue.borrow_mut().pop_front()?;
            let (data, held) = match raw.data {
                RawData::Bytes(bytes, held) => (AmData::Ready(bytes), Some(held)),
                RawData::Rndv { desc, length } => (
                    AmData::Rndv(RndvData {
                        worker: self.worker.clone(),
                        desc,
                        length,
                        consumed: false,
                    }),
                    None,
                ),
                RawData::Refused(refusal) => (AmData::Refused(refusal), None),
                RawData::Failed(error) => {
                    tracing::error!(%error, "dropping an active message that could not be stored");
                    continue;
                }
            };
            return Some(AmMessage {
                header: raw.header,
                data,
                held,
            });
        }
    }

    /// Number of messages waiting.
    pub fn pending(&self) -> usize {
        self.inbox.queue.borrow().len()
    }

    /// Eager data longer than `max` bytes is refused in the callback, before it is copied.
    pub fn set_max_data(&self, max: usize) {
        self.inbox.max_data.set(max);
    }

    /// Drops every queued message and every later one (the connection is given up): what they
    /// held of the receive budget is released, and UCX discards what still arrives.
    pub fn discard(&self) {
        self.inbox.closed.set(true);
        self.inbox.release_all(&self.worker);
    }
}

impl Drop for AmStream {
    fn drop(&mut self) {
        self.inbox.closed.set(true);
        self.inbox.release_all(&self.worker);
    }
}

/// A slice view of memory UCX passed to a callback; empty for a NULL pointer or zero length.
///
/// # Safety
/// When non-null, `ptr` must point to `len` readable bytes for the duration of the callback.
unsafe fn callback_slice<'a>(ptr: *const c_void, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
    }
}

unsafe extern "C" fn am_callback(
    arg: *mut c_void,
    header: *const c_void,
    header_length: size_t,
    data: *mut c_void,
    length: size_t,
    param: *const ucp_am_recv_param_t,
) -> ucs_status_t {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: arg is the Rc<AmInbox> pointer registered with the handler; the worker keeps
        // it alive for as long as the handler can be called.
        let inbox = unsafe { &*(arg as *const AmInbox) };
        if inbox.closed.get() {
            // UCS_OK: UCX drops the message (for rendezvous it tells the sender it is done)
            return ucs_status_t::UCS_OK;
        }
        // SAFETY: UCX passes header_length readable bytes at header for the callback's duration.
        let header =
            Bytes::copy_from_slice(unsafe { callback_slice(header, header_length as usize) });
        // SAFETY: param is valid during the callback.
        let recv_attr = if param.is_null() {
            0
        } else {
            unsafe { (*param).recv_attr }
        };
        let length = length as usize;
        if recv_attr & ucp_am_recv_attr_t::UCP_AM_RECV_ATTR_FLAG_RNDV as u64 != 0 {
            HELD_DESCRIPTORS.fetch_add(1, Ordering::Relaxed);
            inbox.push(RawMessage {
                header,
                data: RawData::Rndv { desc: data, length },
            });
            // keep the descriptor: it is fetched or released later, exactly once
            return ucs_status_t::UCS_INPROGRESS;
        }
        // eager or "data" kind: read it in place now (see the module comment), unless it must
        // not be kept; the consumer then breaks the connection
        let budget = &inbox.budget;
        let data = if length > inbox.max_data.get() {
            RawData::Refused(Refusal::TooLong { length })
        } else if budget.refuses(length) {
            RawData::Refused(Refusal::OverBudget {
                length,
                limit: budget.limit(),
            })
        } else {
            // SAFETY: UCX passes `length` readable bytes at data for the callback's duration.
            let bytes = unsafe { callback_slice(data, length) };
            match AlignedBuf::copy_from(bytes) {
                Ok(buffer) => RawData::Bytes(buffer.into_bytes(), budget.charge(length)),
                Err(error) => RawData::Failed(UcsError::no_memory(error)),
            }
        };
        inbox.push(RawMessage { header, data });
        ucs_status_t::UCS_OK
    }));
    outcome.unwrap_or_else(|_| {
        tracing::error!("panic in the UCX active message callback; message dropped");
        ucs_status_t::UCS_OK
    })
}
