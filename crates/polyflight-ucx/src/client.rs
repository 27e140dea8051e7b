//! The UCX client transport: [`ClientTransport::call`] over a pool of UCX connections.
//!
//! Calls on one UCX connection are served strictly one at a time (as by Arrow C++ servers), so the
//! client keeps a small pool: a call takes an idle connection or opens a new one, and gives it back
//! when the call is over; at most [`UcxOptions::max_idle_connections`] idle connections are kept.
//! Each connection is one thread owning one worker and one endpoint; the application's side talks
//! to it through bounded channels (request messages in, call events out), so a slow consumer
//! holds the sender back instead of filling memory.
//!
//! On the connection thread, [`run_call`] only moves things: frames between the connection and a
//! [`ClientCall`] (which decides what they mean and what to send), request messages from the
//! application into it, and its events out to the application. Dropping the response stream (or
//! the call's future) before the call ended sends `:cancel:`; an `Err` in the request stream does
//! the same; a cancelled connection is not reused.

use async_trait::async_trait;
use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use polyflight_core::{
    CallMetadata, ClientTransport, FlightError, FlightMethod, Headers, Location, Message,
    MessageStream, Response, Result, Trailers,
};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use crate::conn::FrameConn;
use crate::options::UcxOptions;
use crate::sequence::{ClientCall, ClientEvent};
use crate::thread::{run_worker_thread, WorkerThread};
use crate::ucp::{Context, ErrorHandling, Worker};

/// Call events buffered between a connection thread and the application.
const RESPONSE_BUFFER: usize = 8;
/// Request messages buffered between the application and a connection thread.
const REQUEST_BUFFER: usize = 4;
/// How long closing a connection may wait for the peer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long dropping a client waits, at most, for its connection threads to end.
const DROP_DISCONNECT_WAIT: Duration = Duration::from_secs(1);

/// What the application's request stream hands the connection thread.
enum Outgoing {
    Request(Message),
    /// The request stream ended cleanly.
    End,
    /// The request stream failed: abort the call with this error.
    Failed(FlightError),
}

/// One call for a connection thread to run.
struct CallJob {
    call: ClientCall,
    /// The request messages; closed when the request stream ended cleanly.
    outgoing: mpsc::Receiver<Outgoing>,
    incoming: mpsc::Sender<ClientEvent>,
    /// Told whether the connection can serve another call.
    done: oneshot::Sender<bool>,
}

/// A connection thread, seen from the application: dropping it closes the thread's job channel,
/// and the thread says Disconnect and ends.
struct Connection {
    jobs: mpsc::Sender<CallJob>,
}

/// A client's connections: the idle ones, and every connection thread still running.
#[derive(Default)]
struct Pool {
    idle: Mutex<Vec<Connection>>,
    threads: Mutex<Vec<WorkerThread<()>>>,
    /// The client was dropped: connections coming back from calls are closed, not kept.
    closed: AtomicBool,
}

/// A Flight client over UCX to one server address.
pub(crate) struct UcxClient {
    location: Location,
    addr: SocketAddr,
    context: Arc<Context>,
    options: UcxOptions,
    /// Response frames larger than this break the connection.
    max_message: usize,
    pool: Arc<Pool>,
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
    pub(crate) async fn connect(
        location: Location,
        addr: SocketAddr,
        context: Arc<Context>,
        options: UcxOptions,
        connect_timeout: Option<Duration>,
        max_message: usize,
    ) -> Result<UcxClient> {
        let client = UcxClient {
            location,
            addr,
            context,
            options,
            max_message,
            pool: Arc::new(Pool::default()),
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
        return_to_pool(&self.pool, self.options.max_idle_connections, connection);
    }

    /// Starts a connection thread; `ready` is told once the endpoint is connected.
    fn open(&self, ready: Option<oneshot::Sender<Result<()>>>) -> Result<Connection> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<CallJob>(1);
        let addr = self.addr;
        let errors = self.options.error_handling;
        let max_message = self.max_message;
        let budget = self.options.receive_budget;
        let name = format!("ucx-client-{addr}");
        let thread = run_worker_thread(
            name,
            self.context.clone(),
            self.options.progress,
            move |worker| {
                connection_main(worker, addr, errors, (max_message, budget), jobs_rx, ready)
            },
        )
        .map_err(|e| FlightError::internal(format!("starting a UCX connection thread: {e}")))?;
        // the thread ends by itself when its job channel closes or its connection breaks; it is
        // kept so that dropping the client can wait for it
        if let Ok(mut threads) = self.pool.threads.lock() {
            threads.retain(|t| !t.is_finished());
            threads.push(thread);
        }
        Ok(Connection { jobs: jobs_tx })
    }

    fn take_connection(&self) -> Result<Connection> {
        loop {
            let idle = self
                .pool
                .idle
                .lock()
                .map(|mut idle| idle.pop())
                .unwrap_or(None);
            match idle {
                Some(connection) if !connection.jobs.is_closed() => return Ok(connection),
                Some(_) => continue,
                None => return self.open(None),
            }
        }
    }
}

impl Drop for UcxClient {
    /// Closes every connection and waits (at most [`DROP_DISCONNECT_WAIT`]) for the connection
    /// threads to end. Their Disconnect frames then go out before a process that drops its client
    /// and exits is gone (an Arrow C++ server's connection thread keeps polling a connection that
    /// said nothing), and no thread is still driving a UCX worker when the process's exit
    /// handlers tear UCX down (UCX then aborts).
    fn drop(&mut self) {
        self.pool.closed.store(true, Ordering::Release);
        if let Ok(mut idle) = self.pool.idle.lock() {
            idle.clear();
        }
        let threads = match self.pool.threads.lock() {
            Ok(mut threads) => std::mem::take(&mut *threads),
            Err(_) => return,
        };
        let deadline = Instant::now() + DROP_DISCONNECT_WAIT;
        for thread in &threads {
            if !thread.wait_until(deadline) {
                tracing::debug!("a UCX connection was still closing when its client was dropped");
                break;
            }
        }
    }
}

fn return_to_pool(pool: &Pool, max_idle: usize, connection: Connection) {
    if pool.closed.load(Ordering::Acquire) {
        return;
    }
    if let Ok(mut idle) = pool.idle.lock() {
        if idle.len() < max_idle && !connection.jobs.is_closed() {
            idle.push(connection);
        }
        // otherwise dropping the connection closes its job channel and its thread disconnects
    }
}

#[async_trait]
impl ClientTransport for UcxClient {
    async fn call(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        requests: MessageStream,
    ) -> Result<Response<MessageStream>> {
        let call = ClientCall::new(method, &meta)?;
        let (out_tx, out_rx) = mpsc::channel(REQUEST_BUFFER);
        let (in_tx, mut in_rx) = mpsc::channel(RESPONSE_BUFFER);
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(pump_requests(requests, out_tx));
        let job = CallJob {
            call,
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
        let pool = self.pool.clone();
        let max_idle = self.options.max_idle_connections;
        tokio::spawn(async move {
            if let Ok(true) = done_rx.await {
                return_to_pool(&pool, max_idle, connection);
            }
        });

        // the response headers, or the first event where the server sent none (Arrow C++)
        let (headers, first) = match in_rx.recv().await {
            Some(ClientEvent::Headers(headers)) => (headers, None),
            Some(ClientEvent::End(Err(error), _)) => return Err(error),
            Some(other) => (Headers::new(), Some(other)),
            None => {
                return Err(FlightError::unavailable(format!(
                    "{method}: the UCX connection to {} closed",
                    self.location
                )))
            }
        };
        let trailers = Trailers::default();
        let body = IncomingStream {
            first,
            rx: in_rx,
            trailers: trailers.clone(),
            ended: false,
        };
        Ok(Response {
            headers,
            body: body.boxed(),
            trailers,
        })
    }
}

/// Moves request messages from the application's stream to the connection thread (on the
/// caller's runtime, so application stream code never runs on a UCX thread). A clean end is said
/// with [`Outgoing::End`]: the sender dropped without it (this task dropped with the caller's
/// call or runtime) aborts the call, so an upload cut short never looks complete to the server.
async fn pump_requests(mut stream: MessageStream, tx: mpsc::Sender<Outgoing>) {
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            // the call ended: stop pulling the application's stream
            _ = tx.closed() => return,
        };
        let (outgoing, last) = match item {
            Some(Ok(message)) => (Outgoing::Request(message), false),
            Some(Err(error)) => (Outgoing::Failed(error), true),
            None => (Outgoing::End, true),
        };
        if tx.send(outgoing).await.is_err() || last {
            return;
        }
    }
}

/// The response messages of one call; fills the trailers before it ends.
struct IncomingStream {
    first: Option<ClientEvent>,
    rx: mpsc::Receiver<ClientEvent>,
    trailers: Trailers,
    ended: bool,
}

impl IncomingStream {
    fn convert(&mut self, event: Option<ClientEvent>) -> Option<Result<Message>> {
        match event {
            Some(ClientEvent::Message(message)) => Some(Ok(message)),
            Some(ClientEvent::Headers(_)) => {
                self.ended = true;
                Some(Err(FlightError::invalid_argument(
                    "response headers after the first response message",
                )))
            }
            Some(ClientEvent::End(result, trailers)) => {
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
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(first) = self.first.take() {
            return Poll::Ready(self.convert(Some(first)));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(event) => Poll::Ready(self.convert(event)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The body of a client connection thread: connects, then runs the calls it is given, one at a
/// time, until the job channel closes or the connection breaks.
async fn connection_main(
    worker: Rc<Worker>,
    addr: SocketAddr,
    errors: ErrorHandling,
    (max_message, budget): (usize, usize),
    mut jobs: mpsc::Receiver<CallJob>,
    ready: Option<oneshot::Sender<Result<()>>>,
) {
    let conn = match FrameConn::connect(&worker, addr, errors) {
        Ok(conn) => conn
            .with_max_frame_size(max_message)
            .with_receive_budget(budget),
        Err(error) => {
            if let Some(ready) = ready {
                let _ = ready.send(Err(error));
            }
            return;
        }
    };
    if let Some(ready) = ready {
        let connected =
            conn.endpoint().flush().await.map_err(|e| {
                FlightError::unavailable(format!("cannot connect to ucx://{addr}: {e}"))
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
    conn.disconnect(CLOSE_TIMEOUT).await;
}

/// Runs one call on the connection thread: starts the call's frames as the [`ClientCall`] queues
/// them (at most one request send in flight, which holds the application back), feeds it the
/// server's frames and the application's requests, and hands its events to the application (one
/// at a time: the next frame is read only once the last event is taken, the back-pressure on the
/// server). Returns whether the connection can serve another call.
async fn run_call(conn: &FrameConn, job: CallJob) -> bool {
    let CallJob {
        mut call,
        mut outgoing,
        incoming,
        done,
    } = job;
    let mut sending: FuturesUnordered<LocalBoxFuture<'static, Result<()>>> =
        FuturesUnordered::new();
    let mut pending: Option<ClientEvent> = None;
    loop {
        while let Some(frame) = call.poll_transmit() {
            // started (and numbered) now, so frames go out in the order the call queued them
            sending.push(Box::pin(conn.send(frame.frame_type, frame.body)));
        }
        if pending.is_none() {
            pending = call.poll_event();
        }
        if call.is_over() && pending.is_none() && sending.is_empty() {
            break;
        }
        tokio::select! {
            Some(sent) = sending.next(), if !sending.is_empty() => {
                if let Err(error) = sent {
                    tracing::debug!(%error, "sending a UCX frame");
                    call.connection_failed(error);
                }
            }
            permit = incoming.reserve(), if pending.is_some() => match permit {
                Ok(permit) => {
                    if let Some(event) = pending.take() {
                        permit.send(event);
                    }
                }
                // the application went away
                Err(_) => {
                    pending = None;
                    call.cancel();
                }
            },
            _ = incoming.closed(), if pending.is_none() && !call.is_over() => call.cancel(),
            frame = conn.recv(), if call.wants_frames() && pending.is_none() => match frame {
                Ok(frame) => call.handle_frame(frame),
                Err(error) => call.connection_failed(error),
            },
            item = outgoing.recv(), if call.wants_requests() && sending.is_empty() => match item {
                Some(Outgoing::Request(message)) => call.send_request(message),
                Some(Outgoing::End) => call.requests_done(),
                Some(Outgoing::Failed(error)) => call.requests_failed(error),
                None => call.requests_failed(FlightError::cancelled(
                    "the request stream was dropped before it ended",
                )),
            },
            else => {
                // nothing left to wait for, yet the call is not over: do not reuse the connection
                call.connection_failed(FlightError::internal("the UCX call stalled"));
                break;
            }
        }
    }
    let reusable = call.reusable() && conn.error().is_none();
    let _ = done.send(reusable);
    reusable
}
