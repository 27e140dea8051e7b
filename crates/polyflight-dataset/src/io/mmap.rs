//! The memory-mapped backend: each read maps its range of the file (`mmap(2)`) and hands out
//! the mapping as `Bytes`, unmapped when the last slice of it is dropped.
//!
//! Nothing is copied: the page cache's pages are what DoGet sends, so a socket's `writev` reads
//! them straight from the cache. The other backends copy every byte from the page cache into
//! a buffer of ours first, which on a page-cached file costs about as much CPU as the send
//! itself. A range whose pages are all in the page cache (`mincore`) is mapped on the calling
//! thread and faulted in by whoever reads it, so pages are mapped only while they are in flight;
//! any other range is mapped on tokio's blocking pool with `MAP_POPULATE`, which reads the
//! pages in from disk there, so using the bytes never blocks an async worker on the disk.
//!
//! The price is the classic one of mapped files: a file truncated in place while a range of it
//! is mapped makes touching the vanished pages raise SIGBUS. Files replaced by rename (as DoPut
//! and `polyflight put` do, and as most tools write) are safe: the mapping keeps the old file.
//! The backend is therefore a choice ([`super::IoMode::Mmap`]), not the default.

use super::IoFile;
use bytes::Bytes;
use futures::future::BoxFuture;
use polyflight_core::{FlightError, Result};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// One mapped range; unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only memory owned by this value alone; nothing ties it to a thread.
unsafe impl Send for Mapping {}
// SAFETY: shared access only reads.
unsafe impl Sync for Mapping {}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `len` bytes are mapped readable at `ptr` until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by `map` and nothing refers to it any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Ranges up to this size are mapped on the calling thread when the page cache holds all of
/// them; larger ones, and ranges that would have to be read from disk, go to the blocking pool.
const INLINE_MAX: usize = 8 << 20;

/// Maps `len` bytes at `offset` of `file`: at once when they are all in the page cache (no
/// disk I/O can block the caller), else on the blocking pool with `MAP_POPULATE`.
pub(super) fn read_at(file: IoFile, offset: u64, len: usize) -> BoxFuture<'static, Result<Bytes>> {
    if len <= INLINE_MAX {
        if let Some(mapped) = map_if_cached(&file, offset, len) {
            return Box::pin(std::future::ready(mapped));
        }
    }
    let task = tokio::task::spawn_blocking(move || map(&file, offset, len, true));
    Box::pin(async move {
        task.await
            .map_err(|e| FlightError::internal(format!("file map task failed: {e}")))?
    })
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// The mapping of a range whose pages are all in the page cache, or `None` (nothing mapped)
/// when some are not or the check fails.
fn map_if_cached(file: &IoFile, offset: u64, len: usize) -> Option<Result<Bytes>> {
    let mapped = match map(file, offset, len, false) {
        Ok(mapped) => mapped,
        Err(err) => return Some(Err(err)),
    };
    let page = page_size() as usize;
    let lead = (offset % page as u64) as usize;
    let start = mapped.as_ptr().wrapping_sub(lead);
    let pages = (lead + len).div_ceil(page);
    let mut resident = vec![0u8; pages];
    // SAFETY: `start` is the page-aligned start of the live mapping behind `mapped`, which spans
    // `lead + len` bytes; `resident` has one byte per page.
    let status = unsafe {
        libc::mincore(
            start as *mut libc::c_void,
            lead + len,
            resident.as_mut_ptr(),
        )
    };
    (status == 0 && resident.iter().all(|r| r & 1 == 1)).then_some(Ok(mapped))
}

fn map(file: &IoFile, offset: u64, len: usize, populate: bool) -> Result<Bytes> {
    let std_file = file.std_file().ok_or_else(|| {
        FlightError::internal("a mapped read of a file opened by another backend")
    })?;
    let shown = file.shown();
    // A file that became shorter since it was opened would fault where it ended: refuse to map
    // past its current end.
    let now = std_file
        .metadata()
        .map_err(|e| super::io_error(shown, "reading the metadata of", &e))?
        .len();
    let end = offset + len as u64;
    if now < end {
        return Err(super::plain::unexpected_eof(
            shown,
            offset,
            len,
            now.saturating_sub(offset) as usize,
        ));
    }
    let start = offset - offset % page_size();
    let lead = (offset - start) as usize;
    let map_len = lead + len;
    let at = libc::off_t::try_from(start)
        .map_err(|_| FlightError::internal(format!("{shown}: offset {start} is too large")))?;
    // SAFETY: a fresh private read-only mapping of an open descriptor; the kernel picks the
    // address, so no memory of ours is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            if populate {
                libc::MAP_PRIVATE | libc::MAP_POPULATE
            } else {
                libc::MAP_PRIVATE
            },
            std_file.as_raw_fd(),
            at,
        )
    };
    if ptr == libc::MAP_FAILED {
        let err = std::io::Error::last_os_error();
        return Err(super::io_error(shown, "mapping", &err));
    }
    let ptr = NonNull::new(ptr.cast::<u8>())
        .ok_or_else(|| FlightError::internal(format!("{shown}: mmap returned null")))?;
    let mapping = Mapping { ptr, len: map_len };
    Ok(Bytes::from_owner(mapping).slice(lead..))
}
