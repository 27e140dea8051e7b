//! `cargo xtask`: the project's own tooling. Every set-up step a fresh machine needs lives here,
//! so the README's commands work with nothing but the Rust toolchain installed.
//!
//! - `cargo xtask deps`     install the system packages the build needs (UCX: autotools, clang)
//! - `cargo xtask codegen`  regenerate the checked-in protobuf code from `proto/` (`--check`: fail if stale)
//! - `cargo xtask test`     everything CI runs: format, lint, codegen check, the whole test suite
//! - `cargo xtask ci`       the same as `test`
//! - `cargo xtask bench`    the transport benchmark, quick preset (extra args go to `polyflight bench`)
//! - `cargo xtask fuzz`     the fuzz targets of the network-facing parsers (`--seconds N`, target names)
//! - `cargo xtask integration [TRANSPORTS]`  Arrow's Flight integration scenarios and JSON data
//!   sets, our server × our client over grpc, grpc+tls, grpc+unix and ucx (or the comma-separated
//!   TRANSPORTS), and polyflight × pyarrow both ways over the gRPC ones, printed as a table

mod codegen;
mod deps;
mod fuzz;
mod venv;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    match cmd {
        "deps" => deps::ensure_build_deps(),
        "codegen" => codegen::run(rest.iter().any(|a| a == "--check")),
        "test" | "ci" => test(rest),
        "bench" => bench(rest),
        "fuzz" => fuzz::command(rest),
        "integration" => integration(rest),
        "interop-venv" => {
            venv::ensure_interop_venv().map(|python| println!("{}", python.display()))
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <deps|codegen [--check]|test|ci|bench [ARGS…]|integration [TRANSPORTS]|fuzz [--seconds N] [--runs N] [--sanitizer address|none] [TARGET…]>"
            );
            if cmd == "help" {
                Ok(())
            } else {
                bail!("unknown xtask command `{cmd}`")
            }
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `program args…` in the workspace root, failing with the command line when it fails.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("xtask: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    // Incremental caches pay off when one crate is rebuilt again and again, not in a run that
    // builds each crate once; on a fresh checkout they would add gigabytes to the target dir.
    if std::env::var_os("CARGO_INCREMENTAL").is_none() {
        std::env::set_var("CARGO_INCREMENTAL", "0");
    }
    deps::ensure_build_deps()?;
    deps::offer_test_packages();
    run("cargo", &["fmt", "--all", "--check"])?;
    codegen::run(true)?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The pyarrow interop tests run their Python peers with this interpreter.
    let python = venv::ensure_interop_venv()?;
    std::env::set_var("POLYFLIGHT_PYTHON", &python);
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)?;
    // UCX's layer is unsafe FFI whose bugs show at higher optimisation levels (the released
    // async-ucx fails only in release builds), so its tests and its conformance row run in
    // release too.
    run("cargo", &["test", "--release", "-p", "polyflight-ucx"])?;
    run(
        "cargo",
        &[
            "test",
            "--release",
            "-p",
            "polyflight",
            "--test",
            "conformance",
            "ucx::",
        ],
    )?;
    // The integration matrix ran above, as the tests of polyflight-integration (one per
    // transport); `cargo xtask integration` runs it again as a table. Building its binaries
    // outside the test profile here would compile arrow once more for nothing.
    // A 30-second smoke run of every fuzz target, under the stable mutator: the libFuzzer build
    // (nightly, AddressSanitizer) compiles everything once more, which CI has no time for;
    // `cargo xtask fuzz` is the coverage-guided run.
    let targets: Vec<String> = fuzz::TARGETS.iter().map(|t| t.to_string()).collect();
    fuzz::fuzz(fuzz::Engine::Stable, 30, &targets)
}

/// `cargo xtask integration [TRANSPORTS]`: the integration matrix (every scenario and generated
/// JSON data set, our server binary × our client binary, over each transport) as a table. The
/// binaries are built first, since the matrix runs them as subprocesses.
fn integration(extra: &[String]) -> Result<()> {
    deps::ensure_build_deps()?;
    // The pyarrow pairs of the matrix run their peer with this interpreter.
    let python = venv::ensure_interop_venv()?;
    std::env::set_var("POLYFLIGHT_PYTHON", &python);
    run(
        "cargo",
        &["build", "-p", "polyflight-integration", "--bins"],
    )?;
    let mut args = vec![
        "run",
        "-p",
        "polyflight-integration",
        "--bin",
        "flight-test-integration-matrix",
        "--",
    ];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)
}

/// `cargo xtask bench [ARGS…]`: every registered transport side by side with arrow-flight,
/// pyarrow's server (from the interop venv, made here when missing) and the raw-socket ceilings (quick preset, about a minute on 2 cores once built). The report and
/// chart go under `target/bench/`; ARGS are passed on to `polyflight bench` and win over these.
fn bench(extra: &[String]) -> Result<()> {
    deps::ensure_build_deps()?;
    // The pyarrow row runs pyarrow's Flight server with this interpreter.
    let python = venv::ensure_interop_venv()?;
    std::env::set_var("POLYFLIGHT_PYTHON", &python);
    let mut args = vec![
        "run",
        "--release",
        "-p",
        "polyflight-cli",
        "--",
        "bench",
        "--json",
        "target/bench/polyflight-bench.json",
        "--svg",
        "target/bench/polyflight-bench.svg",
    ];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)
}
