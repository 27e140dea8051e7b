//! `grpc+tls://host:port`: the gRPC transport over TLS (rustls with the *ring* provider), with
//! optional mutual TLS.
//!
//! TLS is one more layer between TCP and HTTP/2, so this module only provides an
//! [`Acceptor`](crate::server::Acceptor) ([`TlsAcceptor`]) and a
//! [`Connector`](crate::client::Connector) ([`TlsConnector`]); the gRPC server and client of this
//! crate run over them unchanged. Both sides offer ALPN `h2`, which gRPC C++ (pyarrow) insists
//! on.
//!
//! Configuration travels through the transport-neutral options:
//! - a listener reads a [`ServerTlsConfig`] from `ListenOptions.extensions` (certificate chain and
//!   key; optionally a CA that client certificates must chain to, required or optional);
//! - a client reads a [`ClientTlsConfig`] from `ConnectOptions.extensions` (trusted roots —
//!   custom CAs and/or the system store —, a server-name override, a client certificate for
//!   mutual TLS); without one it trusts the system roots.
//!
//! A verified client certificate becomes `PeerInfo.tls`
//! ([`TlsPeerIdentity`](polyflight_core::TlsPeerIdentity): subject as RFC 4514 text, subject
//! alternative names, DER), which services read from their `CallContext`.
//!
//! Handshake failures are reported as a `FlightError` that says what went wrong — a server
//! certificate not valid for the name connected to, one not issued by a trusted CA, a CA
//! certificate used as a server certificate, a missing or rejected client certificate — with
//! `UNAUTHENTICATED` for client-certificate problems and `UNAVAILABLE` for the others.
//!
//! With the `loopback-pki` feature (which brings in rcgen), `LoopbackPki` mints a CA and separate
//! server and client certificates in memory, for loopback endpoints, tests and demos; without it,
//! [`GrpcTlsTransport`] has no loopback endpoint.
//!
//! One file per job: `pem` reads PEM data, `server_config` and `client_config` turn settings into
//! rustls configurations, `acceptor` and `connector` run the handshakes, `diagnose` explains a
//! failed one, `identity` reads a client certificate into `PeerInfo.tls`, `factory` is the
//! `grpc+tls` transport, and `pki` mints certificates for local use.

mod acceptor;
mod client_config;
mod connector;
mod diagnose;
mod factory;
mod identity;
mod pem;
#[cfg(feature = "loopback-pki")]
mod pki;
mod server_config;

pub use acceptor::TlsAcceptor;
pub use client_config::ClientTlsConfig;
pub use connector::TlsConnector;
pub use factory::GrpcTlsTransport;
pub use identity::peer_identity;
pub use pem::read_pem_file;
#[cfg(feature = "loopback-pki")]
pub use pki::{loopback_mtls_endpoint, LoopbackPki, LOOPBACK_CLIENT_NAME};
pub use server_config::{ServerTlsConfig, DEFAULT_HANDSHAKE_TIMEOUT};

use polyflight_core::FlightError;
use rustls::crypto::CryptoProvider;
use std::sync::Arc;

/// The ALPN protocol gRPC runs under.
const ALPN_H2: &[u8] = b"h2";

/// The crypto provider every config of this module is built with. Chosen explicitly (rather
/// than rustls' process-wide default) so that an application linking another provider does not
/// change, or make ambiguous, what this transport uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(message: String) -> FlightError {
    FlightError::invalid_argument(message)
}
