//! `Location`: where a Flight service can be reached, parsed from a URI whose scheme picks the
//! transport (`grpc:`, `grpc+tcp:`, `grpc+tls:`, `grpc+unix:`, `ucx:`, and the special
//! `arrow-flight-reuse-connection:` that means "the connection this FlightInfo came over").

use crate::error::{FlightError, Result};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use url::Url;

/// A location's URI scheme: the ones the core knows, and the ones transports of other crates
/// declare with [`Scheme::custom`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `grpc://host:port` — gRPC over plaintext TCP.
    Grpc,
    /// `grpc+tcp://host:port` — the same transport under its explicit name.
    GrpcTcp,
    /// `grpc+tls://host:port` — gRPC over TLS.
    GrpcTls,
    /// `grpc+unix:///absolute/path.sock` — gRPC over a Unix domain socket.
    GrpcUnix,
    /// `ucx://host:port` — UCX (shared memory, RDMA, TCP).
    Ucx,
    /// `arrow-flight-reuse-connection://?` — in a FlightEndpoint: fetch over the same connection.
    ReuseConnection,
    /// A scheme the core does not know, declared by a transport with [`Scheme::custom`]. Its
    /// locations are `scheme://host:port` when they have a host and port, else opaque URIs the
    /// transport reads itself ([`Location::uri`]).
    Custom(&'static str),
}

/// The schemes declared with [`Scheme::custom`], each name stored once for the process. Only
/// code declares schemes, never a peer: parsing a URI looks names up and adds none.
static CUSTOM_SCHEMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

impl Scheme {
    /// Every scheme, in the order the spec lists them.
    pub const ALL: [Scheme; 6] = [
        Scheme::Grpc,
        Scheme::GrpcTcp,
        Scheme::GrpcTls,
        Scheme::GrpcUnix,
        Scheme::Ucx,
        Scheme::ReuseConnection,
    ];

    /// Declares a scheme the core does not know, for a transport of your own (`mem`, `quic` …),
    /// so that its URIs parse as [`Location`]s and a [`Registry`](crate::Registry) can route them.
    /// Names follow RFC 3986 (a letter, then letters, digits, `+`, `-`, `.`) and are compared
    /// without case; declaring a known scheme returns it.
    ///
    /// ```
    /// use polyflight_core::{Location, Scheme};
    /// let mem = Scheme::custom("mem").unwrap();
    /// let location = Location::parse("mem://store:1").unwrap();
    /// assert_eq!(location.scheme(), mem);
    /// assert_eq!(location.port(), Some(1));
    /// ```
    pub fn custom(name: &str) -> Result<Scheme> {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid {
            return Err(FlightError::invalid_argument(format!(
                "{name:?} is not a URI scheme (a letter, then letters, digits, '+', '-' or '.')"
            )));
        }
        if let Some(scheme) = Scheme::parse(name) {
            return Ok(scheme);
        }
        let mut customs = CUSTOM_SCHEMES.lock().unwrap_or_else(|e| e.into_inner());
        // parse() looked without the lock held: another thread may have declared it since
        if let Some(known) = customs.iter().find(|s| s.eq_ignore_ascii_case(name)) {
            return Ok(Scheme::Custom(known));
        }
        let stored: &'static str = Box::leak(name.to_ascii_lowercase().into_boxed_str());
        customs.push(stored);
        Ok(Scheme::Custom(stored))
    }

    /// The scheme as written in a URI (without the colon).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Custom(name) => name,
            Scheme::Grpc => "grpc",
            Scheme::GrpcTcp => "grpc+tcp",
            Scheme::GrpcTls => "grpc+tls",
            Scheme::GrpcUnix => "grpc+unix",
            Scheme::Ucx => "ucx",
            Scheme::ReuseConnection => "arrow-flight-reuse-connection",
        }
    }

    /// The scheme for a URI scheme string (case-insensitive), if known or declared.
    pub fn parse(s: &str) -> Option<Scheme> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(s))
            .or_else(|| {
                let customs = CUSTOM_SCHEMES.lock().unwrap_or_else(|e| e.into_inner());
                customs
                    .iter()
                    .find(|name| name.eq_ignore_ascii_case(s))
                    .map(|name| Scheme::Custom(name))
            })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a location points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A host (name, IPv4 or IPv6 literal without brackets) and port. Port 0 asks a server to pick one.
    HostPort {
        /// Host name or IP literal (IPv6 without brackets).
        host: String,
        /// TCP/UCX port.
        port: u16,
    },
    /// The absolute path of a Unix domain socket.
    UnixPath(PathBuf),
    /// No address: the reuse-connection location.
    Reuse,
    /// A custom scheme's URI without a host and port: the transport reads [`Location::uri`].
    Opaque,
}

/// A parsed Flight location URI.
///
/// ```
/// use polyflight_core::{Location, Scheme};
/// let loc: Location = "grpc+tcp://[::1]:8815".parse().unwrap();
/// assert_eq!(loc.scheme(), Scheme::GrpcTcp);
/// assert_eq!(loc.host(), Some("::1"));
/// assert_eq!(loc.port(), Some(8815));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    scheme: Scheme,
    endpoint: Endpoint,
    uri: String,
}

impl Location {
    /// Parses a URI. Unknown schemes, missing hosts or ports, relative socket paths and
    /// malformed URIs are `INVALID_ARGUMENT` errors that say what was wrong.
    pub fn parse(uri: &str) -> Result<Location> {
        let url = Url::parse(uri).map_err(|e| {
            FlightError::invalid_argument(format!("malformed location {uri:?}: {e}"))
        })?;
        let scheme = Scheme::parse(url.scheme()).ok_or_else(|| {
            FlightError::invalid_argument(format!(
                "unknown location scheme {:?} in {uri:?} (known: {})",
                url.scheme(),
                Scheme::ALL.map(Scheme::as_str).join(", ")
            ))
        })?;
        let endpoint = match scheme {
            Scheme::ReuseConnection => Endpoint::Reuse,
            Scheme::GrpcUnix => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(FlightError::invalid_argument(format!(
                        "grpc+unix location {uri:?} must have an empty host and an absolute path \
                         (grpc+unix:///path/to.sock)"
                    )));
                }
                let path = url.to_file_path().map_err(|()| {
                    FlightError::invalid_argument(format!(
                        "grpc+unix location {uri:?} needs an absolute socket path"
                    ))
                })?;
                if path.as_os_str().is_empty() || path == Path::new("/") {
                    return Err(FlightError::invalid_argument(format!(
                        "grpc+unix location {uri:?} has no socket path"
                    )));
                }
                Endpoint::UnixPath(path)
            }
            Scheme::Custom(_) if url.host().is_none() || url.port().is_none() => Endpoint::Opaque,
            Scheme::Grpc | Scheme::GrpcTcp | Scheme::GrpcTls | Scheme::Ucx | Scheme::Custom(_) => {
                let host = match url.host() {
                    Some(url::Host::Ipv6(addr)) => addr.to_string(),
                    Some(host) => host.to_string(),
                    None => {
                        return Err(FlightError::invalid_argument(format!(
                            "location {uri:?} has no host"
                        )))
                    }
                };
                if host.is_empty() {
                    return Err(FlightError::invalid_argument(format!(
                        "location {uri:?} has no host"
                    )));
                }
                let port = url.port().ok_or_else(|| {
                    FlightError::invalid_argument(format!("location {uri:?} has no port"))
                })?;
                Endpoint::HostPort { host, port }
            }
        };
        Ok(Location {
            scheme,
            endpoint,
            uri: uri.to_string(),
        })
    }

    /// A `scheme://host:port` location (IPv6 hosts are bracketed).
    pub fn for_host_port(scheme: Scheme, host: &str, port: u16) -> Result<Location> {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Location::parse(&format!("{scheme}://{host}:{port}"))
    }

    /// A `scheme://ip:port` location for a socket address.
    pub fn for_socket_addr(scheme: Scheme, addr: SocketAddr) -> Location {
        let endpoint = Endpoint::HostPort {
            host: addr.ip().to_string(),
            port: addr.port(),
        };
        Location {
            scheme,
            endpoint,
            uri: format!("{scheme}://{addr}"),
        }
    }

    /// A `grpc+unix://` location for an absolute socket path.
    pub fn for_unix_path(path: &Path) -> Result<Location> {
        let url = Url::from_file_path(path).map_err(|()| {
            FlightError::invalid_argument(format!("socket path {} is not absolute", path.display()))
        })?;
        Location::parse(&format!("grpc+unix://{}", &url.as_str()["file://".len()..]))
    }

    /// The special location that tells a client to fetch over the connection it already has.
    pub fn reuse_connection() -> Location {
        Location {
            scheme: Scheme::ReuseConnection,
            endpoint: Endpoint::Reuse,
            uri: "arrow-flight-reuse-connection://?".to_string(),
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// What the location points at.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The host, for host:port schemes (IPv6 without brackets).
    pub fn host(&self) -> Option<&str> {
        match &self.endpoint {
            Endpoint::HostPort { host, .. } => Some(host),
            _ => None,
        }
    }

    /// The port, for host:port schemes.
    pub fn port(&self) -> Option<u16> {
        match &self.endpoint {
            Endpoint::HostPort { port, .. } => Some(*port),
            _ => None,
        }
    }

    /// `host:port` as a string suitable for resolving (IPv6 bracketed).
    pub fn authority(&self) -> Option<String> {
        match &self.endpoint {
            Endpoint::HostPort { host, port } if host.contains(':') => {
                Some(format!("[{host}]:{port}"))
            }
            Endpoint::HostPort { host, port } => Some(format!("{host}:{port}")),
            _ => None,
        }
    }

    /// The socket path, for `grpc+unix:`.
    pub fn unix_path(&self) -> Option<&Path> {
        match &self.endpoint {
            Endpoint::UnixPath(path) => Some(path),
            _ => None,
        }
    }

    /// The URI as given.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// True for the reuse-connection location.
    pub fn is_reuse_connection(&self) -> bool {
        self.scheme == Scheme::ReuseConnection
    }
}

impl std::str::FromStr for Location {
    type Err = FlightError;
    fn from_str(s: &str) -> Result<Self> {
        Location::parse(s)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl From<&Location> for crate::proto::Location {
    fn from(loc: &Location) -> Self {
        crate::proto::Location {
            uri: loc.uri.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlightCode;

    #[test]
    fn parses_every_scheme() {
        let cases = [
            ("grpc://localhost:8815", Scheme::Grpc),
            ("grpc+tcp://127.0.0.1:0", Scheme::GrpcTcp),
            ("grpc+tls://example.com:443", Scheme::GrpcTls),
            ("ucx://10.0.0.5:9000", Scheme::Ucx),
            ("GRPC+TCP://h:1", Scheme::GrpcTcp),
        ];
        for (uri, scheme) in cases {
            let loc = Location::parse(uri).unwrap();
            assert_eq!(loc.scheme(), scheme, "{uri}");
            assert!(loc.port().is_some());
        }
        let unix = Location::parse("grpc+unix:///tmp/flight.sock").unwrap();
        assert_eq!(unix.unix_path(), Some(Path::new("/tmp/flight.sock")));
        let reuse = Location::parse("arrow-flight-reuse-connection://?").unwrap();
        assert!(reuse.is_reuse_connection());
    }

    #[test]
    fn ipv6_and_port_zero() {
        let loc = Location::parse("grpc://[::1]:0").unwrap();
        assert_eq!(loc.host(), Some("::1"));
        assert_eq!(loc.port(), Some(0));
        assert_eq!(loc.authority().unwrap(), "[::1]:0");
        let addr: SocketAddr = "[::1]:9000".parse().unwrap();
        let loc = Location::for_socket_addr(Scheme::Ucx, addr);
        assert_eq!(loc.uri(), "ucx://[::1]:9000");
        assert_eq!(Location::parse(loc.uri()).unwrap(), loc);
    }

    #[test]
    fn unix_paths_round_trip_with_odd_characters() {
        let path = Path::new("/tmp/a dir/flight %1.sock");
        let loc = Location::for_unix_path(path).unwrap();
        assert_eq!(loc.unix_path(), Some(path));
        assert!(Location::for_unix_path(Path::new("relative.sock")).is_err());
    }

    #[test]
    fn rejects_bad_uris_with_clear_errors() {
        for (uri, needle) in [
            ("http://localhost:80", "unknown location scheme"),
            ("grpc://localhost", "no port"),
            ("grpc://:80", "malformed"),
            ("not a uri", "malformed"),
            ("grpc+unix://host/tmp/x.sock", "empty host"),
            ("grpc+unix:///", "no socket path"),
        ] {
            let err = Location::parse(uri).unwrap_err();
            assert_eq!(err.code(), FlightCode::InvalidArgument, "{uri}");
            assert!(err.message().contains(needle), "{uri}: {err}");
        }
    }
}
