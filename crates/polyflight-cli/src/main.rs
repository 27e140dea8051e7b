//! `polyflight`: the command-line tool of polyflight.
//!
//! - `polyflight bench`: the transport benchmark (every registered transport side by side with
//!   arrow-flight and raw-socket ceilings, or one external server with `--target`);
//! - `polyflight serve URI…`: serves the perf service or the in-memory service on any URIs;
//! - `polyflight get | put | list | info URI`: talk to any Flight server over any transport.

use anyhow::{bail, Context, Result};
use arrow_array::RecordBatch;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::TryStreamExt;
use polyflight::memory::MemoryService;
use polyflight::proto::{FlightDescriptor, FlightInfo, Ticket};
use polyflight::transport::ListenOptions;
use polyflight::{FlightClient, FlightStream};
use polyflight_bench::data::PreparedData;
use polyflight_bench::{BenchConfig, DataKind, DataSpec, PerfCommand, PerfService, TargetConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "polyflight",
    version,
    about = "Arrow Flight over any transport"
)]
#[command(args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark every registered transport, arrow-flight and raw sockets, side by side.
    Bench(BenchArgs),
    /// Serve a service on one or more URIs until interrupted.
    Serve(ServeArgs),
    /// Fetch a flight (by path, command or ticket) and summarise what came back.
    Get(GetArgs),
    /// Upload generated batches to a path.
    Put(PutArgs),
    /// List the flights a server offers.
    List(ListArgs),
    /// Show a server's actions, or the FlightInfo of a path.
    Info(InfoArgs),
    /// Show a saved benchmark report (`bench --json`) as the table, and redraw its chart.
    Report(ReportArgs),
}

#[derive(Args)]
struct ReportArgs {
    /// The JSON report.
    json: PathBuf,
    /// Write the chart here.
    #[arg(long)]
    svg: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Publication-sized preset (1 GB per DoGet, three batch sizes) instead of the quick one.
    #[arg(long)]
    full: bool,
    /// Transports to run, by scheme (default: every registered one).
    #[arg(long, value_delimiter = ',')]
    transports: Vec<String>,
    /// Skip the arrow-flight comparison and the raw-socket ceilings.
    #[arg(long)]
    no_references: bool,
    /// Also serve arrow-flight's perf service through the tonic bridge on these transports
    /// (rows `arrow-flight via polyflight (SCHEME)`), e.g. `--bridge grpc,grpc+unix,ucx`.
    #[arg(long, value_delimiter = ',')]
    bridge: Vec<String>,
    /// Concurrent streams per throughput workload.
    #[arg(long)]
    streams: Option<u32>,
    /// Rows per batch: DoGet runs at each, DoPut and DoExchange at the largest.
    #[arg(long, value_delimiter = ',')]
    batch_rows: Vec<u32>,
    /// What the columns hold.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// How many columns.
    #[arg(long)]
    columns: Option<u32>,
    /// MB (10^6 bytes) per DoGet measurement.
    #[arg(long)]
    doget_mb: Option<u64>,
    /// MB per DoPut measurement.
    #[arg(long)]
    put_mb: Option<u64>,
    /// MB each way per DoExchange measurement.
    #[arg(long)]
    exchange_mb: Option<u64>,
    /// Round trips per latency measurement.
    #[arg(long)]
    latency_calls: Option<u32>,
    /// Measure without warming up first.
    #[arg(long)]
    no_warmup: bool,
    /// Decode batches on the client (and the server, for DoPut) instead of only counting.
    #[arg(long)]
    decode: bool,
    /// Worker threads of the server runtime.
    #[arg(long)]
    server_threads: Option<usize>,
    /// Worker threads of the client runtime.
    #[arg(long)]
    client_threads: Option<usize>,
    /// Measure this external server instead (it should speak the perf protocol; see
    /// docs/benchmarks.md).
    #[arg(long)]
    target: Option<String>,
    /// With --target, for a server without the perf protocol: a ticket to DoGet.
    #[arg(long, requires = "target")]
    ticket: Option<String>,
    /// With --target, for a server without the perf protocol: a path to DoPut to.
    #[arg(long, requires = "target")]
    put_path: Option<String>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the chart here.
    #[arg(long, default_value = "polyflight-bench.svg")]
    svg: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Int64,
    Mixed,
    Nested,
}

impl From<Kind> for DataKind {
    fn from(kind: Kind) -> DataKind {
        match kind {
            Kind::Int64 => DataKind::Int64,
            Kind::Mixed => DataKind::Mixed,
            Kind::Nested => DataKind::Nested,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ServiceKind {
    /// The benchmark's perf service (see docs/benchmarks.md).
    Perf,
    /// The in-memory store: DoPut stores, DoGet returns, ListFlights lists.
    Memory,
}

#[derive(Args)]
struct ServeArgs {
    /// The service to serve.
    #[arg(long, value_enum, default_value = "memory")]
    service: ServiceKind,
    /// URIs to listen on (`grpc://0.0.0.0:8815`, `grpc+unix:///tmp/flight.sock`, …).
    #[arg(required = true)]
    uris: Vec<String>,
    /// Seconds a new connection may take to start speaking the protocol (0: no limit).
    #[arg(long, default_value_t = polyflight::transport::DEFAULT_HANDSHAKE_TIMEOUT.as_secs_f64())]
    handshake_timeout: f64,
    /// Seconds a connection may stay without a call before it is closed (0: no limit).
    #[arg(long, default_value_t = polyflight::transport::DEFAULT_IDLE_TIMEOUT.as_secs_f64())]
    idle_timeout: f64,
    /// The most connections served at once, per listen URI (0: no limit).
    #[arg(long, default_value_t = polyflight::transport::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
}

impl ServeArgs {
    fn listen_options(&self) -> Result<ListenOptions> {
        let seconds = |value: f64, what: &str| -> Result<Option<Duration>> {
            if value == 0.0 {
                return Ok(None);
            }
            Duration::try_from_secs_f64(value)
                .map(Some)
                .with_context(|| format!("--{what} must be a number of seconds, not {value}"))
        };
        Ok(ListenOptions {
            handshake_timeout: seconds(self.handshake_timeout, "handshake-timeout")?,
            idle_timeout: seconds(self.idle_timeout, "idle-timeout")?,
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            ..ListenOptions::default()
        })
    }
}

#[derive(Args)]
struct GetArgs {
    /// The server.
    uri: String,
    /// A PATH descriptor, `/`-separated: GetFlightInfo, then every endpoint.
    #[arg(long, conflicts_with_all = ["ticket", "perf"])]
    path: Option<String>,
    /// A ticket (UTF-8) to DoGet directly.
    #[arg(long, conflicts_with = "perf")]
    ticket: Option<String>,
    /// A perf flight of this many rows (the server must speak the perf protocol).
    #[arg(long)]
    perf: Option<i64>,
}

#[derive(Args)]
struct PutArgs {
    /// The server.
    uri: String,
    /// The PATH descriptor to upload to, `/`-separated.
    #[arg(long)]
    path: String,
    /// Rows to upload.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Rows per batch.
    #[arg(long, default_value_t = 8192)]
    batch_rows: usize,
    /// What the columns hold.
    #[arg(long, value_enum, default_value = "int64")]
    kind: Kind,
    /// How many columns.
    #[arg(long, default_value_t = 4)]
    columns: u32,
}

#[derive(Args)]
struct ListArgs {
    /// The server.
    uri: String,
    /// Criteria expression (servers interpret it; empty lists everything).
    #[arg(long, default_value = "")]
    criteria: String,
}

#[derive(Args)]
struct InfoArgs {
    /// The server.
    uri: String,
    /// Show the FlightInfo of this PATH descriptor (`/`-separated) instead of the actions.
    #[arg(long)]
    path: Option<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        // The benchmark builds its own runtimes, one per side, so it runs outside any.
        Command::Bench(args) => bench(args),
        Command::Report(args) => report(args),
        other => {
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            runtime.block_on(async move {
                match other {
                    Command::Serve(args) => serve(args).await,
                    Command::Get(args) => get(args).await,
                    Command::Put(args) => put(args).await,
                    Command::List(args) => list(args).await,
                    Command::Info(args) => info(args).await,
                    Command::Bench(_) | Command::Report(_) => Ok(()),
                }
            })
        }
    }
}

fn bench_config(args: &BenchArgs) -> BenchConfig {
    let mut config = if args.full {
        BenchConfig::full()
    } else {
        BenchConfig::quick()
    };
    config.transports = args.transports.clone();
    config.references = !args.no_references;
    config.bridge = args.bridge.clone();
    if let Some(streams) = args.streams {
        config.streams = streams;
    }
    if !args.batch_rows.is_empty() {
        config.batch_rows = args.batch_rows.clone();
    }
    if let Some(kind) = args.kind {
        config.kind = kind.into();
    }
    if let Some(columns) = args.columns {
        config.columns = columns;
    }
    let mb = |v: u64| v.saturating_mul(1_000_000);
    if let Some(v) = args.doget_mb {
        config.doget_bytes = mb(v);
    }
    if let Some(v) = args.put_mb {
        config.put_bytes = mb(v);
    }
    if let Some(v) = args.exchange_mb {
        config.exchange_bytes = mb(v);
    }
    if let Some(v) = args.latency_calls {
        config.latency_calls = v;
    }
    config.warmup = !args.no_warmup;
    config.decode = args.decode;
    if let Some(v) = args.server_threads {
        config.server_threads = v;
    }
    if let Some(v) = args.client_threads {
        config.client_threads = v;
    }
    config.target = args.target.as_ref().map(|uri| TargetConfig {
        uri: uri.clone(),
        ticket: args.ticket.clone(),
        put_path: args.put_path.clone(),
    });
    config
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn bench(args: BenchArgs) -> Result<()> {
    let config = bench_config(&args);
    let registry = polyflight::default_registry();
    let mut report = polyflight_bench::run(&config, &registry, &mut |line| eprintln!("{line}"))?;
    report.command = Some(std::env::args().collect::<Vec<_>>().join(" "));
    print!("{}", polyflight_bench::render_table(&report));
    if let Some(path) = &args.json {
        write_file(path, &serde_json_string(&report)?)?;
        eprintln!("report written to {}", path.display());
    }
    write_file(&args.svg, &polyflight_bench::render_svg(&report))?;
    eprintln!("chart written to {}", args.svg.display());
    eprintln!("total {:.1} s", report.total_seconds);
    Ok(())
}

fn report(args: ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.json)
        .with_context(|| format!("reading {}", args.json.display()))?;
    let report = polyflight_bench::BenchReport::from_json(&text)
        .with_context(|| format!("{} is not a benchmark report", args.json.display()))?;
    print!("{}", polyflight_bench::render_table(&report));
    if let Some(path) = &args.svg {
        write_file(path, &polyflight_bench::render_svg(&report))?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(())
}

fn serde_json_string(report: &polyflight_bench::BenchReport) -> Result<String> {
    report.to_json().context("serialising the report")
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut builder = match args.service {
        ServiceKind::Perf => polyflight::server(PerfService::new()),
        ServiceKind::Memory => polyflight::server(MemoryService::new()),
    };
    let options = args.listen_options()?;
    for uri in &args.uris {
        builder = builder.listen_with(uri.clone(), options.clone());
    }
    let server = builder.start().await?;
    for location in server.locations() {
        println!("listening on {location}");
    }
    shutdown_signal().await;
    eprintln!("shutting down");
    server.shutdown().await?;
    Ok(())
}

/// Completes on Ctrl-C, or SIGTERM where there is one.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn path_descriptor(path: &str) -> FlightDescriptor {
    FlightDescriptor::new_path(path.split('/').filter(|s| !s.is_empty()))
}

fn show_info(info: &FlightInfo) {
    if let Some(d) = &info.flight_descriptor {
        if d.path.is_empty() {
            println!("descriptor: cmd ({} bytes)", d.cmd.len());
        } else {
            println!("descriptor: path {}", d.path.join("/"));
        }
    }
    match info.try_schema() {
        Ok(schema) => {
            let fields: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect();
            println!("schema: {}", fields.join(", "));
        }
        Err(err) => println!("schema: unreadable ({err})"),
    }
    println!(
        "records: {}, bytes: {}, endpoints: {}, ordered: {}",
        info.total_records,
        info.total_bytes,
        info.endpoint.len(),
        info.ordered
    );
}

async fn get(args: GetArgs) -> Result<()> {
    let client = polyflight::connect(&args.uri).await?;
    let started = std::time::Instant::now();
    let (mut batches, mut rows) = (0usize, 0usize);
    let mut stream: FlightStream<RecordBatch> = if let Some(ticket) = &args.ticket {
        Box::pin(
            client
                .do_get(Ticket::new(Bytes::from(ticket.clone().into_bytes())))
                .await?,
        )
    } else {
        let descriptor = match (&args.path, args.perf) {
            (Some(path), _) => path_descriptor(path),
            (None, Some(rows)) => FlightDescriptor::new_cmd(
                PerfCommand::new(DataSpec::default(), 1, rows, 32_768).encode_bytes(),
            ),
            (None, None) => bail!("give --path, --ticket or --perf"),
        };
        let info = client.get_flight_info(descriptor).await?;
        show_info(&info);
        client.read_flight(&info).await?
    };
    while let Some(batch) = stream.try_next().await? {
        if batches == 0 {
            println!("first batch: {} columns", batch.num_columns());
        }
        batches += 1;
        rows += batch.num_rows();
    }
    println!(
        "received {rows} rows in {batches} batches in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn put(args: PutArgs) -> Result<()> {
    let client = polyflight::connect(&args.uri).await?;
    let spec = DataSpec {
        kind: args.kind.into(),
        columns: args.columns,
    };
    if args.batch_rows == 0 || args.columns == 0 {
        bail!("--batch-rows and --columns must be at least 1");
    }
    let data = Arc::new(PreparedData::new(spec, args.batch_rows));
    let batches = futures::stream::iter(data.batches(args.rows).map(Ok));
    let started = std::time::Instant::now();
    let mut results = client.do_put(path_descriptor(&args.path), batches).await?;
    let mut acks = 0;
    while results.try_next().await?.is_some() {
        acks += 1;
    }
    println!(
        "uploaded {} rows to {} in {:.3} s ({acks} acknowledgements)",
        args.rows,
        args.path,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn list(args: ListArgs) -> Result<()> {
    let client = polyflight::connect(&args.uri).await?;
    let mut flights = client.list_flights(args.criteria.into_bytes()).await?;
    let mut n = 0;
    while let Some(info) = flights.try_next().await? {
        if n > 0 {
            println!();
        }
        show_info(&info);
        n += 1;
    }
    println!("{n} flight(s)");
    Ok(())
}

async fn info(args: InfoArgs) -> Result<()> {
    let client: FlightClient = polyflight::connect(&args.uri).await?;
    match &args.path {
        Some(path) => show_info(&client.get_flight_info(path_descriptor(path)).await?),
        None => {
            let actions = client.list_actions().await?;
            println!("{}: {} action(s)", client.location(), actions.len());
            for action in actions {
                println!("  {}: {}", action.r#type, action.description);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `cargo xtask bench` passes its own `--json`/`--svg` first; the user's, later, win.
    #[test]
    fn later_options_win_and_presets_apply() {
        let cli = Cli::try_parse_from([
            "polyflight",
            "bench",
            "--svg",
            "target/a.svg",
            "--full",
            "--svg",
            "b.svg",
            "--batch-rows",
            "1024,2048",
            "--transports",
            "grpc,grpc+unix",
        ])
        .unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("not bench");
        };
        assert_eq!(args.svg, PathBuf::from("b.svg"));
        let config = bench_config(&args);
        assert_eq!(config.preset, "full");
        assert_eq!(config.batch_rows, vec![1024, 2048]);
        assert_eq!(config.transports, vec!["grpc", "grpc+unix"]);
        assert_eq!(config.doget_bytes, BenchConfig::full().doget_bytes);
        assert!(config.target.is_none());
    }
}
