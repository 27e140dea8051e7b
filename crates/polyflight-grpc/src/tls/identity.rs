//! The identity of a verified client certificate ([`peer_identity`]): its subject rendered as
//! RFC 4514 text, its subject alternative names and its DER, for `PeerInfo.tls`.

use bytes::Bytes;
use polyflight_core::TlsPeerIdentity;

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

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "loopback-pki")]
    use crate::tls::{LoopbackPki, LOOPBACK_CLIENT_NAME};
    #[cfg(feature = "loopback-pki")]
    use rustls::pki_types::{pem::PemObject, CertificateDer};

    #[test]
    fn rfc4514_escaping() {
        assert_eq!(escape_rfc4514("a,b"), "a\\,b");
        assert_eq!(escape_rfc4514("#x "), "\\#x\\ ");
        assert_eq!(escape_rfc4514(" lead"), "\\ lead");
        assert_eq!(escape_rfc4514("a+b<c>;\"\\"), "a\\+b\\<c\\>\\;\\\"\\\\");
        assert_eq!(escape_rfc4514("plain"), "plain");
    }

    #[test]
    #[cfg(feature = "loopback-pki")]
    fn identity_of_a_minted_client_certificate() {
        let pki = LoopbackPki::generate().unwrap();
        let der = CertificateDer::from_pem_slice(pki.client_cert_pem.as_bytes()).unwrap();
        let identity = peer_identity(&der);
        assert_eq!(identity.subject, format!("CN={LOOPBACK_CLIENT_NAME}"));
        assert_eq!(identity.subject_alt_names, vec!["DNS:client.localhost"]);
        assert_eq!(identity.certificate_der.as_ref(), der.as_ref());
    }

    #[test]
    #[cfg(feature = "loopback-pki")]
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
}
