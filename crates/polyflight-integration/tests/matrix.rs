//! Our integration server binary against our integration client binary, as archery would run
//! them: every scenario and every generated JSON data set, over grpc, grpc+tls, grpc+unix and
//! ucx, each server a real subprocess stopped with SIGTERM afterwards.

use polyflight_integration::matrix::{self, Case, Implementation, ServerProcess, Transport};
use polyflight_integration::pyarrow;
use std::io::Write;
use std::process::Command;

fn polyflight() -> Implementation {
    Implementation::polyflight(
        env!("CARGO_BIN_EXE_flight-test-integration-server"),
        env!("CARGO_BIN_EXE_flight-test-integration-client"),
    )
}

/// Set to `1` to skip the pyarrow pairs (they then pass with a printed notice), as the pyarrow
/// interop tests do.
const SKIP_ENV: &str = "POLYFLIGHT_SKIP_INTEROP";

/// pyarrow's implementation, `None` when skipped on purpose. A missing or broken interpreter
/// fails the test: a missing peer must not look like a passing test.
fn pyarrow() -> Option<Implementation> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        let _ = writeln!(std::io::stderr(), "SKIPPED: pyarrow pairs ({SKIP_ENV}=1)");
        return None;
    }
    let python = pyarrow::default_python();
    match pyarrow::probe(&python) {
        Ok(version) => {
            eprintln!("pyarrow {version} ({})", python.display());
            Some(pyarrow::implementation(&python))
        }
        Err(why) => panic!(
            "the pyarrow pairs need Python with pyarrow and grpcio-tools: {why}\n\
             Run `cargo xtask interop-venv` (or point {} at such a Python; {SKIP_ENV}=1 \
             skips these tests).",
            pyarrow::PYTHON_ENV
        ),
    }
}

/// The data sets a pyarrow server cannot serve (those with dictionaries).
const DICTIONARY_DATA_SETS: usize = 4;
/// The Flight SQL scenarios, which pyarrow plays on neither side.
const FLIGHT_SQL_SCENARIOS: usize = 3;

/// Runs every case with `server`'s server and `client`'s client over `transport`, and checks
/// the results against the known gaps. Cases one side cannot play are printed as skipped.
fn run(server: &Implementation, client: &Implementation, transport: Transport) {
    let work = tempfile::tempdir().expect("temp dir");
    let files = polyflight_integration::datagen::write_all(work.path()).expect("data sets");
    for file in &files {
        pyarrow::write_ipc_twin(file).expect("IPC copy of a data set");
    }
    let mut cases = matrix::scenario_cases();
    let json_cases = files.len();
    cases.extend(files.into_iter().map(Case::Json));
    let results = matrix::run_pair(server, client, transport, &cases, work.path());
    println!("{}", matrix::table(&results, &[transport]));
    for r in results.iter().filter(|r| !r.passed) {
        match &r.skipped {
            Some(why) => println!("{}: skipped: {why}", r.case),
            None => println!("{}: {}", r.case, r.detail),
        }
    }
    assert_eq!(results.len(), cases.len(), "every case ran");
    assert!(
        json_cases >= 20,
        "only {json_cases} data sets were generated"
    );
    let skipped = results.iter().filter(|r| r.skipped.is_some()).count();
    let pyarrow_serves = server.name == "pyarrow";
    let pyarrow_plays = pyarrow_serves || client.name == "pyarrow";
    let may_skip = usize::from(pyarrow_serves) * DICTIONARY_DATA_SETS
        + usize::from(pyarrow_plays) * FLIGHT_SQL_SCENARIOS;
    assert!(
        skipped <= may_skip,
        "{skipped} of {} cases were skipped, at most {may_skip} may be",
        cases.len()
    );
    let (failed, fixed) = matrix::surprises(&results);
    let failed: Vec<String> = failed
        .iter()
        .map(|r| format!("{}: {}", r.case, r.detail))
        .collect();
    let fixed: Vec<&str> = fixed.iter().map(|r| r.case.as_str()).collect();
    let pair = format!("{} × {}", server.name, client.name);
    assert!(
        failed.is_empty(),
        "{pair} failed over {transport}: {failed:#?}"
    );
    assert!(
        fixed.is_empty(),
        "known gaps now pass over {transport}, update matrix::KNOWN_GAPS: {fixed:?}"
    );
    // The server removed its socket when it stopped.
    assert!(
        !work.path().join("flight.sock").exists(),
        "the Unix socket was left behind"
    );
}

#[test]
fn grpc() {
    run(&polyflight(), &polyflight(), Transport::Grpc);
}

#[test]
fn grpc_tls() {
    run(&polyflight(), &polyflight(), Transport::GrpcTls);
}

#[test]
fn grpc_unix() {
    run(&polyflight(), &polyflight(), Transport::GrpcUnix);
}

#[test]
fn ucx() {
    run(&polyflight(), &polyflight(), Transport::Ucx);
}

#[test]
fn polyflight_server_pyarrow_client_grpc() {
    if let Some(pyarrow) = pyarrow() {
        run(&polyflight(), &pyarrow, Transport::Grpc);
    }
}

#[test]
fn polyflight_server_pyarrow_client_grpc_tls() {
    if let Some(pyarrow) = pyarrow() {
        run(&polyflight(), &pyarrow, Transport::GrpcTls);
    }
}

#[test]
fn polyflight_server_pyarrow_client_grpc_unix() {
    if let Some(pyarrow) = pyarrow() {
        run(&polyflight(), &pyarrow, Transport::GrpcUnix);
    }
}

#[test]
fn pyarrow_server_polyflight_client_grpc() {
    if let Some(pyarrow) = pyarrow() {
        run(&pyarrow, &polyflight(), Transport::Grpc);
    }
}

#[test]
fn pyarrow_server_polyflight_client_grpc_tls() {
    if let Some(pyarrow) = pyarrow() {
        run(&pyarrow, &polyflight(), Transport::GrpcTls);
    }
}

#[test]
fn pyarrow_server_polyflight_client_grpc_unix() {
    if let Some(pyarrow) = pyarrow() {
        run(&pyarrow, &polyflight(), Transport::GrpcUnix);
    }
}

/// pyarrow against itself: Arrow C++ on both sides checks the pyarrow peer's own reading of
/// the scenarios.
#[test]
fn pyarrow_against_itself_grpc() {
    if let Some(pyarrow) = pyarrow() {
        run(&pyarrow, &pyarrow, Transport::Grpc);
    }
}

/// Archery starts servers with either flag style and reads the port from the first line.
#[test]
fn server_takes_arrow_and_rust_flag_styles() {
    let bins = polyflight();
    for args in [
        vec!["-port=0", "-scenario", "ordered"],
        vec!["--port", "0", "--scenario", "ordered"],
        vec!["-port", "0"],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let server = ServerProcess::start(&bins.server, &args).expect("server starts");
        assert_ne!(server.port, 0, "{args:?}");
        assert_eq!(
            server.location,
            format!("grpc+tcp://127.0.0.1:{}", server.port),
            "{args:?}"
        );
        assert!(server.stop(), "{args:?}: clean exit on SIGTERM");
    }
}

/// A bad command line is exit status 2 with a message naming the problem; a scenario that fails
/// is exit status 1.
#[test]
fn client_exit_codes() {
    let bins = polyflight();
    let output = Command::new(&bins.client.path)
        .args([
            "-host",
            "localhost",
            "-port=1",
            "-scenario",
            "no_such_scenario",
        ])
        .output()
        .expect("client runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scenario"));

    // The ordered scenario's client against the JSON server: GetFlightInfo of a command fails.
    let server = ServerProcess::start(&bins.server, &["-port=0".to_string()]).expect("server");
    let (passed, detail) = matrix::run_client(
        &bins.client,
        &[
            "-host".into(),
            "localhost".into(),
            format!("-port={}", server.port),
            "-scenario".into(),
            "ordered".into(),
        ],
    );
    assert!(!passed);
    assert!(detail.contains("GetFlightInfo(ordered)"), "{detail}");
    assert!(server.stop());
}
