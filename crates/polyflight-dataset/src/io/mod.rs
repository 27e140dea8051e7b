//! File I/O behind one internal API, with two backends.
//!
//! Everything the service reads goes through [`Io`]: [`Io::open`] gives an [`IoFile`], and
//! [`IoFile::read_at`] reads a byte range of it into a 64-byte aligned buffer, returned as
//! `Bytes`. A caller says which byte of the range must be aligned (`align_at`): an IPC block is
//! read whole, metadata and body, with the body's first byte aligned, so a polyflight client
//! (and arrow's reader) builds arrays over it without another copy. [`ReadAhead`] streams a list
//! of ranges, keeping reads under way ahead of the consumer within a [`ReadBudget`] that all
//! streams of one [`Io`] share.
//!
//! The backends:
//! - `Plain` ([`plain`]): `pread(2)` on tokio's blocking thread pool, one task per read;
//! - `Uring` ([`uring`], Linux): io_uring through `tokio-uring`, on dedicated threads that each
//!   run a tokio-uring runtime; callers reach them through bounded channels and get each read's
//!   result through a oneshot. Files are handed to a ring thread once, at open.
//! - `Mmap` ([`mmap`], Unix): each range mapped from the page cache, no copy; `align_at` does
//!   not apply (a range is where the file has it), and a file truncated in place while mapped
//!   faults (SIGBUS), so it is chosen, never picked by `Auto`.
//!
//! Every read is checked against the file's length (taken at open) before anything is
//! allocated: a length read from a file is a claim, not a fact.

#[cfg(unix)]
mod mmap;
mod plain;
mod pool;
#[cfg(target_os = "linux")]
mod uring;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use polyflight_core::{FlightError, Result, BUFFER_ALIGNMENT};
use pool::{BufferPool, PooledBuf};
use std::collections::VecDeque;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Which I/O backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// io_uring when the kernel (and any seccomp policy) allows it, else `Plain`; the reason for
    /// falling back is logged and reported by [`IoBackend::reason`].
    #[default]
    Auto,
    /// io_uring, or fail at start-up.
    Uring,
    /// `pread` on tokio's blocking thread pool.
    Plain,
    /// Memory-mapped ranges: no copy from the page cache. Only for files that are replaced by
    /// rename, never truncated in place while served (see the crate docs).
    Mmap,
}

/// The I/O backend a [`crate::DatasetService`] runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring (`tokio-uring`) on dedicated threads.
    Uring,
    /// `pread` on tokio's blocking thread pool.
    Plain {
        /// Why io_uring was not used when [`IoMode::Auto`] tried it; `None` when `Plain` was
        /// asked for.
        reason: Option<String>,
    },
    /// Memory-mapped ranges.
    Mmap,
}

impl IoBackend {
    /// True for io_uring.
    pub fn is_uring(&self) -> bool {
        matches!(self, IoBackend::Uring)
    }

    /// `"io_uring"`, `"plain"` or `"mmap"`.
    pub fn name(&self) -> &'static str {
        match self {
            IoBackend::Uring => "io_uring",
            IoBackend::Plain { .. } => "plain",
            IoBackend::Mmap => "mmap",
        }
    }

    /// Why [`IoMode::Auto`] fell back to the plain backend, if it did.
    pub fn reason(&self) -> Option<&str> {
        match self {
            IoBackend::Uring | IoBackend::Mmap => None,
            IoBackend::Plain { reason } => reason.as_deref(),
        }
    }
}

impl std::fmt::Display for IoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{} (io_uring unavailable: {reason})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// The I/O backend in use; cheap to clone.
#[derive(Clone)]
pub(crate) struct Io {
    backend: Backend,
    report: IoBackend,
    pool: Arc<BufferPool>,
    budget: Arc<ReadBudget>,
}

#[derive(Clone)]
enum Backend {
    Plain,
    #[cfg(unix)]
    Mmap,
    #[cfg(target_os = "linux")]
    Uring(Arc<uring::UringPool>),
}

impl Io {
    /// Starts the backend `mode` asks for; `threads` is the number of io_uring threads. The
    /// [`ReadAhead`] streams of this `Io` together read at most `read_ahead` bytes ahead (see
    /// [`ReadBudget`]), and the copying backends keep at most that much of idle read buffers
    /// for later reads.
    pub(crate) fn start(mode: IoMode, threads: usize, read_ahead: usize) -> Result<Io> {
        let (backend, report) = match mode {
            IoMode::Plain => (Backend::Plain, IoBackend::Plain { reason: None }),
            #[cfg(unix)]
            IoMode::Mmap => (Backend::Mmap, IoBackend::Mmap),
            #[cfg(not(unix))]
            IoMode::Mmap => {
                return Err(FlightError::unavailable(
                    "memory-mapped file I/O is available on Unix only",
                ))
            }
            IoMode::Uring => {
                let rings = Self::start_uring(threads).map_err(|reason| {
                    FlightError::unavailable(format!("io_uring is not available: {reason}"))
                })?;
                (rings, IoBackend::Uring)
            }
            IoMode::Auto => match Self::start_uring(threads) {
                Ok(rings) => (rings, IoBackend::Uring),
                Err(reason) => {
                    tracing::info!(%reason, "io_uring is not available; using plain file I/O");
                    let reason = Some(reason);
                    (Backend::Plain, IoBackend::Plain { reason })
                }
            },
        };
        Ok(Io {
            backend,
            report,
            pool: BufferPool::new(read_ahead),
            budget: Arc::new(ReadBudget::new(read_ahead)),
        })
    }

    #[cfg(target_os = "linux")]
    fn start_uring(threads: usize) -> std::result::Result<Backend, String> {
        let rings = uring::UringPool::start(threads.max(1))?;
        Ok(Backend::Uring(Arc::new(rings)))
    }

    #[cfg(not(target_os = "linux"))]
    fn start_uring(_threads: usize) -> std::result::Result<Backend, String> {
        Err("io_uring exists only on Linux".to_string())
    }

    /// Which backend this is.
    pub(crate) fn backend(&self) -> IoBackend {
        self.report.clone()
    }

    /// The read-ahead budget shared by this `Io`'s [`ReadAhead`] streams.
    pub(crate) fn budget(&self) -> &ReadBudget {
        &self.budget
    }

    /// Reads `ranges` of `file` in order, within this `Io`'s read-ahead budget.
    pub(crate) fn read_ahead(&self, file: IoFile, ranges: Vec<ReadRange>) -> ReadAhead {
        ReadAhead::new(file, ranges, Arc::clone(&self.budget))
    }

    /// Opens `path` for reading. `shown` names the file in error messages.
    pub(crate) async fn open(&self, path: &Path, shown: &str) -> Result<IoFile> {
        let (file, metadata) = open_std(path, shown).await?;
        let len = metadata.len();
        let handle = match &self.backend {
            Backend::Plain => Handle::Plain(file),
            #[cfg(unix)]
            Backend::Mmap => Handle::Mmap(file),
            #[cfg(target_os = "linux")]
            Backend::Uring(pool) => pool.register(file).await?,
        };
        Ok(IoFile {
            inner: Arc::new(FileInner {
                len,
                metadata,
                shown: shown.to_string(),
                handle,
                pool: Arc::clone(&self.pool),
            }),
        })
    }
}

/// Opens a file with std on the blocking pool; NOT_FOUND when it does not exist.
async fn open_std(path: &Path, shown: &str) -> Result<(std::fs::File, std::fs::Metadata)> {
    let path = path.to_path_buf();
    let name = shown.to_string();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| io_error(&name, "opening", &e))?;
        let metadata = file
            .metadata()
            .map_err(|e| io_error(&name, "reading the metadata of", &e))?;
        if !metadata.is_file() {
            return Err(FlightError::not_found(format!("{name} is not a file")));
        }
        Ok((file, metadata))
    })
    .await
    .map_err(|e| FlightError::internal(format!("opening {shown}: {e}")))?
}

/// An I/O error on a file of the dataset, with its code: NOT_FOUND for a missing file,
/// UNAUTHORIZED when permission is denied, INTERNAL otherwise.
pub(crate) fn io_error(shown: &str, doing: &str, err: &std::io::Error) -> FlightError {
    let message = format!("{doing} {shown}: {err}");
    match err.kind() {
        std::io::ErrorKind::NotFound => FlightError::not_found(message),
        std::io::ErrorKind::PermissionDenied => FlightError::unauthorized(message),
        _ => FlightError::internal(message),
    }
}

/// An open file of the dataset; cheap to clone. The backend's handle is released when the last
/// clone is dropped.
#[derive(Clone)]
pub(crate) struct IoFile {
    inner: Arc<FileInner>,
}

struct FileInner {
    len: u64,
    metadata: std::fs::Metadata,
    shown: String,
    handle: Handle,
    pool: Arc<BufferPool>,
}

enum Handle {
    Plain(std::fs::File),
    #[cfg(unix)]
    Mmap(std::fs::File),
    #[cfg(target_os = "linux")]
    Uring(uring::UringFile),
}

impl IoFile {
    /// The file's length when it was opened.
    pub(crate) fn len(&self) -> u64 {
        self.inner.len
    }

    /// The file's metadata when it was opened.
    pub(crate) fn metadata(&self) -> &std::fs::Metadata {
        &self.inner.metadata
    }

    /// How the file is named in messages (its path in the dataset).
    pub(crate) fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// Reads `len` bytes at `offset` into a fresh buffer whose byte `align_at` (relative to
    /// the start of the range) is 64-byte aligned (the mmap backend maps the range instead, with
    /// the alignment the file gives it). The range must lie inside the file; a file
    /// that became shorter since it was opened is an INTERNAL error.
    ///
    /// The read is under way when this returns (the future only waits for it), so reads issued
    /// one after another overlap.
    pub(crate) fn read_at(
        &self,
        offset: u64,
        len: usize,
        align_at: usize,
    ) -> futures::future::BoxFuture<'static, Result<Bytes>> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > self.inner.len) {
            let err = FlightError::internal(format!(
                "{}: bytes {offset}..{} lie beyond the end of the file ({} bytes)",
                self.inner.shown,
                offset as u128 + len as u128,
                self.inner.len
            ));
            return Box::pin(std::future::ready(Err(err)));
        }
        if len == 0 {
            return Box::pin(std::future::ready(Ok(Bytes::new())));
        }
        match &self.inner.handle {
            Handle::Plain(_) => plain::read_at(self.clone(), offset, len, align_at),
            #[cfg(unix)]
            Handle::Mmap(_) => mmap::read_at(self.clone(), offset, len),
            #[cfg(target_os = "linux")]
            Handle::Uring(file) => {
                let read = file.read_at(
                    offset,
                    len,
                    align_at,
                    self.inner.shown.clone(),
                    Arc::clone(&self.inner.pool),
                );
                // The file stays registered with its ring thread until the read is answered.
                let keep = self.clone();
                Box::pin(async move {
                    let result = read.await;
                    drop(keep);
                    result
                })
            }
        }
    }

    /// The std file of the plain and mmap backends.
    fn std_file(&self) -> Option<&std::fs::File> {
        match &self.inner.handle {
            Handle::Plain(file) => Some(file),
            #[cfg(unix)]
            Handle::Mmap(file) => Some(file),
            #[cfg(target_os = "linux")]
            Handle::Uring(_) => None,
        }
    }
}

/// A read's destination: an aligned buffer (from the file's [`BufferPool`]) with `pad` leading
/// zero bytes, so that byte `align_at` of the `len` bytes read lands on a 64-byte boundary.
pub(crate) struct ReadBuf {
    buf: PooledBuf,
    pad: usize,
    len: usize,
    filled: usize,
}

impl ReadBuf {
    /// A buffer for `len` bytes whose byte `align_at` will be aligned.
    pub(crate) fn new(pool: &Arc<BufferPool>, len: usize, align_at: usize) -> Result<ReadBuf> {
        let pad = (BUFFER_ALIGNMENT - align_at % BUFFER_ALIGNMENT) % BUFFER_ALIGNMENT;
        let total = len
            .checked_add(pad)
            .ok_or_else(|| FlightError::internal(format!("a read of {len} bytes is too large")))?;
        let mut buf = pool.take(total)?;
        // SAFETY: the allocation holds `total >= pad` bytes.
        unsafe { std::ptr::write_bytes(buf.as_mut_ptr(), 0, pad) };
        Ok(ReadBuf {
            buf,
            pad,
            len,
            filled: 0,
        })
    }

    /// Bytes still to be read.
    pub(crate) fn remaining(&self) -> usize {
        self.len - self.filled
    }

    /// Bytes read so far.
    pub(crate) fn filled(&self) -> usize {
        self.filled
    }

    /// Where the next byte goes.
    pub(crate) fn write_ptr(&mut self) -> *mut u8 {
        // SAFETY: pad + filled <= pad + len, inside the allocation.
        unsafe { self.buf.as_mut_ptr().add(self.pad + self.filled) }
    }

    /// Where the range starts (for writers that fill it from its start, as io_uring does).
    #[cfg(target_os = "linux")]
    pub(crate) fn start_ptr(&mut self) -> *mut u8 {
        // SAFETY: pad <= capacity.
        unsafe { self.buf.as_mut_ptr().add(self.pad) }
    }

    /// [`ReadBuf::start_ptr`] for readers.
    #[cfg(target_os = "linux")]
    pub(crate) fn start_const_ptr(&self) -> *const u8 {
        self.buf.as_ptr().wrapping_add(self.pad)
    }

    /// The range's length.
    #[cfg(target_os = "linux")]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Declares `n` more bytes written at [`ReadBuf::write_ptr`].
    ///
    /// # Safety
    /// Those bytes must have been written, and `n <= remaining()`.
    pub(crate) unsafe fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.remaining());
        self.filled += n;
    }

    /// Declares the first `n` bytes of the range written (io_uring reports the high-water mark).
    ///
    /// # Safety
    /// Bytes `0..n` of the range must have been written, and `n <= len`.
    #[cfg(target_os = "linux")]
    pub(crate) unsafe fn set_filled(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.filled = self.filled.max(n);
    }

    /// The bytes read, once all of them are; the padding is not part of the result.
    pub(crate) fn finish(mut self) -> Result<Bytes> {
        if self.filled != self.len {
            return Err(FlightError::internal(format!(
                "read {} of {} bytes",
                self.filled, self.len
            )));
        }
        // SAFETY: the padding was zeroed in `new` and every byte of the range was written.
        unsafe { self.buf.set_filled(self.pad + self.len) };
        let pad = self.pad;
        Ok(self.buf.into_bytes().slice(pad..))
    }
}

/// One range for [`ReadAhead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadRange {
    /// Where the range starts in the file.
    pub offset: u64,
    /// Its length.
    pub len: usize,
    /// Which byte of it must be 64-byte aligned in memory.
    pub align_at: usize,
}

/// Bytes that the [`ReadAhead`] streams of one [`Io`] may have read, or be reading, ahead of
/// their consumers, all together: the memory the service spends on read-ahead does not grow with
/// the number of streams. A stream may always have one range under way, whatever the others
/// hold, so every stream progresses; beyond that it reads ahead only while the shared total
/// stays within the limit. Streams that check at the same moment can each pass it by one range.
pub(crate) struct ReadBudget {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl ReadBudget {
    /// A budget of `limit` bytes (at least one).
    pub(crate) fn new(limit: usize) -> ReadBudget {
        ReadBudget {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Bytes in use.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes in use at once so far.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The limit.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `len` bytes if they fit, or unconditionally when `must`.
    fn take(&self, len: usize, must: bool) -> bool {
        let used = self.used.load(Ordering::Relaxed);
        if !must && used.saturating_add(len) > self.limit {
            return false;
        }
        let now = self
            .used
            .fetch_add(len, Ordering::Relaxed)
            .saturating_add(len);
        self.peak.fetch_max(now, Ordering::Relaxed);
        true
    }

    fn give_back(&self, len: usize) {
        self.used.fetch_sub(len, Ordering::Relaxed);
    }
}

/// Reads a list of ranges in order, keeping reads under way ahead of the consumer as far as its
/// [`ReadBudget`] allows (always at least one). Ends after the first error.
pub(crate) struct ReadAhead {
    file: IoFile,
    pending: VecDeque<ReadRange>,
    in_flight: FuturesOrdered<futures::future::BoxFuture<'static, Result<Bytes>>>,
    in_flight_lens: VecDeque<usize>,
    budget: Arc<ReadBudget>,
    done: bool,
}

impl ReadAhead {
    /// Reads `ranges` of `file` within `budget`.
    pub(crate) fn new(file: IoFile, ranges: Vec<ReadRange>, budget: Arc<ReadBudget>) -> ReadAhead {
        ReadAhead {
            file,
            pending: ranges.into(),
            in_flight: FuturesOrdered::new(),
            in_flight_lens: VecDeque::new(),
            budget,
            done: false,
        }
    }

    fn issue(&mut self) {
        while let Some(range) = self.pending.front().copied() {
            if !self.budget.take(range.len, self.in_flight_lens.is_empty()) {
                break;
            }
            self.pending.pop_front();
            self.in_flight
                .push_back(self.file.read_at(range.offset, range.len, range.align_at));
            self.in_flight_lens.push_back(range.len);
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Reads abandoned under way or never taken no longer count against the budget.
        self.budget.give_back(self.in_flight_lens.iter().sum());
    }
}

impl Stream for ReadAhead {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        self.issue();
        match self.in_flight.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(result)) => {
                let len = self.in_flight_lens.pop_front().unwrap_or(0);
                self.budget.give_back(len);
                if result.is_err() {
                    self.done = true;
                } else {
                    // Start the next reads now rather than at the next poll.
                    self.issue();
                }
                Poll::Ready(Some(result))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use std::io::Write;

    fn sample_file(len: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        (dir, path, data)
    }

    async fn exercise(io: Io) {
        // The mmap backend hands out ranges where the file has them.
        let aligned = io.backend() != IoBackend::Mmap;
        let (_dir, path, data) = sample_file(300_000);
        let file = io.open(&path, "data.bin").await.unwrap();
        assert_eq!(file.len(), data.len() as u64);

        for (offset, len, align_at) in [(0, 10, 0), (3, 1000, 17), (299_990, 10, 5), (5, 0, 0)] {
            let bytes = file.read_at(offset, len, align_at).await.unwrap();
            assert_eq!(&bytes[..], &data[offset as usize..offset as usize + len]);
            if aligned && len > align_at {
                assert_eq!((bytes.as_ptr() as usize + align_at) % BUFFER_ALIGNMENT, 0);
            }
        }
        let err = file.read_at(299_990, 11, 0).await.unwrap_err();
        assert!(err.message().contains("beyond the end"), "{err}");
        let err = file.read_at(u64::MAX, 2, 0).await.unwrap_err();
        assert!(err.message().contains("beyond the end"), "{err}");

        // Many ranges through a small read-ahead budget arrive complete and in order.
        let ranges: Vec<ReadRange> = (0..100)
            .map(|i| ReadRange {
                offset: i * 2999,
                len: 2999,
                align_at: (i % 70) as usize,
            })
            .collect();
        let budget = Arc::new(ReadBudget::new(10_000));
        let chunks: Vec<Bytes> = ReadAhead::new(file.clone(), ranges.clone(), Arc::clone(&budget))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(budget.used(), 0);
        for (range, chunk) in ranges.iter().zip(&chunks) {
            let start = range.offset as usize;
            assert_eq!(&chunk[..], &data[start..start + range.len]);
            if aligned {
                assert_eq!(
                    (chunk.as_ptr() as usize + range.align_at) % BUFFER_ALIGNMENT,
                    0
                );
            }
        }

        // The file shrinking under an open handle is an error, not a short result.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        let err = file.read_at(50, 1000, 0).await.unwrap_err();
        assert!(err.message().contains("end of file"), "{err}");

        let missing = io.open(&path.with_extension("nope"), "nope").await;
        assert_eq!(
            missing.err().map(|e| e.code()),
            Some(polyflight_core::FlightCode::NotFound)
        );
    }

    #[tokio::test]
    async fn streams_share_one_read_ahead_budget() {
        let (_dir, path, data) = sample_file(300_000);
        let io = Io::start(IoMode::Plain, 1, 10_000).unwrap();
        let file = io.open(&path, "data.bin").await.unwrap();
        let ranges: Vec<ReadRange> = (0..100)
            .map(|i| ReadRange {
                offset: i * 2999,
                len: 2999,
                align_at: 0,
            })
            .collect();
        let mut first = io.read_ahead(file.clone(), ranges.clone());
        let mut second = io.read_ahead(file.clone(), ranges.clone());
        assert_eq!(&first.next().await.unwrap().unwrap()[..], &data[..2999]);
        // The first stream read ahead as far as the budget goes...
        let after_first = io.budget.used();
        assert!(after_first > 2999 && after_first <= 10_000, "{after_first}");
        // ...and the second still reads, one range at a time while the first holds the rest.
        assert_eq!(&second.next().await.unwrap().unwrap()[..], &data[..2999]);
        assert!(io.budget.used() <= 10_000 + 2999, "{}", io.budget.used());
        // A stream dropped half-way gives its share back.
        drop(first);
        assert!(io.budget.used() <= 2 * 2999, "{}", io.budget.used());
        let rest: Vec<Bytes> = second.try_collect().await.unwrap();
        assert_eq!(rest.len(), 99);
        assert_eq!(&rest[98][..], &data[99 * 2999..100 * 2999]);
        assert_eq!(io.budget.used(), 0);
    }

    #[tokio::test]
    async fn plain_backend_reads_ranges() {
        let io = Io::start(IoMode::Plain, 1, 1 << 20).unwrap();
        assert_eq!(io.backend(), IoBackend::Plain { reason: None });
        exercise(io).await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn mmap_backend_reads_ranges() {
        let io = Io::start(IoMode::Mmap, 1, 1 << 20).unwrap();
        assert_eq!(io.backend(), IoBackend::Mmap);
        exercise(io).await;
    }

    #[tokio::test]
    async fn uring_backend_reads_ranges() {
        match Io::start(IoMode::Uring, 2, 1 << 20) {
            Ok(io) => {
                assert!(io.backend().is_uring());
                exercise(io).await;
            }
            Err(err) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: io_uring backend test, io_uring is unavailable here: {err}"
                );
                // Auto falls back and says why.
                let auto = Io::start(IoMode::Auto, 1, 1 << 20).unwrap();
                assert!(auto.backend().reason().is_some());
            }
        }
    }
}
