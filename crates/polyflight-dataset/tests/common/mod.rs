//! Shared by the dataset tests: sample data with dictionaries, nested types and nulls, writers
//! for each file format, a server over a real transport, and the interop Python.

#![allow(dead_code)] // each test binary uses its own subset

use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, Decimal128Array, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, StructArray,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use futures::TryStreamExt;
use polyflight::proto::FlightInfo;
use polyflight::{FlightClient, Server};
use polyflight_dataset::{DatasetOptions, DatasetService};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The schema of [`sample_batches`].
pub fn sample_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "city",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true,
        ),
        Field::new(
            "point",
            DataType::Struct(Fields::from(vec![
                Field::new("x", DataType::Int32, true),
                Field::new("label", DataType::Utf8, true),
            ])),
            true,
        ),
        // 16-byte values: misaligned buffers would have to be copied.
        Field::new("amount", DataType::Decimal128(20, 2), true),
    ]))
}

/// `batches` batches of `rows` rows each; every dictionary column shares one dictionary.
pub fn sample_batches(batches: usize, rows: usize) -> Vec<RecordBatch> {
    let schema = sample_schema();
    let cities: ArrayRef = Arc::new(StringArray::from(vec!["Oslo", "Lima", "Pune", "Kyiv"]));
    (0..batches)
        .map(|b| {
            let base = (b * rows) as i64;
            let ids = Int64Array::from_iter_values((0..rows as i64).map(|i| base + i));
            let scores = Float64Array::from_iter(
                (0..rows).map(|i| (i % 5 != 0).then_some((base as f64 + i as f64) / 4.0)),
            );
            let names = StringArray::from_iter(
                (0..rows).map(|i| (i % 7 != 3).then(|| format!("name-{}", base + i as i64))),
            );
            let keys =
                Int32Array::from_iter((0..rows).map(|i| (i % 6 != 5).then_some((i % 4) as i32)));
            let city = DictionaryArray::<Int32Type>::try_new(keys, cities.clone()).unwrap();
            let mut tags = ListBuilder::new(Int32Builder::new());
            for i in 0..rows {
                if i % 9 == 4 {
                    tags.append_null();
                } else {
                    for t in 0..(i % 3) {
                        tags.values().append_value((i + t) as i32);
                    }
                    tags.append(true);
                }
            }
            let xs: ArrayRef = Arc::new(Int32Array::from_iter(
                (0..rows).map(|i| (i % 4 != 1).then_some(i as i32)),
            ));
            let labels: ArrayRef = Arc::new(StringArray::from_iter(
                (0..rows).map(|i| Some(format!("p{}", i % 10))),
            ));
            let point = StructArray::try_new(
                Fields::from(vec![
                    Field::new("x", DataType::Int32, true),
                    Field::new("label", DataType::Utf8, true),
                ]),
                vec![xs, labels],
                Some((0..rows).map(|i| i % 11 != 7).collect()),
            )
            .unwrap();
            let amount = Decimal128Array::from_iter(
                (0..rows).map(|i| (i % 8 != 2).then_some((base as i128 + i as i128) * 101)),
            )
            .with_precision_and_scale(20, 2)
            .unwrap();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(ids),
                Arc::new(scores),
                Arc::new(names),
                Arc::new(city),
                Arc::new(tags.finish()),
                Arc::new(point),
                Arc::new(amount),
            ];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        })
        .collect()
}

/// Writes an Arrow IPC file.
pub fn write_ipc_file(path: &Path, batches: &[RecordBatch]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = arrow_ipc::writer::FileWriter::try_new(file, &batches[0].schema()).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
}

/// Writes an Arrow IPC stream.
pub fn write_ipc_stream(path: &Path, batches: &[RecordBatch]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(file, &batches[0].schema()).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
}

/// Writes a Parquet file with row groups of `group_rows` rows.
pub fn write_parquet(path: &Path, batches: &[RecordBatch], group_rows: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), Some(properties)).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
}

/// The batches concatenated (equal data compares equal however it was split).
pub fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(schema, batches).unwrap()
}

/// A dataset service over `root` served on `uri`, and a client of it.
pub async fn serve(root: &Path, options: DatasetOptions, uri: &str) -> (Server, FlightClient) {
    let service = DatasetService::new(root, options).expect("the dataset service starts");
    serve_service(service, uri).await
}

/// `service` served on `uri`, and a client of it.
pub async fn serve_service(service: DatasetService, uri: &str) -> (Server, FlightClient) {
    let server = polyflight::server(service)
        .listen(uri)
        .start()
        .await
        .expect("the server starts");
    let client = polyflight::connect(server.location().uri())
        .await
        .expect("the client connects");
    (server, client)
}

/// Every flight the server lists, as paths.
pub async fn listed(client: &FlightClient) -> Vec<Vec<String>> {
    let infos: Vec<FlightInfo> = client
        .list_flights(bytes::Bytes::new())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    infos
        .into_iter()
        .map(|info| info.flight_descriptor.unwrap().path)
        .collect()
}

/// Reads a whole flight through its FlightInfo.
pub async fn read_all(client: &FlightClient, path: &[&str]) -> (FlightInfo, Vec<RecordBatch>) {
    let info = client
        .get_flight_info(polyflight::proto::FlightDescriptor::new_path(
            path.iter().copied(),
        ))
        .await
        .unwrap_or_else(|e| panic!("GetFlightInfo {path:?}: {e}"));
    let batches = client
        .read_flight(&info)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
    (info, batches)
}

/// Hidden entries (temporary files of puts) anywhere under `root`.
pub fn hidden_entries(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                found.push(path.clone());
            }
            if path.is_dir() {
                dirs.push(path);
            }
        }
    }
    found
}

/// A temporary directory for a Unix socket, and the socket's URI.
pub fn unix_uri(dir: &Path) -> String {
    format!("grpc+unix://{}", dir.join("flight.sock").display())
}

/// The interop Python with pyarrow, or `None` (with a notice) when it is missing or
/// `POLYFLIGHT_SKIP_INTEROP=1`.
pub fn python() -> Option<PathBuf> {
    let notice = |why: &str| {
        let _ = writeln!(std::io::stderr(), "SKIPPED: pyarrow dataset interop: {why}");
        None
    };
    if std::env::var("POLYFLIGHT_SKIP_INTEROP").is_ok_and(|v| v == "1") {
        return notice("POLYFLIGHT_SKIP_INTEROP=1");
    }
    let python = match std::env::var_os("POLYFLIGHT_PYTHON") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-interop/bin/python"),
    };
    let works = std::process::Command::new(&python)
        .args(["-c", "import pyarrow, pyarrow.parquet"])
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        Some(python)
    } else {
        notice(&format!(
            "{} cannot import pyarrow (run `cargo xtask interop-venv`)",
            python.display()
        ))
    }
}

/// Waits up to 5 s for `done`.
pub async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..250 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within 5 s");
}
