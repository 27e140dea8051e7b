//! What a benchmark run found, in a form for people (a terminal table, [`render_table`]) and
//! for machines (JSON through serde).
//!
//! Units, stated once and used everywhere:
//! - **data bytes**: Arrow IPC bytes — `data_header` + `data_body` of every FlightData message —
//!   counted by the client. Wire bytes (gRPC/HTTP/2/TLS framing) are not measured.
//! - **MB** = 10^6 bytes, **GB** = 10^9 bytes; sizes of single messages are in KiB/MiB (2^10,
//!   2^20) where that reads better, and say so.
//! - **CPU s/GB**: CPU seconds used per 10^9 data bytes moved (see [`crate::cpu`] for what the
//!   process, client and server figures cover).
//! - **latency**: microseconds per round trip, one call in flight at a time.

use crate::config::BenchConfig;
use crate::cpu::CpuUsage;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Name of the row every other row is compared to.
pub const GRPC_ROW: &str = "grpc";
/// Name of the raw TCP ceiling row.
pub const TCP_CEILING_ROW: &str = "raw tcp";
/// Name of the raw Unix-socket ceiling row.
pub const UNIX_CEILING_ROW: &str = "raw unix";
/// Name of the arrow-flight comparison row.
pub const ARROW_FLIGHT_ROW: &str = "arrow-flight (grpc)";
/// The name of the row that measures pyarrow's Flight server (read by polyflight's client).
pub const PYARROW_SERVER_ROW: &str = "pyarrow server (grpc)";
/// pyarrow's Flight client against pyarrow's Flight server.
pub const PYARROW_PAIR_ROW: &str = "pyarrow client, pyarrow server";
/// pyarrow's Flight client against polyflight's grpc server.
pub const PYARROW_CLIENT_ROW: &str = "pyarrow client, grpc server";

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    /// The polyflight version that ran.
    pub polyflight_version: String,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Wall-clock seconds the whole run took.
    pub total_seconds: f64,
    /// The machine it ran on.
    pub machine: Machine,
    /// The command line, when run from the CLI.
    pub command: Option<String>,
    /// The configuration.
    pub config: BenchConfig,
    /// What the figures mean.
    pub units: Units,
    /// One row per transport, reference and ceiling, in run order.
    pub rows: Vec<RowReport>,
}

/// The machine a run happened on.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// CPU model, when known.
    pub cpu_model: Option<String>,
    /// Operating system and architecture.
    pub os: String,
    /// Kernel release, when known.
    pub kernel: Option<String>,
    /// The 1-, 5- and 15-minute load averages when the run started (Linux): other work on the
    /// machine competes with the benchmark for its CPUs.
    pub load_average: Option<[f64; 3]>,
}

impl Machine {
    /// The machine this process runs on.
    pub fn current() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string()),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| parse_loadavg(&s)),
        }
    }
}

/// The three load averages at the start of `/proc/loadavg`.
fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// The units of the report's figures, spelled out for readers of the JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Units {
    /// Unit of `mb_per_s`.
    pub mb_per_s: String,
    /// Unit of `cpu_s_per_gb`.
    pub cpu_s_per_gb: String,
    /// Unit of the latency figures.
    pub latency: String,
    /// What the CPU figures cover.
    pub cpu: String,
}

impl Default for Units {
    fn default() -> Self {
        Units {
            mb_per_s: "10^6 data bytes per second; data bytes = Arrow IPC bytes (FlightData \
                       data_header + data_body) counted by the client; wire framing not included"
                .into(),
            cpu_s_per_gb: "CPU seconds per 10^9 data bytes moved".into(),
            latency: "microseconds per round trip, one call in flight".into(),
            cpu: "process = getrusage(RUSAGE_SELF) user+system of the benchmark process (client \
                  and in-process server together); client/server = CPU time of the threads of \
                  each side (its runtime's threads, threads they started, and transport threads \
                  named as client or server; Linux /proc/self/task); other = process - client - \
                  server"
                .into(),
        }
    }
}

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// A transport of the registry, polyflight client and server.
    Transport,
    /// The arrow-flight crate's client and server.
    Reference,
    /// A raw socket, no RPC.
    Ceiling,
    /// An external server (`--target`).
    Target,
}

/// A throughput workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workload {
    /// Server to client, N streams.
    DoGet,
    /// Client to server, N streams.
    DoPut,
    /// Client to server and back (echo), N streams; the figure counts the echoed bytes.
    DoExchange,
    /// A raw socket, one direction (ceilings).
    Socket,
}

impl Workload {
    /// The name shown in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::DoGet => "DoGet",
            Workload::DoPut => "DoPut",
            Workload::DoExchange => "DoExchange",
            Workload::Socket => "socket",
        }
    }
}

/// CPU seconds per GB moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuPerGb {
    /// The whole process.
    pub process: f64,
    /// The client side, when split.
    pub client: Option<f64>,
    /// The server side, when split.
    pub server: Option<f64>,
    /// The rest of the process, when split.
    pub other: Option<f64>,
}

impl CpuPerGb {
    /// CPU per GB of `cpu` for `bytes` moved.
    pub fn new(cpu: &CpuUsage, bytes: u64) -> CpuPerGb {
        CpuPerGb {
            process: CpuUsage::per_gb(cpu.process_s, bytes),
            client: cpu.client_s.map(|s| CpuUsage::per_gb(s, bytes)),
            server: cpu.server_s.map(|s| CpuUsage::per_gb(s, bytes)),
            other: cpu.other_s.map(|s| CpuUsage::per_gb(s, bytes)),
        }
    }
}

/// One throughput measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// The workload.
    pub workload: Workload,
    /// Rows per record batch (0 when unknown: a foreign server's ticket).
    pub batch_rows: u64,
    /// Data bytes of one full batch message (for ceilings: bytes per write).
    pub message_bytes: u64,
    /// Concurrent streams.
    pub streams: u32,
    /// Whether the client decoded the batches (and, for DoPut, the server).
    pub decode: bool,
    /// The data bytes the figure is computed from: received for DoGet, DoExchange and sockets,
    /// sent for DoPut.
    pub data_bytes: u64,
    /// Data bytes the client sent.
    pub sent_bytes: u64,
    /// Data bytes the client received.
    pub received_bytes: u64,
    /// FlightData messages counted.
    pub messages: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Throughput: 10^6 data bytes per second.
    pub mb_per_s: f64,
    /// CPU seconds used.
    pub cpu: CpuUsage,
    /// CPU seconds per 10^9 data bytes.
    pub cpu_s_per_gb: CpuPerGb,
    /// `mb_per_s` over the grpc row's for the same workload and batch size.
    pub vs_grpc: Option<f64>,
    /// `mb_per_s` over the ceiling's (raw socket of the same kind, same write size); DoGet
    /// and DoPut only.
    pub vs_ceiling: Option<f64>,
}

impl Throughput {
    /// A measurement of `data_bytes` in `seconds`; ratios are filled in by
    /// [`BenchReport::compute_ratios`].
    #[allow(clippy::too_many_arguments)] // one constructor for every measured figure
    pub fn new(
        workload: Workload,
        batch_rows: u64,
        message_bytes: u64,
        streams: u32,
        decode: bool,
        sent_bytes: u64,
        received_bytes: u64,
        messages: u64,
        seconds: f64,
        cpu: CpuUsage,
    ) -> Throughput {
        let data_bytes = match workload {
            Workload::DoPut => sent_bytes,
            _ => received_bytes,
        };
        Throughput {
            workload,
            batch_rows,
            message_bytes,
            streams,
            decode,
            data_bytes,
            sent_bytes,
            received_bytes,
            messages,
            seconds,
            mb_per_s: if seconds > 0.0 {
                data_bytes as f64 / seconds / 1e6
            } else {
                0.0
            },
            cpu,
            cpu_s_per_gb: CpuPerGb::new(&cpu, data_bytes),
            vs_grpc: None,
            vs_ceiling: None,
        }
    }
}

/// Round-trip latency of one kind of call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencyStats {
    /// The call (`GetFlightInfo`, `DoAction`).
    pub call: String,
    /// Calls measured.
    pub calls: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 95th percentile, µs.
    pub p95_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Slowest, µs.
    pub max_us: f64,
}

impl LatencyStats {
    /// Statistics of round trips given in nanoseconds. Percentiles are nearest-rank over the
    /// sorted samples: p-th percentile = the smallest sample with at least p % of samples at
    /// or below it.
    pub fn from_nanos(call: &str, mut samples: Vec<u64>) -> LatencyStats {
        samples.sort_unstable();
        let us = |ns: u64| ns as f64 / 1000.0;
        let rank = |p: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let index = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            us(samples[index.clamp(1, samples.len()) - 1])
        };
        let mean = if samples.is_empty() {
            0.0
        } else {
            samples.iter().map(|&s| s as f64).sum::<f64>() / samples.len() as f64 / 1000.0
        };
        LatencyStats {
            call: call.to_string(),
            calls: samples.len() as u64,
            mean_us: mean,
            p50_us: rank(50.0),
            p95_us: rank(95.0),
            p99_us: rank(99.0),
            max_us: samples.last().map_or(0.0, |&s| us(s)),
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowReport {
    /// Row name: the transport's scheme, `arrow-flight (grpc)`, `raw tcp`, `raw unix`, or
    /// `target <uri>`.
    pub name: String,
    /// What the row is.
    pub kind: RowKind,
    /// The URI the server listened on, when there was one.
    pub uri: Option<String>,
    /// The ceiling row this row is compared to.
    pub ceiling: Option<String>,
    /// Throughput measurements.
    pub throughput: Vec<Throughput>,
    /// Latency measurements.
    pub latency: Vec<LatencyStats>,
    /// Workloads that failed, with why.
    pub errors: Vec<String>,
    /// Why the row was not run at all, if it was not.
    pub skipped: Option<String>,
}

impl RowReport {
    /// A row that measured latency only (the tonic echo): left out of the throughput and CPU
    /// tables.
    pub fn latency_only(&self) -> bool {
        self.throughput.is_empty() && !self.latency.is_empty() && self.errors.is_empty()
    }

    /// An empty row.
    pub fn new(name: impl Into<String>, kind: RowKind) -> RowReport {
        RowReport {
            name: name.into(),
            kind,
            uri: None,
            ceiling: None,
            throughput: Vec::new(),
            latency: Vec::new(),
            errors: Vec::new(),
            skipped: None,
        }
    }

    /// The measurement of `workload` at `batch_rows`, if any.
    pub fn find(&self, workload: Workload, batch_rows: u64) -> Option<&Throughput> {
        self.throughput
            .iter()
            .find(|t| t.workload == workload && t.batch_rows == batch_rows)
    }

    /// The latency of `call`, if measured.
    pub fn latency_of(&self, call: &str) -> Option<&LatencyStats> {
        self.latency.iter().find(|l| l.call == call)
    }
}

fn ratio(value: f64, base: f64) -> Option<f64> {
    (base > 0.0).then(|| value / base)
}

impl BenchReport {
    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// A report read back from [`BenchReport::to_json`]'s output.
    pub fn from_json(text: &str) -> Result<BenchReport, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The row named `name`.
    pub fn row(&self, name: &str) -> Option<&RowReport> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// Fills `vs_grpc` and `vs_ceiling` of every measurement from the grpc row and each row's
    /// ceiling row.
    pub fn compute_ratios(&mut self) {
        let grpc = self
            .rows
            .iter()
            .find(|r| r.name == GRPC_ROW && r.kind == RowKind::Transport)
            .cloned();
        let ceilings: Vec<RowReport> = self
            .rows
            .iter()
            .filter(|r| r.kind == RowKind::Ceiling)
            .cloned()
            .collect();
        for row in &mut self.rows {
            let ceiling = row
                .ceiling
                .as_ref()
                .and_then(|name| ceilings.iter().find(|c| &c.name == name));
            for t in &mut row.throughput {
                t.vs_grpc = grpc
                    .as_ref()
                    .filter(|_| t.workload != Workload::Socket)
                    .and_then(|g| g.find(t.workload, t.batch_rows))
                    .and_then(|g| ratio(t.mb_per_s, g.mb_per_s));
                t.vs_ceiling = ceiling
                    .filter(|_| matches!(t.workload, Workload::DoGet | Workload::DoPut))
                    .and_then(|c| c.find(Workload::Socket, t.batch_rows))
                    .and_then(|c| ratio(t.mb_per_s, c.mb_per_s));
            }
        }
    }

    /// The throughput columns of the table: DoGet at every batch size, then DoPut and
    /// DoExchange at the sizes they ran at (ceilings' socket runs show under DoGet).
    pub fn columns(&self) -> Vec<(Workload, u64)> {
        let mut columns: Vec<(Workload, u64)> = Vec::new();
        for workload in [Workload::DoGet, Workload::DoPut, Workload::DoExchange] {
            let mut sizes: Vec<u64> = self
                .rows
                .iter()
                .flat_map(|r| r.throughput.iter())
                .filter(|t| {
                    t.workload == workload
                        || (workload == Workload::DoGet && t.workload == Workload::Socket)
                })
                .map(|t| t.batch_rows)
                .collect();
            sizes.sort_unstable();
            sizes.dedup();
            columns.extend(sizes.into_iter().map(|s| (workload, s)));
        }
        columns
    }

    /// The headline column: DoGet at the largest batch size.
    pub fn headline(&self) -> Option<(Workload, u64)> {
        self.columns()
            .into_iter()
            .filter(|(w, _)| *w == Workload::DoGet)
            .max_by_key(|(_, s)| *s)
    }
}

/// The measurement shown in a table cell: ceilings' socket runs appear under DoGet.
fn cell(row: &RowReport, workload: Workload, batch_rows: u64) -> Option<&Throughput> {
    row.find(workload, batch_rows).or_else(|| {
        (workload == Workload::DoGet)
            .then(|| row.find(Workload::Socket, batch_rows))
            .flatten()
    })
}

/// How a batch size reads in headers: `4096 rows`, or `ticket` when a foreign server chose it.
pub fn rows_label(batch_rows: u64) -> String {
    if batch_rows == 0 {
        "ticket".to_string()
    } else {
        format!("{batch_rows} rows")
    }
}

/// A byte count for people: MB (10^6) with one decimal, or kB below 1 MB.
pub fn human_bytes(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.2} GB", bytes as f64 / 1e9)
    } else if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    }
}

/// A message size in binary units (KiB, MiB), as batch sizes are usually thought of.
pub fn human_binary(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.decimals$}"))
}

/// Lays out rows of cells: the first column left-aligned, the others right-aligned, two
/// spaces apart.
fn layout(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c == 0 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str("  ");
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The report as tables for a terminal: throughput with ratios, CPU per GB, latency, and any
/// failures.
pub fn render_table(report: &BenchReport) -> String {
    let mut out = String::new();
    let config = &report.config;
    let machine = &report.machine;
    let _ = writeln!(
        out,
        "polyflight bench {} — {} CPUs ({}), {}{}; {} stream(s); {} columns of {}{}{}",
        report.polyflight_version,
        machine.cpus,
        machine.cpu_model.as_deref().unwrap_or("unknown CPU"),
        machine.os,
        machine
            .load_average
            .map(|l| format!(", load average {:.2} at start", l[0]))
            .unwrap_or_default(),
        config.streams,
        config.columns,
        config.kind,
        if config.decode {
            "; client decodes"
        } else {
            ""
        },
        if config.server_processes {
            "; servers in processes of their own"
        } else {
            ""
        },
    );
    let columns = report.columns();
    let headline = report.headline();

    let _ = writeln!(
        out,
        "\nThroughput, MB/s (1 MB = 10^6 bytes of Arrow IPC data — FlightData header + body — \
         counted by the client)"
    );
    let mut lines = vec![
        std::iter::once(String::new())
            .chain(columns.iter().map(|(w, _)| w.as_str().to_string()))
            .chain(["×grpc".to_string(), "×ceiling".to_string()])
            .collect::<Vec<_>>(),
        std::iter::once("transport".to_string())
            .chain(columns.iter().map(|(_, s)| rows_label(*s)))
            .chain(headline.iter().flat_map(|(w, s)| {
                let label = format!("({} {})", w.as_str(), rows_label(*s));
                [label.clone(), label]
            }))
            .collect(),
    ];
    for row in report
        .rows
        .iter()
        .filter(|r| r.skipped.is_none() && !r.latency_only())
    {
        let mut line = vec![row.name.clone()];
        for (workload, size) in &columns {
            line.push(
                cell(row, *workload, *size)
                    .map_or_else(|| "–".to_string(), |t| format!("{:.1}", t.mb_per_s)),
            );
        }
        let head = headline.and_then(|(w, s)| cell(row, w, s));
        line.push(opt(head.and_then(|t| t.vs_grpc), 2));
        line.push(match (head.and_then(|t| t.vs_ceiling), &row.ceiling) {
            (Some(r), Some(name)) => format!("{r:.2} {name}"),
            _ => "–".to_string(),
        });
        lines.push(line);
    }
    out.push_str(&layout(&lines));
    let sizes: Vec<String> = columns
        .iter()
        .filter(|(w, _)| *w == Workload::DoGet)
        .filter_map(|(_, s)| {
            report
                .rows
                .iter()
                .find_map(|r| cell(r, Workload::DoGet, *s))
                .map(|t| format!("{} = {}", rows_label(*s), human_binary(t.message_bytes)))
        })
        .collect();
    if !sizes.is_empty() {
        let ceilings = report.rows.iter().any(|r| r.kind == RowKind::Ceiling);
        let _ = writeln!(
            out,
            "batch messages: {}{}",
            sizes.join(", "),
            if ceilings {
                "; ceilings write the same sizes one way"
            } else {
                ""
            }
        );
    }

    if let Some((hw, hs)) = headline {
        let _ = writeln!(
            out,
            "\nCPU seconds per GB (10^9 data bytes): {} {} split by side (other: threads of \
             neither side, or ended mid-run); DoPut and DoExchange whole process",
            hw.as_str(),
            rows_label(hs)
        );
        let mut lines = vec![vec![
            "transport".to_string(),
            "process".to_string(),
            "client".to_string(),
            "server".to_string(),
            "other".to_string(),
            "cores busy".to_string(),
            "DoPut".to_string(),
            "DoExchange".to_string(),
        ]];
        for row in report
            .rows
            .iter()
            .filter(|r| r.skipped.is_none() && !r.latency_only())
        {
            let head = cell(row, hw, hs);
            // Ceilings measured in other processes (raw UCX) carry no CPU figures.
            if row.kind == RowKind::Ceiling && head.is_some_and(|t| t.cpu.process_s == 0.0) {
                continue;
            }
            let process_of = |w: Workload| {
                row.throughput
                    .iter()
                    .filter(|t| t.workload == w)
                    .max_by_key(|t| t.batch_rows)
                    .map(|t| t.cpu_s_per_gb.process)
            };
            lines.push(vec![
                row.name.clone(),
                opt(head.map(|t| t.cpu_s_per_gb.process), 2),
                opt(head.and_then(|t| t.cpu_s_per_gb.client), 2),
                opt(head.and_then(|t| t.cpu_s_per_gb.server), 2),
                opt(head.and_then(|t| t.cpu_s_per_gb.other), 2),
                opt(
                    head.filter(|t| t.seconds > 0.0)
                        .map(|t| t.cpu.process_s / t.seconds),
                    2,
                ),
                opt(process_of(Workload::DoPut), 2),
                opt(process_of(Workload::DoExchange), 2),
            ]);
        }
        out.push_str(&layout(&lines));
    }

    let calls: Vec<String> = {
        let mut calls: Vec<String> = Vec::new();
        for l in report.rows.iter().flat_map(|r| r.latency.iter()) {
            if !calls.contains(&l.call) {
                calls.push(l.call.clone());
            }
        }
        calls
    };
    if !calls.is_empty() {
        let count = report
            .rows
            .iter()
            .flat_map(|r| r.latency.iter())
            .map(|l| l.calls)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "\nRound-trip latency, µs (sequential calls, one in flight, {count} per call type)"
        );
        let mut head = vec![String::new()];
        let mut sub = vec!["transport".to_string()];
        for call in &calls {
            for p in ["p50", "p95", "p99", "max"] {
                head.push(if p == "p50" {
                    call.clone()
                } else {
                    String::new()
                });
                sub.push(p.to_string());
            }
        }
        let mut lines = vec![head, sub];
        for row in report.rows.iter().filter(|r| !r.latency.is_empty()) {
            let mut line = vec![row.name.clone()];
            for call in &calls {
                let l = row.latency_of(call);
                line.push(opt(l.map(|l| l.p50_us), 0));
                line.push(opt(l.map(|l| l.p95_us), 0));
                line.push(opt(l.map(|l| l.p99_us), 0));
                line.push(opt(l.map(|l| l.max_us), 0));
            }
            lines.push(line);
        }
        out.push_str(&layout(&lines));
    }

    let problems: Vec<String> = report
        .rows
        .iter()
        .flat_map(|r| {
            r.skipped
                .iter()
                .map(move |s| format!("{}: skipped: {s}", r.name))
                .chain(r.errors.iter().map(move |e| format!("{}: {e}", r.name)))
        })
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\nNot measured:");
        for p in problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn cpu(process_s: f64) -> CpuUsage {
        CpuUsage {
            process_s,
            client_s: Some(process_s / 2.0),
            server_s: Some(process_s / 2.0),
            other_s: Some(0.0),
        }
    }

    fn get(rows: u64, mb: f64) -> Throughput {
        let bytes = (mb * 1e6) as u64;
        Throughput::new(
            Workload::DoGet,
            rows,
            rows * 32 + 200,
            4,
            false,
            0,
            bytes,
            100,
            1.0,
            cpu(1.0),
        )
    }

    /// A small report: grpc, a unix transport, a ceiling for each, one failed row.
    pub(crate) fn sample() -> BenchReport {
        let mut grpc = RowReport::new(GRPC_ROW, RowKind::Transport);
        grpc.ceiling = Some(TCP_CEILING_ROW.into());
        grpc.throughput = vec![get(4096, 500.0), get(32768, 800.0)];
        grpc.throughput.push(Throughput::new(
            Workload::DoPut,
            32768,
            1 << 20,
            4,
            false,
            700_000_000,
            0,
            10,
            1.0,
            cpu(1.4),
        ));
        grpc.latency = vec![
            LatencyStats::from_nanos("GetFlightInfo", (1..=100).map(|i| i * 1000).collect()),
            LatencyStats::from_nanos("DoAction", vec![50_000; 10]),
        ];
        let mut unix = RowReport::new("grpc+unix", RowKind::Transport);
        unix.ceiling = Some(UNIX_CEILING_ROW.into());
        unix.throughput = vec![get(4096, 600.0), get(32768, 1000.0)];
        let mut tcp = RowReport::new(TCP_CEILING_ROW, RowKind::Ceiling);
        let mut socket = get(32768, 2000.0);
        socket.workload = Workload::Socket;
        tcp.throughput = vec![socket.clone()];
        let mut raw_unix = RowReport::new(UNIX_CEILING_ROW, RowKind::Ceiling);
        socket.mb_per_s = 4000.0;
        raw_unix.throughput = vec![socket];
        let mut ucx = RowReport::new("ucx", RowKind::Transport);
        ucx.skipped = Some("no loopback endpoint".into());
        let mut report = BenchReport {
            polyflight_version: "0.1.0".into(),
            started_unix_s: 0,
            total_seconds: 1.0,
            machine: Machine {
                cpus: 2,
                cpu_model: Some("Test CPU".into()),
                os: "linux x86_64".into(),
                kernel: None,
                load_average: Some([0.5, 0.25, 0.125]),
            },
            command: None,
            config: BenchConfig::quick(),
            units: Units::default(),
            rows: vec![grpc, unix, ucx, tcp, raw_unix],
        };
        report.compute_ratios();
        report
    }

    #[test]
    fn ratios_compare_to_grpc_and_to_the_ceiling_of_the_same_kind() {
        let report = sample();
        let unix = report.row("grpc+unix").unwrap();
        let t = unix.find(Workload::DoGet, 32768).unwrap();
        assert!((t.vs_grpc.unwrap() - 1.25).abs() < 1e-9);
        assert!((t.vs_ceiling.unwrap() - 0.25).abs() < 1e-9);
        // No ceiling measured at 4096 rows, no grpc DoPut for unix.
        assert_eq!(unix.find(Workload::DoGet, 4096).unwrap().vs_ceiling, None);
        let grpc = report.row(GRPC_ROW).unwrap();
        let put = grpc.find(Workload::DoPut, 32768).unwrap();
        assert_eq!(put.vs_grpc, Some(1.0));
        assert!((put.vs_ceiling.unwrap() - 0.35).abs() < 1e-9);
        assert!((put.cpu_s_per_gb.process - 2.0).abs() < 1e-9);
        assert_eq!(put.data_bytes, 700_000_000);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = LatencyStats::from_nanos("x", (1..=100).rev().map(|i| i * 1000).collect());
        assert_eq!(
            (l.p50_us, l.p95_us, l.p99_us, l.max_us),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(l.mean_us, 50.5);
        let one = LatencyStats::from_nanos("x", vec![7000]);
        assert_eq!((one.p50_us, one.p99_us), (7.0, 7.0));
        let none = LatencyStats::from_nanos("x", vec![]);
        assert_eq!((none.calls, none.p99_us), (0, 0.0));
    }

    #[test]
    fn the_table_shows_every_row_column_and_failure() {
        let text = render_table(&sample());
        let expected = [
            "DoGet",
            "4096 rows",
            "32768 rows",
            "DoPut",
            "grpc+unix",
            "raw tcp",
            "raw unix",
            "1000.0",
            "1.25",
            "0.25 raw unix",
            "ucx: skipped: no loopback endpoint",
            "GetFlightInfo",
            "p99",
            "1 MB = 10^6 bytes",
        ];
        for needle in expected {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Columns line up: every line of the throughput table has its cells right-aligned.
        let grpc_line = text.lines().find(|l| l.starts_with("grpc ")).unwrap();
        let unix_line = text.lines().find(|l| l.starts_with("grpc+unix")).unwrap();
        assert_eq!(
            grpc_line.find("500.0").map(|i| i + 5),
            unix_line.find("600.0").map(|i| i + 5)
        );
        // Ceilings have no DoPut: a dash, not a number.
        let tcp_line = text.lines().find(|l| l.starts_with("raw tcp")).unwrap();
        assert!(tcp_line.contains('–'), "{tcp_line}");
    }

    #[test]
    fn the_json_round_trips() {
        let report = sample();
        let json = serde_json::to_string_pretty(&report).unwrap();
        let back: BenchReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.rows.len(), report.rows.len());
        assert!(json.contains("\"vs_ceiling\""));
        assert!(json.contains("\"kind\": \"ceiling\""));
    }

    #[test]
    fn load_averages_parse() {
        assert_eq!(
            parse_loadavg("6.04 6.12 6.02 3/412 30889\n"),
            Some([6.04, 6.12, 6.02])
        );
        assert_eq!(parse_loadavg("garbage"), None);
        assert!(render_table(&sample()).contains("load average 0.50 at start"));
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(human_bytes(1_500_000_000), "1.50 GB");
        assert_eq!(human_bytes(2_340_000), "2.3 MB");
        assert_eq!(human_binary(1 << 20), "1.0 MiB");
        assert_eq!(human_binary(131_272), "128 KiB");
    }
}
