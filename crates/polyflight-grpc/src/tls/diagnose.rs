//! Handshake failures in words: a rustls error (or an alert from the server) becomes a
//! `FlightError` that says what went wrong and what to change, `UNAUTHENTICATED` for
//! client-certificate problems and `UNAVAILABLE` for the others.

use polyflight_core::FlightError;
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError};
use std::io;

/// The rustls error inside an I/O error from tokio-rustls, if there is one.
pub(super) fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A client-side TLS failure as a `FlightError` that says what went wrong and what to change.
/// `asked_for_cert` says whether the server asked for a client certificate: then an alert about
/// a certificate (or about a signature that did not verify) is the server refusing ours.
pub(super) fn client_error(
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
