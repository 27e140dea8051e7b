//! Entry points for fuzzing the parsers that face the network, shared by the `cargo fuzz`
//! targets (`crates/polyflight-fuzz`) and the stable smoke test (`tests/fuzz_smoke.rs`). Each
//! takes arbitrary bytes and must return without panicking, whatever they are; what they
//! decode is thrown away. Not part of the API.

use crate::codec::FlightDataDecoder;
use crate::data::{DataBody, FlightData};
use crate::location::Location;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Splits `data` into length-prefixed pieces (a little-endian `u16` length, then that many
/// bytes, shorter at the end), the way the targets build several messages from one input.
pub fn pieces(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let len = u16::from_le_bytes([data[0], data[1]]) as usize;
        let rest = &data[2..];
        let take = len.min(rest.len());
        out.push(&rest[..take]);
        data = &rest[take..];
    }
    out
}

/// The Arrow IPC decoding of FlightData: pairs of pieces are a message's `data_header` (the
/// IPC flatbuffer) and its `data_body`, fed in order to one decoder (schemas, dictionaries,
/// batches, with all their buffer and node claims).
pub fn flight_data_decode(data: &[u8]) {
    let mut decoder = FlightDataDecoder::new();
    let pieces = pieces(data);
    for pair in pieces.chunks(2) {
        let header = Bytes::copy_from_slice(pair[0]);
        let body = pair.get(1).map(|b| Bytes::copy_from_slice(b));
        let message = FlightData {
            flight_descriptor: None,
            data_header: header,
            app_metadata: Bytes::new(),
            data_body: DataBody::from_segments(body.into_iter().collect()),
        };
        if let Ok(crate::codec::DecodedPayload::RecordBatch(batch)) = decoder.decode(&message) {
            // what a service does with a batch next
            let _ = batch.get_array_memory_size();
        }
    }
}

/// `Location::parse` on any text; a location that parses must print a URI that parses to the
/// same location.
pub fn location_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(location) = Location::parse(&text) {
        let again = Location::parse(location.uri());
        assert!(
            again.as_ref().is_ok_and(|a| a.uri() == location.uri()),
            "{text:?} parsed as {:?}, whose URI parses as {again:?}",
            location.uri()
        );
    }
}

/// Runs `target` on every seed and then on mutations of them (bit flips, byte changes,
/// truncations, splices, insertions) from a fixed-seed generator, for `duration`; returns how
/// many inputs ran. A stand-in for a coverage-guided fuzzer where none is installed: it finds
/// shallow crashes only.
pub fn smoke(target: fn(&[u8]), seeds: &[Vec<u8>], duration: Duration) -> u64 {
    let mut runs = 0;
    for seed in seeds {
        target(seed);
        runs += 1;
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let started = Instant::now();
    let mut input = Vec::new();
    while started.elapsed() < duration {
        input.clear();
        if seeds.is_empty() {
            input.extend((0..next() % 64).map(|_| next() as u8));
        } else {
            input.extend_from_slice(&seeds[(next() % seeds.len() as u64) as usize]);
        }
        for _ in 0..1 + next() % 8 {
            let at = if input.is_empty() {
                0
            } else {
                (next() % input.len() as u64) as usize
            };
            match next() % 6 {
                0 if !input.is_empty() => input[at] ^= 1 << (next() % 8),
                1 if !input.is_empty() => input[at] = next() as u8,
                2 => input.truncate(at),
                3 => input.insert(at, next() as u8),
                4 if !input.is_empty() => {
                    // an extreme value where a length or count may be
                    let value: [u8; 4] = match next() % 3 {
                        0 => [0xff; 4],
                        1 => [0x7f, 0xff, 0xff, 0xff],
                        _ => [0, 0, 0, 0x80],
                    };
                    for (i, b) in value.iter().enumerate() {
                        if let Some(slot) = input.get_mut(at + i) {
                            *slot = *b;
                        }
                    }
                }
                _ => {
                    if let Some(other) = seeds.get((next() % seeds.len().max(1) as u64) as usize) {
                        let from = (next() % (other.len() as u64 + 1)) as usize;
                        input.extend_from_slice(&other[from..]);
                    }
                }
            }
        }
        target(&input);
        runs += 1;
    }
    runs
}
