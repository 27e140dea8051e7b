//! `grpc+tls://host:port`: the gRPC transport over TLS (rustls with the *ring* provider), with
//! optional mutual TLS.
//!
//! TLS is one more layer between TCP and HTTP/2, so this module only provides an [`Acceptor`]
//! ([`TlsAcceptor`]) and a [`Connector`] ([`TlsConnector`]); the gRPC server and client of this
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
//! A verified client certificate becomes `PeerInfo.tls` ([`TlsPeerIdentity`]: subject as RFC 4514
//! text, subject alternative names, DER), which services read from their `CallContext`.
//!
//! Handshake failures are reported as a `FlightError` that says what went wrong — a server
//! certificate not valid for the name connected to, one not issued by a trusted CA, a CA
//! certificate used as a server certificate, a missing or rejected client certificate — with
//! `UNAUTHENTICATED` for client-certificate problems and `UNAVAILABLE` for the others.
//!
//! [`LoopbackPki`] mints a CA and separate server and client certificates in memory, for
//! loopback endpoints, tests and demos.

use crate::client::Connector;
use crate::server::{serve, Acceptor, BoxedIo};
use crate::{GrpcSettings, TcpAcceptor, TcpConnector};
use async_trait::async_trait;
use bytes::{Buf, Bytes};
use polyflight_core::transport::LoopbackEndpoint;
use polyflight_core::{
    ClientTransport, ConnectOptions, Dispatcher, FlightError, ListenOptions, Listener, Location,
    PeerInfo, Result, Scheme, TlsPeerIdentity, TransportFactory,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, RootCertStore};
use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, Mutex};
use tokio::task::{JoinHandle, JoinSet};

/// The ALPN protocol gRPC runs under.
const ALPN_H2: &[u8] = b"h2";

/// How long a client may take to complete the TLS handshake with a server before the server
/// drops it (a client that connects and sends nothing must not hold resources forever).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections whose TLS handshake is complete but that the gRPC server has not taken yet.
const ACCEPT_BACKLOG: usize = 64;

/// How long a client waits, after a handshake in which the server asked for a client
/// certificate, for the server's first bytes (see [`TlsConnector`]).
const CLIENT_CERT_VERDICT_WAIT: Duration = Duration::from_secs(2);

/// The crypto provider every config of this module is built with. Chosen explicitly (rather
/// than rustls' process-wide default) so that an application linking another provider does not
/// change, or make ambiguous, what this transport uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(message: String) -> FlightError {
    FlightError::invalid_argument(message)
}

/// Reads a PEM file, with an error that names the file.
pub fn read_pem_file(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    std::fs::read(path)
        .map_err(|e| invalid(format!("cannot read PEM file {}: {e}", path.display())))
}

/// Every certificate in a PEM document; an error if there is none or one is malformed.
fn certificates_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{what}: malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "{what}: no CERTIFICATE block found in the PEM data"
        )));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM document.
fn private_key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        invalid(format!(
            "{what}: no usable private key in the PEM data ({e})"
        ))
    })
}

/// A certificate chain with its key, checked to belong together.
fn certified_key(
    chain_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
    what: &str,
) -> Result<Arc<CertifiedKey>> {
    let chain = certificates_from_pem(chain_pem, &format!("{what} certificate chain"))?;
    let key = private_key_from_pem(key_pem, &format!("{what} key"))?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| {
            invalid(format!(
                "{what} certificate and key cannot be used together: {e}"
            ))
        })
}

fn root_store(certs: &[CertificateDer<'static>], what: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert.clone())
            .map_err(|e| invalid(format!("{what}: not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

// ---- server configuration ----------------------------------------------------------------------

/// Whether and how a TLS server asks clients for a certificate.
#[derive(Clone)]
enum ClientAuth {
    None,
    Optional(Vec<CertificateDer<'static>>),
    Required(Vec<CertificateDer<'static>>),
}

/// TLS settings of a `grpc+tls` listener: the server's certificate chain and key, and
/// optionally a CA that client certificates are verified against (mutual TLS). Put one in
/// `ListenOptions.extensions`; a `grpc+tls` listener without one refuses to start.
///
/// The certificate chain starts with the server's own certificate, which must name the host
/// clients connect to (DNS or IP subject alternative name) and must not be a CA certificate:
/// rustls clients refuse a self-signed CA used as a server certificate.
///
/// ```no_run
/// # fn demo() -> polyflight_core::Result<()> {
/// use polyflight_core::ListenOptions;
/// use polyflight_grpc::tls::{read_pem_file, ServerTlsConfig};
///
/// let tls = ServerTlsConfig::from_pem_files("server.pem", "server.key")?
///     .require_client_cert(read_pem_file("clients-ca.pem")?)?;
/// let mut options = ListenOptions::default();
/// options.extensions.insert(tls);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTlsConfig {
    key: Arc<CertifiedKey>,
    client_auth: ClientAuth,
    handshake_timeout: Duration,
}

impl fmt::Debug for ServerTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client_auth = match self.client_auth {
            ClientAuth::None => "none",
            ClientAuth::Optional(_) => "optional",
            ClientAuth::Required(_) => "required",
        };
        f.debug_struct("ServerTlsConfig")
            .field("certificates", &self.key.cert.len())
            .field("client_auth", &client_auth)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl ServerTlsConfig {
    /// A server identity from a PEM certificate chain (server certificate first, then any
    /// intermediates) and a PEM private key (PKCS#8, PKCS#1 or SEC1). Fails with
    /// `INVALID_ARGUMENT` when either is missing or malformed, or the key does not belong to the
    /// certificate.
    pub fn from_pem(cert_chain_pem: impl AsRef<[u8]>, key_pem: impl AsRef<[u8]>) -> Result<Self> {
        let key = certified_key(
            cert_chain_pem.as_ref(),
            key_pem.as_ref(),
            &provider(),
            "server",
        )?;
        Ok(ServerTlsConfig {
            key,
            client_auth: ClientAuth::None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// [`ServerTlsConfig::from_pem`] reading both from files.
    pub fn from_pem_files(
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self> {
        Self::from_pem(read_pem_file(cert_chain_path)?, read_pem_file(key_path)?)
    }

    /// Mutual TLS: every client must present a certificate issued by one of the CAs in
    /// `ca_pem`; a client without one fails its handshake.
    pub fn require_client_cert(mut self, ca_pem: impl AsRef<[u8]>) -> Result<Self> {
        let cas = certificates_from_pem(ca_pem.as_ref(), "client CA")?;
        root_store(&cas, "client CA")?;
        self.client_auth = ClientAuth::Required(cas);
        Ok(self)
    }

    /// Optional client certificates: a client may present one issued by a CA in `ca_pem` (then
    /// its identity is in `PeerInfo.tls`), or none; a certificate that does not verify still
    /// fails the handshake.
    pub fn optional_client_cert(mut self, ca_pem: impl AsRef<[u8]>) -> Result<Self> {
        let cas = certificates_from_pem(ca_pem.as_ref(), "client CA")?;
        root_store(&cas, "client CA")?;
        self.client_auth = ClientAuth::Optional(cas);
        Ok(self)
    }

    /// How long a client may take to complete its handshake (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration this describes (ALPN `h2`, TLS 1.3 and 1.2).
    pub fn rustls_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| FlightError::internal(format!("TLS provider unusable: {e}")))?;
        let verifier = |cas: &[CertificateDer<'static>], optional: bool| {
            let roots = Arc::new(root_store(cas, "client CA")?);
            let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots,
                provider.clone(),
            );
            let builder = if optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|e| invalid(format!("client CA cannot verify certificates: {e}")))
        };
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(cas) => builder.with_client_cert_verifier(verifier(cas, true)?),
            ClientAuth::Required(cas) => builder.with_client_cert_verifier(verifier(cas, false)?),
        };
        let mut config =
            builder.with_cert_resolver(Arc::new(SingleCert(self.key.clone())) as Arc<_>);
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }
}

/// Serves one certificate to every client.
#[derive(Debug)]
struct SingleCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

// ---- client configuration ----------------------------------------------------------------------

/// TLS settings of a `grpc+tls` client: which roots to trust, the name to verify, and an
/// optional client certificate for mutual TLS. Put one in `ConnectOptions.extensions`; without
/// one a client trusts the system's root certificates and verifies the location's host.
///
/// ```no_run
/// # fn demo() -> polyflight_core::Result<()> {
/// use polyflight_core::ConnectOptions;
/// use polyflight_grpc::tls::{read_pem_file, ClientTlsConfig};
///
/// let tls = ClientTlsConfig::new()
///     .with_root_ca_pem(read_pem_file("ca.pem")?)?
///     .with_client_identity_pem(read_pem_file("client.pem")?, read_pem_file("client.key")?)?;
/// let mut options = ConnectOptions::default();
/// options.extensions.insert(tls);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientTlsConfig {
    roots: Vec<CertificateDer<'static>>,
    system_roots: bool,
    server_name: Option<String>,
    identity: Option<Arc<CertifiedKey>>,
    accept_invalid_certs: bool,
}

impl fmt::Debug for ClientTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsConfig")
            .field("roots", &self.roots.len())
            .field("system_roots", &self.system_roots)
            .field("server_name", &self.server_name)
            .field("client_identity", &self.identity.is_some())
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .finish()
    }
}

impl Default for ClientTlsConfig {
    /// Trusts the system's root certificates.
    fn default() -> Self {
        ClientTlsConfig::new().with_system_roots()
    }
}

impl ClientTlsConfig {
    /// A configuration that trusts nothing yet: add roots with
    /// [`ClientTlsConfig::with_root_ca_pem`] and/or [`ClientTlsConfig::with_system_roots`].
    pub fn new() -> Self {
        ClientTlsConfig {
            roots: Vec::new(),
            system_roots: false,
            server_name: None,
            identity: None,
            accept_invalid_certs: false,
        }
    }

    /// Also trusts every CA certificate in `ca_pem`.
    pub fn with_root_ca_pem(mut self, ca_pem: impl AsRef<[u8]>) -> Result<Self> {
        let cas = certificates_from_pem(ca_pem.as_ref(), "root CA")?;
        root_store(&cas, "root CA")?;
        self.roots.extend(cas);
        Ok(self)
    }

    /// Also trusts the operating system's root certificates (read when connecting).
    pub fn with_system_roots(mut self) -> Self {
        self.system_roots = true;
        self
    }

    /// Verifies the server's certificate for `name` (a DNS name or an IP address) instead of
    /// the host of the location connected to — for example when connecting to an IP address
    /// with a certificate issued for a name.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Mutual TLS: presents this certificate chain (client certificate first) and key when the
    /// server asks for a client certificate.
    pub fn with_client_identity_pem(
        mut self,
        cert_chain_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<Self> {
        self.identity = Some(certified_key(
            cert_chain_pem.as_ref(),
            key_pem.as_ref(),
            &provider(),
            "client",
        )?);
        Ok(self)
    }

    /// Accepts ANY server certificate, so the connection is encrypted but the server is not
    /// authenticated: anyone in the path can impersonate it. For tests against throwaway
    /// certificates only; never in production.
    pub fn danger_accept_invalid_certs(mut self) -> Self {
        self.accept_invalid_certs = true;
        self
    }

    /// The name the server's certificate is verified for when connecting to `host`.
    fn server_name_for(&self, host: &str) -> Result<ServerName<'static>> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_string())
            .map_err(|e| invalid(format!("{name:?} is not a valid TLS server name: {e}")))
    }

    /// The rustls configuration this describes (ALPN `h2`, TLS 1.3 and 1.2). Reads the system
    /// roots when they are asked for.
    pub fn rustls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        Ok(Arc::new(self.build()?))
    }

    fn build(&self) -> Result<rustls::ClientConfig> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| FlightError::internal(format!("TLS provider unusable: {e}")))?;
        let builder = if self.accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
        } else {
            let mut roots = root_store(&self.roots, "root CA")?;
            if self.system_roots {
                let native = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                if added == 0 && !native.errors.is_empty() {
                    tracing::warn!(errors = ?native.errors, "no system root certificates loaded");
                }
            }
            if roots.is_empty() {
                return Err(invalid(
                    "grpc+tls client trusts no root certificate: add a CA with \
                     ClientTlsConfig::with_root_ca_pem or use the system roots"
                        .to_string(),
                ));
            }
            builder.with_root_certificates(roots)
        };
        let mut config = builder.with_client_cert_resolver(Arc::new(ClientCert {
            identity: self.identity.clone(),
            asked: None,
        }));
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(config)
    }
}

/// Presents the configured client certificate (if any) and records that the server asked for
/// one, so the connector knows to wait for the server's verdict (see [`TlsConnector`]).
#[derive(Debug)]
struct ClientCert {
    identity: Option<Arc<CertifiedKey>>,
    asked: Option<Arc<AtomicBool>>,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if let Some(asked) = &self.asked {
            asked.store(true, Ordering::Relaxed);
        }
        self.identity.clone()
    }

    fn has_certs(&self) -> bool {
        // `true` even without an identity: rustls then prepares for client authentication and
        // consults `resolve` whenever the server asks, which is how the request is noticed
        // (without an identity, no certificate is sent).
        true
    }
}

/// The verifier behind [`ClientTlsConfig::danger_accept_invalid_certs`]: any certificate is
/// accepted, but handshake signatures are still checked, so the session is at least bound to
/// the key of the certificate presented.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---- errors ------------------------------------------------------------------------------------

/// The rustls error inside an I/O error from tokio-rustls, if there is one.
fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A client-side TLS failure as a `FlightError` that says what went wrong and what to change.
/// `asked_for_cert` says whether the server asked for a client certificate: then an alert about
/// a certificate (or about a signature that did not verify) is the server refusing ours.
fn client_error(
    err: &io::Error,
    server: &str,
    server_name: &ServerName<'_>,
    asked_for_cert: bool,
) -> FlightError {
    let Some(tls) = rustls_error(err) else {
        return FlightError::unavailable(format!(
            "TLS handshake with {server} failed: {err} (is the server speaking TLS?)"
        ));
    };
    let name = server_name.to_str();
    match tls {
        rustls::Error::InvalidCertificate(cert) => {
            FlightError::unavailable(server_certificate_problem(cert, server, &name))
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            FlightError::unauthenticated(format!(
                "TLS: {server} requires a client certificate (mutual TLS) and none was \
                 presented; configure one with ClientTlsConfig::with_client_identity_pem"
            ))
        }
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError),
        ) if asked_for_cert => FlightError::unauthenticated(format!(
            "TLS: {server} rejected the client certificate (alert: {alert:?}); it must be \
             issued by a CA the server trusts for client certificates"
        )),
        rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol) => {
            FlightError::unavailable(format!(
                "TLS: {server} does not offer HTTP/2 (ALPN h2), which gRPC needs"
            ))
        }
        rustls::Error::AlertReceived(alert) => FlightError::unavailable(format!(
            "TLS: {server} aborted the handshake (alert: {alert:?})"
        )),
        other => FlightError::unavailable(format!(
            "TLS handshake with {server} failed: {other} (is the server speaking TLS?)"
        )),
    }
}

/// A name rustls lists as presented by a certificate (`DnsName("x")`, `IpAddress(1.2.3.4)`)
/// as plain text.
fn presented_name(name: &str) -> &str {
    name.strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        })
        .unwrap_or(name)
}

/// Why the server's certificate was refused, in words.
fn server_certificate_problem(cert: &CertificateError, server: &str, name: &str) -> String {
    match cert {
        CertificateError::NotValidForName => format!(
            "TLS: the certificate of {server} is not valid for the name {name:?}; connect with \
             a name the certificate lists, or set ClientTlsConfig::with_server_name"
        ),
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "TLS: the certificate of {server} is not valid for the name {name:?} (it is valid \
             for: {}); connect with one of those names, or set \
             ClientTlsConfig::with_server_name",
            presented
                .iter()
                .map(|name| presented_name(name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        CertificateError::UnknownIssuer => format!(
            "TLS: the certificate of {server} is not issued by a trusted CA (unknown issuer); \
             add the CA that issued it with ClientTlsConfig::with_root_ca_pem"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("TLS: the certificate of {server} has expired")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("TLS: the certificate of {server} is not valid yet (check the clocks)")
        }
        CertificateError::BadSignature => format!(
            "TLS: the certificate of {server} is not signed by a CA this client trusts (a \
             trusted CA has its issuer's name but not its key: was the CA re-created?)"
        ),
        CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            format!(
                "TLS: {server} presented a CA certificate as its own certificate; rustls \
                 refuses a (self-signed) CA used as a server certificate: issue a separate \
                 server certificate signed by that CA"
            )
        }
        other => format!("TLS: the certificate of {server} was refused: {other:?}"),
    }
}

// ---- peer identity -----------------------------------------------------------------------------

/// The identity of a verified client certificate: subject as RFC 4514 text, subject
/// alternative names (`DNS:…`, `IP:…`, `URI:…`, `email:…`) and the DER bytes. A certificate
/// that rustls verified is well-formed DER; should parsing still fail, the identity carries the
/// DER alone.
pub fn peer_identity(der: &[u8]) -> TlsPeerIdentity {
    let mut identity = TlsPeerIdentity {
        certificate_der: Bytes::copy_from_slice(der),
        ..Default::default()
    };
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            identity.subject = rfc4514(cert.subject());
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                identity.subject_alt_names = san
                    .value
                    .general_names
                    .iter()
                    .filter_map(general_name)
                    .collect();
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot parse a verified client certificate"),
    }
    identity
}

fn general_name(name: &x509_parser::extensions::GeneralName<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName as G;
    Some(match name {
        G::DNSName(dns) => format!("DNS:{dns}"),
        G::URI(uri) => format!("URI:{uri}"),
        G::RFC822Name(email) => format!("email:{email}"),
        G::IPAddress(bytes) => match bytes.len() {
            4 => {
                let octets: [u8; 4] = (*bytes).try_into().ok()?;
                format!("IP:{}", std::net::Ipv4Addr::from(octets))
            }
            16 => {
                let octets: [u8; 16] = (*bytes).try_into().ok()?;
                format!("IP:{}", std::net::Ipv6Addr::from(octets))
            }
            _ => return None,
        },
        G::DirectoryName(dn) => format!("DirName:{}", rfc4514(dn)),
        _ => return None,
    })
}

/// A distinguished name as RFC 4514 text: relative distinguished names last-to-first, joined by
/// `,`; multi-valued ones joined by `+`; well-known attribute types by their short names, others
/// by dotted OID; string values escaped, other values as `#` and the hex of their DER.
fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let key = match oid.as_str() {
                        "2.5.4.3" => "CN",
                        "2.5.4.7" => "L",
                        "2.5.4.8" => "ST",
                        "2.5.4.10" => "O",
                        "2.5.4.11" => "OU",
                        "2.5.4.6" => "C",
                        "2.5.4.9" => "STREET",
                        "0.9.2342.19200300.100.1.25" => "DC",
                        "0.9.2342.19200300.100.1.1" => "UID",
                        _ => oid.as_str(),
                    };
                    let value = match attr.as_str() {
                        Ok(text) => escape_rfc4514(text),
                        Err(_) => {
                            let value = attr.attr_value();
                            let mut der = der_header(value);
                            der.extend_from_slice(value.data);
                            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                            format!("#{hex}")
                        }
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The DER tag and length bytes of an attribute value (for the `#hex` form).
fn der_header(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> Vec<u8> {
    let header = &value.header;
    let class = (header.class() as u8) << 6;
    let constructed = if header.is_constructed() { 0x20 } else { 0 };
    let tag = header.tag().0;
    let mut out = Vec::new();
    if tag < 31 {
        out.push(class | constructed | tag as u8);
    } else {
        out.push(class | constructed | 0x1f);
        let mut groups = Vec::new();
        let mut rest = tag;
        loop {
            groups.push((rest & 0x7f) as u8);
            rest >>= 7;
            if rest == 0 {
                break;
            }
        }
        for (i, group) in groups.iter().enumerate().rev() {
            out.push(if i == 0 { *group } else { group | 0x80 });
        }
    }
    let len = value.data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out
}

fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

// ---- server side -------------------------------------------------------------------------------

/// Accepts TLS connections: TCP connections are accepted on a background task and each
/// handshake runs on a task of its own (bounded by the configured handshake timeout), so a slow
/// or silent client never holds up the others. Failed handshakes are logged and dropped.
pub struct TlsAcceptor {
    ready: Mutex<mpsc::Receiver<(BoxedIo, PeerInfo)>>,
    task: JoinHandle<()>,
}

impl TlsAcceptor {
    /// Binds `host:port` of `location` (port 0 picks a free port) and starts accepting;
    /// returns the acceptor and the bound location.
    pub async fn bind(location: &Location, config: &ServerTlsConfig) -> Result<(Self, Location)> {
        let rustls_config = config.rustls_config()?;
        let (tcp, bound) = TcpAcceptor::bind(location).await?;
        let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
        let timeout = config.handshake_timeout;
        let task = tokio::spawn(accept_loop(
            tcp,
            tokio_rustls::TlsAcceptor::from(rustls_config),
            timeout,
            tx,
        ));
        Ok((
            TlsAcceptor {
                ready: Mutex::new(rx),
                task,
            },
            bound,
        ))
    }
}

impl Drop for TlsAcceptor {
    fn drop(&mut self) {
        // Closes the listening socket and abandons handshakes in progress.
        self.task.abort();
    }
}

#[async_trait]
impl Acceptor for TlsAcceptor {
    async fn accept(&self) -> io::Result<(BoxedIo, PeerInfo)> {
        match self.ready.lock().await.recv().await {
            Some(connection) => Ok(connection),
            None => Err(io::Error::other("the TLS accept loop has stopped")),
        }
    }
}

async fn accept_loop(
    tcp: TcpAcceptor,
    tls: tokio_rustls::TlsAcceptor,
    timeout: Duration,
    ready: mpsc::Sender<(BoxedIo, PeerInfo)>,
) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = tcp.accept_tcp() => match accepted {
                Ok((stream, peer)) => {
                    let tls = tls.clone();
                    let ready = ready.clone();
                    handshakes.spawn(async move {
                        if let Some(connection) = handshake(tls, stream, peer, timeout).await {
                            // The receiver is gone only when the listener shuts down.
                            let _ = ready.send(connection).await;
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a TCP connection failed");
                    // Avoid a hot loop when the socket keeps failing (e.g. out of fds).
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
            _ = ready.closed() => return,
        }
    }
}

async fn handshake(
    tls: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: PeerInfo,
    timeout: Duration,
) -> Option<(BoxedIo, PeerInfo)> {
    let address = peer.address.clone().unwrap_or_default();
    let stream = match tokio::time::timeout(timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            match rustls_error(&err) {
                Some(rustls::Error::NoCertificatesPresented) => tracing::warn!(
                    peer = %address,
                    "TLS client rejected: it presented no client certificate (mutual TLS is required)"
                ),
                Some(rustls::Error::InvalidCertificate(cert)) => tracing::warn!(
                    peer = %address,
                    problem = ?cert,
                    "TLS client rejected: its client certificate did not verify"
                ),
                _ => tracing::debug!(peer = %address, error = %err, "TLS handshake failed"),
            }
            return None;
        }
        Err(_) => {
            tracing::debug!(peer = %address, ?timeout, "TLS handshake timed out");
            return None;
        }
    };
    let peer = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
    {
        Some(cert) => peer.with_tls(peer_identity(cert)),
        None => peer,
    };
    Some((Box::new(stream), peer))
}

// ---- client side -------------------------------------------------------------------------------

/// Opens TLS connections to a host:port.
///
/// In TLS 1.3 a client finishes its handshake before the server has judged the client's
/// certificate, so a server that refuses it (or requires one that was not sent) says so only
/// with an alert after the handshake — which hyper would report as a bare broken connection.
/// When the server asked for a client certificate, the connector therefore waits briefly for
/// the server's first bytes (a gRPC server speaks first, with its HTTP/2 SETTINGS): an alert
/// becomes a clear `UNAUTHENTICATED` error at connect time, and the bytes that did arrive are
/// handed on to HTTP/2 unchanged.
pub struct TlsConnector {
    tcp: TcpConnector,
    /// Presents a client certificate when asked (if one is configured).
    identity: Option<Arc<CertifiedKey>>,
    /// Built once (reading the system roots is slow); each connection gets a copy with a
    /// client-certificate resolver of its own.
    rustls: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    authority: String,
    connect_timeout: Option<Duration>,
}

impl TlsConnector {
    /// A connector for `location`'s host:port with these TLS settings.
    pub fn new(
        location: &Location,
        options: &ConnectOptions,
        config: ClientTlsConfig,
    ) -> Result<Self> {
        let tcp = TcpConnector::new(location, options)?;
        let host = location.host().ok_or_else(|| {
            invalid(format!(
                "{location} has no host to verify a certificate for"
            ))
        })?;
        let server_name = config.server_name_for(host)?;
        // Built now, so an unusable configuration (no roots, say) fails here, not at the first
        // call.
        let rustls = Arc::new(config.build()?);
        Ok(TlsConnector {
            authority: tcp.authority().to_string(),
            tcp,
            identity: config.identity,
            rustls,
            server_name,
            connect_timeout: options.connect_timeout,
        })
    }

    async fn connect_tls(&self) -> Result<BoxedIo> {
        let stream = self.tcp.connect_tcp().await?;
        let asked = Arc::new(AtomicBool::new(false));
        let mut config = (*self.rustls).clone();
        config.client_auth_cert_resolver = Arc::new(ClientCert {
            identity: self.identity.clone(),
            asked: Some(asked.clone()),
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let handshake = connector.connect(self.server_name.clone(), stream);
        let mut tls = match self.connect_timeout {
            Some(t) => tokio::time::timeout(t, handshake).await.map_err(|_| {
                FlightError::unavailable(format!("TLS handshake with {} timed out", self.authority))
            })?,
            None => handshake.await,
        }
        .map_err(|e| {
            client_error(
                &e,
                &self.authority,
                &self.server_name,
                asked.load(Ordering::Relaxed),
            )
        })?;
        if !asked.load(Ordering::Relaxed) {
            return Ok(Box::new(tls));
        }
        let mut first = vec![0u8; 16 * 1024];
        match tokio::time::timeout(CLIENT_CERT_VERDICT_WAIT, tls.read(&mut first)).await {
            // No verdict in time: carry on; HTTP/2 reports whatever happens next.
            Err(_) => Ok(Box::new(tls)),
            Ok(Ok(0)) => Err(self.closed_after_handshake()),
            Ok(Ok(n)) => {
                first.truncate(n);
                Ok(Box::new(Prefixed {
                    prefix: Bytes::from(first),
                    inner: tls,
                }))
            }
            Ok(Err(err)) if rustls_error(&err).is_some() => {
                Err(client_error(&err, &self.authority, &self.server_name, true))
            }
            // Some servers (OpenSSL-based gRPC C++, for one) refuse a client certificate by
            // closing the connection without an alert.
            Ok(Err(err))
                if matches!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                Err(self.closed_after_handshake())
            }
            Ok(Err(err)) => Err(client_error(&err, &self.authority, &self.server_name, true)),
        }
    }

    /// The server asked for a client certificate, then hung up before saying anything else:
    /// it did not accept what it got.
    fn closed_after_handshake(&self) -> FlightError {
        if self.identity.is_some() {
            FlightError::unauthenticated(format!(
                "TLS: {} asked for a client certificate and closed the connection after the \
                 handshake: it rejected the client certificate; it must be issued by a CA the \
                 server trusts for client certificates",
                self.authority
            ))
        } else {
            FlightError::unauthenticated(format!(
                "TLS: {} asked for a client certificate and closed the connection after the \
                 handshake: it requires a client certificate (mutual TLS) and none was \
                 presented; configure one with ClientTlsConfig::with_client_identity_pem",
                self.authority
            ))
        }
    }
}

#[async_trait]
impl Connector for TlsConnector {
    async fn connect(&self) -> Result<BoxedIo> {
        self.connect_tls().await
    }

    fn authority(&self) -> &str {
        &self.authority
    }

    fn uri_scheme(&self) -> &'static str {
        "https"
    }
}

/// A stream that first yields bytes already read from it.
struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ---- the transport -----------------------------------------------------------------------------

/// The `grpc+tls://` transport. Listeners need a [`ServerTlsConfig`] in
/// `ListenOptions.extensions`; clients use the [`ClientTlsConfig`] in
/// `ConnectOptions.extensions`, or trust the system roots when there is none.
#[derive(Debug, Clone, Default)]
pub struct GrpcTlsTransport;

#[async_trait]
impl TransportFactory for GrpcTlsTransport {
    fn name(&self) -> &str {
        "grpc+tls"
    }

    fn schemes(&self) -> &[Scheme] {
        &[Scheme::GrpcTls]
    }

    async fn connect(
        &self,
        location: &Location,
        options: &ConnectOptions,
    ) -> Result<Arc<dyn ClientTransport>> {
        let config = options
            .extensions
            .get::<ClientTlsConfig>()
            .cloned()
            .unwrap_or_default();
        let connector = Arc::new(TlsConnector::new(location, options, config)?);
        crate::client::connect_transport(location, connector, options).await
    }

    async fn listen(
        &self,
        location: &Location,
        dispatcher: Dispatcher,
        options: &ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        let config = options.extensions.get::<ServerTlsConfig>().ok_or_else(|| {
            invalid(format!(
                "{location}: a grpc+tls listener needs a ServerTlsConfig (certificate and key) \
                 in ListenOptions.extensions"
            ))
        })?;
        let (acceptor, bound) = TlsAcceptor::bind(location, config).await?;
        Ok(Box::new(serve(
            acceptor,
            bound,
            dispatcher,
            GrpcSettings::for_server(options),
        )))
    }

    /// `grpc+tls://127.0.0.1:0` with freshly minted certificates (see [`LoopbackPki`]), held in
    /// memory: nothing is written to disk.
    fn loopback_endpoint(&self, scheme: Scheme) -> Result<LoopbackEndpoint> {
        if scheme != Scheme::GrpcTls {
            return Err(FlightError::unimplemented(format!(
                "grpc+tls has no loopback endpoint for {scheme}"
            )));
        }
        LoopbackPki::generate()?.endpoint(false)
    }
}

/// A loopback `grpc+tls` endpoint whose server requires a client certificate, and whose client
/// presents one (mutual TLS); see [`GrpcTlsTransport::loopback_endpoint`].
pub fn loopback_mtls_endpoint() -> Result<LoopbackEndpoint> {
    LoopbackPki::generate()?.endpoint(true)
}

// ---- certificates for local use ----------------------------------------------------------------

/// Certificates minted in memory for local endpoints, tests and demos: a CA, a server
/// certificate it issued for `localhost`, `127.0.0.1` and `::1`, and a client certificate it
/// issued (subject `CN=polyflight loopback client`, SAN `DNS:client.localhost`). Each is
/// separate from the CA, as rustls requires. Not for production: the keys never leave memory
/// and nothing revokes them.
#[derive(Clone)]
pub struct LoopbackPki {
    /// The CA certificate (PEM) to trust on both sides.
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// The server's private key (PEM).
    pub server_key_pem: String,
    /// The client certificate (PEM).
    pub client_cert_pem: String,
    /// The client's private key (PEM).
    pub client_key_pem: String,
}

impl fmt::Debug for LoopbackPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackPki").finish_non_exhaustive()
    }
}

/// Subject common name of the client certificate [`LoopbackPki`] mints.
pub const LOOPBACK_CLIENT_NAME: &str = "polyflight loopback client";

impl LoopbackPki {
    /// Mints a fresh CA, server and client certificate.
    pub fn generate() -> Result<Self> {
        let mint =
            |e: rcgen::Error| FlightError::internal(format!("cannot mint certificates: {e}"));
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(mint)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().map_err(mint)?;
        // Each CA gets a name of its own (from its key): two CAs of one name make verifiers
        // report a bad signature instead of an unknown issuer.
        let tag: String = ca_key
            .public_key_raw()
            .iter()
            .rev()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("polyflight loopback CA {tag}"),
        );
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(mint)?;

        let issue = |names: Vec<String>,
                     common_name: &str,
                     usage: rcgen::ExtendedKeyUsagePurpose|
         -> Result<(String, String)> {
            let mut params = rcgen::CertificateParams::new(names).map_err(mint)?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, common_name);
            params.extended_key_usages = vec![usage];
            params.use_authority_key_identifier_extension = true;
            let key = rcgen::KeyPair::generate().map_err(mint)?;
            let cert = params.signed_by(&key, &ca).map_err(mint)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (server_cert_pem, server_key_pem) = issue(
            vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            "localhost",
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert_pem, client_key_pem) = issue(
            vec!["client.localhost".into()],
            LOOPBACK_CLIENT_NAME,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        Ok(LoopbackPki {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
        })
    }

    /// The server side: this server certificate, and with `mutual` a required client
    /// certificate issued by this CA.
    pub fn server_config(&self, mutual: bool) -> Result<ServerTlsConfig> {
        let config = ServerTlsConfig::from_pem(&self.server_cert_pem, &self.server_key_pem)?;
        if mutual {
            config.require_client_cert(&self.ca_pem)
        } else {
            Ok(config)
        }
    }

    /// The client side: trusts this CA only, and with `mutual` presents this client
    /// certificate.
    pub fn client_config(&self, mutual: bool) -> Result<ClientTlsConfig> {
        let config = ClientTlsConfig::new().with_root_ca_pem(&self.ca_pem)?;
        if mutual {
            config.with_client_identity_pem(&self.client_cert_pem, &self.client_key_pem)
        } else {
            Ok(config)
        }
    }

    /// A loopback endpoint on `grpc+tls://127.0.0.1:0` using these certificates.
    pub fn endpoint(&self, mutual: bool) -> Result<LoopbackEndpoint> {
        let mut listen = ListenOptions::default();
        listen.extensions.insert(self.server_config(mutual)?);
        let mut connect = ConnectOptions::default();
        connect.extensions.insert(self.client_config(mutual)?);
        Ok(LoopbackEndpoint {
            listen_uri: "grpc+tls://127.0.0.1:0".to_string(),
            listen,
            connect,
            cleanup: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_escaping() {
        assert_eq!(escape_rfc4514("a,b"), "a\\,b");
        assert_eq!(escape_rfc4514("#x "), "\\#x\\ ");
        assert_eq!(escape_rfc4514(" lead"), "\\ lead");
        assert_eq!(escape_rfc4514("a+b<c>;\"\\"), "a\\+b\\<c\\>\\;\\\"\\\\");
        assert_eq!(escape_rfc4514("plain"), "plain");
    }

    #[test]
    fn identity_of_a_minted_client_certificate() {
        let pki = LoopbackPki::generate().unwrap();
        let der = CertificateDer::from_pem_slice(pki.client_cert_pem.as_bytes()).unwrap();
        let identity = peer_identity(&der);
        assert_eq!(identity.subject, format!("CN={LOOPBACK_CLIENT_NAME}"));
        assert_eq!(identity.subject_alt_names, vec!["DNS:client.localhost"]);
        assert_eq!(identity.certificate_der.as_ref(), der.as_ref());
    }

    #[test]
    fn multi_attribute_subjects_are_reversed_and_escaped() {
        let mut params = rcgen::CertificateParams::new(vec!["10.1.2.3".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "NL");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Flight, Inc.");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "svc");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let identity = peer_identity(cert.der());
        assert_eq!(identity.subject, "CN=svc,O=Flight\\, Inc.,C=NL");
        assert_eq!(identity.subject_alt_names, vec!["IP:10.1.2.3"]);
    }

    #[test]
    fn garbage_is_not_an_identity_but_no_panic() {
        let identity = peer_identity(b"\x30\x03\x02\x01");
        assert!(identity.subject.is_empty());
        assert_eq!(identity.certificate_der.len(), 4);
    }

    #[test]
    fn pem_errors_say_what_is_missing() {
        let err = ServerTlsConfig::from_pem("", "").unwrap_err();
        assert!(err.message().contains("no CERTIFICATE"), "{err}");
        let pki = LoopbackPki::generate().unwrap();
        let err = ServerTlsConfig::from_pem(&pki.server_cert_pem, "").unwrap_err();
        assert!(err.message().contains("private key"), "{err}");
        let err = ServerTlsConfig::from_pem(&pki.server_cert_pem, &pki.client_key_pem).unwrap_err();
        assert!(err.message().contains("cannot be used together"), "{err}");
        let err = ClientTlsConfig::new().rustls_config().unwrap_err();
        assert!(err.message().contains("no root certificate"), "{err}");
    }
}
