//! One write system call per flush for the small frames HTTP/2 sends around a message.
//!
//! h2 writes its frames from a buffer of its own, except that a DATA frame's payload of 256
//! bytes or more is "chained": sent from the caller's `Bytes` by a vectored write, uncopied. A
//! chained payload must be written out before any later frame can be buffered, so a unary
//! answer of a few hundred bytes (a FlightInfo) went out as two writes, two TCP segments and two
//! wake-ups of the peer: HEADERS and DATA first, then the trailers on their own. Against
//! a transport that says it cannot write vectored, h2 chains only payloads of 1 KiB or more
//! and writes a chained frame in two calls: its head (with the payload's first bytes), then
//! the rest of the payload.
//!
//! [`Coalesced`] says exactly that, and keeps what h2 writes in small pieces until the next
//! large write or flush: the held bytes and the large payload then go out together in one
//! vectored write of the stream underneath. A small answer leaves in one write; a large DATA
//! frame costs one vectored write, as before; nothing is held across a flush.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes smaller than this are held until the next large write or flush.
const HOLD_BELOW: usize = 16 * 1024;

/// At most this much is held; a write that would exceed it goes out with what is held.
const HOLD_MAX: usize = 64 * 1024;

/// A byte stream whose small writes are gathered into the next large write or flush.
pub(crate) struct Coalesced<T> {
    io: T,
    held: Vec<u8>,
    /// How much of `held` has been written.
    sent: usize,
}

impl<T> Coalesced<T> {
    pub(crate) fn new(io: T) -> Coalesced<T> {
        Coalesced {
            io,
            held: Vec::new(),
            sent: 0,
        }
    }

    fn unsent(&self) -> &[u8] {
        &self.held[self.sent..]
    }

    /// Records `n` more held bytes written; forgets them all once they are.
    fn advance(&mut self, n: usize) {
        self.sent += n;
        if self.sent >= self.held.len() {
            self.held.clear();
            self.sent = 0;
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalesced<T> {
    /// Writes out everything held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.unsent().is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if buf.len() < HOLD_BELOW && this.held.len() + buf.len() <= HOLD_MAX {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        loop {
            if this.unsent().is_empty() {
                return Pin::new(&mut this.io).poll_write(cx, buf);
            }
            let slices = [IoSlice::new(&this.held[this.sent..]), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            let unsent = this.unsent().len();
            this.advance(n.min(unsent));
            if n > unsent {
                return Poll::Ready(Ok(n - unsent));
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    /// False: h2 then copies payloads under 1 KiB into its buffer (see the module docs); the
    /// vectored write happens here.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Records each write call; takes at most `limit` bytes of each.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<usize>,
        data: Vec<u8>,
        limit: Option<usize>,
        flushes: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut budget = self.limit.unwrap_or(usize::MAX);
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(budget);
                self.data.extend_from_slice(&buf[..take]);
                budget -= take;
                n += take;
            }
            self.calls.push(n);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[tokio::test]
    async fn small_writes_leave_in_one_write_at_the_flush() {
        let mut io = Coalesced::new(Recorder::default());
        let (a, b, c) = (bytes(40, 1), bytes(340, 2), bytes(10, 3));
        for part in [&a, &b, &c] {
            io.write_all(part).await.unwrap();
        }
        assert!(io.io.calls.is_empty());
        io.flush().await.unwrap();
        assert_eq!(io.io.calls, [390]);
        assert_eq!(io.io.data, [a, b, c].concat());
        assert_eq!(io.io.flushes, 1);
    }

    #[tokio::test]
    async fn a_large_write_takes_what_is_held_along() {
        let mut io = Coalesced::new(Recorder::default());
        let (head, payload) = (bytes(1033, 4), bytes(1 << 20, 5));
        io.write_all(&head).await.unwrap();
        io.write_all(&payload).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(io.io.calls, [1033 + (1 << 20)]);
        assert_eq!(io.io.data, [head, payload].concat());
    }

    #[tokio::test]
    async fn short_writes_keep_the_order() {
        let recorder = Recorder {
            limit: Some(700),
            ..Recorder::default()
        };
        let mut io = Coalesced::new(recorder);
        let parts = [
            bytes(1000, 6),
            bytes(20_000, 7),
            bytes(300, 8),
            bytes(90_000, 9),
        ];
        for part in &parts {
            io.write_all(part).await.unwrap();
        }
        io.flush().await.unwrap();
        assert_eq!(io.io.data, parts.concat());
        assert!(io.io.calls.iter().all(|&n| n <= 700));
        assert!(io.held.is_empty());
    }

    #[tokio::test]
    async fn at_most_the_limit_is_held() {
        let mut io = Coalesced::new(Recorder::default());
        let parts: Vec<Vec<u8>> = (0..10).map(|i| bytes(10_000, i)).collect();
        for part in &parts {
            io.write_all(part).await.unwrap();
            assert!(io.held.len() <= HOLD_MAX);
        }
        io.shutdown().await.unwrap();
        assert_eq!(io.io.data, parts.concat());
    }
}
