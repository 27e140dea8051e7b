//! polyflight-grpc: Flight over gRPC (HTTP/2) for polyflight: `grpc://` and `grpc+tcp://`, and
//! over TLS `grpc+tls://` (see [`tls`]).
//!
//! gRPC is spoken directly over hyper's HTTP/2 rather than through tonic's codec layer, because
//! that layer copies every outgoing message into one buffer and reserves whatever length an
//! incoming message prefix claims. Here a FlightData body goes to HTTP/2 as the Arrow buffers
//! themselves, and a receive buffer is sized only once its bytes have arrived (see `wire`).
//!
//! The server and client are generic over how bytes are carried ([`server::Acceptor`],
//! [`client::Connector`]), so TLS and Unix sockets reuse them whole.

mod body;
mod budget;
mod client;
mod coalesce;
#[doc(hidden)]
pub mod fuzzing;
mod log;
mod server;
mod tail;
pub mod tls;
mod wire;

use async_trait::async_trait;
use polyflight_core::{
    CallHandler, ClientTransport, ConnectOptions, FlightError, ListenOptions, Listener, Location,
    PeerInfo, Result, Scheme, TransportFactory,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

pub use client::{connect_transport, Connector, GrpcClient};
pub use server::{serve, Acceptor, BoxedIo, GrpcListener, Io};
pub use tls::{ClientTlsConfig, GrpcTlsTransport, ServerTlsConfig};
pub use wire::{from_grpc_code, status_from_headers, to_grpc_code};

/// The gRPC path prefix of the Flight service.
pub const SERVICE_PATH: &str = "/arrow.flight.protocol.FlightService";

/// HTTP/2 and message-size settings shared by the gRPC client and server.
#[derive(Debug, Clone)]
pub struct GrpcSettings {
    /// Largest message accepted (bytes).
    pub max_decoding_message_size: usize,
    /// Largest message sent (bytes).
    pub max_encoding_message_size: usize,
    /// HTTP/2 per-stream flow-control window. Flight streams are bulk transfers: a large window
    /// keeps a fast sender from stalling on every window update.
    pub stream_window: u32,
    /// HTTP/2 connection-wide flow-control window.
    pub connection_window: u32,
    /// Largest HTTP/2 frame this side accepts.
    pub max_frame_size: u32,
    /// How much a stream may buffer for sending before it waits.
    pub max_send_buffer: usize,
    /// HTTP/2 connections a client spreads its concurrent calls over (client): a call goes to
    /// the open connection with the fewest calls, and another connection is opened only when
    /// every open one is busy. 1 multiplexes every call on one connection. Default 4, by
    /// measurement (docs/transports/grpc.md).
    pub client_connections: usize,
    /// Largest header list accepted (bytes, as HTTP/2 counts them). The h2 library refuses a
    /// header block in more CONTINUATION frames than this divided by `max_frame_size` (at least
    /// 5, plus a quarter), whatever frame size the peer uses; with the 16 KiB frames most peers
    /// send, a block of up to 96 KiB gets through. So the default advertises 64 KiB, which is
    /// then accepted from every peer (gRPC implementations default to 8–16 KiB).
    pub max_header_list_size: u32,
    /// Streams a client may have open at once on one connection (server; clients queue the
    /// rest).
    pub max_concurrent_streams: u32,
    /// The server pings a connection this long after it last heard from it (HTTP/2 keepalive);
    /// `None` sends no pings.
    pub keepalive_interval: Option<Duration>,
    /// A keepalive ping unanswered for this long closes the connection.
    pub keepalive_timeout: Duration,
    /// When the listener runs with `ListenOptions` (`for_server`), their connection limits.
    pub connections: ConnectionLimits,
    /// Bytes of unfinished request messages one connection may hold (server). A request stream
    /// that would go over stops reading (HTTP/2 flow control then holds its client back) until
    /// room frees up. A message must fit: the effective message limit is at most this.
    pub connection_request_budget: usize,
    /// The same for all the connections of one listener together.
    pub listener_request_budget: usize,
    /// How long a request stream waits for room in those budgets before its call is refused
    /// with UNAVAILABLE.
    pub request_budget_wait: Duration,
}

/// The connection limits of a gRPC listener (from `ListenOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// See `ListenOptions::handshake_timeout`.
    pub handshake_timeout: Option<Duration>,
    /// See `ListenOptions::idle_timeout`.
    pub idle_timeout: Option<Duration>,
    /// See `ListenOptions::max_connections`.
    pub max_connections: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        let options = ListenOptions::default();
        ConnectionLimits {
            handshake_timeout: options.handshake_timeout,
            idle_timeout: options.idle_timeout,
            max_connections: options.max_connections,
        }
    }
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            max_decoding_message_size: polyflight_core::transport::DEFAULT_MAX_MESSAGE_SIZE,
            max_encoding_message_size: polyflight_core::transport::DEFAULT_MAX_MESSAGE_SIZE,
            stream_window: 16 * 1024 * 1024,
            connection_window: 64 * 1024 * 1024,
            max_frame_size: 1024 * 1024,
            max_send_buffer: 8 * 1024 * 1024,
            client_connections: 4,
            max_header_list_size: 64 * 1024,
            max_concurrent_streams: 256,
            keepalive_interval: Some(Duration::from_secs(60)),
            keepalive_timeout: Duration::from_secs(20),
            connections: ConnectionLimits::default(),
            connection_request_budget: 256 << 20,
            listener_request_budget: 1 << 30,
            request_budget_wait: Duration::from_secs(30),
        }
    }
}

impl GrpcSettings {
    /// Settings for a client with these connect options.
    pub fn for_client(options: &ConnectOptions) -> Self {
        let mut settings = options
            .extensions
            .get::<GrpcSettings>()
            .cloned()
            .unwrap_or_default();
        settings.max_decoding_message_size = options.max_decoding_message_size;
        settings.max_encoding_message_size = options.max_encoding_message_size;
        settings
    }

    /// Settings for a server with these listen options.
    pub fn for_server(options: &ListenOptions) -> Self {
        let mut settings = options
            .extensions
            .get::<GrpcSettings>()
            .cloned()
            .unwrap_or_default();
        settings.max_decoding_message_size = options.max_decoding_message_size;
        settings.max_encoding_message_size = options.max_encoding_message_size;
        settings.connections = ConnectionLimits {
            handshake_timeout: options.handshake_timeout,
            idle_timeout: options.idle_timeout,
            max_connections: options.max_connections,
        };
        settings
    }
}

/// Accepts TCP connections (TCP_NODELAY set on each).
pub(crate) struct TcpAcceptor {
    listener: TcpListener,
    scheme: Scheme,
}

impl TcpAcceptor {
    /// Binds `host:port` of `location` (port 0 picks a free port).
    pub async fn bind(location: &Location) -> Result<(TcpAcceptor, Location)> {
        let authority = location.authority().ok_or_else(|| {
            FlightError::invalid_argument(format!("{location} has no host:port to listen on"))
        })?;
        let listener = TcpListener::bind(&authority)
            .await
            .map_err(|e| FlightError::unavailable(format!("cannot listen on {authority}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| FlightError::internal(format!("listening socket has no address: {e}")))?;
        // Report the host as asked (a name stays a name), with the real port.
        let host = location.host().unwrap_or("127.0.0.1");
        let bound = Location::for_host_port(location.scheme(), host, local.port())?;
        Ok((
            TcpAcceptor {
                listener,
                scheme: location.scheme(),
            },
            bound,
        ))
    }

    /// Accepts one TCP connection with its peer address.
    pub async fn accept_tcp(&self) -> std::io::Result<(TcpStream, PeerInfo)> {
        let (stream, addr) = self.listener.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, PeerInfo::new(self.scheme, addr.to_string())))
    }
}

#[async_trait]
impl Acceptor for TcpAcceptor {
    async fn accept(&self) -> std::io::Result<(BoxedIo, PeerInfo)> {
        let (stream, peer) = self.accept_tcp().await?;
        Ok((Box::new(stream), peer))
    }
}

/// Opens TCP connections (TCP_NODELAY set) to a host:port.
pub(crate) struct TcpConnector {
    authority: String,
    connect_timeout: Option<std::time::Duration>,
}

impl TcpConnector {
    /// A connector for `location`'s host:port.
    pub fn new(location: &Location, options: &ConnectOptions) -> Result<Self> {
        let authority = location.authority().ok_or_else(|| {
            FlightError::invalid_argument(format!("{location} has no host:port to connect to"))
        })?;
        Ok(TcpConnector {
            authority,
            connect_timeout: options.connect_timeout,
        })
    }

    /// Opens one TCP connection.
    pub async fn connect_tcp(&self) -> Result<TcpStream> {
        let connect = TcpStream::connect(&self.authority);
        let stream = match self.connect_timeout {
            Some(t) => tokio::time::timeout(t, connect).await.map_err(|_| {
                FlightError::unavailable(format!("connecting to {} timed out", self.authority))
            })?,
            None => connect.await,
        }
        .map_err(|e| {
            FlightError::unavailable(format!("cannot connect to {}: {e}", self.authority))
        })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

#[async_trait]
impl Connector for TcpConnector {
    async fn connect(&self) -> Result<BoxedIo> {
        Ok(Box::new(self.connect_tcp().await?))
    }
    fn authority(&self) -> &str {
        &self.authority
    }
    fn uri_scheme(&self) -> &'static str {
        "http"
    }
}

/// The `grpc://` and `grpc+tcp://` transport.
#[derive(Debug, Clone, Default)]
pub struct GrpcTransport;

#[async_trait]
impl TransportFactory for GrpcTransport {
    fn name(&self) -> &str {
        "grpc"
    }

    fn schemes(&self) -> &[Scheme] {
        &[Scheme::Grpc, Scheme::GrpcTcp]
    }

    async fn connect(
        &self,
        location: &Location,
        options: &ConnectOptions,
    ) -> Result<Arc<dyn ClientTransport>> {
        let connector = Arc::new(TcpConnector::new(location, options)?);
        client::connect_transport(location, connector, options).await
    }

    async fn listen(
        &self,
        location: &Location,
        handler: Arc<dyn CallHandler>,
        options: &ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        let (acceptor, bound) = TcpAcceptor::bind(location).await?;
        Ok(Box::new(serve(
            acceptor,
            bound,
            handler,
            GrpcSettings::for_server(options),
        )))
    }
}
