//! The UCX server transport: a listener handing each call to the [`CallHandler`].
//!
//! A listener thread (its own worker) accepts connection requests and gives each connection its
//! own thread and worker, as Arrow C++ does. A connection serves its calls one at a time: between
//! calls, [`idle_frame`] says what a frame means; during a call, [`ConnectionServer::serve_call`]
//! only moves things — frames between the connection and a [`ServerCall`] (which decides what
//! they mean and what to send), request messages to the handler and its answer back — while the
//! handler runs on the application's runtime, reached through bounded channels. The listener
//! thread lives until every connection thread has ended, because UCX keeps the accepted
//! connections' connection-management sockets on the listener's worker.
//!
//! When the client sends `:cancel:` or goes away, the handler is stopped (its response stream
//! dropped, which the core turns into cancellation).

use async_trait::async_trait;
use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use polyflight_core::{
    CallHandler, FlightError, Headers, IncomingCall, Listener, Location, Message, MessageStream,
    PeerInfo, Result, Scheme,
};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Sleep;

use crate::conn::FrameConn;
use crate::options::UcxOptions;
use crate::sequence::{idle_frame, CallStart, Idle, ServerCall, ServerEvent};
use crate::thread::{run_worker_thread, WorkerThread};
use crate::ucp::{self, ConnectionRequest, Context, Endpoint};

/// Handler output buffered between the handler task and the connection thread.
const RESPONSE_BUFFER: usize = 4;
/// Request messages buffered between the connection thread and the handler.
const REQUEST_BUFFER: usize = 4;
/// How long closing a connection may wait for the peer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The connection limits of a listener (from `ListenOptions`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A connection that sends no frame this long after it was accepted is closed.
    pub handshake_timeout: Option<Duration>,
    /// A connection with no call for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Connection requests beyond this many live connections are rejected.
    pub max_connections: Option<usize>,
    /// Frames larger than this (`max_decoding_message_size`) break the connection.
    pub max_message: usize,
    /// The bytes of received frames a connection holds before the handler takes them.
    pub receive_budget: usize,
    /// How long a connection may stay at its receive budget before its call is refused.
    pub receive_budget_wait: Duration,
}

/// A UCX listener serving a call handler.
pub(crate) struct UcxListener {
    location: Location,
    stop: Option<watch::Sender<Option<Duration>>>,
    thread: Option<WorkerThread<()>>,
}

impl UcxListener {
    /// Binds `addr` and starts serving `handler` (which runs on `runtime`).
    pub(crate) async fn bind(
        addr: SocketAddr,
        host: &str,
        context: Arc<Context>,
        handler: Arc<dyn CallHandler>,
        options: UcxOptions,
        limits: Limits,
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
                        // whatever UCX's reason, the address cannot be served
                        let _ = bound_tx.send(Err(FlightError::unavailable(error.to_string())));
                        return;
                    }
                };
                let _ = bound_tx.send(Ok(listener.local_addr()));
                accept_loop(
                    listener, context, handler, options, limits, runtime, stop_rx,
                )
                .await;
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
            thread.join()?;
        }
        Ok(())
    }
}

async fn accept_loop(
    listener: ucp::Listener,
    context: Arc<Context>,
    handler: Arc<dyn CallHandler>,
    options: UcxOptions,
    limits: Limits,
    runtime: Handle,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut connections: Vec<WorkerThread<()>> = Vec::new();
    let mut last_refusal_logged: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            request = listener.accept() => {
                connections.retain(|c| !c.is_finished());
                if limits.max_connections.is_some_and(|max| connections.len() >= max) {
                    // rejected before any worker or thread is spent on it
                    let now = std::time::Instant::now();
                    if last_refusal_logged.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                        last_refusal_logged = Some(now);
                        tracing::warn!(
                            peer = ?request.remote_addr(),
                            open = connections.len(),
                            "UCX connection limit reached: rejecting connections"
                        );
                    }
                    listener.reject(request);
                    continue;
                }
                match spawn_connection(request, &context, &handler, &options, limits, &runtime, stop.clone()) {
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
    handler: &Arc<dyn CallHandler>,
    options: &UcxOptions,
    limits: Limits,
    runtime: &Handle,
    stop: watch::Receiver<Option<Duration>>,
) -> std::io::Result<WorkerThread<()>> {
    let peer = request
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let handler = handler.clone();
    let runtime = runtime.clone();
    run_worker_thread(
        format!("ucx-conn-{peer}"),
        context.clone(),
        options.progress,
        move |worker| async move {
            let accepted = Endpoint::accept(&worker, request)
                .map_err(FlightError::from)
                .and_then(FrameConn::new)
                .map(|conn| {
                    conn.with_max_frame_size(limits.max_message)
                        .with_receive_budget(limits.receive_budget)
                });
            let conn = match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "accepting a UCX connection");
                    return;
                }
            };
            let server = ConnectionServer {
                conn,
                handler,
                runtime,
                peer,
                limits,
            };
            server.serve(stop).await;
            server.conn.close(CLOSE_TIMEOUT).await;
        },
    )
}

/// What the handler task sends back for a call.
enum Outgoing {
    Headers(Headers),
    Message(Message),
    End(Result<()>, Headers),
}

/// One accepted connection, serving its calls one at a time.
struct ConnectionServer {
    conn: FrameConn,
    handler: Arc<dyn CallHandler>,
    runtime: Handle,
    peer: String,
    limits: Limits,
}

impl ConnectionServer {
    async fn serve(&self, mut stop: watch::Receiver<Option<Duration>>) {
        // until its first frame, a connection has the handshake timeout; between calls, the idle one
        let mut wait = self.limits.handshake_timeout;
        loop {
            let expired = async {
                match wait {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            let frame = tokio::select! {
                frame = self.conn.recv() => frame,
                _ = stop.changed() => return,
                () = expired => {
                    tracing::debug!(peer = %self.peer, "UCX connection silent or idle for too long; closing");
                    return;
                }
                // between calls every frame is read at once, so only frames held back behind a
                // missing one can fill the budget: the peer broke the sequence
                () = self.conn.receive_budget().stalled(self.limits.receive_budget_wait) => {
                    self.budget_stalled("between calls");
                    return;
                }
            };
            wait = self.limits.idle_timeout;
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    tracing::debug!(%error, peer = %self.peer, "UCX connection ended");
                    return;
                }
            };
            match idle_frame(&frame) {
                Idle::Call(start) => {
                    if !self.serve_call(start, &mut stop).await {
                        return;
                    }
                }
                Idle::Reject(status) => {
                    if let Err(error) = self.conn.send(status.frame_type, status.body).await {
                        tracing::debug!(%error, "sending a UCX status");
                        return;
                    }
                }
                Idle::Skip => {}
                Idle::Close(None) => return,
                Idle::Close(Some(error)) => {
                    tracing::debug!(%error, peer = %self.peer, "malformed Headers frame; closing");
                    return;
                }
            }
        }
    }

    /// Serves one call; returns whether the connection can go on.
    ///
    /// Frames the [`ServerCall`] queues are started at once (in order) and at most one handler
    /// output is taken while a send is in flight, which holds a fast handler back; the next
    /// client frame is read only once the handler took the last request, which holds a fast
    /// client back.
    async fn serve_call(
        &self,
        start: CallStart,
        stop: &mut watch::Receiver<Option<Duration>>,
    ) -> bool {
        let mut call = ServerCall::new(&start);
        let incoming = IncomingCall {
            method: start.method,
            headers: start.headers,
            peer: PeerInfo::new(Scheme::Ucx, self.peer.clone()),
            timeout: start.timeout,
        };
        let mut link = HandlerLink::start(&self.runtime, self.handler.clone(), incoming);
        let mut sending: FuturesUnordered<LocalBoxFuture<'static, Result<()>>> =
            FuturesUnordered::new();
        let mut stopping = false;
        let mut grace: Option<Pin<Box<Sleep>>> = None;
        loop {
            while let Some(frame) = call.poll_transmit() {
                sending.push(Box::pin(self.conn.send(frame.frame_type, frame.body)));
            }
            link.take_events(&mut call);
            if call.is_over() && sending.is_empty() {
                break;
            }
            tokio::select! {
                Some(sent) = sending.next(), if !sending.is_empty() => {
                    if let Err(error) = sent {
                        tracing::debug!(%error, "sending a UCX frame");
                        call.connection_failed(error);
                    }
                }
                permit = reserve(link.feed.clone()), if link.pending.is_some() => match permit {
                    Some(permit) => {
                        if let Some(message) = link.pending.take() {
                            permit.send(message);
                        }
                    }
                    // the handler dropped its request stream: the rest is dropped
                    None => link.stopped_reading(),
                },
                frame = self.conn.recv(), if call.wants_frames() && link.pending.is_none() => {
                    match frame {
                        Ok(frame) => call.handle_frame(frame),
                        Err(error) => call.connection_failed(error),
                    }
                }
                out = link.output.recv(), if link.output_open && call.wants_responses() && sending.is_empty() => {
                    match out {
                        Some(Outgoing::Headers(headers)) => call.send_headers(headers),
                        Some(Outgoing::Message(message)) => call.send_message(message),
                        Some(Outgoing::End(result, trailers)) => {
                            link.output_open = false;
                            call.send_status(result, trailers);
                        }
                        None => {
                            link.output_open = false;
                            call.handler_gone();
                        }
                    }
                }
                changed = stop.changed(), if !stopping => {
                    stopping = true;
                    let limit = match changed {
                        Ok(()) => stop.borrow().unwrap_or(Duration::ZERO),
                        Err(_) => Duration::ZERO,
                    };
                    if limit.is_zero() {
                        call.shutdown();
                    } else {
                        // let the call finish within the grace period
                        grace = Some(Box::pin(tokio::time::sleep(limit)));
                    }
                }
                () = expire(&mut grace), if grace.is_some() => {
                    grace = None;
                    call.shutdown();
                }
                // the handler has not taken the requests the budget holds for too long
                () = self.conn.receive_budget().stalled(self.limits.receive_budget_wait), if call.wants_frames() => {
                    let error = self.budget_stalled("the handler is not reading its requests");
                    link.fail_requests(error.clone());
                    call.refuse(error);
                }
                else => {
                    // nothing left to wait for, yet the call is not over: end it and the connection
                    call.connection_failed(FlightError::internal("the UCX call stalled"));
                }
            }
        }
        link.close();
        !stopping && call.reusable()
    }

    /// The connection stayed at its receive budget for the wait limit: logs it, gives up what
    /// the connection holds (nothing more of it is read), and returns the error for the call.
    fn budget_stalled(&self, why: &str) -> FlightError {
        let budget = self.conn.receive_budget().limit();
        let wait = self.limits.receive_budget_wait;
        crate::log::limit_reached(
            "UCX receive budget",
            &self.peer,
            format_args!(
                "a UCX connection held its receive budget of {budget} bytes for {wait:?} \
                 ({why}); refusing its call and closing it"
            ),
        );
        self.conn.discard_received();
        crate::conn::budget_spent(budget, format_args!("waited {wait:?}; {why}"))
    }
}

/// The connection thread's end of one running handler: the feed of its request stream and its
/// output. The handler itself runs on the application's runtime.
struct HandlerLink {
    task: JoinHandle<()>,
    /// The handler's request stream; `None` once the requests ended or it stopped reading.
    feed: Option<mpsc::Sender<Message>>,
    /// The error its request stream ends with, set before the feed closes.
    request_error: RequestError,
    /// A request waiting for room in the handler's request stream.
    pending: Option<Message>,
    output: mpsc::Receiver<Outgoing>,
    /// The handler's output is still read (no outcome yet, not stopped).
    output_open: bool,
}

impl HandlerLink {
    fn start(runtime: &Handle, handler: Arc<dyn CallHandler>, call: IncomingCall) -> Self {
        let (request_tx, request_rx) = mpsc::channel::<Message>(REQUEST_BUFFER);
        let request_error = RequestError::default();
        let (out_tx, output) = mpsc::channel::<Outgoing>(RESPONSE_BUFFER);
        let requests = request_stream(request_rx, request_error.clone());
        let task = runtime.spawn(run_handler(handler, call, requests, out_tx));
        HandlerLink {
            task,
            feed: Some(request_tx),
            request_error,
            pending: None,
            output,
            output_open: true,
        }
    }

    /// Acts on the call's events, up to the first request that has to wait for the handler.
    fn take_events(&mut self, call: &mut ServerCall) {
        while self.pending.is_none() {
            match call.poll_event() {
                Some(ServerEvent::Request(message)) if self.feed.is_some() => {
                    self.pending = Some(message)
                }
                // the handler stopped reading its requests: dropped
                Some(ServerEvent::Request(_)) => {}
                Some(ServerEvent::RequestsEnd(error)) => {
                    // set before the channel closes, so the stream ends with the error
                    if let (Some(error), Ok(mut slot)) = (error, self.request_error.lock()) {
                        *slot = Some(error);
                    }
                    self.feed = None;
                }
                Some(ServerEvent::StopHandler) => {
                    self.task.abort();
                    self.output.close();
                    self.output_open = false;
                    self.feed = None;
                }
                None => break,
            }
        }
    }

    /// The handler's requests end with `error` now, whatever was waiting for it: the error is
    /// set before the feed closes, so the handler cannot take the end for a clean one.
    fn fail_requests(&mut self, error: FlightError) {
        if let Ok(mut slot) = self.request_error.lock() {
            slot.get_or_insert(error);
        }
        self.pending = None;
        self.feed = None;
    }

    /// The handler dropped its request stream: later requests are dropped.
    fn stopped_reading(&mut self) {
        self.pending = None;
        self.feed = None;
    }

    /// The call is over: the handler is done or stopped; its channels close.
    fn close(mut self) {
        self.feed = None;
        self.output.close();
    }
}

/// The permit to hand the handler its next request; `None` once it dropped its request stream
/// (or there is no stream to feed). Owned, so the feed can change while the permit is held.
async fn reserve(feed: Option<mpsc::Sender<Message>>) -> Option<mpsc::OwnedPermit<Message>> {
    match feed {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => None,
    }
}

/// Resolves when the grace period (if any) is over.
async fn expire(grace: &mut Option<Pin<Box<Sleep>>>) {
    match grace {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
    }
}

/// Set when the request stream ends with an error; the handler's stream yields it at its end.
type RequestError = Arc<Mutex<Option<FlightError>>>;

/// The handler's view of the call's requests: the messages the connection thread hands over,
/// ending with the error it set (if any) once the channel closes, never with a silent end when
/// the client cancelled or went away.
fn request_stream(rx: mpsc::Receiver<Message>, error: RequestError) -> MessageStream {
    futures::stream::unfold(Some(rx), move |rx| {
        let error = error.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(message) => Some((Ok(message), Some(rx))),
                None => {
                    let failed = error.lock().ok().and_then(|mut slot| slot.take());
                    failed.map(|e| (Err(e), None))
                }
            }
        }
    })
    .boxed()
}

/// Runs one call through the handler on the application's runtime and sends its answer back:
/// the response headers, every response message, then the outcome with the trailers. When the
/// connection side goes away the response stream is dropped here, which cancels the handler.
async fn run_handler(
    handler: Arc<dyn CallHandler>,
    call: IncomingCall,
    requests: MessageStream,
    out: mpsc::Sender<Outgoing>,
) {
    let response = match handler.call(call, requests).await {
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
        let end = match next {
            Some(Ok(message)) => {
                if out.send(Outgoing::Message(message)).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Err(error)) => Err(error),
            None => Ok(()),
        };
        let _ = out.send(Outgoing::End(end, response.trailers.get())).await;
        return;
    }
}
