//! Durable file writes that do not end in one long `fsync`.
//!
//! Writing a large file and calling `fsync` at the end leaves every byte dirty in the page cache
//! until then (the kernel starts background writeback only when dirty pages reach a share of
//! memory, gigabytes on a large host), so the final `fsync` waits for the whole file to reach the
//! disk after the transfer is over, and the two never overlap. [`Writeback`] starts writeback of
//! each [`Writeback::CHUNK`] as soon as it is written (`sync_file_range(2)` with
//! `SYNC_FILE_RANGE_WRITE`, which does not wait) and waits for the chunk written
//! [`Writeback::LAG`] chunks earlier, so the disk works while data still arrives, dirty pages stay
//! bounded by about `LAG × CHUNK`, and the final `fsync` finds only the last chunks to write.
//! `sync_file_range` guarantees nothing by itself (no metadata, no disk cache flush): callers still
//! `fsync` at the end, which is what makes the file durable.
//!
//! Off Linux, [`Writeback`] only writes.

use std::fs::File;
use std::io::{self, Write};

/// A file written front to back, with writeback started behind the writer.
pub struct Writeback {
    file: File,
    /// Bytes written so far.
    written: u64,
    /// Where the next chunk to hand to writeback starts.
    started: u64,
}

impl Writeback {
    /// Writeback is started for each chunk of this many bytes.
    pub const CHUNK: u64 = 8 << 20;
    /// The writer waits for the chunk this many chunks behind the newest one.
    pub const LAG: u64 = 4;

    /// Wraps `file`, positioned at its start.
    pub fn new(file: File) -> Writeback {
        Writeback {
            file,
            written: 0,
            started: 0,
        }
    }

    /// The file.
    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// The file, for a final `sync_all`.
    pub fn into_inner(self) -> File {
        self.file
    }

    fn after_write(&mut self) {
        while self.written - self.started >= Self::CHUNK {
            let chunk = self.started;
            self.started += Self::CHUNK;
            start_writeback(&self.file, chunk, Self::CHUNK);
            if let Some(old) = chunk.checked_sub(Self::LAG * Self::CHUNK) {
                wait_writeback(&self.file, old, Self::CHUNK);
            }
        }
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        self.after_write();
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.file.write_vectored(bufs)?;
        self.written += n as u64;
        self.after_write();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Starts writeback of a range without waiting for it. Failures are ignored: the final `fsync`
/// reports any I/O error, and a file system without `sync_file_range` only loses the overlap.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    sync_range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE);
}

/// Waits until a range handed to writeback is on its way to the disk.
#[cfg(target_os = "linux")]
fn wait_writeback(file: &File, offset: u64, len: u64) {
    sync_range(
        file,
        offset,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    );
}

#[cfg(target_os = "linux")]
fn sync_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: a plain system call on an open descriptor; it touches no memory of ours.
    unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

#[cfg(not(target_os = "linux"))]
fn wait_writeback(_file: &File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_everything_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut out = Writeback::new(File::create(&path).unwrap());
        let piece: Vec<u8> = (0..3_000_001u32).map(|i| (i % 253) as u8).collect();
        let mut expected = Vec::new();
        // Enough to pass several chunks and the lag, in odd-sized writes.
        for _ in 0..15 {
            out.write_all(&piece).unwrap();
            expected.extend_from_slice(&piece);
        }
        let n = out
            .write_vectored(&[io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")])
            .unwrap();
        assert_eq!(n, 4);
        expected.extend_from_slice(b"abcd");
        assert!(out.started >= Writeback::CHUNK * 5);
        out.into_inner().sync_all().unwrap();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), expected.len());
        assert!(back == expected);
    }
}
