//! `flight-test-integration-matrix [TRANSPORT,…]`: runs our integration server against our
//! integration client for every scenario and every generated JSON data set, over the given
//! transports (default: all of grpc, grpc+tls, grpc+unix, ucx), and prints the table.
//!
//! The server and client binaries are expected beside this one (Cargo builds them into the same
//! directory). Exits 1 when a case fails that is not a known gap, or a known gap passes.

use polyflight_integration::matrix::{self, Binaries, Case, Transport};
use std::process::ExitCode;

fn main() -> ExitCode {
    let transports: Vec<Transport> = match std::env::args().nth(1) {
        Some(list) => {
            let mut parsed = Vec::new();
            for name in list.split(',') {
                match Transport::parse(name) {
                    Some(t) => parsed.push(t),
                    None => {
                        eprintln!(
                            "unknown transport {name:?}; known: grpc, grpc+tls, grpc+unix, ucx"
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            parsed
        }
        None => Transport::ALL.to_vec(),
    };
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
    else {
        eprintln!("cannot find the directory of this binary");
        return ExitCode::FAILURE;
    };
    let binaries = Binaries {
        server: dir.join("flight-test-integration-server"),
        client: dir.join("flight-test-integration-client"),
    };
    let work = match tempfile::tempdir() {
        Ok(work) => work,
        Err(e) => {
            eprintln!("cannot make a work directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = match polyflight_integration::datagen::write_all(work.path()) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("cannot write the data sets: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cases = matrix::scenario_cases();
    cases.extend(files.into_iter().map(Case::Json));
    let mut results = Vec::new();
    for transport in &transports {
        let dir = work.path().join(transport.name().replace('+', "_"));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot make {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        eprintln!("running {} cases over {transport}…", cases.len());
        results.extend(matrix::run_transport(&binaries, *transport, &cases, &dir));
    }
    println!("{}", matrix::table(&results, &transports));
    for r in results.iter().filter(|r| !r.passed) {
        println!("{} over {}: {}", r.case, r.transport, r.detail);
    }
    for (case, why) in matrix::KNOWN_GAPS {
        println!("known gap: {case}: {why}");
    }
    let (failed, fixed) = matrix::surprises(&results);
    for r in &fixed {
        println!(
            "{} over {} passes but is listed as a known gap: update KNOWN_GAPS",
            r.case, r.transport
        );
    }
    let passed = results.iter().filter(|r| r.passed).count();
    println!("{passed} of {} cases passed", results.len());
    if failed.is_empty() && fixed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
