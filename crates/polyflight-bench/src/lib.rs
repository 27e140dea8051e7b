//! polyflight-bench: the transport benchmark behind `polyflight bench`.
//!
//! One run measures, side by side and on the same data, every transport registered in a
//! [`Registry`](polyflight::Registry), the Rust `arrow-flight` crate over TCP as the comparison,
//! and raw TCP and Unix sockets as ceilings:
//!
//! - DoGet, DoPut and DoExchange throughput with N concurrent streams, in MB/s (10^6 bytes) of
//!   Arrow IPC data bytes counted by the client;
//! - round-trip latency of small calls (GetFlightInfo, DoAction) with p50/p95/p99/max;
//! - CPU seconds per GB moved, for the process and split between client and server threads.
//!
//! The pieces, each usable on its own:
//! - [`command`]: the perf protocol (what a client asks a perf server for) — protobuf, with the
//!   field numbers of Arrow C++'s perf server for the shared part;
//! - [`data`]: the batches moved, generated once and cloned;
//! - [`service`]: [`PerfService`], the perf server over any polyflight transport;
//! - [`reference`]: the same server and client written with the arrow-flight crate;
//! - [`echo`]: a bare tonic unary echo, the latency floor of a gRPC call;
//! - [`ceiling`]: raw-socket ceilings; `ucx_ceiling` (Linux): raw UCX, measured with
//!   `ucx_perftest`;
//! - [`workload`]: the workloads, written once against [`PerfClient`];
//! - [`cpu`]: CPU accounting;
//! - [`process`]: perf servers in processes of their own ([`ServeCommand`]);
//! - [`runner`]: plans and runs the rows ([`run`]);
//! - [`report`], [`svg`]: the results as a terminal table, JSON and an SVG chart.
//!
//! ```no_run
//! let config = polyflight_bench::BenchConfig::quick();
//! let report = polyflight_bench::run(&config, &polyflight::default_registry(), &mut |line| {
//!     eprintln!("{line}")
//! })?;
//! print!("{}", polyflight_bench::render_table(&report));
//! # Ok::<(), polyflight_bench::BenchError>(())
//! ```

#![warn(missing_docs)]

pub mod ceiling;
pub mod command;
pub mod config;
pub mod cpu;
pub mod data;
pub mod echo;
pub mod process;
pub mod reference;
pub mod report;
pub mod runner;
pub mod service;
pub mod svg;
#[cfg(target_os = "linux")]
pub mod ucx_ceiling;
pub mod workload;

pub use command::{DataKind, DataSpec, PerfCommand, PerfTicket, PutSummary, PING_ACTION};
pub use config::{BenchConfig, TargetConfig, Workloads};
pub use process::ServeCommand;
pub use report::{render_table, BenchReport, RowKind, RowReport, Throughput, Workload};
pub use runner::{run, run_with_servers};
pub use service::PerfService;
pub use svg::render_svg;
pub use workload::{PerfClient, PerfEndpoint, PolyflightPerfClient};

use polyflight::FlightError;

/// What can go wrong in a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A Flight call failed.
    #[error("{0}")]
    Flight(#[from] FlightError),
    /// A peer sent something the perf protocol does not allow, or answered wrongly.
    #[error("perf protocol: {0}")]
    Protocol(String),
    /// The arrow-flight reference client or server failed.
    #[error("arrow-flight: {0}")]
    ArrowFlight(String),
    /// A socket, file or runtime could not be set up.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration does not make sense.
    #[error("configuration: {0}")]
    Config(String),
    /// Anything else (a task that panicked, …).
    #[error("{0}")]
    Other(String),
}
