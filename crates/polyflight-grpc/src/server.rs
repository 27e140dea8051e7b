//! The gRPC server: accepts connections from an [`Acceptor`] (TCP here; TLS and Unix sockets
//! plug in the same way), serves HTTP/2 on each with hyper, and turns every gRPC request into a
//! call on the [`CallHandler`] it serves (in a server, the core's dispatcher). Status, error details and response metadata are written as
//! gRPC and Arrow C++ peers expect them.

use crate::body::{DecodeBody, Direction, EncodeBody, Payload, Role};
use crate::wire;
use crate::{GrpcSettings, SERVICE_PATH};
use async_trait::async_trait;
use futures::StreamExt;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use polyflight_core::{
    CallHandler, FlightError, FlightMethod, IncomingCall, Listener, Location, PeerInfo, Result,
};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

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
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let grace = loop {
            tokio::select! {
                grace = &mut stopped => break grace.unwrap_or(Duration::ZERO),
                accepted = acceptor.accept() => match accepted {
                    Ok((io, peer)) => {
                        let conn = http2_builder(&settings).serve_connection(
                            TokioIo::new(io),
                            hyper::service::service_fn({
                                let handler = handler.clone();
                                let settings = settings.clone();
                                move |req| {
                                    let handler = handler.clone();
                                    let settings = settings.clone();
                                    let peer = peer.clone();
                                    async move {
                                        Ok::<_, Infallible>(handle(req, handler, peer, &settings).await)
                                    }
                                }
                            }),
                        );
                        let conn = graceful.watch(conn);
                        connections.spawn(async move {
                            if let Err(err) = conn.await {
                                tracing::debug!(error = %err, "gRPC connection ended with an error");
                            }
                        });
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
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
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

fn http2_builder(settings: &GrpcSettings) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window)
        .max_frame_size(settings.max_frame_size)
        .max_send_buf_size(settings.max_send_buffer)
        .max_header_list_size(settings.max_header_list_size);
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
) -> Response<EncodeBody> {
    if !is_grpc_content_type(req.headers()) {
        // The gRPC spec: a request whose content-type does not begin with application/grpc is
        // answered 415, so an HTTP client never takes a gRPC error (status 200) for success.
        let mut response = trailers_only(FlightError::invalid_argument(
            "not a gRPC request: content-type must be application/grpc",
        ));
        *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return response;
    }
    let Some(method) = flight_method(req.uri().path()) else {
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
    .boxed();
    match handler.call(call, requests).await {
        Ok(response) => {
            let body = EncodeBody::new(
                response.body,
                Role::Server {
                    trailers: response.trailers,
                },
                settings.max_encoding_message_size,
            );
            let mut http_response = Response::new(body);
            let headers = http_response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            if let Err(err) = wire::headers_to_http(&response.headers, headers) {
                return trailers_only(FlightError::internal(format!(
                    "the service set an invalid response header: {}",
                    err.message()
                )));
            }
            http_response
        }
        Err(err) => trailers_only(err),
    }
}
