//! The UCP worker: single-threaded, owned by one thread, driven by a progress task.
//!
//! A worker is `!Send` and shared as `Rc<Worker>` on its thread. [`run_worker_thread`] gives a
//! closure its own thread with a current-thread tokio runtime and a `LocalSet`, a fresh worker,
//! and a progress task that runs until the closure returns. Progress is either busy-polling
//! (lowest latency, burns a core) or event-driven: the worker's wakeup fd, registered with
//! tokio's `AsyncFd`, is armed with `ucp_worker_arm` whenever there is nothing left to progress.

use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;
use ucx1_sys::{ucp_worker_h, ucp_worker_params_field, ucp_worker_params_t, ucs_thread_mode_t};

use super::am::AmInbox;
use super::sys::Api;
use super::{Context, Status};
use crate::error::{Result, UcxError};

/// How a worker's progress task waits for work.
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
    /// AM handler arguments point into these; they live exactly as long as the worker.
    inboxes: RefCell<Vec<Rc<AmInbox>>>,
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
            return Err(UcxError::internal("ucp_worker_create returned no worker"));
        }
        Ok(Rc::new(Worker {
            api,
            handle,
            context: context.clone(),
            poke: Notify::new(),
            stopped: Cell::new(false),
            inboxes: RefCell::new(Vec::new()),
        }))
    }

    pub(crate) fn api(&self) -> &'static Api {
        self.api
    }

    pub(crate) fn handle(&self) -> ucp_worker_h {
        self.handle
    }

    /// The context this worker belongs to.
    pub fn context(&self) -> &Arc<Context> {
        &self.context
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

    pub(crate) fn keep_inbox(&self, inbox: Rc<AmInbox>) {
        self.inboxes.borrow_mut().push(inbox);
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
            for _ in 0..PROGRESS_BURST {
                if self.progress() == 0 {
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
            .map_err(|e| UcxError::internal(format!("registering the UCX wakeup fd: {e}")))?;
        while !self.stopped.get() {
            let mut burst = 0;
            while self.progress() != 0 {
                burst += 1;
                if burst == PROGRESS_BURST {
                    burst = 0;
                    tokio::task::yield_now().await;
                    if self.stopped.get() {
                        return Ok(());
                    }
                }
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
                    Err(e) => return Err(UcxError::internal(format!("waiting on the UCX wakeup fd: {e}"))),
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
        for inbox in self.inboxes.borrow().iter() {
            inbox.release_all(self);
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

/// A thread that owns a worker, started by [`run_worker_thread`].
pub struct WorkerThread<R> {
    handle: JoinHandle<Result<R>>,
    /// Closed when the thread is done, after its worker was destroyed.
    done: tokio::sync::oneshot::Receiver<()>,
}

impl<R> WorkerThread<R> {
    /// Waits (blocking) for the thread and returns `f`'s output.
    pub fn join(self) -> Result<R> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(UcxError::internal("UCX worker thread panicked")))
    }

    /// Resolves once the thread has finished (its worker destroyed), without blocking; then
    /// [`WorkerThread::join`] returns at once.
    pub async fn finished(&mut self) {
        let _ = (&mut self.done).await;
    }

    /// True once the thread has finished.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Runs `f` on a new thread that owns a fresh worker of `context`.
///
/// The thread has a current-thread tokio runtime and a `LocalSet` (so `f` may `spawn_local`), and
/// a progress task for the worker. When `f`'s future completes the progress task stops, the
/// remaining local tasks are dropped (endpoints close), then the worker is destroyed and the
/// thread ends with `f`'s output.
///
/// A worker that listens must outlive the endpoints accepted from its connection requests, even
/// on other workers: UCX keeps their connection-management socket on the listener's worker. So a
/// listener thread waits for its connection threads ([`WorkerThread::finished`]) before it returns.
pub fn run_worker_thread<F, Fut, R>(
    name: impl Into<String>,
    context: Arc<Context>,
    mode: ProgressMode,
    f: F,
) -> std::io::Result<WorkerThread<R>>
where
    F: FnOnce(Rc<Worker>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let output = run_worker(context, mode, f);
            drop(done_tx);
            output
        })?;
    Ok(WorkerThread { handle, done })
}

fn run_worker<F, Fut, R>(context: Arc<Context>, mode: ProgressMode, f: F) -> Result<R>
where
    F: FnOnce(Rc<Worker>) -> Fut,
    Fut: Future<Output = R>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UcxError::internal(format!("building the worker runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    let output = local.block_on(&runtime, async move {
        let worker = Worker::new(&context)?;
        let driver = tokio::task::spawn_local(worker.clone().drive(mode));
        let output = f(worker.clone()).await;
        worker.stop();
        if let Err(e) = driver.await {
            tracing::error!(error = %e, "UCX progress task failed");
        }
        Ok(output)
    });
    // tasks still on the set hold endpoints and the worker; drop them inside the runtime
    let _enter = runtime.enter();
    drop(local);
    output
}
