//! Our integration server binary against our integration client binary, as archery would run
//! them: every scenario and every generated JSON data set, over grpc, grpc+tls, grpc+unix and
//! ucx, each server a real subprocess stopped with SIGTERM afterwards.

use polyflight_integration::matrix::{self, Binaries, Case, ServerProcess, Transport};
use std::process::Command;

fn binaries() -> Binaries {
    Binaries {
        server: env!("CARGO_BIN_EXE_flight-test-integration-server").into(),
        client: env!("CARGO_BIN_EXE_flight-test-integration-client").into(),
    }
}

/// Runs the whole matrix over one transport and checks it against the known gaps.
fn run(transport: Transport) {
    let work = tempfile::tempdir().expect("temp dir");
    let files = polyflight_integration::datagen::write_all(work.path()).expect("data sets");
    let mut cases = matrix::scenario_cases();
    let json_cases = files.len();
    cases.extend(files.into_iter().map(Case::Json));
    let results = matrix::run_transport(&binaries(), transport, &cases, work.path());
    println!("{}", matrix::table(&results, &[transport]));
    for r in results.iter().filter(|r| !r.passed) {
        println!("{}: {}", r.case, r.detail);
    }
    assert_eq!(results.len(), cases.len(), "every case ran");
    assert!(
        json_cases >= 20,
        "only {json_cases} data sets were generated"
    );
    let (failed, fixed) = matrix::surprises(&results);
    let failed: Vec<String> = failed
        .iter()
        .map(|r| format!("{}: {}", r.case, r.detail))
        .collect();
    let fixed: Vec<&str> = fixed.iter().map(|r| r.case.as_str()).collect();
    assert!(failed.is_empty(), "failed over {transport}: {failed:#?}");
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
    run(Transport::Grpc);
}

#[test]
fn grpc_tls() {
    run(Transport::GrpcTls);
}

#[test]
fn grpc_unix() {
    run(Transport::GrpcUnix);
}

#[test]
fn ucx() {
    run(Transport::Ucx);
}

/// Archery starts servers with either flag style and reads the port from the first line.
#[test]
fn server_takes_arrow_and_rust_flag_styles() {
    let bins = binaries();
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
    let bins = binaries();
    let output = Command::new(&bins.client)
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
