//! polyflight-unix: Flight over gRPC on Unix domain sockets, `grpc+unix:///absolute/path.sock`.
//!
//! The gRPC server and client are polyflight-grpc's, run over a Unix-socket [`Acceptor`] and
//! [`Connector`]; this crate adds what is particular to Unix sockets:
//!
//! - **The socket file's lifecycle** ([`socket`]): a listener refuses to replace a socket that a
//!   live server listens on (it probes by connecting), replaces a stale one left behind by a
//!   server that died, refuses to touch a path that is not a socket, sets the file's permissions
//!   ([`UnixListenOptions`], owner-only `0600` by default) before it accepts connections, and
//!   removes the file on shutdown and when dropped.
//! - **Peer credentials**: the connecting process's uid, gid and pid (`SO_PEERCRED`) are in
//!   `PeerInfo.credentials`, so services can authorise by local user.
//! - **Stock gRPC C++ clients** (pyarrow with default options) send the percent-encoded socket
//!   path as `:authority`, which hyper's HTTP/2 layer refuses; every accepted connection runs
//!   through [`authority::AuthorityFix`], which re-encodes incoming request headers so such an
//!   authority is replaced before the HTTP/2 server sees it.
//!
//! The client connects with `:authority` `localhost`, which every gRPC server accepts.

mod authority;
#[doc(hidden)]
pub mod fuzzing;
// The HPACK codec of the `:authority` rewriter. Not part of the API: public only so the crate's
// raw-wire tests can speak HTTP/2 frame by frame, as gRPC C++ does.
#[doc(hidden)]
pub mod hpack;
mod socket;

use async_trait::async_trait;
use polyflight_core::transport::LoopbackEndpoint;
use polyflight_core::{
    CallHandler, ClientTransport, ConnectOptions, FlightError, ListenOptions, Listener, Location,
    PeerCredentials, PeerInfo, Result, Scheme, TransportFactory,
};
use polyflight_grpc::{serve, Acceptor, BoxedIo, Connector, GrpcListener, GrpcSettings};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// File mode of a listener's socket file unless [`UnixListenOptions`] says otherwise: only the
/// owner (the server's user) may connect.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;

/// The `:authority` the client sends: a valid authority for every gRPC server; the socket path
/// itself is not one.
const CLIENT_AUTHORITY: &str = "localhost";

/// Unix-socket settings of a `grpc+unix` listener, read from `ListenOptions.extensions`.
#[derive(Debug, Clone)]
pub struct UnixListenOptions {
    /// File mode of the socket file (connecting needs write permission on it). Default
    /// [`DEFAULT_SOCKET_MODE`]; `0o660` lets the owner's group in, `0o666` everyone.
    pub mode: u32,
}

impl Default for UnixListenOptions {
    fn default() -> Self {
        UnixListenOptions {
            mode: DEFAULT_SOCKET_MODE,
        }
    }
}

impl UnixListenOptions {
    /// Options with this file mode for the socket file.
    pub fn with_mode(mode: u32) -> Self {
        UnixListenOptions { mode }
    }
}

/// Accepts connections on a Unix socket, each with its peer's credentials, and each wrapped in
/// an [`authority::AuthorityFix`].
pub struct UnixAcceptor {
    listener: tokio::net::UnixListener,
    path: PathBuf,
    max_header_bytes: usize,
}

#[async_trait]
impl Acceptor for UnixAcceptor {
    async fn accept(&self) -> io::Result<(BoxedIo, PeerInfo)> {
        let (stream, address) = self.listener.accept().await?;
        // Client sockets are usually unbound; then the peer is known by the socket it came in on.
        let shown = address
            .as_pathname()
            .unwrap_or(&self.path)
            .display()
            .to_string();
        let mut peer = PeerInfo::new(Scheme::GrpcUnix, shown);
        match stream.peer_cred() {
            Ok(cred) => {
                peer = peer.with_credentials(PeerCredentials {
                    uid: cred.uid(),
                    gid: cred.gid(),
                    pid: cred.pid(),
                })
            }
            Err(err) => tracing::debug!(error = %err, "peer credentials unavailable"),
        }
        let io = authority::AuthorityFix::new(stream, self.max_header_bytes);
        Ok((Box::new(io), peer))
    }
}

/// Opens connections to a Unix socket.
pub struct UnixConnector {
    path: PathBuf,
    connect_timeout: Option<Duration>,
}

impl UnixConnector {
    /// A connector for the socket of a `grpc+unix` location.
    pub fn new(location: &Location, options: &ConnectOptions) -> Result<Self> {
        let path = location.unix_path().ok_or_else(|| {
            FlightError::invalid_argument(format!("{location} has no Unix socket path"))
        })?;
        Ok(UnixConnector {
            path: path.to_path_buf(),
            connect_timeout: options.connect_timeout,
        })
    }
}

#[async_trait]
impl Connector for UnixConnector {
    async fn connect(&self) -> Result<BoxedIo> {
        let shown = self.path.display();
        let connect = tokio::net::UnixStream::connect(&self.path);
        let stream = match self.connect_timeout {
            Some(t) => tokio::time::timeout(t, connect).await.map_err(|_| {
                FlightError::unavailable(format!("connecting to {shown} timed out"))
            })?,
            None => connect.await,
        }
        .map_err(|e| {
            FlightError::unavailable(match e.kind() {
                io::ErrorKind::NotFound => {
                    format!("no socket at {shown} (is the server running?)")
                }
                io::ErrorKind::ConnectionRefused => {
                    format!("nothing listens on {shown} (a stale socket file?)")
                }
                io::ErrorKind::PermissionDenied => format!(
                    "permission denied connecting to {shown}: the socket's permissions do not \
                     admit this user"
                ),
                _ => format!("cannot connect to {shown}: {e}"),
            })
        })?;
        Ok(Box::new(stream))
    }

    fn authority(&self) -> &str {
        CLIENT_AUTHORITY
    }

    fn uri_scheme(&self) -> &'static str {
        "http"
    }
}

/// A `grpc+unix` listener: the gRPC listener plus its socket file, which it removes when shut
/// down or dropped.
pub struct UnixListener {
    location: Location,
    grpc: GrpcListener,
    socket: socket::SocketFile,
}

impl UnixListener {
    /// The socket file's path.
    pub fn path(&self) -> &Path {
        self.socket.path()
    }
}

#[async_trait]
impl Listener for UnixListener {
    fn location(&self) -> &Location {
        &self.location
    }

    async fn shutdown(self: Box<Self>, grace: Duration) -> Result<()> {
        let UnixListener {
            grpc, mut socket, ..
        } = *self;
        // New clients find no socket at once; calls in flight finish over their connections.
        socket.remove();
        Box::new(grpc).shutdown(grace).await
    }
}

/// The `grpc+unix://` transport. Listeners read [`UnixListenOptions`] from
/// `ListenOptions.extensions`.
#[derive(Debug, Clone, Default)]
pub struct UnixTransport;

#[async_trait]
impl TransportFactory for UnixTransport {
    fn name(&self) -> &str {
        "grpc+unix"
    }

    fn schemes(&self) -> &[Scheme] {
        &[Scheme::GrpcUnix]
    }

    async fn connect(
        &self,
        location: &Location,
        options: &ConnectOptions,
    ) -> Result<Arc<dyn ClientTransport>> {
        let connector = Arc::new(UnixConnector::new(location, options)?);
        polyflight_grpc::connect_transport(location, connector, options).await
    }

    async fn listen(
        &self,
        location: &Location,
        handler: Arc<dyn CallHandler>,
        options: &ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        let path = location.unix_path().ok_or_else(|| {
            FlightError::invalid_argument(format!("{location} has no Unix socket path"))
        })?;
        let mode = options
            .extensions
            .get::<UnixListenOptions>()
            .map(|o| o.mode)
            .unwrap_or(DEFAULT_SOCKET_MODE);
        let (listener, socket) = socket::bind(path, mode).await?;
        let settings = GrpcSettings::for_server(options);
        let acceptor = UnixAcceptor {
            listener,
            path: path.to_path_buf(),
            // Well above the HTTP/2 server's own limit, so the server answers over-large
            // requests itself; this only bounds what the rewriter buffers.
            max_header_bytes: (settings.max_header_list_size as usize)
                .saturating_mul(2)
                .max(64 * 1024),
        };
        let location = Location::for_unix_path(path)?;
        let grpc = serve(acceptor, location.clone(), handler, settings);
        Ok(Box::new(UnixListener {
            location,
            grpc,
            socket,
        }))
    }

    /// A socket `flight.sock` in a fresh private temporary directory, which
    /// [`LoopbackEndpoint::cleanup`] removes.
    fn loopback_endpoint(&self, scheme: Scheme) -> Result<LoopbackEndpoint> {
        if scheme != Scheme::GrpcUnix {
            return Err(FlightError::unimplemented(format!(
                "grpc+unix has no loopback endpoint for {scheme}"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("polyflight-")
            .tempdir()
            .map_err(|e| {
                FlightError::unavailable(format!("cannot create a temporary directory: {e}"))
            })?
            .keep();
        let location = Location::for_unix_path(&dir.join("flight.sock"));
        let location = match location {
            Ok(location) => location,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(err);
            }
        };
        Ok(LoopbackEndpoint {
            listen_uri: location.uri().to_string(),
            listen: ListenOptions::default(),
            connect: ConnectOptions::default(),
            cleanup: vec![dir],
        })
    }
}
