//! UCP listeners: accept connection requests on a socket address.
//!
//! The listener lives on one worker (its thread); each incoming connection request is queued and
//! handed out by [`Listener::accept`] as a [`ConnectionRequest`], which is `Send` so that the
//! connection can be accepted on another thread's worker (one worker per connection).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::ptr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use ucx1_sys::{
    ucp_conn_request_attr_field, ucp_conn_request_attr_t, ucp_conn_request_h,
    ucp_listener_attr_field, ucp_listener_attr_t, ucp_listener_h, ucp_listener_params_field,
    ucp_listener_params_t,
};

use super::sockaddr::{socket_addr_from_storage, RawSockAddr};
use super::status::{Status, UcsError};
use super::sys;
use super::worker::Worker;

type Result<T, E = UcsError> = std::result::Result<T, E>;

/// An incoming connection, to be accepted with [`super::Endpoint::accept`] on any worker of the
/// same context, or rejected with [`Listener::reject`].
pub struct ConnectionRequest {
    raw: ucp_conn_request_h,
    remote: Option<SocketAddr>,
}

// SAFETY: UCX lets a connection request be accepted on a worker of another thread; the handle is
// used exactly once (accept or reject), by whichever thread holds the request.
unsafe impl Send for ConnectionRequest {}

impl ConnectionRequest {
    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote
    }

    pub(crate) fn into_raw(self) -> ucp_conn_request_h {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }
}

impl Drop for ConnectionRequest {
    fn drop(&mut self) {
        // Rejecting needs the listener (on its own thread); a request dropped elsewhere is left
        // to UCX, which frees it with the listener. The client sees its connection fail.
        tracing::warn!(remote = ?self.remote, "UCX connection request dropped without accepting it");
    }
}

struct Pending {
    queue: RefCell<VecDeque<ConnectionRequest>>,
    waker: Cell<Option<Waker>>,
}

/// A UCP listener bound to a socket address.
pub struct Listener {
    worker: Rc<Worker>,
    handle: ucp_listener_h,
    /// The connection callback's argument points here; freed after the listener is destroyed.
    pending: *const Pending,
    local_addr: SocketAddr,
}

unsafe extern "C" fn connection_callback(request: ucp_conn_request_h, arg: *mut c_void) {
    let caught = std::panic::catch_unwind(|| {
        // SAFETY: arg is the Pending the listener owns until after ucp_listener_destroy.
        let pending = unsafe { &*(arg as *const Pending) };
        let remote = query_remote(request);
        tracing::debug!(?remote, "UCX connection request");
        pending.queue.borrow_mut().push_back(ConnectionRequest {
            raw: request,
            remote,
        });
        if let Some(waker) = pending.waker.take() {
            waker.wake();
        }
    });
    if caught.is_err() {
        tracing::error!("panic in the UCX connection request callback");
    }
}

fn query_remote(request: ucp_conn_request_h) -> Option<SocketAddr> {
    let api = sys::api().ok()?;
    // SAFETY: ucp_conn_request_attr_t is a plain C struct; all-zero is valid.
    let mut attr: ucp_conn_request_attr_t = unsafe { std::mem::zeroed() };
    attr.field_mask = ucp_conn_request_attr_field::UCP_CONN_REQUEST_ATTR_FIELD_CLIENT_ADDR.0 as u64;
    // SAFETY: a live connection request (we are in its callback); attr is an out-parameter.
    let status = unsafe { (api.ucp_conn_request_query)(request, &mut attr) };
    if !Status::from(status).is_ok() {
        return None;
    }
    socket_addr_from_storage(&attr.client_address)
}

impl Listener {
    /// Listens on `addr` (port 0 picks a free port; [`Listener::local_addr`] reports it).
    pub fn bind(worker: &Rc<Worker>, addr: SocketAddr) -> Result<Listener> {
        let pending = Box::into_raw(Box::new(Pending {
            queue: RefCell::new(VecDeque::new()),
            waker: Cell::new(None),
        }));
        let raw_addr = RawSockAddr::new(addr);
        // SAFETY: ucp_listener_params_t is a plain C struct; all-zero is valid.
        let mut params: ucp_listener_params_t = unsafe { std::mem::zeroed() };
        params.field_mask = (ucp_listener_params_field::UCP_LISTENER_PARAM_FIELD_SOCK_ADDR
            | ucp_listener_params_field::UCP_LISTENER_PARAM_FIELD_CONN_HANDLER)
            .0 as u64;
        params.sockaddr = raw_addr.as_ucs();
        params.conn_handler.cb = Some(connection_callback);
        params.conn_handler.arg = pending as *mut c_void;
        let mut handle: ucp_listener_h = ptr::null_mut();
        // SAFETY: valid worker on its thread; params and the address live across the call.
        let status =
            unsafe { (worker.api().ucp_listener_create)(worker.handle(), &params, &mut handle) };
        let status = Status::from(status);
        if !status.is_ok() || handle.is_null() {
            // SAFETY: no listener exists, so nothing refers to `pending`.
            drop(unsafe { Box::from_raw(pending) });
            return Err(UcsError::new(format!("listening on {addr}"), status));
        }
        let mut listener = Listener {
            worker: worker.clone(),
            handle,
            pending,
            local_addr: addr,
        };
        listener.local_addr = listener.query_addr().unwrap_or(addr);
        worker.poke();
        Ok(listener)
    }

    fn query_addr(&self) -> Result<SocketAddr> {
        // SAFETY: ucp_listener_attr_t is a plain C struct; all-zero is valid.
        let mut attr: ucp_listener_attr_t = unsafe { std::mem::zeroed() };
        attr.field_mask = ucp_listener_attr_field::UCP_LISTENER_ATTR_FIELD_SOCKADDR.0 as u64;
        // SAFETY: live listener; attr is an out-parameter.
        let status = unsafe { (self.worker.api().ucp_listener_query)(self.handle, &mut attr) };
        Status::from(status).check("ucp_listener_query")?;
        socket_addr_from_storage(&attr.sockaddr).ok_or_else(|| {
            UcsError::new(
                "ucp_listener_query returned an unknown address family",
                Status::INVALID_ADDR,
            )
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn pending(&self) -> &Pending {
        // SAFETY: owned by self until drop.
        unsafe { &*self.pending }
    }

    /// The next connection request.
    pub async fn accept(&self) -> ConnectionRequest {
        poll_fn(|cx| {
            let next = self.pending().queue.borrow_mut().pop_front();
            match next {
                Some(request) => Poll::Ready(request),
                None => {
                    self.pending().waker.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Refuses a connection request (on the listener's thread).
    pub fn reject(&self, request: ConnectionRequest) {
        let raw = request.into_raw();
        // SAFETY: a request of this listener, used once.
        let status = unsafe { (self.worker.api().ucp_listener_reject)(self.handle, raw) };
        if let Err(e) = Status::from(status).check("ucp_listener_reject") {
            tracing::debug!(error = %e, "rejecting a UCX connection request");
        }
        self.worker.poke();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let queued: Vec<ConnectionRequest> = self.pending().queue.borrow_mut().drain(..).collect();
        for request in queued {
            self.reject(request);
        }
        // SAFETY: live listener, destroyed once; afterwards the callback cannot run.
        unsafe { (self.worker.api().ucp_listener_destroy)(self.handle) };
        // SAFETY: allocated in bind; nothing refers to it any more.
        drop(unsafe { Box::from_raw(self.pending as *mut Pending) });
    }
}
