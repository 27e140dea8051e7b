//! Fuzzing entry point of the gRPC wire (see `polyflight_core::fuzzing`). Not part of the API.

use crate::wire::{self, MessageDecoder};
use bytes::Bytes;

/// The gRPC message framing of a request body and the FlightData protobuf parsing of each
/// message, as the server reads a DoPut: the input (after its first byte, which sets where it
/// is cut) arrives as body chunks; complete messages are parsed as FlightData and their IPC
/// decoded.
pub fn grpc_messages(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let chunk = 1 + cut as usize * 7;
    let mut decoder = MessageDecoder::new(1 << 20);
    let mut ipc = polyflight_core::codec::FlightDataDecoder::new();
    for piece in rest.chunks(chunk) {
        decoder.push(Bytes::copy_from_slice(piece));
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    if let Ok(flight_data) = wire::decode_flight_data(message) {
                        let _ = ipc.decode(&flight_data);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = decoder.finish();
}
