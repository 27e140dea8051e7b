//! Flight messages ⇄ UCX frames, as pure functions: what the client and the server both need.
//!
//! - `FlightData` goes out as a PayloadHeader frame (descriptor, app_metadata, IPC header) and,
//!   when the IPC message type has a body (RecordBatch, DictionaryBatch), a PayloadBody frame sent
//!   scatter-gather straight from the body's segments ([`flight_data_frames`]). The receiver
//!   decides whether a body follows by parsing the IPC header, never by peeking at the next frame
//!   ([`PayloadAssembler`]).
//! - Protobuf messages travel as Buffer frames, untouched.
//! - Call headers travel in the first Headers frame after `:method:`; a few keys starting with `:`
//!   are ours (extensions, see `docs/ucx.md`) and never reach the application.
//! - A call's outcome is a status Headers frame ([`status_frame`], [`status_from_headers`]).

use bytes::Bytes;
use polyflight_core::proto::FlightDescriptor;
use polyflight_core::{DataBody, FlightData, FlightError, Headers};
use prost::Message;
use std::time::Duration;

use crate::frame::{self, Frame, FrameType, HeaderPair, OutFrame, PayloadHeader};

/// Extension: a server → client Headers frame whose first key is this carries the response
/// headers, sent before any response message. Sent only to clients that announced
/// [`CAPABILITIES_KEY`], so Arrow C++ clients (which take any server Headers frame for the
/// status) never see it.
pub const RESPONSE_HEADERS_KEY: &str = ":response-headers:";
/// Extension: call header by which a client announces it understands our extensions (value `1`).
pub const CAPABILITIES_KEY: &str = ":polyflight:";
/// Extension: call header carrying the client's timeout in whole milliseconds (decimal).
pub const TIMEOUT_KEY: &str = ":timeout-ms:";

/// The status frame body reporting `result`, with `trailers` after the status keys.
pub fn status_frame(
    result: &Result<(), FlightError>,
    trailers: &Headers,
) -> Result<Bytes, FlightError> {
    let status = match result {
        Ok(()) => frame::CallStatus::ok(),
        Err(error) => frame::CallStatus::from_error(error),
    };
    status.encode(&headers_to_pairs(trailers))
}

/// The call's outcome and trailers from a decoded status frame: every key that is neither a status
/// key nor one of ours is a trailer.
pub fn status_from_headers(headers: &[HeaderPair]) -> Option<(Result<(), FlightError>, Headers)> {
    let result = frame::CallStatus::from_headers(headers)?.and_then(frame::CallStatus::into_result);
    let status_keys = [
        frame::STATUS_KEY,
        frame::MESSAGE_KEY,
        frame::STATUS_CODE_KEY,
        frame::STATUS_MESSAGE_KEY,
        frame::STATUS_DETAIL_KEY,
        frame::STATUS_DETAIL_BIN_KEY,
    ];
    let trailers = headers
        .iter()
        .filter(|(k, _)| !status_keys.iter().any(|s| k.as_ref() == s.as_bytes()))
        .cloned()
        .collect::<Vec<_>>();
    Some((result, pairs_to_headers(&trailers)))
}

/// Application headers as wire pairs.
pub fn headers_to_pairs(headers: &Headers) -> Vec<HeaderPair> {
    headers
        .iter()
        .map(|(k, v)| (Bytes::copy_from_slice(k.as_bytes()), v.clone()))
        .collect()
}

/// Wire pairs as application headers, leaving out our `:`-prefixed keys (and keys that are not
/// text, which no Flight implementation sends).
pub fn pairs_to_headers(pairs: &[HeaderPair]) -> Headers {
    let mut headers = Headers::new();
    for (key, value) in pairs {
        if let Ok(key) = std::str::from_utf8(key) {
            if !key.starts_with(':') {
                headers.append(key, value.clone());
            }
        }
    }
    headers
}

/// The value of one of our header keys as text.
pub fn header_text(pairs: &[HeaderPair], key: &str) -> Option<String> {
    frame::header_value(pairs, key).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The timeout header value for a timeout.
pub fn timeout_value(timeout: Duration) -> String {
    // round up so a sub-millisecond timeout does not become "no time at all"
    timeout.as_micros().div_ceil(1000).to_string()
}

/// A timeout header value, if well-formed.
pub fn parse_timeout(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_millis)
}

/// Whether an IPC message header announces a body: its type is RecordBatch or DictionaryBatch.
/// An unparsable header announces none (both sides apply the same rule, so they agree).
pub fn ipc_has_body(ipc_message: &[u8]) -> bool {
    use arrow_ipc::MessageHeader;
    match arrow_ipc::root_as_message(ipc_message) {
        Ok(message) => matches!(
            message.header_type(),
            MessageHeader::RecordBatch | MessageHeader::DictionaryBatch
        ),
        Err(_) => false,
    }
}

/// The frames of one FlightData: a PayloadHeader frame, then a PayloadBody frame (the body's
/// segments, for a scatter-gather send) if the IPC message type has a body.
pub fn flight_data_frames(data: &FlightData) -> Result<Vec<OutFrame>, FlightError> {
    let header = PayloadHeader {
        descriptor: data
            .flight_descriptor
            .as_ref()
            .map(|d| Bytes::from(d.encode_to_vec())),
        app_metadata: (!data.app_metadata.is_empty()).then(|| data.app_metadata.clone()),
        ipc_message: (!data.data_header.is_empty()).then(|| data.data_header.clone()),
    }
    .encode()?;
    let mut frames = vec![OutFrame::new(FrameType::PayloadHeader, vec![header])];
    if ipc_has_body(&data.data_header) {
        frames.push(OutFrame::new(
            FrameType::PayloadBody,
            data.data_body.segments().to_vec(),
        ));
    }
    Ok(frames)
}

/// Rebuilds FlightData from PayloadHeader (+ PayloadBody) frames.
#[derive(Debug, Default)]
pub struct PayloadAssembler {
    waiting_for_body: Option<PayloadHeader>,
}

impl PayloadAssembler {
    /// True while a PayloadHeader waits for its body.
    pub fn expects_body(&self) -> bool {
        self.waiting_for_body.is_some()
    }

    /// Feeds a PayloadHeader or PayloadBody frame; returns the FlightData once complete.
    /// Anything out of sequence is INVALID_ARGUMENT.
    pub fn push(&mut self, frame: Frame) -> Result<Option<FlightData>, FlightError> {
        match (frame.frame_type, self.waiting_for_body.take()) {
            (FrameType::PayloadHeader, None) => {
                let header = PayloadHeader::decode(&frame.body)?;
                let has_body = header
                    .ipc_message
                    .as_ref()
                    .is_some_and(|ipc| ipc_has_body(ipc));
                if has_body {
                    self.waiting_for_body = Some(header);
                    Ok(None)
                } else {
                    Self::assemble(header, Bytes::new()).map(Some)
                }
            }
            (FrameType::PayloadBody, Some(header)) => Self::assemble(header, frame.body).map(Some),
            (frame_type, waiting) => Err(FlightError::invalid_argument(format!(
                "unexpected UCX {frame_type:?} frame{}",
                if waiting.is_some() {
                    " while a PayloadBody was expected"
                } else {
                    ""
                }
            ))),
        }
    }

    fn assemble(header: PayloadHeader, body: Bytes) -> Result<FlightData, FlightError> {
        let flight_descriptor = match header.descriptor {
            Some(bytes) => Some(FlightDescriptor::decode(bytes).map_err(|e| {
                FlightError::invalid_argument(format!("malformed FlightDescriptor: {e}"))
            })?),
            None => None,
        };
        Ok(FlightData {
            flight_descriptor,
            data_header: header.ipc_message.unwrap_or_default(),
            app_metadata: header.app_metadata.unwrap_or_default(),
            data_body: DataBody::from(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameHeader;
    use polyflight_core::FlightCode;

    fn frame(frame_type: FrameType, body: Bytes) -> Frame {
        let header = FrameHeader::new(frame_type, 0, body.len()).unwrap();
        Frame::from_parts(header, body).unwrap()
    }

    #[test]
    fn metadata_only_payload_has_no_body() {
        let header = PayloadHeader {
            app_metadata: Some(Bytes::from_static(b"meta")),
            ..Default::default()
        };
        let mut assembler = PayloadAssembler::default();
        let data = assembler
            .push(frame(FrameType::PayloadHeader, header.encode().unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(data.app_metadata.as_ref(), b"meta");
        assert!(data.data_header.is_empty());
        assert!(!assembler.expects_body());
    }

    #[test]
    fn garbage_ipc_header_has_no_body_and_stray_body_is_rejected() {
        assert!(!ipc_has_body(b"\x01\x02garbage"));
        let mut assembler = PayloadAssembler::default();
        let err = assembler
            .push(frame(FrameType::PayloadBody, Bytes::from_static(b"x")))
            .unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
    }

    #[test]
    fn status_round_trip_with_trailers() {
        let error = FlightError::not_found("gone").with_extra_info(&b"\x00\x01"[..]);
        let trailers = Headers::new().with("x-trailer", "t");
        let body = status_frame(&Err(error.clone()), &trailers).unwrap();
        let pairs = frame::decode_headers(&body).unwrap();
        let (result, got_trailers) = status_from_headers(&pairs).unwrap();
        assert_eq!(result.unwrap_err(), error);
        assert_eq!(got_trailers.get_str("x-trailer"), Some("t"));
        assert_eq!(got_trailers.len(), 1);
    }

    #[test]
    fn timeouts() {
        assert_eq!(timeout_value(Duration::from_micros(1)), "1");
        assert_eq!(timeout_value(Duration::from_millis(300)), "300");
        assert_eq!(parse_timeout("300"), Some(Duration::from_millis(300)));
        assert_eq!(parse_timeout("x"), None);
    }
}
