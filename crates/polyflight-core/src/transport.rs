//! The transport seam: what a backend (gRPC, gRPC over Unix sockets, UCX …) implements, and
//! nothing more.
//!
//! A backend provides a [`TransportFactory`] for one or more URI [`Scheme`]s. The factory
//! *connects* — returning a [`ClientTransport`], one method per Flight RPC — and *listens* —
//! returning a [`Listener`] that hands every incoming call to the core [`Dispatcher`].
//!
//! # What a transport promises
//! - It moves Flight messages and call metadata faithfully: headers in both directions, errors
//!   with their code, message and extra-info bytes, `FlightData` with descriptor, header,
//!   app_metadata and body, in order.
//! - On the client side, dropping a returned future or response stream cancels the call on the
//!   wire; an `Err` item in an outgoing request stream aborts the call (it must not look like a
//!   clean end of stream to the server). A call's `timeout` is carried to the server when the
//!   wire can carry it.
//! - On the server side, it calls the [`Dispatcher`] once per incoming call with the call's
//!   headers, peer and timeout, writes what the dispatcher returns, and drops the response stream
//!   when the peer goes away (which the dispatcher turns into cancellation of the handler).
//!
//! # What a transport must not do
//! - Authenticate, run middleware, enforce deadlines or interpret headers beyond its own wire
//!   needs: the [`Dispatcher`] does that once, identically for every transport.
//! - Panic, or allocate what a peer merely claims: malformed input is a `FlightError`
//!   (`INVALID_ARGUMENT` for bad messages, `UNAVAILABLE` for a broken connection).
//! - Name another backend (except `grpc+unix` building on the gRPC service adapter).
//!
//! [`Dispatcher`]: crate::server::Dispatcher

use crate::context::PeerInfo;
use crate::data::FlightData;
use crate::error::Result;
use crate::headers::Headers;
use crate::location::{Location, Scheme};
use crate::proto::{
    Action, ActionType, Criteria, Empty, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use crate::server::Dispatcher;
use async_trait::async_trait;
use futures::stream::BoxStream;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
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

/// The client side of a transport: one connection (or pool of connections) to one location,
/// with one method per Flight RPC. Implementations are cheap to share (`Arc`) and allow
/// concurrent calls from many tasks.
#[async_trait]
pub trait ClientTransport: Send + Sync + fmt::Debug + 'static {
    /// `Handshake`.
    async fn handshake(
        &self,
        meta: CallMetadata,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<Response<FlightStream<HandshakeResponse>>>;
    /// `ListFlights`.
    async fn list_flights(
        &self,
        meta: CallMetadata,
        criteria: Criteria,
    ) -> Result<Response<FlightStream<FlightInfo>>>;
    /// `GetFlightInfo`.
    async fn get_flight_info(
        &self,
        meta: CallMetadata,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>>;
    /// `PollFlightInfo`.
    async fn poll_flight_info(
        &self,
        meta: CallMetadata,
        descriptor: FlightDescriptor,
    ) -> Result<Response<PollInfo>>;
    /// `GetSchema`.
    async fn get_schema(
        &self,
        meta: CallMetadata,
        descriptor: FlightDescriptor,
    ) -> Result<Response<SchemaResult>>;
    /// `DoGet`.
    async fn do_get(
        &self,
        meta: CallMetadata,
        ticket: Ticket,
    ) -> Result<Response<FlightStream<FlightData>>>;
    /// `DoPut`.
    async fn do_put(
        &self,
        meta: CallMetadata,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<PutResult>>>;
    /// `DoExchange`.
    async fn do_exchange(
        &self,
        meta: CallMetadata,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<FlightData>>>;
    /// `DoAction`.
    async fn do_action(
        &self,
        meta: CallMetadata,
        action: Action,
    ) -> Result<Response<FlightStream<ActionResult>>>;
    /// `ListActions`.
    async fn list_actions(
        &self,
        meta: CallMetadata,
        empty: Empty,
    ) -> Result<Response<FlightStream<ActionType>>>;
}

/// A server-side listener bound to one location, handing calls to a [`Dispatcher`].
#[async_trait]
pub trait Listener: Send + Sync + 'static {
    /// The location clients reach this listener at (with the real port when 0 was asked for).
    fn location(&self) -> &Location;

    /// Stops accepting, lets in-flight calls finish for up to `grace`, then ends them and
    /// releases every resource (sockets, socket files, threads).
    async fn shutdown(self: Box<Self>, grace: Duration) -> Result<()>;
}

/// Creates client transports and listeners for the schemes a backend serves.
#[async_trait]
pub trait TransportFactory: Send + Sync + 'static {
    /// A short name for logs and reports, e.g. `grpc` or `ucx`.
    fn name(&self) -> &str;

    /// The URI schemes this factory serves.
    fn schemes(&self) -> &[Scheme];

    /// Connects to a location of one of [`TransportFactory::schemes`].
    async fn connect(
        &self,
        location: &Location,
        options: &ConnectOptions,
    ) -> Result<Arc<dyn ClientTransport>>;

    /// Binds a listener at a location of one of [`TransportFactory::schemes`].
    async fn listen(
        &self,
        location: &Location,
        dispatcher: Dispatcher,
        options: &ListenOptions,
    ) -> Result<Box<dyn Listener>>;

    /// A self-contained endpoint of this transport on this machine — where to listen and the
    /// options both sides need (a TLS transport mints its certificates, a Unix-socket transport
    /// picks a fresh socket path) — so tests, demos and benchmarks can run every registered
    /// transport without knowing it. The default serves host:port schemes on 127.0.0.1 with
    /// default options.
    fn loopback_endpoint(&self, scheme: Scheme) -> Result<LoopbackEndpoint> {
        match scheme {
            Scheme::Grpc | Scheme::GrpcTcp | Scheme::GrpcTls | Scheme::Ucx => {
                Ok(LoopbackEndpoint {
                    listen_uri: format!("{scheme}://127.0.0.1:0"),
                    listen: ListenOptions::default(),
                    connect: ConnectOptions::default(),
                    cleanup: Vec::new(),
                })
            }
            other => Err(crate::FlightError::unimplemented(format!(
                "{} has no loopback endpoint for {other}",
                self.name()
            ))),
        }
    }
}

/// A local endpoint of a transport: see [`TransportFactory::loopback_endpoint`].
#[derive(Debug)]
pub struct LoopbackEndpoint {
    /// The URI to listen on (port 0 where the transport has ports).
    pub listen_uri: String,
    /// Options for the listener.
    pub listen: ListenOptions,
    /// Options for clients connecting to it.
    pub connect: ConnectOptions,
    /// Files or folders the endpoint created (certificates, socket directories), removed by
    /// [`LoopbackEndpoint::cleanup`].
    pub cleanup: Vec<std::path::PathBuf>,
}

impl LoopbackEndpoint {
    /// Removes what the endpoint created on disk.
    pub fn cleanup(&self) {
        for path in &self.cleanup {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
    }
}

/// Typed, per-backend settings carried through the transport-neutral API (for example a TLS
/// configuration for `grpc+tls`, socket permissions for `grpc+unix`, a progress mode for UCX).
/// Each backend documents which types it reads.
#[derive(Clone, Default)]
pub struct Extensions {
    map: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Stores a value, replacing one of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.map.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if one was stored.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extensions({} entries)", self.map.len())
    }
}

/// Options for connecting a client transport.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long establishing the connection may take.
    pub connect_timeout: Option<Duration>,
    /// The largest single message the client accepts from the server (bytes).
    pub max_decoding_message_size: usize,
    /// The largest single message the client sends (bytes).
    pub max_encoding_message_size: usize,
    /// Backend-specific settings.
    pub extensions: Extensions,
}

/// Options for binding a listener.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// The largest single message the server accepts from a client (bytes).
    pub max_decoding_message_size: usize,
    /// The largest single message the server sends (bytes).
    pub max_encoding_message_size: usize,
    /// Backend-specific settings.
    pub extensions: Extensions,
}

/// Default message-size limit: 2 GiB − 1. Flight peers send one message per record batch, so a
/// small limit (tonic's is 4 MiB) breaks stock peers; the codec still never allocates more than
/// the bytes actually received.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = i32::MAX as usize;

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Some(Duration::from_secs(20)),
            max_decoding_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            extensions: Extensions::default(),
        }
    }
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            max_decoding_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            extensions: Extensions::default(),
        }
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
