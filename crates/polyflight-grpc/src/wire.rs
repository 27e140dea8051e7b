//! The gRPC wire, as pure functions over bytes: length-prefixed message framing, the protobuf
//! form of FlightData (written and read by hand so bodies are neither parsed by prost nor copied),
//! `grpc-timeout`, status codes and metadata. No I/O here; `server.rs` and `client.rs` drive it.
//!
//! Receiving never allocates what a peer merely claims: a message's buffer is sized only once
//! its bytes have arrived, and a declared length over the configured limit is refused at once.

use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use polyflight_core::proto::FlightDescriptor;
use polyflight_core::{
    AlignedBuf, DataBody, FlightCode, FlightData, FlightError, Headers, Message as SeamMessage,
    Result,
};
use prost::Message;
use std::collections::VecDeque;
use std::time::Duration;

/// Bytes of the gRPC length prefix: 1 compression flag + 4 length (big-endian).
pub const PREFIX_LEN: usize = 5;

/// Alignment of received bodies: enough for every Arrow type, so arrays are built over the
/// buffer without realigning.
const BODY_ALIGNMENT: usize = polyflight_core::BUFFER_ALIGNMENT;

// ---- received bytes ----------------------------------------------------------------------------

/// A message's bytes as they arrived: a chain of `Bytes` chunks (HTTP/2 DATA frames), readable
/// through `bytes::Buf` without first being copied into one buffer.
#[derive(Debug, Default, Clone)]
pub struct SegmentedBuf {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl SegmentedBuf {
    /// Appends a chunk.
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Splits off the first `len` bytes (which must be buffered) without copying.
    fn split_to(&mut self, mut len: usize) -> SegmentedBuf {
        let mut out = SegmentedBuf::default();
        while len > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= len {
                len -= front.len();
                self.remaining -= front.len();
                if let Some(chunk) = self.chunks.pop_front() {
                    out.push(chunk);
                }
            } else {
                out.push(front.split_to(len));
                self.remaining -= len;
                len = 0;
            }
        }
        out
    }

    /// Takes `len` bytes as one `Bytes` whose start is 64-byte aligned: a slice when they lie in
    /// one chunk and are aligned already, otherwise one copy into an aligned buffer (the bytes
    /// have arrived, so the allocation is backed by data actually received).
    fn take_aligned(&mut self, len: usize) -> Bytes {
        if let Some(front) = self.chunks.front() {
            if front.len() >= len && (front.as_ptr() as usize).is_multiple_of(BODY_ALIGNMENT) {
                return self.copy_to_bytes(len);
            }
        }
        // the caller checked that `len` bytes are buffered, so the copy cannot fail
        match AlignedBuf::copy_from_buf(self, len) {
            Ok(buf) => buf.into_bytes(),
            Err(_) => self.copy_to_bytes(len),
        }
    }
}

impl Buf for SegmentedBuf {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map(Bytes::as_ref).unwrap_or(&[])
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if front.len() <= cnt {
                cnt -= front.len();
                self.remaining -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(cnt);
                self.remaining -= cnt;
                return;
            }
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        // Zero-copy when the bytes lie in the front chunk (small fields, and bodies that arrived
        // in one DATA frame).
        if let Some(front) = self.chunks.front_mut() {
            if front.len() >= len {
                let out = front.split_to(len);
                self.remaining -= len;
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                return out;
            }
        }
        let mut out = BytesMut::with_capacity(len.min(self.remaining));
        out.put(self.take(len));
        out.freeze()
    }
}

/// Splits an HTTP/2 body into gRPC messages.
#[derive(Debug)]
pub struct MessageDecoder {
    buffered: SegmentedBuf,
    max_message_size: usize,
}

impl MessageDecoder {
    /// A decoder refusing messages over `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        MessageDecoder {
            buffered: SegmentedBuf::default(),
            max_message_size,
        }
    }

    /// Adds bytes received from the peer.
    pub fn push(&mut self, chunk: Bytes) {
        self.buffered.push(chunk);
    }

    /// The next complete message, `None` until all its bytes have arrived.
    pub fn next_message(&mut self) -> Result<Option<SegmentedBuf>> {
        if self.buffered.remaining() < PREFIX_LEN {
            return Ok(None);
        }
        let mut prefix = [0u8; PREFIX_LEN];
        let mut peek = self.buffered.clone();
        peek.copy_to_slice(&mut prefix);
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        match prefix[0] {
            0 => {}
            1 => {
                return Err(FlightError::unimplemented(
                    "compressed gRPC messages are not supported (grpc-encoding); \
                     send uncompressed messages",
                ))
            }
            flag => {
                return Err(FlightError::invalid_argument(format!(
                    "invalid gRPC message prefix: compression flag {flag}"
                )))
            }
        }
        if len > self.max_message_size {
            return Err(FlightError::invalid_argument(format!(
                "gRPC message of {len} bytes exceeds the limit of {} bytes",
                self.max_message_size
            )));
        }
        if self.buffered.remaining() < PREFIX_LEN + len {
            return Ok(None);
        }
        self.buffered.advance(PREFIX_LEN);
        Ok(Some(self.buffered.split_to(len)))
    }

    /// Call at end of stream: bytes left over mean the peer stopped mid-message.
    pub fn finish(&self) -> Result<()> {
        if self.buffered.remaining() > 0 {
            return Err(FlightError::invalid_argument(format!(
                "stream ended inside a gRPC message ({} bytes of it received)",
                self.buffered.remaining()
            )));
        }
        Ok(())
    }
}

// ---- sending ----------------------------------------------------------------------------------

fn put_prefix(buf: &mut BytesMut, len: usize) -> Result<()> {
    let len = u32::try_from(len).map_err(|_| {
        FlightError::invalid_argument(format!("message of {len} bytes is too large for gRPC"))
    })?;
    buf.put_u8(0);
    buf.put_u32(len);
    Ok(())
}

/// A seam message as one length-prefixed gRPC message, in pieces: a protobuf message as prefix
/// and bytes, FlightData as [`encode_flight_data`] writes it.
pub(crate) fn encode(message: &SeamMessage, max_size: usize) -> Result<Vec<Bytes>> {
    match message {
        SeamMessage::Proto(bytes) => {
            check_size(bytes.len(), max_size)?;
            let mut prefix = BytesMut::with_capacity(PREFIX_LEN);
            put_prefix(&mut prefix, bytes.len())?;
            Ok(vec![prefix.freeze(), bytes.clone()])
        }
        SeamMessage::Data(data) => encode_flight_data(data, max_size),
    }
}

fn check_size(len: usize, max_size: usize) -> Result<()> {
    if len > max_size {
        return Err(FlightError::invalid_argument(format!(
            "message of {len} bytes exceeds the sending limit of {max_size} bytes"
        )));
    }
    Ok(())
}

const TAG_DESCRIPTOR: u64 = 1 << 3 | 2;
const TAG_DATA_HEADER: u64 = 2 << 3 | 2;
const TAG_APP_METADATA: u64 = 3 << 3 | 2;
const TAG_DATA_BODY: u64 = 1000 << 3 | 2;

/// FlightData as one gRPC message, in pieces: the prefix and small fields in one buffer, then
/// the body's own segments (Arrow buffers and padding), so no column data is copied. Fields are
/// written in the order 1, 2, 3, 1000 — the body last, as Arrow C++ writes it.
pub fn encode_flight_data(data: &FlightData, max_size: usize) -> Result<Vec<Bytes>> {
    let descriptor = data.flight_descriptor.as_ref().map(Message::encode_to_vec);
    let field_len = |tag: u64, len: usize| {
        prost::encoding::encoded_len_varint(tag)
            + prost::encoding::encoded_len_varint(len as u64)
            + len
    };
    let mut small_len = 0;
    if let Some(d) = &descriptor {
        small_len += field_len(TAG_DESCRIPTOR, d.len());
    }
    if !data.data_header.is_empty() {
        small_len += field_len(TAG_DATA_HEADER, data.data_header.len());
    }
    if !data.app_metadata.is_empty() {
        small_len += field_len(TAG_APP_METADATA, data.app_metadata.len());
    }
    let body_len = data.data_body.len();
    let total = if body_len > 0 {
        small_len + field_len(TAG_DATA_BODY, body_len)
    } else {
        small_len
    };
    check_size(total, max_size)?;
    let mut head = BytesMut::with_capacity(PREFIX_LEN + small_len + 16);
    put_prefix(&mut head, total)?;
    let mut put_field = |tag: u64, bytes: &[u8]| {
        prost::encoding::encode_varint(tag, &mut head);
        prost::encoding::encode_varint(bytes.len() as u64, &mut head);
        head.put_slice(bytes);
    };
    if let Some(d) = &descriptor {
        put_field(TAG_DESCRIPTOR, d);
    }
    if !data.data_header.is_empty() {
        put_field(TAG_DATA_HEADER, &data.data_header);
    }
    if !data.app_metadata.is_empty() {
        put_field(TAG_APP_METADATA, &data.app_metadata);
    }
    if body_len > 0 {
        prost::encoding::encode_varint(TAG_DATA_BODY, &mut head);
        prost::encoding::encode_varint(body_len as u64, &mut head);
    }
    let mut pieces = Vec::with_capacity(1 + data.data_body.segments().len());
    pieces.push(head.freeze());
    pieces.extend(data.data_body.segments().iter().cloned());
    Ok(pieces)
}

/// Reads FlightData from one received gRPC message. Fields may come in any order; unknown
/// fields are skipped; every length is checked against the bytes that are there.
pub fn decode_flight_data(mut buf: SegmentedBuf) -> Result<FlightData> {
    let mut data = FlightData::default();
    while buf.has_remaining() {
        let key = read_varint(&mut buf)?;
        let wire_type = key & 0x7;
        let field = key >> 3;
        match (field, wire_type) {
            (1, 2) => {
                let bytes = read_length_delimited(&mut buf, "flight_descriptor")?;
                data.flight_descriptor = Some(FlightDescriptor::decode(bytes).map_err(|e| {
                    FlightError::invalid_argument(format!("malformed FlightDescriptor: {e}"))
                })?);
            }
            (2, 2) => data.data_header = read_length_delimited(&mut buf, "data_header")?,
            (3, 2) => data.app_metadata = read_length_delimited(&mut buf, "app_metadata")?,
            (1000, 2) => {
                let len = read_length(&mut buf, "data_body")?;
                data.data_body = DataBody::from(buf.take_aligned(len));
            }
            (0, _) => {
                return Err(FlightError::invalid_argument(
                    "malformed FlightData: field number 0",
                ))
            }
            (_, 0) => {
                read_varint(&mut buf)?;
            }
            (_, 1) => skip(&mut buf, 8)?,
            (_, 5) => skip(&mut buf, 4)?,
            (_, 2) => {
                let len = read_length(&mut buf, "unknown field")?;
                buf.advance(len);
            }
            (field, wire_type) => {
                return Err(FlightError::invalid_argument(format!(
                    "malformed FlightData: field {field} has unsupported wire type {wire_type}"
                )))
            }
        }
    }
    Ok(data)
}

fn read_varint(buf: &mut SegmentedBuf) -> Result<u64> {
    prost::encoding::decode_varint(buf)
        .map_err(|e| FlightError::invalid_argument(format!("malformed FlightData: {e}")))
}

fn read_length(buf: &mut SegmentedBuf, field: &str) -> Result<usize> {
    let len = read_varint(buf)?;
    usize::try_from(len)
        .ok()
        .filter(|&len| len <= buf.remaining())
        .ok_or_else(|| {
            FlightError::invalid_argument(format!(
                "malformed FlightData: {field} declares {len} bytes but only {} remain",
                buf.remaining()
            ))
        })
}

fn read_length_delimited(buf: &mut SegmentedBuf, field: &str) -> Result<Bytes> {
    let len = read_length(buf, field)?;
    Ok(buf.copy_to_bytes(len))
}

fn skip(buf: &mut SegmentedBuf, len: usize) -> Result<()> {
    if buf.remaining() < len {
        return Err(FlightError::invalid_argument(
            "malformed FlightData: truncated field",
        ));
    }
    buf.advance(len);
    Ok(())
}

// ---- grpc-timeout ------------------------------------------------------------------------------

/// Parses a `grpc-timeout` value (`<digits><unit>`, at most 8 digits, unit one of H M S m u n).
pub fn parse_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats a `grpc-timeout` value with the finest unit that fits in 8 digits.
pub fn format_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    for (unit, per) in [
        ("n", 1u128),
        ("u", 1_000),
        ("m", 1_000_000),
        ("S", 1_000_000_000),
    ] {
        let n = nanos.div_ceil(per);
        if n <= MAX {
            return format!("{n}{unit}");
        }
    }
    let minutes = (nanos / 60_000_000_000).min(MAX);
    format!("{minutes}M")
}

// ---- status ------------------------------------------------------------------------------------

/// The gRPC status code a Flight code travels as.
pub fn to_grpc_code(code: FlightCode) -> u16 {
    code.grpc_code()
}

/// The Flight code for a gRPC status code (codes Flight lacks map as Arrow C++ maps them).
pub fn from_grpc_code(code: u16) -> FlightCode {
    FlightCode::from_grpc_code(code)
}

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const ARROW_STATUS: &str = "x-arrow-status";
const ARROW_MESSAGE: &str = "x-arrow-status-message-bin";
/// Where Arrow C++ puts a Flight error's extra-info bytes: the gRPC status's error details.
const GRPC_DETAILS: &str = "grpc-status-details-bin";

/// Characters gRPC requires to be percent-encoded in `grpc-message`.
const GRPC_MESSAGE_SET: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b'%').add(0x7f);

/// The status trailers (or trailers-only headers) for a call's outcome.
pub fn status_headers(result: &std::result::Result<(), FlightError>) -> HeaderMap {
    let mut map = HeaderMap::new();
    match result {
        Ok(()) => {
            map.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        }
        Err(err) => {
            map.insert(GRPC_STATUS, HeaderValue::from(to_grpc_code(err.code())));
            let message =
                percent_encoding::utf8_percent_encode(err.message(), GRPC_MESSAGE_SET).to_string();
            // Non-ASCII is percent-encoded, so this only fails on bytes gRPC forbids anyway.
            if let Ok(value) = HeaderValue::from_str(&message) {
                map.insert(GRPC_MESSAGE, value);
            }
            map.insert(
                ARROW_STATUS,
                HeaderValue::from(u16::from(err.code().arrow_status_code())),
            );
            insert_binary(&mut map, ARROW_MESSAGE, err.message().as_bytes());
            if !err.extra_info().is_empty() {
                // The raw bytes go where Arrow C++ reads them (the gRPC status details); the
                // Arrow detail header carries a readable description, which C++ appends to the
                // message, so it stays short.
                insert_binary(&mut map, GRPC_DETAILS, err.extra_info());
            }
        }
    }
    map
}

fn insert_binary(map: &mut HeaderMap, key: &'static str, value: &[u8]) {
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(value);
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        map.insert(key, value);
    }
}

fn decode_binary(value: &HeaderValue) -> Option<Bytes> {
    // gRPC peers may or may not pad base64; accept both.
    let text = value.to_str().ok()?.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .ok()
        .map(Bytes::from)
}

/// The call's outcome from status headers/trailers: `None` when there is no `grpc-status`.
pub fn status_from_headers(map: &HeaderMap) -> Option<std::result::Result<(), FlightError>> {
    let status = map.get(GRPC_STATUS)?;
    let code = status
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .map(from_grpc_code)
        .unwrap_or(FlightCode::Unknown);
    if code == FlightCode::Ok {
        return Some(Ok(()));
    }
    let message = map
        .get(ARROW_MESSAGE)
        .and_then(decode_binary)
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .or_else(|| {
            map.get(GRPC_MESSAGE).map(|v| {
                percent_encoding::percent_decode(v.as_bytes())
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
        .unwrap_or_default();
    let mut err = FlightError::new(code, message);
    // Extra info is the gRPC status details, where Arrow C++ (and tonic-based peers) put it.
    // `x-arrow-status-detail-bin` is not extra info: Arrow C++ fills it with a readable
    // description of its status detail ("Unavailable", a Python traceback …).
    if let Some(detail) = map.get(GRPC_DETAILS).and_then(decode_binary) {
        err = err.with_extra_info(detail);
    }
    Some(Err(err))
}

// ---- metadata ----------------------------------------------------------------------------------

/// Headers owned by the HTTP/2 and gRPC layers, never handed to applications.
fn is_reserved(key: &str) -> bool {
    matches!(
        key,
        "te" | "content-type"
            | "content-length"
            | "grpc-timeout"
            | "grpc-encoding"
            | "grpc-accept-encoding"
            | "grpc-status"
            | "grpc-message"
            | "grpc-status-details-bin"
            | "host"
    )
}

/// Application metadata from an HTTP header map (binary `-bin` values base64-decoded).
pub fn headers_from_http(map: &HeaderMap) -> Headers {
    let mut headers = Headers::new();
    for (key, value) in map {
        let key = key.as_str();
        if is_reserved(key) || key.starts_with(':') {
            continue;
        }
        if Headers::is_binary_key(key) {
            if let Some(bytes) = decode_binary(value) {
                headers.append(key, bytes);
            }
        } else {
            headers.append(key, Bytes::copy_from_slice(value.as_bytes()));
        }
    }
    headers
}

/// Writes application metadata into an HTTP header map. Keys that are not valid header names,
/// and text values that are not valid header values, are an `INVALID_ARGUMENT` error.
pub fn headers_to_http(headers: &Headers, map: &mut HeaderMap) -> Result<()> {
    for (key, value) in headers.iter() {
        if is_reserved(key) {
            continue;
        }
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| FlightError::invalid_argument(format!("invalid header name {key:?}")))?;
        let value = if Headers::is_binary_key(key) {
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(value))
        } else {
            HeaderValue::from_bytes(value)
        }
        .map_err(|_| {
            FlightError::invalid_argument(format!(
                "header {key:?} has a value that is not valid in gRPC metadata \
                 (use a key ending in -bin for binary values)"
            ))
        })?;
        map.append(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segmented(parts: &[&[u8]]) -> SegmentedBuf {
        let mut buf = SegmentedBuf::default();
        for p in parts {
            buf.push(Bytes::copy_from_slice(p));
        }
        buf
    }

    fn flight_data() -> FlightData {
        FlightData {
            flight_descriptor: Some(FlightDescriptor::new_path(["a", "b"])),
            data_header: Bytes::from_static(b"header"),
            app_metadata: Bytes::from_static(b"meta"),
            data_body: DataBody::from_segments(vec![
                Bytes::from_static(b"0123456789"),
                Bytes::from_static(&[0; 6]),
            ]),
        }
    }

    #[test]
    fn flight_data_round_trips_and_matches_prost() {
        let data = flight_data();
        let pieces = encode_flight_data(&data, usize::MAX).unwrap();
        // Body segments are sent as they are, not copied.
        assert_eq!(pieces[1].as_ptr(), data.data_body.segments()[0].as_ptr());
        let wire: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        // Same bytes as prost's encoding of the generated message.
        let reference = polyflight_core::proto::FlightData {
            flight_descriptor: data.flight_descriptor.clone(),
            data_header: data.data_header.clone(),
            app_metadata: data.app_metadata.clone(),
            data_body: data.data_body.to_contiguous(),
        };
        assert_eq!(&wire[PREFIX_LEN..], reference.encode_to_vec().as_slice());
        // Split at every position: the decoder reassembles messages from any chunking.
        for split in 0..wire.len() {
            let mut decoder = MessageDecoder::new(1 << 20);
            decoder.push(Bytes::copy_from_slice(&wire[..split]));
            let early = decoder.next_message().unwrap();
            decoder.push(Bytes::copy_from_slice(&wire[split..]));
            let msg = early.or_else(|| decoder.next_message().unwrap()).unwrap();
            let decoded = decode_flight_data(msg).unwrap();
            assert_eq!(decoded.flight_descriptor, data.flight_descriptor);
            assert_eq!(decoded.data_header, data.data_header);
            assert_eq!(decoded.app_metadata, data.app_metadata);
            assert_eq!(
                decoded.data_body.to_contiguous(),
                data.data_body.to_contiguous()
            );
            assert_eq!(decoded.data_body.to_contiguous().as_ptr() as usize % 64, 0);
            decoder.finish().unwrap();
        }
    }

    #[test]
    fn declared_sizes_are_checked_before_allocating() {
        let mut decoder = MessageDecoder::new(1024);
        decoder.push(Bytes::from_static(&[0, 0x7f, 0xff, 0xff, 0xff]));
        let err = decoder.next_message().unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
        assert!(err.message().contains("exceeds the limit"), "{err}");

        let mut decoder = MessageDecoder::new(usize::MAX);
        decoder.push(Bytes::from_static(&[0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3]));
        assert!(decoder.next_message().unwrap().is_none());
        assert!(decoder.finish().is_err());

        // data_body declaring far more than the message holds.
        let mut body = vec![0xc2, 0x3e];
        prost::encoding::encode_varint(1 << 40, &mut body);
        let err = decode_flight_data(segmented(&[&body])).unwrap_err();
        assert!(err.message().contains("data_body declares"), "{err}");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let valid: Vec<u8> = encode_flight_data(&flight_data(), usize::MAX)
            .unwrap()
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect();
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = valid[PREFIX_LEN..].to_vec();
            let pos = (seed as usize) % bytes.len();
            bytes[pos] = (seed >> 32) as u8;
            bytes.truncate(((seed >> 40) as usize) % (bytes.len() + 1));
            let _ = decode_flight_data(segmented(&[&bytes]));
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("123456789S"), None);
        assert_eq!(parse_timeout("5x"), None);
        for d in [
            Duration::from_millis(1500),
            Duration::from_secs(86400 * 400),
        ] {
            let parsed = parse_timeout(&format_timeout(d)).unwrap();
            assert!(parsed >= d && parsed - d < Duration::from_secs(60), "{d:?}");
        }
    }

    #[test]
    fn status_round_trips_with_extra_info() {
        for code in FlightCode::ALL.into_iter().skip(1) {
            let err = FlightError::new(code, "bad thing: ünïcode %")
                .with_extra_info(&b"\x00\xffdetail"[..]);
            let map = status_headers(&Err(err.clone()));
            let back = status_from_headers(&map).unwrap().unwrap_err();
            assert_eq!(back, err);
        }
        assert_eq!(status_from_headers(&status_headers(&Ok(()))), Some(Ok(())));
        assert_eq!(status_from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn metadata_round_trips() {
        let headers = Headers::new()
            .with("x-text", "hello")
            .with("auth-token-bin", &b"\x00\x01\xff"[..])
            .with("content-type", "ignored");
        let mut map = HeaderMap::new();
        headers_to_http(&headers, &mut map).unwrap();
        let back = headers_from_http(&map);
        assert_eq!(back.get_str("x-text"), Some("hello"));
        assert_eq!(
            back.get("auth-token-bin").unwrap().as_ref(),
            b"\x00\x01\xff"
        );
        assert!(back.get("content-type").is_none());
        let bad = Headers::new().with("x-text", &b"\x00"[..]);
        assert!(headers_to_http(&bad, &mut HeaderMap::new()).is_err());
    }
}
