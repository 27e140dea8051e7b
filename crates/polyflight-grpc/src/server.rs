//! The gRPC server: accepts connections from an [`Acceptor`] (TCP here; TLS and Unix sockets
//! plug in the same way), serves HTTP/2 on each with hyper, and turns every gRPC request into a
//! call on the [`CallHandler`] it serves (in a server, the core's dispatcher). Status, error details and response metadata are written as
//! gRPC and Arrow C++ peers expect them.

use crate::body::{DecodeBody, Direction, EncodeBody, Payload, Role};
use crate::budget::{Pool, StreamBudget};
use crate::coalesce::Coalesced;
use crate::wire;
use crate::{GrpcSettings, SERVICE_PATH};
use async_trait::async_trait;
use futures::StreamExt;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use polyflight_core::{
    CallHandler, FlightError, FlightMethod, IncomingCall, Listener, Location, PeerInfo, Result,
};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// A byte stream a connection runs over (TCP, TLS, Unix socket …).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`].
pub type BoxedIo = Box<dyn Io>;

/// A source of incoming connections, each with what is known of its peer.
#[async_trait]
pub trait Acceptor: Send + Sync + 'static {
    /// Waits for the next connection. Errors on one connection (a failed TLS handshake, say)
    /// should be logged and skipped by the implementation, not returned, unless the listening
    /// socket itself failed.
    async fn accept(&self) -> std::io::Result<(BoxedIo, PeerInfo)>;
}

/// A running gRPC listener.
pub struct GrpcListener {
    location: Location,
    stop: Option<oneshot::Sender<Duration>>,
    task: Option<JoinHandle<()>>,
}

/// Starts serving `handler` on the connections `acceptor` yields; `location` is what the
/// listener reports (with the real port).
///
/// Each connection is watched: it is closed if it has not sent the HTTP/2 preface within the
/// handshake timeout, and closed gracefully (GOAWAY) once it has had no call in progress for
/// the idle timeout. Connections beyond the cap are closed as soon as they are accepted.
pub fn serve(
    acceptor: impl Acceptor,
    location: Location,
    handler: Arc<dyn CallHandler>,
    settings: GrpcSettings,
) -> GrpcListener {
    let (stop, mut stopped) = oneshot::channel::<Duration>();
    let settings = Arc::new(settings);
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        let closing = CancellationToken::new();
        let limits = settings.connections;
        let listener_budget = Pool::new(settings.listener_request_budget);
        let grace = loop {
            tokio::select! {
                grace = &mut stopped => break grace.unwrap_or(Duration::ZERO),
                accepted = acceptor.accept() => match accepted {
                    Ok((io, peer)) => {
                        if limits.max_connections.is_some_and(|max| connections.len() >= max) {
                            refused_connection(&peer, connections.len());
                            drop(io);
                            continue;
                        }
                        connections.spawn(serve_connection(
                            io,
                            peer,
                            handler.clone(),
                            settings.clone(),
                            listener_budget.clone(),
                            closing.clone(),
                        ));
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "accepting a connection failed");
                        // Avoid a hot loop when the socket keeps failing (e.g. out of fds).
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        };
        // Stop accepting, ask every connection to finish (GOAWAY), wait up to the grace period,
        // then cut what is left.
        drop(acceptor);
        closing.cancel();
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::debug!("grace period over; closing remaining connections");
        }
        connections.shutdown().await;
    });
    GrpcListener {
        location,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Logs a connection refused at the cap (rate-limited).
fn refused_connection(peer: &PeerInfo, open: usize) {
    crate::log::limit_reached(
        "max_connections",
        format_args!("connection limit reached ({open} open): refusing {peer:?}"),
    );
}

/// What a connection's watchdog knows: bytes read so far (for the handshake timeout) and the
/// calls in progress (for the idle timeout).
#[derive(Default)]
struct Activity {
    bytes_read: AtomicU64,
    calls: AtomicUsize,
    /// Told when a call ends, so the idle timer starts again.
    changed: Notify,
}

/// How long an idle connection told to go away (GOAWAY, then a PING whose answer lets the server
/// close cleanly) may take before it is cut.
const IDLE_CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// Bytes a client sends before its first HTTP/2 frame's payload: the 24-byte connection
/// preface and a 9-byte frame header (its SETTINGS).
const PREFACE_AND_FRAME_HEADER: u64 = 24 + 9;

/// Serves one connection until it ends, the listener shuts down, or a timeout closes it.
async fn serve_connection(
    io: BoxedIo,
    peer: PeerInfo,
    handler: Arc<dyn CallHandler>,
    settings: Arc<GrpcSettings>,
    listener_budget: Pool,
    closing: CancellationToken,
) {
    let activity = Arc::new(Activity::default());
    let connection_budget = Pool::new(settings.connection_request_budget);
    // cancelled when this function returns, however it returns: streams waiting for budget give up
    let connection_closed = CancellationToken::new();
    let _closed_on_return = connection_closed.clone().drop_guard();
    let io = Watched {
        io,
        activity: activity.clone(),
    };
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        let settings = settings.clone();
        let peer = peer.clone();
        move |req| {
            let handler = handler.clone();
            let settings = settings.clone();
            let peer = peer.clone();
            let call = CallInProgress::start(activity.clone());
            let budget = StreamBudget::new(
                connection_budget.clone(),
                listener_budget.clone(),
                connection_closed.clone(),
                settings.request_budget_wait,
            );
            async move {
                let response = handle(req, handler, peer, &settings, budget).await;
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _call: call }))
            }
        }
    });
    let conn = http2_builder(&settings).serve_connection(TokioIo::new(Coalesced::new(io)), service);
    let mut conn = std::pin::pin!(conn);
    let limits = settings.connections;
    let mut shutting_down = false;
    let handshake = async {
        match limits.handshake_timeout {
            Some(limit) => {
                tokio::time::sleep(limit).await;
                activity.bytes_read.load(Ordering::Relaxed) < PREFACE_AND_FRAME_HEADER
            }
            None => std::future::pending().await,
        }
    };
    let mut handshake = std::pin::pin!(handshake);
    let mut handshake_done = false;
    let give_up = tokio::time::sleep(Duration::MAX);
    let mut give_up = std::pin::pin!(give_up);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(peer = ?peer, error = %err, "gRPC connection ended with an error");
                }
                return;
            }
            too_slow = &mut handshake, if !handshake_done => {
                handshake_done = true;
                if too_slow {
                    tracing::debug!(peer = ?peer, "no HTTP/2 preface within the handshake timeout: closing");
                    return;
                }
            }
            () = idle(&activity, limits.idle_timeout), if !shutting_down => {
                tracing::debug!(peer = ?peer, "connection idle: closing");
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
                give_up.as_mut().reset(tokio::time::Instant::now() + IDLE_CLOSE_LIMIT);
            }
            () = &mut give_up, if shutting_down => {
                // the peer did not answer the GOAWAY's PING: cut the connection
                return;
            }
            () = closing.cancelled(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves once the connection has had no call in progress for `timeout`.
async fn idle(activity: &Activity, timeout: Option<Duration>) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    loop {
        let changed = activity.changed.notified();
        if activity.calls.load(Ordering::Acquire) == 0 {
            if tokio::time::timeout(timeout, changed).await.is_err()
                && activity.calls.load(Ordering::Acquire) == 0
            {
                return;
            }
        } else {
            changed.await;
        }
    }
}

/// One call in progress on a connection, until its response body is done or dropped.
struct CallInProgress(Arc<Activity>);

impl CallInProgress {
    fn start(activity: Arc<Activity>) -> Self {
        activity.calls.fetch_add(1, Ordering::AcqRel);
        activity.changed.notify_waiters();
        CallInProgress(activity)
    }
}

impl Drop for CallInProgress {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its call counted as in progress.
struct Tracked {
    body: EncodeBody,
    _call: CallInProgress,
}

impl http_body::Body for Tracked {
    type Data = <EncodeBody as http_body::Body>::Data;
    type Error = <EncodeBody as http_body::Body>::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Self::Data>, Self::Error>>>
    {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A connection's byte stream, counting what it reads for the handshake timeout.
struct Watched {
    io: BoxedIo,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            self.activity.bytes_read.fetch_add(read, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

fn http2_builder(settings: &GrpcSettings) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_stream_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window)
        .max_frame_size(settings.max_frame_size)
        .max_send_buf_size(settings.max_send_buffer)
        .max_header_list_size(settings.max_header_list_size)
        .max_concurrent_streams(settings.max_concurrent_streams)
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout);
    builder
}

#[async_trait]
impl Listener for GrpcListener {
    fn location(&self) -> &Location {
        &self.location
    }

    async fn shutdown(mut self: Box<Self>, grace: Duration) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(grace);
        }
        if let Some(task) = self.task.take() {
            task.await
                .map_err(|e| FlightError::internal(format!("gRPC listener task failed: {e}")))?;
        }
        Ok(())
    }
}

impl Drop for GrpcListener {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn flight_method(path: &str) -> Option<FlightMethod> {
    path.strip_prefix(SERVICE_PATH)
        .and_then(|p| p.strip_prefix('/'))
        .and_then(FlightMethod::from_name)
}

/// True for `application/grpc`, `application/grpc+proto`, `application/grpc;…`.
fn is_grpc_content_type(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
}

/// A response that is only headers: an error before any message (gRPC "trailers-only").
fn trailers_only(err: FlightError) -> Response<EncodeBody> {
    let mut response = Response::new(EncodeBody::empty());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.extend(wire::status_headers(&Err(err)));
    response
}

async fn handle(
    req: Request<Incoming>,
    handler: Arc<dyn CallHandler>,
    peer: PeerInfo,
    settings: &GrpcSettings,
    budget: StreamBudget,
) -> Response<EncodeBody> {
    if !is_grpc_content_type(req.headers()) {
        // The gRPC spec: a request whose content-type does not begin with application/grpc is
        // answered 415, so an HTTP client never takes a gRPC error (status 200) for success.
        crate::log::refused_input(
            "content-type",
            &peer,
            format_args!(
                "not a gRPC request (content-type {:?}): answered 415",
                req.headers().get(http::header::CONTENT_TYPE)
            ),
        );
        let mut response = trailers_only(FlightError::invalid_argument(
            "not a gRPC request: content-type must be application/grpc",
        ));
        *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return response;
    }
    let Some(method) = flight_method(req.uri().path()) else {
        crate::log::refused_input(
            "method",
            &peer,
            format_args!("unknown gRPC method {}", req.uri().path()),
        );
        return trailers_only(FlightError::unimplemented(format!(
            "unknown gRPC method {}",
            req.uri().path()
        )));
    };
    let (parts, body) = req.into_parts();
    let timeout = parts
        .headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(wire::parse_timeout);
    let call = IncomingCall {
        method,
        headers: wire::headers_from_http(&parts.headers),
        peer,
        timeout,
    };
    let requests = DecodeBody::new(
        body,
        Payload::requests_of(method),
        Direction::Request,
        settings.max_decoding_message_size,
    )
    .with_budget(budget, settings.max_decoding_message_size)
    .inspect({
        let peer = call.peer.clone();
        move |item| {
            if let Err(err) = item {
                if err.code() != polyflight_core::FlightCode::Cancelled {
                    crate::log::refused_input(
                        "request",
                        &peer,
                        format_args!("{method}: request refused: {err}"),
                    );
                }
            }
        }
    })
    .boxed();
    // A one-message request stays open until the client ends it; the response waits for that
    // before its end (see `tail`).
    let (requests, mut request_tail) = if method.client_streaming() {
        (requests, None)
    } else {
        let (message, tail) = crate::tail::split(requests);
        (message.boxed(), Some(tail))
    };
    let response = handler.call(call, requests).await.and_then(|response| {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        match wire::headers_to_http(&response.headers, &mut headers) {
            Ok(()) => Ok((response, headers)),
            Err(err) => Err(FlightError::internal(format!(
                "the service set an invalid response header: {}",
                err.message()
            ))),
        }
    });
    match response {
        Ok((response, headers)) => {
            let mut body = EncodeBody::new(
                response.body,
                Role::Server {
                    trailers: response.trailers,
                },
                settings.max_encoding_message_size,
            );
            if let Some(tail) = request_tail {
                body = body.after_request(tail);
            }
            let mut http_response = Response::new(body);
            *http_response.headers_mut() = headers;
            http_response
        }
        // Answered from the headers alone, and only once the request has ended (or the wait
        // is over), like a response that ends with its trailers.
        Err(err) => {
            if let Some(tail) = request_tail.as_mut() {
                tail.end().await;
            }
            trailers_only(err)
        }
    }
}
