//! Fuzzing entry point of the UCX framing (see `polyflight_core::fuzzing`). Not part of the API.

use crate::frame::{self, Frame, FrameHeader, PayloadHeader, FRAME_HEADER_LEN};
use crate::sequence::{idle_frame, ClientCall, Idle, ServerCall, ServerEvent};
use bytes::Bytes;
use polyflight_core::{CallMetadata, FlightMethod, Headers};

/// Methods a client call may be of, picked by the input's first byte.
const METHODS: [FlightMethod; 10] = [
    FlightMethod::Handshake,
    FlightMethod::ListFlights,
    FlightMethod::GetFlightInfo,
    FlightMethod::PollFlightInfo,
    FlightMethod::GetSchema,
    FlightMethod::DoGet,
    FlightMethod::DoPut,
    FlightMethod::DoExchange,
    FlightMethod::DoAction,
    FlightMethod::ListActions,
];

/// Active messages as a peer sends them — a 12-byte frame header, then AM data of the length a
/// `u16` (little-endian) before it gives — read by both sides' state machines: the server's
/// (between calls, then in a call) and a client's of the method the first byte picks. Each
/// frame's body is also parsed as Headers and as a PayloadHeader, whatever its type says.
pub fn ucx_frames(data: &[u8]) {
    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[pick as usize % METHODS.len()];
    let mut client = match ClientCall::new(method, &CallMetadata::default()) {
        Ok(call) => call,
        Err(_) => return,
    };
    let mut server: Option<ServerCall> = None;
    while rest.len() >= 2 + FRAME_HEADER_LEN {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let header = &rest[2..2 + FRAME_HEADER_LEN];
        let after = &rest[2 + FRAME_HEADER_LEN..];
        let take = len.min(after.len());
        let am_data = Bytes::copy_from_slice(&after[..take]);
        rest = &after[take..];
        let Ok(header) = FrameHeader::decode(header) else {
            continue;
        };
        let Ok(frame) = Frame::from_parts(header, am_data) else {
            continue;
        };
        let _ = frame::decode_headers(&frame.body);
        let _ = PayloadHeader::decode(&frame.body);
        match server.as_mut() {
            Some(call) => {
                call.handle_frame(frame.clone());
                while let Some(event) = call.poll_event() {
                    if matches!(event, ServerEvent::RequestsEnd(_)) {
                        // the handler answers at once, so the next call can start
                        call.send_status(Ok(()), Headers::new());
                    }
                }
                while call.poll_transmit().is_some() {}
                if call.is_over() {
                    server = None;
                }
            }
            None => {
                if let Idle::Call(start) = idle_frame(&frame) {
                    server = Some(ServerCall::new(&start));
                }
            }
        }
        if client.wants_frames() {
            client.handle_frame(frame);
            while client.poll_event().is_some() {}
            while client.poll_transmit().is_some() {}
        }
    }
}
