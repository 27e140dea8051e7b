//! A Flight frame connection: one endpoint on one worker, speaking the frames of [`crate::frame`].
//!
//! Sending numbers the frames (one counter per direction, from 0, never reset, wrapping) and applies
//! the empty-body rule; the AM data goes out scatter-gather straight from the caller's segments.
//! Receiving validates each active message as a frame, fetches rendezvous bodies into 64-byte
//! aligned buffers (several at once, so a large body does not hold up the frames behind it), and
//! hands frames out strictly in counter order. A connection is used by one call at a time, so
//! there is one receiver; it is `!Send` and lives on the worker's thread.
//!
//! What a connection holds of received frames — eager data queued, frames waiting for an earlier
//! counter, rendezvous bodies being fetched — counts against the worker's receive budget until
//! [`FrameConn::recv`] hands the frame out. While the budget is spent the worker stops
//! progressing (see `ucp::budget`), and rendezvous bodies are fetched only when they fit, or when
//! theirs is the next frame to hand out (so a reader never waits on a frame it cannot fetch).

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use polyflight_core::{FlightError, Result};

mod gather;

use crate::frame::{wire_segments, Frame, FrameHeader, FrameType, Reorder, AM_ID};
use crate::log;
use crate::ucp::{
    AmData, AmMessage, AmStream, Endpoint, ErrorHandling, Held, ReceiveBudget, Refusal, RndvData,
    Worker,
};

/// How far ahead of the next expected counter a frame may be (frames held for reordering).
pub const REORDER_WINDOW: u32 = 1024;

type Fetch = Pin<Box<dyn Future<Output = Result<Received>>>>;

/// A frame that arrived, with what it holds of the receive budget until it is handed out.
struct Received {
    frame: Frame,
    _held: Option<Held>,
}

/// A frame connection over one UCX endpoint.
pub struct FrameConn {
    endpoint: Endpoint,
    stream: AmStream,
    send_counter: Cell<u32>,
    reorder: RefCell<Reorder<Received>>,
    /// Rendezvous bodies being fetched.
    fetches: RefCell<FuturesUnordered<Fetch>>,
    /// Rendezvous bodies not fetched yet for want of room in the receive budget (the data stays
    /// with the sender).
    deferred: RefCell<VecDeque<(FrameHeader, RndvData)>>,
    /// The worker's receive budget.
    budget: Rc<ReceiveBudget>,
    /// Set once a protocol error was seen: the connection is unusable.
    broken: RefCell<Option<FlightError>>,
    /// The largest frame body accepted (the side's message-size limit).
    max_frame: Cell<usize>,
    /// Whether the endpoint has a single-copy rendezvous lane (see [`gather::SingleCopy`]).
    single_copy: gather::SingleCopy,
    /// Large sends of this connection still in flight, counted among the process's senders.
    sending: Rc<gather::Sending>,
}

impl FrameConn {
    /// Wraps a fresh endpoint (frames counted from 0). Registers the Flight AM handler on the
    /// endpoint's worker, so a worker carries one frame connection.
    pub fn new(endpoint: Endpoint) -> Result<FrameConn> {
        let stream = AmStream::new(endpoint.worker(), AM_ID)?;
        let budget = endpoint.worker().receive_budget().clone();
        Ok(FrameConn {
            endpoint,
            stream,
            send_counter: Cell::new(0),
            reorder: RefCell::new(Reorder::new(REORDER_WINDOW)),
            fetches: RefCell::new(FuturesUnordered::new()),
            deferred: RefCell::new(VecDeque::new()),
            budget,
            broken: RefCell::new(None),
            max_frame: Cell::new(usize::MAX),
            single_copy: gather::SingleCopy::default(),
            sending: Rc::new(gather::Sending::default()),
        })
    }

    /// Refuses frames whose body is over `max` bytes (`max_decoding_message_size`: no part of a
    /// message can be larger than the message), before their data is fetched or kept; such a
    /// frame breaks the connection with INVALID_ARGUMENT.
    pub fn with_max_frame_size(self, max: usize) -> FrameConn {
        self.max_frame.set(max);
        // eager data longer than any acceptable frame (an empty body travels as one byte) is not
        // even copied
        self.stream.set_max_data(max.max(1));
        self
    }

    /// Bounds the bytes of received frames this connection holds before they are handed out
    /// (see the module doc); at most this plus one frame.
    pub fn with_receive_budget(self, bytes: usize) -> FrameConn {
        self.budget.set_limit(bytes);
        self
    }

    /// The receive budget of this connection (its worker's).
    pub fn receive_budget(&self) -> &Rc<ReceiveBudget> {
        &self.budget
    }

    /// Gives up what the connection holds and everything that still arrives: the connection is
    /// not read any more (it is closing), so the sends that end the call can go on.
    pub fn discard_received(&self) {
        self.stream.discard();
        self.deferred.borrow_mut().clear();
        *self.reorder.borrow_mut() = Reorder::new(REORDER_WINDOW);
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

    /// Sends one frame whose body is the concatenation of `segments` (scatter-gather, no copy,
    /// unless [`gather`] decides that one copy into a contiguous buffer is the cheaper way).
    /// The frame is numbered and started before this returns, so frames go out in call order;
    /// the future completes when UCX is done with the segments.
    pub fn send(
        &self,
        frame_type: FrameType,
        segments: Vec<Bytes>,
    ) -> impl Future<Output = Result<()>> + 'static {
        let (size, mut pieces) = wire_segments(segments);
        let in_flight = (size >= gather::MIN_BODY).then(|| self.sending.start());
        if gather::worthwhile(pieces.len(), size, || self.single_copy.get(&self.endpoint)) {
            pieces = vec![gather::contiguous(&pieces, size)];
        }
        let started = FrameHeader::new(frame_type, self.send_counter.get(), size).map(|header| {
            self.send_counter
                .set(self.send_counter.get().wrapping_add(1));
            let header = Bytes::copy_from_slice(&header.encode());
            self.endpoint.am_send(AM_ID, header, pieces)
        });
        async move {
            let result = started?.await;
            drop(in_flight);
            Ok(result?)
        }
    }

    /// The next frame in counter order. Fails with UNAVAILABLE when the connection is lost and with
    /// INVALID_ARGUMENT (also for every later call) when the peer broke the framing.
    pub async fn recv(&self) -> Result<Frame> {
        loop {
            if let Some(error) = self.broken.borrow().clone() {
                return Err(error);
            }
            let popped = self.reorder.borrow_mut().pop();
            if let Some(received) = popped {
                // its share of the budget is given back here (the token drops)
                return Ok(received.frame);
            }
            self.start_deferred();
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
                    Some(Ok(received)) => self.store(received)?,
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
        // the peer has answered, so the endpoint's lanes are settled
        self.single_copy.settled();
        let header = match FrameHeader::decode(&message.header) {
            Ok(header) => header,
            Err(error) => return Err(self.break_with(error)),
        };
        let in_window = self.reorder.borrow().check(header.counter);
        if let Err(error) = in_window {
            return Err(self.break_with(error));
        }
        let size = header.size as usize;
        if size > self.max_frame.get() {
            // dropping the message releases its data (a rendezvous body is never fetched)
            return Err(self.break_with(FlightError::invalid_argument(format!(
                "UCX frame {} of {size} bytes exceeds the message limit of {} bytes",
                header.counter,
                self.max_frame.get()
            ))));
        }
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
                self.store(Received {
                    frame,
                    _held: message.held,
                })
            }
            AmData::Refused(Refusal::TooLong { length }) => {
                Err(self.break_with(FlightError::invalid_argument(format!(
                    "UCX frame {} carries {length} bytes, over the message limit of {} bytes",
                    header.counter,
                    self.max_frame.get()
                ))))
            }
            AmData::Refused(Refusal::OverBudget { length, limit }) => {
                log::limit_reached(
                    "UCX receive budget",
                    &self.peer(),
                    format_args!(
                        "a peer went on sending while its connection's receive budget of \
                         {limit} bytes and as much again were spent; breaking the connection"
                    ),
                );
                Err(self.break_with(budget_spent(
                    limit,
                    format_args!("frame {} of {length} bytes arrived over it", header.counter),
                )))
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
                if self.may_fetch(header.counter, rndv.len()) {
                    self.fetch(header, rndv);
                } else {
                    self.deferred.borrow_mut().push_back((header, rndv));
                }
                Ok(())
            }
        }
    }

    /// Whether a rendezvous body of `len` bytes may be fetched now: it fits the budget, or it
    /// belongs to the next frame to hand out, without which nothing is released.
    fn may_fetch(&self, counter: u32, len: usize) -> bool {
        counter == self.reorder.borrow().next() || self.budget.has_room(len)
    }

    /// Starts fetching a rendezvous body, counted against the budget from now on.
    fn fetch(&self, header: FrameHeader, rndv: RndvData) {
        let held = self.budget.charge(rndv.len());
        let fetching = self.budget.fetching(rndv.len());
        let fetch: Fetch = Box::pin(async move {
            let bytes = rndv.receive().await;
            drop(fetching);
            let frame = Frame::from_parts(header, bytes?)?;
            Ok(Received {
                frame,
                _held: Some(held),
            })
        });
        self.fetches.borrow_mut().push(fetch);
    }

    /// Starts the deferred fetches that may go now, in arrival order.
    fn start_deferred(&self) {
        loop {
            let next = {
                let mut deferred = self.deferred.borrow_mut();
                match deferred.front() {
                    Some((header, rndv)) if self.may_fetch(header.counter, rndv.len()) => {
                        deferred.pop_front()
                    }
                    // the frame that unblocks the rest may be further back
                    Some(_) => {
                        let next = self.reorder.borrow().next();
                        let position = deferred.iter().position(|(h, _)| h.counter == next);
                        position.and_then(|i| deferred.remove(i))
                    }
                    None => None,
                }
            };
            match next {
                Some((header, rndv)) => self.fetch(header, rndv),
                None => return,
            }
        }
    }

    fn store(&self, received: Received) -> Result<()> {
        let counter = received.frame.counter;
        let inserted = self.reorder.borrow_mut().insert(counter, received);
        inserted.map_err(|e| self.break_with(e))
    }

    fn break_with(&self, error: FlightError) -> FlightError {
        log::refused_input(
            "UCX connection broken",
            &self.peer(),
            format_args!("UCX connection broken: {error}"),
        );
        // nothing more is read from a broken connection: what it holds is given back, and what
        // still arrives is dropped
        self.discard_received();
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
            deferred,
            ..
        } = self;
        // unfetched rendezvous descriptors are released (the senders' requests complete)
        drop(deferred);
        // pending fetches hold buffers UCX writes into; they own them until UCX completes or
        // cancels them, so dropping the futures here is safe
        drop(fetches);
        endpoint.close(timeout).await;
        drop(stream);
    }
}

/// The error of a call refused because its connection's receive budget is spent; UNAVAILABLE,
/// as the gRPC transport's request budget answers (the client may retry later).
pub fn budget_spent(limit: usize, detail: std::fmt::Arguments<'_>) -> FlightError {
    FlightError::unavailable(format!(
        "the receive budget of this UCX connection ({limit} bytes) is spent: {detail}; retry \
         later"
    ))
}

#[cfg(test)]
mod tests;
