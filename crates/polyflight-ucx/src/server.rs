//! The UCX server transport.
//!
//! A listener thread (its own worker) accepts connection requests and gives each connection its
//! own thread and worker, as Arrow C++ does. A connection serves its calls one at a time: it reads
//! the call's Headers frame and request, hands the call to the core [`Dispatcher`] on the
//! application's runtime, and writes what comes back, all through bounded channels. The listener
//! thread lives until every connection thread has ended, because UCX keeps the accepted
//! connections' connection-management sockets on the listener's worker.
//!
//! When the client sends `:cancel:` or goes away, the call's response stream is dropped, which the
//! dispatcher turns into cancellation of the handler.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use polyflight_core::proto::{Action, Criteria, FlightDescriptor, HandshakeRequest, Ticket};
use polyflight_core::transport::Response;
use polyflight_core::{
    Dispatcher, FlightData, FlightError, FlightMethod, FlightStream, Headers, IncomingCall,
    Listener, Location, PeerInfo, Result, Scheme,
};
use prost::Message;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};

use crate::conn::FrameConn;
use crate::frame::{self, FrameType, HeaderPair, CANCEL_KEY, METHOD_KEY};
use crate::ucp::{self, run_worker_thread, ConnectionRequest, Context, Endpoint, WorkerThread};
use crate::wire::{self, PayloadAssembler, CAPABILITIES_KEY, RESPONSE_HEADERS_KEY, TIMEOUT_KEY};
use crate::UcxOptions;

/// Response items buffered between the dispatcher task and the connection thread.
const RESPONSE_BUFFER: usize = 4;
/// Request items buffered between the connection thread and the handler.
const REQUEST_BUFFER: usize = 4;
/// How long closing a connection may wait for the peer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A UCX listener serving a dispatcher.
pub struct UcxListener {
    location: Location,
    stop: Option<watch::Sender<Option<Duration>>>,
    thread: Option<WorkerThread<()>>,
}

impl UcxListener {
    /// Binds `addr` and starts serving `dispatcher` (whose handlers run on `runtime`).
    pub async fn bind(
        addr: SocketAddr,
        host: &str,
        context: Arc<Context>,
        dispatcher: Dispatcher,
        options: UcxOptions,
        runtime: Handle,
    ) -> Result<UcxListener> {
        let (bound_tx, bound_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = watch::channel(None);
        let listener_context = context.clone();
        let thread = run_worker_thread(
            format!("ucx-listener-{addr}"),
            listener_context,
            options.progress,
            move |worker| async move {
                let listener = match ucp::Listener::bind(&worker, addr) {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = bound_tx.send(Err(FlightError::from(error)));
                        return;
                    }
                };
                let _ = bound_tx.send(Ok(listener.local_addr()));
                accept_loop(listener, context, dispatcher, options, runtime, stop_rx).await;
            },
        )
        .map_err(|e| FlightError::internal(format!("starting the UCX listener thread: {e}")))?;
        let bound = bound_rx
            .await
            .unwrap_or_else(|_| Err(FlightError::internal("the UCX listener thread ended")))?;
        let location = Location::for_host_port(Scheme::Ucx, host, bound.port())?;
        tracing::debug!(%location, "UCX listener bound");
        Ok(UcxListener {
            location,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for UcxListener {
    fn drop(&mut self) {
        // without an explicit shutdown, stop at once; the threads end on their own
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Some(Duration::ZERO));
        }
    }
}

#[async_trait]
impl Listener for UcxListener {
    fn location(&self) -> &Location {
        &self.location
    }

    async fn shutdown(mut self: Box<Self>, grace: Duration) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Some(grace));
        }
        if let Some(mut thread) = self.thread.take() {
            thread.finished().await;
            thread.join().map_err(FlightError::from)?;
        }
        Ok(())
    }
}

async fn accept_loop(
    listener: ucp::Listener,
    context: Arc<Context>,
    dispatcher: Dispatcher,
    options: UcxOptions,
    runtime: Handle,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut connections: Vec<WorkerThread<()>> = Vec::new();
    loop {
        tokio::select! {
            request = listener.accept() => {
                connections.retain(|c| !c.is_finished());
                match spawn_connection(request, &context, &dispatcher, &options, &runtime, stop.clone()) {
                    Ok(thread) => connections.push(thread),
                    Err(error) => tracing::warn!(%error, "cannot serve a UCX connection"),
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || stop.borrow().is_some() {
                    break;
                }
            }
        }
    }
    // stop accepting: refuse what is queued, then outlive every connection (see the module doc)
    for mut connection in connections {
        connection.finished().await;
        if let Err(error) = connection.join() {
            tracing::debug!(%error, "UCX connection thread failed");
        }
    }
    drop(listener);
}

fn spawn_connection(
    request: ConnectionRequest,
    context: &Arc<Context>,
    dispatcher: &Dispatcher,
    options: &UcxOptions,
    runtime: &Handle,
    stop: watch::Receiver<Option<Duration>>,
) -> std::io::Result<WorkerThread<()>> {
    let peer = request
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let dispatcher = dispatcher.clone();
    let runtime = runtime.clone();
    run_worker_thread(
        format!("ucx-conn-{peer}"),
        context.clone(),
        options.progress,
        move |worker| async move {
            let conn = match Endpoint::accept(&worker, request).and_then(FrameConn::new) {
                Ok(conn) => Rc::new(conn),
                Err(error) => {
                    tracing::warn!(%error, "accepting a UCX connection");
                    return;
                }
            };
            let server = ConnectionServer {
                conn: conn.clone(),
                dispatcher,
                runtime,
                peer,
            };
            server.serve(stop).await;
            drop(server);
            match Rc::try_unwrap(conn) {
                Ok(conn) => conn.close(CLOSE_TIMEOUT).await,
                Err(_) => tracing::debug!("UCX server connection still shared at close"),
            }
        },
    )
}

/// What the dispatcher task sends back for a call.
enum Outgoing {
    Headers(Headers),
    Buffer(Bytes),
    Data(FlightData),
    End(Result<()>, Headers),
}

struct ConnectionServer {
    conn: Rc<FrameConn>,
    dispatcher: Dispatcher,
    runtime: Handle,
    peer: String,
}

/// How a call's request arrives.
enum RequestKind {
    /// No request frames (ListActions).
    Nothing,
    /// One Buffer frame.
    OneBuffer,
    /// Buffer frames until an empty Headers frame (Handshake).
    Buffers,
    /// FlightData until an empty Headers frame (DoPut, DoExchange).
    Payloads,
}

fn request_kind(method: FlightMethod) -> RequestKind {
    match method {
        FlightMethod::ListActions => RequestKind::Nothing,
        FlightMethod::Handshake => RequestKind::Buffers,
        FlightMethod::DoPut | FlightMethod::DoExchange => RequestKind::Payloads,
        _ => RequestKind::OneBuffer,
    }
}

/// What the request side of a call saw.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientEnd {
    /// The client is done writing (or never writes more for this call).
    Done,
    /// The client sent `:cancel:`.
    Cancelled,
    /// The connection broke.
    Broken,
}

impl ConnectionServer {
    async fn serve(&self, mut stop: watch::Receiver<Option<Duration>>) {
        loop {
            let frame = tokio::select! {
                frame = self.conn.recv() => frame,
                _ = stop.changed() => return,
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    tracing::debug!(%error, peer = %self.peer, "UCX connection ended");
                    return;
                }
            };
            match frame.frame_type {
                FrameType::Disconnect => return,
                FrameType::Headers => {
                    let pairs = match frame::decode_headers(&frame.body) {
                        Ok(pairs) => pairs,
                        Err(error) => {
                            tracing::debug!(%error, "malformed Headers frame; closing");
                            return;
                        }
                    };
                    let Some(method) = wire::header_text(&pairs, METHOD_KEY) else {
                        // an end-of-writes or :cancel: that arrived after its call ended
                        continue;
                    };
                    if !self.serve_call(&method, &pairs, &mut stop).await {
                        return;
                    }
                }
                // leftovers of a call that already ended (the client was still writing)
                _ => continue,
            }
        }
    }

    /// Serves one call; returns whether the connection can go on.
    async fn serve_call(
        &self,
        method_name: &str,
        pairs: &[HeaderPair],
        stop: &mut watch::Receiver<Option<Duration>>,
    ) -> bool {
        let Some(method) = FlightMethod::from_name(method_name) else {
            let error =
                FlightError::unimplemented(format!("unknown Flight method {method_name:?}"));
            return self.send_status(&Err(error), &Headers::new()).await;
        };
        let capable = wire::header_text(pairs, CAPABILITIES_KEY).is_some();
        let call = IncomingCall {
            method,
            headers: wire::pairs_to_headers(pairs),
            peer: PeerInfo::new(Scheme::Ucx, self.peer.clone()),
            timeout: wire::header_text(pairs, TIMEOUT_KEY).and_then(|v| wire::parse_timeout(&v)),
        };
        let kind = request_kind(method);

        // The single request message, read before the call starts.
        let request = match kind {
            RequestKind::OneBuffer => match self.conn.recv().await {
                Ok(frame) if frame.frame_type == FrameType::Buffer => Some(frame.body),
                Ok(frame) => {
                    let error = FlightError::invalid_argument(format!(
                        "{method}: expected the request as a Buffer frame, got {:?}",
                        frame.frame_type
                    ));
                    return self.send_status(&Err(error), &Headers::new()).await;
                }
                Err(_) => return false,
            },
            _ => None,
        };

        let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(RESPONSE_BUFFER);
        let (in_tx, in_rx) = mpsc::channel::<Result<Incoming>>(REQUEST_BUFFER);
        let streamed_input = matches!(kind, RequestKind::Buffers | RequestKind::Payloads);
        let input_error = InputError::default();
        let task = self.runtime.spawn(dispatch(
            self.dispatcher.clone(),
            call,
            request,
            streamed_input.then_some(in_rx),
            input_error.clone(),
            out_tx,
        ));

        // Requests and cancellation are read by one task while responses are written by this one.
        let client_end = Rc::new(Cell::new(None::<ClientEnd>));
        let reader = tokio::task::spawn_local(read_requests(
            self.conn.clone(),
            kind,
            streamed_input.then_some(in_tx),
            input_error,
            client_end.clone(),
        ));
        tokio::pin!(reader);
        let mut reader_done = false;
        let mut call_over = false;
        let mut keep_connection = true;
        while !call_over {
            tokio::select! {
                out = out_rx.recv() => {
                    match out {
                        Some(Outgoing::Headers(headers)) => {
                            if capable {
                                let mut list = vec![(
                                    Bytes::from_static(RESPONSE_HEADERS_KEY.as_bytes()),
                                    Bytes::new(),
                                )];
                                list.extend(wire::headers_to_pairs(&headers));
                                if self.conn.send_headers(&list).await.is_err() {
                                    keep_connection = false;
                                    call_over = true;
                                }
                            }
                        }
                        Some(Outgoing::Buffer(bytes)) => {
                            if self.conn.send(FrameType::Buffer, vec![bytes]).await.is_err() {
                                keep_connection = false;
                                call_over = true;
                            }
                        }
                        Some(Outgoing::Data(data)) => {
                            if wire::send_flight_data(&self.conn, &data).await.is_err() {
                                keep_connection = false;
                                call_over = true;
                            }
                        }
                        Some(Outgoing::End(result, trailers)) => {
                            keep_connection = self.send_status(&result, &trailers).await;
                            call_over = true;
                        }
                        None => {
                            let error = FlightError::internal("the call ended without a status");
                            keep_connection = self.send_status(&Err(error), &Headers::new()).await;
                            call_over = true;
                        }
                    }
                }
                finished = &mut reader, if !reader_done => {
                    reader_done = true;
                    match finished.ok().flatten().or(client_end.get()) {
                        Some(ClientEnd::Cancelled) => {
                            // stop the handler, answer CANCELLED
                            drop(out_rx);
                            task.abort();
                            let error = FlightError::cancelled("the client cancelled the call");
                            keep_connection = self.send_status(&Err(error), &Headers::new()).await;
                            return keep_connection;
                        }
                        Some(ClientEnd::Broken) => {
                            drop(out_rx);
                            task.abort();
                            return false;
                        }
                        Some(ClientEnd::Done) | None => {}
                    }
                }
                _ = stop.changed() => {
                    let grace = stop.borrow().unwrap_or(Duration::ZERO);
                    if !grace.is_zero() {
                        // let the call finish within the grace period
                        if tokio::time::timeout(grace, async {
                            while let Some(out) = out_rx.recv().await {
                                if let Outgoing::End(result, trailers) = out {
                                    return self.send_status(&result, &trailers).await;
                                }
                                let sent = match out {
                                    Outgoing::Buffer(bytes) => self.conn.send(FrameType::Buffer, vec![bytes]).await.map_err(FlightError::from),
                                    Outgoing::Data(data) => wire::send_flight_data(&self.conn, &data).await,
                                    _ => Ok(()),
                                };
                                if sent.is_err() {
                                    return false;
                                }
                            }
                            false
                        }).await.is_ok() {
                            return false;
                        }
                    }
                    drop(out_rx);
                    task.abort();
                    let error = FlightError::unavailable("the server is shutting down");
                    let _ = self.send_status(&Err(error), &Headers::new()).await;
                    return false;
                }
            }
        }
        if !keep_connection {
            return false;
        }
        if reader_done {
            return true;
        }
        if !streamed_input {
            // the client writes nothing more in this call; a late `:cancel:` is skipped by `serve`
            reader.abort();
            return true;
        }
        // After the status the client may still be writing: drain until it ends its writes
        // (empty Headers or :cancel:) so the next call starts clean.
        !matches!(reader.await.ok().flatten(), Some(ClientEnd::Broken))
    }

    async fn send_status(&self, result: &Result<()>, trailers: &Headers) -> bool {
        match wire::status_frame(result, trailers) {
            Ok(body) => self.conn.send(FrameType::Headers, vec![body]).await.is_ok(),
            Err(error) => {
                tracing::warn!(%error, "cannot encode a UCX status frame");
                false
            }
        }
    }
}

/// A request item for the handler.
enum Incoming {
    Buffer(Bytes),
    Data(FlightData),
}

/// Reads the client's frames during a call: streamed requests (forwarded to the handler until the
/// client's empty Headers frame), `:cancel:`, and for calls without streamed input, nothing but a
/// possible `:cancel:`. After the handler's input closed, further data is read and discarded.
async fn read_requests(
    conn: Rc<FrameConn>,
    kind: RequestKind,
    mut input: Option<mpsc::Sender<Result<Incoming>>>,
    input_error: InputError,
    end: Rc<Cell<Option<ClientEnd>>>,
) -> Option<ClientEnd> {
    let mut assembler = PayloadAssembler::default();
    let outcome = loop {
        let frame = match conn.recv().await {
            Ok(frame) => frame,
            Err(_) => break ClientEnd::Broken,
        };
        let item = match frame.frame_type {
            FrameType::Headers => match frame::decode_headers(&frame.body) {
                Ok(pairs) if pairs.is_empty() => break ClientEnd::Done,
                Ok(pairs) if frame::header_value(&pairs, CANCEL_KEY).is_some() => {
                    break ClientEnd::Cancelled
                }
                Ok(_) | Err(_) => break ClientEnd::Broken,
            },
            FrameType::Disconnect => break ClientEnd::Broken,
            FrameType::Buffer => match kind {
                RequestKind::Buffers => Ok(Incoming::Buffer(frame.body)),
                _ => Err(FlightError::invalid_argument(
                    "unexpected Buffer frame in the call",
                )),
            },
            FrameType::PayloadHeader | FrameType::PayloadBody => match kind {
                RequestKind::Payloads => match assembler.push(frame) {
                    Ok(Some(data)) => Ok(Incoming::Data(data)),
                    Ok(None) => continue,
                    Err(error) => Err(error),
                },
                _ => Err(FlightError::invalid_argument(
                    "unexpected FlightData in the call",
                )),
            },
        };
        let failed = item.is_err();
        if let Some(tx) = &input {
            if tx.send(item).await.is_err() {
                // the handler stopped reading; discard the rest
                input = None;
            }
        }
        if failed {
            // the handler sees the error; stop forwarding but keep reading to the end of writes
            input = None;
        }
    };
    // A request stream that ends because of :cancel: or a broken connection must not look like a
    // clean end to the handler: the error is set before the channel closes.
    let error = match outcome {
        ClientEnd::Done => None,
        ClientEnd::Cancelled => Some(FlightError::cancelled("the client cancelled the call")),
        ClientEnd::Broken => Some(FlightError::unavailable("the client's connection broke")),
    };
    if let (Some(error), Ok(mut slot)) = (error, input_error.lock()) {
        *slot = Some(error);
    }
    drop(input);
    end.set(Some(outcome));
    Some(outcome)
}

/// Set when the request stream ends abnormally; the handler's stream yields it at its end.
type InputError = Arc<std::sync::Mutex<Option<FlightError>>>;

/// The handler's view of the streamed requests: a stream over the channel the reader fills, ending
/// with the reader's error if the client cancelled or went away.
fn input_stream(
    input: Option<mpsc::Receiver<Result<Incoming>>>,
    error: InputError,
) -> FlightStream<Incoming> {
    match input {
        Some(rx) => futures::stream::unfold(Some(rx), move |rx| {
            let error = error.clone();
            async move {
                let mut rx = rx?;
                match rx.recv().await {
                    Some(item) => Some((item, Some(rx))),
                    None => {
                        let failed = error.lock().ok().and_then(|mut slot| slot.take());
                        failed.map(|e| (Err(e), None))
                    }
                }
            }
        })
        .boxed(),
        None => futures::stream::empty().boxed(),
    }
}

/// Runs a call through the dispatcher on the application's runtime and streams the response.
async fn dispatch(
    dispatcher: Dispatcher,
    call: IncomingCall,
    request: Option<Bytes>,
    input: Option<mpsc::Receiver<Result<Incoming>>>,
    input_error: InputError,
    out: mpsc::Sender<Outgoing>,
) {
    let method = call.method;
    let request = request.unwrap_or_default();
    let input = input_stream(input, input_error);
    macro_rules! decode {
        ($ty:ty, $what:expr) => {
            match wire::decode_message::<$ty>(request.clone(), $what) {
                Ok(message) => message,
                Err(error) => {
                    let _ = out.send(Outgoing::End(Err(error), Headers::new())).await;
                    return;
                }
            }
        };
    }
    let data_input = |input: FlightStream<Incoming>| -> FlightStream<FlightData> {
        input
            .map(|item| match item? {
                Incoming::Data(data) => Ok(data),
                Incoming::Buffer(_) => {
                    Err(FlightError::invalid_argument("unexpected Buffer frame"))
                }
            })
            .boxed()
    };
    match method {
        FlightMethod::Handshake => {
            let requests = input
                .map(|item| match item? {
                    Incoming::Buffer(bytes) => {
                        wire::decode_message::<HandshakeRequest>(bytes, "HandshakeRequest")
                    }
                    Incoming::Data(_) => {
                        Err(FlightError::invalid_argument("unexpected FlightData"))
                    }
                })
                .boxed();
            forward_messages(dispatcher.handshake(call, requests).await, &out).await;
        }
        FlightMethod::ListFlights => {
            let criteria = decode!(Criteria, "Criteria");
            forward_messages(dispatcher.list_flights(call, criteria).await, &out).await;
        }
        FlightMethod::GetFlightInfo => {
            let descriptor = decode!(FlightDescriptor, "FlightDescriptor");
            forward_unary(dispatcher.get_flight_info(call, descriptor).await, &out).await;
        }
        FlightMethod::PollFlightInfo => {
            let descriptor = decode!(FlightDescriptor, "FlightDescriptor");
            forward_unary(dispatcher.poll_flight_info(call, descriptor).await, &out).await;
        }
        FlightMethod::GetSchema => {
            let descriptor = decode!(FlightDescriptor, "FlightDescriptor");
            forward_unary(dispatcher.get_schema(call, descriptor).await, &out).await;
        }
        FlightMethod::DoGet => {
            let ticket = decode!(Ticket, "Ticket");
            forward(dispatcher.do_get(call, ticket).await, &out, Outgoing::Data).await;
        }
        FlightMethod::DoPut => {
            let response = dispatcher.do_put(call, data_input(input)).await;
            // put results travel as Buffer frames of the raw app_metadata (C++ compatible)
            forward(response, &out, |result| {
                Outgoing::Buffer(result.app_metadata)
            })
            .await;
        }
        FlightMethod::DoExchange => {
            let response = dispatcher.do_exchange(call, data_input(input)).await;
            forward(response, &out, Outgoing::Data).await;
        }
        FlightMethod::DoAction => {
            let action = decode!(Action, "Action");
            forward_messages(dispatcher.do_action(call, action).await, &out).await;
        }
        FlightMethod::ListActions => {
            forward_messages(dispatcher.list_actions(call).await, &out).await;
        }
    }
}

async fn forward_unary<T: Message>(response: Result<Response<T>>, out: &mpsc::Sender<Outgoing>) {
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            let _ = out.send(Outgoing::End(Err(error), Headers::new())).await;
            return;
        }
    };
    if out.send(Outgoing::Headers(response.headers)).await.is_err() {
        return;
    }
    let body = Bytes::from(response.body.encode_to_vec());
    if out.send(Outgoing::Buffer(body)).await.is_err() {
        return;
    }
    let _ = out
        .send(Outgoing::End(Ok(()), response.trailers.get()))
        .await;
}

async fn forward_messages<T: Message + 'static>(
    response: Result<Response<FlightStream<T>>>,
    out: &mpsc::Sender<Outgoing>,
) {
    forward(response, out, |message| {
        Outgoing::Buffer(Bytes::from(message.encode_to_vec()))
    })
    .await;
}

/// Sends the response headers, every item (converted by `item`), then the end with trailers. When
/// the connection side goes away the stream is dropped here, which cancels the handler.
async fn forward<T>(
    response: Result<Response<FlightStream<T>>>,
    out: &mpsc::Sender<Outgoing>,
    item: impl Fn(T) -> Outgoing,
) {
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            let _ = out.send(Outgoing::End(Err(error), Headers::new())).await;
            return;
        }
    };
    if out.send(Outgoing::Headers(response.headers)).await.is_err() {
        return;
    }
    let mut body = response.body;
    loop {
        let next = tokio::select! {
            next = body.next() => next,
            _ = out.closed() => return,
        };
        match next {
            Some(Ok(message)) => {
                if out.send(item(message)).await.is_err() {
                    return;
                }
            }
            Some(Err(error)) => {
                let _ = out
                    .send(Outgoing::End(Err(error), response.trailers.get()))
                    .await;
                return;
            }
            None => {
                let _ = out
                    .send(Outgoing::End(Ok(()), response.trailers.get()))
                    .await;
                return;
            }
        }
    }
}
