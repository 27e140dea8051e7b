//! `polyflight`: the command-line tool of polyflight.
//!
//! - `polyflight serve DIR URI…`: serves a directory of Arrow and Parquet files (or, with
//!   `--service memory|perf`, the in-memory store or the benchmark's perf service) on any URIs;
//! - `polyflight put | get | list | info URI`: upload files, download flights to files, list and
//!   inspect flights, over any transport, with TLS and logins;
//! - `polyflight hash-password USER`: a line for `serve --auth-basic FILE`;
//! - `polyflight bench` / `report`: the transport benchmark.
//!
//! Every failure is one line on stderr and an exit code scripts can rely on ([`fail::Exit`]).

mod args;
mod bench;
mod catalog;
mod connect;
mod fail;
mod files;
mod get;
mod output;
mod passwords;
mod progress;
mod put;
mod serve;

/// mimalloc rather than glibc's malloc: a file server reading ahead through freed and
/// reallocated megabyte buffers peaked at 126 MiB on glibc (freed memory kept in per-thread
/// arenas) against 83–92 MiB on mimalloc, at the same throughput (docs/benchmarks.md,
/// "Allocator"). Libraries leave the choice to the application.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use args::{Cli, Command};
use clap::Parser;
use fail::{Failure, Outcome};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors; everything else clap rejects is a usage
            // error, exit 1 (clap's own default would be 2, which here means a connection
            // failure).
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(fail::Exit::Usage as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("polyflight: {failure}");
            ExitCode::from(failure.exit as u8)
        }
    }
}

/// Log events of the libraries (a refused TLS client, a peer breaking the protocol, an I/O
/// back-end falling back) go to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn run(cli: Cli) -> Outcome {
    match cli.command {
        // The benchmark builds its own runtimes, one per side, so it runs outside any.
        Command::Bench(args) => Ok(bench::bench(args)?),
        Command::Report(args) => Ok(bench::report(args)?),
        Command::HashPassword(args) => passwords::hash_password(args),
        other => {
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|err| Failure::other(format!("starting the runtime: {err}")))?;
            let outcome = runtime.block_on(async move {
                match other {
                    Command::Serve(args) => serve::serve(args).await,
                    Command::Get(args) => get::get(args).await,
                    Command::Put(args) => put::put(args).await,
                    Command::List(args) => catalog::list(args).await,
                    Command::Info(args) => catalog::info(args).await,
                    Command::Bench(_) | Command::Report(_) | Command::HashPassword(_) => Ok(()),
                }
            });
            // A blocking reader or writer still finishing after a failure must not hold the
            // process: its work is abandoned with the command.
            runtime.shutdown_timeout(Duration::from_secs(1));
            outcome
        }
    }
}
