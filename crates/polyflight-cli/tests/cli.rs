//! The `polyflight` binary end to end, as a person or a script uses it: `polyflight serve DIR`
//! on grpc, grpc+unix, grpc+tls and ucx in a child process, and `put`, `list`, `info` and `get`
//! against it as further child processes; values compared with arrow's and parquet's readers.
//! Also logins (`--auth-basic` with a file made by `hash-password`), TLS failures and mutual
//! TLS, the exit codes, SIGTERM, and pyarrow on both sides: files pyarrow wrote uploaded and
//! read back by pyarrow, and pyarrow's Flight client reading a directory `polyflight serve`
//! serves.
//!
//! Every child is killed when its guard drops, and every file lives in a temporary directory
//! removed at the end. The pyarrow tests use the interop venv (`POLYFLIGHT_PYTHON`, else
//! `.venv-interop/bin/python` at the workspace root) and are skipped with a notice when there
//! is none or `POLYFLIGHT_SKIP_INTEROP=1`.

use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{Field, Schema};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_polyflight");

/// How long one command may run before the test kills it and fails.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

// ---- running the binary ------------------------------------------------------------------------

/// A finished command.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    fn failed_with(self, code: i32, words: &str) -> Run {
        assert_eq!(self.code, code, "expected exit {code}: {self:#?}");
        assert!(
            self.stderr.contains(words),
            "expected {words:?} in stderr: {self:#?}"
        );
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "a failure is one line: {self:#?}"
        );
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Kills the child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("POLYFLIGHT_PASSWORD")
        .env_remove("POLYFLIGHT_TOKEN")
        .env("RUST_LOG", "off");
    command
}

/// Runs `polyflight ARGS…` to its end (killed after [`COMMAND_DEADLINE`]).
fn polyflight(args: &[&str]) -> Run {
    run(command(args), None)
}

fn run(mut command: Command, stdin: Option<&str>) -> Run {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Guard(command.spawn().expect("polyflight starts"));
    if let (Some(text), Some(mut input)) = (stdin, child.0.stdin.take()) {
        input.write_all(text.as_bytes()).expect("stdin written");
    }
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(
        child
            .0
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .0
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < COMMAND_DEADLINE,
            "polyflight {:?} did not finish in {COMMAND_DEADLINE:?}",
            command.get_args().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    }
}

/// A `polyflight serve` child and the locations it listens on.
struct Served {
    child: Guard,
    uris: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    fn uri(&self) -> &str {
        &self.uris[0]
    }
}

/// Starts `polyflight serve ARGS…` and waits for its `listening on` lines (one per URI given).
fn serve(args: &[&str]) -> Served {
    let expected = args.iter().filter(|a| a.contains("://")).count();
    let mut child = Guard(
        command(&[&["serve"], args].concat())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("polyflight serve starts"),
    );
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(pipe) = child.0.stderr.take() {
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(mut log) = log.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
    }
    let (tx, rx) = mpsc::channel();
    if let Some(pipe) = child.0.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut uris = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while uris.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(uri) = line.strip_prefix("listening on ") {
                    uris.push(uri.to_string());
                }
            }
            Err(_) => panic!(
                "polyflight serve {args:?} did not start: {}",
                stderr.lock().map(|s| s.clone()).unwrap_or_default()
            ),
        }
    }
    Served {
        child,
        uris,
        stderr,
    }
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

// ---- data ----------------------------------------------------------------------------------------

const ROWS: usize = 10_000;
const BATCH: usize = 1_000;

/// The reference data: ints, strings with nulls, doubles, timestamps with a zone, and a list
/// column.
fn events(offset: usize, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (offset..offset + rows).map(|i| i as i64).collect();
    let names: Vec<Option<String>> = (offset..offset + rows)
        .map(|i| (i % 7 != 0).then(|| format!("name-{i}")))
        .collect();
    let scores: Vec<f64> = (offset..offset + rows).map(|i| i as f64 * 0.25).collect();
    let times: Vec<i64> = (offset..offset + rows)
        .map(|i| 1_700_000_000_000_000 + i as i64)
        .collect();
    let mut tags = ListBuilder::new(Int32Builder::new());
    for i in offset..offset + rows {
        for j in 0..(i % 3) {
            tags.values().append_value((i + j) as i32);
        }
        tags.append(i % 11 != 0);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(Float64Array::from(scores)),
        Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
        Arc::new(tags.finish()),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .zip(["id", "name", "score", "at", "tags"])
            .map(|(c, n)| Field::new(n, c.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).expect("batch")
}

fn event_batches() -> Vec<RecordBatch> {
    (0..ROWS / BATCH)
        .map(|b| events(b * BATCH, BATCH))
        .collect()
}

/// A CSV file of flat columns (ints, strings, doubles with empty = null).
const PEOPLE_CSV: &str = "id,name,score\n1,alice,3.5\n2,bob,\n3,carol,9.25\n4,dave,-1.0\n";

fn write_inputs(dir: &Path) {
    let batches = event_batches();
    let schema = batches[0].schema();
    let file = std::fs::File::create(dir.join("events.arrow")).expect("file");
    let mut writer = arrow_ipc::writer::FileWriter::try_new(file, &schema).expect("writer");
    for batch in &batches {
        writer.write(batch).expect("write");
    }
    writer.finish().expect("finish");
    let file = std::fs::File::create(dir.join("events.parquet")).expect("file");
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(2_500))
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, schema, Some(properties)).expect("writer");
    for batch in &batches {
        writer.write(batch).expect("write");
    }
    writer.close().expect("close");
    std::fs::write(dir.join("people.csv"), PEOPLE_CSV).expect("csv");
}

/// Every batch of an Arrow IPC file or stream, or a Parquet file.
fn read_back(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("output exists");
    let name = text(path);
    if name.ends_with(".parquet") {
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader")
            .map(|b| b.expect("batch"))
            .collect()
    } else if name.ends_with(".arrows") {
        arrow_ipc::reader::StreamReader::try_new(file, None)
            .expect("stream")
            .map(|b| b.expect("batch"))
            .collect()
    } else {
        arrow_ipc::reader::FileReader::try_new(file, None)
            .expect("file")
            .map(|b| b.expect("batch"))
            .collect()
    }
}

/// Asserts that `got` holds exactly the rows of `want`, column by column.
fn assert_same_rows(got: &[RecordBatch], want: &[RecordBatch], what: &str) {
    let schema = want[0].schema();
    let got = arrow_select::concat::concat_batches(&got[0].schema(), got).expect("concat");
    let want = arrow_select::concat::concat_batches(&schema, want).expect("concat");
    assert_eq!(got.num_rows(), want.num_rows(), "{what}: rows");
    assert_eq!(got.num_columns(), want.num_columns(), "{what}: columns");
    for (i, field) in schema.fields().iter().enumerate() {
        assert_eq!(
            got.column(i).to_data(),
            want.column(i).to_data(),
            "{what}: column {}",
            field.name()
        );
    }
}

// ---- the round trip, per transport ---------------------------------------------------------

/// Serves an empty directory, puts the CSV, Arrow and Parquet inputs, lists and inspects them,
/// and gets each back in every format, comparing values. `extra` are flags for every client.
fn round_trip(listen: &str, serve_flags: &[&str], client_flags: &[&str], full: bool) {
    let work = TempDir::new().expect("temp dir");
    let data = work.path().join("data");
    let inputs = work.path().join("in");
    let outputs = work.path().join("out");
    for dir in [&data, &inputs, &outputs] {
        std::fs::create_dir(dir).expect("dir");
    }
    write_inputs(&inputs);
    let listen = listen.replace("SOCKET", text(&work.path().join("flight.sock")));
    let served = serve(
        &[
            &[text(&data), listen.as_str(), "--endpoint-rows", "2500"],
            serve_flags,
        ]
        .concat(),
    );
    let uri = served.uri().to_string();
    let client = |args: &[&str]| polyflight(&[args, client_flags].concat());

    // put all three in one command; --json gives one summary per file
    let put = client(&[
        "put",
        &uri,
        text(&inputs.join("events.arrow")),
        text(&inputs.join("events.parquet")),
        text(&inputs.join("people.csv")),
        "--json",
    ])
    .ok();
    let summaries = put.json();
    let paths: Vec<&str> = summaries
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["path"].as_str().expect("path"))
        .collect();
    assert_eq!(paths, ["events.arrow", "events.parquet", "people.arrow"]);
    assert_eq!(summaries[0]["rows"], ROWS);
    assert_eq!(summaries[2]["rows"], 4);

    // list: JSON for scripts, a table for people
    let listed = client(&["list", &uri, "--json"]).ok().json();
    let flights = listed.as_array().expect("array");
    let listed_paths: Vec<&str> = flights
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        listed_paths,
        ["events.arrow", "events.parquet", "people.arrow"]
    );
    assert_eq!(flights[0]["total_records"], ROWS);
    let table = client(&["list", &uri]).ok().stdout;
    assert!(table.starts_with("PATH"), "{table}");
    assert!(table.contains("at: timestamp[us, tz=UTC]"), "{table}");

    // info: the endpoints follow --endpoint-rows
    let info = client(&["info", &uri, "events.arrow", "--json"])
        .ok()
        .json();
    assert_eq!(info["total_records"], ROWS);
    assert_eq!(info["endpoints"].as_array().map(Vec::len), Some(4));
    assert_eq!(info["schema"][4]["type"], "list<int32>");
    let text_info = client(&["info", &uri, "events.arrow"]).ok().stdout;
    assert!(text_info.contains("rows       10,000"), "{text_info}");
    assert!(text_info.contains("tags    list<int32>"), "{text_info}");

    let want = event_batches();
    let flights = if full {
        vec!["events.arrow", "events.parquet"]
    } else {
        vec!["events.parquet"]
    };
    let formats = if full {
        vec!["arrow", "arrows", "parquet", "feather"]
    } else {
        vec!["arrow"]
    };
    for flight in &flights {
        for format in &formats {
            let out = outputs.join(format!("{}.{format}", flight.replace('.', "_")));
            let run = client(&["get", &uri, flight, "-o", text(&out)]).ok();
            assert!(
                run.stderr.is_empty(),
                "no progress off a terminal: {run:#?}"
            );
            assert_same_rows(&read_back(&out), &want, &format!("{flight} as .{format}"));
        }
    }
    // the CSV comes back as CSV, value for value
    let csv = outputs.join("people.csv");
    client(&["get", &uri, "people.arrow", "-o", text(&csv)]).ok();
    assert_eq!(std::fs::read_to_string(&csv).expect("csv"), PEOPLE_CSV);
    // CSV holds no list column: a usage error before anything is written
    client(&[
        "get",
        &uri,
        "events.arrow",
        "-o",
        text(&outputs.join("events.csv")),
    ])
    .failed_with(1, "CSV cannot hold column \"tags\"");
    assert!(!outputs.join("events.csv").exists());
    if full {
        // `-o -`: an IPC stream on stdout
        let mut stdout =
            command(&[&["get", &uri, "events.arrow", "-o", "-"], client_flags].concat());
        stdout
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        let output = stdout.output().expect("get -o -");
        assert!(output.status.success());
        let batches: Vec<RecordBatch> =
            arrow_ipc::reader::StreamReader::try_new(&output.stdout[..], None)
                .expect("IPC stream on stdout")
                .map(|b| b.expect("batch"))
                .collect();
        assert_same_rows(&batches, &want, "events.arrow on stdout");
    }
    // nothing but the outputs in the output directory (no partial files)
    let mut left: Vec<String> = std::fs::read_dir(&outputs)
        .expect("outputs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    left.sort();
    assert!(left.is_empty(), "partial files left: {left:?}");
    drop(served);
}

#[test]
fn round_trip_over_grpc() {
    round_trip("grpc://127.0.0.1:0", &[], &[], true);
}

#[test]
fn round_trip_over_grpc_unix() {
    round_trip("grpc+unix://SOCKET", &[], &[], false);
}

#[test]
fn round_trip_over_ucx() {
    round_trip("ucx://127.0.0.1:0", &[], &["--timeout", "30s"], false);
}

/// A CA with a server and a client certificate, as PEM files in a temporary directory.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = polyflight_grpc::tls::LoopbackPki::generate().expect("certificates");
        let dir = TempDir::new().expect("temp dir");
        for (name, pem) in [
            ("ca.pem", &pki.ca_pem),
            ("server.pem", &pki.server_cert_pem),
            ("server.key", &pki.server_key_pem),
            ("client.pem", &pki.client_cert_pem),
            ("client.key", &pki.client_key_pem),
        ] {
            std::fs::write(dir.path().join(name), pem).expect("pem");
        }
        Pki { dir }
    }

    fn file(&self, name: &str) -> String {
        text(&self.dir.path().join(name)).to_string()
    }
}

#[test]
fn round_trip_over_grpc_tls() {
    let pki = Pki::new();
    round_trip(
        "grpc+tls://127.0.0.1:0",
        &[
            "--tls-cert",
            &pki.file("server.pem"),
            "--tls-key",
            &pki.file("server.key"),
        ],
        &["--tls-ca", &pki.file("ca.pem")],
        false,
    );
}

/// A flight larger than an HTTP/2 connection's flow-control window, in endpoints each larger
/// than a stream's window (Parquet row groups the server decodes): `get` reads the endpoints
/// in parallel over one connection and must not stall with the endpoints ahead of the one being
/// read holding the connection's whole window.
#[test]
fn a_large_flight_of_many_endpoints_is_read_whole() {
    const ROWS: usize = 12_000_000;
    const GROUP: usize = 1_000_000;
    let work = TempDir::new().expect("temp dir");
    let columns: Vec<ArrayRef> = (0..3)
        .map(|c| {
            Arc::new(Int64Array::from_iter_values(
                (0..ROWS as i64).map(|i| i * 3 + c),
            )) as ArrayRef
        })
        .collect();
    let batch =
        RecordBatch::try_from_iter(["a", "b", "c"].into_iter().zip(columns)).expect("batch");
    let file = std::fs::File::create(work.path().join("big.parquet")).expect("file");
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(GROUP))
        .set_dictionary_enabled(false)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties))
        .expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    drop(batch);
    let served = serve(&[text(work.path()), "grpc://127.0.0.1:0"]);
    let info = polyflight(&["info", served.uri(), "big.parquet", "--json"])
        .ok()
        .json();
    assert_eq!(
        info["endpoints"].as_array().map(Vec::len),
        Some(ROWS / GROUP)
    );
    let got = polyflight(&[
        "get",
        served.uri(),
        "big.parquet",
        "--json",
        "--timeout",
        "20s",
    ])
    .ok()
    .json();
    assert_eq!(got["rows"], ROWS);
    assert_eq!(got["bytes"], ROWS * 3 * 8);
}

// ---- TLS ------------------------------------------------------------------------------------------

#[test]
fn tls_failures_say_what_to_change() {
    let work = TempDir::new().expect("temp dir");
    let dir = text(work.path());
    polyflight(&["serve", dir, "grpc+tls://127.0.0.1:0"])
        .failed_with(1, "grpc+tls needs --tls-cert and --tls-key");

    let pki = Pki::new();
    let other = Pki::new();
    let tls = serve(&[
        dir,
        "grpc+tls://127.0.0.1:0",
        "--tls-cert",
        &pki.file("server.pem"),
        "--tls-key",
        &pki.file("server.key"),
    ]);
    let plain = serve(&[dir, "grpc://127.0.0.1:0"]);
    polyflight(&["list", tls.uri(), "--tls-ca", &pki.file("ca.pem")]).ok();
    // the wrong CA, and no CA at all (the system's roots)
    for flags in [&["--tls-ca", other.file("ca.pem").as_str()][..], &[]] {
        polyflight(&[&["list", tls.uri()], flags].concat()).failed_with(
            2,
            "failed: the server's certificate is not issued by a trusted CA; pass --tls-ca FILE \
             with the server's CA",
        );
    }
    // grpc+tls against a plaintext server
    let plain_as_tls = plain.uri().replace("grpc://", "grpc+tls://");
    polyflight(&["list", &plain_as_tls, "--tls-ca", &pki.file("ca.pem")])
        .failed_with(2, "TLS handshake with 127.0.0.1:");
    // TLS flags on a plaintext URI
    polyflight(&["list", plain.uri(), "--tls-ca", &pki.file("ca.pem")])
        .failed_with(1, "did you mean grpc+tls://?");
    // plaintext gRPC against the TLS server
    let tls_as_plain = tls.uri().replace("grpc+tls://", "grpc://");
    polyflight(&["list", &tls_as_plain, "--timeout", "5s"]).failed_with(2, "");
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let work = TempDir::new().expect("temp dir");
    let pki = Pki::new();
    let served = serve(&[
        text(work.path()),
        "grpc+tls://127.0.0.1:0",
        "--tls-cert",
        &pki.file("server.pem"),
        "--tls-key",
        &pki.file("server.key"),
        "--tls-client-ca",
        &pki.file("ca.pem"),
    ]);
    let ca = pki.file("ca.pem");
    polyflight(&["list", served.uri(), "--tls-ca", &ca]).failed_with(
        2,
        "requires a client certificate; pass --tls-cert FILE and --tls-key FILE",
    );
    polyflight(&[
        "list",
        served.uri(),
        "--tls-ca",
        &ca,
        "--tls-cert",
        &pki.file("client.pem"),
        "--tls-key",
        &pki.file("client.key"),
    ])
    .ok();
}

// ---- logins --------------------------------------------------------------------------------------

#[test]
fn logins_from_a_password_file() {
    let work = TempDir::new().expect("temp dir");
    let line = run(command(&["hash-password", "alice"]), Some("s3cret\n")).ok();
    let line = line.stdout.trim();
    assert!(line.starts_with("alice:$argon2id$"), "{line}");
    let users = work.path().join("users");
    std::fs::write(&users, format!("# users of the test\n{line}\n")).expect("users");
    let data = work.path().join("data");
    std::fs::create_dir(&data).expect("dir");
    let served = serve(&[
        text(&data),
        "grpc://127.0.0.1:0",
        "--auth-basic",
        text(&users),
    ]);
    let uri = served.uri();
    polyflight(&["list", uri, "--user", "alice", "--password", "s3cret"]).ok();
    let mut from_env = command(&["list", uri, "--user", "alice"]);
    from_env.env("POLYFLIGHT_PASSWORD", "s3cret");
    run(from_env, None).ok();
    polyflight(&["list", uri, "--user", "alice", "--password", "wrong"])
        .failed_with(2, "refused the login of \"alice\"");
    polyflight(&["list", uri, "--user", "mallory", "--password", "s3cret"])
        .failed_with(2, "refused the login");
    polyflight(&["list", uri]).failed_with(2, "requires a login");
    polyflight(&["list", uri, "--token", "made-up"]).failed_with(2, "did not accept");
    // a bad password file stops the server before it listens
    std::fs::write(&users, "alice:plaintext\n").expect("users");
    polyflight(&[
        "serve",
        text(&data),
        "grpc://127.0.0.1:0",
        "--auth-basic",
        text(&users),
    ])
    .failed_with(4, "line 1");
}

// ---- exit codes ----------------------------------------------------------------------------------

#[test]
fn exit_codes_scripts_can_rely_on() {
    let work = TempDir::new().expect("temp dir");
    let data = work.path().join("data");
    std::fs::create_dir(&data).expect("dir");
    write_inputs(work.path());
    let served = serve(&[text(&data), "grpc://127.0.0.1:0"]);
    let uri = served.uri();

    // usage: 1
    let missing = polyflight(&["get", uri]);
    assert_eq!(missing.code, 1, "clap's usage errors exit 1: {missing:#?}");
    polyflight(&["list", "http://127.0.0.1:1"]).failed_with(1, "unknown scheme \"http\"");
    polyflight(&["get", uri, "x.arrow", "-o", "out.json"]).failed_with(1, "unknown extension");
    polyflight(&["serve", "grpc://127.0.0.1:0"]).failed_with(1, "before the URIs");
    // connection: 2
    polyflight(&["list", "grpc://127.0.0.1:1"]).failed_with(2, "cannot reach grpc://127.0.0.1:1");
    // not found: 3
    polyflight(&[
        "get",
        uri,
        "nope.arrow",
        "-o",
        text(&work.path().join("n.arrow")),
    ])
    .failed_with(3, &format!("no flight at nope.arrow on {uri}"));
    polyflight(&["info", uri, "sub/nope.parquet"]).failed_with(3, "no flight at sub/nope.parquet");
    assert!(!work.path().join("n.arrow").exists());
    // bad input files: 4
    let garbage = work.path().join("garbage.parquet");
    std::fs::write(&garbage, "this is not parquet").expect("file");
    polyflight(&["put", uri, text(&garbage)]).failed_with(4, "is not a Parquet file");
    let fake = work.path().join("fake.arrow");
    std::fs::write(&fake, "nor is this arrow").expect("file");
    polyflight(&["put", uri, text(&fake)]).failed_with(4, "is not a readable Arrow IPC");
    let notes = work.path().join("notes.txt");
    std::fs::write(&notes, "a,b\n1,2\n").expect("file");
    polyflight(&["put", uri, text(&notes)]).failed_with(4, "unknown extension (.txt)");
    polyflight(&["put", uri, text(&work.path().join("missing.csv"))]).failed_with(4, "cannot read");
    // other server errors: 5 (the flight exists already), and --overwrite replaces it
    let events = work.path().join("events.arrow");
    polyflight(&["put", uri, text(&events), "--path", "sub/e.arrow", "-q"]).ok();
    polyflight(&["put", uri, text(&events), "--path", "sub/e.arrow"])
        .failed_with(5, "sub/e.arrow already exists on");
    let csv = work.path().join("people.csv");
    polyflight(&[
        "put",
        uri,
        text(&csv),
        "--path",
        "sub/e.arrow",
        "--overwrite",
    ])
    .ok();
    let info = polyflight(&["info", uri, "sub/e.arrow", "--json"])
        .ok()
        .json();
    assert_eq!(info["total_records"], 4);
    assert!(data.join("sub").join("e.arrow").is_file());

    // --head: a table of the first rows, and JSON rows for scripts
    let head = polyflight(&["get", uri, "sub/e.arrow", "--head", "2"])
        .ok()
        .stdout;
    assert!(head.contains("| 1  | alice | 3.5   |"), "{head}");
    assert!(head.contains("(2 rows of 4)"), "{head}");
    let rows = polyflight(&["get", uri, "sub/e.arrow", "--head", "2", "--json"])
        .ok()
        .json();
    assert_eq!(
        rows,
        serde_json::json!([
            {"id": 1, "name": "alice", "score": 3.5},
            {"id": 2, "name": "bob", "score": null},
        ])
    );

    // a read-only server refuses uploads
    let read_only = serve(&[text(&data), "grpc://127.0.0.1:0", "--read-only"]);
    polyflight(&["put", read_only.uri(), text(&csv), "--path", "r.arrow"]).failed_with(2, "");
    assert!(!data.join("r.arrow").exists());
}

/// Entries of `dir`, sorted (hidden ones too: partial uploads are dot files).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Waits up to ten seconds for `done`.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `polyflight put` SIGKILLed mid-upload (it reads an IPC stream from stdin that has not ended):
/// the server drops the partial file and stores nothing, and the path takes a new upload.
#[test]
fn a_killed_uploader_leaves_no_file() {
    for listen in ["grpc://127.0.0.1:0", "ucx://127.0.0.1:0"] {
        let work = TempDir::new().expect("temp dir");
        let data = work.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let served = serve(&[text(&data), listen]);
        let mut uploader = Guard(
            command(&["put", served.uri(), "-", "--path", "up.arrow", "-q"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("polyflight put starts"),
        );
        let stdin = uploader.0.stdin.take().expect("stdin");
        let batches = event_batches();
        let mut writer =
            arrow_ipc::writer::StreamWriter::try_new(stdin, &batches[0].schema()).expect("writer");
        for batch in &batches[..3] {
            writer.write(batch).expect("batch written");
        }
        writer.flush().expect("flushed");
        eventually(&format!("{listen}: the partial upload"), || {
            entries(&data).len() == 1
        });
        assert!(entries(&data)[0].starts_with('.'), "{:?}", entries(&data));
        uploader.0.kill().expect("SIGKILL");
        let status = uploader.0.wait().expect("wait");
        assert!(!status.success(), "{listen}: {status:?}");
        drop(writer);
        eventually(&format!("{listen}: the partial file's removal"), || {
            entries(&data).is_empty()
        });

        let stream = work.path().join("whole.arrows");
        let file = std::fs::File::create(&stream).expect("create");
        let mut writer =
            arrow_ipc::writer::StreamWriter::try_new(file, &batches[0].schema()).expect("writer");
        for batch in &batches {
            writer.write(batch).expect("batch written");
        }
        writer.finish().expect("finished");
        let mut again = command(&["put", served.uri(), "-", "--path", "up.arrow", "-q"]);
        again.stdin(std::fs::File::open(&stream).expect("open"));
        let status = again
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("put runs");
        assert!(status.success(), "{listen}: {status:?}");
        assert_eq!(entries(&data), ["up.arrow"], "{listen}");
        assert_same_rows(&read_back(&data.join("up.arrow")), &batches, listen);
    }
}

/// `polyflight bench` runs each transport's server as a `polyflight serve` process of its own by
/// default: the rows measure, the server's CPU is accounted, and no server is left running.
#[test]
fn bench_measures_servers_in_their_own_processes() {
    let work = TempDir::new().expect("temp dir");
    let json = work.path().join("report.json");
    let svg = work.path().join("report.svg");
    let run = polyflight(&[
        "bench",
        "--transports",
        "grpc,grpc+tls,grpc+unix,ucx",
        "--no-references",
        "--batch-rows",
        "1024",
        "--doget-mb",
        "8",
        "--put-mb",
        "4",
        "--exchange-mb",
        "2",
        "--latency-calls",
        "10",
        "--json",
        text(&json),
        "--svg",
        text(&svg),
    ])
    .ok();
    assert!(
        run.stdout.contains("servers in processes of their own"),
        "{run:#?}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    assert_eq!(report["config"]["server_processes"], true);
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for row in rows {
        let name = row["name"].as_str().unwrap_or_default();
        assert_eq!(row["errors"].as_array().map(Vec::len), Some(0), "{row:#?}");
        assert!(row["skipped"].is_null(), "{row:#?}");
        let throughput = row["throughput"].as_array().expect("throughput");
        assert_eq!(throughput.len(), 3, "{name}: DoGet, DoPut, DoExchange");
        for t in throughput {
            assert!(
                t["mb_per_s"].as_f64().unwrap_or(0.0) > 0.0,
                "{name}: {t:#?}"
            );
            // The server's CPU comes from its own process.
            assert!(t["cpu"]["server_s"].is_number(), "{name}: {t:#?}");
        }
        let uri = row["uri"].as_str().unwrap_or_default();
        assert!(uri.contains("://"), "{name}: {uri}");
    }
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let work = TempDir::new().expect("temp dir");
    let socket = work.path().join("s.sock");
    let socket_uri = format!("grpc+unix://{}", text(&socket));
    let mut served = serve(&[text(work.path()), "grpc://127.0.0.1:0", &socket_uri]);
    assert_eq!(served.uris.len(), 2);
    polyflight(&["list", &served.uris[1]]).ok();
    let pid = served.child.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = served.child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "{status:?}: {}",
        served.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    );
}

// ---- pyarrow ------------------------------------------------------------------------------------

const SKIP_ENV: &str = "POLYFLIGHT_SKIP_INTEROP";
const PYTHON_ENV: &str = "POLYFLIGHT_PYTHON";

/// The interop venv's Python with pyarrow, or `None` (with a notice) when the tests are skipped
/// or there is none.
fn python() -> Option<PathBuf> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: pyarrow tests of the polyflight command ({SKIP_ENV}=1)");
        return None;
    }
    let python = match std::env::var_os(PYTHON_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-interop/bin/python"),
    };
    let works = Command::new(&python)
        .args(["-c", "import pyarrow.flight, pyarrow.parquet, pyarrow.csv"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        eprintln!(
            "SKIPPED: pyarrow tests of the polyflight command: {} has no pyarrow (run `cargo \
             xtask interop-venv`, or set {PYTHON_ENV})",
            python.display()
        );
        return None;
    }
    Some(python)
}

fn run_python(python: &Path, script: &str, args: &[&str]) -> Run {
    let mut command = Command::new(python);
    command
        .args([&["-c", script], args].concat())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run(command, None)
}

/// Writes the same table, with nulls, lists, timestamps and a dictionary column, as Parquet (row
/// groups of 1000), Feather (lz4, pyarrow's default), an IPC stream, and (its flat columns) CSV.
const PYARROW_WRITE: &str = r#"
import sys
import pyarrow as pa, pyarrow.parquet as pq, pyarrow.feather as feather
import pyarrow.csv as pacsv, pyarrow.ipc as ipc
d = sys.argv[1]
n = 5000
table = pa.table({
    "id": pa.array(range(n), pa.int64()),
    "name": pa.array([None if i % 5 == 0 else f"n{i}" for i in range(n)]),
    "score": pa.array([i * 0.5 for i in range(n)]),
    "tags": pa.array([[i, i + 1] if i % 3 else None for i in range(n)], pa.list_(pa.int32())),
    "when": pa.array([i * 1000 for i in range(n)], pa.timestamp("ms", tz="UTC")),
    "kind": pa.array([["a", "b", "c", "d"][i % 4] for i in range(n)]).dictionary_encode(),
})
pq.write_table(table, f"{d}/p.parquet", row_group_size=1000)
feather.write_feather(table, f"{d}/f.feather")
with ipc.new_stream(f"{d}/s.arrows", table.schema) as w:
    w.write_table(table, max_chunksize=1000)
pacsv.write_csv(table.select(["id", "name", "score"]), f"{d}/c.csv")
"#;

/// Compares pyarrow's reading of each original with its reading of what came back.
const PYARROW_COMPARE: &str = r#"
import sys
import pyarrow as pa, pyarrow.parquet as pq, pyarrow.feather as feather
import pyarrow.csv as pacsv, pyarrow.ipc as ipc
src, out = sys.argv[1], sys.argv[2]
pairs = [
    (pq.read_table(f"{src}/p.parquet"), pq.read_table(f"{out}/p.parquet")),
    (feather.read_table(f"{src}/f.feather"), ipc.open_file(f"{out}/f.arrow").read_all()),
    (ipc.open_stream(f"{src}/s.arrows").read_all(), ipc.open_stream(f"{out}/s.arrows").read_all()),
    (pacsv.read_csv(f"{src}/c.csv"), pacsv.read_csv(f"{out}/c.csv")),
]
for want, got in pairs:
    assert got.column_names == want.column_names, (got.schema, want.schema)
    assert got.num_rows == want.num_rows, (got.num_rows, want.num_rows)
    assert got.to_pylist() == want.to_pylist()
print("equal", len(pairs))
"#;

/// pyarrow's Flight client against `polyflight serve`: ListFlights, GetFlightInfo, DoGet of
/// every endpoint, values compared with pyarrow's own reading of the files.
const PYARROW_CLIENT: &str = r#"
import sys
import pyarrow as pa, pyarrow.flight as fl, pyarrow.parquet as pq, pyarrow.feather as feather
import pyarrow.ipc as ipc
uri, d = sys.argv[1], sys.argv[2]
client = fl.connect(uri)
paths = sorted("/".join(p.decode() for p in f.descriptor.path) for f in client.list_flights())
assert paths == ["f.feather", "p.parquet", "put/c.arrow", "s.arrows"], paths
readers = {
    "p.parquet": pq.read_table,
    "f.feather": feather.read_table,
    "s.arrows": lambda path: ipc.open_stream(path).read_all(),
}
for name, read in readers.items():
    want = read(f"{d}/{name}")
    info = client.get_flight_info(fl.FlightDescriptor.for_path(name))
    assert info.total_records == want.num_rows, (name, info.total_records)
    got = pa.concat_tables([client.do_get(e.ticket).read_all() for e in info.endpoints])
    assert got.column_names == want.column_names, name
    assert got.to_pylist() == want.to_pylist(), name
    if name == "p.parquet":
        assert len(info.endpoints) == 5, len(info.endpoints)
info = client.get_flight_info(fl.FlightDescriptor.for_path("put", "c.arrow"))
got = pa.concat_tables([client.do_get(e.ticket).read_all() for e in info.endpoints])
assert got.num_rows == 5000 and got.column_names == ["id", "name", "score"], got.schema
print("read", len(paths))
"#;

#[test]
fn pyarrow_files_round_trip_through_polyflight() {
    let Some(python) = python() else {
        return;
    };
    let work = TempDir::new().expect("temp dir");
    let (src, data, out) = (
        work.path().join("src"),
        work.path().join("data"),
        work.path().join("out"),
    );
    for dir in [&src, &data, &out] {
        std::fs::create_dir(dir).expect("dir");
    }
    run_python(&python, PYARROW_WRITE, &[text(&src)]).ok();
    let served = serve(&[text(&data), "grpc://127.0.0.1:0"]);
    let uri = served.uri();
    let inputs: Vec<String> = ["p.parquet", "f.feather", "s.arrows", "c.csv"]
        .iter()
        .map(|n| text(&src.join(n)).to_string())
        .collect();
    let mut put = vec!["put", uri, "-q"];
    put.extend(inputs.iter().map(String::as_str));
    polyflight(&put).ok();
    for (flight, file) in [
        ("p.parquet", "p.parquet"),
        ("f.feather", "f.arrow"),
        ("s.arrows", "s.arrows"),
        ("c.arrow", "c.csv"),
    ] {
        polyflight(&["get", uri, flight, "-o", text(&out.join(file))]).ok();
    }
    let compared = run_python(&python, PYARROW_COMPARE, &[text(&src), text(&out)]).ok();
    assert_eq!(compared.stdout.trim(), "equal 4");
}

#[test]
fn pyarrow_client_reads_a_served_directory() {
    let Some(python) = python() else {
        return;
    };
    let work = TempDir::new().expect("temp dir");
    let data = work.path().join("data");
    std::fs::create_dir(&data).expect("dir");
    run_python(&python, PYARROW_WRITE, &[text(&data)]).ok();
    let csv = work.path().join("c.csv");
    std::fs::rename(data.join("c.csv"), &csv).expect("move the CSV out");
    let served = serve(&[text(&data), "grpc://127.0.0.1:0"]);
    // one flight uploaded by polyflight, beside the files pyarrow wrote
    polyflight(&["put", served.uri(), text(&csv), "--path", "put/", "-q"]).ok();
    let read = run_python(&python, PYARROW_CLIENT, &[served.uri(), text(&data)]).ok();
    assert_eq!(read.stdout.trim(), "read 4");
}
