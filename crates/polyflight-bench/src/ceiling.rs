//! The ceilings: raw loopback sockets with no RPC at all. A writer thread pushes a number of
//! bytes through a TCP or Unix-domain socket in writes of one batch message each, and a reader
//! thread reads them into one reused buffer of the same size. No Flight transport over the
//! same socket type can beat this on the same machine, so each transport is also reported as
//! a fraction of it.
//!
//! The writer plays the server (named [`SERVER_THREAD`]) and the reader the client, so the CPU
//! split reads as it does for a DoGet. The runner measures each ceiling a few times and keeps
//! the fastest: it is the best the socket can do.

use crate::cpu::{current_tid, CpuSnapshot, CpuUsage, CLIENT_THREAD, SERVER_THREAD};
use crate::BenchError;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Which socket a ceiling runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// TCP over 127.0.0.1.
    Tcp,
    /// A Unix-domain stream socket.
    Unix,
}

/// What a ceiling run measured.
#[derive(Debug, Clone, Copy)]
pub struct SocketRun {
    /// Bytes the reader received.
    pub bytes: u64,
    /// From the connection to the reader's last byte.
    pub elapsed: Duration,
    /// CPU used meanwhile.
    pub cpu: CpuUsage,
}

/// A socket directory removed on drop.
struct SocketDir(PathBuf);

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

trait Duplex: Read + Write + Send + 'static {}
impl<T: Read + Write + Send + 'static> Duplex for T {}

/// A connected pair of sockets (writer end, reader end) and the directory to remove after.
type SocketPair = (Box<dyn Duplex>, Box<dyn Duplex>, Option<SocketDir>);

/// Pushes `total` bytes in writes of `chunk` bytes through a loopback socket of `kind`.
pub fn measure(kind: SocketKind, total: u64, chunk: usize) -> Result<SocketRun, BenchError> {
    let chunk = chunk.max(1);
    let driver = current_tid();
    let (writer_end, reader_end, _dir): SocketPair = match kind {
        SocketKind::Tcp => {
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            let reader = std::net::TcpStream::connect(listener.local_addr()?)?;
            let (writer, _) = listener.accept()?;
            (Box::new(writer), Box::new(reader), None)
        }
        SocketKind::Unix => unix_pair()?,
    };

    // Both threads wait, once done, until the end snapshot has been taken: the per-thread CPU
    // split only sees threads that are still alive.
    let (done_tx, done_rx) = mpsc::channel::<Result<u64, std::io::Error>>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
    let wait_release = {
        let release_rx = std::sync::Arc::clone(&release_rx);
        move || {
            if let Ok(rx) = release_rx.lock() {
                let _ = rx.recv();
            }
        }
    };

    let before = CpuSnapshot::take(driver);
    let start = Instant::now();
    let writer = {
        let done = done_tx.clone();
        let wait = wait_release.clone();
        std::thread::Builder::new()
            .name(SERVER_THREAD.into())
            .spawn(move || {
                let mut socket = writer_end;
                let buffer = vec![0x5a_u8; chunk];
                let mut left = total;
                let result = (|| {
                    while left > 0 {
                        let n = left.min(chunk as u64) as usize;
                        socket.write_all(&buffer[..n])?;
                        left -= n as u64;
                    }
                    socket.flush()?;
                    Ok(0)
                })();
                // Closing the socket is the reader's end of stream.
                drop(socket);
                let _ = done.send(result);
                wait();
            })?
    };
    let reader = {
        let done = done_tx;
        let wait = wait_release;
        std::thread::Builder::new()
            .name(CLIENT_THREAD.into())
            .spawn(move || {
                let mut socket = reader_end;
                let mut buffer = vec![0_u8; chunk];
                let mut received = 0u64;
                let result = loop {
                    match socket.read(&mut buffer) {
                        Ok(0) => break Ok(received),
                        Ok(n) => received += n as u64,
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(err) => break Err(err),
                    }
                };
                let _ = done.send(result);
                wait();
            })?
    };

    let mut received = 0;
    let mut failure = None;
    for _ in 0..2 {
        match done_rx.recv() {
            Ok(Ok(n)) => received += n,
            Ok(Err(err)) => failure = Some(BenchError::Io(err)),
            Err(_) => failure = Some(BenchError::Other("a socket thread panicked".into())),
        }
    }
    let elapsed = start.elapsed();
    let cpu = before.until(&CpuSnapshot::take(driver));
    drop(release_tx);
    let _ = writer.join();
    let _ = reader.join();
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(SocketRun {
        bytes: received,
        elapsed,
        cpu,
    })
}

#[cfg(unix)]
fn unix_pair() -> Result<SocketPair, BenchError> {
    use std::os::unix::net::{UnixListener, UnixStream};
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = SocketDir(
        std::env::temp_dir().join(format!("polyflight-bench-{}-{n}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0)?;
    let path = dir.0.join("ceiling.sock");
    let listener = UnixListener::bind(&path)?;
    let reader = UnixStream::connect(&path)?;
    let (writer, _) = listener.accept()?;
    Ok((Box::new(writer), Box::new(reader), Some(dir)))
}

#[cfg(not(unix))]
fn unix_pair() -> Result<SocketPair, BenchError> {
    Err(BenchError::Other(
        "Unix-domain sockets are not available on this platform".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sockets_carry_every_byte() {
        for kind in [SocketKind::Tcp, SocketKind::Unix] {
            let run = measure(kind, 10_000_003, 65_536).unwrap();
            assert_eq!(run.bytes, 10_000_003, "{kind:?}");
            assert!(run.elapsed > Duration::ZERO);
        }
    }
}
