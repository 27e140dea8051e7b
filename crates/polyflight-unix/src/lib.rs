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
    /// The send buffer of accepted connections (`SO_SNDBUF`); `None` (the default) keeps the
    /// system's. See [`UnixSocketOptions`].
    pub send_buffer: Option<usize>,
}

impl Default for UnixListenOptions {
    fn default() -> Self {
        UnixListenOptions {
            mode: DEFAULT_SOCKET_MODE,
            send_buffer: None,
        }
    }
}

impl UnixListenOptions {
    /// Options with this file mode for the socket file.
    pub fn with_mode(mode: u32) -> Self {
        UnixListenOptions {
            mode,
            ..UnixListenOptions::default()
        }
    }
}

/// Client-side socket options of `grpc+unix` connections, read from
/// `ConnectOptions.extensions`.
///
/// A Unix stream socket has no receive buffer of its own: what one end sends is queued against
/// the sender's `SO_SNDBUF`, `net.core.wmem_default` (208 KiB on most systems) unless set, and
/// at most `net.core.wmem_max` (the kernel caps larger requests; the size granted is logged at
/// debug level). A larger buffer lets a 1 MiB batch go in one write instead of blocking in
/// pieces, but the bytes then wait out of cache for the reader: in-process benchmarks on a
/// 2-vCPU VM showed no gain from 512 KiB or 1 MiB and losses from 4 MiB (DoGet of 1 MiB
/// batches 0.58–0.97× in three of four interleaved pairs), so both sides keep the system's size
/// unless told (docs/transports/grpc-unix.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnixSocketOptions {
    /// The send buffer of the client's connections (`SO_SNDBUF`); `None` (the default) keeps the
    /// system's.
    pub send_buffer: Option<usize>,
}

/// Asks for a send buffer of `bytes` on `stream` (the kernel may grant less).
fn set_send_buffer(stream: &tokio::net::UnixStream, bytes: Option<usize>) {
    let Some(bytes) = bytes else { return };
    let socket = socket2::SockRef::from(stream);
    match socket.set_send_buffer_size(bytes) {
        // Linux reports twice the size it books (the doubling covers its bookkeeping)
        Ok(()) => {
            if let Ok(granted) = socket.send_buffer_size() {
                if granted / 2 < bytes {
                    tracing::debug!(
                        asked = bytes,
                        granted = granted / 2,
                        "Unix socket send buffer capped (net.core.wmem_max)"
                    );
                }
            }
        }
        Err(err) => tracing::debug!(error = %err, "cannot set the Unix socket send buffer"),
    }
}

/// Accepts connections on a Unix socket, each with its peer's credentials, and each wrapped in
/// an [`authority::AuthorityFix`].
pub struct UnixAcceptor {
    listener: tokio::net::UnixListener,
    path: PathBuf,
    max_header_bytes: usize,
    send_buffer: Option<usize>,
}

#[async_trait]
impl Acceptor for UnixAcceptor {
    async fn accept(&self) -> io::Result<(BoxedIo, PeerInfo)> {
        let (stream, address) = self.listener.accept().await?;
        set_send_buffer(&stream, self.send_buffer);
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
    send_buffer: Option<usize>,
}

impl UnixConnector {
    /// A connector for the socket of a `grpc+unix` location.
    pub fn new(location: &Location, options: &ConnectOptions) -> Result<Self> {
        let path = location.unix_path().ok_or_else(|| {
            FlightError::invalid_argument(format!("{location} has no Unix socket path"))
        })?;
        let socket = options
            .extensions
            .get::<UnixSocketOptions>()
            .copied()
            .unwrap_or_default();
        Ok(UnixConnector {
            path: path.to_path_buf(),
            connect_timeout: options.connect_timeout,
            send_buffer: socket.send_buffer,
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
        set_send_buffer(&stream, self.send_buffer);
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
        let unix = options
            .extensions
            .get::<UnixListenOptions>()
            .cloned()
            .unwrap_or_default();
        let (listener, socket) = socket::bind(path, unix.mode).await?;
        let settings = GrpcSettings::for_server(options);
        let acceptor = UnixAcceptor {
            listener,
            path: path.to_path_buf(),
            // Well above the HTTP/2 server's own limit, so the server answers over-large
            // requests itself; this only bounds what the rewriter buffers.
            max_header_bytes: (settings.max_header_list_size as usize)
                .saturating_mul(2)
                .max(64 * 1024),
            send_buffer: unix.send_buffer,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_send_buffer_asked_for_is_granted_up_to_the_system_cap() {
        let (a, _b) = tokio::net::UnixStream::pair().expect("socket pair");
        let before = socket2::SockRef::from(&a)
            .send_buffer_size()
            .expect("SO_SNDBUF");
        set_send_buffer(&a, None);
        assert_eq!(
            socket2::SockRef::from(&a).send_buffer_size().ok(),
            Some(before)
        );
        let asked = 1 << 20;
        set_send_buffer(&a, Some(asked));
        let granted = socket2::SockRef::from(&a)
            .send_buffer_size()
            .expect("SO_SNDBUF");
        let cap = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok());
        // Linux books (and reports) twice what it grants
        let expected = asked.min(cap.unwrap_or(asked)) * 2;
        if cfg!(target_os = "linux") {
            assert_eq!(granted, expected, "cap {cap:?}");
        } else {
            assert!(granted >= before);
        }
    }
}
