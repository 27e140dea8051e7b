//! The UCP worker: single-threaded, owned by one thread, driven by a progress task.
//!
//! A worker is `!Send` and shared as `Rc<Worker>` on its thread (`crate::thread` gives each
//! worker its thread and runtime). [`Worker::drive`] is its progress task: either busy-polling
//! (lowest latency, burns a core) or event-driven: the worker's wakeup fd, registered with
//! tokio's `AsyncFd`, is armed with `ucp_worker_arm` whenever there is nothing left to progress.
//! Either way it stops progressing while the worker's [`ReceiveBudget`] is exhausted (see
//! `budget`), which is how a connection that is not read holds its sender back.

use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;
use ucx1_sys::{ucp_worker_h, ucp_worker_params_field, ucp_worker_params_t, ucs_thread_mode_t};

use super::budget::ReceiveBudget;
use super::context::Context;
use super::status::{Status, UcsError};
use super::sys::Api;

type Result<T, E = UcsError> = std::result::Result<T, E>;

/// How a UCX worker thread waits for work: the choice between latency and CPU use.
///
/// Set it per client or listener with [`crate::UcxOptions::progress`]; the default comes from
/// the `POLYFLIGHT_UCX_PROGRESS` environment variable ([`ProgressMode::from_env`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Wait on the worker's wakeup fd between bursts of progress (default: gentle on CPUs).
    #[default]
    Event,
    /// Call `ucp_worker_progress` in a loop, yielding to other tasks in between (lowest latency,
    /// keeps one core busy per worker thread).
    Busy,
}

impl ProgressMode {
    /// Reads `POLYFLIGHT_UCX_PROGRESS` (`busy` or `event`); anything else gives the default.
    pub fn from_env() -> ProgressMode {
        match std::env::var("POLYFLIGHT_UCX_PROGRESS").as_deref() {
            Ok("busy") | Ok("poll") | Ok("polling") => ProgressMode::Busy,
            _ => ProgressMode::Event,
        }
    }
}

/// In event mode, how long the progress task sleeps at most without an event. A safety net only:
/// every UCX event and every local submission wakes it sooner.
const EVENT_SAFETY_NET: Duration = Duration::from_millis(100);

/// Progress calls in a row before yielding to other tasks on the thread.
const PROGRESS_BURST: usize = 64;

/// A UCP worker (thread mode SINGLE). Use it only on the thread that created it.
pub struct Worker {
    api: &'static Api,
    handle: ucp_worker_h,
    context: Arc<Context>,
    /// Wakes the event-mode progress task after a local submission.
    poke: Notify,
    stopped: Cell<bool>,
    /// What the worker's connection holds of received messages; progress stops while it is spent.
    budget: Rc<ReceiveBudget>,
    /// UCX callback arguments point into these; they live exactly as long as the worker.
    callback_state: RefCell<Vec<Rc<dyn CallbackState>>>,
}

/// State that a UCX callback registered on a worker points into (an active message handler's
/// inbox): the worker keeps it alive as long as it exists, and lets it give back what UCX still
/// holds for it just before the worker is destroyed.
pub(crate) trait CallbackState {
    /// Gives back to UCX what it still holds (e.g. rendezvous descriptors), while the worker
    /// still exists.
    fn release(&self, worker: &Worker);
}

impl Worker {
    /// Creates a worker on `context`, for use on the current thread only.
    pub fn new(context: &Arc<Context>) -> Result<Rc<Worker>> {
        let api = context.api();
        // SAFETY: ucp_worker_params_t is a plain C struct; all-zero is valid (thread mode 0 is
        // UCS_THREAD_MODE_SINGLE) and only fields named in field_mask are read.
        let mut params: ucp_worker_params_t = unsafe { std::mem::zeroed() };
        params.field_mask = ucp_worker_params_field::UCP_WORKER_PARAM_FIELD_THREAD_MODE.0 as u64;
        params.thread_mode = ucs_thread_mode_t::UCS_THREAD_MODE_SINGLE;
        let mut handle: ucp_worker_h = ptr::null_mut();
        let status = {
            let _guard = context.lifecycle_lock();
            // SAFETY: valid context and params; handle is an out-parameter.
            unsafe { (api.ucp_worker_create)(context.handle(), &params, &mut handle) }
        };
        Status::from(status).check("ucp_worker_create")?;
        if handle.is_null() {
            return Err(UcsError::new(
                "ucp_worker_create returned no worker",
                Status::NO_RESOURCE,
            ));
        }
        Ok(Rc::new(Worker {
            api,
            handle,
            context: context.clone(),
            poke: Notify::new(),
            stopped: Cell::new(false),
            budget: ReceiveBudget::unlimited(),
            callback_state: RefCell::new(Vec::new()),
        }))
    }

    pub(crate) fn api(&self) -> &'static Api {
        self.api
    }

    pub(crate) fn handle(&self) -> ucp_worker_h {
        self.handle
    }

    /// One call to `ucp_worker_progress`; returns how many events it processed.
    ///
    /// Callbacks run inside this call; the caller must not hold borrows of state they touch.
    pub fn progress(&self) -> u32 {
        // SAFETY: we are on the worker's thread (Worker is !Send).
        unsafe { (self.api.ucp_worker_progress)(self.handle) }
    }

    /// Tells the progress task that new work was submitted.
    pub(crate) fn poke(&self) {
        self.poke.notify_one();
    }

    /// Makes the progress task return.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.poke.notify_one();
    }

    /// The receive budget of this worker (unlimited until a limit is set).
    pub(crate) fn receive_budget(&self) -> &Rc<ReceiveBudget> {
        &self.budget
    }

    /// While the receive budget is spent, waits until it is released (or a fetch needs
    /// progress, or the worker stops); returns at once otherwise.
    async fn wait_for_budget(&self) {
        while !self.stopped.get() {
            // created before the check, so a release between the two is not missed
            let changed = self.budget.next_change();
            if !self.budget.paused() {
                return;
            }
            tokio::select! {
                _ = changed => {}
                // a local submission or stop(): look again
                _ = self.poke.notified() => {}
            }
        }
    }

    /// Keeps `state` alive for as long as the worker (see [`CallbackState`]).
    pub(crate) fn keep(&self, state: Rc<dyn CallbackState>) {
        self.callback_state.borrow_mut().push(state);
    }

    /// Progresses the worker until [`Worker::stop`] is called.
    pub async fn drive(self: Rc<Self>, mode: ProgressMode) {
        if mode == ProgressMode::Event {
            match self.drive_events().await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "UCX event progress failed; busy-polling"),
            }
        }
        self.drive_busy().await;
    }

    async fn drive_busy(&self) {
        while !self.stopped.get() {
            self.wait_for_budget().await;
            for _ in 0..PROGRESS_BURST {
                if self.budget.paused() || self.progress() == 0 {
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
    }

    async fn drive_events(&self) -> Result<()> {
        let mut efd: c_int = -1;
        // SAFETY: valid worker (created with the WAKEUP feature); efd is an out-parameter.
        let status = unsafe { (self.api.ucp_worker_get_efd)(self.handle, &mut efd) };
        Status::from(status).check("ucp_worker_get_efd")?;
        // SAFETY: the wakeup fd stays open while the worker exists, and the worker outlives this
        // AsyncFd (a local of this method, which runs on an Rc of the worker).
        let fd = unsafe { AsyncFd::register_with_interest(WakeupFd(efd), Interest::READABLE) }
            .map_err(|e| {
                UcsError::new(
                    format!("registering the UCX wakeup fd: {e}"),
                    Status::IO_ERROR,
                )
            })?;
        while !self.stopped.get() {
            self.wait_for_budget().await;
            let mut burst = 0;
            while !self.budget.paused() && self.progress() != 0 {
                burst += 1;
                if burst == PROGRESS_BURST {
                    burst = 0;
                    tokio::task::yield_now().await;
                    if self.stopped.get() {
                        return Ok(());
                    }
                }
            }
            if self.budget.paused() {
                // not armed: nothing is to be read until the budget is released
                continue;
            }
            // SAFETY: valid worker on its own thread.
            let armed = Status::from(unsafe { (self.api.ucp_worker_arm)(self.handle) });
            if armed == Status::BUSY {
                // events arrived since the last progress call: progress again, but let the
                // tasks they woke run first
                tokio::task::yield_now().await;
                continue;
            }
            armed.check("ucp_worker_arm")?;
            tokio::select! {
                ready = fd.readable() => match ready {
                    Ok(mut guard) => guard.clear_ready(),
                    Err(e) => return Err(UcsError::new(format!("waiting on the UCX wakeup fd: {e}"), Status::IO_ERROR)),
                },
                _ = self.poke.notified() => {}
                _ = tokio::time::sleep(EVENT_SAFETY_NET) => {}
            }
        }
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        for state in self.callback_state.borrow().iter() {
            state.release(self);
        }
        let _guard = self.context.lifecycle_lock();
        // SAFETY: the last reference is gone: no endpoint, listener or descriptor uses the worker.
        unsafe { (self.api.ucp_worker_destroy)(self.handle) };
    }
}

/// The worker's wakeup fd; owned by UCX, so never closed here.
struct WakeupFd(RawFd);

impl AsRawFd for WakeupFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
