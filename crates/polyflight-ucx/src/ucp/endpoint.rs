//! UCP endpoints: connections to a peer, created from a socket address (client) or from a
//! listener's connection request (server).
//!
//! A client endpoint is created with the [`ErrorHandling`] mode it is given (peer error handling
//! by default); an accepted endpoint takes whatever mode its client chose, because UCX refuses a
//! connection whose two sides ask for different modes ("error handling level mismatch") and Arrow
//! C++ clients ask for none. Every endpoint has an error callback. When it fires the endpoint is
//! marked failed: UCX completes its pending requests with an error, later sends fail at once with
//! UNAVAILABLE, and [`Endpoint::failed`] resolves, so nothing waits forever on a dead peer.

use bytes::Bytes;
use std::cell::Cell;
use std::ffi::{c_uint, c_void};
use std::future::Future;
use std::net::SocketAddr;
use std::ptr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use ucx1_sys::{
    size_t, ucp_dt_iov, ucp_dt_make_contig, ucp_dt_type, ucp_ep_close_flags_t, ucp_ep_h,
    ucp_ep_params_field, ucp_ep_params_flags_field, ucp_ep_params_t, ucp_err_handling_mode_t,
    ucp_op_attr_t, ucp_send_am_flags, ucs_status_t,
};

use super::listener::ConnectionRequest;
use super::request::{submit, Callback, OpFuture};
use super::sockaddr::RawSockAddr;
use super::status::{Status, UcsError};
use super::worker::Worker;

type Result<T, E = UcsError> = std::result::Result<T, E>;

/// How long dropping an open endpoint progresses the worker to let a forced close finish.
const DROP_CLOSE_BUDGET: Duration = Duration::from_millis(500);

/// The UCX error handling mode of a client's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorHandling {
    /// `UCP_ERR_HANDLING_MODE_PEER` (default): a peer that vanishes fails the connection's calls at
    /// once instead of leaving them to a timeout. UCX 1.12 then uses shared memory only where
    /// error handling is claimed for it (polyflight claims it; see docs/ucx.md).
    #[default]
    Peer,
    /// `UCP_ERR_HANDLING_MODE_NONE`, the mode of Arrow C++'s endpoints: against an Arrow C++ server
    /// this keeps shared memory in play, at the price of noticing a dead peer only by timeouts.
    None,
}

impl ErrorHandling {
    /// Reads `POLYFLIGHT_UCX_ERROR_HANDLING` (`peer` or `none`); anything else gives the default.
    pub fn from_env() -> ErrorHandling {
        match std::env::var("POLYFLIGHT_UCX_ERROR_HANDLING").as_deref() {
            Ok("none") => ErrorHandling::None,
            _ => ErrorHandling::Peer,
        }
    }

    fn mode(self) -> ucp_err_handling_mode_t {
        match self {
            ErrorHandling::Peer => ucp_err_handling_mode_t::UCP_ERR_HANDLING_MODE_PEER,
            ErrorHandling::None => ucp_err_handling_mode_t::UCP_ERR_HANDLING_MODE_NONE,
        }
    }
}

/// State the UCX error callback writes; its `arg` holds one strong reference.
struct EpState {
    error: Cell<Option<Status>>,
    failed: Notify,
}

impl EpState {
    fn fail(&self, status: Status) {
        if self.error.get().is_none() {
            self.error.set(Some(status));
        }
        self.failed.notify_waiters();
    }
}

/// A connection to a peer on one worker.
pub struct Endpoint {
    worker: Rc<Worker>,
    handle: Cell<ucp_ep_h>,
    state: Rc<EpState>,
    /// The reference given to UCX as the error callback's argument; reclaimed once closed.
    error_arg: Cell<*const EpState>,
    peer: Option<SocketAddr>,
}

unsafe extern "C" fn error_callback(arg: *mut c_void, _ep: ucp_ep_h, status: ucs_status_t) {
    let caught = std::panic::catch_unwind(|| {
        // SAFETY: arg is the EpState reference the endpoint handed to UCX; it is reclaimed only
        // after the endpoint is closed, when no more callbacks can come.
        let state = unsafe { &*(arg as *const EpState) };
        let status = Status::from(status);
        tracing::debug!(%status, "UCX endpoint failed");
        state.fail(status);
    });
    if caught.is_err() {
        tracing::error!("panic in the UCX endpoint error callback");
    }
}

impl Endpoint {
    /// Connects to a listener at `addr` (client-server mode). Returns at once; connection
    /// establishment continues in the background, and a failure to connect shows up as the
    /// endpoint failing (use [`Endpoint::flush`] to wait for it).
    pub fn connect(
        worker: &Rc<Worker>,
        addr: SocketAddr,
        errors: ErrorHandling,
    ) -> Result<Endpoint> {
        let raw = RawSockAddr::new(addr);
        Self::create(worker, Some(addr), |params| {
            params.field_mask |= (ucp_ep_params_field::UCP_EP_PARAM_FIELD_FLAGS
                | ucp_ep_params_field::UCP_EP_PARAM_FIELD_SOCK_ADDR
                | ucp_ep_params_field::UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE)
                .0 as u64;
            params.err_mode = errors.mode();
            params.flags = ucp_ep_params_flags_field::UCP_EP_PARAMS_FLAGS_CLIENT_SERVER.0;
            params.sockaddr = raw.as_ucs();
        })
    }

    /// Accepts a connection request on `worker` (which may belong to another thread than the
    /// listener's). The endpoint's error handling mode is left to UCX, which takes the client's.
    pub fn accept(worker: &Rc<Worker>, request: ConnectionRequest) -> Result<Endpoint> {
        let peer = request.remote_addr();
        let raw = request.into_raw();
        Self::create(worker, peer, |params| {
            params.field_mask |= ucp_ep_params_field::UCP_EP_PARAM_FIELD_CONN_REQUEST.0 as u64;
            params.conn_request = raw;
        })
    }

    fn create(
        worker: &Rc<Worker>,
        peer: Option<SocketAddr>,
        fill: impl FnOnce(&mut ucp_ep_params_t),
    ) -> Result<Endpoint> {
        let state = Rc::new(EpState {
            error: Cell::new(None),
            failed: Notify::new(),
        });
        let error_arg = Rc::into_raw(state.clone());
        // SAFETY: ucp_ep_params_t is a plain C struct; all-zero is valid (error mode 0 is NONE).
        let mut params: ucp_ep_params_t = unsafe { std::mem::zeroed() };
        params.field_mask = ucp_ep_params_field::UCP_EP_PARAM_FIELD_ERR_HANDLER.0 as u64;
        params.err_handler.cb = Some(error_callback);
        params.err_handler.arg = error_arg as *mut c_void;
        fill(&mut params);
        let mut handle: ucp_ep_h = ptr::null_mut();
        // SAFETY: valid worker on its thread; params (and the socket address it points to) live
        // across the call; handle is an out-parameter.
        let status = unsafe { (worker.api().ucp_ep_create)(worker.handle(), &params, &mut handle) };
        let status = Status::from(status);
        if !status.is_ok() || handle.is_null() {
            // SAFETY: no endpoint exists, so UCX holds no copy of error_arg.
            drop(unsafe { Rc::from_raw(error_arg) });
            return Err(UcsError::new("ucp_ep_create", status));
        }
        worker.poke();
        Ok(Endpoint {
            worker: worker.clone(),
            handle: Cell::new(handle),
            state,
            error_arg: Cell::new(error_arg),
            peer,
        })
    }

    /// The peer's address, when known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// UCX's description of the endpoint's current configuration (`ucp_ep_print_info`): its
    /// lanes and what each carries, e.g. `... cma/memory ... rma_bw#0`. `None` once the endpoint
    /// is closed or if the text could not be captured. For logs and tests; the format is UCX's.
    pub fn describe(&self) -> Option<String> {
        let ep = self.handle.get();
        if ep.is_null() {
            return None;
        }
        let mut text: *mut libc::c_char = ptr::null_mut();
        let mut len: libc::size_t = 0;
        // SAFETY: open_memstream writes the buffer's address and size to the out-parameters.
        let stream = unsafe { libc::open_memstream(&mut text, &mut len) };
        if stream.is_null() {
            return None;
        }
        // SAFETY: ep is open on this thread's worker; stream is a live FILE (libc's FILE is the
        // same C type as the bindings').
        unsafe { (self.worker.api().ucp_ep_print_info)(ep, stream.cast()) };
        // SAFETY: stream is live; closing it finalises text and len.
        let closed = unsafe { libc::fclose(stream) };
        if text.is_null() {
            return None;
        }
        // SAFETY: after fclose, text points to len bytes (plus a NUL) allocated with malloc.
        let description = (closed == 0).then(|| {
            let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
            String::from_utf8_lossy(bytes).into_owned()
        });
        // SAFETY: open_memstream's buffer is the caller's to free, once.
        unsafe { libc::free(text.cast()) };
        description
    }

    /// The worker this endpoint lives on.
    pub fn worker(&self) -> &Rc<Worker> {
        &self.worker
    }

    /// The error the endpoint failed with, if it has.
    pub fn error(&self) -> Option<UcsError> {
        if self.handle.get().is_null() {
            return Some(UcsError::new(
                "UCX endpoint is closed",
                Status::NOT_CONNECTED,
            ));
        }
        self.state
            .error
            .get()
            .map(|status| UcsError::new("UCX connection lost", status))
    }

    /// Resolves when the endpoint fails (the peer went away or the connection broke).
    pub async fn failed(&self) -> UcsError {
        loop {
            // created before the check, so a failure between the two is not missed
            let notified = self.state.failed.notified();
            if let Some(error) = self.error() {
                return error;
            }
            notified.await;
        }
    }

    /// Sends one active message with the REPLY flag: `header` as the AM header and the
    /// concatenation of `segments` as the AM data (one contiguous buffer, or a scatter-gather IOV
    /// list when there are several). The send is started before this returns, so sends issued
    /// one after another go out in that order; the future completes when UCX no longer needs the
    /// segments (they are kept alive until then, even if the future is dropped).
    ///
    /// `segments` must hold at least one byte in total: UCX mishandles empty AM data.
    pub fn am_send(
        &self,
        id: u16,
        header: Bytes,
        segments: Vec<Bytes>,
    ) -> impl Future<Output = Result<()>> + 'static {
        enum Started {
            Now(Result<()>),
            Later(OpFuture<SendPayload>),
        }
        let started = match self.start_send(id, header, segments) {
            Ok(op) => Started::Later(op),
            Err(e) => Started::Now(Err(e)),
        };
        async move {
            match started {
                Started::Now(result) => result,
                Started::Later(op) => {
                    let (status, _, _payload) = op.await;
                    status.check("UCX active message send")
                }
            }
        }
    }

    fn start_send(
        &self,
        id: u16,
        header: Bytes,
        segments: Vec<Bytes>,
    ) -> Result<OpFuture<SendPayload>> {
        if let Some(error) = self.error() {
            return Err(error);
        }
        let segments: Vec<Bytes> = segments.into_iter().filter(|s| !s.is_empty()).collect();
        let total: usize = segments.iter().map(Bytes::len).sum();
        if total == 0 {
            return Err(UcsError::new(
                "UCX active message data must not be empty",
                Status::INVALID_PARAM,
            ));
        }
        let iov: Vec<ucp_dt_iov> = if segments.len() > 1 {
            segments
                .iter()
                .map(|s| ucp_dt_iov {
                    buffer: s.as_ptr() as *mut c_void,
                    length: s.len() as size_t,
                })
                .collect()
        } else {
            Vec::new()
        };
        let payload = SendPayload {
            header,
            segments,
            iov,
        };
        let ep = self.handle.get();
        let api = self.worker.api();
        let op = submit(
            payload,
            Callback::Send,
            total,
            |payload, param| {
                param.op_attr_mask |= ucp_op_attr_t::UCP_OP_ATTR_FIELD_FLAGS as u32
                    | ucp_op_attr_t::UCP_OP_ATTR_FIELD_DATATYPE as u32;
                param.flags = ucp_send_am_flags::UCP_AM_SEND_FLAG_REPLY.0;
                let header = (
                    payload.header.as_ptr() as *const c_void,
                    payload.header.len(),
                );
                if payload.iov.is_empty() {
                    param.datatype = ucp_dt_make_contig(1);
                    let only = &payload.segments[0];
                    (header, (only.as_ptr() as *const c_void, only.len()))
                } else {
                    param.datatype = ucp_dt_type::UCP_DATATYPE_IOV as u64;
                    let iov = (payload.iov.as_ptr() as *const c_void, payload.iov.len());
                    (header, iov)
                }
            },
            |param, ((header, header_len), (buffer, count))| {
                // SAFETY: ep is open on this thread's worker; header, buffer/iov and the segments
                // they point to are heap memory owned by the operation and unchanged until it
                // completes.
                unsafe {
                    (api.ucp_am_send_nbx)(
                        ep,
                        c_uint::from(id),
                        header,
                        header_len as size_t,
                        buffer,
                        count as size_t,
                        param,
                    )
                }
            },
        );
        self.worker.poke();
        Ok(op)
    }

    /// Waits until every send issued so far is complete at the transport level.
    pub async fn flush(&self) -> Result<()> {
        if let Some(error) = self.error() {
            return Err(error);
        }
        let ep = self.handle.get();
        let api = self.worker.api();
        let op = submit(
            (),
            Callback::Send,
            0,
            |_, _| {},
            // SAFETY: ep is open on this thread's worker.
            |param, ()| unsafe { (api.ucp_ep_flush_nbx)(ep, param) },
        );
        self.worker.poke();
        tokio::select! {
            (status, _, _) = op => status.check("UCX endpoint flush"),
            error = self.failed() => Err(error),
        }
    }

    /// Closes the endpoint: gracefully (flushing, telling the peer) unless it has failed, in
    /// which case it is released at once. Waits at most `timeout` for the close to finish.
    pub async fn close(self, timeout: Duration) {
        let force = self.state.error.get().is_some();
        if let Some(op) = self.start_close(force) {
            if tokio::time::timeout(timeout, op).await.is_ok() {
                self.reclaim_error_arg();
            } else {
                tracing::debug!("UCX endpoint close timed out");
            }
        } else {
            self.reclaim_error_arg();
        }
    }

    /// Starts `ucp_ep_close_nbx`; `None` when it finished at once (or was already done).
    fn start_close(&self, force: bool) -> Option<OpFuture<()>> {
        let ep = self.handle.replace(ptr::null_mut());
        if ep.is_null() {
            return None;
        }
        let api = self.worker.api();
        let op = submit(
            (),
            Callback::Send,
            0,
            |_, param| {
                if force {
                    param.op_attr_mask |= ucp_op_attr_t::UCP_OP_ATTR_FIELD_FLAGS as u32;
                    param.flags = ucp_ep_close_flags_t::UCP_EP_CLOSE_FLAG_FORCE.0;
                }
            },
            // SAFETY: ep is open on this thread's worker and closed exactly once (handle swapped).
            |param, ()| unsafe { (api.ucp_ep_close_nbx)(ep, param) },
        );
        self.worker.poke();
        Some(op)
    }

    fn reclaim_error_arg(&self) {
        let arg = self.error_arg.replace(ptr::null());
        if !arg.is_null() {
            // SAFETY: the endpoint is closed, so UCX will not call the error callback again; the
            // reference handed out in create() is taken back exactly once.
            drop(unsafe { Rc::from_raw(arg) });
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // Already closed (by `close`, which reclaimed the error argument if the close finished,
        // and otherwise leaves it to UCX): nothing to do.
        let Some(mut op) = self.start_close(true) else {
            return;
        };
        // A forced close completes within a few progress calls; drive it here so the endpoint is
        // gone before the worker can be destroyed.
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let deadline = Instant::now() + DROP_CLOSE_BUDGET;
        loop {
            if std::pin::Pin::new(&mut op).poll(&mut cx).is_ready() {
                self.reclaim_error_arg();
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!("UCX endpoint close did not finish while dropping it");
                return;
            }
            self.worker.progress();
        }
    }
}

/// What a send keeps alive until UCX completes it.
struct SendPayload {
    header: Bytes,
    segments: Vec<Bytes>,
    iov: Vec<ucp_dt_iov>,
}
