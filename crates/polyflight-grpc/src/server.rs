//! The gRPC server: accepts connections from an [`Acceptor`] (TCP here; TLS and Unix sockets
//! plug in the same way), serves HTTP/2 on each with hyper, and turns every gRPC request into a
//! call on the core [`Dispatcher`]. Status, error details and response metadata are written as
//! gRPC and Arrow C++ peers expect them.

use crate::body::{self, OutBody};
use crate::wire::{self, SegmentedBuf};
use crate::{GrpcSettings, SERVICE_PATH};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use polyflight_core::proto::{Criteria, FlightDescriptor, Ticket};
use polyflight_core::transport::Response as FlightResponse;
use polyflight_core::{
    Dispatcher, FlightError, FlightMethod, FlightStream, IncomingCall, Listener, Location,
    PeerInfo, Result,
};
use prost::Message;
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

/// Starts serving `dispatcher` on the connections `acceptor` yields; `location` is what the
/// listener reports (with the real port).
pub fn serve(
    acceptor: impl Acceptor,
    location: Location,
    dispatcher: Dispatcher,
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
                                let dispatcher = dispatcher.clone();
                                let settings = settings.clone();
                                move |req| {
                                    let dispatcher = dispatcher.clone();
                                    let settings = settings.clone();
                                    let peer = peer.clone();
                                    async move {
                                        Ok::<_, Infallible>(handle(req, dispatcher, peer, &settings).await)
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

/// A response that is only headers: an error before any message (gRPC "trailers-only").
fn trailers_only(err: FlightError) -> Response<OutBody> {
    let mut response = Response::new(body::empty_body());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.extend(wire::status_headers(&Err(err)));
    response
}

type Encoded = BoxStream<'static, Result<Vec<Bytes>>>;

fn encode_messages<T: Message + Send + 'static>(stream: FlightStream<T>, max: usize) -> Encoded {
    stream
        .map(move |item| item.and_then(|m| wire::encode_message(&m, max).map(|b| vec![b])))
        .boxed()
}

fn encode_data(stream: FlightStream<polyflight_core::FlightData>, max: usize) -> Encoded {
    stream
        .map(move |item| item.and_then(|d| wire::encode_flight_data(&d, max)))
        .boxed()
}

fn once<T: Send + 'static>(response: FlightResponse<T>) -> FlightResponse<FlightStream<T>> {
    response.map(|m| futures::stream::iter([Ok(m)]).boxed())
}

async fn single_request<T: Message + Default>(
    mut messages: BoxStream<'static, Result<SegmentedBuf>>,
    what: &str,
) -> Result<T> {
    match messages.try_next().await? {
        Some(message) => wire::decode_message(message, what),
        None => Err(FlightError::invalid_argument(format!(
            "request carried no {what} message"
        ))),
    }
}

async fn handle(
    req: Request<Incoming>,
    dispatcher: Dispatcher,
    peer: PeerInfo,
    settings: &GrpcSettings,
) -> Response<OutBody> {
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
    let messages = body::in_messages(
        body,
        settings.max_decoding_message_size,
        false,
        |e| FlightError::cancelled(format!("the client aborted the call: {e}")),
        None,
    );
    let max = settings.max_encoding_message_size;
    let result: Result<FlightResponse<Encoded>> = async {
        use FlightMethod as M;
        Ok(match method {
            M::Handshake => {
                let requests =
                    body::decode_each(messages, |m| wire::decode_message(m, "HandshakeRequest"));
                dispatcher
                    .handshake(call, requests)
                    .await?
                    .map(|s| encode_messages(s, max))
            }
            M::ListFlights => {
                let criteria: Criteria = single_request(messages, "Criteria").await?;
                dispatcher
                    .list_flights(call, criteria)
                    .await?
                    .map(|s| encode_messages(s, max))
            }
            M::GetFlightInfo => {
                let d: FlightDescriptor = single_request(messages, "FlightDescriptor").await?;
                once(dispatcher.get_flight_info(call, d).await?).map(|s| encode_messages(s, max))
            }
            M::PollFlightInfo => {
                let d: FlightDescriptor = single_request(messages, "FlightDescriptor").await?;
                once(dispatcher.poll_flight_info(call, d).await?).map(|s| encode_messages(s, max))
            }
            M::GetSchema => {
                let d: FlightDescriptor = single_request(messages, "FlightDescriptor").await?;
                once(dispatcher.get_schema(call, d).await?).map(|s| encode_messages(s, max))
            }
            M::DoGet => {
                let ticket: Ticket = single_request(messages, "Ticket").await?;
                dispatcher
                    .do_get(call, ticket)
                    .await?
                    .map(|s| encode_data(s, max))
            }
            M::DoPut => {
                let data = body::decode_each(messages, wire::decode_flight_data);
                dispatcher
                    .do_put(call, data)
                    .await?
                    .map(|s| encode_messages(s, max))
            }
            M::DoExchange => {
                let data = body::decode_each(messages, wire::decode_flight_data);
                dispatcher
                    .do_exchange(call, data)
                    .await?
                    .map(|s| encode_data(s, max))
            }
            M::DoAction => {
                let action = single_request(messages, "Action").await?;
                dispatcher
                    .do_action(call, action)
                    .await?
                    .map(|s| encode_messages(s, max))
            }
            M::ListActions => {
                let _: polyflight_core::proto::Empty =
                    single_request(messages, "Empty").await.unwrap_or_default();
                dispatcher
                    .list_actions(call)
                    .await?
                    .map(|s| encode_messages(s, max))
            }
        })
    }
    .await;
    match result {
        Ok(response) => {
            let mut http_response =
                Response::new(body::out_body(response.body, true, Some(response.trailers)));
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
