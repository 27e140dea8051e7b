//! HTTP/2 bodies of gRPC calls, both directions, shaped like tonic's codec: [`EncodeBody`] is an
//! `http_body::Body` that frames a stream of seam messages (then, for a response, the status
//! trailers), and [`DecodeBody`] is a `Stream` of messages read from a received body by an
//! explicit state machine. What a body is for is an enum ([`Role`], [`Direction`]), not a flag.

use crate::budget::StreamBudget;
use crate::tail::RequestTail;
use crate::wire::{self, MessageDecoder, SegmentedBuf};
use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;
use http_body::{Body, Frame};
use polyflight_core::{FlightError, FlightMethod, Message, MessageStream, Result, Trailers};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Error type of our outgoing bodies; an error aborts the HTTP/2 stream (RST_STREAM).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Pieces smaller than this are gathered into one buffer before they are handed to HTTP/2, so a
/// batch with many small buffers (and their padding) does not become hundreds of tiny DATA
/// frames. Larger pieces — the column data — go out as they are, uncopied.
const COALESCE_BELOW: usize = 16 * 1024;

/// Which end of a call an outgoing body belongs to: this decides how it ends.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    /// A request: it ends when the messages do, and an `Err` from the message stream aborts the
    /// HTTP/2 stream, so the server cannot mistake it for a clean end.
    Client,
    /// A request that carries one message (every call but Handshake, DoPut and DoExchange): the
    /// message's last DATA frame carries END_STREAM, so the server sees the request end with the
    /// message. With END_STREAM in a frame of its own, a server that answers first has to reset
    /// the stream, and h2 servers close a connection (GOAWAY `ENHANCE_YOUR_CALM`) after 1024 such
    /// resets provoked by late frames.
    ClientOneMessage,
    /// A response: it ends with the status trailers (plus the application's trailers), and an
    /// `Err` from the message stream becomes that status.
    Server {
        /// The application's trailers, read when the status goes out.
        trailers: Trailers,
    },
}

enum EncodeState {
    /// Messages still come; `pending` holds the body frames of the last one.
    Streaming {
        messages: MessageStream,
        pending: VecDeque<Bytes>,
        /// The message in `pending` is the last one ([`Role::ClientOneMessage`]).
        last: bool,
    },
    /// The messages ended, with this status; a response waits for the end of its request
    /// ([`RequestTail`]) before the trailers.
    Ending(Result<()>),
    /// Nothing more to send.
    Done,
}

/// An outgoing body: seam messages framed as gRPC messages, then (for a response) the status.
///
/// The trailers-only form ([`EncodeBody::empty`]) reports itself ended, so an error before any
/// message goes out as one HEADERS frame carrying END_STREAM, as gRPC requires: an empty DATA
/// frame after it makes gRPC C++ clients fail with a protocol error instead of the real status.
pub(crate) struct EncodeBody {
    role: Role,
    max_message_size: usize,
    state: EncodeState,
    /// The unread end of the request this body answers.
    request_tail: Option<RequestTail>,
}

impl EncodeBody {
    /// A body sending `messages` in the given role, refusing messages over `max_message_size`.
    pub(crate) fn new(messages: MessageStream, role: Role, max_message_size: usize) -> Self {
        EncodeBody {
            role,
            max_message_size,
            state: EncodeState::Streaming {
                messages,
                pending: VecDeque::new(),
                last: false,
            },
            request_tail: None,
        }
    }

    /// A response that sends its trailers only once the client has ended `request` (or a short
    /// wait is over), so the stream closes on both sides without a reset.
    pub(crate) fn after_request(mut self, request: RequestTail) -> Self {
        self.request_tail = Some(request);
        self
    }

    /// A body with no frames at all.
    pub(crate) fn empty() -> Self {
        EncodeBody {
            role: Role::Client,
            max_message_size: 0,
            state: EncodeState::Done,
            request_tail: None,
        }
    }

    /// What follows the last message (or an error) in this body's role.
    fn finish(
        &mut self,
        status: Result<()>,
    ) -> Option<std::result::Result<Frame<Bytes>, BoxError>> {
        match (&self.role, status) {
            (Role::Server { trailers }, status) => {
                self.state = EncodeState::Done;
                Some(Ok(Frame::trailers(final_trailers(&status, trailers))))
            }
            (Role::Client | Role::ClientOneMessage, Ok(())) => {
                self.state = EncodeState::Done;
                None
            }
            (Role::Client | Role::ClientOneMessage, Err(err)) => {
                self.state = EncodeState::Done;
                Some(Err(Box::new(err)))
            }
        }
    }
}

impl Body for EncodeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                EncodeState::Done => return Poll::Ready(None),
                EncodeState::Streaming {
                    messages,
                    pending,
                    last,
                } => {
                    if let Some(chunk) = pending.pop_front() {
                        if *last && pending.is_empty() {
                            // hyper asks is_end_stream() right after this frame: END_STREAM
                            // goes on it.
                            this.state = EncodeState::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    if *last {
                        this.state = EncodeState::Ending(Ok(()));
                        continue;
                    }
                    let encoded = match ready!(messages.as_mut().poll_next(cx)) {
                        Some(Ok(message)) => wire::encode(&message, this.max_message_size),
                        Some(Err(err)) => Err(err),
                        None => {
                            this.state = EncodeState::Ending(Ok(()));
                            continue;
                        }
                    };
                    match encoded {
                        Ok(pieces) => {
                            pending.extend(coalesce(pieces));
                            *last = matches!(this.role, Role::ClientOneMessage);
                        }
                        Err(err) => this.state = EncodeState::Ending(Err(err)),
                    }
                }
                EncodeState::Ending(_) => {
                    if let Some(request) = this.request_tail.as_mut() {
                        ready!(request.poll_end(cx));
                        this.request_tail = None;
                    }
                    let status = match std::mem::replace(&mut this.state, EncodeState::Done) {
                        EncodeState::Ending(status) => status,
                        _ => Ok(()),
                    };
                    return Poll::Ready(this.finish(status));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, EncodeState::Done)
    }
}

/// Turns one encoded message (a list of pieces) into body frames, coalescing small pieces.
fn coalesce(pieces: Vec<Bytes>) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut small = BytesMut::new();
    for piece in pieces {
        if piece.len() < COALESCE_BELOW {
            small.extend_from_slice(&piece);
            if small.len() >= COALESCE_BELOW {
                out.push(small.split().freeze());
            }
        } else {
            if !small.is_empty() {
                out.push(small.split().freeze());
            }
            out.push(piece);
        }
    }
    if !small.is_empty() {
        out.push(small.freeze());
    }
    out
}

/// The status trailers plus the application's own (which may not override the status keys).
fn final_trailers(status: &Result<()>, extra: &Trailers) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    if let Err(err) = wire::headers_to_http(&extra.get(), &mut map) {
        tracing::warn!(error = %err, "dropping invalid response trailers");
        map.clear();
    }
    for (key, value) in wire::status_headers(status) {
        if let Some(key) = key {
            map.insert(key, value);
        }
    }
    map
}

/// Which way a received body travels: this decides how its end and its errors read.
#[derive(Debug, Clone)]
pub(crate) enum Direction {
    /// A request body on the server: it ends without a status, and a broken body means the client
    /// aborted the call (`CANCELLED`).
    Request,
    /// A response body on the client: the trailers' status ends it (OK cleanly, an error as the
    /// last item), a body that ends without one is an error, and a broken body means the
    /// connection broke (`UNAVAILABLE`). The trailers are stored in `trailers`.
    Response {
        /// Filled with the received trailers before the end is yielded.
        trailers: Trailers,
    },
}

/// What the messages of a body are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// Protobuf messages, handed on as their bytes.
    Proto,
    /// FlightData, parsed here so its body lands in one aligned buffer.
    FlightData,
}

impl Payload {
    /// What the requests of `method` are.
    pub(crate) fn requests_of(method: FlightMethod) -> Payload {
        if method.request_is_data() {
            Payload::FlightData
        } else {
            Payload::Proto
        }
    }

    /// What the responses of `method` are.
    pub(crate) fn responses_of(method: FlightMethod) -> Payload {
        if method.response_is_data() {
            Payload::FlightData
        } else {
            Payload::Proto
        }
    }

    fn message(self, buf: SegmentedBuf) -> Result<Message> {
        match self {
            Payload::FlightData => wire::decode_flight_data(buf).map(Message::Data),
            Payload::Proto => {
                let mut buf = buf;
                let len = buf.remaining();
                Ok(Message::Proto(buf.copy_to_bytes(len)))
            }
        }
    }
}

enum DecodeState {
    /// Reading body frames; complete messages are yielded as they are cut out.
    ReadBody,
    /// The end (or an error) has been yielded.
    Done,
}

/// A received body read as a stream of messages.
pub(crate) struct DecodeBody<B> {
    body: B,
    decoder: MessageDecoder,
    payload: Payload,
    direction: Direction,
    state: DecodeState,
    /// Bytes of unfinished messages count against this (requests on a server).
    budget: Option<StreamBudget>,
    /// A received chunk waiting for room in the budget; nothing more is read meanwhile.
    waiting: Option<Bytes>,
}

impl<B> DecodeBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    /// Reads `body` as messages of `payload`, refusing messages over `max_message_size`.
    pub(crate) fn new(
        body: B,
        payload: Payload,
        direction: Direction,
        max_message_size: usize,
    ) -> Self {
        DecodeBody {
            body,
            decoder: MessageDecoder::new(max_message_size),
            payload,
            direction,
            state: DecodeState::ReadBody,
            budget: None,
            waiting: None,
        }
    }

    /// Counts the bytes of unfinished messages against `budget`; a message larger than the
    /// budget could ever hold is refused as soon as its length is read.
    pub(crate) fn with_budget(mut self, budget: StreamBudget, max_message_size: usize) -> Self {
        self.decoder = MessageDecoder::new(max_message_size.min(budget.largest_message()));
        self.budget = Some(budget);
        self
    }

    /// Ends the stream: `Some(err)` is yielded as its last item.
    fn end(&mut self, outcome: Result<()>) -> Poll<Option<Result<Message>>> {
        self.state = DecodeState::Done;
        Poll::Ready(outcome.err().map(Err))
    }

    /// The outcome of a body that ended with these trailers (or none).
    fn outcome(&self, trailers: Option<&http::HeaderMap>) -> Result<()> {
        self.decoder.finish()?;
        match (
            &self.direction,
            trailers.and_then(wire::status_from_headers),
        ) {
            (_, Some(status)) => status,
            (Direction::Request, None) => Ok(()),
            (Direction::Response { .. }, None) if trailers.is_some() => Err(FlightError::internal(
                "gRPC response trailers carried no grpc-status",
            )),
            (Direction::Response { .. }, None) => Err(FlightError::unavailable(
                "gRPC response ended without a status (connection lost?)",
            )),
        }
    }

    fn broken(&self, err: impl std::fmt::Display) -> FlightError {
        match self.direction {
            Direction::Request => {
                FlightError::cancelled(format!("the client aborted the call: {err}"))
            }
            Direction::Response { .. } => {
                FlightError::unavailable(format!("the call's stream broke: {err}"))
            }
        }
    }
}

impl<B> Stream for DecodeBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let DecodeState::Done = this.state {
                return Poll::Ready(None);
            }
            if let (Some(chunk), Some(budget)) = (this.waiting.take(), this.budget.as_mut()) {
                match budget.poll_take(cx, chunk.len()) {
                    Poll::Ready(Ok(())) => this.decoder.push(chunk),
                    Poll::Ready(Err(err)) => return this.end(Err(err)),
                    Poll::Pending => {
                        this.waiting = Some(chunk);
                        return Poll::Pending;
                    }
                }
            }
            match this.decoder.next_message() {
                Ok(Some(buf)) => {
                    if let Some(budget) = this.budget.as_mut() {
                        budget.give_back(wire::PREFIX_LEN + buf.remaining());
                    }
                    match this.payload.message(buf) {
                        Ok(message) => return Poll::Ready(Some(Ok(message))),
                        Err(err) => return this.end(Err(err)),
                    }
                }
                Ok(None) => {}
                Err(err) => return this.end(Err(err)),
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if this.budget.is_some() => this.waiting = Some(data),
                    Ok(data) => this.decoder.push(data),
                    Err(frame) => {
                        let trailers = frame.into_trailers().ok();
                        if let (Direction::Response { trailers: sink }, Some(map)) =
                            (&this.direction, &trailers)
                        {
                            sink.extend(wire::headers_from_http(map));
                        }
                        let outcome = this.outcome(trailers.as_ref());
                        return this.end(outcome);
                    }
                },
                Some(Err(err)) => {
                    let err = this.broken(err);
                    return this.end(Err(err));
                }
                None => {
                    let outcome = this.outcome(None);
                    return this.end(outcome);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{StreamExt, TryStreamExt};
    use http_body_util::{BodyExt, StreamBody};
    use polyflight_core::{FlightCode, FlightData};

    fn frames_of(body: EncodeBody) -> Vec<Frame<Bytes>> {
        futures::executor::block_on(async {
            let mut body = body;
            let mut out = Vec::new();
            while let Some(frame) = body.frame().await {
                out.push(frame.expect("frame"));
            }
            out
        })
    }

    fn messages(items: Vec<Result<Message>>) -> MessageStream {
        futures::stream::iter(items).boxed()
    }

    #[test]
    fn a_one_message_request_ends_with_its_messages_last_frame() {
        // Big enough to go out in several frames: END_STREAM belongs on the last of them.
        let big = Bytes::from(vec![7u8; 3 * COALESCE_BELOW]);
        let one = |role: Role| {
            EncodeBody::new(
                messages(vec![Ok(Message::Proto(big.clone()))]),
                role,
                1 << 20,
            )
        };
        let mut body = one(Role::ClientOneMessage);
        let mut frames = 0;
        futures::executor::block_on(async {
            while let Some(frame) = body.frame().await {
                assert!(frame.expect("frame").is_data());
                frames += 1;
                // hyper reads is_end_stream() after each frame to set END_STREAM on it
                if body.is_end_stream() {
                    break;
                }
            }
        });
        assert!(frames >= 2, "{frames} frames");
        assert!(body.is_end_stream());
        assert!(futures::executor::block_on(body.frame()).is_none());
        // a streaming request learns of its end only by polling once more
        let mut streaming = one(Role::Client);
        for _ in 0..frames {
            let frame = futures::executor::block_on(streaming.frame());
            assert!(frame.expect("a frame").expect("data").is_data());
        }
        assert!(!streaming.is_end_stream());
        assert!(futures::executor::block_on(streaming.frame()).is_none());
        assert!(streaming.is_end_stream());
    }

    #[test]
    fn a_response_ends_with_the_status_and_the_applications_trailers() {
        let trailers = Trailers::default();
        trailers.extend(polyflight_core::Headers::new().with("x-extra", "1"));
        let body = EncodeBody::new(
            messages(vec![Ok(Message::Proto(Bytes::from_static(b"abc")))]),
            Role::Server { trailers },
            1024,
        );
        let frames = frames_of(body);
        assert_eq!(frames.len(), 2);
        let data = frames[0].data_ref().expect("data frame");
        assert_eq!(data.as_ref(), b"\0\0\0\0\x03abc");
        let map = frames[1].trailers_ref().expect("trailers");
        assert_eq!(map["grpc-status"], "0");
        assert_eq!(map["x-extra"], "1");
    }

    #[test]
    fn an_error_in_a_response_is_its_status_and_in_a_request_aborts_it() {
        let err = FlightError::not_found("gone");
        let response = EncodeBody::new(
            messages(vec![Err(err.clone())]),
            Role::Server {
                trailers: Trailers::default(),
            },
            1024,
        );
        let frames = frames_of(response);
        let map = frames[0].trailers_ref().expect("trailers");
        assert_eq!(map["grpc-status"], "5");

        let mut request = EncodeBody::new(messages(vec![Err(err)]), Role::Client, 1024);
        let first = futures::executor::block_on(request.frame());
        assert!(matches!(first, Some(Err(_))));
        assert!(request.is_end_stream());
    }

    #[test]
    fn an_oversized_message_is_refused_before_it_is_sent() {
        let body = EncodeBody::new(
            messages(vec![Ok(Message::Proto(Bytes::from(vec![0u8; 100])))]),
            Role::Server {
                trailers: Trailers::default(),
            },
            10,
        );
        let frames = frames_of(body);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            frames[0].trailers_ref().expect("trailers")["grpc-status"],
            "3"
        );
    }

    #[test]
    fn the_empty_body_is_ended_from_the_start() {
        assert!(EncodeBody::empty().is_end_stream());
    }

    type Received = StreamBody<
        futures::stream::Iter<std::vec::IntoIter<std::result::Result<Frame<Bytes>, String>>>,
    >;

    fn received(frames: Vec<Frame<Bytes>>) -> Received {
        StreamBody::new(futures::stream::iter(
            frames.into_iter().map(Ok).collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn a_response_body_yields_messages_then_its_status() {
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", http::HeaderValue::from_static("5"));
        map.insert("grpc-message", http::HeaderValue::from_static("nope"));
        map.insert("x-t", http::HeaderValue::from_static("v"));
        let trailers = Trailers::default();
        let body = received(vec![
            Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi\0\0")),
            Frame::data(Bytes::from_static(b"\0\0\x01!")),
            Frame::trailers(map),
        ]);
        let stream = DecodeBody::new(
            body,
            Payload::Proto,
            Direction::Response {
                trailers: trailers.clone(),
            },
            1024,
        );
        let items: Vec<Result<Message>> = futures::executor::block_on(stream.collect());
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0].as_ref().unwrap(),
            &Message::Proto(Bytes::from_static(b"hi"))
        );
        assert_eq!(
            items[1].as_ref().unwrap(),
            &Message::Proto(Bytes::from_static(b"!"))
        );
        assert_eq!(items[2].as_ref().unwrap_err().code(), FlightCode::NotFound);
        assert_eq!(trailers.get().get_str("x-t"), Some("v"));
    }

    #[test]
    fn a_response_without_a_status_is_an_error_and_a_request_is_not() {
        let body = received(vec![]);
        let stream = DecodeBody::new(
            body,
            Payload::Proto,
            Direction::Response {
                trailers: Trailers::default(),
            },
            1024,
        );
        let items: Vec<Result<Message>> = futures::executor::block_on(stream.collect());
        assert_eq!(
            items[0].as_ref().unwrap_err().code(),
            FlightCode::Unavailable
        );

        let request = DecodeBody::new(received(vec![]), Payload::Proto, Direction::Request, 1024);
        let items: Vec<Message> = futures::executor::block_on(request.try_collect()).unwrap();
        assert!(items.is_empty());
    }

    #[test]
    fn a_request_cut_inside_a_message_is_invalid_argument() {
        let body = received(vec![Frame::data(Bytes::from_static(b"\0\0\0\0\x09abc"))]);
        let stream = DecodeBody::new(body, Payload::FlightData, Direction::Request, 1024);
        let items: Vec<Result<Message>> = futures::executor::block_on(stream.collect());
        assert_eq!(
            items[0].as_ref().unwrap_err().code(),
            FlightCode::InvalidArgument
        );
    }

    #[test]
    fn flight_data_round_trips_through_both_bodies() {
        let data = FlightData {
            data_header: Bytes::from_static(b"header"),
            app_metadata: Bytes::from_static(b"meta"),
            data_body: Bytes::from(vec![7u8; 40_000]).into(),
            ..Default::default()
        };
        let encoded = frames_of(EncodeBody::new(
            messages(vec![Ok(Message::Data(data.clone()))]),
            Role::Client,
            1 << 20,
        ));
        let stream = DecodeBody::new(
            received(encoded),
            Payload::FlightData,
            Direction::Request,
            1 << 20,
        );
        let items: Vec<Message> = futures::executor::block_on(stream.try_collect()).unwrap();
        assert_eq!(items, vec![Message::Data(data)]);
    }
}
