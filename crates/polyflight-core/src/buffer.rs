//! 64-byte aligned receive buffers, exposed as `bytes::Bytes`, for every transport.
//!
//! Arrow wants buffers aligned to 64 bytes (8 at the very least) to build arrays directly over
//! received memory; a plain `Vec<u8>` gives no such promise. A received body that a transport must
//! gather (gRPC: a body spread over several HTTP/2 frames; UCX: eager data, or a rendezvous
//! receive that UCX writes) lands in an [`AlignedBuf`], which becomes a `Bytes` through
//! `Bytes::from_owner`, so slicing and sharing it never copies.

use bytes::Bytes;
use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::error::{FlightError, Result};

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
                FlightError::internal(format!("buffer of {capacity} bytes is too large"))
            })?;
        let layout = Layout::from_size_align(size, BUFFER_ALIGNMENT)
            .map_err(|e| FlightError::internal(format!("buffer of {capacity} bytes: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            FlightError::internal(format!("out of memory allocating {capacity} bytes"))
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

    /// A buffer holding the next `len` bytes of `source`, which must have that many; no byte is
    /// written twice (the buffer is not zeroed first).
    pub fn copy_from_buf(source: &mut impl bytes::Buf, len: usize) -> Result<Self> {
        if source.remaining() < len {
            return Err(FlightError::internal(format!(
                "copying {len} bytes from a buffer holding {}",
                source.remaining()
            )));
        }
        let mut buf = Self::with_capacity(len)?;
        let mut written = 0;
        while written < len {
            let chunk = source.chunk();
            let n = chunk.len().min(len - written);
            // SAFETY: written + n <= len <= capacity, and `chunk` cannot overlap our allocation.
            unsafe {
                std::ptr::copy_nonoverlapping(chunk.as_ptr(), buf.ptr.as_ptr().add(written), n);
            }
            written += n;
            source.advance(n);
        }
        // SAFETY: the loop wrote every byte of 0..len.
        unsafe { buf.set_filled(len) };
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
    fn gathered_copies_are_aligned_and_exact() {
        let mut source = bytes::Buf::chain(&b"hello "[..], &b"world!"[..]);
        let bytes = AlignedBuf::copy_from_buf(&mut source, 11)
            .unwrap()
            .into_bytes();
        assert_eq!(bytes.as_ref(), b"hello world");
        assert_eq!(bytes.as_ptr() as usize % BUFFER_ALIGNMENT, 0);
        assert_eq!(bytes::Buf::remaining(&source), 1);
        assert!(AlignedBuf::copy_from_buf(&mut source, 2).is_err());
    }

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
