//! Non-blocking UCX operations as futures.
//!
//! An operation's state ([`Op`]) lives in an `Rc`. Before the UCX call one strong reference is
//! turned into the request's `user_data`; that reference belongs to the UCX side. If UCX completes
//! the operation at once (no callback will come) we take it back immediately; otherwise the
//! completion callback takes it back, records the status, wakes the future and frees the UCX
//! request (allowed inside the callback: UCX marks the request completed before calling it).
//!
//! The payload that UCX reads or writes (send segments, the iov array, the AM header, a receive
//! buffer) is stored in the `Op`, so it stays alive until the callback has run even if the future
//! was dropped. A request is never freed before completion: `ucp_request_free` on a pending
//! request would suppress the callback and with it our only signal that the memory is free.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use ucx1_sys::{size_t, ucp_request_param_t, ucs_status_ptr_t, ucs_status_t};

use super::status::{Status, Submitted};
use super::sys;

/// The shared state of one in-flight operation.
pub(crate) struct Op<T> {
    status: Cell<Option<Status>>,
    length: Cell<usize>,
    waker: Cell<Option<Waker>>,
    payload: RefCell<Option<T>>,
}

impl<T> Op<T> {
    fn complete(&self, status: Status, length: usize) {
        self.length.set(length);
        self.status.set(Some(status));
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// Completes when UCX completes the operation; yields the status, the received length (for
/// receives) and the payload back.
pub(crate) struct OpFuture<T> {
    op: Rc<Op<T>>,
}

impl<T> Future for OpFuture<T> {
    type Output = (Status, usize, Option<T>);

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.op.status.get() {
            Some(status) => Poll::Ready((status, self.op.length.get(), self.op.payload.take())),
            None => {
                self.op.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

/// Which completion callback the request parameters get.
pub(crate) enum Callback {
    /// `ucp_send_nbx_callback_t` (sends, flush, close).
    Send,
    /// `ucp_am_recv_data_nbx_callback_t` (rendezvous data receive).
    AmRecv,
}

/// Starts an operation: lets `prepare` fill the request parameters from `payload` and return what
/// the call needs, stores the payload in the operation's state, then `call`s UCX with both.
///
/// Pointers that `prepare` takes must point to heap memory the payload owns (the bytes of a
/// `Bytes`, a `Vec`'s buffer, an [`polyflight_core::AlignedBuf`]), not into the payload value itself, which
/// moves into the shared state; that memory then stays put and unchanged until completion.
/// `full_length` is reported as the received length if UCX completes at once.
pub(crate) fn submit<T: 'static, A>(
    mut payload: T,
    callback: Callback,
    full_length: usize,
    prepare: impl FnOnce(&mut T, &mut ucp_request_param_t) -> A,
    call: impl FnOnce(&ucp_request_param_t, A) -> ucs_status_ptr_t,
) -> OpFuture<T> {
    // SAFETY: ucp_request_param_t is a plain C struct (integers, pointers, unions of nullable
    // function pointers and an enum whose zero value is UCS_MEMORY_TYPE_HOST): all-zero is valid.
    let mut param: ucp_request_param_t = unsafe { std::mem::zeroed() };
    let prepared = prepare(&mut payload, &mut param);
    let op = Rc::new(Op {
        status: Cell::new(None),
        length: Cell::new(0),
        waker: Cell::new(None),
        payload: RefCell::new(Some(payload)),
    });
    param.op_attr_mask |= ucx1_sys::ucp_op_attr_t::UCP_OP_ATTR_FIELD_CALLBACK as u32
        | ucx1_sys::ucp_op_attr_t::UCP_OP_ATTR_FIELD_USER_DATA as u32;
    match callback {
        Callback::Send => param.cb.send = Some(send_callback::<T>),
        Callback::AmRecv => param.cb.recv_am = Some(am_recv_callback::<T>),
    }
    let user_data = Rc::into_raw(op.clone());
    param.user_data = user_data as *mut c_void;

    match Submitted::from_ptr(call(&param, prepared)) {
        Submitted::Done(status) => {
            // SAFETY: UCX finished without taking the request; no callback will use user_data,
            // so the reference handed out above is ours again.
            drop(unsafe { Rc::from_raw(user_data) });
            op.complete(status, full_length);
        }
        Submitted::Pending => {
            // the callback owns `user_data` from now on
        }
    }
    OpFuture { op }
}

/// Runs `f` without letting a panic unwind into UCX.
fn no_unwind(what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!("panic in UCX {what} callback");
    }
}

unsafe extern "C" fn send_callback<T>(
    request: *mut c_void,
    status: ucs_status_t,
    user_data: *mut c_void,
) {
    no_unwind("send", || {
        // SAFETY: user_data is the reference submit() handed to this request; the callback runs
        // exactly once, so it is taken back exactly once.
        let op = unsafe { Rc::from_raw(user_data as *const Op<T>) };
        op.complete(Status::from(status), 0);
        free_request(request);
    });
}

unsafe extern "C" fn am_recv_callback<T>(
    request: *mut c_void,
    status: ucs_status_t,
    length: size_t,
    user_data: *mut c_void,
) {
    no_unwind("AM receive", || {
        // SAFETY: as in send_callback.
        let op = unsafe { Rc::from_raw(user_data as *const Op<T>) };
        op.complete(Status::from(status), length as usize);
        free_request(request);
    });
}

fn free_request(request: *mut c_void) {
    if let Ok(api) = sys::api() {
        // SAFETY: the request is completed (we are in its callback) and freed only here.
        unsafe { (api.ucp_request_free)(request) };
    }
}
