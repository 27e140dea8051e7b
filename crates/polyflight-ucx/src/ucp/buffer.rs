//! 64-byte aligned receive buffers, exposed as `bytes::Bytes`.
//!
//! Arrow wants buffers aligned to 64 bytes (8 at the very least) to build arrays directly over
//! received memory; a plain `Vec<u8>` gives no such promise. Every received body therefore lands in
//! an [`AlignedBuf`]: rendezvous data is written there by UCX, eager data is copied there. The buffer
//! becomes a `Bytes` through `Bytes::from_owner`, so slicing and sharing it never copies.

use bytes::Bytes;
use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::error::{Result, UcxError};

/// Alignment of every received body.
pub const BUFFER_ALIGNMENT: usize = 64;

/// A heap buffer aligned to [`BUFFER_ALIGNMENT`], of which the first `filled` bytes are initialised.
///
/// Memory is left uninitialised at allocation (a rendezvous receive overwrites it, zeroing first
/// would cost a pass over the data); only the filled prefix is ever visible as a slice.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
    filled: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Box<[u8]>; nothing in it is tied to a thread.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads the initialised prefix.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// An uninitialised buffer of `capacity` bytes (at least one byte is allocated).
    pub fn with_capacity(capacity: usize) -> Result<Self> {
        let size = capacity
            .max(1)
            .checked_next_multiple_of(BUFFER_ALIGNMENT)
            .ok_or_else(|| {
                UcxError::internal(format!("buffer of {capacity} bytes is too large"))
            })?;
        let layout = Layout::from_size_align(size, BUFFER_ALIGNMENT)
            .map_err(|e| UcxError::internal(format!("buffer of {capacity} bytes: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            UcxError::internal(format!("out of memory allocating {capacity} bytes"))
        })?;
        Ok(AlignedBuf {
            ptr,
            layout,
            filled: 0,
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn copy_from(data: &[u8]) -> Result<Self> {
        let mut buf = Self::with_capacity(data.len())?;
        // SAFETY: the allocation holds at least data.len() bytes and cannot overlap `data`.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf.ptr.as_ptr(), data.len());
            buf.set_filled(data.len());
        }
        Ok(buf)
    }

    /// Bytes that may be written through [`AlignedBuf::as_mut_ptr`].
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// The start of the allocation, for a foreign writer (UCX).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Declares the first `filled` bytes initialised.
    ///
    /// # Safety
    /// Those bytes must have been written, and `filled` must not exceed the capacity.
    pub unsafe fn set_filled(&mut self, filled: usize) {
        debug_assert!(filled <= self.capacity());
        self.filled = filled;
    }

    /// Turns the buffer into `Bytes` without copying.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `filled` bytes are initialised and owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.filled) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in with_capacity with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Copies `data` into a fresh 64-byte aligned `Bytes`.
pub fn aligned_bytes(data: &[u8]) -> Result<Bytes> {
    Ok(AlignedBuf::copy_from(data)?.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_copies() {
        for len in [0usize, 1, 63, 64, 65, 4096, 100_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let bytes = aligned_bytes(&data).unwrap();
            assert_eq!(bytes.as_ref(), data.as_slice());
            assert_eq!(bytes.as_ptr() as usize % BUFFER_ALIGNMENT, 0);
        }
    }
}
