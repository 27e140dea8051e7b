//! Criterion benches of the codec: encoding record batches to FlightData and decoding them
//! back, for the shapes Flight services commonly send.
//!
//! - `typical`: 6 columns (int64, float64, utf8 twice each), 64 Ki rows;
//! - `wide`: 200 columns of the same mix, 4 Ki rows;
//! - `nested`: 2 `list<struct<id, score, tag>>` columns, 16 Ki rows.
//!
//! Throughput is reported in IPC data bytes (header + body) per second, in decimal units
//! (1 GB = 10^9 bytes) like the transport benchmark. Encoding copies no
//! column data, so its cost is the flatbuffer header and the per-buffer bookkeeping; decoding
//! validates the message and builds arrays over the received bytes.
//!
//! Run with `cargo bench --bench codec` (add `-- --quick` for a fast pass).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use polyflight::codec::{DecodedPayload, EncodeOptions, FlightDataDecoder, FlightDataEncoder};
use polyflight::FlightData;
use polyflight_bench::data::generate_batch;
use polyflight_bench::{DataKind, DataSpec};
use std::hint::black_box;

/// The batches benchmarked: name, layout, rows.
fn shapes() -> Vec<(&'static str, DataSpec, usize)> {
    vec![
        (
            "typical",
            DataSpec {
                kind: DataKind::Mixed,
                columns: 6,
            },
            65_536,
        ),
        (
            "wide",
            DataSpec {
                kind: DataKind::Mixed,
                columns: 200,
            },
            4096,
        ),
        (
            "nested",
            DataSpec {
                kind: DataKind::Nested,
                columns: 2,
            },
            16_384,
        ),
    ]
}

/// One message per batch, as the transport benchmark sends them.
fn options() -> EncodeOptions {
    EncodeOptions {
        max_message_size: i32::MAX as usize,
        ..EncodeOptions::default()
    }
}

fn codec(c: &mut Criterion) {
    let mut encode = c.benchmark_group("encode");
    for (name, spec, rows) in shapes() {
        let batch = generate_batch(spec, rows);
        let mut encoder = FlightDataEncoder::new(options());
        encoder
            .encode_schema(batch.schema_ref())
            .expect("schema encodes");
        let bytes: usize = encoder
            .encode_batch(&batch)
            .expect("batch encodes")
            .iter()
            .map(FlightData::data_len)
            .sum();
        encode.throughput(Throughput::BytesDecimal(bytes as u64));
        encode.bench_with_input(BenchmarkId::from_parameter(name), &batch, |b, batch| {
            b.iter(|| black_box(encoder.encode_batch(black_box(batch)).expect("encodes")))
        });
    }
    encode.finish();

    let mut decode = c.benchmark_group("decode");
    for (name, spec, rows) in shapes() {
        let batch = generate_batch(spec, rows);
        let mut encoder = FlightDataEncoder::new(options());
        let schema = encoder
            .encode_schema(batch.schema_ref())
            .expect("schema encodes");
        // Decoders receive one contiguous body per message, as transports deliver it.
        let messages: Vec<FlightData> = encoder
            .encode_batch(&batch)
            .expect("batch encodes")
            .into_iter()
            .map(|m| FlightData {
                data_body: m.data_body.to_contiguous().into(),
                ..m
            })
            .collect();
        let bytes: usize = messages.iter().map(FlightData::data_len).sum();
        let mut decoder = FlightDataDecoder::new();
        decoder.decode(&schema).expect("schema decodes");
        decode.throughput(Throughput::BytesDecimal(bytes as u64));
        decode.bench_with_input(
            BenchmarkId::from_parameter(name),
            &messages,
            |b, messages| {
                b.iter(|| {
                    for message in messages {
                        let payload = decoder.decode(black_box(message)).expect("decodes");
                        assert!(matches!(payload, DecodedPayload::RecordBatch(_)));
                        black_box(payload);
                    }
                })
            },
        );
    }
    decode.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
