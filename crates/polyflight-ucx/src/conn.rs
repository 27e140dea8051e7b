//! A Flight frame connection: one endpoint on one worker, speaking the frames of [`crate::frame`].
//!
//! Sending numbers the frames (one counter per direction, from 0, never reset, wrapping) and applies
//! the empty-body rule; the AM data goes out scatter-gather straight from the caller's segments.
//! Receiving validates each active message as a frame, fetches rendezvous bodies into 64-byte
//! aligned buffers (several at once, so a large body does not hold up the frames behind it), and
//! hands frames out strictly in counter order. A connection is used by one call at a time, so
//! there is one receiver; it is `!Send` and lives on the worker's thread.

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use polyflight_core::{FlightError, Result};

use crate::frame::{wire_segments, Frame, FrameHeader, FrameType, Reorder, AM_ID};
use crate::ucp::{AmData, AmMessage, AmStream, Endpoint, ErrorHandling, Worker};

/// How far ahead of the next expected counter a frame may be (frames held for reordering).
pub const REORDER_WINDOW: u32 = 1024;

type Fetch = Pin<Box<dyn Future<Output = Result<Frame>>>>;

/// A frame connection over one UCX endpoint.
pub struct FrameConn {
    endpoint: Endpoint,
    stream: AmStream,
    send_counter: Cell<u32>,
    reorder: RefCell<Reorder<Frame>>,
    /// Rendezvous bodies being fetched.
    fetches: RefCell<FuturesUnordered<Fetch>>,
    /// Set once a protocol error was seen: the connection is unusable.
    broken: RefCell<Option<FlightError>>,
}

impl FrameConn {
    /// Wraps a fresh endpoint (frames counted from 0). Registers the Flight AM handler on the
    /// endpoint's worker, so a worker carries one frame connection.
    pub fn new(endpoint: Endpoint) -> Result<FrameConn> {
        let stream = AmStream::new(endpoint.worker(), AM_ID)?;
        Ok(FrameConn {
            endpoint,
            stream,
            send_counter: Cell::new(0),
            reorder: RefCell::new(Reorder::new(REORDER_WINDOW)),
            fetches: RefCell::new(FuturesUnordered::new()),
            broken: RefCell::new(None),
        })
    }

    /// Connects to `addr` on `worker`.
    pub fn connect(
        worker: &Rc<Worker>,
        addr: SocketAddr,
        errors: ErrorHandling,
    ) -> Result<FrameConn> {
        Self::new(Endpoint::connect(worker, addr, errors)?)
    }

    /// The underlying endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The peer's address, when known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.endpoint.peer()
    }

    /// The error that makes this connection unusable (peer gone or protocol error), if any.
    pub fn error(&self) -> Option<FlightError> {
        self.broken
            .borrow()
            .clone()
            .or_else(|| self.endpoint.error().map(FlightError::from))
    }

    /// Sends one frame whose body is the concatenation of `segments` (scatter-gather, no copy).
    /// The frame is numbered and started before this returns, so frames go out in call order;
    /// the future completes when UCX is done with the segments.
    pub fn send(
        &self,
        frame_type: FrameType,
        segments: Vec<Bytes>,
    ) -> impl Future<Output = Result<()>> + 'static {
        let (size, pieces) = wire_segments(segments);
        let started = FrameHeader::new(frame_type, self.send_counter.get(), size).map(|header| {
            self.send_counter
                .set(self.send_counter.get().wrapping_add(1));
            let header = Bytes::copy_from_slice(&header.encode());
            self.endpoint.am_send(AM_ID, header, pieces)
        });
        async move { Ok(started?.await?) }
    }

    /// The next frame in counter order. Fails with UNAVAILABLE when the connection is lost and with
    /// INVALID_ARGUMENT (also for every later call) when the peer broke the framing.
    pub async fn recv(&self) -> Result<Frame> {
        loop {
            if let Some(error) = self.broken.borrow().clone() {
                return Err(error);
            }
            if let Some(frame) = self.reorder.borrow_mut().pop() {
                return Ok(frame);
            }
            // Every message already queued is taken before waiting, so the failure of the
            // endpoint is reported only after the frames that arrived before it.
            if let Some(message) = self.stream.try_recv() {
                self.accept(message)?;
                continue;
            }
            let has_fetches = !self.fetches.borrow().is_empty();
            let fetched = async {
                if has_fetches {
                    // polled only through the RefCell for the duration of one poll
                    futures::future::poll_fn(|cx| self.fetches.borrow_mut().poll_next_unpin(cx))
                        .await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                message = self.stream.recv() => self.accept(message)?,
                done = fetched => match done {
                    Some(Ok(frame)) => self.store(frame)?,
                    Some(Err(error)) => return Err(self.break_with(error)),
                    None => {}
                },
                error = self.endpoint.failed() => {
                    if self.stream.pending() == 0 {
                        return Err(error.into());
                    }
                }
            }
        }
    }

    /// Validates one active message as a frame and stores it (or starts fetching its body).
    fn accept(&self, message: AmMessage) -> Result<()> {
        let header = match FrameHeader::decode(&message.header) {
            Ok(header) => header,
            Err(error) => return Err(self.break_with(error)),
        };
        if let Err(error) = self.reorder.borrow().check(header.counter) {
            return Err(self.break_with(error));
        }
        let size = header.size as usize;
        let available = message.data.len();
        if available < size {
            return Err(self.break_with(FlightError::invalid_argument(format!(
                "UCX frame {} declares {size} body bytes but carries {available}",
                header.counter
            ))));
        }
        match message.data {
            AmData::Ready(bytes) => {
                let frame = Frame::from_parts(header, bytes).map_err(|e| self.break_with(e))?;
                self.store(frame)
            }
            AmData::Rndv(rndv) => {
                // Fetch exactly what UCX says is there, and no more than the frame can use (the
                // body, or the one filler byte of an empty body): never allocate a size that only
                // the peer claims.
                if rndv.len() > size.max(1) {
                    return Err(self.break_with(FlightError::invalid_argument(format!(
                        "UCX frame {} carries {} bytes for a {size}-byte body",
                        header.counter,
                        rndv.len()
                    ))));
                }
                let fetch: Fetch = Box::pin(async move {
                    let bytes = rndv.receive().await?;
                    Frame::from_parts(header, bytes)
                });
                self.fetches.borrow_mut().push(fetch);
                Ok(())
            }
        }
    }

    fn store(&self, frame: Frame) -> Result<()> {
        let counter = frame.counter;
        self.reorder
            .borrow_mut()
            .insert(counter, frame)
            .map_err(|e| self.break_with(e))
    }

    fn break_with(&self, error: FlightError) -> FlightError {
        tracing::warn!(%error, peer = ?self.peer(), "UCX connection broken");
        self.broken.borrow_mut().get_or_insert(error).clone()
    }

    /// Sends a Disconnect frame (client side), waits briefly for it to go out, and closes.
    pub async fn disconnect(self, timeout: Duration) {
        if self.error().is_none() {
            let sent = self.send(FrameType::Disconnect, Vec::new());
            if let Ok(Err(e)) = tokio::time::timeout(timeout, sent).await {
                tracing::debug!(error = %e, "sending UCX Disconnect");
            }
        }
        self.close(timeout).await;
    }

    /// Closes the endpoint (gracefully unless it failed), waiting at most `timeout`.
    pub async fn close(self, timeout: Duration) {
        let FrameConn {
            endpoint,
            stream,
            fetches,
            ..
        } = self;
        // pending fetches hold buffers UCX writes into; they own them until UCX completes or
        // cancels them, so dropping the futures here is safe
        drop(fetches);
        endpoint.close(timeout).await;
        drop(stream);
    }
}

#[cfg(test)]
mod tests;
