//! `cargo xtask fuzz [--seconds N] [--runs N] [--sanitizer address|none] [TARGET…]`: the fuzz
//! targets of the network-facing parsers (`crates/polyflight-fuzz`), each for N seconds (default
//! 60) or, with `--runs` (libFuzzer only), for N executions (with `--seconds` too, whichever
//! comes first).
//!
//! With a nightly toolchain, coverage-guided: libFuzzer through `cargo fuzz` (installed here if
//! missing), starting from the seeds `tests/fuzz_smoke.rs` writes, built optimised with debug
//! assertions (so integer overflow panics) and with AddressSanitizer, or no sanitizer with
//! `--sanitizer none` (a much faster build; the code under test is safe Rust). Without a nightly
//! toolchain, the same entry points run on stable under `tests/fuzz_smoke.rs`'s mutator, which
//! finds shallow crashes only, and this says so. A crash fails the command; libFuzzer leaves the
//! input in `crates/polyflight-fuzz/artifacts/<target>/`.

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

/// The sanitizer of the libFuzzer build (`cargo fuzz -s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sanitizer {
    Address,
    None,
}

impl Sanitizer {
    fn name(self) -> &'static str {
        match self {
            Sanitizer::Address => "address",
            Sanitizer::None => "none",
        }
    }
}

/// How long each target runs, and how the libFuzzer build is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Seconds per target (`-max_total_time`).
    pub seconds: Option<u64>,
    /// Executions per target (`-runs`, libFuzzer only).
    pub runs: Option<u64>,
    pub sanitizer: Sanitizer,
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
    let mut seconds = None;
    let mut runs = None;
    let mut sanitizer = Sanitizer::Address;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number")?;
                seconds = Some(value.parse().context("--seconds needs a whole number")?);
            }
            "--runs" => {
                let value = args.next().context("--runs needs a number")?;
                runs = Some(value.parse().context("--runs needs a whole number")?);
            }
            "--sanitizer" => {
                sanitizer = match args.next().map(String::as_str) {
                    Some("address") => Sanitizer::Address,
                    Some("none") => Sanitizer::None,
                    _ => bail!("--sanitizer needs `address` or `none`"),
                };
            }
            name if TARGETS.contains(&name) => targets.push(name.to_string()),
            other => bail!(
                "unknown fuzz argument `{other}` (usage: cargo xtask fuzz [--seconds N] [--runs N] \
                 [--sanitizer address|none] [TARGET…]; targets: {})",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    if seconds.is_none() && runs.is_none() {
        seconds = Some(60);
    }
    let engine = engine()?;
    if engine == Engine::Stable {
        println!("fuzz: no nightly toolchain here, so no libFuzzer");
    }
    let limits = Limits {
        seconds,
        runs,
        sanitizer,
    };
    fuzz_with(engine, limits, &targets)
}

/// Runs `targets` for `seconds` each with `engine` (libFuzzer: with AddressSanitizer).
pub fn fuzz(engine: Engine, seconds: u64, targets: &[String]) -> Result<()> {
    let limits = Limits {
        seconds: Some(seconds),
        runs: None,
        sanitizer: Sanitizer::Address,
    };
    fuzz_with(engine, limits, targets)
}

/// Runs `targets` with `engine` within `limits`.
pub fn fuzz_with(engine: Engine, limits: Limits, targets: &[String]) -> Result<()> {
    let root = workspace_root();
    match engine {
        Engine::Stable => {
            if limits.runs.is_some() {
                bail!(
                    "--runs needs libFuzzer (a nightly toolchain); the stable mutator takes \
                     --seconds"
                );
            }
            let seconds = limits.seconds.unwrap_or(60);
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
            let sanitizer = limits.sanitizer.name();
            let mut budget = Vec::new();
            if let Some(runs) = limits.runs {
                budget.push(format!("{runs} executions"));
            }
            if let Some(seconds) = limits.seconds {
                budget.push(format!("{seconds} s"));
            }
            let budget = budget.join(" or ");
            for target in targets {
                println!("fuzz: {target}, {budget} (libFuzzer, sanitizer: {sanitizer})");
                let target_corpus = corpus.join(target);
                let mut fuzz = Command::new("cargo");
                fuzz.current_dir(&root)
                    .args(["+nightly", "fuzz", "run", "-O", "-a", "-s", sanitizer])
                    .arg("--fuzz-dir")
                    .arg(&fuzz_dir)
                    .arg(target)
                    .arg(&target_corpus)
                    .arg("--");
                if let Some(runs) = limits.runs {
                    fuzz.arg(format!("-runs={runs}"));
                }
                if let Some(seconds) = limits.seconds {
                    fuzz.arg(format!("-max_total_time={seconds}"));
                }
                let status = fuzz
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
