//! The codec: Arrow record batches, schemas and dictionaries to and from [`FlightData`].
//!
//! Flight carries the Arrow IPC stream format inside `FlightData`: `data_header` is an IPC
//! `Message` flatbuffer (Schema, DictionaryBatch or RecordBatch, without the continuation/length
//! prefix) and `data_body` is the message body. This module is the only place in polyflight that
//! knows that format; transports move `FlightData` and never look inside.
//!
//! - [`encode`](FlightDataEncoder): RecordBatch → FlightData. The flatbuffer header is built
//!   here and the body is a list of `Bytes` segments that point at the arrays' own buffers, so
//!   column data is never copied on the way out. Dictionaries are sent ahead of the batches that
//!   use them (replacement and delta), oversized batches are split by rows, and IPC body
//!   compression is available.
//! - [`decode`](FlightDataDecoder): FlightData → RecordBatch. Arrays are built over the received
//!   body bytes (copying only buffers that are misaligned). Every message is checked before the
//!   third-party IPC reader sees it, so malformed input from a peer is an `INVALID_ARGUMENT`
//!   error, never a panic or an allocation sized by a number the peer made up.
//! - [`stream`](FlightDataEncoderBuilder): the same two directions as `futures::Stream`
//!   adapters, which is what the client, the server and the transports plug together.
//!
//! The schema helpers [`encode_schema`] and [`decode_schema`] produce and read the
//! "IPC-encapsulated" schema bytes used in `FlightInfo.schema` and `SchemaResult.schema`.
//!
//! [`FlightData`]: crate::data::FlightData

mod decode;
mod encode;
mod stream;

pub use decode::{decode_schema, DecodedPayload, FlightDataDecoder};
pub use encode::{
    encode_schema, DictionaryHandling, EncodeOptions, FlightDataEncoder, DEFAULT_MAX_MESSAGE_SIZE,
};
pub use stream::{
    DecodedMessage, EncoderInput, FlightDataEncoderBuilder, FlightDataEncoderStream,
    FlightRecordBatchStream,
};

/// The IPC metadata version polyflight writes (V5, the current one since Arrow 1.0).
const WRITE_METADATA_VERSION: arrow_ipc::MetadataVersion = arrow_ipc::MetadataVersion::V5;

/// The IPC stream continuation marker that precedes each encapsulated message.
const CONTINUATION_MARKER: [u8; 4] = [0xff; 4];

/// The largest row count accepted for one array or batch in a received message.
///
/// Lengths come from the peer; capping them at `i32::MAX` keeps every size computed from them
/// (`length × element width`, `length × list size`) far from overflow in our checks and in
/// arrow's. No Flight implementation sends more rows in one message: Arrow Java cannot hold
/// them, and such a message would be gigabytes per column.
const MAX_ROWS: i64 = i32::MAX as i64;

/// Batches covering every Arrow type family, and IPC stream framing, for the codec's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{DecodedPayload, EncodeOptions, FlightDataDecoder, FlightDataEncoder};
    use crate::data::FlightData;
    use arrow_array::builder::{
        GenericListViewBuilder, Int32Builder, LargeListBuilder, MapBuilder, StringBuilder,
    };
    use arrow_array::types::{Int16Type, Int32Type, Int8Type};
    use arrow_array::*;
    use arrow_buffer::{
        i256, Buffer, IntervalDayTime, IntervalMonthDayNano, NullBuffer, OffsetBuffer, ScalarBuffer,
    };
    use arrow_data::ArrayData;
    use arrow_schema::{DataType, Field, Fields, Schema, UnionFields};
    use bytes::Bytes;
    use std::sync::Arc;

    fn valid(i: usize) -> bool {
        i % 7 != 3
    }

    fn text(i: usize) -> String {
        // Every fifth value is longer than 12 bytes, so view arrays get data buffers.
        if i.is_multiple_of(5) {
            format!("a longer string number {i}")
        } else {
            format!("s{i}")
        }
    }

    /// A batch of `rows` rows with one column per type family, nulls included.
    pub fn all_types_batch(rows: usize) -> RecordBatch {
        let n = rows;
        let opt = |i: usize| valid(i).then_some(i);
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            ("null", Arc::new(NullArray::new(n))),
            (
                "bool",
                Arc::new(BooleanArray::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i % 3 == 0)),
                )),
            ),
            (
                "i8",
                Arc::new(Int8Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i8)),
                )),
            ),
            (
                "i16",
                Arc::new(Int16Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i16)),
                )),
            ),
            (
                "i32",
                Arc::new(Int32Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i32)),
                )),
            ),
            (
                "i64",
                Arc::new(Int64Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i64 * 1000)),
                )),
            ),
            (
                "u8",
                Arc::new(UInt8Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as u8)),
                )),
            ),
            (
                "u16",
                Arc::new(UInt16Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as u16)),
                )),
            ),
            (
                "u32",
                Arc::new(UInt32Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as u32)),
                )),
            ),
            (
                "u64",
                Arc::new(UInt64Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as u64)),
                )),
            ),
            ("f16", {
                let bits: Vec<u16> = (0..n).map(|i| 0x3c00 + i as u16).collect();
                let data = ArrayData::builder(DataType::Float16)
                    .len(n)
                    .add_buffer(Buffer::from_vec(bits))
                    .build()
                    .unwrap();
                make_array(data)
            }),
            (
                "f32",
                Arc::new(Float32Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as f32 / 2.0)),
                )),
            ),
            (
                "f64",
                Arc::new(Float64Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as f64 / 4.0)),
                )),
            ),
            (
                "dec32",
                Arc::new(
                    Decimal32Array::from_iter((0..n).map(|i| opt(i).map(|i| i as i32)))
                        .with_precision_and_scale(9, 2)
                        .unwrap(),
                ),
            ),
            (
                "dec64",
                Arc::new(
                    Decimal64Array::from_iter((0..n).map(|i| opt(i).map(|i| i as i64)))
                        .with_precision_and_scale(18, 3)
                        .unwrap(),
                ),
            ),
            (
                "dec128",
                Arc::new(
                    Decimal128Array::from_iter((0..n).map(|i| opt(i).map(|i| i as i128 * 7)))
                        .with_precision_and_scale(38, 5)
                        .unwrap(),
                ),
            ),
            (
                "dec256",
                Arc::new(
                    Decimal256Array::from_iter(
                        (0..n).map(|i| opt(i).map(|i| i256::from_i128(i as i128))),
                    )
                    .with_precision_and_scale(76, 4)
                    .unwrap(),
                ),
            ),
            (
                "date32",
                Arc::new(Date32Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i32)),
                )),
            ),
            (
                "date64",
                Arc::new(Date64Array::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i64 * 86_400_000)),
                )),
            ),
            (
                "time32",
                Arc::new(Time32SecondArray::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i32)),
                )),
            ),
            (
                "time64",
                Arc::new(Time64MicrosecondArray::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i64)),
                )),
            ),
            (
                "ts",
                Arc::new(
                    TimestampNanosecondArray::from_iter((0..n).map(|i| opt(i).map(|i| i as i64)))
                        .with_timezone("UTC"),
                ),
            ),
            (
                "duration",
                Arc::new(DurationMillisecondArray::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i64)),
                )),
            ),
            (
                "interval_ym",
                Arc::new(IntervalYearMonthArray::from_iter(
                    (0..n).map(|i| opt(i).map(|i| i as i32)),
                )),
            ),
            (
                "interval_dt",
                Arc::new(IntervalDayTimeArray::from_iter(
                    (0..n).map(|i| opt(i).map(|i| IntervalDayTime::new(i as i32, 5))),
                )),
            ),
            (
                "interval_mdn",
                Arc::new(IntervalMonthDayNanoArray::from_iter((0..n).map(|i| {
                    opt(i).map(|i| IntervalMonthDayNano::new(1, i as i32, 9))
                }))),
            ),
            (
                "utf8",
                Arc::new(StringArray::from_iter((0..n).map(|i| opt(i).map(text)))),
            ),
            (
                "large_utf8",
                Arc::new(LargeStringArray::from_iter(
                    (0..n).map(|i| opt(i).map(text)),
                )),
            ),
            (
                "binary",
                Arc::new(BinaryArray::from_iter(
                    (0..n).map(|i| opt(i).map(|i| text(i).into_bytes())),
                )),
            ),
            (
                "large_binary",
                Arc::new(LargeBinaryArray::from_iter(
                    (0..n).map(|i| opt(i).map(|i| text(i).into_bytes())),
                )),
            ),
            (
                "fixed_binary",
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        (0..n).map(|i| opt(i).map(|i| (i as u32).to_le_bytes())),
                        4,
                    )
                    .unwrap(),
                ),
            ),
            (
                "utf8_view",
                Arc::new(StringViewArray::from_iter((0..n).map(|i| opt(i).map(text)))),
            ),
            (
                "binary_view",
                Arc::new(BinaryViewArray::from_iter(
                    (0..n).map(|i| opt(i).map(|i| text(i).into_bytes())),
                )),
            ),
            (
                "list",
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
                    (0..n).map(|i| {
                        opt(i).map(|i| (0..i % 4).map(|j| Some(j as i32)).collect::<Vec<_>>())
                    }),
                )),
            ),
            ("large_list", {
                let mut builder = LargeListBuilder::new(StringBuilder::new());
                for i in 0..n {
                    if valid(i) {
                        for j in 0..i % 3 {
                            builder.values().append_value(text(i + j));
                        }
                        builder.append(true);
                    } else {
                        builder.append(false);
                    }
                }
                Arc::new(builder.finish())
            }),
            ("list_view", {
                let mut builder = GenericListViewBuilder::<i32, _>::new(Int32Builder::new());
                for i in 0..n {
                    builder.values().append_slice(&[i as i32, 1]);
                    builder.append(valid(i));
                }
                Arc::new(builder.finish())
            }),
            ("large_list_view", {
                let mut builder = GenericListViewBuilder::<i64, _>::new(Int32Builder::new());
                for i in 0..n {
                    builder.values().append_value(i as i32);
                    builder.append(valid(i));
                }
                Arc::new(builder.finish())
            }),
            (
                "fixed_list",
                Arc::new(FixedSizeListArray::from_iter_primitive::<Int32Type, _, _>(
                    (0..n).map(|i| opt(i).map(|i| vec![Some(i as i32), None, Some(1)])),
                    3,
                )),
            ),
            ("struct", {
                let fields = Fields::from(vec![
                    Field::new("a", DataType::Int32, true),
                    Field::new("b", DataType::Utf8, true),
                ]);
                let a = Int32Array::from_iter((0..n).map(|i| Some(i as i32)));
                let b = StringArray::from_iter((0..n).map(|i| (i % 2 == 0).then(|| text(i))));
                let nulls = NullBuffer::from_iter((0..n).map(|i| i % 5 != 1));
                Arc::new(
                    StructArray::try_new(fields, vec![Arc::new(a), Arc::new(b)], Some(nulls))
                        .unwrap(),
                )
            }),
            ("sparse_union", {
                let fields = UnionFields::try_new(
                    [0, 5],
                    [
                        Field::new("i", DataType::Int32, true),
                        Field::new("s", DataType::Utf8, true),
                    ],
                )
                .unwrap();
                let type_ids: ScalarBuffer<i8> =
                    (0..n).map(|i| if i % 2 == 0 { 0 } else { 5 }).collect();
                let ints = Int32Array::from_iter((0..n).map(|i| Some(i as i32)));
                let strings = StringArray::from_iter((0..n).map(|i| Some(text(i))));
                Arc::new(
                    UnionArray::try_new(
                        fields,
                        type_ids,
                        None,
                        vec![Arc::new(ints), Arc::new(strings)],
                    )
                    .unwrap(),
                )
            }),
            ("dense_union", {
                let fields = UnionFields::try_new(
                    [0, 1],
                    [
                        Field::new("i", DataType::Int64, true),
                        Field::new("s", DataType::Utf8, true),
                    ],
                )
                .unwrap();
                let type_ids: ScalarBuffer<i8> = (0..n).map(|i| (i % 3 == 0) as i8).collect();
                let mut counts = [0i32; 2];
                let offsets: ScalarBuffer<i32> = (0..n)
                    .map(|i| {
                        let t = (i % 3 == 0) as usize;
                        counts[t] += 1;
                        counts[t] - 1
                    })
                    .collect();
                let ints = Int64Array::from_iter((0..counts[0]).map(|i| Some(i as i64)));
                let strings =
                    StringArray::from_iter((0..counts[1]).map(|i| Some(text(i as usize))));
                Arc::new(
                    UnionArray::try_new(
                        fields,
                        type_ids,
                        Some(offsets),
                        vec![Arc::new(ints), Arc::new(strings)],
                    )
                    .unwrap(),
                )
            }),
            ("map", {
                let mut builder = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
                for i in 0..n {
                    for j in 0..i % 3 {
                        builder.keys().append_value(format!("k{j}"));
                        builder.values().append_value((i + j) as i32);
                    }
                    builder.append(valid(i)).unwrap();
                }
                Arc::new(builder.finish())
            }),
            (
                "dict_utf8",
                Arc::new(
                    (0..n)
                        .map(|i| opt(i).map(|i| ["red", "green", "blue"][i % 3]))
                        .collect::<DictionaryArray<Int32Type>>(),
                ),
            ),
            ("dict_i64", {
                let keys = Int8Array::from_iter((0..n).map(|i| opt(i).map(|i| (i % 4) as i8)));
                let values = Int64Array::from(vec![10, 20, 30, 40]);
                Arc::new(DictionaryArray::<Int8Type>::try_new(keys, Arc::new(values)).unwrap())
            }),
            ("list_of_dict", {
                let values: DictionaryArray<Int16Type> =
                    (0..2 * n).map(|i| Some(["x", "y"][i % 2])).collect();
                let field = Arc::new(Field::new("item", values.data_type().clone(), true));
                let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(2, n));
                Arc::new(ListArray::try_new(field, offsets, Arc::new(values), None).unwrap())
            }),
            ("struct_with_dict", {
                let dict: DictionaryArray<Int32Type> =
                    (0..n).map(|i| Some(["p", "q", "r"][i % 3])).collect();
                let fields = Fields::from(vec![Field::new("d", dict.data_type().clone(), true)]);
                Arc::new(StructArray::try_new(fields, vec![Arc::new(dict)], None).unwrap())
            }),
            ("run_end", {
                let runs = n.div_ceil(3);
                let run_ends =
                    Int32Array::from_iter_values((1..=runs).map(|r| (r * 3).min(n) as i32));
                let values =
                    StringArray::from_iter((0..runs).map(|r| (r % 4 != 2).then(|| text(r))));
                Arc::new(RunArray::<Int32Type>::try_new(&run_ends, &values).unwrap())
            }),
        ];
        if n == 0 {
            // `from_iter` infers nothing odd for 0 rows, but keep the run-end column valid.
            columns.retain(|(name, _)| *name != "run_end");
            let run_ends = Int32Array::from(Vec::<i32>::new());
            let values = StringArray::from(Vec::<Option<&str>>::new());
            columns.push((
                "run_end",
                Arc::new(RunArray::<Int32Type>::try_new(&run_ends, &values).unwrap()),
            ));
        }
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect();
        let arrays = columns.into_iter().map(|(_, array)| array).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    /// Encodes the schema and `batches` with one encoder.
    pub fn encode_all(options: EncodeOptions, batches: &[RecordBatch]) -> Vec<FlightData> {
        let mut encoder = FlightDataEncoder::new(options);
        let mut out = vec![encoder.encode_schema(batches[0].schema_ref()).unwrap()];
        for batch in batches {
            out.extend(encoder.encode_batch(batch).unwrap());
        }
        out
    }

    /// Decodes `messages` with one decoder, returning the batches.
    pub fn decode_all(messages: &[FlightData]) -> Vec<RecordBatch> {
        let mut decoder = FlightDataDecoder::new();
        let mut out = Vec::new();
        for message in messages {
            if let DecodedPayload::RecordBatch(batch) = decoder.decode(message).unwrap() {
                out.push(batch);
            }
        }
        out
    }

    /// Frames messages as an IPC stream: per message the continuation marker, the padded
    /// header length, the header, padding to 8, the body; then the end-of-stream marker.
    pub fn to_ipc_stream(messages: &[FlightData]) -> Vec<u8> {
        let mut out = Vec::new();
        for message in messages {
            let header = &message.data_header;
            let padding = header.len().next_multiple_of(8) - header.len();
            out.extend_from_slice(&[0xff; 4]);
            out.extend_from_slice(&((header.len() + padding) as i32).to_le_bytes());
            out.extend_from_slice(header);
            out.extend(std::iter::repeat_n(0u8, padding));
            out.extend_from_slice(&message.data_body.to_contiguous());
        }
        out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        out
    }

    /// Splits an IPC stream (as arrow's StreamWriter writes it) into Flight data messages.
    pub fn from_ipc_stream(bytes: &[u8]) -> Vec<FlightData> {
        let bytes = Bytes::copy_from_slice(bytes);
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            assert_eq!(&bytes[pos..pos + 4], &[0xff; 4]);
            let len = i32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
            pos += 8;
            if len == 0 {
                return out;
            }
            let header = bytes.slice(pos..pos + len);
            pos += len;
            let body_len = arrow_ipc::root_as_message(&header).unwrap().bodyLength() as usize;
            let body = bytes.slice(pos..pos + body_len);
            pos += body_len;
            out.push(FlightData {
                data_header: header,
                data_body: body.into(),
                ..FlightData::default()
            });
        }
    }
}
