//! PEM input: reading PEM files, and the certificates, private keys and CA root stores in PEM
//! data, with errors that say what is missing or malformed.

use super::invalid;
use polyflight_core::Result;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use std::path::Path;
use std::sync::Arc;

/// Reads a PEM file, with an error that names the file.
pub fn read_pem_file(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    std::fs::read(path)
        .map_err(|e| invalid(format!("cannot read PEM file {}: {e}", path.display())))
}

/// Every certificate in a PEM document; an error if there is none or one is malformed.
pub(super) fn certificates_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>> {
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
pub(super) fn certified_key(
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

pub(super) fn root_store(certs: &[CertificateDer<'static>], what: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert.clone())
            .map_err(|e| invalid(format!("{what}: not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

#[cfg(all(test, feature = "loopback-pki"))]
mod tests {
    use crate::tls::{ClientTlsConfig, LoopbackPki, ServerTlsConfig};

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
