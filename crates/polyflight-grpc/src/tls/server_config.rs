//! The server side's settings: [`ServerTlsConfig`] (certificate chain, key, client
//! authentication, handshake timeout) and the rustls server configuration built from it.

use super::pem::{certificates_from_pem, certified_key, read_pem_file, root_store};
use super::{invalid, provider, ALPN_H2};
use polyflight_core::{FlightError, Result};
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a client may take to complete the TLS handshake with a server before the server
/// drops it (a client that connects and sends nothing must not hold resources forever).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub(super) handshake_timeout: Duration,
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
