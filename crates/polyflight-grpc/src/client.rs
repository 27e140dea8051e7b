//! The gRPC client: HTTP/2 connections (each multiplexing concurrent calls) opened through a
//! [`Connector`] (TCP here; TLS and Unix sockets plug in the same way), re-opened lazily when
//! they break. Implements the core [`ClientTransport`].
//!
//! Calls go to the connection with the fewest calls in progress; a new connection is opened,
//! up to [`GrpcSettings::client_connections`], only when every open one is busy. Each HTTP/2
//! connection is driven by one task, so one connection cannot use a second core for its
//! streams; several let concurrent bulk streams run on several.
//!
//! A call that never reached the server — the connection closed before the request went out,
//! or the server refused the stream unprocessed (REFUSED_STREAM, as HTTP/2 servers do while
//! they shut down) — is sent once more, on another connection. Client-streaming calls are sent
//! again only when hyper gives the request back untouched; every other call sends one message,
//! which the client keeps for that. A call the server may have acted on is never repeated.

use crate::body::{DecodeBody, Direction, EncodeBody, Payload, Role};
use crate::coalesce::Coalesced;
use crate::server::BoxedIo;
use crate::wire;
use crate::{GrpcSettings, SERVICE_PATH};
use async_trait::async_trait;
use futures::StreamExt;
use http::{HeaderValue, Request};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use polyflight_core::{
    CallMetadata, ClientTransport, FlightError, FlightMethod, Headers, Location, Message,
    MessageStream, Response, Result, Trailers,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::Mutex;
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};

/// Opens byte streams to a server.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Opens a new connection.
    async fn connect(&self) -> Result<BoxedIo>;
    /// The `:authority` to send (host:port, or what the peer expects on a Unix socket).
    fn authority(&self) -> &str;
    /// The URI scheme of requests: `http` or `https`.
    fn uri_scheme(&self) -> &'static str;
}

/// A gRPC [`ClientTransport`].
pub struct GrpcClient {
    location: Location,
    connector: Arc<dyn Connector>,
    settings: GrpcSettings,
    connections: Mutex<Vec<Connection>>,
}

/// An open HTTP/2 connection and how many calls it carries now.
#[derive(Clone)]
struct Connection {
    sender: SendRequest<EncodeBody>,
    active: Arc<AtomicUsize>,
}

/// One call in progress on a connection; counted until dropped.
struct ActiveCall(Arc<AtomicUsize>);

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient")
            .field("location", &self.location.uri())
            .finish()
    }
}

impl GrpcClient {
    /// Connects now (so a bad address fails at connect time, not at the first call).
    pub async fn connect(
        location: Location,
        connector: Arc<dyn Connector>,
        settings: GrpcSettings,
    ) -> Result<GrpcClient> {
        let client = GrpcClient {
            location,
            connector,
            settings,
            connections: Mutex::new(Vec::new()),
        };
        drop(client.connection().await?);
        Ok(client)
    }

    async fn open(&self) -> Result<SendRequest<EncodeBody>> {
        let io = self.connector.connect().await?;
        let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .initial_stream_window_size(self.settings.stream_window)
            .initial_connection_window_size(self.settings.connection_window)
            .max_frame_size(self.settings.max_frame_size)
            .max_send_buf_size(self.settings.max_send_buffer)
            .max_header_list_size(self.settings.max_header_list_size);
        let (sender, connection) = builder
            .handshake(TokioIo::new(Coalesced::new(io)))
            .await
            .map_err(|e| {
                FlightError::unavailable(format!(
                    "HTTP/2 handshake with {} failed: {e}",
                    self.location
                ))
            })?;
        let location = self.location.uri().to_string();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%location, error = %err, "gRPC connection closed with an error");
            }
        });
        Ok(sender)
    }

    /// The HTTP request of a call to `uri` with `body`.
    fn request(
        &self,
        uri: &str,
        meta: &CallMetadata,
        body: EncodeBody,
    ) -> Result<Request<EncodeBody>> {
        let mut request = Request::post(uri)
            .body(body)
            .map_err(|e| FlightError::invalid_argument(format!("cannot build request: {e}")))?;
        let headers = request.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        if let Some(timeout) = meta.timeout {
            if let Ok(value) = HeaderValue::from_str(&wire::format_timeout(timeout)) {
                headers.insert("grpc-timeout", value);
            }
        }
        wire::headers_to_http(&meta.headers, headers)?;
        Ok(request)
    }

    /// Drops a connection from the pool (it refused a call: it is closing).
    async fn forget(&self, call: &ActiveCall) {
        self.connections
            .lock()
            .await
            .retain(|c| !Arc::ptr_eq(&c.active, &call.0));
    }

    fn send_failed(&self, method: FlightMethod, error: &hyper::Error) -> FlightError {
        // hyper's own words are generic ("http2 error"); the cause says what happened.
        let cause = match std::error::Error::source(error) {
            Some(cause) => format!(": {cause}"),
            None => String::new(),
        };
        FlightError::unavailable(format!(
            "{method} to {} failed: {error}{cause}",
            self.location
        ))
    }

    /// A connection for a new call, counted as busy until the returned [`ActiveCall`] drops:
    /// the open connection with the fewest calls, or a new one while every open one is busy and
    /// there are fewer than `client_connections` (closed ones are forgotten).
    async fn connection(&self) -> Result<(SendRequest<EncodeBody>, ActiveCall)> {
        let mut connections = self.connections.lock().await;
        connections.retain(|c| !c.sender.is_closed());
        let least = connections
            .iter()
            .min_by_key(|c| c.active.load(Ordering::Relaxed))
            .cloned();
        let limit = self.settings.client_connections.max(1);
        let chosen = match least {
            Some(c) if c.active.load(Ordering::Relaxed) == 0 || connections.len() >= limit => c,
            least => match self.open().await {
                Ok(sender) => {
                    let opened = Connection {
                        sender,
                        active: Arc::new(AtomicUsize::new(0)),
                    };
                    connections.push(opened.clone());
                    opened
                }
                // Another connection could not be opened: share a busy one.
                Err(err) => match least {
                    Some(c) => {
                        tracing::debug!(error = %err, "using a busy gRPC connection");
                        c
                    }
                    None => return Err(err),
                },
            },
        };
        chosen.active.fetch_add(1, Ordering::Relaxed);
        Ok((chosen.sender, ActiveCall(chosen.active)))
    }
}

#[async_trait]
impl ClientTransport for GrpcClient {
    async fn call(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        requests: MessageStream,
    ) -> Result<Response<MessageStream>> {
        let uri = format!(
            "{}://{}{}/{}",
            self.connector.uri_scheme(),
            self.connector.authority(),
            SERVICE_PATH,
            method.as_str()
        );
        // hyper sends a request body from a task of its own, which keeps the HTTP/2 stream open
        // for as long as the body may still yield, even once the caller dropped the call. So the
        // body of a client-streaming call is tied to the call: when the call (or its response
        // stream) is dropped, the body fails, and hyper resets the stream (CANCEL) at once.
        let abort = CancellationToken::new();
        let call_alive = abort.clone().drop_guard();
        // A one-message call keeps its message, so that it can be sent again.
        let (body, one) = if method.client_streaming() {
            let requests = Abortable::new(requests, abort).boxed();
            let max = self.settings.max_encoding_message_size;
            (EncodeBody::new(requests, Role::Client, max), None)
        } else {
            let message = one_message(requests).await?;
            (one_message_body(&message, &self.settings), Some(message))
        };
        let mut request = self.request(&uri, &meta, body)?;
        let mut retries = RETRIES;
        let (response, active) = loop {
            let (mut sender, active) = self.connection().await?;
            let error = match sender.ready().await {
                Err(error) => Unanswered::NotSent(Some(Box::new(request)), error),
                Ok(()) => match sender.try_send_request(request).await {
                    Ok(response) => break (response, active),
                    Err(mut failed) => match failed.take_message() {
                        Some(unsent) => {
                            Unanswered::NotSent(Some(Box::new(unsent)), failed.into_error())
                        }
                        None if refused(failed.error()) => {
                            Unanswered::NotSent(None, failed.into_error())
                        }
                        None => Unanswered::Failed(failed.into_error()),
                    },
                },
            };
            let again = match (error, retries) {
                (Unanswered::NotSent(unsent, error), 1..) => {
                    // This connection is going away; the call did not reach the server.
                    self.forget(&active).await;
                    let again = match (unsent, &one) {
                        (Some(unsent), _) => *unsent,
                        (None, Some(message)) => {
                            let body = one_message_body(message, &self.settings);
                            self.request(&uri, &meta, body)?
                        }
                        (None, None) => return Err(self.send_failed(method, &error)),
                    };
                    tracing::debug!(%method, %error, "sending the call again on another connection");
                    again
                }
                (Unanswered::NotSent(_, error) | Unanswered::Failed(error), _) => {
                    return Err(self.send_failed(method, &error))
                }
            };
            retries -= 1;
            request = again;
        };
        let (parts, body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(FlightError::unavailable(format!(
                "{method}: server answered HTTP {} instead of gRPC",
                parts.status
            )));
        }
        // Trailers-only response: the call ended before any message.
        if let Some(status) = wire::status_from_headers(&parts.headers) {
            if method.server_streaming() {
                status?;
                return Ok(Response::new(futures::stream::empty().boxed()));
            }
            // A unary call's metadata are its trailers, and reach the client's middleware with
            // the error (servers answer a failing call with headers set by middleware this way).
            let trailers = Trailers::default();
            trailers.extend(wire::headers_from_http(&parts.headers));
            let body = match status {
                Ok(()) => futures::stream::empty().boxed(),
                Err(err) => futures::stream::iter([Err(err)]).boxed(),
            };
            return Ok(Response {
                headers: Headers::new(),
                body,
                trailers,
            });
        }
        let trailers = Trailers::default();
        let messages = DecodeBody::new(
            body,
            Payload::responses_of(method),
            Direction::Response {
                trailers: trailers.clone(),
            },
            self.settings.max_decoding_message_size,
        );
        Ok(Response {
            headers: wire::headers_from_http(&parts.headers),
            body: Guarded {
                inner: messages.boxed(),
                _call_alive: call_alive,
                _active: active,
            }
            .boxed(),
            trailers,
        })
    }
}

/// How many times a call that never reached the server is sent again, on another connection.
const RETRIES: u32 = 1;

/// The body of a one-message call carrying `message`.
fn one_message_body(message: &Option<Message>, settings: &GrpcSettings) -> EncodeBody {
    EncodeBody::new(
        futures::stream::iter(message.clone().map(Ok)).boxed(),
        Role::ClientOneMessage,
        settings.max_encoding_message_size,
    )
}

/// Why a call has no response.
enum Unanswered {
    /// The call never reached the server (the request is given back when hyper still has it).
    NotSent(Option<Box<Request<EncodeBody>>>, hyper::Error),
    /// The call may have reached the server.
    Failed(hyper::Error),
}

/// The one request message of a call that sends one (every call but Handshake, DoPut and
/// DoExchange), read before anything is sent; a failed request stream fails the call here.
async fn one_message(mut requests: MessageStream) -> Result<Option<Message>> {
    requests.next().await.transpose()
}

/// The server refused the stream without processing it (RST_STREAM `REFUSED_STREAM`, which
/// HTTP/2 guarantees means the request was not processed), so the call may be sent again.
fn refused(error: &hyper::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<h2::Error>())
        .is_some_and(|h2| h2.reason() == Some(h2::Reason::REFUSED_STREAM))
}

/// A call's request stream that fails once the call is dropped ([`GrpcClient::call`]).
struct Abortable {
    inner: MessageStream,
    aborted: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl Abortable {
    fn new(inner: MessageStream, abort: CancellationToken) -> Self {
        Abortable {
            inner,
            aborted: Box::pin(abort.cancelled_owned()),
            done: false,
        }
    }
}

impl futures::Stream for Abortable {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.aborted.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(FlightError::cancelled(
                "the call was dropped by the client",
            ))));
        }
        let item = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(None | Some(Err(_))) = item {
            self.done = true;
        }
        item
    }
}

/// A response stream that keeps its call alive: dropping it aborts the call's request body.
struct Guarded {
    inner: MessageStream,
    _call_alive: DropGuard,
    /// The call counts on its connection as long as its response is read.
    _active: ActiveCall,
}

impl futures::Stream for Guarded {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// A gRPC client transport over `connector`, connected now, with the settings `options` ask
/// for: what every gRPC-family factory's `connect` does once it has its connector.
pub async fn connect_transport(
    location: &Location,
    connector: Arc<dyn Connector>,
    options: &polyflight_core::ConnectOptions,
) -> Result<Arc<dyn ClientTransport>> {
    let client = GrpcClient::connect(
        location.clone(),
        connector,
        GrpcSettings::for_client(options),
    )
    .await?;
    Ok(Arc::new(client))
}
