//! Call metadata between polyflight's [`Headers`] and tonic's [`MetadataMap`].
//!
//! Keys ending in `-bin` carry binary values on both sides (tonic base64-codes them on the wire,
//! as gRPC does); other values must be visible ASCII for tonic, so a polyflight header whose
//! value is not is skipped (and logged at debug level) rather than failing the call.

use polyflight_core::Headers;
use tonic::metadata::{
    AsciiMetadataKey, AsciiMetadataValue, BinaryMetadataKey, BinaryMetadataValue, KeyAndValueRef,
    MetadataMap,
};

/// Headers that belong to the gRPC or HTTP/2 wire, not to the application: never copied from
/// tonic metadata into polyflight headers (a transport sets its own).
const WIRE_HEADERS: &[&str] = &[
    "te",
    "content-type",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
];

/// Appends `headers` to `map`.
pub fn headers_into_metadata(headers: &Headers, map: &mut MetadataMap) {
    for (key, value) in headers.iter() {
        if Headers::is_binary_key(key) {
            match BinaryMetadataKey::from_bytes(key.as_bytes()) {
                Ok(name) => {
                    map.append_bin(name, BinaryMetadataValue::from_bytes(value));
                }
                Err(_) => tracing::debug!(key, "header name tonic cannot carry; skipped"),
            }
        } else {
            let name = AsciiMetadataKey::from_bytes(key.as_bytes());
            let value = AsciiMetadataValue::try_from(value.as_ref());
            match (name, value) {
                (Ok(name), Ok(value)) => {
                    map.append(name, value);
                }
                _ => tracing::debug!(key, "header tonic cannot carry as ASCII; skipped"),
            }
        }
    }
}

/// The application headers of `map` (the gRPC wire's own are left out).
pub fn metadata_into_headers(map: &MetadataMap) -> Headers {
    let mut headers = Headers::new();
    for entry in map.iter() {
        match entry {
            KeyAndValueRef::Ascii(key, value) => {
                if !WIRE_HEADERS.contains(&key.as_str()) {
                    headers.append(
                        key.as_str(),
                        bytes::Bytes::copy_from_slice(value.as_bytes()),
                    );
                }
            }
            KeyAndValueRef::Binary(key, value) => {
                if WIRE_HEADERS.contains(&key.as_str()) {
                    continue;
                }
                match value.to_bytes() {
                    Ok(decoded) => headers.append(key.as_str(), decoded),
                    Err(_) => tracing::debug!(key = key.as_str(), "undecodable binary header"),
                }
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_headers_round_trip_and_wire_headers_stay_out() {
        let headers = Headers::new()
            .with("authorization", "Bearer t")
            .with("x-trace-bin", &b"\x00\xff"[..])
            .with("x-many", "1");
        let mut headers = headers;
        headers.append("x-many", "2");
        let mut map = MetadataMap::new();
        headers_into_metadata(&headers, &mut map);
        map.insert("grpc-timeout", "5S".parse().expect("ascii"));
        let back = metadata_into_headers(&map);
        assert_eq!(back.get_str("authorization"), Some("Bearer t"));
        assert_eq!(
            back.get("x-trace-bin").map(|b| b.as_ref()),
            Some(&b"\x00\xff"[..])
        );
        assert_eq!(back.get_all("x-many").count(), 2);
        assert!(back.get("grpc-timeout").is_none());
    }
}
