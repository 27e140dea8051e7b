//! Worker threads: each UCX worker gets a thread of its own.
//!
//! A UCX worker is single-threaded, so [`run_worker_thread`] gives a closure its own thread with a
//! current-thread tokio runtime and a `LocalSet` (so the closure may `spawn_local`), a fresh
//! [`Worker`] of the shared context, and the worker's progress task, which runs until the closure
//! returns. The rest of the program talks to the thread through channels.

use polyflight_core::{FlightError, Result};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::ucp::{Context, ProgressMode, Worker};

/// A thread that owns a worker, started by [`run_worker_thread`].
pub(crate) struct WorkerThread<R> {
    handle: JoinHandle<Result<R>>,
    /// Closed when the thread is done, after its worker was destroyed.
    done: tokio::sync::oneshot::Receiver<()>,
    /// The same, for waiting outside async code.
    done_blocking: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl<R> WorkerThread<R> {
    /// Waits (blocking) for the thread and returns `f`'s output; INTERNAL if the thread could not
    /// set up its runtime or worker, or panicked.
    pub(crate) fn join(self) -> Result<R> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(FlightError::internal("UCX worker thread panicked")))
    }

    /// Resolves once the thread has finished (its worker destroyed), without blocking; then
    /// [`WorkerThread::join`] returns at once.
    pub(crate) async fn finished(&mut self) {
        let _ = (&mut self.done).await;
    }

    /// True once the thread has finished.
    pub(crate) fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits (blocking) until the thread has finished or `deadline` has passed; true if it
    /// finished.
    pub(crate) fn wait_until(&self, deadline: std::time::Instant) -> bool {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let closed = match self.done_blocking.lock() {
            Ok(done) => matches!(
                done.recv_timeout(left),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
            ),
            Err(_) => false,
        };
        closed || self.is_finished()
    }
}

/// Runs `f` on a new thread that owns a fresh worker of `context`.
///
/// When `f`'s future completes the progress task stops, the remaining local tasks are dropped
/// (endpoints close), then the worker is destroyed and the thread ends with `f`'s output.
///
/// A worker that listens must outlive the endpoints accepted from its connection requests, even
/// on other workers: UCX keeps their connection-management socket on the listener's worker. So a
/// listener thread waits for its connection threads ([`WorkerThread::finished`]) before it returns.
pub(crate) fn run_worker_thread<F, Fut, R>(
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
    let (done_blocking_tx, done_blocking) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let output = run_worker(context, mode, f);
            drop(done_tx);
            drop(done_blocking_tx);
            output
        })?;
    Ok(WorkerThread {
        handle,
        done,
        done_blocking: std::sync::Mutex::new(done_blocking),
    })
}

fn run_worker<F, Fut, R>(context: Arc<Context>, mode: ProgressMode, f: F) -> Result<R>
where
    F: FnOnce(Rc<Worker>) -> Fut,
    Fut: Future<Output = R>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FlightError::internal(format!("building the worker runtime: {e}")))?;
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
