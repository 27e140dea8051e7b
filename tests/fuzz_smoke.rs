//! The fuzz targets of the parsers that face the network, run on stable Rust: each on its seeds
//! and on mutations of them, for `POLYFLIGHT_FUZZ_SECONDS` (default 2) seconds. The coverage-
//! guided runs (`cargo xtask fuzz`, libFuzzer through `cargo fuzz`) use the same entry points
//! and take their starting corpus from here: with `POLYFLIGHT_FUZZ_SEEDS=DIR`, `write_seeds`
//! writes every target's seeds to `DIR/<target>/`.

mod common;

use common::*;
use polyflight::codec::{EncodeOptions, FlightDataEncoder};
use polyflight::FlightData;
use polyflight_unix::hpack::{encode_literals, HeaderField};
use prost::Message;
use std::time::Duration;

/// A target: its name (as in `crates/polyflight-fuzz/fuzz_targets`), entry point, seeds.
type Target = (&'static str, fn(&[u8]), Vec<Vec<u8>>);

/// Every target.
fn targets() -> Vec<Target> {
    vec![
        (
            "flight_data_decode",
            polyflight::fuzzing::flight_data_decode,
            flight_data_seeds(),
        ),
        (
            "grpc_messages",
            polyflight_grpc::fuzzing::grpc_messages,
            grpc_seeds(),
        ),
        (
            "authority_rewriter",
            polyflight_unix::fuzzing::authority_rewriter,
            rewriter_seeds(),
        ),
        (
            "ucx_frames",
            polyflight_ucx::fuzzing::ucx_frames,
            ucx_seeds(),
        ),
        (
            "location_parse",
            polyflight::fuzzing::location_parse,
            location_seeds(),
        ),
    ]
}

/// Small streams of every kind the codec knows: plain columns, strings and nulls, dictionaries.
fn sample_streams() -> Vec<Vec<FlightData>> {
    let mut streams = Vec::new();
    for batch in [
        int64_batch(5, 2),
        mixed_batch(4, 1),
        dict_batch(6, &["a", "bb", "a"]),
    ] {
        let mut encoder = FlightDataEncoder::new(EncodeOptions::default());
        let mut stream = vec![encoder.encode_schema(&batch.schema()).unwrap()];
        stream.extend(encoder.encode_batch(&batch).unwrap());
        streams.push(stream);
    }
    streams
}

fn piece(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("seed pieces are small");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

fn flight_data_seeds() -> Vec<Vec<u8>> {
    sample_streams()
        .into_iter()
        .map(|stream| {
            let mut seed = Vec::new();
            for message in stream {
                piece(&mut seed, &message.data_header);
                piece(&mut seed, &message.data_body.to_contiguous());
            }
            seed
        })
        .collect()
}

fn grpc_seeds() -> Vec<Vec<u8>> {
    sample_streams()
        .into_iter()
        .map(|stream| {
            let mut seed = vec![3u8];
            for message in stream {
                let proto = polyflight::proto::FlightData {
                    flight_descriptor: message.flight_descriptor.clone(),
                    data_header: message.data_header.clone(),
                    app_metadata: bytes::Bytes::from_static(b"m"),
                    data_body: message.data_body.to_contiguous(),
                }
                .encode_to_vec();
                seed.push(0);
                seed.extend_from_slice(&(proto.len() as u32).to_be_bytes());
                seed.extend_from_slice(&proto);
            }
            seed
        })
        .collect()
}

fn http2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn rewriter_seeds() -> Vec<Vec<u8>> {
    let fields = |authority: &str| {
        vec![
            HeaderField::new(":method", "POST"),
            HeaderField::new(":scheme", "http"),
            HeaderField::new(":path", "/arrow.flight.protocol.FlightService/DoGet"),
            HeaderField::new(":authority", authority),
            HeaderField::new("content-type", "application/grpc"),
        ]
    };
    let mut seeds = Vec::new();
    for (authority, split) in [("/tmp/flight.sock", false), ("localhost", true)] {
        let mut block = Vec::new();
        encode_literals(&fields(authority), &mut block);
        let mut seed = vec![7u8];
        seed.extend(http2_frame(4, 0, 0, &[]));
        if split {
            let (a, b) = block.split_at(block.len() / 2);
            seed.extend(http2_frame(1, 0, 1, a));
            seed.extend(http2_frame(9, 4, 1, b));
        } else {
            seed.extend(http2_frame(1, 4, 1, &block));
        }
        seed.extend(http2_frame(0, 1, 1, &[0, 0, 0, 0, 1, 0x0a]));
        seeds.push(seed);
    }
    seeds
}

/// The frames an Arrow C++ peer exchanged with ours (crates/polyflight-ucx/vectors), one seed
/// per call direction.
fn ucx_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for file in ["arrow-cpp-19-client.frames", "arrow-cpp-19-server.frames"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crates/polyflight-ucx/vectors")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("test vectors");
        for (pick, direction) in [(6u8, "c2s"), (2u8, "s2c")] {
            let mut seed = vec![pick];
            for line in text.lines().filter(|l| l.starts_with(direction)) {
                let fields: Vec<&str> = line.split(' ').collect();
                let header = unhex(fields[1]);
                let data = unhex(fields[2]);
                seed.extend_from_slice(&(data.len() as u16).to_le_bytes());
                seed.extend_from_slice(&header);
                seed.extend_from_slice(&data);
            }
            seeds.push(seed);
        }
    }
    seeds
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn location_seeds() -> Vec<Vec<u8>> {
    [
        "grpc://localhost:8815",
        "grpc+tcp://127.0.0.1:0",
        "grpc+tls://[::1]:443",
        "grpc+unix:///tmp/flight.sock",
        "ucx://10.0.0.1:9000",
        "arrow-flight-reuse-connection://?",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn seconds() -> Duration {
    let seconds = std::env::var("POLYFLIGHT_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(seconds)
}

fn run(name: &str) {
    let (_, target, seeds) = targets()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .expect("a target of that name");
    let runs = polyflight::fuzzing::smoke(target, &seeds, seconds());
    eprintln!("{name}: {runs} inputs");
    assert!(runs > seeds.len() as u64, "{name} ran its mutations");
}

#[test]
fn flight_data_decode() {
    run("flight_data_decode");
}

#[test]
fn grpc_messages() {
    run("grpc_messages");
}

#[test]
fn authority_rewriter() {
    run("authority_rewriter");
}

#[test]
fn ucx_frames() {
    run("ucx_frames");
}

#[test]
fn location_parse() {
    run("location_parse");
}

#[test]
fn write_seeds() {
    let Ok(dir) = std::env::var("POLYFLIGHT_FUZZ_SEEDS") else {
        return;
    };
    for (name, _, seeds) in targets() {
        let dir = std::path::Path::new(&dir).join(name);
        std::fs::create_dir_all(&dir).expect("seed directory");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).expect("seed file");
        }
    }
}
