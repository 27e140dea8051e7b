//! The UCX client transport.
//!
//! Calls on one UCX connection are served strictly one at a time (as by Arrow C++ servers), so the
//! client keeps a small pool: a call takes an idle connection or opens a new one, and gives it back
//! when the call is over; at most [`UcxOptions::max_idle_connections`] idle connections are kept.
//! Each connection is one thread owning one worker and one endpoint; the application's side talks
//! to it through bounded channels (request items in, response items out), so a slow consumer
//! holds the sender back instead of filling memory.
//!
//! Dropping a response stream (or the call's future) before the call ended sends `:cancel:`; an
//! `Err` in a request stream does the same. A cancelled connection is not reused: an Arrow C++
//! server does not know `:cancel:` and would misread it as the start of the next call.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use polyflight_core::proto::{
    Action, ActionType, Criteria, Empty, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use polyflight_core::transport::Response;
use polyflight_core::{
    CallMetadata, ClientTransport, FlightData, FlightError, FlightMethod, FlightStream, Headers,
    Location, Result, Trailers,
};
use prost::Message;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::conn::FrameConn;
use crate::frame::{self, FrameType, CANCEL_KEY, METHOD_KEY};
use crate::ucp::{run_worker_thread, Context};
use crate::wire::{self, PayloadAssembler, CAPABILITIES_KEY, RESPONSE_HEADERS_KEY, TIMEOUT_KEY};
use crate::UcxOptions;

/// Response items buffered between a connection thread and the application.
const RESPONSE_BUFFER: usize = 8;
/// Request items buffered between the application and a connection thread.
const REQUEST_BUFFER: usize = 4;
/// How long closing a connection may wait for the peer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the application sends in a call.
enum Outgoing {
    Buffer(Bytes),
    Data(FlightData),
    /// The request stream failed: abort the call with this error.
    Abort(FlightError),
}

/// What a call receives.
enum Incoming {
    Headers(Headers),
    Buffer(Bytes),
    Data(FlightData),
    End(Result<()>, Headers),
}

/// How a call's requests end on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// The request frames are all there is (unary and server-streaming calls).
    Fixed,
    /// A stream of requests closed by an empty Headers frame (Handshake, DoPut, DoExchange).
    Streamed,
}

struct CallJob {
    start: Vec<frame::HeaderPair>,
    writes: Writes,
    outgoing: mpsc::Receiver<Outgoing>,
    incoming: mpsc::Sender<Incoming>,
    /// Told whether the connection can serve another call.
    done: oneshot::Sender<bool>,
}

/// A connection thread, seen from the application.
struct Connection {
    jobs: mpsc::Sender<CallJob>,
}

/// A Flight client over UCX to one server address.
pub struct UcxClient {
    location: Location,
    addr: SocketAddr,
    context: Arc<Context>,
    options: UcxOptions,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl std::fmt::Debug for UcxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UcxClient")
            .field("location", &self.location.uri())
            .finish()
    }
}

impl UcxClient {
    /// Opens a first connection (so an unreachable server fails here) and keeps it for the first
    /// call.
    pub async fn connect(
        location: Location,
        addr: SocketAddr,
        context: Arc<Context>,
        options: UcxOptions,
        connect_timeout: Option<Duration>,
    ) -> Result<UcxClient> {
        let client = UcxClient {
            location,
            addr,
            context,
            options,
            idle: Arc::new(Mutex::new(Vec::new())),
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        let connection = client.open(Some(ready_tx))?;
        let ready = async {
            ready_rx
                .await
                .unwrap_or_else(|_| Err(FlightError::unavailable("UCX connection thread ended")))
        };
        match connect_timeout {
            Some(limit) => tokio::time::timeout(limit, ready).await.map_err(|_| {
                FlightError::unavailable(format!(
                    "connecting to {} timed out after {limit:?}",
                    client.location
                ))
            })??,
            None => ready.await?,
        }
        client.give_back(connection);
        Ok(client)
    }

    fn give_back(&self, connection: Connection) {
        return_to_pool(&self.idle, self.options.max_idle_connections, connection);
    }

    /// Starts a connection thread; `ready` is told once the endpoint is connected.
    fn open(&self, ready: Option<oneshot::Sender<Result<()>>>) -> Result<Connection> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<CallJob>(1);
        let addr = self.addr;
        let name = format!("ucx-client-{addr}");
        let thread = run_worker_thread(
            name,
            self.context.clone(),
            self.options.progress,
            move |worker| connection_main(worker, addr, jobs_rx, ready),
        )
        .map_err(|e| FlightError::internal(format!("starting a UCX connection thread: {e}")))?;
        // the thread ends by itself when its job channel closes or its connection breaks
        drop(thread);
        Ok(Connection { jobs: jobs_tx })
    }

    fn take_connection(&self) -> Result<Connection> {
        loop {
            let idle = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
            match idle {
                Some(connection) if !connection.jobs.is_closed() => return Ok(connection),
                Some(_) => continue,
                None => return self.open(None),
            }
        }
    }

    /// Makes one call: sends the start frame and the requests, waits for the response headers (or
    /// the first response frame), and returns the response item stream.
    async fn call(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        writes: Writes,
        requests: Requests,
    ) -> Result<(Headers, IncomingStream)> {
        let mut start = vec![
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

        let (out_tx, out_rx) = mpsc::channel(REQUEST_BUFFER);
        let (in_tx, mut in_rx) = mpsc::channel(RESPONSE_BUFFER);
        let (done_tx, done_rx) = oneshot::channel();
        match requests {
            Requests::None => drop(out_tx),
            Requests::One(message) => {
                // capacity is free: the channel is new
                let _ = out_tx.try_send(Outgoing::Buffer(message));
            }
            Requests::Stream(stream) => {
                tokio::spawn(pump_requests(stream, out_tx));
            }
        }
        let job = CallJob {
            start,
            writes,
            outgoing: out_rx,
            incoming: in_tx,
            done: done_tx,
        };
        let connection = self.take_connection()?;
        if connection.jobs.send(job).await.is_err() {
            return Err(FlightError::unavailable(format!(
                "the UCX connection to {} is gone",
                self.location
            )));
        }
        let idle = self.idle.clone();
        let max_idle = self.options.max_idle_connections;
        tokio::spawn(async move {
            if let Ok(true) = done_rx.await {
                return_to_pool(&idle, max_idle, connection);
            }
        });

        let (headers, first) = match in_rx.recv().await {
            Some(Incoming::Headers(headers)) => (headers, None),
            Some(Incoming::End(Err(error), _)) => return Err(error),
            Some(other) => (Headers::new(), Some(other)),
            None => {
                return Err(FlightError::unavailable(format!(
                    "{method}: the UCX connection to {} closed",
                    self.location
                )))
            }
        };
        Ok((
            headers,
            IncomingStream {
                first,
                rx: in_rx,
                trailers: Trailers::default(),
                ended: false,
            },
        ))
    }

    async fn unary<T: Message + Default>(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        request: &impl Message,
        what: &'static str,
    ) -> Result<Response<T>> {
        let requests = Requests::One(Bytes::from(request.encode_to_vec()));
        let (headers, mut items) = self.call(method, meta, Writes::Fixed, requests).await?;
        let mut body = None;
        while let Some(item) = items.next_item().await {
            match item? {
                Item::Buffer(bytes) if body.is_none() => {
                    body = Some(wire::decode_message::<T>(bytes, what)?)
                }
                _ => {
                    return Err(FlightError::invalid_argument(format!(
                        "{method}: unexpected response frame"
                    )))
                }
            }
        }
        let body = body.ok_or_else(|| {
            FlightError::internal(format!("{method}: server sent no {what} and no error"))
        })?;
        Ok(Response {
            headers,
            body,
            trailers: items.trailers.clone(),
        })
    }

    async fn streaming<T: Message + Default + Send + 'static>(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        writes: Writes,
        requests: Requests,
    ) -> Result<Response<FlightStream<T>>> {
        let (headers, items) = self.call(method, meta, writes, requests).await?;
        let trailers = items.trailers.clone();
        let what = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("message");
        let body = items
            .map(move |item| match item? {
                Item::Buffer(bytes) => wire::decode_message::<T>(bytes, what),
                Item::Data(_) => Err(FlightError::invalid_argument(format!(
                    "{method}: FlightData where {what} was expected"
                ))),
            })
            .boxed();
        Ok(Response {
            headers,
            body,
            trailers,
        })
    }

    async fn data_stream(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        writes: Writes,
        requests: Requests,
    ) -> Result<Response<FlightStream<FlightData>>> {
        let (headers, items) = self.call(method, meta, writes, requests).await?;
        let trailers = items.trailers.clone();
        let body = items
            .map(move |item| match item? {
                Item::Data(data) => Ok(data),
                Item::Buffer(_) => Err(FlightError::invalid_argument(format!(
                    "{method}: a Buffer frame where FlightData was expected"
                ))),
            })
            .boxed();
        Ok(Response {
            headers,
            body,
            trailers,
        })
    }
}

fn return_to_pool(idle: &Mutex<Vec<Connection>>, max_idle: usize, connection: Connection) {
    if let Ok(mut idle) = idle.lock() {
        if idle.len() < max_idle && !connection.jobs.is_closed() {
            idle.push(connection);
        }
        // otherwise dropping the connection closes its job channel and its thread disconnects
    }
}

/// The request side of a call.
enum Requests {
    None,
    One(Bytes),
    Stream(BoxStream<'static, Result<Outgoing>>),
}

fn message_stream<T: Message + 'static>(stream: FlightStream<T>) -> Requests {
    Requests::Stream(
        stream
            .map(|item| item.map(|m| Outgoing::Buffer(Bytes::from(m.encode_to_vec()))))
            .boxed(),
    )
}

fn data_requests(stream: FlightStream<FlightData>) -> Requests {
    Requests::Stream(stream.map(|item| item.map(Outgoing::Data)).boxed())
}

/// Moves request items from the application's stream to the connection thread (on the caller's
/// runtime, so application stream code never runs on a UCX thread).
async fn pump_requests(
    mut stream: BoxStream<'static, Result<Outgoing>>,
    tx: mpsc::Sender<Outgoing>,
) {
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            // the call ended: stop pulling the application's stream
            _ = tx.closed() => return,
        };
        let outgoing = match item {
            Some(Ok(outgoing)) => outgoing,
            Some(Err(error)) => Outgoing::Abort(error),
            None => return,
        };
        let abort = matches!(outgoing, Outgoing::Abort(_));
        if tx.send(outgoing).await.is_err() || abort {
            return;
        }
    }
}

/// A response item the typed streams consume.
enum Item {
    Buffer(Bytes),
    Data(FlightData),
}

/// The response items of one call; fills the trailers before it ends.
struct IncomingStream {
    first: Option<Incoming>,
    rx: mpsc::Receiver<Incoming>,
    trailers: Trailers,
    ended: bool,
}

impl IncomingStream {
    async fn next_item(&mut self) -> Option<Result<Item>> {
        futures::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    fn convert(&mut self, incoming: Option<Incoming>) -> Option<Result<Item>> {
        match incoming {
            Some(Incoming::Buffer(bytes)) => Some(Ok(Item::Buffer(bytes))),
            Some(Incoming::Data(data)) => Some(Ok(Item::Data(data))),
            Some(Incoming::Headers(_)) => {
                self.ended = true;
                Some(Err(FlightError::invalid_argument(
                    "response headers after the first response message",
                )))
            }
            Some(Incoming::End(result, trailers)) => {
                self.ended = true;
                self.trailers.extend(trailers);
                result.err().map(Err)
            }
            None => {
                self.ended = true;
                Some(Err(FlightError::unavailable(
                    "the UCX connection closed before the call ended",
                )))
            }
        }
    }
}

impl Stream for IncomingStream {
    type Item = Result<Item>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(first) = self.first.take() {
            return Poll::Ready(self.convert(Some(first)));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(incoming) => Poll::Ready(self.convert(incoming)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The body of a client connection thread: connects, then runs the calls it is given, one at a
/// time, until the job channel closes or the connection breaks.
async fn connection_main(
    worker: Rc<crate::ucp::Worker>,
    addr: SocketAddr,
    mut jobs: mpsc::Receiver<CallJob>,
    ready: Option<oneshot::Sender<Result<()>>>,
) {
    let conn = match FrameConn::connect(&worker, addr) {
        Ok(conn) => Rc::new(conn),
        Err(error) => {
            if let Some(ready) = ready {
                let _ = ready.send(Err(error.into()));
            }
            return;
        }
    };
    if let Some(ready) = ready {
        let connected = conn.endpoint().flush().await.map_err(|e| {
            FlightError::unavailable(format!("cannot connect to ucx://{addr}: {}", e.message))
        });
        let failed = connected.is_err();
        let _ = ready.send(connected);
        if failed {
            return;
        }
    }
    loop {
        // While idle, also watch the connection: a server that went away closes this thread, and
        // with it the job channel, so the pool does not hand out a dead connection.
        let job = tokio::select! {
            job = jobs.recv() => job,
            error = conn.endpoint().failed() => {
                tracing::debug!(%error, "idle UCX connection lost");
                None
            }
        };
        let Some(job) = job else { break };
        let reusable = run_call(&conn, job).await;
        if !reusable || conn.error().is_some() {
            break;
        }
    }
    drop(jobs);
    match Rc::try_unwrap(conn) {
        Ok(conn) => conn.disconnect(CLOSE_TIMEOUT).await,
        Err(_) => tracing::debug!("UCX client connection still shared at close"),
    }
}

/// Shared state of one call on the connection thread.
struct CallState {
    /// The status frame arrived (or the call failed): the writer stops.
    finished: Cell<bool>,
    finished_notify: Notify,
    /// The request stream failed with this error.
    aborted: RefCell<Option<FlightError>>,
    /// `:cancel:` or the end of writes has been sent.
    writes_ended: Cell<bool>,
}

/// Runs one call; returns whether the connection can serve another.
async fn run_call(conn: &Rc<FrameConn>, job: CallJob) -> bool {
    let CallJob {
        start,
        writes,
        outgoing,
        incoming,
        done,
    } = job;
    let state = Rc::new(CallState {
        finished: Cell::new(false),
        finished_notify: Notify::new(),
        aborted: RefCell::new(None),
        writes_ended: Cell::new(false),
    });
    if let Err(error) = conn.send_headers(&start).await {
        let _ = incoming.try_send(Incoming::End(Err(error.into()), Headers::new()));
        let _ = done.send(false);
        return false;
    }
    let writer = tokio::task::spawn_local(write_requests(
        conn.clone(),
        outgoing,
        writes,
        state.clone(),
    ));
    let outcome = read_responses(conn, &incoming, &state).await;
    state.finished.set(true);
    state.finished_notify.notify_one();
    let writer_ok = writer.await.unwrap_or(false);
    let reusable = outcome == CallOutcome::Completed
        && writer_ok
        && state.aborted.borrow().is_none()
        && conn.error().is_none();
    let _ = done.send(reusable);
    reusable
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CallOutcome {
    /// The status frame arrived.
    Completed,
    /// The application went away and `:cancel:` was sent.
    Cancelled,
    /// The connection or the framing broke.
    Broken,
}

async fn send_cancel(conn: &FrameConn, state: &CallState) {
    if !state.writes_ended.replace(true) {
        let cancel = conn.send_headers(&[(CANCEL_KEY, "")]);
        if let Err(error) = cancel.await {
            tracing::debug!(%error, "sending UCX :cancel:");
        }
    }
}

async fn read_responses(
    conn: &Rc<FrameConn>,
    incoming: &mpsc::Sender<Incoming>,
    state: &CallState,
) -> CallOutcome {
    let mut assembler = PayloadAssembler::default();
    loop {
        let frame = tokio::select! {
            frame = conn.recv() => frame,
            _ = incoming.closed() => {
                send_cancel(conn, state).await;
                return CallOutcome::Cancelled;
            }
        };
        let item = match frame {
            Err(error) => {
                let _ = incoming.try_send(Incoming::End(Err(error.into()), Headers::new()));
                return CallOutcome::Broken;
            }
            Ok(frame) => match frame.frame_type {
                FrameType::Headers => {
                    let pairs = match frame::decode_headers(&frame.body) {
                        Ok(pairs) => pairs,
                        Err(error) => {
                            let _ =
                                incoming.try_send(Incoming::End(Err(error.into()), Headers::new()));
                            return CallOutcome::Broken;
                        }
                    };
                    let is_response_headers = pairs
                        .first()
                        .is_some_and(|(k, _)| k.as_ref() == RESPONSE_HEADERS_KEY.as_bytes());
                    if is_response_headers {
                        Incoming::Headers(wire::pairs_to_headers(&pairs))
                    } else {
                        let (mut result, trailers) = wire::status_from_headers(&pairs)
                            .unwrap_or_else(|| {
                                (
                                    Err(FlightError::invalid_argument(
                                        "server sent a Headers frame without a status",
                                    )),
                                    Headers::new(),
                                )
                            });
                        if let Some(aborted) = state.aborted.borrow().clone() {
                            result = Err(aborted);
                        }
                        let _ = incoming.send(Incoming::End(result, trailers)).await;
                        return CallOutcome::Completed;
                    }
                }
                FrameType::Buffer => Incoming::Buffer(frame.body),
                FrameType::PayloadHeader | FrameType::PayloadBody => match assembler.push(frame) {
                    Ok(Some(data)) => Incoming::Data(data),
                    Ok(None) => continue,
                    Err(error) => {
                        let _ = incoming.try_send(Incoming::End(Err(error), Headers::new()));
                        return CallOutcome::Broken;
                    }
                },
                FrameType::Disconnect => {
                    let _ = incoming.try_send(Incoming::End(
                        Err(FlightError::invalid_argument(
                            "server sent a Disconnect frame",
                        )),
                        Headers::new(),
                    ));
                    return CallOutcome::Broken;
                }
            },
        };
        if incoming.send(item).await.is_err() {
            send_cancel(conn, state).await;
            return CallOutcome::Cancelled;
        }
    }
}

/// Sends the call's requests; returns false when the connection failed while sending.
async fn write_requests(
    conn: Rc<FrameConn>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    writes: Writes,
    state: Rc<CallState>,
) -> bool {
    loop {
        let item = if state.finished.get() {
            None
        } else {
            tokio::select! {
                item = outgoing.recv() => item,
                _ = state.finished_notify.notified() => None,
            }
        };
        if state.writes_ended.get() {
            return true;
        }
        let sent = match item {
            Some(Outgoing::Buffer(bytes)) => conn
                .send(FrameType::Buffer, vec![bytes])
                .await
                .map_err(FlightError::from),
            Some(Outgoing::Data(data)) => wire::send_flight_data(&conn, &data).await,
            Some(Outgoing::Abort(error)) => {
                *state.aborted.borrow_mut() = Some(error);
                send_cancel(&conn, &state).await;
                return true;
            }
            None => {
                if writes == Writes::Streamed && !state.writes_ended.replace(true) {
                    let end = conn.send_headers::<&[u8], &[u8]>(&[]);
                    return end.await.is_ok();
                }
                return true;
            }
        };
        if let Err(error) = sent {
            tracing::debug!(%error, "sending a UCX request frame");
            return false;
        }
    }
}

#[async_trait]
impl ClientTransport for UcxClient {
    async fn handshake(
        &self,
        meta: CallMetadata,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<Response<FlightStream<HandshakeResponse>>> {
        self.streaming(
            FlightMethod::Handshake,
            meta,
            Writes::Streamed,
            message_stream(requests),
        )
        .await
    }

    async fn list_flights(
        &self,
        meta: CallMetadata,
        criteria: Criteria,
    ) -> Result<Response<FlightStream<FlightInfo>>> {
        let requests = Requests::One(Bytes::from(criteria.encode_to_vec()));
        self.streaming(FlightMethod::ListFlights, meta, Writes::Fixed, requests)
            .await
    }

    async fn get_flight_info(
        &self,
        meta: CallMetadata,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>> {
        self.unary(FlightMethod::GetFlightInfo, meta, &descriptor, "FlightInfo")
            .await
    }

    async fn poll_flight_info(
        &self,
        meta: CallMetadata,
        descriptor: FlightDescriptor,
    ) -> Result<Response<PollInfo>> {
        self.unary(FlightMethod::PollFlightInfo, meta, &descriptor, "PollInfo")
            .await
    }

    async fn get_schema(
        &self,
        meta: CallMetadata,
        descriptor: FlightDescriptor,
    ) -> Result<Response<SchemaResult>> {
        self.unary(FlightMethod::GetSchema, meta, &descriptor, "SchemaResult")
            .await
    }

    async fn do_get(
        &self,
        meta: CallMetadata,
        ticket: Ticket,
    ) -> Result<Response<FlightStream<FlightData>>> {
        let requests = Requests::One(Bytes::from(ticket.encode_to_vec()));
        self.data_stream(FlightMethod::DoGet, meta, Writes::Fixed, requests)
            .await
    }

    async fn do_put(
        &self,
        meta: CallMetadata,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<PutResult>>> {
        let (headers, items) = self
            .call(
                FlightMethod::DoPut,
                meta,
                Writes::Streamed,
                data_requests(data),
            )
            .await?;
        let trailers = items.trailers.clone();
        // put results travel as Buffer frames holding the raw app_metadata (C++ compatible)
        let body = items
            .map(|item| match item? {
                Item::Buffer(app_metadata) => Ok(PutResult { app_metadata }),
                Item::Data(_) => Err(FlightError::invalid_argument(
                    "DoPut: FlightData where a put result was expected",
                )),
            })
            .boxed();
        Ok(Response {
            headers,
            body,
            trailers,
        })
    }

    async fn do_exchange(
        &self,
        meta: CallMetadata,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<FlightData>>> {
        self.data_stream(
            FlightMethod::DoExchange,
            meta,
            Writes::Streamed,
            data_requests(data),
        )
        .await
    }

    async fn do_action(
        &self,
        meta: CallMetadata,
        action: Action,
    ) -> Result<Response<FlightStream<ActionResult>>> {
        let requests = Requests::One(Bytes::from(action.encode_to_vec()));
        self.streaming(FlightMethod::DoAction, meta, Writes::Fixed, requests)
            .await
    }

    async fn list_actions(
        &self,
        meta: CallMetadata,
        _empty: Empty,
    ) -> Result<Response<FlightStream<ActionType>>> {
        self.streaming(
            FlightMethod::ListActions,
            meta,
            Writes::Fixed,
            Requests::None,
        )
        .await
    }
}
