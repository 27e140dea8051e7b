//! The Flight-over-UCX framing, as pure functions over bytes (no I/O, no UCX).
//!
//! This is the wire of Arrow C++ 8–19's `ucx:` transport (see `spec/ucx-wire.md`): every frame is
//! one active message whose AM header is the 12-byte [`FrameHeader`] and whose AM data is the frame
//! body. Bodies are Headers lists, opaque Buffers, [`PayloadHeader`]s (the small parts of one
//! FlightData), PayloadBodies (the IPC body) or Disconnect. Frames carry a per-sender counter so the
//! receiver can put them back in order ([`Reorder`]), because rendezvous receives complete out of
//! order.
//!
//! Decoders here never trust a length they have not checked against the bytes actually present, and
//! never allocate from a count the peer merely claims. Malformed input is an INVALID_ARGUMENT error.

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;

use polyflight_core::{FlightCode, FlightError, Result};

/// The active message id of every Flight frame.
pub const AM_ID: u16 = 0x1024;

/// Length of the frame header (the AM header).
pub const FRAME_HEADER_LEN: usize = 12;

/// The only framing version there is.
pub const WIRE_VERSION: u8 = 1;

/// Largest body size a frame may declare (2^31 − 1).
pub const MAX_FRAME_BODY: u32 = i32::MAX as u32;

/// Length value meaning "field absent" in a PayloadHeader.
const ABSENT: u32 = u32::MAX;

/// The AM data sent for an empty body: UCX mishandles zero-length AM data, so an empty body goes
/// out as one zero byte with size 0 in the frame header.
pub const EMPTY_BODY_FILLER: &[u8] = &[0];

/// Header key carrying the method name in a call's first frame.
pub const METHOD_KEY: &str = ":method:";
/// Header key of the (extension) cancellation frame.
pub const CANCEL_KEY: &str = ":cancel:";
/// Status frame key: decimal Flight status number.
pub const STATUS_KEY: &str = "flight-status";
/// Status frame key: Flight status message.
pub const MESSAGE_KEY: &str = "flight-message";
/// Status frame key: decimal Arrow C++ `StatusCode`.
pub const STATUS_CODE_KEY: &str = "flight-status-code";
/// Status frame key: Arrow C++ status message.
pub const STATUS_MESSAGE_KEY: &str = "flight-status-message";
/// Status frame key: textual status detail.
pub const STATUS_DETAIL_KEY: &str = "flight-status-detail";
/// Status frame key: the error's extra info bytes.
pub const STATUS_DETAIL_BIN_KEY: &str = "flight-status-detail-bin";

/// The kinds of frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// A list of key/value headers: call start, status, end of writes, cancellation.
    Headers = 0,
    /// An opaque blob, usually one protobuf message.
    Buffer = 1,
    /// The small parts of one FlightData (descriptor, app_metadata, IPC message header).
    PayloadHeader = 2,
    /// The IPC body of the FlightData announced by the preceding PayloadHeader.
    PayloadBody = 3,
    /// Client → server: the connection ends.
    Disconnect = 4,
}

impl TryFrom<u8> for FrameType {
    type Error = FlightError;

    fn try_from(value: u8) -> Result<Self> {
        Ok(match value {
            0 => FrameType::Headers,
            1 => FrameType::Buffer,
            2 => FrameType::PayloadHeader,
            3 => FrameType::PayloadBody,
            4 => FrameType::Disconnect,
            other => {
                return Err(FlightError::invalid_argument(format!(
                    "unknown UCX frame type {other}"
                )))
            }
        })
    }
}

/// The 12-byte header of every frame: version, type, reserved, counter, body size (big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the body is.
    pub frame_type: FrameType,
    /// The sender's frame number on this connection.
    pub counter: u32,
    /// The body size; the AM data may be longer (the empty-body filler byte), never shorter.
    pub size: u32,
}

impl FrameHeader {
    /// A header for a body of `size` bytes; fails when the size does not fit the wire (2^31 − 1).
    pub fn new(frame_type: FrameType, counter: u32, size: usize) -> Result<Self> {
        let size = u32::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_FRAME_BODY)
            .ok_or_else(|| {
                FlightError::invalid_argument(format!(
                    "frame body of {size} bytes exceeds the UCX wire limit of {MAX_FRAME_BODY}"
                ))
            })?;
        Ok(FrameHeader {
            frame_type,
            counter,
            size,
        })
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[0] = WIRE_VERSION;
        out[1] = self.frame_type as u8;
        // bytes 2..4 are reserved and sent as zero
        out[4..8].copy_from_slice(&self.counter.to_be_bytes());
        out[8..12].copy_from_slice(&self.size.to_be_bytes());
        out
    }

    /// Parses and validates a received AM header.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != FRAME_HEADER_LEN {
            return Err(FlightError::invalid_argument(format!(
                "UCX frame header must be {FRAME_HEADER_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        if bytes[0] != WIRE_VERSION {
            return Err(FlightError::invalid_argument(format!(
                "unsupported UCX frame version {} (expected {WIRE_VERSION})",
                bytes[0]
            )));
        }
        let frame_type = FrameType::try_from(bytes[1])?;
        let counter = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let size = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if size > MAX_FRAME_BODY {
            return Err(FlightError::invalid_argument(format!(
                "UCX frame declares a body of {size} bytes, above the limit of {MAX_FRAME_BODY}"
            )));
        }
        Ok(FrameHeader {
            frame_type,
            counter,
            size,
        })
    }
}

/// A received frame: its header fields and exactly `size` bytes of body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the body is.
    pub frame_type: FrameType,
    /// The sender's frame number.
    pub counter: u32,
    /// The body, exactly as long as the header said.
    pub body: Bytes,
}

impl Frame {
    /// Applies the receive rules to one active message whose header was decoded: the AM data
    /// must be at least as long as the header's size, and the body is the first `size` bytes
    /// (the header's size is trusted, never the AM data length, which is 1 for an empty body).
    pub fn from_parts(header: FrameHeader, data: Bytes) -> Result<Frame> {
        let size = header.size as usize;
        if data.len() < size {
            return Err(FlightError::invalid_argument(format!(
                "UCX frame {} declares {size} body bytes but carries {}",
                header.counter,
                data.len()
            )));
        }
        let body = if data.len() == size {
            data
        } else {
            data.slice(..size)
        };
        Ok(Frame {
            frame_type: header.frame_type,
            counter: header.counter,
            body,
        })
    }
}

/// A frame to send: its type and its body as segments (sent scatter-gather, in order, without
/// being copied together). The sender numbers it and applies the empty-body rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    /// What the body is.
    pub frame_type: FrameType,
    /// The body: the concatenation of these segments.
    pub body: Vec<Bytes>,
}

impl OutFrame {
    /// A frame of `frame_type` whose body is `body`'s segments.
    pub fn new(frame_type: FrameType, body: Vec<Bytes>) -> Self {
        OutFrame { frame_type, body }
    }

    /// A Headers frame.
    pub fn headers<K: AsRef<[u8]>, V: AsRef<[u8]>>(headers: &[(K, V)]) -> Result<Self> {
        Ok(OutFrame::new(
            FrameType::Headers,
            vec![encode_headers(headers)?],
        ))
    }
}

/// The AM data pieces to send for a body made of `segments`: empty segments are dropped (UCX does
/// not need them) and an empty body becomes the one-byte filler. Returns the body size for the
/// frame header and the pieces.
pub fn wire_segments(segments: Vec<Bytes>) -> (usize, Vec<Bytes>) {
    let size: usize = segments.iter().map(Bytes::len).sum();
    if size == 0 {
        return (0, vec![Bytes::from_static(EMPTY_BODY_FILLER)]);
    }
    let pieces = segments.into_iter().filter(|s| !s.is_empty()).collect();
    (size, pieces)
}

/// A cursor over a received body that checks every length against the bytes that remain.
struct Reader<'a> {
    body: &'a Bytes,
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(body: &'a Bytes, what: &'static str) -> Self {
        Reader { body, pos: 0, what }
    }

    fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    fn truncated(&self, needed: usize) -> FlightError {
        FlightError::invalid_argument(format!(
            "truncated {} frame: needs {needed} more bytes at offset {}, {} remain",
            self.what,
            self.pos,
            self.remaining()
        ))
    }

    fn u32(&mut self) -> Result<u32> {
        let end = self.pos.checked_add(4).filter(|e| *e <= self.body.len());
        let end = end.ok_or_else(|| self.truncated(4))?;
        let b = &self.body[self.pos..end];
        self.pos = end;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next `len` bytes, as a zero-copy slice of the body.
    fn bytes(&mut self, len: u32) -> Result<Bytes> {
        let len = len as usize;
        if len > self.remaining() {
            return Err(self.truncated(len));
        }
        let out = self.body.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(FlightError::invalid_argument(format!(
                "{} frame has {} unexpected trailing bytes",
                self.what,
                self.remaining()
            )));
        }
        Ok(())
    }
}

fn length_u32(len: usize, what: &str) -> Result<u32> {
    u32::try_from(len)
        .ok()
        .filter(|l| *l != ABSENT)
        .ok_or_else(|| {
            FlightError::invalid_argument(format!(
                "{what} of {len} bytes is too long for a UCX frame"
            ))
        })
}

/// One header: key and value bytes (keys are ASCII by convention, values may be binary).
pub type HeaderPair = (Bytes, Bytes);

/// Encodes a Headers frame body: `u32 count`, then per header `u32 key_len`, `u32 value_len`, key, value.
pub fn encode_headers<K, V>(headers: &[(K, V)]) -> Result<Bytes>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let total: usize = 4 + headers
        .iter()
        .map(|(k, v)| 8 + k.as_ref().len() + v.as_ref().len())
        .sum::<usize>();
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(length_u32(headers.len(), "header count")?);
    for (key, value) in headers {
        let (key, value) = (key.as_ref(), value.as_ref());
        out.put_u32(length_u32(key.len(), "header key")?);
        out.put_u32(length_u32(value.len(), "header value")?);
        out.put_slice(key);
        out.put_slice(value);
    }
    Ok(out.freeze())
}

/// Decodes a Headers frame body into zero-copy key/value slices.
pub fn decode_headers(body: &Bytes) -> Result<Vec<HeaderPair>> {
    let mut reader = Reader::new(body, "Headers");
    let count = reader.u32()? as usize;
    // Each header takes at least 8 bytes, so the bytes present bound how many there can be; a
    // claimed count beyond that is caught below without having reserved memory for it.
    let mut headers = Vec::with_capacity(count.min(reader.remaining() / 8));
    for _ in 0..count {
        let key_len = reader.u32()?;
        let value_len = reader.u32()?;
        let key = reader.bytes(key_len)?;
        let value = reader.bytes(value_len)?;
        headers.push((key, value));
    }
    reader.finish()?;
    Ok(headers)
}

/// The first value of `key` in a decoded header list.
pub fn header_value<'a>(headers: &'a [HeaderPair], key: &str) -> Option<&'a Bytes> {
    headers
        .iter()
        .find(|(k, _)| k.as_ref() == key.as_bytes())
        .map(|(_, v)| v)
}

/// The small parts of one FlightData, sent as one PayloadHeader frame.
///
/// Each field is `u32 length` + bytes; length `0xFFFFFFFF` means absent, 0 present but empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadHeader {
    /// A protobuf FlightDescriptor.
    pub descriptor: Option<Bytes>,
    /// Application metadata.
    pub app_metadata: Option<Bytes>,
    /// The IPC flatbuffer `Message` (FlightData.data_header).
    pub ipc_message: Option<Bytes>,
}

impl PayloadHeader {
    /// The frame body.
    pub fn encode(&self) -> Result<Bytes> {
        let fields = [&self.descriptor, &self.app_metadata, &self.ipc_message];
        let total: usize = fields
            .iter()
            .map(|f| 4 + f.as_ref().map_or(0, Bytes::len))
            .sum();
        let mut out = BytesMut::with_capacity(total);
        for (field, what) in fields
            .into_iter()
            .zip(["descriptor", "app_metadata", "IPC message"])
        {
            match field {
                None => out.put_u32(ABSENT),
                Some(bytes) => {
                    out.put_u32(length_u32(bytes.len(), what)?);
                    out.put_slice(bytes);
                }
            }
        }
        Ok(out.freeze())
    }

    /// Parses a frame body; the fields are zero-copy slices of it.
    pub fn decode(body: &Bytes) -> Result<Self> {
        let mut reader = Reader::new(body, "PayloadHeader");
        let mut field = || -> Result<Option<Bytes>> {
            match reader.u32()? {
                ABSENT => Ok(None),
                len => reader.bytes(len).map(Some),
            }
        };
        let descriptor = field()?;
        let app_metadata = field()?;
        let ipc_message = field()?;
        reader.finish()?;
        Ok(PayloadHeader {
            descriptor,
            app_metadata,
            ipc_message,
        })
    }
}

/// The outcome of a call as carried by a status Headers frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStatus {
    /// The Flight code; `Ok` for success.
    pub code: FlightCode,
    /// The message (`flight-message`).
    pub message: String,
    /// Textual detail (`flight-status-detail`), when sent.
    pub detail: Option<String>,
    /// The error's extra info bytes (`flight-status-detail-bin`); empty when absent.
    pub extra_info: Bytes,
}

impl CallStatus {
    /// Success.
    pub fn ok() -> Self {
        CallStatus {
            code: FlightCode::Ok,
            message: String::new(),
            detail: None,
            extra_info: Bytes::new(),
        }
    }

    /// The status that reports `error`.
    pub fn from_error(error: &FlightError) -> Self {
        CallStatus {
            code: error.code(),
            message: error.message().to_string(),
            detail: None,
            extra_info: error.extra_info().clone(),
        }
    }

    /// `Ok(())` for success, otherwise the error it reports.
    pub fn into_result(self) -> Result<()> {
        if self.code == FlightCode::Ok {
            return Ok(());
        }
        Err(FlightError::new(self.code, self.message).with_extra_info(self.extra_info))
    }

    /// The status frame's headers, in the order Arrow C++ writes them: the four mandatory keys,
    /// then the optional detail keys, then `extra` (extension: e.g. response headers).
    pub fn to_headers(&self, extra: &[HeaderPair]) -> Vec<HeaderPair> {
        let text = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let mut headers = vec![
            (
                Bytes::from_static(STATUS_KEY.as_bytes()),
                text(&self.code.as_u8().to_string()),
            ),
            (
                Bytes::from_static(MESSAGE_KEY.as_bytes()),
                text(&self.message),
            ),
            (
                Bytes::from_static(STATUS_CODE_KEY.as_bytes()),
                text(&self.code.arrow_status_code().to_string()),
            ),
            (
                Bytes::from_static(STATUS_MESSAGE_KEY.as_bytes()),
                text(&self.message),
            ),
        ];
        if let Some(detail) = &self.detail {
            headers.push((
                Bytes::from_static(STATUS_DETAIL_KEY.as_bytes()),
                text(detail),
            ));
        }
        if !self.extra_info.is_empty() {
            headers.push((
                Bytes::from_static(STATUS_DETAIL_BIN_KEY.as_bytes()),
                self.extra_info.clone(),
            ));
        }
        headers.extend(extra.iter().cloned());
        headers
    }

    /// The status frame body.
    pub fn encode(&self, extra: &[HeaderPair]) -> Result<Bytes> {
        encode_headers(&self.to_headers(extra))
    }

    /// Reads a status from decoded headers; `None` when `flight-status` is missing (not a status
    /// frame). A present but unparsable status number is an error.
    pub fn from_headers(headers: &[HeaderPair]) -> Option<Result<CallStatus>> {
        let status = header_value(headers, STATUS_KEY)?;
        Some(Self::parse(headers, status))
    }

    fn parse(headers: &[HeaderPair], status: &Bytes) -> Result<CallStatus> {
        let number = std::str::from_utf8(status)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                FlightError::invalid_argument(format!(
                    "status frame has a malformed {STATUS_KEY} value {:?}",
                    String::from_utf8_lossy(status)
                ))
            })?;
        let text =
            |key: &str| header_value(headers, key).map(|v| String::from_utf8_lossy(v).into_owned());
        // Arrow C++ writes the same text to both message keys; prefer the Flight one.
        let message = text(MESSAGE_KEY)
            .filter(|m| !m.is_empty())
            .or_else(|| text(STATUS_MESSAGE_KEY))
            .unwrap_or_default();
        Ok(CallStatus {
            code: FlightCode::from_number(number),
            message,
            detail: text(STATUS_DETAIL_KEY),
            extra_info: header_value(headers, STATUS_DETAIL_BIN_KEY)
                .cloned()
                .unwrap_or_default(),
        })
    }
}

/// Puts frames back into counter order.
///
/// Frames may complete out of order (a rendezvous body finishes after a later eager frame), so
/// each completed frame is inserted under its counter and handed out only when every earlier
/// counter has been. The buffer is bounded: a counter more than `window` ahead of the next
/// expected one, or one already seen, is a protocol error, so a peer cannot make it grow without
/// limit. Counters wrap at 2^32.
#[derive(Debug)]
pub struct Reorder<T> {
    next: u32,
    window: u32,
    slots: HashMap<u32, T>,
}

impl<T> Reorder<T> {
    /// A buffer expecting counter 0 first and accepting counters up to `window − 1` ahead.
    pub fn new(window: u32) -> Self {
        Reorder {
            next: 0,
            window: window.max(1),
            slots: HashMap::new(),
        }
    }

    /// Whether `counter` is acceptable now: within the window and not already present.
    pub fn check(&self, counter: u32) -> Result<()> {
        let distance = counter.wrapping_sub(self.next);
        if distance >= self.window {
            return Err(FlightError::invalid_argument(format!(
                "UCX frame counter {counter} is outside the receive window [{}, +{})",
                self.next, self.window
            )));
        }
        if self.slots.contains_key(&counter) {
            return Err(FlightError::invalid_argument(format!(
                "duplicate UCX frame counter {counter}"
            )));
        }
        Ok(())
    }

    /// Stores a completed frame.
    pub fn insert(&mut self, counter: u32, item: T) -> Result<()> {
        self.check(counter)?;
        self.slots.insert(counter, item);
        Ok(())
    }

    /// The counter of the next frame to hand out.
    pub fn next(&self) -> u32 {
        self.next
    }

    /// The next frame in counter order, if it has arrived.
    pub fn pop(&mut self) -> Option<T> {
        let item = self.slots.remove(&self.next)?;
        self.next = self.next.wrapping_add(1);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&'static str, &'static [u8])]) -> Vec<HeaderPair> {
        list.iter()
            .map(|(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from_static(v)))
            .collect()
    }

    const VECTOR: &[u8] = b"\x00\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00\x03x-foobar\x00\x00\x00\x05\x00\x00\x00\x01x-bin\x01";

    #[test]
    fn headers_test_vector() {
        assert_eq!(VECTOR.len(), 34);
        let encoded = encode_headers(&pairs(&[("x-foo", b"bar"), ("x-bin", b"\x01")])).unwrap();
        assert_eq!(encoded.as_ref(), VECTOR);
        let decoded = decode_headers(&Bytes::from_static(VECTOR)).unwrap();
        assert_eq!(decoded, pairs(&[("x-foo", b"bar"), ("x-bin", b"\x01")]));
    }

    #[test]
    fn headers_round_trip_and_empty() {
        let empty = encode_headers::<&[u8], &[u8]>(&[]).unwrap();
        assert_eq!(empty.as_ref(), &[0, 0, 0, 0]);
        assert!(decode_headers(&empty).unwrap().is_empty());
        let list = pairs(&[(":method:", b"DoGet"), ("", b""), ("k", &[0xff, 0, 1])]);
        let decoded = decode_headers(&encode_headers(&list).unwrap()).unwrap();
        assert_eq!(decoded, list);
    }

    #[test]
    fn headers_truncated_inputs_are_rejected() {
        for len in 0..VECTOR.len() {
            let err = decode_headers(&Bytes::copy_from_slice(&VECTOR[..len])).unwrap_err();
            assert_eq!(
                err.code(),
                FlightCode::InvalidArgument,
                "prefix of {len} bytes"
            );
        }
        let mut long = VECTOR.to_vec();
        long.push(0);
        assert!(decode_headers(&Bytes::from(long)).is_err());
    }

    #[test]
    fn headers_huge_claims_do_not_allocate() {
        // count = 2^32 − 1 with nothing behind it
        let body = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            decode_headers(&body).unwrap_err().code(),
            FlightCode::InvalidArgument
        );
        // one header claiming a 4 GiB key
        let body = Bytes::from_static(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, b'a']);
        assert!(decode_headers(&body).is_err());
        // huge count followed by one valid header: fails after that header, never reserved 2^32
        let mut body = vec![0x7f, 0xff, 0xff, 0xff];
        body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'k', b'v']);
        assert!(decode_headers(&Bytes::from(body)).is_err());
    }

    #[test]
    fn frame_header_round_trip() {
        let header = FrameHeader::new(FrameType::PayloadBody, 0xdead_beef, 1234).unwrap();
        let wire = header.encode();
        assert_eq!(wire, [1, 3, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0x04, 0xd2]);
        assert_eq!(FrameHeader::decode(&wire).unwrap(), header);
    }

    #[test]
    fn frame_header_rejections() {
        let good = FrameHeader::new(FrameType::Headers, 1, 2).unwrap().encode();
        let mut bad_version = good;
        bad_version[0] = 2;
        assert!(FrameHeader::decode(&bad_version).is_err());
        let mut bad_type = good;
        bad_type[1] = 5;
        assert!(FrameHeader::decode(&bad_type).is_err());
        let mut too_big = good;
        too_big[8..12].copy_from_slice(&0x8000_0000u32.to_be_bytes());
        assert!(FrameHeader::decode(&too_big).is_err());
        let mut max = good;
        max[8..12].copy_from_slice(&MAX_FRAME_BODY.to_be_bytes());
        assert_eq!(FrameHeader::decode(&max).unwrap().size, MAX_FRAME_BODY);
        assert!(FrameHeader::decode(&good[..11]).is_err());
        assert!(FrameHeader::new(FrameType::Buffer, 0, 1 << 31).is_err());
        for t in 0..=4u8 {
            let mut h = good;
            h[1] = t;
            assert_eq!(FrameHeader::decode(&h).unwrap().frame_type as u8, t);
        }
    }

    /// The receive rules applied to one active message (as the frame connection does).
    fn from_am(header: &[u8], data: Bytes) -> Result<Frame> {
        Frame::from_parts(FrameHeader::decode(header)?, data)
    }

    #[test]
    fn frame_from_am_trusts_header_size() {
        let header = FrameHeader::new(FrameType::Headers, 7, 0).unwrap().encode();
        let frame = from_am(&header, Bytes::from_static(EMPTY_BODY_FILLER)).unwrap();
        assert!(frame.body.is_empty());
        assert_eq!(frame.counter, 7);

        let header = FrameHeader::new(FrameType::Buffer, 0, 5).unwrap().encode();
        let err = from_am(&header, Bytes::from_static(b"abcd")).unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
        let frame = from_am(&header, Bytes::from_static(b"abcdef")).unwrap();
        assert_eq!(frame.body.as_ref(), b"abcde");
    }

    #[test]
    fn wire_segments_empty_body_rule() {
        let (size, pieces) = wire_segments(vec![]);
        assert_eq!(size, 0);
        assert_eq!(pieces, vec![Bytes::from_static(&[0])]);
        let (size, pieces) =
            wire_segments(vec![Bytes::new(), Bytes::from_static(b"ab"), Bytes::new()]);
        assert_eq!(size, 2);
        assert_eq!(pieces, vec![Bytes::from_static(b"ab")]);
    }

    #[test]
    fn payload_header_round_trip() {
        let cases = [
            PayloadHeader::default(),
            PayloadHeader {
                descriptor: Some(Bytes::from_static(b"desc")),
                app_metadata: Some(Bytes::new()),
                ipc_message: None,
            },
            PayloadHeader {
                descriptor: None,
                app_metadata: None,
                ipc_message: Some(Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8])),
            },
        ];
        for case in cases {
            let wire = case.encode().unwrap();
            assert_eq!(PayloadHeader::decode(&wire).unwrap(), case);
        }
        let absent = PayloadHeader::default().encode().unwrap();
        assert_eq!(absent.as_ref(), &[0xff; 12]);
        let empty = PayloadHeader {
            app_metadata: Some(Bytes::new()),
            ..Default::default()
        };
        assert_eq!(
            empty.encode().unwrap().as_ref(),
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn payload_header_truncated_and_trailing() {
        let full = PayloadHeader {
            descriptor: Some(Bytes::from_static(b"d")),
            app_metadata: Some(Bytes::from_static(b"meta")),
            ipc_message: Some(Bytes::from_static(b"ipc!")),
        }
        .encode()
        .unwrap();
        for len in 0..full.len() {
            assert!(PayloadHeader::decode(&full.slice(..len)).is_err(), "{len}");
        }
        let mut trailing = full.to_vec();
        trailing.push(9);
        assert!(PayloadHeader::decode(&Bytes::from(trailing)).is_err());
        // a field claiming 0xFFFFFFFE bytes
        let huge = Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe, 1]);
        assert!(PayloadHeader::decode(&huge).is_err());
    }

    #[test]
    fn status_frame_round_trip() {
        let status = CallStatus {
            code: FlightCode::NotFound,
            message: "no such flight".into(),
            detail: Some("detail".into()),
            extra_info: Bytes::from_static(b"\x00extra"),
        };
        let body = status.encode(&[]).unwrap();
        let headers = decode_headers(&body).unwrap();
        let keys: Vec<&[u8]> = headers.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(
            keys,
            vec![
                STATUS_KEY.as_bytes(),
                MESSAGE_KEY.as_bytes(),
                STATUS_CODE_KEY.as_bytes(),
                STATUS_MESSAGE_KEY.as_bytes(),
                STATUS_DETAIL_KEY.as_bytes(),
                STATUS_DETAIL_BIN_KEY.as_bytes(),
            ]
        );
        assert_eq!(headers[0].1.as_ref(), b"5");
        assert_eq!(headers[2].1.as_ref(), b"2");
        let decoded = CallStatus::from_headers(&headers).unwrap().unwrap();
        assert_eq!(decoded, status);
        let err = decoded.into_result().unwrap_err();
        assert_eq!(err.code(), FlightCode::NotFound);
        assert_eq!(err.extra_info().as_ref(), b"\x00extra");

        let ok = CallStatus::ok().encode(&[]).unwrap();
        let headers = decode_headers(&ok).unwrap();
        assert_eq!(headers.len(), 4);
        assert!(CallStatus::from_headers(&headers)
            .unwrap()
            .unwrap()
            .into_result()
            .is_ok());
    }

    #[test]
    fn cancelled_status_frame_carries_arrow_io_error() {
        let status = CallStatus::from_error(&FlightError::cancelled("stop"));
        let headers = decode_headers(&status.encode(&[]).unwrap()).unwrap();
        assert_eq!(headers[0].1.as_ref(), b"7", "flight-status");
        assert_eq!(headers[2].1.as_ref(), b"5", "flight-status-code");
    }

    #[test]
    fn status_frame_malformed() {
        assert!(CallStatus::from_headers(&pairs(&[(":method:", b"DoGet")])).is_none());
        let bad = pairs(&[(STATUS_KEY, b"x1")]);
        assert!(CallStatus::from_headers(&bad).unwrap().is_err());
        let unknown = pairs(&[(STATUS_KEY, b"99"), (MESSAGE_KEY, b"m")]);
        let status = CallStatus::from_headers(&unknown).unwrap().unwrap();
        assert_eq!(status.code, FlightCode::Unknown);
    }

    #[test]
    fn reorder_delivers_in_counter_order() {
        let mut r = Reorder::new(8);
        r.insert(2, "c").unwrap();
        r.insert(1, "b").unwrap();
        assert_eq!(r.pop(), None);
        r.insert(0, "a").unwrap();
        assert_eq!(r.pop(), Some("a"));
        assert_eq!(r.pop(), Some("b"));
        assert_eq!(r.pop(), Some("c"));
        assert_eq!(r.pop(), None);
        assert_eq!(r.next, 3);
        assert!(r.insert(3 + 8, "far").is_err());
        assert!(r.insert(1, "old").is_err());
        r.insert(4, "e").unwrap();
        assert!(r.insert(4, "dup").is_err());
        assert_eq!(r.slots.len(), 1);
    }

    #[test]
    fn reorder_wraps() {
        let mut r = Reorder::new(4);
        r.next = u32::MAX - 1;
        r.insert(0, 3).unwrap();
        r.insert(u32::MAX, 2).unwrap();
        r.insert(u32::MAX - 1, 1).unwrap();
        assert_eq!(r.pop(), Some(1));
        assert_eq!(r.pop(), Some(2));
        assert_eq!(r.pop(), Some(3));
        assert_eq!(r.next, 1);
        assert!(r.slots.is_empty());
    }
}
