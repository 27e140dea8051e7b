//! Certificates for local use (feature `loopback-pki`, with rcgen): [`LoopbackPki`] mints a CA
//! and separate server and client certificates in memory, for loopback endpoints, tests and
//! demos; [`loopback_mtls_endpoint`] is the mutual-TLS loopback endpoint built from them.

use super::{ClientTlsConfig, ServerTlsConfig};
use polyflight_core::transport::LoopbackEndpoint;
use polyflight_core::{ConnectOptions, FlightError, ListenOptions, Result};
use std::fmt;

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

/// A loopback `grpc+tls` endpoint whose server requires a client certificate, and whose client
/// presents one (mutual TLS); see
/// [`GrpcTlsTransport::loopback_endpoint`](super::GrpcTlsTransport#method.loopback_endpoint).
pub fn loopback_mtls_endpoint() -> Result<LoopbackEndpoint> {
    LoopbackPki::generate()?.endpoint(true)
}
