//! The gRPC client: one HTTP/2 connection (multiplexing concurrent calls) opened through a
//! [`Connector`] (TCP here; TLS and Unix sockets plug in the same way), re-opened lazily when it
//! breaks. Implements the core [`ClientTransport`].

use crate::body::{self, OutBody};
use crate::server::BoxedIo;
use crate::wire::{self, SegmentedBuf};
use crate::{GrpcSettings, SERVICE_PATH};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderValue, Request};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use polyflight_core::proto::{
    Action, ActionType, Criteria, Empty, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use polyflight_core::transport::Response;
use polyflight_core::{
    CallMetadata, ClientTransport, FlightData, FlightError, FlightMethod, FlightStream, Location,
    Result,
};
use prost::Message;
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
    sender: Mutex<Option<SendRequest<OutBody>>>,
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

    async fn open(&self) -> Result<SendRequest<OutBody>> {
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
    async fn sender(&self) -> Result<SendRequest<OutBody>> {
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

    /// Makes one call: sends the encoded request messages, returns response headers and the
    /// stream of response messages (ending with the call's status).
    async fn call(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        requests: BoxStream<'static, Result<Vec<Bytes>>>,
    ) -> Result<Response<BoxStream<'static, Result<SegmentedBuf>>>> {
        let uri = format!(
            "{}://{}{}/{}",
            self.connector.uri_scheme(),
            self.connector.authority(),
            SERVICE_PATH,
            method.as_str()
        );
        let mut request = Request::post(uri)
            .body(body::out_body(requests, false, None))
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
            status?;
            return Ok(Response::new(futures::stream::empty().boxed()));
        }
        let trailers = polyflight_core::Trailers::default();
        let messages = body::in_messages(
            body,
            self.settings.max_decoding_message_size,
            true,
            |e| FlightError::unavailable(format!("the call's stream broke: {e}")),
            Some(trailers.clone()),
        );
        Ok(Response {
            headers: wire::headers_from_http(&parts.headers),
            body: messages,
            trailers,
        })
    }

    fn one(&self, message: &impl Message) -> Result<BoxStream<'static, Result<Vec<Bytes>>>> {
        let encoded = wire::encode_message(message, self.settings.max_encoding_message_size)?;
        Ok(futures::stream::iter([Ok(vec![encoded])]).boxed())
    }

    fn many<T: Message + Send + 'static>(
        &self,
        stream: FlightStream<T>,
    ) -> BoxStream<'static, Result<Vec<Bytes>>> {
        let max = self.settings.max_encoding_message_size;
        stream
            .map(move |item| item.and_then(|m| wire::encode_message(&m, max).map(|b| vec![b])))
            .boxed()
    }

    fn data(&self, stream: FlightStream<FlightData>) -> BoxStream<'static, Result<Vec<Bytes>>> {
        let max = self.settings.max_encoding_message_size;
        stream
            .map(move |item| item.and_then(|d| wire::encode_flight_data(&d, max)))
            .boxed()
    }

    async fn unary<T: Message + Default + Send + 'static>(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        request: &impl Message,
        what: &'static str,
    ) -> Result<Response<T>> {
        let response = self.call(method, meta, self.one(request)?).await?;
        let mut messages = response.body;
        let first = messages.try_next().await?.ok_or_else(|| {
            FlightError::internal(format!("{method}: server sent no {what} and no error"))
        })?;
        let message = wire::decode_message(first, what)?;
        // Read to the end so the call's status is seen.
        while messages.try_next().await?.is_some() {}
        Ok(Response {
            headers: response.headers,
            body: message,
            trailers: response.trailers,
        })
    }

    async fn streaming<T: Message + Default + Send + 'static>(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        requests: BoxStream<'static, Result<Vec<Bytes>>>,
        decode: fn(SegmentedBuf) -> Result<T>,
    ) -> Result<Response<FlightStream<T>>> {
        let response = self.call(method, meta, requests).await?;
        Ok(response.map(|body| body::decode_each(body, decode)))
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

fn decode<T: Message + Default>(m: SegmentedBuf) -> Result<T> {
    wire::decode_message(
        m,
        std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("message"),
    )
}

#[async_trait]
impl ClientTransport for GrpcClient {
    async fn handshake(
        &self,
        meta: CallMetadata,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<Response<FlightStream<HandshakeResponse>>> {
        let requests = self.many(requests);
        self.streaming(FlightMethod::Handshake, meta, requests, decode)
            .await
    }

    async fn list_flights(
        &self,
        meta: CallMetadata,
        criteria: Criteria,
    ) -> Result<Response<FlightStream<FlightInfo>>> {
        let requests = self.one(&criteria)?;
        self.streaming(FlightMethod::ListFlights, meta, requests, decode)
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
        let response = self
            .call(FlightMethod::DoGet, meta, self.one(&ticket)?)
            .await?;
        Ok(response.map(|body| body::decode_each(body, wire::decode_flight_data)))
    }

    async fn do_put(
        &self,
        meta: CallMetadata,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<PutResult>>> {
        let requests = self.data(data);
        self.streaming(FlightMethod::DoPut, meta, requests, decode)
            .await
    }

    async fn do_exchange(
        &self,
        meta: CallMetadata,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<FlightData>>> {
        let response = self
            .call(FlightMethod::DoExchange, meta, self.data(data))
            .await?;
        Ok(response.map(|body| body::decode_each(body, wire::decode_flight_data)))
    }

    async fn do_action(
        &self,
        meta: CallMetadata,
        action: Action,
    ) -> Result<Response<FlightStream<ActionResult>>> {
        let requests = self.one(&action)?;
        self.streaming(FlightMethod::DoAction, meta, requests, decode)
            .await
    }

    async fn list_actions(
        &self,
        meta: CallMetadata,
        empty: Empty,
    ) -> Result<Response<FlightStream<ActionType>>> {
        let requests = self.one(&empty)?;
        self.streaming(FlightMethod::ListActions, meta, requests, decode)
            .await
    }
}
