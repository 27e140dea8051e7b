//! The UCP worker: single-threaded, owned by one thread, driven by a progress task.
//!
//! A worker is `!Send` and shared as `Rc<Worker>` on its thread (`crate::thread` gives each
//! worker its thread and runtime). [`Worker::drive`] is its progress task: either busy-polling
//! (lowest latency, burns a core) or event-driven: the worker's wakeup fd, registered with
//! tokio's `AsyncFd`, is armed with `ucp_worker_arm` whenever there is nothing left to progress
//! (at once, or in adaptive mode after polling a little longer).
//! Either way it stops progressing while the worker's [`ReceiveBudget`] is exhausted (see
//! `budget`), which is how a connection that is not read holds its sender back.

use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Wait on the worker's wakeup fd as soon as a progress call finds nothing to do (the
    /// gentlest on CPUs; every message that finds the thread asleep costs a wake-up).
    Event,
    /// Once idle, keep polling for up to `spin` (letting the thread's other tasks run between
    /// polls) before arming the wakeup fd and sleeping as in `Event`: a message that arrives
    /// within the spin is taken without a wake-up on either side. The default, with
    /// [`ProgressMode::DEFAULT_SPIN`]; a worker spins only while few workers of the process are
    /// active (see docs/ucx.md).
    Adaptive {
        /// How long an idle worker keeps polling before it sleeps.
        spin: Duration,
    },
    /// Call `ucp_worker_progress` in a loop, yielding to other tasks in between (lowest latency,
    /// keeps one core busy per worker thread).
    Busy,
}

impl Default for ProgressMode {
    /// `Adaptive` with [`ProgressMode::DEFAULT_SPIN`].
    fn default() -> Self {
        ProgressMode::Adaptive {
            spin: ProgressMode::DEFAULT_SPIN,
        }
    }
}

impl ProgressMode {
    /// How long an adaptive worker polls after going idle, unless told otherwise (measured best
    /// of 20 and 50 µs, docs/ucx.md).
    pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

    /// Reads `POLYFLIGHT_UCX_PROGRESS`: `event`, `busy`, or `adaptive` with an optional spin in
    /// microseconds (`adaptive:50`, default [`ProgressMode::DEFAULT_SPIN`]); anything else
    /// gives the default.
    pub fn from_env() -> ProgressMode {
        std::env::var("POLYFLIGHT_UCX_PROGRESS")
            .ok()
            .and_then(|value| ProgressMode::parse(&value))
            .unwrap_or_default()
    }

    /// Parses a progress mode as `POLYFLIGHT_UCX_PROGRESS` spells it.
    pub fn parse(value: &str) -> Option<ProgressMode> {
        let (name, argument) = match value.split_once(':') {
            Some((name, argument)) => (name, Some(argument)),
            None => (value, None),
        };
        match (name.trim().to_ascii_lowercase().as_str(), argument) {
            ("event", None) => Some(ProgressMode::Event),
            ("busy" | "poll" | "polling", None) => Some(ProgressMode::Busy),
            ("adaptive" | "spin", None) => Some(ProgressMode::Adaptive {
                spin: ProgressMode::DEFAULT_SPIN,
            }),
            ("adaptive" | "spin", Some(micros)) => {
                let micros = micros.trim().trim_end_matches("us").parse::<u64>().ok()?;
                Some(ProgressMode::Adaptive {
                    spin: Duration::from_micros(micros),
                })
            }
            _ => None,
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
        let spin = match mode {
            ProgressMode::Busy => None,
            ProgressMode::Event => Some(Duration::ZERO),
            ProgressMode::Adaptive { spin } => Some(spin),
        };
        if let Some(spin) = spin {
            match self.drive_events(spin).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "UCX event progress failed; busy-polling"),
            }
        }
        self.drive_busy().await;
    }

    /// Polls for up to `spinner`'s spin after the worker went idle, yielding to the thread's
    /// other tasks between polls. True if it found work (events, a spent budget, or a stop),
    /// false if it did not spin or the spin ran out, and the worker may sleep.
    async fn spin(&self, spinner: &mut Spinner) -> bool {
        if !spinner.start() {
            return false;
        }
        let start = Instant::now();
        loop {
            tokio::task::yield_now().await;
            if self.stopped.get() || self.budget.paused() || self.progress() != 0 {
                return true;
            }
            if start.elapsed() >= spinner.spin {
                spinner.ran_out();
                return false;
            }
        }
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

    async fn drive_events(&self, spin: Duration) -> Result<()> {
        let mut spinner = Spinner::new(spin);
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
            if self.spin(&mut spinner).await {
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
            let slept = Instant::now();
            let safety_net = tokio::time::sleep(EVENT_SAFETY_NET);
            let mut safety_net = std::pin::pin!(safety_net);
            // an adaptive worker counts as active until it has slept for IDLE_AFTER
            let idle_after = tokio::time::sleep(IDLE_AFTER);
            let mut idle_after = std::pin::pin!(idle_after);
            loop {
                tokio::select! {
                    ready = fd.readable() => match ready {
                        Ok(mut guard) => {
                            guard.clear_ready();
                            break;
                        }
                        Err(e) => return Err(UcsError::new(format!("waiting on the UCX wakeup fd: {e}"), Status::IO_ERROR)),
                    },
                    _ = self.poke.notified() => break,
                    _ = &mut safety_net => break,
                    _ = &mut idle_after, if spinner.active.counted => spinner.active.idle(),
                }
            }
            spinner.woke(slept.elapsed());
        }
        Ok(())
    }
}

/// Adaptive worker threads of this process that are active: working, or asleep for less than
/// [`IDLE_AFTER`] (a connection streaming data sleeps for microseconds between messages).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// How long an adaptive worker sleeps before it no longer counts as active.
const IDLE_AFTER: Duration = Duration::from_millis(2);

/// How many UCX threads of this process may be busy before they crowd each other out: half the
/// CPUs the process may use, at least one. Spinning (below) and gathering bodies
/// (`conn::gather`) both stop or start at this line. A spinning thread holds a core that the
/// threads it waits for (the peer's, or the handlers feeding it) may need; measured on two vCPUs
/// with client and server on one host, spinning doubled a single stream of 64 KiB batches but
/// cost a third with four streams.
pub(crate) fn busy_threads_allowed() -> usize {
    static ALLOWED: OnceLock<usize> = OnceLock::new();
    *ALLOWED.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|cpus| (cpus.get() / 2).max(1))
            .unwrap_or(1)
    })
}

/// Counts its worker among the [`ACTIVE`] ones, except while it is idle.
struct Active {
    counted: bool,
}

impl Active {
    fn idle(&mut self) {
        if std::mem::replace(&mut self.counted, false) {
            ACTIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn active(&mut self) {
        if !std::mem::replace(&mut self.counted, true) {
            ACTIVE.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.idle();
    }
}

/// The adaptive spin of one worker. It spins only while idle gaps have lately been shorter than
/// the spin (a spin that ran out turns spinning off until a sleep ends within the spin again),
/// and only while no more worker threads are active than [`busy_threads_allowed`].
struct Spinner {
    spin: Duration,
    /// Whether the last idle gap was short enough for a spin to have caught its end.
    worth_it: bool,
    /// This worker's place among the [`ACTIVE`] ones; an event-only worker never takes one.
    active: Active,
}

impl Spinner {
    fn new(spin: Duration) -> Spinner {
        let mut spinner = Spinner {
            spin,
            worth_it: false,
            active: Active { counted: false },
        };
        spinner.woke(Duration::ZERO);
        spinner
    }

    /// Whether to spin now.
    fn start(&self) -> bool {
        self.worth_it && ACTIVE.load(Ordering::Relaxed) <= busy_threads_allowed()
    }

    /// The spin found nothing: sleep at once from now on, until a short gap is seen.
    fn ran_out(&mut self) {
        self.worth_it = false;
    }

    /// The worker starts, or slept for `slept` before something woke it: it is active again,
    /// and worth spinning for if the sleep was shorter than the spin.
    fn woke(&mut self, slept: Duration) {
        let adaptive = !self.spin.is_zero();
        self.worth_it = adaptive && slept < self.spin;
        if adaptive {
            self.active.active();
        }
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

#[cfg(test)]
mod tests {
    use super::ProgressMode;
    use std::time::Duration;

    #[test]
    fn progress_modes_parse_as_the_environment_spells_them() {
        assert_eq!(ProgressMode::parse("event"), Some(ProgressMode::Event));
        assert_eq!(ProgressMode::parse("BUSY"), Some(ProgressMode::Busy));
        assert_eq!(
            ProgressMode::default(),
            ProgressMode::Adaptive {
                spin: Duration::from_micros(20)
            }
        );
        assert_eq!(
            ProgressMode::parse("adaptive"),
            Some(ProgressMode::Adaptive {
                spin: ProgressMode::DEFAULT_SPIN
            })
        );
        assert_eq!(
            ProgressMode::parse("adaptive:120us"),
            Some(ProgressMode::Adaptive {
                spin: Duration::from_micros(120)
            })
        );
        assert_eq!(
            ProgressMode::parse("adaptive:0"),
            Some(ProgressMode::Adaptive {
                spin: Duration::ZERO
            })
        );
        for bad in ["", "adaptive:", "adaptive:-1", "event:5", "fast"] {
            assert_eq!(ProgressMode::parse(bad), None, "{bad:?}");
        }
    }
}
