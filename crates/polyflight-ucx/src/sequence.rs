//! UCX call sequencing: what each frame of a call means and what to send next, for the client
//! side ([`ClientCall`]) and the server side ([`ServerCall`], with [`idle_frame`] for the frames
//! between calls) of one call.
//!
//! This is the protocol logic of `spec/ucx-wire.md`'s call flows with no I/O, no async and no
//! clock, in the manner of quinn-proto: the code that drives UCX hands each machine what happened
//! (a frame arrived, the application sent a message, the application went away, the connection
//! failed) and takes back, in order, the frames to send ([`ClientCall::poll_transmit`]) and what
//! to tell the application ([`ClientCall::poll_event`]). At the end the machine says whether the
//! connection can carry another call. Everything is decided by the method's shape
//! ([`FlightMethod::client_streaming`], [`FlightMethod::server_streaming`],
//! [`FlightMethod::request_is_data`], [`FlightMethod::response_is_data`]) and two facts of the
//! Arrow C++ wire: ListActions sends no request frame, and DoPut's put results travel as Buffer
//! frames of the raw `app_metadata`.
//!
//! The rules, client side: the call starts with a Headers frame (`:method:`, `:polyflight: 1`,
//! the timeout, the call headers); each request message is one Buffer frame, or a PayloadHeader
//! [+ PayloadBody] for FlightData; a client-streaming call ends its writes with an empty Headers
//! frame, also when the status arrives while it is still writing (so the server's drain ends).
//! When the application drops the call, or its request stream fails, the client sends `:cancel:`
//! and the connection is not reused (an Arrow C++ server would read the frame as the next call).
//! Server side: the handler gets the requests as they come; a `:response-headers:` frame goes out
//! only to clients that announced `:polyflight:`; the status frame ends the call, after which a
//! client-streaming call is drained (frames read and dropped) until the client's end of writes or
//! `:cancel:`; `:cancel:` stops the handler and is answered with CANCELLED. A frame that breaks
//! the sequence is INVALID_ARGUMENT.

use bytes::Bytes;
use polyflight_core::proto::PutResult;
use polyflight_core::{
    CallMetadata, FlightCode, FlightError, FlightMethod, Headers, Message, Result,
};
use prost::Message as _;
use std::collections::VecDeque;
use std::time::Duration;

use crate::frame::{self, Frame, FrameType, HeaderPair, OutFrame, CANCEL_KEY, METHOD_KEY};
use crate::wire::{self, PayloadAssembler, CAPABILITIES_KEY, RESPONSE_HEADERS_KEY, TIMEOUT_KEY};

/// Which way the messages a [`MessageCodec`] handles travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to server.
    Requests,
    /// Server to client.
    Responses,
}

/// One direction of a call's messages ⇄ frames.
#[derive(Debug)]
struct MessageCodec {
    method: FlightMethod,
    /// FlightData (PayloadHeader [+ PayloadBody]) rather than protobuf messages (Buffer).
    data: bool,
    /// DoPut's responses: Buffer frames of the raw app_metadata rather than protobuf PutResults.
    raw_put_results: bool,
    assembler: PayloadAssembler,
}

impl MessageCodec {
    fn new(method: FlightMethod, direction: Direction) -> Self {
        let (data, raw_put_results) = match direction {
            Direction::Requests => (method.request_is_data(), false),
            Direction::Responses => (method.response_is_data(), method == FlightMethod::DoPut),
        };
        MessageCodec {
            method,
            data,
            raw_put_results,
            assembler: PayloadAssembler::default(),
        }
    }

    /// The frames that carry `message`.
    fn encode(&self, message: Message) -> Result<Vec<OutFrame>> {
        match message {
            Message::Proto(bytes) if !self.data => {
                let body = if self.raw_put_results {
                    PutResult::decode(bytes)
                        .map_err(|e| {
                            FlightError::invalid_argument(format!("malformed PutResult: {e}"))
                        })?
                        .app_metadata
                } else {
                    bytes
                };
                Ok(vec![OutFrame::new(FrameType::Buffer, vec![body])])
            }
            Message::Data(data) if self.data => wire::flight_data_frames(&data),
            Message::Proto(_) => Err(FlightError::invalid_argument(format!(
                "{}: a protobuf message where FlightData was expected",
                self.method
            ))),
            Message::Data(_) => Err(FlightError::invalid_argument(format!(
                "{}: FlightData where a protobuf message was expected",
                self.method
            ))),
        }
    }

    /// Feeds a Buffer, PayloadHeader or PayloadBody frame; returns the message once complete.
    fn decode(&mut self, frame: Frame) -> Result<Option<Message>> {
        match frame.frame_type {
            FrameType::Buffer if !self.data => {
                let bytes = if self.raw_put_results {
                    let result = PutResult {
                        app_metadata: frame.body,
                    };
                    Bytes::from(result.encode_to_vec())
                } else {
                    frame.body
                };
                Ok(Some(Message::Proto(bytes)))
            }
            FrameType::PayloadHeader | FrameType::PayloadBody if self.data => {
                Ok(self.assembler.push(frame)?.map(Message::Data))
            }
            FrameType::Buffer => Err(FlightError::invalid_argument(format!(
                "{}: a Buffer frame where FlightData was expected",
                self.method
            ))),
            other => Err(FlightError::invalid_argument(format!(
                "{}: unexpected {other:?} frame where a Buffer was expected",
                self.method
            ))),
        }
    }

    /// True while a PayloadHeader waits for its PayloadBody.
    fn expects_body(&self) -> bool {
        self.assembler.expects_body()
    }
}

/// The empty Headers frame: "the client is done writing".
fn end_of_writes() -> OutFrame {
    OutFrame::new(FrameType::Headers, vec![Bytes::from_static(&[0, 0, 0, 0])])
}

/// The `:cancel:` Headers frame.
fn cancel_frame() -> Result<OutFrame> {
    OutFrame::headers(&[(CANCEL_KEY, "")])
}

/// The status frame reporting `result`; a status that cannot be encoded (a trailer beyond the
/// wire's 4 GiB limits) is reported as INTERNAL without trailers.
fn status_out(result: &Result<()>, trailers: &Headers) -> OutFrame {
    let body = wire::status_frame(result, trailers).or_else(|error| {
        let fallback = FlightError::internal(format!("cannot encode the call's status: {error}"));
        wire::status_frame(&Err(fallback), &Headers::new())
    });
    match body {
        Ok(body) => OutFrame::new(FrameType::Headers, vec![body]),
        // a status without trailers always fits the wire; an empty status list still ends the call
        Err(_) => end_of_writes(),
    }
}

// ------------------------------------------------------------------------------------------------
// Client

/// What the client side of a call tells the application.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The response headers (extension; before any response message).
    Headers(Headers),
    /// One response message.
    Message(Message),
    /// The call's outcome and trailers; nothing follows.
    End(Result<()>, Headers),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientPhase {
    /// Waiting for responses and the status.
    Running,
    /// The status arrived.
    Finished,
    /// The application went away and `:cancel:` was sent.
    Cancelled,
    /// The connection or the framing broke.
    Failed,
}

/// The client side of one call.
#[derive(Debug)]
pub struct ClientCall {
    method: FlightMethod,
    requests: MessageCodec,
    responses: MessageCodec,
    phase: ClientPhase,
    /// The application's request stream is still being read.
    requests_open: bool,
    requests_sent: usize,
    /// The end of writes or `:cancel:` went out: no more frames for this call.
    writes_closed: bool,
    /// Response headers or a response message arrived.
    response_started: bool,
    responses_received: usize,
    /// The request stream failed with this error; it is the call's outcome.
    aborted: Option<FlightError>,
    /// A send on the connection failed, or the server may not have read all our frames.
    broken: bool,
    transmits: VecDeque<OutFrame>,
    events: VecDeque<ClientEvent>,
}

impl ClientCall {
    /// A call of `method`; queues its start Headers frame.
    pub fn new(method: FlightMethod, meta: &CallMetadata) -> Result<ClientCall> {
        let mut start: Vec<HeaderPair> = vec![
            (
                Bytes::from_static(METHOD_KEY.as_bytes()),
                Bytes::from_static(method.as_str().as_bytes()),
            ),
            (
                Bytes::from_static(CAPABILITIES_KEY.as_bytes()),
                Bytes::from_static(b"1"),
            ),
        ];
        if let Some(timeout) = meta.timeout {
            start.push((
                Bytes::from_static(TIMEOUT_KEY.as_bytes()),
                Bytes::from(wire::timeout_value(timeout)),
            ));
        }
        start.extend(wire::headers_to_pairs(&meta.headers));
        let mut call = ClientCall {
            method,
            requests: MessageCodec::new(method, Direction::Requests),
            responses: MessageCodec::new(method, Direction::Responses),
            phase: ClientPhase::Running,
            requests_open: true,
            requests_sent: 0,
            writes_closed: false,
            response_started: false,
            responses_received: 0,
            aborted: None,
            broken: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        call.transmits.push_back(OutFrame::headers(&start)?);
        Ok(call)
    }

    /// The next frame to send, in order.
    pub fn poll_transmit(&mut self) -> Option<OutFrame> {
        self.transmits.pop_front()
    }

    /// The next thing to tell the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Whether the application's next request message (or the end of its requests) is wanted.
    pub fn wants_requests(&self) -> bool {
        self.phase == ClientPhase::Running && self.requests_open && !self.writes_closed
    }

    /// Whether frames from the server are still expected.
    pub fn wants_frames(&self) -> bool {
        self.phase == ClientPhase::Running
    }

    /// True once the call has nothing more to send or report.
    pub fn is_over(&self) -> bool {
        self.phase != ClientPhase::Running && self.transmits.is_empty() && self.events.is_empty()
    }

    /// Whether the connection can carry another call: the status arrived, nothing was cancelled
    /// or aborted, and every send went through.
    pub fn reusable(&self) -> bool {
        self.phase == ClientPhase::Finished && self.aborted.is_none() && !self.broken
    }

    /// The application sends a request message.
    pub fn send_request(&mut self, message: Message) {
        if !self.wants_requests() {
            return;
        }
        if !self.method.client_streaming() && self.requests_sent > 0 {
            let error = FlightError::invalid_argument(format!(
                "{} takes exactly one request message",
                self.method
            ));
            return self.abort(error);
        }
        self.requests_sent += 1;
        if self.method == FlightMethod::ListActions && matches!(message, Message::Proto(_)) {
            // the Arrow C++ wire has no request frame for ListActions (its request is Empty)
            return;
        }
        match self.requests.encode(message) {
            Ok(frames) => self.transmits.extend(frames),
            Err(error) => self.abort(error),
        }
    }

    /// The application's request stream ended cleanly.
    pub fn requests_done(&mut self) {
        if !self.wants_requests() {
            return;
        }
        self.requests_open = false;
        if self.method.client_streaming() {
            self.close_writes();
        } else if self.requests_sent == 0 && self.method != FlightMethod::ListActions {
            let error = FlightError::invalid_argument(format!(
                "{}: the request stream ended without a request message",
                self.method
            ));
            self.abort(error);
        }
    }

    /// The application's request stream failed: the call is aborted with `error` (`:cancel:`
    /// goes out; the server's answer is replaced by `error`).
    pub fn requests_failed(&mut self, error: FlightError) {
        self.abort(error);
    }

    /// The application dropped the call: `:cancel:` goes out if the call is still running.
    pub fn cancel(&mut self) {
        self.events.clear();
        if self.phase == ClientPhase::Running {
            self.send_cancel();
            self.phase = ClientPhase::Cancelled;
        }
    }

    /// A frame from the server.
    pub fn handle_frame(&mut self, frame: Frame) {
        if self.phase != ClientPhase::Running {
            return;
        }
        match frame.frame_type {
            FrameType::Headers => match frame::decode_headers(&frame.body) {
                Ok(pairs) => self.handle_headers(pairs),
                Err(error) => self.fail(error),
            },
            FrameType::Disconnect => self.fail(FlightError::invalid_argument(
                "server sent a Disconnect frame",
            )),
            FrameType::Buffer | FrameType::PayloadHeader | FrameType::PayloadBody => {
                match self.responses.decode(frame) {
                    Ok(Some(message)) => self.handle_response(message),
                    Ok(None) => {}
                    Err(error) => self.fail(error),
                }
            }
        }
    }

    /// The connection failed (a receive or a send): the call ends with `error` if it is still
    /// running, and the connection is not reused.
    pub fn connection_failed(&mut self, error: FlightError) {
        self.broken = true;
        if self.phase == ClientPhase::Running {
            self.fail(error);
        }
    }

    fn handle_headers(&mut self, pairs: Vec<HeaderPair>) {
        let response_headers = pairs
            .first()
            .is_some_and(|(key, _)| key.as_ref() == RESPONSE_HEADERS_KEY.as_bytes());
        if response_headers {
            if self.response_started {
                return self.fail(FlightError::invalid_argument(
                    "response headers after the first response message",
                ));
            }
            self.response_started = true;
            self.events
                .push_back(ClientEvent::Headers(wire::pairs_to_headers(&pairs)));
            return;
        }
        match wire::status_from_headers(&pairs) {
            Some((result, trailers)) => self.finish(result, trailers),
            None => self.fail(FlightError::invalid_argument(
                "server sent a Headers frame without a status",
            )),
        }
    }

    fn handle_response(&mut self, message: Message) {
        if !self.method.server_streaming() && self.responses_received > 0 {
            return self.fail(FlightError::invalid_argument(format!(
                "{}: unexpected response frame",
                self.method
            )));
        }
        self.response_started = true;
        self.responses_received += 1;
        self.events.push_back(ClientEvent::Message(message));
    }

    fn finish(&mut self, result: Result<()>, trailers: Headers) {
        self.phase = ClientPhase::Finished;
        if matches!(&result, Err(e) if e.code() == FlightCode::Unimplemented) {
            // An Arrow C++ server answers a method it does not know (every extension method)
            // from the start frame alone and then reads our request frames as new calls: its
            // answers to those would be taken for the next call's. Do not reuse the connection.
            self.broken = true;
        }
        self.requests_open = false;
        if self.method.client_streaming() {
            // the server may have answered while we were still writing: end the writes, so its
            // drain ends and the connection starts the next call clean
            self.close_writes();
        }
        let result = match &self.aborted {
            Some(aborted) => Err(aborted.clone()),
            None => result,
        };
        self.events.push_back(ClientEvent::End(result, trailers));
    }

    fn fail(&mut self, error: FlightError) {
        self.phase = ClientPhase::Failed;
        self.requests_open = false;
        self.events
            .push_back(ClientEvent::End(Err(error), Headers::new()));
    }

    fn abort(&mut self, error: FlightError) {
        if self.phase != ClientPhase::Running {
            return;
        }
        self.requests_open = false;
        self.aborted.get_or_insert(error);
        self.send_cancel();
    }

    fn close_writes(&mut self) {
        if !self.writes_closed {
            self.writes_closed = true;
            self.transmits.push_back(end_of_writes());
        }
    }

    fn send_cancel(&mut self) {
        if self.writes_closed {
            return;
        }
        self.writes_closed = true;
        match cancel_frame() {
            Ok(frame) => self.transmits.push_back(frame),
            // cannot happen (a fixed, tiny frame); without it the call still ends locally
            Err(error) => tracing::debug!(%error, "encoding :cancel:"),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Server

/// A call as its start Headers frame announces it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStart {
    /// The method.
    pub method: FlightMethod,
    /// The call headers (our `:` keys removed).
    pub headers: Headers,
    /// The client's timeout, when it sent one.
    pub timeout: Option<Duration>,
    /// The client announced `:polyflight:` and understands the response-headers frame.
    pub capable: bool,
}

/// What a frame between calls means to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Idle {
    /// A call starts.
    Call(CallStart),
    /// A call of an unknown method: send this UNIMPLEMENTED status frame.
    Reject(OutFrame),
    /// A leftover of a call that ended (a late `:cancel:` or end of writes, request frames the
    /// server did not wait for): dropped.
    Skip,
    /// The connection ends: the client sent Disconnect (`None`), or a Headers frame that cannot
    /// be decoded (its error), after which the frames cannot be trusted.
    Close(Option<FlightError>),
}

/// What a frame received while no call is running means.
pub fn idle_frame(frame: &Frame) -> Idle {
    match frame.frame_type {
        FrameType::Disconnect => Idle::Close(None),
        FrameType::Headers => {
            let pairs = match frame::decode_headers(&frame.body) {
                Ok(pairs) => pairs,
                Err(error) => return Idle::Close(Some(error)),
            };
            let Some(name) = wire::header_text(&pairs, METHOD_KEY) else {
                return Idle::Skip;
            };
            match FlightMethod::from_name(&name) {
                Some(method) => Idle::Call(CallStart {
                    method,
                    headers: wire::pairs_to_headers(&pairs),
                    timeout: wire::header_text(&pairs, TIMEOUT_KEY)
                        .and_then(|v| wire::parse_timeout(&v)),
                    capable: wire::header_text(&pairs, CAPABILITIES_KEY).is_some(),
                }),
                None => {
                    let error =
                        FlightError::unimplemented(format!("unknown Flight method {name:?}"));
                    Idle::Reject(status_out(&Err(error), &Headers::new()))
                }
            }
        }
        FrameType::Buffer | FrameType::PayloadHeader | FrameType::PayloadBody => Idle::Skip,
    }
}

/// What the server side of a call tells the code that runs the handler.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// A request message for the handler.
    Request(Message),
    /// The handler's requests are complete: cleanly (`None`), or ended by this error, which must
    /// be the last item of its request stream.
    RequestsEnd(Option<FlightError>),
    /// Stop the handler: the call ended without it (cancelled, broken, shutting down).
    StopHandler,
}

/// Where the handler's requests stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerRequests {
    /// The one request message of a call that is not client-streaming is still to come.
    Expecting,
    /// A client-streaming call's requests are coming.
    Streaming,
    /// No more requests for the handler; frames of the call are dropped.
    Ended,
}

/// The server side of one call.
#[derive(Debug)]
pub struct ServerCall {
    method: FlightMethod,
    capable: bool,
    requests: MessageCodec,
    responses: MessageCodec,
    request_state: ServerRequests,
    /// The client ended its writes (empty Headers, `:cancel:`, or it went away).
    client_done: bool,
    response_headers_sent: bool,
    responses_sent: usize,
    /// The status went out (or the call was abandoned): the handler's output is dropped.
    ended: bool,
    /// The connection must close after this call.
    close: bool,
    transmits: VecDeque<OutFrame>,
    events: VecDeque<ServerEvent>,
}

impl ServerCall {
    /// The call that `start` announced.
    pub fn new(start: &CallStart) -> ServerCall {
        let method = start.method;
        let mut call = ServerCall {
            method,
            capable: start.capable,
            requests: MessageCodec::new(method, Direction::Requests),
            responses: MessageCodec::new(method, Direction::Responses),
            request_state: if method.client_streaming() {
                ServerRequests::Streaming
            } else {
                ServerRequests::Expecting
            },
            client_done: false,
            response_headers_sent: false,
            responses_sent: 0,
            ended: false,
            close: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        if method == FlightMethod::ListActions {
            // the Arrow C++ wire has no request frame for ListActions: its (Empty) request is
            // complete at once, and the core reads an absent one as empty
            call.end_requests(None);
        }
        call
    }

    /// The next frame to send, in order.
    pub fn poll_transmit(&mut self) -> Option<OutFrame> {
        self.transmits.pop_front()
    }

    /// The next thing for the code that runs the handler.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Whether frames from the client are still expected in this call: until it ends its writes
    /// or the status goes out, and after the status only to drain a client-streaming call.
    pub fn wants_frames(&self) -> bool {
        !self.close && !self.client_done && (!self.ended || self.method.client_streaming())
    }

    /// Whether the handler's output is still wanted.
    pub fn wants_responses(&self) -> bool {
        !self.ended
    }

    /// True once the call has ended and nothing more is to be read or sent for it.
    pub fn is_over(&self) -> bool {
        self.ended && !self.wants_frames() && self.transmits.is_empty()
    }

    /// Whether the connection can serve another call afterwards.
    pub fn reusable(&self) -> bool {
        !self.close
    }

    /// A frame from the client.
    pub fn handle_frame(&mut self, frame: Frame) {
        if !self.wants_frames() {
            return;
        }
        match frame.frame_type {
            FrameType::Headers => match frame::decode_headers(&frame.body) {
                Ok(pairs) if pairs.is_empty() => self.client_ended_writes(),
                Ok(pairs) if frame::header_value(&pairs, CANCEL_KEY).is_some() => {
                    self.client_done = true;
                    let error = FlightError::cancelled("the client cancelled the call");
                    self.stop(error, true);
                }
                Ok(_) => self.protocol_error(FlightError::invalid_argument(format!(
                    "unexpected Headers frame during a {} call",
                    self.method
                ))),
                Err(error) => self.protocol_error(error),
            },
            FrameType::Disconnect => {
                self.client_done = true;
                self.close = true;
                self.stop(FlightError::unavailable("the client disconnected"), false);
            }
            FrameType::Buffer | FrameType::PayloadHeader | FrameType::PayloadBody => {
                self.handle_request_frame(frame)
            }
        }
    }

    /// The handler's response headers: a `:response-headers:` frame for clients that understand
    /// it, nothing for the others (Arrow C++ takes any Headers frame for the status).
    pub fn send_headers(&mut self, headers: Headers) {
        if self.ended || self.response_headers_sent || self.responses_sent > 0 {
            return;
        }
        self.response_headers_sent = true;
        if !self.capable {
            return;
        }
        let mut pairs = vec![(
            Bytes::from_static(RESPONSE_HEADERS_KEY.as_bytes()),
            Bytes::new(),
        )];
        pairs.extend(wire::headers_to_pairs(&headers));
        match OutFrame::headers(&pairs) {
            Ok(frame) => self.transmits.push_back(frame),
            Err(error) => self.fail_response(error),
        }
    }

    /// One response message from the handler.
    pub fn send_message(&mut self, message: Message) {
        if self.ended {
            return;
        }
        if !self.method.server_streaming() && self.responses_sent > 0 {
            let error =
                FlightError::internal(format!("{} answers with exactly one message", self.method));
            return self.fail_response(error);
        }
        match self.responses.encode(message) {
            Ok(frames) => {
                self.responses_sent += 1;
                self.transmits.extend(frames);
            }
            Err(error) => self.fail_response(error),
        }
    }

    /// The handler's outcome and trailers: the status frame, which ends the call.
    pub fn send_status(&mut self, result: Result<()>, trailers: Headers) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.request_state = ServerRequests::Ended;
        self.transmits.push_back(status_out(&result, &trailers));
    }

    /// The handler's response stream went away without a status.
    pub fn handler_gone(&mut self) {
        let error = FlightError::internal("the call ended without a status");
        self.send_status(Err(error), Headers::new());
    }

    /// The server shuts down: the handler stops, the client gets UNAVAILABLE, and the connection
    /// closes after this call.
    pub fn shutdown(&mut self) {
        self.close = true;
        self.stop(
            FlightError::unavailable("the server is shutting down"),
            true,
        );
    }

    /// The connection cannot take more of this call's requests (its receive budget stayed
    /// spent): the handler stops and sees `error` as the end of its requests, the client gets it
    /// as the status, and the connection closes after the call (the rest of its frames unread).
    pub fn refuse(&mut self, error: FlightError) {
        self.protocol_error(error);
    }

    /// The connection failed (a receive or a send): the handler stops and sees `error` as the
    /// end of its requests; nothing more is sent.
    pub fn connection_failed(&mut self, error: FlightError) {
        self.close = true;
        self.stop(error, false);
    }

    fn handle_request_frame(&mut self, frame: Frame) {
        match self.request_state {
            ServerRequests::Expecting => {
                if frame.frame_type == FrameType::Buffer {
                    self.events
                        .push_back(ServerEvent::Request(Message::Proto(frame.body)));
                    self.end_requests(None);
                } else {
                    let error = FlightError::invalid_argument(format!(
                        "{}: expected the request as a Buffer frame, got {:?}",
                        self.method, frame.frame_type
                    ));
                    self.end_requests(Some(error));
                }
            }
            ServerRequests::Streaming => match self.requests.decode(frame) {
                Ok(Some(message)) => self.events.push_back(ServerEvent::Request(message)),
                Ok(None) => {}
                // the handler sees the error; the rest of the client's writes are dropped
                Err(error) => self.end_requests(Some(error)),
            },
            // after the request (or a request error, or the status): dropped
            ServerRequests::Ended => {}
        }
    }

    fn client_ended_writes(&mut self) {
        self.client_done = true;
        match self.request_state {
            ServerRequests::Streaming if self.requests.expects_body() => {
                let error = FlightError::invalid_argument(format!(
                    "{}: the client ended its writes while a PayloadBody was expected",
                    self.method
                ));
                self.end_requests(Some(error));
            }
            ServerRequests::Streaming => self.end_requests(None),
            ServerRequests::Expecting => {
                let error = FlightError::invalid_argument(format!(
                    "{}: the client ended its writes without sending the request",
                    self.method
                ));
                self.end_requests(Some(error));
            }
            ServerRequests::Ended => {}
        }
    }

    fn end_requests(&mut self, error: Option<FlightError>) {
        if self.request_state != ServerRequests::Ended {
            self.request_state = ServerRequests::Ended;
            self.events.push_back(ServerEvent::RequestsEnd(error));
        }
    }

    /// Ends the call without the handler: its requests end with `error`, it is stopped, and the
    /// client gets `error` as the status when `answer`.
    fn stop(&mut self, error: FlightError, answer: bool) {
        if self.ended {
            return;
        }
        self.end_requests(Some(error.clone()));
        self.events.push_back(ServerEvent::StopHandler);
        self.ended = true;
        if answer {
            self.transmits
                .push_back(status_out(&Err(error), &Headers::new()));
        }
    }

    /// A frame broke the call's sequence: the frames that follow cannot be trusted, so the
    /// client gets INVALID_ARGUMENT and the connection closes.
    fn protocol_error(&mut self, error: FlightError) {
        self.client_done = true;
        self.close = true;
        self.stop(error, true);
    }

    /// The handler's output cannot be sent: the call ends with that error.
    fn fail_response(&mut self, error: FlightError) {
        let error = FlightError::internal(format!("cannot send the response: {}", error.message()));
        self.stop(error, true);
    }
}

#[cfg(test)]
mod arrow_cpp;
#[cfg(test)]
mod tests;
