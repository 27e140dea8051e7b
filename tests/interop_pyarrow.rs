//! Interop with pyarrow (Arrow C++ Flight, gRPC C++ and BoringSSL underneath), both ways, over
//! every transport both implement: `grpc`, `tls` (`grpc+tls`), `mtls` (`grpc+tls` with client
//! certificates) and `unix` (`grpc+unix`). The `interop!` invocation at the end runs every case
//! once per transport (a module per row: `grpc::pyarrow_server_do_get`, `unix::…`).
//!
//! - `pyarrow_server_*`: our client against `tests/interop/flight_server.py`, every RPC pyarrow
//!   serves, results compared exactly (batches, error codes and messages, headers).
//! - `pyarrow_client_against_our_server`: `tests/interop/flight_client.py` against our server
//!   running [`InteropService`]; every check of the script must print `ok`. Over `grpc+unix` the
//!   script runs with pyarrow's default client options, which send the socket path as
//!   `:authority` (see `docs/transports/grpc-unix.md`).
//! - `pyarrow_client_against_pyarrow_server`: the two scripts against each other, which keeps
//!   the peers themselves honest (when it fails, the scripts are wrong, not our code).
//! - [`transport_cases`]: what only one transport has, run only in its row: the TLS identity and
//!   the Unix credentials of a pyarrow client as our service sees them, certificates refused in
//!   both directions, a stock pyarrow client over a Unix socket.
//!
//! Both sides follow the contract in `tests/interop/contract.py`. How each side listens and
//! connects per transport is `tests/interop/peer.rs`; certificates (a CA and separate server and
//! client certificates) are minted per test and written, with any socket, to a scratch directory
//! removed when the test ends. The tests need Python with pyarrow: `cargo xtask interop-venv`
//! creates it (`cargo xtask test` does so and exports `POLYFLIGHT_PYTHON`). Without it they fail;
//! `POLYFLIGHT_SKIP_INTEROP=1` skips them.

#[path = "interop/contract.rs"]
mod contract;
#[path = "interop/peer.rs"]
mod peer;

use arrow_array::RecordBatch;
use bytes::Bytes;
use contract::*;
use futures::{StreamExt, TryStreamExt};
use peer::{PythonServer, Setup};
use polyflight::codec::{
    DecodedPayload, EncodeOptions, EncoderInput, FlightDataEncoder, FlightDataEncoderBuilder,
    FlightRecordBatchStream,
};
use polyflight::proto::{
    close_session_result, Action, CancelStatus, FlightDescriptor, FlightEndpoint, FlightInfo,
    Ticket,
};
use polyflight::{CallOptions, FlightClient, FlightCode, FlightData, FlightError, FlightStream};
use std::time::{Duration, Instant};

/// A test's pyarrow server and our client connected to it.
struct Peer {
    server: PythonServer,
    client: FlightClient,
}

impl Peer {
    /// Starts `flight_server.py`; `None` when the interop tests are skipped.
    async fn start(setup: &Setup) -> Option<Peer> {
        let python = peer::python()?;
        let server = PythonServer::start(&python, setup).await;
        let client = setup.connect(&server.uri).await;
        Some(Peer { server, client })
    }

    async fn stop(self) {
        drop(self.client);
        self.server.stop().await;
    }
}

/// A serialized `BasicAuth`, the Handshake payload of Arrow's auth:basic_proto convention.
fn basic_auth(user: &str, password: &str) -> Bytes {
    use prost::Message;
    let auth = polyflight::proto::BasicAuth {
        username: user.to_string(),
        password: password.to_string(),
    };
    Bytes::from(auth.encode_to_vec())
}

fn ticket(name: &str) -> Ticket {
    Ticket::new(Bytes::copy_from_slice(name.as_bytes()))
}

fn ok_stream<T: Send + 'static>(items: Vec<T>) -> FlightStream<T> {
    futures::stream::iter(items.into_iter().map(Ok)).boxed()
}

async fn get(client: &FlightClient, name: &str) -> Vec<RecordBatch> {
    client
        .do_get(ticket(name))
        .await
        .unwrap_or_else(|e| panic!("DoGet {name}: {e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading DoGet {name}: {e}"))
}

/// Uploads batches with the client's record-batch DoPut; returns the PutResults' metadata.
async fn put(client: &FlightClient, path: &str, batches: Vec<RecordBatch>) -> Vec<Bytes> {
    let descriptor = FlightDescriptor::new_path(path.split('/'));
    client
        .do_put(
            descriptor,
            futures::stream::iter(batches.into_iter().map(Ok)),
        )
        .await
        .unwrap_or_else(|e| panic!("DoPut {path}: {e}"))
        .map_ok(|r| r.app_metadata)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading DoPut {path} results: {e}"))
}

/// Encodes batches as FlightData, one message per batch however large, the descriptor on the
/// first message (how Arrow C++ writes a DoPut).
fn encode_whole(descriptor: FlightDescriptor, batches: &[RecordBatch]) -> Vec<FlightData> {
    let mut encoder = FlightDataEncoder::new(EncodeOptions {
        max_message_size: usize::MAX,
        ..EncodeOptions::default()
    });
    let schema = batches[0].schema();
    let mut messages = vec![encoder
        .encode_schema(&schema)
        .expect("schema encodes")
        .with_descriptor(descriptor)];
    for batch in batches {
        messages.extend(encoder.encode_batch(batch).expect("batch encodes"));
    }
    messages
}

fn assert_batches(actual: &[RecordBatch], expected: &[RecordBatch], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: number of batches");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a.schema(), e.schema(), "{what}: schema of batch {i}");
        if a != e {
            panic!("{what}: batch {i} differs: {}", difference(a, e));
        }
    }
}

/// Where two batches of one schema differ, briefly (a large batch is not printed whole).
fn difference(got: &RecordBatch, want: &RecordBatch) -> String {
    if got.num_rows() != want.num_rows() {
        return format!("{} rows, want {}", got.num_rows(), want.num_rows());
    }
    let names = want
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect::<Vec<_>>();
    for (c, name) in names.iter().enumerate() {
        let (g, w) = (got.column(c), want.column(c));
        if g != w {
            let row = (0..want.num_rows()).find(|&r| g.slice(r, 1) != w.slice(r, 1));
            return match row {
                Some(r) => format!(
                    "column {name:?}, first at row {r}: got {:?}, want {:?}",
                    g.slice(r, 1),
                    w.slice(r, 1)
                ),
                None => format!("column {name:?} (same values, different layout)"),
            };
        }
    }
    "no column differs".to_string()
}

/// The same rows in the same order, however they were split into batches.
fn assert_same_rows(actual: &[RecordBatch], expected: &[RecordBatch], what: &str) {
    let schema = expected[0].schema();
    let got = arrow_select::concat::concat_batches(&schema, actual).expect("same schema");
    let want = arrow_select::concat::concat_batches(&schema, expected).expect("same schema");
    assert!(
        got == want,
        "{what}: rows differ ({} rows, expected {})",
        got.num_rows(),
        want.num_rows()
    );
}

fn expect_code<T: std::fmt::Debug>(
    result: polyflight::Result<T>,
    code: FlightCode,
    what: &str,
) -> FlightError {
    match result {
        Ok(value) => panic!("{what}: expected {code}, got Ok({value:?})"),
        Err(err) => {
            assert_eq!(err.code(), code, "{what}: unexpected error {err:?}");
            err
        }
    }
}

async fn action(client: &FlightClient, kind: &str, body: &[u8]) -> polyflight::Result<Vec<Bytes>> {
    let action = Action {
        r#type: kind.to_string(),
        body: Bytes::copy_from_slice(body),
    };
    client.do_action(action).await?.try_collect().await
}

/// Five values with a null in the middle (row 2), the shape of every column of
/// [`all_types_batch`].
fn with_null<T>([a, b, c, d]: [T; 4]) -> Vec<Option<T>> {
    vec![Some(a), Some(b), None, Some(c), Some(d)]
}

/// An array of type `A` from [`with_null`] values.
fn column<A, T>(values: [T; 4]) -> arrow_array::ArrayRef
where
    A: From<Vec<Option<T>>> + arrow_array::Array + 'static,
{
    std::sync::Arc::new(A::from(with_null(values)))
}

/// A batch of the Arrow types both implementations support, five rows with a null in each
/// column, for round trips.
fn all_types_batch() -> RecordBatch {
    use arrow_array::builder::{
        FixedSizeListBuilder, Float32Builder, Int32Builder, LargeListBuilder, MapBuilder,
        StringBuilder, StringDictionaryBuilder,
    };
    use arrow_array::types::{Int32Type, Int8Type};
    use arrow_array::*;
    use arrow_schema::{DataType, Field, Fields};
    use std::sync::Arc;

    let struct_fields = Fields::from(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Utf8, true),
    ]);
    let structs = StructArray::new(
        struct_fields,
        vec![
            Arc::new(Int32Array::from(with_null([1, 2, 4, 5]))),
            Arc::new(StringArray::from(with_null(["x", "y", "z", "w"]))),
        ],
        Some(vec![true, true, false, true, true].into()),
    );
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(with_null([
        vec![Some(1), Some(2)],
        vec![],
        vec![Some(3)],
        vec![None, Some(4)],
    ]));
    let mut large_list = LargeListBuilder::new(StringBuilder::new());
    for row in with_null([vec!["a"], vec![], vec!["b", "c"], vec!["d"]]) {
        for v in row.iter().flatten() {
            large_list.values().append_value(v);
        }
        large_list.append(row.is_some());
    }
    let mut fixed_list = FixedSizeListBuilder::new(Float32Builder::new(), 2);
    for row in with_null([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [0.0, -0.5]]) {
        match row {
            Some(values) => fixed_list.values().append_slice(&values),
            None => fixed_list.values().append_nulls(2),
        }
        fixed_list.append(row.is_some());
    }
    let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    for row in with_null([
        vec![("k", Some(1))],
        vec![],
        vec![("a", Some(2)), ("b", None)],
        vec![],
    ]) {
        for (k, v) in row.iter().flatten() {
            map.keys().append_value(k);
            map.values().append_option(*v);
        }
        map.append(row.is_some()).expect("map row");
    }
    let mut dict8 = StringDictionaryBuilder::<Int8Type>::new();
    for v in with_null(["p", "q", "p", "r"]) {
        dict8.append_option(v);
    }
    let fixed_binary = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
        with_null([b"abc", b"def", b"ghi", b"jkl"]).into_iter(),
        3,
    )
    .expect("fixed-size binary column");
    let decimal = Decimal128Array::from(with_null([1234, -9999, 0, 123_456_789_123]))
        .with_precision_and_scale(12, 3)
        .expect("decimal column");
    let timestamp_tz =
        TimestampMicrosecondArray::from(with_null([0, 1, 2, 3])).with_timezone("UTC");
    // View arrays keep values over 12 bytes in data buffers, shorter ones inline.
    let long = "a value longer than twelve bytes";
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "bool",
            column::<BooleanArray, _>([true, false, true, false]),
        ),
        ("int8", column::<Int8Array, _>([i8::MIN, 0, 1, i8::MAX])),
        ("int16", column::<Int16Array, _>([i16::MIN, 0, 2, i16::MAX])),
        ("int32", column::<Int32Array, _>([i32::MIN, 0, 3, i32::MAX])),
        ("int64", column::<Int64Array, _>([i64::MIN, 0, 4, i64::MAX])),
        ("uint8", column::<UInt8Array, _>([0, 1, 2, u8::MAX])),
        ("uint16", column::<UInt16Array, _>([0, 1, 2, u16::MAX])),
        ("uint32", column::<UInt32Array, _>([0, 1, 2, u32::MAX])),
        ("uint64", column::<UInt64Array, _>([0, 1, 2, u64::MAX])),
        (
            "float32",
            column::<Float32Array, _>([0.5, -1.25, f32::INFINITY, 3.0]),
        ),
        (
            "float64",
            column::<Float64Array, _>([0.1, -2.5, f64::NEG_INFINITY, 1e300]),
        ),
        ("utf8", column::<StringArray, _>(["a", "", "ünïcode", "x"])),
        (
            "large_utf8",
            column::<LargeStringArray, _>(["b", "", "δ", "y"]),
        ),
        (
            "binary",
            column::<BinaryArray, _>([&b"\x00"[..], b"", b"\xff", b"z"]),
        ),
        (
            "large_binary",
            column::<LargeBinaryArray, _>([&b"\x01"[..], b"", b"q", b"r"]),
        ),
        ("fixed_binary", Arc::new(fixed_binary)),
        ("date32", column::<Date32Array, _>([0, 18000, -1, 20000])),
        (
            "date64",
            column::<Date64Array, _>([0, 86_400_000, -86_400_000, 1]),
        ),
        (
            "time32",
            column::<Time32MillisecondArray, _>([0, 1000, 86_399_000, 5]),
        ),
        (
            "time64",
            column::<Time64MicrosecondArray, _>([0, 1_000_000, 5, 7]),
        ),
        (
            "timestamp",
            column::<TimestampNanosecondArray, _>([0, 1, -1, i64::MAX]),
        ),
        ("timestamp_tz", Arc::new(timestamp_tz)),
        (
            "duration",
            column::<DurationMillisecondArray, _>([0, 1, -5, 1000]),
        ),
        ("decimal", Arc::new(decimal)),
        ("null", Arc::new(NullArray::new(5))),
        ("list", Arc::new(list)),
        ("large_list", Arc::new(large_list.finish())),
        ("fixed_list", Arc::new(fixed_list.finish())),
        ("struct", Arc::new(structs)),
        ("map", Arc::new(map.finish())),
        ("dict8", Arc::new(dict8.finish())),
        (
            "utf8_view",
            column::<StringViewArray, _>(["short", "", long, "x"]),
        ),
        (
            "binary_view",
            column::<BinaryViewArray, _>([&b"s"[..], b"", long.as_bytes(), b"y"]),
        ),
    ];
    RecordBatch::try_from_iter(columns).expect("all-types batch")
}

mod cases {
    use super::*;

    pub async fn pyarrow_server_do_get(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let client = &peer.client;

        assert_batches(&get(client, "many").await, &many(), "many");
        let large_batches = get(client, "large").await;
        assert_batches(&large_batches, &large(), "large");
        assert_batches(&get(client, "dict").await, &dicts(), "dict");

        let mut empty = client.do_get(ticket("empty")).await.expect("DoGet empty");
        assert!(empty.next().await.is_none(), "empty stream has batches");
        assert_eq!(
            empty.schema(),
            Some(&numbers_schema()),
            "schema of the empty stream"
        );

        let mut failing = client.do_get(ticket("error")).await.expect("DoGet error");
        let first = failing
            .next()
            .await
            .expect("a first batch")
            .expect("first batch is fine");
        assert_batches(&[first], &[numbers(0, 10)], "batch before the error");
        let err = expect_code(
            failing.next().await.expect("an error after the batch"),
            FlightCode::Unavailable,
            "midstream error",
        );
        assert!(
            err.message().contains("midstream failure"),
            "message: {err}"
        );
        assert!(
            failing.next().await.is_none(),
            "stream ends after the error"
        );

        let missing = client.do_get(ticket("no-such-ticket")).await;
        let missing = match missing {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(err) => Err(err),
        };
        expect_code(missing, FlightCode::NotFound, "DoGet of an unknown ticket");

        // Raw FlightData: the first message is the schema, and a 72 MB batch is one message.
        let response = client
            .do_get_data(ticket("large"))
            .await
            .expect("DoGet large raw");
        let messages: Vec<FlightData> = response.body.try_collect().await.expect("raw large");
        assert_eq!(messages.len(), 2, "schema + one batch message");
        assert!(
            messages[1].data_body.len() >= 64 * 1024 * 1024,
            "large body {}",
            messages[1].data_body.len()
        );
        peer.stop().await;
    }

    pub async fn pyarrow_server_do_put(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let client = &peer.client;

        // Record-batch DoPut: one PutResult per batch, "<batches>:<rows>".
        let batches: Vec<_> = (0..20).map(|i| numbers(i * 50, 50)).collect();
        let acks = put(client, "interop/numbers", batches.clone()).await;
        let expected: Vec<Bytes> = (1..=20)
            .map(|i| Bytes::from(format!("{i}:{}", i * 50)))
            .collect();
        assert_eq!(acks, expected, "PutResults");
        assert_batches(
            &get(client, "interop/numbers").await,
            &batches,
            "numbers round trip",
        );

        // Many batches; dictionaries: the same one, a replaced one, an extended one (a delta).
        put(client, "interop/many", many()).await;
        assert_batches(
            &get(client, "interop/many").await,
            &many(),
            "many round trip",
        );
        put(client, "interop/dict", dicts()).await;
        assert_batches(
            &get(client, "interop/dict").await,
            &dicts(),
            "dict round trip",
        );
        let changing = vec![
            dict_batch_with(0, &["red", "green", "blue"]),
            dict_batch_with(1, &["cyan", "magenta"]),
            dict_batch_with(2, &["cyan", "magenta", "yellow", "black"]),
        ];
        put(client, "interop/dict-changes", changing.clone()).await;
        assert_batches(
            &get(client, "interop/dict-changes").await,
            &changing,
            "replaced and extended dictionaries round trip",
        );
        let acks = put(client, "interop/zero-rows", vec![numbers(0, 0)]).await;
        assert_eq!(acks, vec![Bytes::from_static(b"1:0")], "zero-row batch");
        // A schema and no batch at all.
        let schema_only = FlightDataEncoderBuilder::new()
            .with_schema(numbers_schema())
            .with_flight_descriptor(FlightDescriptor::new_path(["interop", "empty"]))
            .build(futures::stream::empty());
        let acks: Vec<_> = client
            .do_put_data(schema_only.boxed())
            .await
            .expect("DoPut of a schema only")
            .body
            .try_collect()
            .await
            .expect("DoPut of a schema only: results");
        assert!(acks.is_empty(), "PutResults of an empty upload: {acks:?}");
        let info = client
            .get_flight_info(FlightDescriptor::new_path(["interop", "empty"]))
            .await
            .expect("info of the empty upload");
        assert_eq!(info.total_records, 0);
        assert_eq!(info.try_schema().expect("schema"), *numbers_schema());
        let mut empty = client
            .do_get(ticket("interop/empty"))
            .await
            .expect("DoGet empty upload");
        assert!(empty.next().await.is_none(), "batches in an empty upload");
        assert_eq!(empty.schema(), Some(&numbers_schema()));

        // Every type both sides support, and a sliced batch (offsets into shared buffers).
        let types = all_types_batch();
        let sliced = types.slice(1, 3);
        put(client, "interop/types", vec![types.clone(), sliced.clone()]).await;
        assert_batches(
            &get(client, "interop/types").await,
            &[types, sliced],
            "all types round trip",
        );

        // A batch over 64 MiB as one message, the way Arrow C++ sends it …
        let descriptor = FlightDescriptor::new_path(["interop", "large"]);
        let messages = encode_whole(descriptor, &large());
        assert!(messages[1].data_body.len() >= 64 * 1024 * 1024);
        let acks: Vec<_> = client
            .do_put_data(ok_stream(messages))
            .await
            .expect("DoPut large")
            .body
            .try_collect()
            .await
            .expect("DoPut large results");
        assert_eq!(acks.len(), 1, "one PutResult for the one large batch");
        assert_batches(
            &get(client, "interop/large").await,
            &large(),
            "large round trip",
        );
        // … and as our record-batch DoPut sends it by default.
        put(client, "interop/large-split", large()).await;
        assert_same_rows(
            &get(client, "interop/large-split").await,
            &large(),
            "split large round trip",
        );

        // Lock step: send a batch, wait for its PutResult, send the next.
        let (tx, rx) = tokio::sync::mpsc::channel::<polyflight::Result<RecordBatch>>(1);
        tx.send(Ok(numbers(0, 3)))
            .await
            .expect("first batch queued");
        let mut results = client
            .do_put(
                FlightDescriptor::new_path(["interop", "lockstep"]),
                tokio_stream::wrappers::ReceiverStream::new(rx),
            )
            .await
            .expect("DoPut lockstep");
        for i in 1..=5 {
            let ack = tokio::time::timeout(Duration::from_secs(20), results.next())
                .await
                .unwrap_or_else(|_| panic!("no PutResult for batch {i} within 20 s"))
                .expect("a PutResult")
                .expect("PutResult ok");
            assert_eq!(ack.app_metadata, Bytes::from(format!("{i}:{}", i * 3)));
            if i < 5 {
                tx.send(Ok(numbers(i * 3, 3)))
                    .await
                    .expect("next batch queued");
            }
        }
        drop(tx);
        assert!(
            results.next().await.is_none(),
            "PutResults after the upload ended"
        );

        // A CMD descriptor is a key too.
        let acks: Vec<_> = client
            .do_put(
                FlightDescriptor::new_cmd("by-command"),
                futures::stream::iter([Ok(numbers(0, 4))]),
            )
            .await
            .expect("DoPut by command")
            .try_collect()
            .await
            .expect("DoPut by command results");
        assert_eq!(acks.len(), 1);
        assert_batches(
            &get(client, "by-command").await,
            &[numbers(0, 4)],
            "CMD upload",
        );
        peer.stop().await;
    }

    pub async fn pyarrow_server_flight_info(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let client = &peer.client;

        for name in GENERATED {
            let descriptor = FlightDescriptor::new_cmd(Bytes::copy_from_slice(name.as_bytes()));
            let info = client
                .get_flight_info(descriptor.clone())
                .await
                .expect("GetFlightInfo");
            let (schema, batches) = generated(name).expect("generated dataset");
            assert_eq!(
                info.try_schema().expect("schema decodes"),
                *schema,
                "{name}: schema"
            );
            assert_eq!(
                info.flight_descriptor.as_ref(),
                Some(&descriptor),
                "{name}: descriptor"
            );
            assert_eq!(
                info.total_records,
                generated_rows(name).unwrap_or(-1),
                "{name}: total_records"
            );
            assert!(info.ordered, "{name}: ordered");
            assert_eq!(
                info.app_metadata.as_ref(),
                INFO_APP_METADATA,
                "{name}: app_metadata"
            );
            assert_eq!(info.endpoint.len(), 1, "{name}: endpoints");
            let endpoint = &info.endpoint[0];
            assert_eq!(
                endpoint.ticket.as_ref().map(|t| t.ticket.as_ref()),
                Some(name.as_bytes())
            );
            assert!(
                endpoint.location.is_empty(),
                "{name}: locations {:?}",
                endpoint.location
            );
            assert_eq!(
                endpoint.app_metadata.as_ref(),
                ENDPOINT_APP_METADATA,
                "{name}: endpoint app_metadata"
            );
            let schema_result = client.get_schema(descriptor).await.expect("GetSchema");
            assert_eq!(*schema_result, *schema, "{name}: GetSchema");
            // Reading the flight through its endpoints (no location: this connection).
            let read: Vec<_> = client
                .read_flight(&info)
                .await
                .expect("read_flight")
                .try_collect()
                .await
                .expect("read_flight batches");
            assert_batches(&read, &batches, name);
        }

        put(client, "listed/b", vec![numbers(0, 2)]).await;
        put(client, "listed/a", vec![numbers(0, 3)]).await;
        put(client, "other", vec![numbers(0, 1)]).await;
        let listed: Vec<FlightInfo> = client
            .list_flights("listed/")
            .await
            .expect("ListFlights")
            .try_collect()
            .await
            .expect("ListFlights results");
        let paths: Vec<_> = listed
            .iter()
            .map(|i| i.flight_descriptor.clone().map(|d| d.path))
            .collect();
        assert_eq!(
            paths,
            vec![
                Some(vec!["listed".to_string(), "a".to_string()]),
                Some(vec!["listed".to_string(), "b".to_string()])
            ]
        );
        assert_eq!(
            listed.iter().map(|i| i.total_records).collect::<Vec<_>>(),
            vec![3, 2]
        );
        let all: Vec<FlightInfo> = client
            .list_flights(Bytes::new())
            .await
            .expect("ListFlights all")
            .try_collect()
            .await
            .expect("all");
        assert_eq!(all.len(), 3);

        let descriptor = FlightDescriptor::new_path(["listed", "a"]);
        let info = client
            .get_flight_info(descriptor.clone())
            .await
            .expect("info of an upload");
        assert_eq!(info.try_schema().expect("schema"), *numbers_schema());
        assert_eq!(
            info.endpoint[0].ticket.as_ref().map(|t| t.ticket.as_ref()),
            Some(&b"listed/a"[..])
        );

        expect_code(
            client
                .get_flight_info(FlightDescriptor::new_path(["no", "such"]))
                .await,
            FlightCode::NotFound,
            "GetFlightInfo of an unknown path",
        );
        expect_code(
            client.get_schema(FlightDescriptor::new_cmd("nope")).await,
            FlightCode::NotFound,
            "GetSchema of an unknown command",
        );
        // pyarrow servers have no PollFlightInfo.
        expect_code(
            client
                .poll_flight_info(FlightDescriptor::new_cmd("many"))
                .await,
            FlightCode::Unimplemented,
            "PollFlightInfo",
        );
        peer.stop().await;
    }

    /// What came back from an exchange: (batch if any, app_metadata) per message.
    async fn exchanged(stream: &mut FlightRecordBatchStream) -> Vec<(Option<RecordBatch>, Bytes)> {
        let mut out = Vec::new();
        while let Some(message) = stream.next_message().await {
            let message = message.expect("exchange message");
            match message.payload {
                DecodedPayload::RecordBatch(batch) => out.push((Some(batch), message.app_metadata)),
                DecodedPayload::None => out.push((None, message.app_metadata)),
                DecodedPayload::Schema(_) | DecodedPayload::DictionaryBatch => {
                    assert!(
                        message.app_metadata.is_empty(),
                        "metadata on a schema/dictionary message"
                    )
                }
            }
        }
        out
    }

    fn assert_exchanged(
        got: &[(Option<RecordBatch>, Bytes)],
        want: &[(Option<RecordBatch>, Bytes)],
        what: &str,
    ) {
        let outline = |messages: &[(Option<RecordBatch>, Bytes)]| -> Vec<String> {
            messages
                .iter()
                .map(|(b, m)| {
                    format!(
                        "{} rows={:?} metadata={m:?}",
                        if b.is_some() { "batch" } else { "metadata" },
                        b.as_ref().map(|b| b.num_rows())
                    )
                })
                .collect()
        };
        assert_eq!(
            got.len(),
            want.len(),
            "{what}: number of messages\n got: {:#?}\nwant: {:#?}",
            outline(got),
            outline(want)
        );
        for (i, ((gb, gm), (wb, wm))) in got.iter().zip(want).enumerate() {
            assert_eq!(gm, wm, "{what}: metadata of message {i}");
            match (gb, wb) {
                (Some(g), Some(w)) => assert!(g == w, "{what}: batch of message {i} differs"),
                (None, None) => {}
                _ => panic!(
                    "{what}: message {i}: got batch {:?}, want batch {:?}",
                    gb.is_some(),
                    wb.is_some()
                ),
            }
        }
    }

    /// Sends `script` on a DoExchange `echo` through our encoder; returns what came back.
    async fn exchange_script(
        client: &FlightClient,
        script: &[(Option<RecordBatch>, Bytes)],
    ) -> Vec<(Option<RecordBatch>, Bytes)> {
        let input: Vec<_> = script
            .iter()
            .map(|(batch, meta)| {
                Ok(match (batch, meta.is_empty()) {
                    (Some(b), true) => EncoderInput::Batch(b.clone()),
                    (Some(b), false) => EncoderInput::BatchWithMetadata(b.clone(), meta.clone()),
                    (None, _) => EncoderInput::Metadata(meta.clone()),
                })
            })
            .collect();
        let data = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(FlightDescriptor::new_cmd("echo"))
            .build_messages(futures::stream::iter(input));
        let response = client
            .do_exchange_data(data.boxed())
            .await
            .expect("DoExchange");
        let mut stream = FlightRecordBatchStream::new(response.body);
        exchanged(&mut stream).await
    }

    /// An exchange whose first message is metadata only, built by our encoder. Arrow C++
    /// servers take the descriptor from a first message without an IPC header and discard the
    /// rest of it, so the metadata must not share that message.
    pub async fn pyarrow_server_do_exchange_leading_metadata(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let script = vec![
            (None, Bytes::from_static(b"first: metadata only")),
            (Some(numbers(0, 10)), Bytes::from_static(b"with batch")),
            (None, Bytes::from_static(b"last")),
        ];
        assert_exchanged(
            &exchange_script(&peer.client, &script).await,
            &script,
            "leading metadata",
        );
        peer.stop().await;
    }

    pub async fn pyarrow_server_do_exchange(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let client = &peer.client;
        let echo = FlightDescriptor::new_cmd("echo");

        // Metadata-only messages between batches with and without metadata.
        let script = vec![
            (Some(numbers(0, 10)), Bytes::from_static(b"with batch")),
            (Some(numbers(10, 5)), Bytes::new()),
            (None, Bytes::from_static(b"between")),
            (Some(numbers(15, 0)), Bytes::from_static(b"zero rows")),
            (Some(numbers(15, 7)), Bytes::new()),
            (None, Bytes::from_static(b"last")),
        ];
        assert_exchanged(&exchange_script(client, &script).await, &script, "echo");

        // Opening with a descriptor-only message, as Arrow C++ clients do.
        let mut messages = vec![FlightData::descriptor_only(echo.clone())];
        messages.extend((0..50).map(|i| FlightData::metadata_only(Bytes::from(format!("m{i}")))));
        let response = client
            .do_exchange_data(ok_stream(messages))
            .await
            .expect("DoExchange metadata");
        let mut stream = FlightRecordBatchStream::new(response.body);
        let want: Vec<_> = (0..50)
            .map(|i| (None, Bytes::from(format!("m{i}"))))
            .collect();
        assert_exchanged(&exchanged(&mut stream).await, &want, "metadata only");

        // Nothing but the descriptor: nothing comes back.
        let response = client
            .do_exchange_data(ok_stream(vec![FlightData::descriptor_only(echo.clone())]))
            .await
            .expect("DoExchange descriptor only");
        let back: Vec<_> = response
            .body
            .try_collect()
            .await
            .expect("descriptor-only exchange");
        assert!(
            back.is_empty(),
            "answer to a descriptor-only exchange: {back:?}"
        );

        // Large (one >= 64 MiB message each way), many and dictionary batches.
        let response = client
            .do_exchange_data(ok_stream(encode_whole(echo.clone(), &large())))
            .await
            .expect("DoExchange large");
        let back: Vec<_> = FlightRecordBatchStream::new(response.body)
            .try_collect()
            .await
            .expect("large echo");
        assert_batches(&back, &large(), "large echo");
        let back: Vec<_> = client
            .do_exchange(
                echo.clone(),
                futures::stream::iter(many().into_iter().map(Ok)),
            )
            .await
            .expect("DoExchange many")
            .try_collect()
            .await
            .expect("many echo");
        assert_batches(&back, &many(), "many echo");
        let back: Vec<_> = client
            .do_exchange(
                echo.clone(),
                futures::stream::iter(dicts().into_iter().map(Ok)),
            )
            .await
            .expect("DoExchange dict")
            .try_collect()
            .await
            .expect("dict echo");
        assert_batches(&back, &dicts(), "dict echo");

        // An unknown command is the server's INVALID_ARGUMENT.
        let result = match client
            .do_exchange(
                FlightDescriptor::new_cmd("no-such-command"),
                futures::stream::iter([Ok(numbers(0, 1))]),
            )
            .await
        {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(err) => Err(err),
        };
        expect_code(
            result,
            FlightCode::InvalidArgument,
            "unknown exchange command",
        );
        peer.stop().await;
    }

    pub async fn pyarrow_server_actions(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let client = &peer.client;

        assert_eq!(
            action(client, "echo", b"\x00hello\xff")
                .await
                .expect("echo"),
            vec![Bytes::from_static(b"\x00hello\xff")]
        );
        assert_eq!(
            action(client, "echo", b"").await.expect("empty echo"),
            vec![Bytes::new()]
        );
        let stream: Vec<Bytes> = (0..5).map(|i| Bytes::from(i.to_string())).collect();
        assert_eq!(
            action(client, "stream", b"5").await.expect("stream"),
            stream
        );
        assert!(action(client, "stream", b"0")
            .await
            .expect("empty stream")
            .is_empty());
        expect_code(
            action(client, "no-such-action", b"").await,
            FlightCode::Unimplemented,
            "unknown action",
        );

        let listed = client.list_actions().await.expect("ListActions");
        for (kind, description) in ACTION_TYPES {
            let found = listed.iter().find(|a| a.r#type == kind);
            assert_eq!(
                found.map(|a| a.description.as_str()),
                Some(description),
                "action {kind}"
            );
        }
        for kind in [
            "drop",
            "CancelFlightInfo",
            "RenewFlightEndpoint",
            "CloseSession",
        ] {
            assert!(listed.iter().any(|a| a.r#type == kind), "{kind} not listed");
        }

        // The standard actions through the typed helpers.
        let info = FlightInfo::new()
            .with_schema(&numbers_schema())
            .with_descriptor(FlightDescriptor::new_cmd("many"))
            .with_endpoint(FlightEndpoint::new(ticket("many")));
        let cancel = client
            .cancel_flight_info(info)
            .await
            .expect("CancelFlightInfo");
        assert_eq!(cancel.status, CancelStatus::NotCancellable as i32);
        let endpoint = FlightEndpoint::new(ticket("ticket-1"))
            .with_app_metadata(Bytes::from_static(b"renew-me"));
        let renewed = client
            .renew_flight_endpoint(endpoint.clone())
            .await
            .expect("RenewFlightEndpoint");
        assert_eq!(renewed.ticket, endpoint.ticket);
        assert_eq!(renewed.app_metadata, endpoint.app_metadata);
        let expires = renewed.expiration_time.expect("an expiration time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        assert!(
            expires.seconds > now,
            "renewed endpoint expires at {expires:?}"
        );
        let closed = client.close_session().await.expect("CloseSession");
        assert_eq!(closed.status, close_session_result::Status::Closed as i32);

        put(client, "to-drop", vec![numbers(0, 1)]).await;
        assert!(action(client, "drop", b"to-drop")
            .await
            .expect("drop")
            .is_empty());
        expect_code(
            action(client, "drop", b"to-drop").await,
            FlightCode::NotFound,
            "second drop",
        );
        peer.stop().await;
    }

    /// The codes a pyarrow server can fail with, and whether its error carries extra info
    /// (only pyarrow's FlightError classes do). pyarrow has no exception for ALREADY_EXISTS.
    const PYARROW_ERRORS: [(FlightCode, bool); 10] = [
        (FlightCode::Unknown, true),
        (FlightCode::Internal, true),
        (FlightCode::InvalidArgument, false),
        (FlightCode::TimedOut, true),
        (FlightCode::NotFound, false),
        (FlightCode::Cancelled, true),
        (FlightCode::Unauthenticated, true),
        (FlightCode::Unauthorized, true),
        (FlightCode::Unimplemented, false),
        (FlightCode::Unavailable, true),
    ];

    /// Every error of [`PYARROW_ERRORS`] twice: from DoAction `error` (a trailers-only response)
    /// and from DoGet `error:<CODE>` (trailers after the schema). `(code, has_detail, how, result)`.
    async fn pyarrow_errors(
        client: &FlightClient,
    ) -> Vec<(FlightCode, bool, &'static str, polyflight::Result<()>)> {
        let mut out = Vec::new();
        for (code, has_detail) in PYARROW_ERRORS {
            let immediate = action(client, "error", code.name().as_bytes())
                .await
                .map(|_| ());
            out.push((code, has_detail, "DoAction error", immediate));
            let stream = match client
                .do_get(ticket(&format!("error:{}", code.name())))
                .await
            {
                Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
                Err(err) => Err(err),
            };
            out.push((code, has_detail, "DoGet error:<CODE>", stream));
        }
        out
    }

    pub async fn pyarrow_server_errors(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let client = &peer.client;
        let mut problems = Vec::new();
        for (code, _, how, result) in pyarrow_errors(client).await {
            match result {
                Ok(()) => problems.push(format!("{how} {code}: succeeded")),
                Err(err) => {
                    if err.code() != code {
                        problems.push(format!(
                            "{how} {code}: got code {} ({:?})",
                            err.code(),
                            err.message()
                        ));
                    }
                    let wanted = format!("requested {}", code.name());
                    if !err.message().contains(&wanted) {
                        problems.push(format!(
                            "{how} {code}: message {:?} lacks {wanted:?}",
                            err.message()
                        ));
                    }
                }
            }
        }
        assert!(
            problems.is_empty(),
            "errors from pyarrow:\n{}",
            problems.join("\n")
        );
        // The connection is still good after all those errors.
        assert_eq!(
            action(client, "echo", b"ok").await.expect("echo"),
            vec![Bytes::from_static(b"ok")]
        );
        peer.stop().await;
    }

    /// Arrow C++ sends a Flight error's extra info in `grpc-status-details-bin` (raw bytes) and a
    /// readable detail (the code's name, or a Python traceback) in `x-arrow-status-detail-bin`.
    pub async fn pyarrow_server_error_extra_info(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let mut problems = Vec::new();
        for (code, has_detail, how, result) in pyarrow_errors(&peer.client).await {
            let detail = format!("detail:{}", code.name());
            if let Err(err) = result {
                if has_detail && err.extra_info().as_ref() != detail.as_bytes() {
                    problems.push(format!(
                        "{how} {code}: extra_info {:?}, want {detail:?}",
                        err.extra_info()
                    ));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "extra info of errors from pyarrow:\n{}",
            problems.join("\n")
        );
        peer.stop().await;
    }

    pub async fn pyarrow_server_headers(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let with_headers = peer.client.with_call_options(
            CallOptions::new()
                .header("x-echo", "echo-value")
                .header("x-custom", "one")
                .header("x-custom", "two")
                .header("x-data-bin", Bytes::from_static(b"\x00\x01\xfe\xff")),
        );
        assert_eq!(
            action(&with_headers, "header", b"x-custom")
                .await
                .expect("x-custom"),
            vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")]
        );
        assert_eq!(
            action(&with_headers, "header", b"x-data-bin")
                .await
                .expect("x-data-bin"),
            vec![Bytes::from_static(b"\x00\x01\xfe\xff")]
        );
        let response = with_headers
            .do_get_data(ticket("empty"))
            .await
            .expect("DoGet with headers");
        assert_eq!(
            response.headers.get_str("x-echo"),
            Some("echo-value"),
            "headers: {:?}",
            response.headers
        );
        let _: Vec<_> = response.body.try_collect().await.expect("DoGet body");
        let response = peer
            .client
            .do_get_data(ticket("empty"))
            .await
            .expect("DoGet");
        assert_eq!(
            response.headers.get("x-echo"),
            None,
            "x-echo sent back unasked"
        );
        let _: Vec<_> = response.body.try_collect().await.expect("DoGet body");
        peer.stop().await;
    }

    pub async fn pyarrow_server_auth(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let client = &peer.client;
        assert_eq!(
            action(client, "whoami", b"")
                .await
                .expect("anonymous whoami"),
            vec![Bytes::new()]
        );

        // Handshake authentication: a BasicAuth in, a token out, the token as `auth-token-bin`.
        let response = client
            .handshake(basic_auth(AUTH_USER, AUTH_PASSWORD))
            .await
            .expect("Handshake");
        assert_eq!(response.body.len(), 1, "one handshake response");
        let token = response.body[0].clone();
        assert!(!token.is_empty(), "empty token");
        let authed = client.with_call_options(CallOptions::new().header("auth-token-bin", token));
        assert_eq!(
            action(&authed, "whoami", b"").await.expect("whoami"),
            vec![Bytes::from(AUTH_USER)]
        );
        let bad = client.with_call_options(
            CallOptions::new().header("auth-token-bin", Bytes::from_static(b"forged")),
        );
        expect_code(
            action(&bad, "whoami", b"").await,
            FlightCode::Unauthenticated,
            "forged token",
        );
        expect_code(
            client.handshake(basic_auth(AUTH_USER, "wrong")).await,
            FlightCode::Unauthenticated,
            "wrong password",
        );

        // Basic → Bearer: credentials in a header on Handshake, a bearer token back.
        for header in [
            basic_header(AUTH_USER, AUTH_PASSWORD),
            basic_header(AUTH_USER, AUTH_PASSWORD)
                .trim_end_matches('=')
                .to_string(),
        ] {
            let basic = client
                .with_call_options(CallOptions::new().header("authorization", header.clone()));
            let response = basic
                .handshake(Bytes::new())
                .await
                .unwrap_or_else(|e| panic!("basic handshake {header}: {e}"));
            let bearer = response
                .headers
                .get_str("authorization")
                .unwrap_or_default()
                .to_owned();
            assert!(
                bearer.starts_with("Bearer ") && bearer.len() > 7,
                "headers {:?}",
                response.headers
            );
            let authed =
                client.with_call_options(CallOptions::new().header("authorization", bearer));
            assert_eq!(
                action(&authed, "whoami", b"").await.expect("whoami"),
                vec![Bytes::from(AUTH_USER)]
            );
        }
        let wrong = client.with_call_options(
            CallOptions::new().header("authorization", basic_header(AUTH_USER, "nope")),
        );
        expect_code(
            wrong.handshake(Bytes::new()).await,
            FlightCode::Unauthenticated,
            "wrong basic password",
        );
        let forged =
            client.with_call_options(CallOptions::new().header("authorization", "Bearer forged"));
        expect_code(
            action(&forged, "whoami", b"").await,
            FlightCode::Unauthenticated,
            "forged bearer",
        );
        peer.stop().await;
    }

    pub async fn pyarrow_server_timeouts(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let client = &peer.client;

        let quick =
            client.with_call_options(CallOptions::new().timeout(Duration::from_millis(300)));
        let start = Instant::now();
        expect_code(
            action(&quick, "sleep", b"10000").await,
            FlightCode::TimedOut,
            "sleep with a timeout",
        );
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "timed out after {:?}",
            start.elapsed()
        );

        // A stream that outlives its timeout ends with TIMED_OUT after the batches that came.
        let limited =
            client.with_call_options(CallOptions::new().timeout(Duration::from_millis(500)));
        let start = Instant::now();
        let mut stream = limited.do_get(ticket("slow")).await.expect("DoGet slow");
        let mut received = 0;
        let outcome = loop {
            match stream.next().await {
                Some(Ok(batch)) => {
                    assert_batches(&[batch], &[numbers(received, 1)], "slow batch");
                    received += 1;
                }
                Some(Err(err)) => break Err(err),
                None => break Ok(()),
            }
        };
        expect_code(outcome, FlightCode::TimedOut, "slow DoGet with a timeout");
        assert!(
            (1..SLOW_BATCHES).contains(&received),
            "{received} batches before the timeout"
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "timed out after {:?}",
            start.elapsed()
        );

        // Cancellation by token.
        let token = tokio_util::sync::CancellationToken::new();
        let cancellable = client.with_call_options(CallOptions::new().cancel_token(token.clone()));
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel();
        });
        expect_code(
            action(&cancellable, "sleep", b"10000").await,
            FlightCode::Cancelled,
            "cancelled sleep",
        );
        canceller.await.expect("canceller");

        // The server is still responsive, and a generous timeout does not fire.
        let patient = client.with_call_options(CallOptions::new().timeout(Duration::from_secs(30)));
        assert_eq!(
            action(&patient, "sleep", b"50").await.expect("short sleep"),
            vec![Bytes::from_static(b"slept")]
        );
        peer.stop().await;
    }

    /// pyarrow's client against our server: every check of `flight_client.py` must pass.
    pub async fn pyarrow_client_against_our_server(setup: &Setup) {
        let Some(python) = peer::python() else { return };
        let server = setup.serve(interop_server()).await;
        let uri = server.location().uri().to_string();
        let skip: [&str; 0] = [];
        let report = peer::run_python_client(&python, setup, &uri, &skip, &[]).await;
        server
            .shutdown()
            .await
            .expect("our server shuts down cleanly");
        let missing = report.missing(&skip);
        assert!(
            report.success && report.failures.is_empty() && missing.is_empty(),
            "flight_client.py against our server at {uri}:\n{}\nchecks without `ok`: {missing:?}\n\
             --- stdout ---\n{}\n--- stderr ---\n{}",
            report.failures.join("\n"),
            report.stdout,
            report.stderr
        );
    }

    /// The two Python peers against each other: proof that the scripts themselves are right.
    pub async fn pyarrow_client_against_pyarrow_server(setup: &Setup) {
        let Some(python) = peer::python() else { return };
        let server = PythonServer::start(&python, setup).await;
        // pyarrow cannot raise ALREADY_EXISTS (see flight_server.py).
        let skip = ["error_already_exists"];
        let report = peer::run_python_client(&python, setup, &server.uri, &skip, &[]).await;
        let missing = report.missing(&skip);
        assert!(
            report.success && report.failures.is_empty() && missing.is_empty(),
            "flight_client.py against flight_server.py at {}:\n{}\nchecks without `ok`: \
             {missing:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            server.uri,
            report.failures.join("\n"),
            report.stdout,
            report.stderr
        );
        server.stop().await;
    }
}

/// Cases that only make sense over one transport (see the `interop!` rows that list them).
mod transport_cases {
    use super::*;
    use peer::{run_python_snippet, SnippetRun};
    use polyflight::proto::{ActionType, Result as ActionResult};
    use polyflight::transports::LoopbackPki;
    use polyflight::{CallContext, FlightService, Scheme};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// Answers any action with how the call's [`CallContext`] sees its peer, one `key=value`
    /// per result: `scheme`, `tls` (certificate subject and alternative names) and
    /// `credentials` (uid, gid, pid), `none` where the transport has nothing to say.
    struct PeerService;

    #[polyflight::async_trait]
    impl FlightService for PeerService {
        async fn do_action(
            &self,
            ctx: CallContext,
            _action: Action,
        ) -> polyflight::Result<FlightStream<ActionResult>> {
            let peer = ctx.peer();
            let scheme = peer
                .scheme
                .map(|s| s.to_string())
                .unwrap_or_else(|| "none".into());
            let tls = peer
                .tls
                .as_ref()
                .map(|t| format!("{} [{}]", t.subject, t.subject_alt_names.join(", ")))
                .unwrap_or_else(|| "none".into());
            let credentials = peer
                .credentials
                .map(|c| {
                    let pid = c.pid.map_or_else(|| "none".into(), |p| p.to_string());
                    format!("{} {} {pid}", c.uid, c.gid)
                })
                .unwrap_or_else(|| "none".into());
            let lines = [
                format!("scheme={scheme}"),
                format!("tls={tls}"),
                format!("credentials={credentials}"),
            ];
            Ok(ok_stream(
                lines
                    .into_iter()
                    .map(|line| ActionResult { body: line.into() })
                    .collect(),
            ))
        }

        async fn list_actions(
            &self,
            _ctx: CallContext,
        ) -> polyflight::Result<FlightStream<ActionType>> {
            Ok(ok_stream(Vec::new()))
        }
    }

    /// Calls any action on the server at the snippet's URI and prints each result.
    const PRINT_PEER: &str = "\
client = connect()
options = flight.FlightCallOptions(timeout=60)
for result in client.do_action(flight.Action('peer', b''), options=options):
    print(result.body.to_pybytes().decode())
";

    /// Lists the server's actions; prints `refused <exception type>: <message>` if that fails.
    const TRY_LIST_ACTIONS: &str = "\
client = connect()
try:
    client.list_actions(options=flight.FlightCallOptions(timeout=30))
    print('accepted')
except Exception as err:
    print(f'refused {type(err).__name__}: {err}'.replace('\\n', ' '))
";

    fn expect_snippet_success(run: &SnippetRun, what: &str) {
        assert!(
            run.success,
            "{what}: the Python snippet failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            run.lines.join("\n"),
            run.stderr
        );
    }

    /// Mutual TLS: a pyarrow client's certificate, as our service sees it in the CallContext.
    pub async fn client_certificate_in_call_context(setup: &Setup) {
        let Some(python) = peer::python() else { return };
        let server = setup.serve(polyflight::server(PeerService)).await;
        let uri = server.location().uri().to_string();
        let run = run_python_snippet(&python, PRINT_PEER, &setup.python_client_args(&uri)).await;
        server.shutdown().await.expect("our server shuts down");
        expect_snippet_success(&run, "peer over mutual TLS");
        assert_eq!(
            run.lines,
            vec![
                format!("scheme={}", Scheme::GrpcTls),
                format!(
                    "tls=CN={} [DNS:client.localhost]",
                    polyflight_grpc::tls::LOOPBACK_CLIENT_NAME
                ),
                "credentials=none".to_string(),
            ]
        );
    }

    /// Mutual TLS: a pyarrow client without a certificate cannot call our server.
    pub async fn pyarrow_client_without_certificate_refused(setup: &Setup) {
        let Some(python) = peer::python() else { return };
        let server = setup.serve(interop_server()).await;
        let uri = server.location().uri().to_string();
        let no_cert = vec![uri.clone(), "--tls-root".into(), peer::arg(&setup.pki().ca)];
        let run = run_python_snippet(&python, TRY_LIST_ACTIONS, &no_cert).await;
        // With a certificate the same call goes through, so the refusal is about the certificate.
        let with_cert =
            run_python_snippet(&python, TRY_LIST_ACTIONS, &setup.python_client_args(&uri)).await;
        server.shutdown().await.expect("our server shuts down");
        expect_snippet_success(&run, "pyarrow client without a certificate");
        expect_snippet_success(&with_cert, "pyarrow client with a certificate");
        assert_eq!(with_cert.lines, vec!["accepted"], "with a certificate");
        let outcome = run.lines.join("\n");
        assert!(
            outcome.starts_with("refused FlightUnavailableError"),
            "a pyarrow client without a certificate: {outcome}"
        );
    }

    /// Mutual TLS: our client without a certificate is refused by a pyarrow server, at connect
    /// time, with an error that says why.
    pub async fn pyarrow_server_refuses_client_without_certificate(setup: &Setup) {
        let Some(peer) = Peer::start(setup).await else {
            return;
        };
        let options = peer::tls_connect_options(setup.pki().client_config(false));
        let err = polyflight::connect_with_options(&peer.server.uri, options)
            .await
            .expect_err("connecting without a client certificate");
        assert_eq!(err.code(), FlightCode::Unauthenticated, "{err}");
        assert!(
            err.message().contains("requires a client certificate"),
            "{err}"
        );
        // The server is fine, and lets the client with a certificate in.
        assert_eq!(
            action(&peer.client, "echo", b"still here")
                .await
                .expect("echo with a certificate"),
            vec![Bytes::from_static(b"still here")]
        );
        peer.stop().await;
    }

    /// TLS: a server certificate from a CA the client does not trust is refused, by our client
    /// (which says why) and by pyarrow's.
    pub async fn untrusted_server_certificate_refused(setup: &Setup) {
        let Some(python) = peer::python() else { return };
        let stranger = LoopbackPki::generate().expect("minting certificates");
        // Our client against pyarrow's server.
        let pyarrow = PythonServer::start(&python, setup).await;
        let options = peer::tls_connect_options(
            stranger
                .client_config(false)
                .expect("client TLS configuration"),
        );
        let err = polyflight::connect_with_options(&pyarrow.uri, options)
            .await
            .expect_err("untrusted server certificate");
        assert_eq!(err.code(), FlightCode::Unavailable, "{err}");
        assert!(
            err.message().contains("not issued by a trusted CA"),
            "{err}"
        );
        pyarrow.stop().await;

        // pyarrow's client against our server.
        let server = setup.serve(interop_server()).await;
        let uri = server.location().uri().to_string();
        let stranger_ca = setup.path("stranger-ca.pem");
        std::fs::write(&stranger_ca, &stranger.ca_pem).expect("writing the stranger's CA");
        let run = run_python_snippet(
            &python,
            TRY_LIST_ACTIONS,
            &[uri, "--tls-root".into(), peer::arg(&stranger_ca)],
        )
        .await;
        server.shutdown().await.expect("our server shuts down");
        expect_snippet_success(&run, "pyarrow client trusting another CA");
        let outcome = run.lines.join("\n");
        assert!(
            outcome.starts_with("refused FlightUnavailableError"),
            "a pyarrow client trusting another CA: {outcome}"
        );
    }

    /// Unix sockets: a pyarrow client's process credentials (this user, its own pid), as our
    /// service sees them in the CallContext; the socket is private to the user.
    pub async fn client_credentials_in_call_context(setup: &Setup) {
        let Some(python) = peer::python() else { return };
        let server = setup.serve(polyflight::server(PeerService)).await;
        let socket = server
            .location()
            .unix_path()
            .expect("a socket path")
            .to_path_buf();
        let mode = std::fs::metadata(&socket)
            .expect("the socket exists")
            .permissions()
            .mode();
        let uri = server.location().uri().to_string();
        let run = run_python_snippet(&python, PRINT_PEER, &setup.python_client_args(&uri)).await;
        server.shutdown().await.expect("our server shuts down");
        expect_snippet_success(&run, "peer over a Unix socket");
        assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
        // The Python process runs as this process's user, in the scratch directory's group.
        let owner = std::fs::metadata(setup.scratch_dir()).expect("scratch directory");
        assert_eq!(
            run.lines,
            vec![
                format!("scheme={}", Scheme::GrpcUnix),
                "tls=none".to_string(),
                format!("credentials={} {} {}", owner.uid(), owner.gid(), run.pid),
            ]
        );
    }

    /// Unix sockets: a stock pyarrow client, `flight.FlightClient(uri)` with no options at all
    /// (it sends the socket path as `:authority`), reads DoGet from our server; the socket file
    /// is gone once the server has shut down.
    pub async fn stock_pyarrow_client_reads_do_get(setup: &Setup) {
        let Some(python) = peer::python() else { return };
        let server = setup.serve(interop_server()).await;
        let socket = server
            .location()
            .unix_path()
            .expect("a socket path")
            .to_path_buf();
        let uri = server.location().uri().to_string();
        let code = "\
client = flight.FlightClient(ARGS.uri)
for name in ['many', 'large', 'dict']:
    table = client.do_get(flight.Ticket(name.encode())).read_all()
    print(f'{name} {table.num_rows}')
";
        let run = run_python_snippet(&python, code, &[uri]).await;
        server.shutdown().await.expect("our server shuts down");
        expect_snippet_success(&run, "stock pyarrow client over a Unix socket");
        assert_eq!(
            run.lines,
            vec![
                format!("many {}", MANY_BATCHES * MANY_ROWS),
                format!("large {LARGE_ROWS}"),
                format!("dict {}", DICT_BATCHES * DICT_ROWS),
            ]
        );
        assert!(
            !socket.exists(),
            "{} still exists after shutdown",
            socket.display()
        );
    }
}

/// One test per case, each with a fresh [`Setup`] of `$transport` from `$module::$case`.
macro_rules! cases_for_transport {
    ($transport:ident; $module:ident; ($($(#[$attr:meta])* $case:ident),* $(,)?)) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn $case() {
                let setup = super::peer::Transport::$transport.setup();
                super::$module::$case(&setup).await;
            }
        )*
    };
}

/// A module per row (named by transport) with every case of `cases`, plus the cases of
/// `transport_cases` the row lists after `+`.
macro_rules! interop {
    (
        rows { $($row:ident => $transport:ident $(+ $only:tt)?;)* }
        cases $cases:tt
    ) => {
        $(
            mod $row {
                cases_for_transport!($transport; cases; $cases);
                $(cases_for_transport!($transport; transport_cases; $only);)?
            }
        )*
    };
}

interop! {
    rows {
        grpc => Grpc;
        tls => Tls + (untrusted_server_certificate_refused);
        mtls => MutualTls + (
            client_certificate_in_call_context,
            pyarrow_client_without_certificate_refused,
            pyarrow_server_refuses_client_without_certificate,
        );
        unix => Unix + (
            client_credentials_in_call_context,
            stock_pyarrow_client_reads_do_get,
        );
    }
    cases (
        pyarrow_server_do_get,
        pyarrow_server_do_put,
        pyarrow_server_flight_info,
        pyarrow_server_do_exchange,
        pyarrow_server_do_exchange_leading_metadata,
        pyarrow_server_actions,
        pyarrow_server_errors,
        pyarrow_server_error_extra_info,
        pyarrow_server_headers,
        pyarrow_server_auth,
        pyarrow_server_timeouts,
        pyarrow_client_against_our_server,
        pyarrow_client_against_pyarrow_server,
    )
}
