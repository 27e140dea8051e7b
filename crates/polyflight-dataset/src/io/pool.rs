//! Read buffers that are used again instead of freed.
//!
//! A DoGet of a file reads block after block into fresh buffers that the transport frees once
//! sent, on another thread. Left to the allocator, that churn of megabyte buffers keeps freed
//! memory around in per-thread caches and arenas: the copying backends peaked at twice the RSS of
//! the mmap backend, which allocates nothing. Freed or not, the memory a stream has in flight is
//! bounded (its read-ahead plus the transport's queue); what the pool bounds is the rest: a
//! buffer whose last `Bytes` is dropped comes back here, and the next read takes it, so after the
//! first blocks a stream allocates nothing and faults in no page. At most `max_idle` bytes wait
//! unused; beyond that a returned buffer is freed.
//!
//! Reads smaller than [`MIN_POOLED`] bypass the pool: the allocator serves those well.

use polyflight_core::{AlignedBuf, Result};
use std::mem::ManuallyDrop;
use std::sync::{Arc, Mutex};

/// Smallest read whose buffer is pooled.
pub(crate) const MIN_POOLED: usize = 64 * 1024;

/// Pooled capacities are rounded up to this, so that blocks of nearly equal size (the batches
/// of one file) share buffers.
const GRANULE: usize = 64 * 1024;

/// A set of idle read buffers of at most `max_idle` bytes in all.
pub(crate) struct BufferPool {
    idle: Mutex<Idle>,
    max_idle: usize,
}

#[derive(Default)]
struct Idle {
    /// Oldest first.
    buffers: Vec<AlignedBuf>,
    bytes: usize,
}

impl Idle {
    fn remove(&mut self, index: usize) -> AlignedBuf {
        let buf = self.buffers.remove(index);
        self.bytes -= buf.capacity();
        buf
    }
}

impl BufferPool {
    /// A pool that keeps at most `max_idle` bytes of idle buffers.
    pub(crate) fn new(max_idle: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            idle: Mutex::new(Idle::default()),
            max_idle,
        })
    }

    /// A buffer of at least `capacity` bytes, idle from the pool when one fits (not more than a
    /// quarter larger than asked), else freshly allocated. A miss frees the oldest idle buffer,
    /// so that a pool filled with sizes no longer read turns over.
    pub(crate) fn take(self: &Arc<Self>, capacity: usize) -> Result<PooledBuf> {
        if capacity < MIN_POOLED {
            return Ok(PooledBuf::new(AlignedBuf::with_capacity(capacity)?, None));
        }
        let largest_fit = capacity
            .saturating_add(capacity / 4)
            .saturating_add(GRANULE);
        let mut idle = self.lock();
        let fit = idle
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity && b.capacity() <= largest_fit)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(index) = fit {
            let buf = idle.remove(index);
            return Ok(PooledBuf::new(buf, Some(Arc::clone(self))));
        }
        let evicted = (!idle.buffers.is_empty()).then(|| idle.remove(0));
        drop(idle);
        // Freed outside the lock.
        drop(evicted);
        let rounded = capacity
            .checked_next_multiple_of(GRANULE)
            .unwrap_or(capacity);
        let buf = AlignedBuf::with_capacity(rounded)?;
        Ok(PooledBuf::new(buf, Some(Arc::clone(self))))
    }

    /// Bytes of idle buffers.
    #[cfg(test)]
    pub(crate) fn idle_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn give_back(&self, buf: AlignedBuf) {
        let mut idle = self.lock();
        if idle.bytes + buf.capacity() <= self.max_idle {
            idle.bytes += buf.capacity();
            idle.buffers.push(buf);
        } else {
            drop(idle);
            drop(buf);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        // The lists stay consistent whatever panicked while holding the lock.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A buffer that goes back to its pool when dropped (or is freed, when it came from no pool).
pub(crate) struct PooledBuf {
    /// Taken out only in `drop`.
    buf: ManuallyDrop<AlignedBuf>,
    pool: Option<Arc<BufferPool>>,
}

impl PooledBuf {
    fn new(buf: AlignedBuf, pool: Option<Arc<BufferPool>>) -> PooledBuf {
        PooledBuf {
            buf: ManuallyDrop::new(buf),
            pool,
        }
    }

    /// Bytes that may be written through [`PooledBuf::as_mut_ptr`].
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The start of the buffer.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf.as_mut_ptr()
    }

    /// The start of the buffer, for readers.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.buf.as_ref().as_ptr()
    }

    /// Declares the first `filled` bytes initialised.
    ///
    /// # Safety
    /// As [`AlignedBuf::set_filled`].
    pub(crate) unsafe fn set_filled(&mut self, filled: usize) {
        // SAFETY: passed on to the caller.
        unsafe { self.buf.set_filled(filled) }
    }

    /// The filled bytes as `Bytes`, without copying; the buffer returns to its pool when the
    /// last clone is dropped.
    pub(crate) fn into_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_ref()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        // SAFETY: `buf` is not used again after this.
        let mut buf = unsafe { ManuallyDrop::take(&mut self.buf) };
        if let Some(pool) = self.pool.take() {
            // Only what a later read overwrites is ever shown: forget what this one held.
            // SAFETY: zero bytes are always initialised.
            unsafe { buf.set_filled(0) };
            pool.give_back(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_used_again_and_the_idle_bytes_stay_bounded() {
        let pool = BufferPool::new(4 << 20);
        let mut first = pool.take(1 << 20).unwrap();
        assert_eq!(first.capacity(), 1 << 20);
        let ptr = first.as_mut_ptr();
        // SAFETY (test): nothing is read.
        unsafe { first.set_filled(100) };
        drop(first);
        assert_eq!(pool.idle_bytes(), 1 << 20);

        // A block of nearly the same size takes the same buffer, with nothing shown of before.
        let mut again = pool.take((1 << 20) - 1000).unwrap();
        assert_eq!(again.as_mut_ptr(), ptr);
        assert!(again.as_ref().is_empty());
        assert_eq!(pool.idle_bytes(), 0);
        drop(again);

        // A much smaller block does not take a large buffer; the miss frees the idle one.
        let small = pool.take(100 << 10).unwrap();
        assert_eq!(small.capacity(), 128 << 10);
        assert_eq!(pool.idle_bytes(), 0);
        drop(small);
        assert_eq!(pool.idle_bytes(), 128 << 10);

        // No more than max_idle bytes wait.
        let many: Vec<_> = (0..8).map(|_| pool.take(1 << 20).unwrap()).collect();
        assert_eq!(pool.idle_bytes(), 0);
        drop(many);
        assert_eq!(pool.idle_bytes(), 4 << 20);

        // Small reads are not pooled.
        drop(pool.take(1000).unwrap());
        assert_eq!(pool.idle_bytes(), 4 << 20);
    }

    #[test]
    fn a_buffer_in_bytes_returns_when_the_last_clone_goes() {
        let pool = BufferPool::new(4 << 20);
        let mut buf = pool.take(1 << 20).unwrap();
        // SAFETY (test): the first 10 bytes are written before they are declared.
        unsafe {
            std::ptr::write_bytes(buf.as_mut_ptr(), 7, 10);
            buf.set_filled(10);
        }
        let bytes = buf.into_bytes();
        let part = bytes.slice(2..5);
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0);
        assert_eq!(&part[..], &[7, 7, 7]);
        drop(part);
        assert_eq!(pool.idle_bytes(), 1 << 20);
    }
}
