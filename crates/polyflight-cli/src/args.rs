//! The command line: every verb and its flags, as clap parses them. The options shared by the
//! verbs that talk to a server ([`ClientArgs`]: TLS, credentials, headers, timeout) and by the
//! verbs that print ([`OutputArgs`]) are defined once and flattened into each.

use crate::fail::EXIT_CODES_HELP;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "polyflight",
    version,
    about = "Arrow Flight over any transport: serve a directory of Arrow and Parquet files, put, \
             get, list and inspect flights, benchmark transports",
    long_about = None,
    after_help = EXIT_CODES_HELP
)]
#[command(args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve a directory of .arrow/.feather/.arrows/.parquet files (or the in-memory or perf
    /// service) on one or more URIs until Ctrl-C or SIGTERM.
    #[command(after_help = EXIT_CODES_HELP)]
    Serve(ServeArgs),
    /// Upload .arrow/.feather/.arrows/.parquet/.csv files as flights.
    #[command(after_help = EXIT_CODES_HELP)]
    Put(PutArgs),
    /// Download a flight (every endpoint in parallel) to a file, to stdout, or show its first
    /// rows.
    #[command(after_help = EXIT_CODES_HELP)]
    Get(GetArgs),
    /// List the flights a server offers, with their sizes and schemas.
    #[command(after_help = EXIT_CODES_HELP)]
    List(ListArgs),
    /// Show the schema, size and endpoints of a flight, or a server's actions.
    #[command(after_help = EXIT_CODES_HELP)]
    Info(InfoArgs),
    /// Hash a password (argon2id) into a `user:hash` line for `serve --auth-basic FILE`.
    #[command(after_help = EXIT_CODES_HELP)]
    HashPassword(HashPasswordArgs),
    /// Benchmark every registered transport, arrow-flight and raw sockets, side by side.
    Bench(BenchArgs),
    /// Show a saved benchmark report (`bench --json`) as the table, and redraw its chart.
    Report(ReportArgs),
}

/// How a client reaches and authenticates to a server.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Connection")]
pub struct ClientArgs {
    /// Trust this CA certificate (PEM) for a grpc+tls server, instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM) to a grpc+tls server (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Verify the server's certificate for this name instead of the URI's host.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Log in with this user name (HTTP Basic, exchanged for a bearer token).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The password of --user; asked on the terminal when neither this nor the variable is set.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "POLYFLIGHT_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Send `authorization: Bearer TOKEN` with every call (ignored with --user).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "POLYFLIGHT_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Send this header with every call (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Time limit for connecting and for each call, a whole download included: 30s, 500ms, 2m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// How a verb prints.
#[derive(Args, Debug, Clone, Copy, Default)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Print JSON (one document) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
    /// No progress bars and no summary lines (errors are still printed).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadChoice {
    /// DoGet at every batch size.
    Doget,
    /// DoPut at the largest batch size.
    Doput,
    /// DoExchange at the largest batch size.
    Doexchange,
    /// Small-call round trips.
    Latency,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ServiceKind {
    /// A directory of .arrow/.feather/.arrows/.parquet files, one flight per file.
    Dataset,
    /// The in-memory store: DoPut stores, DoGet returns, ListFlights lists.
    Memory,
    /// The benchmark's perf service (see docs/benchmarks.md).
    Perf,
    /// A coordinator for the data nodes given with --node: lists their flights and answers
    /// GetFlightInfo with every node's endpoints, which clients read from the nodes directly.
    Coordinator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IoChoice {
    /// io_uring where the kernel allows it, else plain reads.
    Auto,
    /// io_uring (fails to start where it is not available).
    Uring,
    /// Plain positioned reads on a thread pool.
    Plain,
    /// Memory-mapped files, no copy: the fastest, for files replaced by rename and never
    /// truncated in place while served (that would crash the server with SIGBUS).
    Mmap,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The directory to serve, then the URIs to listen on (`grpc://0.0.0.0:8815`,
    /// `grpc+tls://0.0.0.0:8816`, `grpc+unix:///tmp/flight.sock`, `ucx://0.0.0.0:9000`; port 0
    /// picks a free port). With --service memory or perf: the URIs only.
    #[arg(required = true, value_name = "DIR|URI")]
    pub targets: Vec<String>,
    /// What to serve.
    #[arg(long, value_enum, default_value = "dataset")]
    pub service: ServiceKind,
    /// How the dataset service reads files.
    #[arg(long, value_enum, default_value = "auto", help_heading = "Dataset")]
    pub io: IoChoice,
    /// Bytes the dataset service reads ahead of its DoGet streams, all of them together (e.g. 8MiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, help_heading = "Dataset")]
    pub read_ahead: Option<usize>,
    /// Split each file into endpoints of at most this many rows.
    #[arg(long, value_name = "ROWS", help_heading = "Dataset")]
    pub endpoint_rows: Option<u64>,
    /// Refuse DoPut: clients cannot add or replace files.
    #[arg(long, help_heading = "Dataset")]
    pub read_only: bool,
    /// Seconds an upload may send nothing before it is abandoned and its partial file removed
    /// (0: no limit).
    #[arg(
        long,
        default_value_t = 300.0,
        value_name = "SECONDS",
        help_heading = "Dataset"
    )]
    pub put_idle_timeout: f64,
    /// A data node of --service coordinator: its URIs, comma-separated; the coordinator
    /// reaches it over the first, clients over any (e.g. grpc://10.0.0.2:8815,ucx://10.0.0.2:9000).
    /// Give one --node per node.
    #[arg(long = "node", value_name = "URI,…", help_heading = "Coordinator")]
    pub nodes: Vec<String>,
    /// Seconds a call from the coordinator to a node may take.
    #[arg(
        long,
        default_value_t = polyflight::cluster::DEFAULT_NODE_TIMEOUT.as_secs_f64(),
        value_name = "SECONDS",
        help_heading = "Coordinator"
    )]
    pub node_timeout: f64,
    /// The server's certificate chain (PEM), for grpc+tls URIs.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        help_heading = "Security"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (PEM), for grpc+tls URIs.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "Security"
    )]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (PEM): mutual TLS.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "Security"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Require a login: users and argon2 password hashes, one `user:hash` line each (make them
    /// with `polyflight hash-password USER`).
    #[arg(long, value_name = "FILE", help_heading = "Security")]
    pub auth_basic: Option<PathBuf>,
    /// Seconds a new connection may take to start speaking the protocol (0: no limit).
    #[arg(long, default_value_t = polyflight::transport::DEFAULT_HANDSHAKE_TIMEOUT.as_secs_f64(), help_heading = "Limits")]
    pub handshake_timeout: f64,
    /// Seconds a connection may stay without a call before it is closed (0: no limit).
    #[arg(long, default_value_t = polyflight::transport::DEFAULT_IDLE_TIMEOUT.as_secs_f64(), help_heading = "Limits")]
    pub idle_timeout: f64,
    /// The most connections served at once, per listen URI (0: no limit).
    #[arg(long, default_value_t = polyflight::transport::DEFAULT_MAX_CONNECTIONS, help_heading = "Limits")]
    pub max_connections: usize,
    /// Print the listening locations as JSON lines (`{"listening": URI}`).
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PutArgs {
    /// The server.
    pub uri: String,
    /// The files to upload: .arrow, .feather, .arrows, .parquet or .csv (read by extension);
    /// `-` reads an Arrow IPC stream from stdin (with --path).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The flight path to upload to, `/`-separated (one FILE only). Default: the file's name.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Replace a flight that exists already.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// The server.
    pub uri: String,
    /// The flight's path, `/`-separated (as `list` shows it).
    #[arg(required_unless_present_any = ["ticket", "perf"])]
    pub path: Option<String>,
    /// Save to this file, its format chosen by extension: .arrow/.feather (Arrow IPC file),
    /// .arrows (IPC stream), .parquet, .csv; `-` writes an IPC stream to stdout.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        conflicts_with = "head"
    )]
    pub output_file: Option<String>,
    /// Print the first N rows as a table instead of saving.
    #[arg(long, value_name = "N")]
    pub head: Option<usize>,
    /// DoGet this ticket (UTF-8) instead of a path.
    #[arg(long, conflicts_with_all = ["path", "perf"])]
    pub ticket: Option<String>,
    /// A perf flight of this many rows (the server must speak the perf protocol).
    #[arg(long, value_name = "ROWS", conflicts_with = "path")]
    pub perf: Option<i64>,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The server.
    pub uri: String,
    /// Criteria expression (servers interpret it; empty lists everything).
    #[arg(long, default_value = "")]
    pub criteria: String,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The server.
    pub uri: String,
    /// The flight's path, `/`-separated; without it, the server's actions.
    pub path: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct HashPasswordArgs {
    /// The user the line is for.
    pub user: String,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The JSON report.
    pub json: PathBuf,
    /// Write the chart here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Publication-sized preset (1 GB per DoGet, three batch sizes) instead of the quick one.
    #[arg(long)]
    pub full: bool,
    /// Transports to run, by scheme (default: every registered one).
    #[arg(long, value_delimiter = ',')]
    pub transports: Vec<String>,
    /// Skip the arrow-flight comparison and the raw-socket ceilings.
    #[arg(long)]
    pub no_references: bool,
    /// Run each transport's server in this process instead of as a `polyflight serve` process
    /// of its own (the default, as users run it).
    #[arg(long)]
    pub in_process: bool,
    /// Also serve arrow-flight's perf service through the tonic bridge on these transports
    /// (rows `arrow-flight via polyflight (SCHEME)`), e.g. `--bridge grpc,grpc+unix,ucx`.
    #[arg(long, value_delimiter = ',')]
    pub bridge: Vec<String>,
    /// Concurrent streams per throughput workload.
    #[arg(long)]
    pub streams: Option<u32>,
    /// Rows per batch: DoGet runs at each, DoPut and DoExchange at the largest.
    #[arg(long, value_delimiter = ',')]
    pub batch_rows: Vec<u32>,
    /// What the columns hold.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// How many columns.
    #[arg(long)]
    pub columns: Option<u32>,
    /// MB (10^6 bytes) per DoGet measurement.
    #[arg(long)]
    pub doget_mb: Option<u64>,
    /// MB per DoPut measurement.
    #[arg(long)]
    pub put_mb: Option<u64>,
    /// MB each way per DoExchange measurement.
    #[arg(long)]
    pub exchange_mb: Option<u64>,
    /// Round trips per latency measurement.
    #[arg(long)]
    pub latency_calls: Option<u32>,
    /// Measure only these workloads (default: all). `--workloads doget` against a coordinator
    /// reads its nodes' endpoints (a cluster's figure).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub workloads: Vec<WorkloadChoice>,
    /// Measure without warming up first.
    #[arg(long)]
    pub no_warmup: bool,
    /// Only count the bytes of each message instead of decoding batches on the client (and the
    /// server, for DoPut), which is the default: a real client decodes what it reads.
    #[arg(long, conflicts_with = "decode")]
    pub count_only: bool,
    /// Decode batches (the default; kept for scripts that pass it).
    #[arg(long, hide = true)]
    pub decode: bool,
    /// Worker threads of the server runtime.
    #[arg(long)]
    pub server_threads: Option<usize>,
    /// Worker threads of the client runtime.
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// Measure this external server instead (it should speak the perf protocol; see
    /// docs/benchmarks.md).
    #[arg(long)]
    pub target: Option<String>,
    /// With --target, for a server without the perf protocol: a ticket to DoGet.
    #[arg(long, requires = "target")]
    pub ticket: Option<String>,
    /// With --target, for a server without the perf protocol: a path to DoPut to.
    #[arg(long, requires = "target")]
    pub put_path: Option<String>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the chart here.
    #[arg(long, default_value = "polyflight-bench.svg")]
    pub svg: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    Int64,
    Mixed,
    Nested,
}

/// `KEY=VALUE` of `--header`.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        return Err(format!(
            "{key:?} is not a header name (letters, digits, '-', '_' and '.')"
        ));
    }
    Ok((key.to_ascii_lowercase(), value.to_string()))
}

/// `30s`, `500ms`, `2m`, `1h30m`: a positive duration.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 30s or 500ms ({e})"))?;
    if duration.is_zero() {
        return Err("the duration must be more than 0".to_string());
    }
    Ok(duration)
}

/// A byte count, optionally with a unit: `1048576`, `512KiB`, `8MiB`, `1GiB`, `64kB`, `1MB`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count like 8MiB or 1048576"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (B, KiB, MiB, GiB, kB, MB or GB)"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn byte_counts_durations_and_headers_parse() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes("64kB"), Ok(64_000));
        assert!(parse_bytes("8 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_header("X-Trace=a=b"),
            Ok(("x-trace".to_string(), "a=b".to_string()))
        );
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("bad key=v").is_err());
    }

    #[test]
    fn get_needs_a_path_a_ticket_or_perf() {
        assert!(Cli::try_parse_from(["polyflight", "get", "grpc://h:1"]).is_err());
        assert!(Cli::try_parse_from(["polyflight", "get", "grpc://h:1", "a/b"]).is_ok());
        assert!(Cli::try_parse_from(["polyflight", "get", "grpc://h:1", "--ticket", "t"]).is_ok());
        assert!(Cli::try_parse_from([
            "polyflight",
            "get",
            "grpc://h:1",
            "a",
            "-o",
            "x.csv",
            "--head",
            "3"
        ])
        .is_err());
    }
}
