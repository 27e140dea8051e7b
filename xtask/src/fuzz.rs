//! `cargo xtask fuzz [--seconds N] [TARGET…]`: the fuzz targets of the network-facing parsers
//! (`crates/polyflight-fuzz`), each for N seconds (default 60).
//!
//! With a nightly toolchain, coverage-guided: libFuzzer through `cargo fuzz` (installed here if
//! missing), starting from the seeds `tests/fuzz_smoke.rs` writes, with AddressSanitizer. Without
//! one, the same entry points run on stable under `tests/fuzz_smoke.rs`'s mutator, which finds
//! shallow crashes only, and this says so. A crash fails the command; libFuzzer leaves the input
//! in `crates/polyflight-fuzz/artifacts/<target>/`.

use crate::{run, workspace_root};
use anyhow::{bail, Context, Result};
use std::process::Command;

pub const TARGETS: [&str; 5] = [
    "flight_data_decode",
    "grpc_messages",
    "authority_rewriter",
    "ucx_frames",
    "location_parse",
];

/// How the targets can be run here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// libFuzzer with `cargo +nightly fuzz`.
    LibFuzzer,
    /// The stable smoke test's mutator.
    Stable,
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// libFuzzer if a nightly toolchain is there (installing `cargo fuzz` if it is missing), else
/// the stable mutator.
pub fn engine() -> Result<Engine> {
    if !succeeds("cargo", &["+nightly", "--version"]) {
        return Ok(Engine::Stable);
    }
    if !succeeds("cargo", &["+nightly", "fuzz", "--version"]) {
        run("cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    Ok(Engine::LibFuzzer)
}

pub fn command(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number")?;
                seconds = value.parse().context("--seconds needs a whole number")?;
            }
            name if TARGETS.contains(&name) => targets.push(name.to_string()),
            other => bail!(
                "unknown fuzz argument `{other}` (targets: {})",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    let engine = engine()?;
    if engine == Engine::Stable {
        println!("fuzz: no nightly toolchain here, so no libFuzzer");
    }
    fuzz(engine, seconds, &targets)
}

/// Runs `targets` for `seconds` each with `engine`.
pub fn fuzz(engine: Engine, seconds: u64, targets: &[String]) -> Result<()> {
    let root = workspace_root();
    match engine {
        Engine::Stable => {
            println!(
                "fuzz: the stable mutator of tests/fuzz_smoke.rs, {seconds} s per target (shallow \
                 crashes only; `cargo xtask fuzz` with a nightly toolchain runs libFuzzer)"
            );
            let status = Command::new("cargo")
                .current_dir(&root)
                .env("POLYFLIGHT_FUZZ_SECONDS", seconds.to_string())
                .args([
                    "test",
                    "--release",
                    "-p",
                    "polyflight",
                    "--test",
                    "fuzz_smoke",
                    "--",
                ])
                .args(targets)
                .arg("--nocapture")
                .status()
                .context("running cargo test")?;
            if !status.success() {
                bail!("the stable fuzz smoke run failed");
            }
        }
        Engine::LibFuzzer => {
            let fuzz_dir = root.join("crates/polyflight-fuzz");
            let corpus = fuzz_dir.join("corpus");
            let status = Command::new("cargo")
                .current_dir(&root)
                .env("POLYFLIGHT_FUZZ_SEEDS", &corpus)
                .args([
                    "test",
                    "-p",
                    "polyflight",
                    "--test",
                    "fuzz_smoke",
                    "write_seeds",
                ])
                .status()
                .context("writing the fuzz seeds")?;
            if !status.success() {
                bail!("writing the fuzz seeds failed");
            }
            for target in targets {
                println!("fuzz: {target}, {seconds} s (libFuzzer)");
                let target_corpus = corpus.join(target);
                let status = Command::new("cargo")
                    .current_dir(&root)
                    .args(["+nightly", "fuzz", "run", "-O", "--fuzz-dir"])
                    .arg(&fuzz_dir)
                    .arg(target)
                    .arg(&target_corpus)
                    .arg("--")
                    .arg(format!("-max_total_time={seconds}"))
                    .arg("-print_final_stats=1")
                    .status()
                    .context("running cargo fuzz")?;
                if !status.success() {
                    bail!("fuzz target {target} failed: see crates/polyflight-fuzz/artifacts/{target}/");
                }
            }
        }
    }
    Ok(())
}
