//! The client side's settings: [`ClientTlsConfig`] (trusted roots, server name, client
//! certificate) and the rustls client configuration built from it, with the resolver that
//! presents the client certificate and notices the server asking for one, and the verifier
//! behind `danger_accept_invalid_certs`.

use super::pem::{certificates_from_pem, certified_key, root_store};
use super::{invalid, provider, ALPN_H2};
use polyflight_core::{FlightError, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::DigitallySignedStruct;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    pub(super) identity: Option<Arc<CertifiedKey>>,
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
    pub(super) fn server_name_for(&self, host: &str) -> Result<ServerName<'static>> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_string())
            .map_err(|e| invalid(format!("{name:?} is not a valid TLS server name: {e}")))
    }

    /// The rustls configuration this describes (ALPN `h2`, TLS 1.3 and 1.2). Reads the system
    /// roots when they are asked for.
    pub fn rustls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        Ok(Arc::new(self.build()?))
    }

    pub(super) fn build(&self) -> Result<rustls::ClientConfig> {
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
/// one, so the connector knows to wait for the server's verdict (see
/// [`TlsConnector`](super::TlsConnector)).
#[derive(Debug)]
pub(super) struct ClientCert {
    pub(super) identity: Option<Arc<CertifiedKey>>,
    pub(super) asked: Option<Arc<AtomicBool>>,
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
