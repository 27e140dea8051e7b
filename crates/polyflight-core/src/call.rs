//! The call vocabulary: the words every layer of polyflight uses to talk about a call — the
//! [`FlightMethod`]s and their shapes, the [`Message`]s a call carries, call metadata, response
//! headers and [`Trailers`], and who the [`PeerInfo`] is. It sits at the bottom of the core: it
//! imports nothing above the error, header, protocol and data types, so the transport seam, the
//! dispatcher, the client and the server can all be read on top of it.

use crate::data::FlightData;
use crate::error::Result;
use crate::headers::Headers;
use crate::location::Scheme;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::Stream;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A stream of Flight messages or errors, as every streaming RPC returns it.
pub type FlightStream<T> = BoxStream<'static, Result<T>>;

/// The Flight RPC methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlightMethod {
    /// `Handshake`: bidirectional stream of handshake messages.
    Handshake,
    /// `ListFlights`: stream of FlightInfo for a criteria.
    ListFlights,
    /// `GetFlightInfo`: FlightInfo for a descriptor.
    GetFlightInfo,
    /// `PollFlightInfo`: PollInfo for a long-running query.
    PollFlightInfo,
    /// `GetSchema`: the schema for a descriptor.
    GetSchema,
    /// `DoGet`: stream of FlightData for a ticket.
    DoGet,
    /// `DoPut`: upload a FlightData stream, receive PutResults.
    DoPut,
    /// `DoExchange`: FlightData streams both ways.
    DoExchange,
    /// `DoAction`: run an action, receive a stream of results.
    DoAction,
    /// `ListActions`: the actions the server offers.
    ListActions,
}

impl FlightMethod {
    /// Every method.
    pub const ALL: [FlightMethod; 10] = [
        FlightMethod::Handshake,
        FlightMethod::ListFlights,
        FlightMethod::GetFlightInfo,
        FlightMethod::PollFlightInfo,
        FlightMethod::GetSchema,
        FlightMethod::DoGet,
        FlightMethod::DoPut,
        FlightMethod::DoExchange,
        FlightMethod::DoAction,
        FlightMethod::ListActions,
    ];

    /// The method name as on the wire (`DoGet`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FlightMethod::Handshake => "Handshake",
            FlightMethod::ListFlights => "ListFlights",
            FlightMethod::GetFlightInfo => "GetFlightInfo",
            FlightMethod::PollFlightInfo => "PollFlightInfo",
            FlightMethod::GetSchema => "GetSchema",
            FlightMethod::DoGet => "DoGet",
            FlightMethod::DoPut => "DoPut",
            FlightMethod::DoExchange => "DoExchange",
            FlightMethod::DoAction => "DoAction",
            FlightMethod::ListActions => "ListActions",
        }
    }

    /// The method for a wire name.
    pub fn from_name(name: &str) -> Option<FlightMethod> {
        FlightMethod::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// True when the client sends a stream of messages (Handshake, DoPut, DoExchange); the other
    /// methods send exactly one request message.
    pub fn client_streaming(self) -> bool {
        matches!(
            self,
            FlightMethod::Handshake | FlightMethod::DoPut | FlightMethod::DoExchange
        )
    }

    /// True when the server answers with a stream; GetFlightInfo, PollFlightInfo and GetSchema
    /// answer with exactly one message.
    pub fn server_streaming(self) -> bool {
        !matches!(
            self,
            FlightMethod::GetFlightInfo | FlightMethod::PollFlightInfo | FlightMethod::GetSchema
        )
    }

    /// True when the requests are FlightData (DoPut, DoExchange) rather than protobuf messages.
    pub fn request_is_data(self) -> bool {
        matches!(self, FlightMethod::DoPut | FlightMethod::DoExchange)
    }

    /// True when the responses are FlightData (DoGet, DoExchange) rather than protobuf messages.
    pub fn response_is_data(self) -> bool {
        matches!(self, FlightMethod::DoGet | FlightMethod::DoExchange)
    }
}

impl fmt::Display for FlightMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metadata of an outgoing call, as a transport sees it.
#[derive(Debug, Clone, Default)]
pub struct CallMetadata {
    /// Headers to send with the call.
    pub headers: Headers,
    /// Time the server has for the call, carried to it when the wire can.
    pub timeout: Option<Duration>,
}

/// Headers that travel after a response stream has ended (gRPC trailers; the status frame on
/// UCX). Shared between the two ends of a layer: on the server the dispatcher fills it while the
/// call runs and the transport sends what it holds when the stream ends; on the client the
/// transport fills it when the trailers arrive, before its stream yields the end.
#[derive(Debug, Clone, Default)]
pub struct Trailers(std::sync::Arc<std::sync::Mutex<Headers>>);

impl Trailers {
    /// The trailers so far.
    pub fn get(&self) -> Headers {
        self.0.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Adds trailers.
    pub fn extend(&self, headers: Headers) {
        if let Ok(mut guard) = self.0.lock() {
            guard.extend(headers);
        }
    }
}

/// A response with the headers the server sent ahead of it, and the trailers that follow it.
#[derive(Debug)]
pub struct Response<T> {
    /// Response headers (for gRPC: initial metadata).
    pub headers: Headers,
    /// The response message or stream.
    pub body: T,
    /// Trailing headers, complete once a response stream has ended.
    pub trailers: Trailers,
}

impl<T> Response<T> {
    /// A response with no headers.
    pub fn new(body: T) -> Self {
        Response {
            headers: Headers::new(),
            body,
            trailers: Trailers::default(),
        }
    }

    /// A response with these headers.
    pub fn with_headers(headers: Headers, body: T) -> Self {
        Response {
            headers,
            body,
            trailers: Trailers::default(),
        }
    }

    /// The same headers and trailers with another body.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            headers: self.headers,
            body: f(self.body),
            trailers: self.trailers,
        }
    }
}

/// One message of a call as it crosses the transport seam. Every Flight message except
/// FlightData travels as its protobuf encoding, typed once in the core on either side; FlightData
/// stays structured, because each transport frames its body in its own way without copying it
/// (gRPC as protobuf fields around the Arrow buffers, UCX as a PayloadHeader frame and a
/// scatter-gather PayloadBody frame).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A protobuf-encoded message (Ticket, FlightInfo, Action, PutResult …), without any framing.
    Proto(Bytes),
    /// A FlightData message.
    Data(FlightData),
}

/// The messages of one direction of a call.
pub type MessageStream = FlightStream<Message>;

/// A stream of a call's response messages that also keeps the headers the server sent ahead of
/// it and the trailers that follow it (complete once the stream has ended).
pub struct ResponseStream<T> {
    headers: Headers,
    trailers: Trailers,
    body: FlightStream<T>,
}

impl<T> ResponseStream<T> {
    /// A response stream of these parts.
    pub fn new(response: Response<FlightStream<T>>) -> Self {
        ResponseStream {
            headers: response.headers,
            trailers: response.trailers,
            body: response.body,
        }
    }

    /// The response headers (gRPC initial metadata).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The trailers received so far: all of them once the stream has ended.
    pub fn trailers(&self) -> Headers {
        self.trailers.get()
    }

    /// The parts again, as a [`Response`].
    pub fn into_response(self) -> Response<FlightStream<T>> {
        Response {
            headers: self.headers,
            body: self.body,
            trailers: self.trailers,
        }
    }
}

impl<T> Stream for ResponseStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.body.as_mut().poll_next(cx)
    }
}

impl<T> fmt::Debug for ResponseStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseStream")
            .field("headers", &self.headers)
            .finish()
    }
}

/// What a server transport hands the dispatcher for each incoming call.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    /// The RPC.
    pub method: FlightMethod,
    /// The call's request headers (transport-internal headers removed).
    pub headers: Headers,
    /// Who is calling.
    pub peer: PeerInfo,
    /// The client's timeout, if the wire carried one.
    pub timeout: Option<Duration>,
}

/// Unix-socket peer credentials (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// User id of the peer process.
    pub uid: u32,
    /// Group id of the peer process.
    pub gid: u32,
    /// Process id of the peer, when the platform reports it.
    pub pid: Option<i32>,
}

/// A verified TLS client certificate's identity (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsPeerIdentity {
    /// The certificate subject, as an RFC 4514 string.
    pub subject: String,
    /// Subject alternative names (DNS names, IPs, URIs, e-mails), as text.
    pub subject_alt_names: Vec<String>,
    /// The DER bytes of the peer's end-entity certificate.
    pub certificate_der: Bytes,
}

/// Who is on the other end of a call.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The transport's URI scheme, e.g. `grpc` or `ucx`.
    pub scheme: Option<Scheme>,
    /// The peer's address as the transport reports it (`ip:port`, a socket path, a UCX address).
    pub address: Option<String>,
    /// Peer process credentials, on Unix sockets.
    pub credentials: Option<PeerCredentials>,
    /// The verified client certificate, on mutual TLS.
    pub tls: Option<TlsPeerIdentity>,
}

impl PeerInfo {
    /// A peer known by scheme and address.
    pub fn new(scheme: Scheme, address: impl Into<String>) -> Self {
        PeerInfo {
            scheme: Some(scheme),
            address: Some(address.into()),
            ..Default::default()
        }
    }

    /// Adds Unix peer credentials.
    pub fn with_credentials(mut self, credentials: PeerCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Adds a verified TLS client identity.
    pub fn with_tls(mut self, tls: TlsPeerIdentity) -> Self {
        self.tls = Some(tls);
        self
    }
}
