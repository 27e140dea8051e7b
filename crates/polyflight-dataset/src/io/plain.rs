//! The plain backend: `pread(2)` on tokio's blocking thread pool.
//!
//! Each read is one blocking task, spawned when the read is issued, so the reads a
//! [`super::ReadAhead`] keeps under way proceed in parallel on the pool. The pool is tokio's
//! (bounded by the runtime's `max_blocking_threads`); the read-ahead budget of each stream bounds
//! how much it asks of it.

use super::{IoFile, ReadBuf};
use bytes::Bytes;
use futures::future::BoxFuture;
use polyflight_core::{FlightError, Result};
use std::os::fd::AsRawFd;

/// Starts reading `len` bytes at `offset` of `file` (a plain-backend file) on the blocking pool.
pub(super) fn read_at(
    file: IoFile,
    offset: u64,
    len: usize,
    align_at: usize,
) -> BoxFuture<'static, Result<Bytes>> {
    let task = tokio::task::spawn_blocking(move || pread_exact(&file, offset, len, align_at));
    Box::pin(async move {
        task.await
            .map_err(|e| FlightError::internal(format!("file read task failed: {e}")))?
    })
}

fn pread_exact(file: &IoFile, offset: u64, len: usize, align_at: usize) -> Result<Bytes> {
    let std_file = file
        .std_file()
        .ok_or_else(|| FlightError::internal("a plain read of a file opened by another backend"))?;
    let fd = std_file.as_raw_fd();
    let mut buf = ReadBuf::new(&file.inner.pool, len, align_at)?;
    while buf.remaining() > 0 {
        let at = offset + buf.filled() as u64;
        let at = libc::off_t::try_from(at).map_err(|_| {
            FlightError::internal(format!("{}: offset {at} is too large", file.shown()))
        })?;
        // SAFETY: write_ptr() points at `remaining()` writable bytes of our allocation, which
        // nothing else references; the fd stays open while `file` lives.
        let n = unsafe { libc::pread(fd, buf.write_ptr().cast(), buf.remaining(), at) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(super::io_error(file.shown(), "reading", &err));
        }
        if n == 0 {
            return Err(unexpected_eof(file.shown(), offset, len, buf.filled()));
        }
        // SAFETY: pread wrote `n <= remaining()` bytes at write_ptr().
        unsafe { buf.advance(n as usize) };
    }
    buf.finish()
}

/// The error for a file that ended before a range that was inside it when it was opened.
pub(super) fn unexpected_eof(shown: &str, offset: u64, len: usize, got: usize) -> FlightError {
    FlightError::internal(format!(
        "{shown}: unexpected end of file reading bytes {offset}..{} (got {got} of {len} bytes; \
         was the file truncated while being read?)",
        offset as u128 + len as u128
    ))
}
