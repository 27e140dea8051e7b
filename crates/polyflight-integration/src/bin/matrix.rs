//! `flight-test-integration-matrix [TRANSPORT,…] [--no-pyarrow]`: runs every scenario and every
//! generated JSON data set between integration servers and clients over the given transports
//! (default: all of grpc, grpc+tls, grpc+unix, ucx), and prints the table:
//!
//! - polyflight's server against polyflight's client, over every transport;
//! - with pyarrow (the interop venv, or `$POLYFLIGHT_PYTHON`): polyflight against pyarrow in
//!   both directions over the transports pyarrow speaks, and pyarrow against itself over grpc,
//!   which checks the pyarrow peer on its own. Without a usable pyarrow this says why and runs
//!   the polyflight pairs only; `--no-pyarrow` leaves them out on purpose.
//!
//! The server and client binaries are expected beside this one (Cargo builds them into the same
//! directory). Exits 1 when a case fails that is not a known gap, or a known gap passes.

/// The allocator of every binary polyflight ships (see the `polyflight` command).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use polyflight_integration::matrix::{self, Case, CaseResult, Implementation, Transport};
use polyflight_integration::pyarrow;
use std::path::Path;
use std::process::ExitCode;

fn parse_transports(list: &str) -> Option<Vec<Transport>> {
    list.split(',').map(Transport::parse).collect()
}

fn main() -> ExitCode {
    let mut transports = Transport::ALL.to_vec();
    let mut with_pyarrow = true;
    for arg in std::env::args().skip(1) {
        if arg == "--no-pyarrow" {
            with_pyarrow = false;
        } else if let Some(parsed) = parse_transports(&arg) {
            transports = parsed;
        } else {
            eprintln!(
                "unknown argument {arg:?}; usage: flight-test-integration-matrix \
                 [grpc,grpc+tls,grpc+unix,ucx] [--no-pyarrow]"
            );
            return ExitCode::from(2);
        }
    }
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
    else {
        eprintln!("cannot find the directory of this binary");
        return ExitCode::FAILURE;
    };
    let polyflight = Implementation::polyflight(
        dir.join("flight-test-integration-server"),
        dir.join("flight-test-integration-client"),
    );
    let pyarrow = if with_pyarrow {
        let python = pyarrow::default_python();
        match pyarrow::probe(&python) {
            Ok(version) => {
                eprintln!("pyarrow {version} ({})", python.display());
                Some(pyarrow::implementation(&python))
            }
            Err(why) => {
                eprintln!(
                    "the pyarrow pairs are not run: {why} (`cargo xtask interop-venv` makes the venv)"
                );
                None
            }
        }
    } else {
        None
    };
    let work = match tempfile::tempdir() {
        Ok(work) => work,
        Err(e) => {
            eprintln!("cannot make a work directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = match write_data_sets(work.path()) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("cannot write the data sets: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cases = matrix::scenario_cases();
    cases.extend(files.into_iter().map(Case::Json));

    let mut pairs = vec![(&polyflight, &polyflight, transports.clone())];
    if let Some(pyarrow) = &pyarrow {
        let spoken: Vec<Transport> = transports
            .iter()
            .copied()
            .filter(|t| pyarrow.speaks(*t))
            .collect();
        pairs.push((&polyflight, pyarrow, spoken.clone()));
        pairs.push((pyarrow, &polyflight, spoken));
        if transports.contains(&Transport::Grpc) {
            pairs.push((pyarrow, pyarrow, vec![Transport::Grpc]));
        }
    }
    let mut results: Vec<CaseResult> = Vec::new();
    for (server, client, over) in pairs {
        for transport in over {
            let dir = work.path().join(format!(
                "{}_{}_{}",
                server.name,
                client.name,
                transport.name().replace('+', "_")
            ));
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("cannot make {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
            eprintln!(
                "running {} cases, {} server × {} client over {transport}…",
                cases.len(),
                server.name,
                client.name
            );
            results.extend(matrix::run_pair(server, client, transport, &cases, &dir));
        }
    }
    println!("{}", matrix::table(&results, &transports));
    for r in results.iter().filter(|r| !r.passed && r.skipped.is_none()) {
        println!(
            "{} over {} ({}): {}",
            r.case,
            r.transport,
            r.pair(),
            r.detail
        );
    }
    let mut reasons: Vec<&str> = results
        .iter()
        .filter_map(|r| r.skipped.as_deref())
        .collect();
    reasons.sort_unstable();
    reasons.dedup();
    for why in reasons {
        println!("skipped: {why}");
    }
    for (case, why) in matrix::KNOWN_GAPS {
        println!("known gap: {case}: {why}");
    }
    let (failed, fixed) = matrix::surprises(&results);
    for r in &fixed {
        println!(
            "{} over {} ({}) passes but is listed as a known gap: update KNOWN_GAPS",
            r.case,
            r.transport,
            r.pair()
        );
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let skipped = results.iter().filter(|r| r.skipped.is_some()).count();
    println!(
        "{passed} passed, {} failed, {skipped} skipped",
        results.len() - passed - skipped
    );
    if failed.is_empty() && fixed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The data sets as integration JSON, each with its IPC copy for pyarrow.
fn write_data_sets(dir: &Path) -> polyflight_integration::Outcome<Vec<std::path::PathBuf>> {
    let files = polyflight_integration::datagen::write_all(dir)?;
    for file in &files {
        pyarrow::write_ipc_twin(file)?;
    }
    Ok(files)
}
