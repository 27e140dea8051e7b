//! The gRPC client: one HTTP/2 connection (multiplexing concurrent calls) opened through a
//! [`Connector`] (TCP here; TLS and Unix sockets plug in the same way), re-opened lazily when it
//! breaks. Implements the core [`ClientTransport`].

use crate::body::{DecodeBody, Direction, EncodeBody, Payload, Role};
use crate::server::BoxedIo;
use crate::wire;
use crate::{GrpcSettings, SERVICE_PATH};
use async_trait::async_trait;
use futures::StreamExt;
use http::{HeaderValue, Request};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use polyflight_core::{
    CallMetadata, ClientTransport, FlightError, FlightMethod, Headers, Location, MessageStream,
    Response, Result, Trailers,
};
use std::sync::Arc;
use tokio::sync::Mutex;

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
    sender: Mutex<Option<SendRequest<EncodeBody>>>,
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
            sender: Mutex::new(None),
        };
        client.sender().await?;
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
        let (sender, connection) = builder.handshake(TokioIo::new(io)).await.map_err(|e| {
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

    /// The connection's request sender, (re)connecting if there is none or it closed.
    async fn sender(&self) -> Result<SendRequest<EncodeBody>> {
        let mut guard = self.sender.lock().await;
        if let Some(sender) = guard.as_ref() {
            if !sender.is_closed() {
                return Ok(sender.clone());
            }
        }
        let sender = self.open().await?;
        *guard = Some(sender.clone());
        Ok(sender)
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
        let body = EncodeBody::new(
            requests,
            Role::Client,
            self.settings.max_encoding_message_size,
        );
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

        let mut sender = self.sender().await?;
        sender.ready().await.map_err(|e| {
            FlightError::unavailable(format!(
                "connection to {} is not usable: {e}",
                self.location
            ))
        })?;
        let response = sender.send_request(request).await.map_err(|e| {
            FlightError::unavailable(format!("{method} to {} failed: {e}", self.location))
        })?;
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
            body: messages.boxed(),
            trailers,
        })
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
