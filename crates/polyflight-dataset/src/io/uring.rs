//! The io_uring backend: `tokio-uring` runtimes on dedicated threads.
//!
//! A tokio-uring runtime is single-threaded (its files and buffers are `!Send`), so each ring
//! lives on a thread of its own, as each UCX worker does, and the rest of the program talks to
//! it through channels: a bounded one for requests (open, read), whose capacity applies
//! back-pressure, and an unbounded one for closes, which are sent from `Drop`. A file is handed
//! to one ring thread when it is opened (round robin) and stays there; every read of it is one
//! read operation on that ring, into an aligned [`ReadBuf`], answered through a oneshot.
//!
//! Start-up creates each ring and runs a no-op through it, so a kernel without io_uring, or a
//! seccomp policy that forbids it, is found at once and reported as the reason to fall back.

use super::plain::unexpected_eof;
use super::pool::BufferPool;
use super::ReadBuf;
use bytes::Bytes;
use futures::future::BoxFuture;
use polyflight_core::{FlightError, Result};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Requests a ring thread can queue before senders wait.
const REQUEST_QUEUE: usize = 256;

/// Submission queue entries of each ring.
const RING_ENTRIES: u32 = 256;

enum Request {
    /// Take ownership of `file` under `id`.
    Open { id: u64, file: std::fs::File },
    /// Read a range of file `id`.
    Read {
        id: u64,
        offset: u64,
        len: usize,
        align_at: usize,
        shown: String,
        pool: Arc<BufferPool>,
        reply: oneshot::Sender<Result<Bytes>>,
    },
}

/// The senders of one ring thread. The thread ends when every sender is gone.
struct RingThread {
    requests: mpsc::Sender<Request>,
    closes: mpsc::UnboundedSender<u64>,
}

/// The ring threads of one [`super::Io`].
pub(super) struct UringPool {
    threads: Vec<Arc<RingThread>>,
    next_thread: AtomicUsize,
    next_id: AtomicU64,
}

fn gone() -> FlightError {
    FlightError::internal("the io_uring thread has stopped")
}

impl UringPool {
    /// Starts `threads` ring threads; the error says why io_uring cannot be used.
    pub(super) fn start(threads: usize) -> std::result::Result<UringPool, String> {
        let mut started = Vec::with_capacity(threads);
        for index in 0..threads {
            let (requests, request_rx) = mpsc::channel(REQUEST_QUEUE);
            let (closes, close_rx) = mpsc::unbounded_channel();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("polyflight-uring-{index}"))
                .spawn(move || ring_thread(ready_tx, request_rx, close_rx))
                .map_err(|e| format!("starting an io_uring thread: {e}"))?;
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Err(reason),
                Err(_) => return Err("the io_uring thread stopped while starting".to_string()),
            }
            started.push(Arc::new(RingThread { requests, closes }));
        }
        Ok(UringPool {
            threads: started,
            next_thread: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        })
    }

    /// Hands `file` to one of the ring threads.
    pub(super) async fn register(&self, file: std::fs::File) -> Result<super::Handle> {
        let index = self.next_thread.fetch_add(1, Ordering::Relaxed) % self.threads.len().max(1);
        let thread = self.threads.get(index).cloned().ok_or_else(gone)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // The guard exists before the request is sent: if this future is dropped while waiting
        // to send, its close tells the thread to drop the file should the open still arrive.
        let handle = UringFile { thread, id };
        handle
            .thread
            .requests
            .send(Request::Open { id, file })
            .await
            .map_err(|_| gone())?;
        Ok(super::Handle::Uring(handle))
    }
}

/// A file owned by a ring thread; dropping it closes the file there.
pub(super) struct UringFile {
    thread: Arc<RingThread>,
    id: u64,
}

impl UringFile {
    /// Starts reading a range on the file's ring thread.
    pub(super) fn read_at(
        &self,
        offset: u64,
        len: usize,
        align_at: usize,
        shown: String,
        pool: Arc<BufferPool>,
    ) -> BoxFuture<'static, Result<Bytes>> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Read {
            id: self.id,
            offset,
            len,
            align_at,
            shown,
            pool,
            reply,
        };
        // Queue the read now when there is room, so it starts before the future is polled.
        let waiting = match self.thread.requests.try_send(request) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(request)) => Some(request),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Box::pin(std::future::ready(Err(gone())))
            }
        };
        let thread = Arc::clone(&self.thread);
        Box::pin(async move {
            if let Some(request) = waiting {
                thread.requests.send(request).await.map_err(|_| gone())?;
            }
            answer.await.map_err(|_| gone())?
        })
    }
}

impl Drop for UringFile {
    fn drop(&mut self) {
        let _ = self.thread.closes.send(self.id);
    }
}

/// A [`ReadBuf`] as tokio-uring wants its buffers: the range to fill, from its start.
struct RingBuf(ReadBuf);

// SAFETY: the pointer is into the ReadBuf's heap allocation, which does not move when the
// RingBuf does and lives as long as it; `bytes_total` is the range's length, inside it.
unsafe impl tokio_uring::buf::IoBuf for RingBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.start_const_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.0.filled()
    }

    fn bytes_total(&self) -> usize {
        self.0.len()
    }
}

// SAFETY: as for IoBuf; `set_init` records what the kernel wrote.
unsafe impl tokio_uring::buf::IoBufMut for RingBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.start_ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: tokio-uring calls this with the end of what the kernel wrote.
        unsafe { self.0.set_filled(pos) }
    }
}

/// The body of a ring thread: create the ring, prove it works, report, then serve requests.
fn ring_thread(
    ready: std::sync::mpsc::Sender<std::result::Result<(), String>>,
    requests: mpsc::Receiver<Request>,
    closes: mpsc::UnboundedReceiver<u64>,
) {
    let mut builder = tokio_uring::builder();
    builder.entries(RING_ENTRIES);
    let runtime = match tokio_uring::Runtime::new(&builder) {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = ready.send(Err(format!("creating an io_uring: {err}")));
            return;
        }
    };
    runtime.block_on(async move {
        if let Err(err) = tokio_uring::no_op().await {
            let _ = ready.send(Err(format!("submitting to an io_uring: {err}")));
            return;
        }
        let _ = ready.send(Ok(()));
        serve(requests, closes).await;
    });
}

async fn serve(mut requests: mpsc::Receiver<Request>, mut closes: mpsc::UnboundedReceiver<u64>) {
    let mut files: HashMap<u64, Rc<tokio_uring::fs::File>> = HashMap::new();
    // Closes that overtook their open (see `UringPool::register`).
    let mut closed_early: HashSet<u64> = HashSet::new();
    let mut reads = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Some(id) = closes.recv() => {
                if files.remove(&id).is_none() {
                    closed_early.insert(id);
                }
            }
            Some(_) = reads.join_next(), if !reads.is_empty() => {}
            request = requests.recv() => match request {
                None => break,
                Some(Request::Open { id, file }) => {
                    if !closed_early.remove(&id) {
                        files.insert(id, Rc::new(tokio_uring::fs::File::from_std(file)));
                    }
                }
                Some(Request::Read { id, offset, len, align_at, shown, pool, reply }) => {
                    let file = files.get(&id).cloned();
                    reads.spawn_local(async move {
                        let result = match file {
                            Some(file) => {
                                read_exact(&file, &pool, offset, len, align_at, &shown).await
                            }
                            None => Err(FlightError::internal(format!(
                                "{shown}: read of a file that was closed"
                            ))),
                        };
                        let _ = reply.send(result);
                    });
                }
            }
        }
    }
    // Let reads under way finish: the kernel writes into their buffers until they complete.
    while reads.join_next().await.is_some() {}
}

async fn read_exact(
    file: &tokio_uring::fs::File,
    pool: &Arc<BufferPool>,
    offset: u64,
    len: usize,
    align_at: usize,
    shown: &str,
) -> Result<Bytes> {
    use tokio_uring::buf::BoundedBuf;
    let mut buf = RingBuf(ReadBuf::new(pool, len, align_at)?);
    while buf.0.remaining() > 0 {
        let filled = buf.0.filled();
        let (result, slice) = file
            .read_at(buf.slice(filled..), offset + filled as u64)
            .await;
        buf = slice.into_inner();
        match result {
            Ok(0) => return Err(unexpected_eof(shown, offset, len, filled)),
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(super::io_error(shown, "reading", &err)),
        }
    }
    buf.0.finish()
}
