//! The transport seam: what a backend (gRPC, gRPC over Unix sockets, UCX, or one of your own)
//! implements, and nothing more.
//!
//! A backend provides a [`TransportFactory`] for one or more URI [`Scheme`]s. The factory
//! *connects* — returning a [`ClientTransport`] — and *listens* — returning a [`Listener`] that
//! hands every incoming call to a [`CallHandler`]. Both sides speak in [`Message`]s: the seam has
//! one method per side, not one per RPC, so a transport writes its framing and its connection
//! handling once and every Flight RPC works over it. Typing the messages of each method
//! (protobuf decoding, which method takes a stream) happens once, above the seam, in the core.
//!
//! # What a transport promises
//! - It moves messages and call metadata faithfully: headers in both directions, errors with
//!   their code, message and extra-info bytes, [`Message::Proto`] bytes as they are, and
//!   [`Message::Data`] with descriptor, header, app_metadata and body, in order.
//! - On the client side, dropping a returned future or response stream cancels the call on the
//!   wire; an `Err` item in an outgoing request stream aborts the call (it must not look like a
//!   clean end of stream to the server). A call's `timeout` is carried to the server when the
//!   wire can carry it. The response stream ends after the call's status: cleanly for OK, with
//!   the error as its last item otherwise; trailers are in [`Response::trailers`] before the end
//!   is yielded.
//! - On the server side, it calls the [`CallHandler`] once per incoming call with the call's
//!   method, headers, peer and timeout and a stream of its request messages; it writes what the
//!   handler returns (an `Err` before any response is the call's status), and drops the response
//!   stream when the peer goes away, which the handler turns into cancellation.
//!
//! # What a transport must not do
//! - Authenticate, run middleware, enforce deadlines or interpret headers beyond its own wire
//!   needs: the handler (the core's dispatcher) does that once, identically for every transport.
//! - Panic, or allocate what a peer merely claims: malformed input is a `FlightError`
//!   (`INVALID_ARGUMENT` for bad messages, `UNAVAILABLE` for a broken connection).
//! - Name another backend (except `grpc+unix` building on the gRPC service adapter).

use crate::call::{CallMetadata, FlightMethod, IncomingCall, MessageStream, Response};
use crate::error::{FlightError, Result};
use crate::location::{Location, Scheme};
use async_trait::async_trait;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The client side of a transport: one connection (or pool of connections) to one location.
/// Implementations are cheap to share (`Arc`) and allow concurrent calls from many tasks.
#[async_trait]
pub trait ClientTransport: Send + Sync + fmt::Debug + 'static {
    /// Makes one call of `method`. `requests` yields the request messages: exactly one for the
    /// methods that are not [client-streaming](FlightMethod::client_streaming), any number for the
    /// others. Returns once the response headers are known (or the first response message, where
    /// the wire sends no separate headers), with the stream of response messages; an error the
    /// server answered before any response message is the `Err` of this call.
    async fn call(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        requests: MessageStream,
    ) -> Result<Response<MessageStream>>;
}

/// What a listener hands each incoming call to: in a server, the core's dispatcher (auth,
/// middleware, deadlines, the service). Defined here, with the seam, so a transport knows nothing
/// of what serves its calls.
#[async_trait]
pub trait CallHandler: Send + Sync + 'static {
    /// Serves one call. `requests` is the call's request messages as they arrive; it must end
    /// with an `Err` (never a clean end) when the client aborted or the connection broke. The
    /// handler returns the response headers, the response messages and the trailers; an `Err`
    /// here is the call's status before any message. Dropping the returned stream cancels the
    /// call.
    async fn call(
        &self,
        call: IncomingCall,
        requests: MessageStream,
    ) -> Result<Response<MessageStream>>;
}

/// A server-side listener bound to one location, handing calls to a [`CallHandler`].
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
        handler: Arc<dyn CallHandler>,
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
            other => Err(FlightError::unimplemented(format!(
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
    /// How long a new connection may take to say it speaks the protocol (gRPC: the HTTP/2
    /// preface and first frame) before it is closed. Default [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Option<Duration>,
    /// A connection with no call in progress for this long is closed (gracefully: gRPC sends
    /// GOAWAY; clients reconnect on their next call). Default [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Option<Duration>,
    /// The most connections served at once; a connection beyond it is closed as soon as it is
    /// accepted. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// Backend-specific settings.
    pub extensions: Extensions,
}

/// Default [`ListenOptions::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ListenOptions::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default [`ListenOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Default limit of a message a server accepts: 256 MiB. Flight peers send one message per
/// record batch (pyarrow and Arrow C++ do not split batches), so tonic's 4 MiB would refuse
/// ordinary uploads; batches of a few hundred thousand rows, which is what Arrow's readers and
/// writers produce, stay far below 256 MiB. A server buffers a message whole before its call
/// sees it, so the limit is also what one stream can make it hold; raise it (and the transport's
/// request budgets) for larger batches.
pub const DEFAULT_MAX_REQUEST_MESSAGE_SIZE: usize = 256 << 20;

/// Default message-size limit of clients, and of what servers send: 2 GiB − 1. Flight peers send one message per record batch, so a
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
            max_decoding_message_size: DEFAULT_MAX_REQUEST_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            extensions: Extensions::default(),
        }
    }
}
