//! Files written by pyarrow (Feather v2 with its default LZ4 compression, IPC files and
//! streams with dictionaries, nested types and nulls, snappy Parquet with several row groups)
//! served over Flight and compared with arrow-rs's own readers of the same files; then the
//! same data uploaded by DoPut and read back by pyarrow, which compares it with the originals.
//! Skipped, with a notice, when the interop venv is missing or `POLYFLIGHT_SKIP_INTEROP=1`.

mod common;

use arrow_array::RecordBatch;
use common::*;
use futures::TryStreamExt;
use polyflight::proto::{FlightDescriptor, PutResult};
use polyflight_dataset::DatasetOptions;
use std::path::Path;

/// Writes the originals into `src/`; with `check`, compares each `put/NAME` with `src/NAME`.
const SCRIPT: &str = r#"
import sys, pathlib
import pyarrow as pa, pyarrow.ipc as ipc, pyarrow.feather as feather, pyarrow.parquet as pq

root = pathlib.Path(sys.argv[2])

def table():
    n = 5000
    ids = pa.array(range(n), pa.int64())
    score = pa.array([None if i % 5 == 0 else i / 4 for i in range(n)], pa.float64())
    name = pa.array([None if i % 7 == 3 else f"name-{i}" for i in range(n)], pa.string())
    city = pa.array([None if i % 6 == 5 else ["Oslo", "Lima", "Pune", "Kyiv"][i % 4] for i in range(n)]).dictionary_encode()
    tags = pa.array([None if i % 9 == 4 else list(range(i % 3)) for i in range(n)], pa.list_(pa.int32()))
    point = pa.array([None if i % 11 == 7 else {"x": i, "label": f"p{i % 10}"} for i in range(n)],
                     pa.struct([("x", pa.int32()), ("label", pa.string())]))
    when = pa.array([i * 1_000_000 for i in range(n)], pa.timestamp("us", tz="UTC"))
    flag = pa.array([None if i % 13 == 0 else i % 2 == 0 for i in range(n)], pa.bool_())
    return pa.table({"id": ids, "score": score, "name": name, "city": city, "tags": tags,
                     "point": point, "when": when, "flag": flag})

def read(path):
    if path.suffix in (".feather", ".arrow"):
        with ipc.open_file(path) as reader:
            return reader.read_all()
    if path.suffix == ".arrows":
        with ipc.open_stream(path) as reader:
            return reader.read_all()
    return pq.read_table(path)

if sys.argv[1] == "write":
    src = root / "src"
    src.mkdir(parents=True)
    t = table()
    feather.write_feather(t, src / "a.feather", chunksize=1000)  # LZ4 by default
    unified = t.unify_dictionaries()
    with ipc.new_file(src / "b.arrow", t.schema) as writer:
        for batch in unified.to_batches(max_chunksize=700):
            writer.write_batch(batch)
    # A stream whose dictionary changes between batches (replacement).
    with ipc.new_stream(src / "c.arrows", t.schema) as writer:
        for i in range(0, 5000, 1000):
            writer.write_table(t.slice(i, 1000).combine_chunks())
    pq.write_table(t, src / "d.parquet", row_group_size=1500)  # snappy by default
    print("written")
elif sys.argv[1] == "flight":
    import pyarrow.flight as flight
    client = flight.connect(sys.argv[3])
    listed = sorted(tuple(p.decode() for p in info.descriptor.path) for info in client.list_flights())
    assert ("src", "b.arrow") in listed, listed
    # Every endpoint of a multi-endpoint file, read by pyarrow's client, in order.
    info = client.get_flight_info(flight.FlightDescriptor.for_path("src", "b.arrow"))
    assert len(info.endpoints) > 1, info
    parts = [client.do_get(e.ticket).read_all() for e in info.endpoints]
    got = pa.concat_tables(parts)
    assert got.equals(read(root / "src" / "b.arrow")), "b.arrow differs"
    assert info.total_records == 5000
    # A put by pyarrow's client, durable once the writer is closed.
    t = table()
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("py", "t.arrow"), t.schema)
    writer.write_table(t, max_chunksize=1000)
    writer.done_writing()
    ack = reader.read()
    writer.close()
    assert ack is not None and b'"rows":5000' in ack.to_pybytes(), ack
    assert read(root / "py" / "t.arrow").equals(t)
    try:
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("py", "t.arrow"), t.schema)
        writer.write_table(t)
        writer.close()
        raise SystemExit("a second put to py/t.arrow must fail")
    except pa.ArrowException as e:
        assert "already exists" in str(e), e
    print("flight ok")
else:
    failed = False
    for put in sorted((root / "put").iterdir()):
        original = read(root / "src" / put.name)
        stored = read(put)
        same = stored.equals(original)
        if not same:
            # Dictionaries may be split differently; compare the decoded values.
            same = stored.to_pylist() == original.to_pylist() and stored.schema.equals(original.schema)
        print(put.name, "equal" if same else "DIFFERENT")
        if not same:
            print("  stored:  ", stored.schema, stored.num_rows, file=sys.stderr)
            print("  original:", original.schema, original.num_rows, file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)
"#;

fn run_python(python: &Path, mode: &str, root: &Path) -> String {
    run_python_with(python, mode, root, &[])
}

fn run_python_with(python: &Path, mode: &str, root: &Path, extra: &[&str]) -> String {
    let output = std::process::Command::new(python)
        .args(["-c", SCRIPT, mode])
        .arg(root)
        .args(extra)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python {mode} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// arrow-rs's own reading of a file.
fn read_locally(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    match path.extension().and_then(|e| e.to_str()) {
        Some("arrows") => arrow_ipc::reader::StreamReader::try_new(file, None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap(),
        Some("parquet") => {
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
        _ => arrow_ipc::reader::FileReader::try_new(file, None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_files_round_trip() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert!(run_python(&python, "write", root).contains("written"));
    let options = DatasetOptions {
        endpoint_rows: Some(2000),
        ..DatasetOptions::default()
    };
    for uri in ["grpc://127.0.0.1:0", "ucx://127.0.0.1:0"] {
        let (server, client) = serve(root, options.clone(), uri).await;
        let listed = listed(&client).await;
        let sources = listed.iter().filter(|path| path[0] == "src").count();
        assert_eq!(sources, 4, "{listed:?}");
        for name in ["a.feather", "b.arrow", "c.arrows", "d.parquet"] {
            let expected = read_locally(&root.join("src").join(name));
            let schema = expected[0].schema();
            let (info, got) = read_all(&client, &["src", name]).await;
            assert_eq!(info.total_records, 5000, "{name}");
            assert_eq!(info.try_schema().unwrap(), *schema, "{name}");
            match name {
                "c.arrows" => assert_eq!(info.endpoint.len(), 1),
                _ => assert!(
                    info.endpoint.len() >= 2,
                    "{name}: {} endpoints",
                    info.endpoint.len()
                ),
            }
            // Streams replace dictionaries between batches, so compare batch by batch there.
            if name == "c.arrows" {
                assert_eq!(got, expected, "{name} over {uri}");
            } else {
                assert_eq!(
                    concat(&schema, &got),
                    concat(&schema, &expected),
                    "{name} over {uri}"
                );
            }
            if uri.starts_with("grpc") {
                // The same data uploaded under the same name, for pyarrow to compare.
                let results: Vec<PutResult> = client
                    .do_put(
                        FlightDescriptor::new_path(["put", name]),
                        futures::stream::iter(got.into_iter().map(Ok)),
                    )
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap_or_else(|e| panic!("DoPut {name}: {e}"));
                assert_eq!(results.len(), 1);
            }
        }
        server.shutdown().await.unwrap();
    }
    let report = run_python(&python, "check", root);
    assert_eq!(report.matches(" equal").count(), 4, "{report}");
}

/// pyarrow's Flight client against the dataset service: listing, every endpoint of a file,
/// and DoPut (including ALREADY_EXISTS for a second put).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_flight_client() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    assert!(run_python(&python, "write", &root).contains("written"));
    let options = DatasetOptions {
        endpoint_rows: Some(2000),
        ..DatasetOptions::default()
    };
    let (server, _client) = serve(&root, options, "grpc://127.0.0.1:0").await;
    let uri = server.location().uri().to_string();
    let report =
        tokio::task::spawn_blocking(move || run_python_with(&python, "flight", &root, &[&uri]))
            .await
            .unwrap();
    assert!(report.contains("flight ok"), "{report}");
    server.shutdown().await.unwrap();
}
