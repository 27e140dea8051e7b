//! The runner: plans the rows of a run — every transport of a registry, arrow-flight services
//! through the tonic bridge on the transports asked for (`bridge`), the arrow-flight
//! comparison and the raw-socket ceilings, or one external target — runs them one after
//! another, and assembles the [`BenchReport`].
//!
//! Each served row gets fresh resources and gives them all back before the next row starts:
//! a server runtime (threads named [`SERVER_THREAD`]) running the perf server, a client runtime
//! (threads named [`CLIENT_THREAD`]) running the client, and the transport's loopback endpoint
//! (certificates, socket files), removed at the end. Rows run sequentially so that each has the
//! whole machine; within a row every throughput workload runs its N streams concurrently.
//!
//! Transports are found, not named: the runner walks `registry.factories()` and each factory's
//! `schemes()`, keeps one scheme per transport (`grpc+tcp` is the explicit name of `grpc`), and
//! sets each up with `factory.loopback_endpoint(scheme)`. A transport added to the registry is
//! benchmarked with no change here.

use crate::ceiling::{self, SocketKind};
use crate::command::{PerfCommand, PING_ACTION};
use crate::config::{BenchConfig, TargetConfig};
use crate::cpu::{current_tid, CLIENT_THREAD, SERVER_THREAD};
use crate::data::PreparedData;
use crate::process::ServeCommand;
use crate::reference::{ArrowFlightPerfClient, ArrowFlightPerfService, ArrowFlightServer};
use crate::report::{
    human_bytes, rows_label, BenchReport, LatencyStats, Machine, RowKind, RowReport, Throughput,
    Units, Workload, ARROW_FLIGHT_ROW, PYARROW_CLIENT_ROW, PYARROW_PAIR_ROW, PYARROW_SERVER_ROW,
    TCP_CEILING_ROW, UNIX_CEILING_ROW,
};
use crate::service::PerfService;
use crate::workload::{
    measure_concurrent, round_trips, Measured, PerfClient, PerfEndpoint, PolyflightPerfClient,
    PutDescriptor, Transfer,
};
use crate::BenchError;
use polyflight::transports::LoopbackPki;
use polyflight::{
    ConnectOptions, FlightClient, FlightService, Registry, Scheme, ServerBuilder, TransportFactory,
};
use polyflight_tonic::ArrowFlightAdapter;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Runtime;

/// Round trips made before latency is measured.
const LATENCY_WARMUP: usize = 50;

/// Times each ceiling is measured; the fastest run is reported. A ceiling is the best the
/// socket can do, and a raw socket moves a row's bytes in a fraction of a second, where one
/// scheduling hiccup on a shared machine would otherwise set the figure.
const CEILING_RUNS: usize = 3;

/// `grpc+tcp` is the explicit name of `grpc`: one transport, one row.
fn canonical(scheme: Scheme) -> Scheme {
    match scheme {
        Scheme::GrpcTcp => Scheme::Grpc,
        other => other,
    }
}

/// The transports of `registry`, one scheme each, in registration order, with the factory
/// that serves it (the latest registered for that scheme, as the registry itself picks).
pub fn transports(registry: &Registry) -> Vec<(Scheme, Arc<dyn TransportFactory>)> {
    let mut out: Vec<(Scheme, Arc<dyn TransportFactory>)> = Vec::new();
    for factory in registry.factories() {
        for &scheme in factory.schemes() {
            if scheme == Scheme::ReuseConnection {
                continue;
            }
            let canonical = canonical(scheme);
            let chosen = if registry.factory_for(canonical).is_ok() {
                canonical
            } else {
                scheme
            };
            if out.iter().any(|(s, _)| *s == chosen) {
                continue;
            }
            if let Ok(winner) = registry.factory_for(chosen) {
                out.push((chosen, winner));
            }
        }
    }
    out
}

/// One row to run.
enum Plan {
    Transport(Scheme, Arc<dyn TransportFactory>),
    /// A transport asked for by name that the registry does not have.
    Missing(String),
    ArrowFlight,
    /// pyarrow's Flight server speaking the perf protocol, in a Python process.
    PyarrowServer,
    /// pyarrow's Flight client (`python/perf_client.py`) against pyarrow's server (`true`) or
    /// polyflight's grpc server in a process of its own (`false`).
    PyarrowClient(bool),
    /// A bare tonic unary echo: the latency floor.
    TonicEcho,
    /// arrow-flight's perf service through the tonic bridge, on a transport of the registry.
    Bridge(Scheme, Arc<dyn TransportFactory>),
    Ceiling(SocketKind),
    /// Raw UCX, measured with `ucx_perftest`.
    #[cfg(target_os = "linux")]
    UcxCeiling(crate::ucx_ceiling::UcxTest),
    Target(TargetConfig),
}

impl Plan {
    fn name(&self) -> String {
        match self {
            Plan::Transport(scheme, _) => scheme.as_str().to_string(),
            Plan::Missing(name) => name.clone(),
            Plan::ArrowFlight => ARROW_FLIGHT_ROW.to_string(),
            Plan::PyarrowServer => PYARROW_SERVER_ROW.to_string(),
            Plan::PyarrowClient(true) => PYARROW_PAIR_ROW.to_string(),
            Plan::PyarrowClient(false) => PYARROW_CLIENT_ROW.to_string(),
            Plan::TonicEcho => crate::echo::ECHO_ROW.to_string(),
            Plan::Bridge(scheme, _) => bridge_row_name(*scheme),
            Plan::Ceiling(SocketKind::Tcp) => TCP_CEILING_ROW.to_string(),
            Plan::Ceiling(SocketKind::Unix) => UNIX_CEILING_ROW.to_string(),
            #[cfg(target_os = "linux")]
            Plan::UcxCeiling(test) => test.row_name().to_string(),
            Plan::Target(t) => format!("target {}", t.uri),
        }
    }
}

fn plan(config: &BenchConfig, registry: &Registry) -> Vec<Plan> {
    if let Some(target) = &config.target {
        return vec![Plan::Target(target.clone())];
    }
    let available = transports(registry);
    let mut plans = Vec::new();
    if config.transports.is_empty() {
        plans.extend(
            available
                .iter()
                .map(|(s, f)| Plan::Transport(*s, Arc::clone(f))),
        );
    } else {
        for name in &config.transports {
            let wanted = Scheme::parse(name).map(canonical);
            match available.iter().find(|(s, _)| Some(*s) == wanted) {
                Some((s, f)) => plans.push(Plan::Transport(*s, Arc::clone(f))),
                None => plans.push(Plan::Missing(name.clone())),
            }
        }
    }
    for name in &config.bridge {
        let wanted = Scheme::parse(name).map(canonical);
        match available.iter().find(|(s, _)| Some(*s) == wanted) {
            Some((s, f)) => plans.push(Plan::Bridge(*s, Arc::clone(f))),
            None => plans.push(Plan::Missing(format!("bridge {name}"))),
        }
    }
    if config.references {
        plans.push(Plan::ArrowFlight);
        plans.push(Plan::PyarrowServer);
        plans.push(Plan::PyarrowClient(true));
        plans.push(Plan::PyarrowClient(false));
        plans.push(Plan::TonicEcho);
        plans.push(Plan::Ceiling(SocketKind::Tcp));
        if cfg!(unix) {
            plans.push(Plan::Ceiling(SocketKind::Unix));
        }
        // Raw UCX, when the ucx row runs.
        #[cfg(target_os = "linux")]
        if plans
            .iter()
            .any(|p| matches!(p, Plan::Transport(Scheme::Ucx, _)))
        {
            plans.extend(crate::ucx_ceiling::UcxTest::ALL.map(Plan::UcxCeiling));
        }
    }
    plans
}

/// The runtimes of one row.
struct Runtimes {
    server: Option<Runtime>,
    client: Runtime,
}

fn runtime(name: &str, threads: usize) -> Result<Runtime, BenchError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()?)
}

impl Runtimes {
    fn new(config: &BenchConfig, with_server: bool) -> Result<Runtimes, BenchError> {
        Ok(Runtimes {
            server: if with_server {
                Some(runtime(SERVER_THREAD, config.server_threads)?)
            } else {
                None
            },
            client: runtime(CLIENT_THREAD, config.client_threads)?,
        })
    }

    fn server(&self) -> Result<&Runtime, BenchError> {
        self.server
            .as_ref()
            .ok_or_else(|| BenchError::Other("this row has no server runtime".into()))
    }

    fn shutdown(self) {
        // The client goes first, so the server sees its connections close rather than
        // waiting out a grace period for them.
        self.client.shutdown_timeout(Duration::from_secs(2));
        if let Some(server) = self.server {
            server.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Runs `future` as a task of `runtime` (so whatever it spawns, tasks or threads, belongs to
/// that runtime's side) and waits for it.
fn run_on<T: Send + 'static>(
    runtime: &Runtime,
    future: impl Future<Output = Result<T, BenchError>> + Send + 'static,
) -> Result<T, BenchError> {
    runtime
        .block_on(runtime.spawn(future))
        .map_err(|e| BenchError::Other(format!("task failed: {e}")))?
}

/// What every row of a run shares.
struct Shared<'a> {
    config: &'a BenchConfig,
    /// The prepared batch of each batch size, in `config.batch_rows` order.
    prepared: Vec<Arc<PreparedData>>,
    progress: &'a mut dyn FnMut(&str),
    /// `[i/n] name` of the row running.
    label: String,
}

impl Shared<'_> {
    fn say(&mut self, message: &str) {
        let line = format!("{} {message}", self.label);
        (self.progress)(&line);
    }

    fn largest(&self) -> Option<Arc<PreparedData>> {
        self.prepared
            .iter()
            .max_by_key(|p| p.rows_per_batch())
            .cloned()
    }
}

fn command(config: &BenchConfig, data: &PreparedData, bytes: u64) -> PerfCommand {
    let streams = config.streams.max(1);
    let mut command = PerfCommand::new(
        config.spec(),
        streams as i32,
        data.rows_for_bytes(bytes / u64::from(streams)) as i64,
        data.rows_per_batch() as i32,
    );
    command.decode = config.decode;
    command
}

/// Runs every row of `config` with the transports of `registry`, reporting progress lines
/// through `progress`. Rows that cannot run or fail part-way are in the report with the reason;
/// only a configuration error fails the whole run.
///
/// Runs its own runtimes, so it must be called from outside any async runtime (from an async
/// context, use `spawn_blocking`). Every server runs in this process; see
/// [`run_with_servers`].
pub fn run(
    config: &BenchConfig,
    registry: &Registry,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, BenchError> {
    run_with_servers(config, registry, None, progress)
}

/// [`run`], but with `servers` each transport row's server runs as a process of its own,
/// started by that command (see [`crate::process`]), as users run polyflight. The reference and
/// bridge rows stay in this process.
pub fn run_with_servers(
    config: &BenchConfig,
    registry: &Registry,
    servers: Option<&ServeCommand>,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, BenchError> {
    config.validate().map_err(BenchError::Config)?;
    let mut config = config.clone();
    config.server_processes = servers.is_some() && config.target.is_none();
    let config = &config;
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(BenchError::Config(
            "the benchmark runs its own runtimes: call it from outside an async runtime".into(),
        ));
    }
    // Read before the run: the load average then says what else the machine was doing.
    let machine = Machine::current();
    let started = Instant::now();
    let started_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let prepared = config
        .batch_rows
        .iter()
        .map(|&rows| Arc::new(PreparedData::new(config.spec(), rows as usize)))
        .collect();
    let plans = plan(config, registry);
    let mut shared = Shared {
        config,
        prepared,
        progress,
        label: String::new(),
    };
    let mut rows = Vec::new();
    let total = plans.len();
    for (i, plan) in plans.into_iter().enumerate() {
        shared.label = format!("[{}/{total}] {}:", i + 1, plan.name());
        shared.say("starting");
        let row = match plan {
            Plan::Transport(scheme, factory) => {
                let row = RowReport::new(scheme.as_str(), RowKind::Transport);
                match servers {
                    Some(servers) => process_row(
                        &mut shared,
                        registry,
                        row,
                        scheme,
                        factory.as_ref(),
                        servers,
                    ),
                    None => {
                        let service = Arc::new(PerfService::new());
                        served_row(
                            &mut shared,
                            registry,
                            row,
                            scheme,
                            factory.as_ref(),
                            service,
                        )
                    }
                }
            }
            Plan::Bridge(scheme, factory) => {
                let row = RowReport::new(bridge_row_name(scheme), RowKind::Reference);
                let service = Arc::new(ArrowFlightAdapter::new(ArrowFlightPerfService::default()));
                served_row(
                    &mut shared,
                    registry,
                    row,
                    scheme,
                    factory.as_ref(),
                    service,
                )
            }
            Plan::Missing(name) => {
                let mut row = RowReport::new(name, RowKind::Transport);
                let registered: Vec<&str> = transports(registry)
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect();
                row.skipped = Some(format!(
                    "no such transport registered (registered: {})",
                    registered.join(", ")
                ));
                row
            }
            Plan::ArrowFlight => arrow_flight_row(&mut shared),
            Plan::PyarrowServer => pyarrow_server_row(&mut shared, registry),
            Plan::PyarrowClient(pyarrow_server) => {
                pyarrow_client_row(&mut shared, servers, pyarrow_server)
            }
            Plan::TonicEcho => echo_row(&mut shared),
            Plan::Ceiling(kind) => ceiling_row(&mut shared, kind),
            #[cfg(target_os = "linux")]
            Plan::UcxCeiling(test) => ucx_ceiling_row(&mut shared, test),
            Plan::Target(target) => target_row(&mut shared, registry, &target),
        };
        if let Some(reason) = &row.skipped {
            shared.say(&format!("skipped: {reason}"));
        }
        for error in &row.errors {
            shared.say(&format!("failed: {error}"));
        }
        rows.push(row);
    }
    let mut report = BenchReport {
        polyflight_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix_s,
        total_seconds: started.elapsed().as_secs_f64(),
        machine,
        command: None,
        config: config.clone(),
        units: Units::default(),
        rows,
    };
    report.compute_ratios();
    Ok(report)
}

/// The name of a bridge row.
fn bridge_row_name(scheme: Scheme) -> String {
    format!("arrow-flight via polyflight ({})", scheme.as_str())
}

/// A row of `service` served by polyflight on `scheme`, read by polyflight's client.
fn served_row(
    shared: &mut Shared<'_>,
    registry: &Registry,
    mut row: RowReport,
    scheme: Scheme,
    factory: &dyn TransportFactory,
    service: Arc<dyn FlightService>,
) -> RowReport {
    let endpoint = match factory.loopback_endpoint(scheme) {
        Ok(endpoint) => endpoint,
        Err(err) => {
            row.skipped = Some(format!("no loopback endpoint: {err}"));
            return row;
        }
    };
    let result = (|| -> Result<(), BenchError> {
        let runtimes = Runtimes::new(shared.config, true)?;
        let server_rt = runtimes.server()?;
        let builder = ServerBuilder::from_arc(service, registry.clone())
            .listen_with(endpoint.listen_uri.clone(), endpoint.listen.clone())
            .shutdown_grace(Duration::from_secs(1));
        let server = run_on(server_rt, async move { Ok(builder.start().await?) })?;
        let location = server.location().clone();
        row.uri = Some(location.uri().to_string());
        row.ceiling = Some(if location.unix_path().is_some() {
            UNIX_CEILING_ROW.to_string()
        } else {
            ceiling_of(scheme).to_string()
        });
        let (client_registry, uri, options) = (
            registry.clone(),
            location.uri().to_string(),
            endpoint.connect.clone(),
        );
        let connected = run_on(&runtimes.client, async move {
            Ok(FlightClient::connect_with_options(client_registry, &uri, options).await?)
        });
        match connected {
            Ok(client) => {
                let client: Arc<dyn PerfClient> = Arc::new(PolyflightPerfClient::new(client));
                workloads(shared, &runtimes.client, client, &mut row, false);
            }
            Err(err) => row.errors.push(format!("connecting: {err}")),
        }
        if let Err(err) = server_rt.block_on(server.shutdown()) {
            row.errors.push(format!("server shutdown: {err}"));
        }
        runtimes.shutdown();
        Ok(())
    })();
    if let Err(err) = result {
        row.errors.push(err.to_string());
    }
    endpoint.cleanup();
    row
}

/// A transport row whose perf server runs as a process of its own.
fn process_row(
    shared: &mut Shared<'_>,
    registry: &Registry,
    mut row: RowReport,
    scheme: Scheme,
    factory: &dyn TransportFactory,
    servers: &ServeCommand,
) -> RowReport {
    let endpoint = match factory.loopback_endpoint(scheme) {
        Ok(endpoint) => endpoint,
        Err(err) => {
            row.skipped = Some(format!("no loopback endpoint: {err}"));
            return row;
        }
    };
    let result = (|| -> Result<(), BenchError> {
        // grpc+tls: certificates of our own, written for the server process and trusted here.
        let (pki, connect) = if scheme == Scheme::GrpcTls {
            let pki = LoopbackPki::generate()?;
            let mut connect = ConnectOptions::default();
            connect.extensions.insert(pki.client_config(false)?);
            (Some(pki), connect)
        } else {
            (None, endpoint.connect.clone())
        };
        let server = servers.start(scheme, &endpoint.listen_uri, pki.as_ref())?;
        let _watch = crate::cpu::watch_server_process(server.pid());
        row.uri = Some(server.uri.clone());
        row.ceiling = Some(ceiling_of(scheme).to_string());
        let runtimes = Runtimes::new(shared.config, false)?;
        let (client_registry, uri) = (registry.clone(), server.uri.clone());
        let connected = run_on(&runtimes.client, async move {
            Ok(FlightClient::connect_with_options(client_registry, &uri, connect).await?)
        });
        match connected {
            Ok(client) => {
                let client: Arc<dyn PerfClient> = Arc::new(PolyflightPerfClient::new(client));
                workloads(shared, &runtimes.client, client, &mut row, false);
            }
            Err(err) => row.errors.push(format!("connecting: {err}")),
        }
        runtimes.shutdown();
        drop(server);
        Ok(())
    })();
    if let Err(err) = result {
        row.errors.push(err.to_string());
    }
    endpoint.cleanup();
    row
}

/// The ceiling row a transport row is compared with: raw UCX for ucx, the raw socket it runs on
/// for the others.
fn ceiling_of(scheme: Scheme) -> &'static str {
    match scheme {
        #[cfg(target_os = "linux")]
        Scheme::Ucx => crate::ucx_ceiling::UCX_CEILING_ROW,
        Scheme::GrpcUnix => UNIX_CEILING_ROW,
        _ => TCP_CEILING_ROW,
    }
}

/// A raw UCX row: `ucx_perftest` at each batch size, one stream.
#[cfg(target_os = "linux")]
fn ucx_ceiling_row(shared: &mut Shared<'_>, test: crate::ucx_ceiling::UcxTest) -> RowReport {
    use crate::ucx_ceiling;
    let mut row = RowReport::new(test.row_name(), RowKind::Ceiling);
    let perftest = match ucx_ceiling::find_perftest() {
        Ok(path) => path,
        Err(why) => {
            row.skipped = Some(why);
            return row;
        }
    };
    let config = shared.config;
    for data in shared.prepared.clone() {
        let rows = data.rows_per_batch() as u64;
        let message = data.message_bytes as usize;
        match ucx_ceiling::measure(&perftest, test, message, config.doget_bytes) {
            Ok(run) => {
                // No CPU figures: see the module docs.
                let cpu = crate::cpu::CpuUsage::default();
                let t = Throughput::new(
                    Workload::Socket,
                    rows,
                    data.message_bytes,
                    1,
                    false,
                    run.bytes,
                    run.bytes,
                    run.bytes.div_ceil(data.message_bytes.max(1)),
                    run.elapsed.as_secs_f64(),
                    cpu,
                );
                shared.say(&describe(&t));
                row.throughput.push(t);
            }
            Err(err) => row.errors.push(format!("{rows}-row messages: {err}")),
        }
    }
    row
}

/// The tonic unary echo row: latency only.
fn echo_row(shared: &mut Shared<'_>) -> RowReport {
    use crate::echo::{EchoClient, EchoServer, ECHO_ROW};
    let mut row = RowReport::new(ECHO_ROW, RowKind::Reference);
    let result = (|| -> Result<(), BenchError> {
        let runtimes = Runtimes::new(shared.config, true)?;
        let server_rt = runtimes.server()?;
        let server = run_on(server_rt, EchoServer::start())?;
        row.uri = Some(format!("http://{}", server.addr()));
        let addr = server.addr();
        match run_on(&runtimes.client, EchoClient::connect(addr)) {
            Ok(client) => {
                let calls = shared.config.latency_calls as usize;
                let samples = run_on(&runtimes.client, async move {
                    round_trips(calls, LATENCY_WARMUP, || {
                        let client = client.clone();
                        async move { client.echo().await }
                    })
                    .await
                });
                latency(shared, &mut row, "Echo", samples);
            }
            Err(err) => row.errors.push(format!("connecting: {err}")),
        }
        server_rt.block_on(server.shutdown());
        runtimes.shutdown();
        Ok(())
    })();
    if let Err(err) = result {
        row.errors.push(err.to_string());
    }
    row
}

fn arrow_flight_row(shared: &mut Shared<'_>) -> RowReport {
    let mut row = RowReport::new(ARROW_FLIGHT_ROW, RowKind::Reference);
    row.ceiling = Some(TCP_CEILING_ROW.to_string());
    let result = (|| -> Result<(), BenchError> {
        let runtimes = Runtimes::new(shared.config, true)?;
        let server_rt = runtimes.server()?;
        let server = run_on(server_rt, ArrowFlightServer::start())?;
        row.uri = Some(server.uri());
        let addr = server.addr();
        match run_on(&runtimes.client, ArrowFlightPerfClient::connect(addr)) {
            Ok(client) => workloads(shared, &runtimes.client, Arc::new(client), &mut row, false),
            Err(err) => row.errors.push(format!("connecting: {err}")),
        }
        server_rt.block_on(server.shutdown());
        runtimes.shutdown();
        Ok(())
    })();
    if let Err(err) = result {
        row.errors.push(err.to_string());
    }
    row
}

fn ceiling_row(shared: &mut Shared<'_>, kind: SocketKind) -> RowReport {
    let name = match kind {
        SocketKind::Tcp => TCP_CEILING_ROW,
        SocketKind::Unix => UNIX_CEILING_ROW,
    };
    let mut row = RowReport::new(name, RowKind::Ceiling);
    let config = shared.config;
    if config.warmup {
        let chunk = shared
            .largest()
            .map_or(1 << 20, |p| p.message_bytes as usize);
        if let Err(err) = ceiling::measure(kind, warmup_bytes(config), chunk) {
            row.errors.push(format!("warm-up: {err}"));
            return row;
        }
    }
    for data in shared.prepared.clone() {
        let rows = data.rows_per_batch() as u64;
        let best = (0..CEILING_RUNS)
            .map(|_| ceiling::measure(kind, config.doget_bytes, data.message_bytes as usize))
            .reduce(|best, run| match (best, run) {
                (Ok(best), Ok(run)) => Ok(if run.elapsed < best.elapsed {
                    run
                } else {
                    best
                }),
                (Err(err), _) | (_, Err(err)) => Err(err),
            });
        match best.unwrap_or_else(|| Err(BenchError::Config("no ceiling run".into()))) {
            Ok(run) => {
                let t = Throughput::new(
                    Workload::Socket,
                    rows,
                    data.message_bytes,
                    1,
                    false,
                    run.bytes,
                    run.bytes,
                    run.bytes.div_ceil(data.message_bytes.max(1)),
                    run.elapsed.as_secs_f64(),
                    run.cpu,
                );
                shared.say(&describe(&t));
                row.throughput.push(t);
            }
            Err(err) => row.errors.push(format!("{rows}-row writes: {err}")),
        }
    }
    row
}

fn target_row(shared: &mut Shared<'_>, registry: &Registry, target: &TargetConfig) -> RowReport {
    let mut row = RowReport::new(format!("target {}", target.uri), RowKind::Target);
    row.uri = Some(target.uri.clone());
    let result = (|| -> Result<(), BenchError> {
        let runtimes = Runtimes::new(shared.config, false)?;
        let (client_registry, uri) = (registry.clone(), target.uri.clone());
        let client =
            run_on(&runtimes.client, async move {
                Ok(FlightClient::connect_with_options(
                    client_registry,
                    &uri,
                    ConnectOptions::default(),
                )
                .await?)
            })?;
        let client: Arc<dyn PerfClient> = Arc::new(PolyflightPerfClient::new(client));
        // A perf server answers GetFlightInfo for a perf command; anything else gets the
        // fallback workloads.
        let probe = shared.largest().map(|d| command(shared.config, &d, 1));
        let perf = match probe {
            Some(probe) => {
                let c = Arc::clone(&client);
                run_on(
                    &runtimes.client,
                    async move { c.flight_endpoints(&probe).await },
                )
                .and_then(|t| {
                    if t.is_empty() {
                        Err(BenchError::Protocol("no endpoints".into()))
                    } else {
                        Ok(())
                    }
                })
            }
            None => Err(BenchError::Config("no batch size".into())),
        };
        match perf {
            Ok(()) => workloads(shared, &runtimes.client, client, &mut row, true),
            Err(why) => {
                shared.say(&format!(
                    "not a perf server ({why}); using --ticket / --put-path"
                ));
                fallback_workloads(shared, &runtimes.client, client, &mut row, target, &why);
            }
        }
        runtimes.shutdown();
        Ok(())
    })();
    if let Err(err) = result {
        row.errors.push(err.to_string());
    }
    row
}

/// pyarrow's Flight server (`python/perf_server.py`) in a process of its own, measured as a
/// target by polyflight's client; skipped, with the reason, where no Python with pyarrow is
/// found. Client CPU only, as for `--target`.
fn pyarrow_server_row(shared: &mut Shared<'_>, registry: &Registry) -> RowReport {
    let mut row = RowReport::new(PYARROW_SERVER_ROW, RowKind::Reference);
    let python = match crate::process::pyarrow_python() {
        Ok(python) => python,
        Err(why) => {
            shared.say(&format!("skipped: {why}"));
            row.skipped = Some(why);
            return row;
        }
    };
    let server = match crate::process::start_pyarrow_server(&python) {
        Ok(server) => server,
        Err(err) => {
            row.errors.push(err.to_string());
            return row;
        }
    };
    let target = TargetConfig {
        uri: server.uri.clone(),
        ticket: None,
        put_path: None,
    };
    let measured = target_row(shared, registry, &target);
    drop(server);
    RowReport {
        name: row.name,
        kind: row.kind,
        ..measured
    }
}

/// pyarrow's Flight client, one Python process per workload (`python/perf_client.py`), against
/// pyarrow's server or polyflight's grpc server, each in a process of its own; the client's CPU
/// is what Python reports of itself, the server's is read from `/proc`. Throughput only: the
/// per-call cost of a Python loop says nothing about the server's latency.
fn pyarrow_client_row(
    shared: &mut Shared<'_>,
    servers: Option<&ServeCommand>,
    pyarrow_server: bool,
) -> RowReport {
    let name = if pyarrow_server {
        PYARROW_PAIR_ROW
    } else {
        PYARROW_CLIENT_ROW
    };
    let mut row = RowReport::new(name, RowKind::Reference);
    let python = match crate::process::pyarrow_python() {
        Ok(python) => python,
        Err(why) => {
            shared.say(&format!("skipped: {why}"));
            row.skipped = Some(why);
            return row;
        }
    };
    let server = if pyarrow_server {
        crate::process::start_pyarrow_server(&python)
    } else {
        match servers {
            Some(servers) => servers.start(Scheme::Grpc, "grpc://127.0.0.1:0", None),
            None => {
                row.skipped =
                    Some("needs polyflight's server as a process (without --in-process)".into());
                return row;
            }
        }
    };
    let server = match server {
        Ok(server) => server,
        Err(err) => {
            row.errors.push(err.to_string());
            return row;
        }
    };
    row.uri = Some(server.uri.clone());
    let _watch = crate::cpu::watch_server_process(server.pid());
    let config = shared.config;
    let Some(largest) = shared.largest() else {
        return row;
    };
    let script = match crate::process::PythonScript::write(crate::process::PYARROW_PERF_CLIENT) {
        Ok(script) => script,
        Err(err) => {
            row.errors.push(err.to_string());
            return row;
        }
    };
    let run = |workload: &str, command: &PerfCommand| {
        crate::process::run_python_workload(
            &python,
            &script,
            &server.uri,
            workload,
            command,
            config.streams.max(1),
        )
    };
    if config.warmup {
        if let Err(err) = run("doget", &command(config, &largest, warmup_bytes(config))) {
            row.errors.push(format!("warm-up: {err}"));
            return row;
        }
    }
    if config.workloads.doget {
        for data in shared.prepared.clone() {
            let measured = run("doget", &command(config, &data, config.doget_bytes));
            record(
                shared,
                &mut row,
                Workload::DoGet,
                Some(&data),
                false,
                measured,
            );
        }
    }
    if config.workloads.doput {
        let measured = run("doput", &command(config, &largest, config.put_bytes));
        record(
            shared,
            &mut row,
            Workload::DoPut,
            Some(&largest),
            false,
            measured,
        );
    }
    if config.workloads.doexchange {
        let measured = run(
            "doexchange",
            &command(config, &largest, config.exchange_bytes),
        );
        record(
            shared,
            &mut row,
            Workload::DoExchange,
            Some(&largest),
            false,
            measured,
        );
    }
    row
}

fn warmup_bytes(config: &BenchConfig) -> u64 {
    (config.doget_bytes / 8)
        .clamp(8_000_000, 128_000_000)
        .min(config.doget_bytes)
}

fn describe(t: &Throughput) -> String {
    format!(
        "{} {} × {}: {:.1} MB/s ({} in {:.2} s, CPU {:.2} s)",
        t.workload.as_str(),
        rows_label(t.batch_rows),
        t.streams,
        t.mb_per_s,
        human_bytes(t.data_bytes),
        t.seconds,
        t.cpu.process_s
    )
}

async fn doget(
    client: Arc<dyn PerfClient>,
    command: PerfCommand,
    decode: bool,
    driver: i64,
) -> Result<Measured, BenchError> {
    let endpoints = client.flight_endpoints(&command).await?;
    if endpoints.is_empty() {
        return Err(BenchError::Protocol(
            "GetFlightInfo answered with no endpoints".into(),
        ));
    }
    let calls = endpoints
        .into_iter()
        .map(|endpoint| {
            let client = Arc::clone(&client);
            async move { client.do_get(endpoint, decode).await }
        })
        .collect();
    measure_concurrent(driver, calls).await
}

/// The measured workloads of a row whose server speaks the perf protocol. `external`: the
/// server is not in this process, so no server CPU is reported.
fn workloads(
    shared: &mut Shared<'_>,
    rt: &Runtime,
    client: Arc<dyn PerfClient>,
    row: &mut RowReport,
    external: bool,
) {
    let config = shared.config;
    let driver = current_tid();
    let streams = config.streams.max(1);
    let Some(largest) = shared.largest() else {
        return;
    };
    if config.warmup {
        let warm = command(config, &largest, warmup_bytes(config));
        let c = Arc::clone(&client);
        let decode = config.decode;
        let ping = config.workloads.latency;
        let warmed = rt.block_on(async move {
            doget(Arc::clone(&c), warm, decode, driver).await?;
            for _ in 0..if ping { LATENCY_WARMUP } else { 0 } {
                c.do_action(PING_ACTION).await?;
            }
            Ok::<_, BenchError>(())
        });
        if let Err(err) = warmed {
            row.errors.push(format!("warm-up: {err}"));
            return;
        }
    }

    let doget_sizes = if config.workloads.doget {
        shared.prepared.clone()
    } else {
        Vec::new()
    };
    for data in doget_sizes {
        let cmd = command(config, &data, config.doget_bytes);
        let measured = rt.block_on(doget(Arc::clone(&client), cmd, config.decode, driver));
        record(
            shared,
            row,
            Workload::DoGet,
            Some(&data),
            external,
            measured,
        );
    }

    if config.workloads.doput {
        let put = command(config, &largest, config.put_bytes);
        let calls: Vec<_> = (0..streams)
            .map(|_| {
                let (client, data) = (Arc::clone(&client), Arc::clone(&largest));
                let descriptor = PutDescriptor::Cmd(put.encode_bytes());
                let rows = put.records_per_stream as u64;
                async move {
                    let (transfer, summary) = client.do_put(descriptor, data, rows).await?;
                    match summary {
                        Some(s) if s.data_bytes != transfer.sent_bytes => {
                            Err(BenchError::Protocol(format!(
                                "the server counted {} bytes, the client sent {}",
                                s.data_bytes, transfer.sent_bytes
                            )))
                        }
                        _ => Ok(transfer),
                    }
                }
            })
            .collect();
        let measured = rt.block_on(measure_concurrent(driver, calls));
        record(
            shared,
            row,
            Workload::DoPut,
            Some(&largest),
            external,
            measured,
        );
    }

    if config.workloads.doexchange {
        let exchange = command(config, &largest, config.exchange_bytes);
        let calls: Vec<_> = (0..streams)
            .map(|_| {
                let (client, data) = (Arc::clone(&client), Arc::clone(&largest));
                let descriptor = PutDescriptor::Cmd(exchange.encode_bytes());
                let (rows, decode) = (exchange.records_per_stream as u64, config.decode);
                async move {
                    let transfer = client.do_exchange(descriptor, data, rows, decode).await?;
                    if transfer.received_bytes != transfer.sent_bytes {
                        return Err(BenchError::Protocol(format!(
                            "sent {} bytes, {} came back",
                            transfer.sent_bytes, transfer.received_bytes
                        )));
                    }
                    Ok(transfer)
                }
            })
            .collect();
        let measured = rt.block_on(measure_concurrent(driver, calls));
        record(
            shared,
            row,
            Workload::DoExchange,
            Some(&largest),
            external,
            measured,
        );
    }

    if !config.workloads.latency {
        return;
    }
    let calls = config.latency_calls as usize;
    let small = PerfCommand::new(config.spec(), 1, 1, 1);
    let c = Arc::clone(&client);
    let info = run_on(rt, async move {
        round_trips(calls, LATENCY_WARMUP, || {
            let c = Arc::clone(&c);
            let small = small.clone();
            async move { c.flight_endpoints(&small).await.map(|_| ()) }
        })
        .await
    });
    latency(shared, row, "GetFlightInfo", info);
    let c = Arc::clone(&client);
    let action = run_on(rt, async move {
        round_trips(calls, LATENCY_WARMUP, || {
            let c = Arc::clone(&c);
            async move { c.do_action(PING_ACTION).await }
        })
        .await
    });
    latency(shared, row, "DoAction", action);
}

/// Adds a measurement to its row (or the error it ended with). `data` is the prepared batch
/// the workload moved; `None` for a foreign server's ticket, whose batch size is unknown (the
/// message size is then the average received). `external`: the server is not in this process,
/// so no server CPU is reported.
fn record(
    shared: &mut Shared<'_>,
    row: &mut RowReport,
    workload: Workload,
    data: Option<&PreparedData>,
    external: bool,
    measured: Result<Measured, BenchError>,
) {
    let batch_rows = data.map_or(0, |d| d.rows_per_batch() as u64);
    match measured {
        Ok(m) => {
            let message_bytes = data.map_or_else(
                || m.transfer.received_bytes / m.transfer.messages.max(1),
                |d| d.message_bytes,
            );
            let t = Throughput::new(
                workload,
                batch_rows,
                message_bytes,
                shared.config.streams.max(1),
                shared.config.decode,
                m.transfer.sent_bytes,
                m.transfer.received_bytes,
                m.transfer.messages,
                m.elapsed.as_secs_f64(),
                if external {
                    m.cpu.without_server()
                } else {
                    m.cpu
                },
            );
            shared.say(&describe(&t));
            row.throughput.push(t);
        }
        Err(err) => row.errors.push(format!(
            "{} {}: {err}",
            workload.as_str(),
            rows_label(batch_rows)
        )),
    }
}

fn latency(
    shared: &mut Shared<'_>,
    row: &mut RowReport,
    call: &str,
    samples: Result<Vec<u64>, BenchError>,
) {
    match samples {
        Ok(samples) => {
            let stats = LatencyStats::from_nanos(call, samples);
            shared.say(&format!(
                "{call} latency: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
                stats.p50_us, stats.p99_us, stats.max_us
            ));
            row.latency.push(stats);
        }
        Err(err) => row.errors.push(format!("{call} latency: {err}")),
    }
}

/// Workloads for a server that does not speak the perf protocol: DoGet of a given ticket and
/// DoPut to a given path (then GetFlightInfo of that path for latency).
fn fallback_workloads(
    shared: &mut Shared<'_>,
    rt: &Runtime,
    client: Arc<dyn PerfClient>,
    row: &mut RowReport,
    target: &TargetConfig,
    why: &BenchError,
) {
    let config = shared.config;
    let driver = current_tid();
    let streams = config.streams.max(1);
    if target.ticket.is_none() && target.put_path.is_none() {
        row.errors.push(format!(
            "the server does not speak the perf protocol ({why}); give --ticket and/or \
             --put-path to measure DoGet/DoPut against it"
        ));
        return;
    }
    if let (Some(path), Some(data)) = (&target.put_path, shared.largest()) {
        let segments: Vec<String> = path.split('/').map(str::to_string).collect();
        let rows = data.rows_for_bytes(config.put_bytes / u64::from(streams));
        let calls: Vec<_> = (0..streams)
            .map(|_| {
                let (client, data) = (Arc::clone(&client), Arc::clone(&data));
                let descriptor = PutDescriptor::Path(segments.clone());
                async move {
                    let (transfer, _) = client.do_put(descriptor, data, rows).await?;
                    Ok::<Transfer, BenchError>(transfer)
                }
            })
            .collect();
        let measured = rt.block_on(measure_concurrent(driver, calls));
        record(shared, row, Workload::DoPut, Some(&data), true, measured);
    }
    // After the put, so that a ticket naming the uploaded path exists.
    if let Some(ticket) = &target.ticket {
        let calls: Vec<_> = (0..streams)
            .map(|_| {
                let client = Arc::clone(&client);
                let ticket = PerfEndpoint::here(bytes::Bytes::from(ticket.clone().into_bytes()));
                let decode = config.decode;
                async move { client.do_get(ticket, decode).await }
            })
            .collect();
        let measured = rt.block_on(measure_concurrent(driver, calls));
        record(shared, row, Workload::DoGet, None, true, measured);
    }
    if let Some(path) = &target.put_path {
        let segments: Vec<String> = path.split('/').map(str::to_string).collect();
        let calls = config.latency_calls as usize;
        let c = Arc::clone(&client);
        let info = run_on(rt, async move {
            round_trips(calls, LATENCY_WARMUP, || {
                let (c, segments) = (Arc::clone(&c), segments.clone());
                async move { c.path_info(&segments).await }
            })
            .await
        });
        latency(shared, row, "GetFlightInfo", info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::GRPC_ROW;

    #[test]
    fn every_registered_transport_gets_one_row() {
        let registry = polyflight::default_registry();
        let found = transports(&registry);
        let names: Vec<&str> = found.iter().map(|(s, _)| s.as_str()).collect();
        assert!(names.contains(&GRPC_ROW), "{names:?}");
        assert!(!names.contains(&"grpc+tcp"), "alias of grpc: {names:?}");
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(unique, names);
    }

    #[test]
    fn unknown_transports_are_skipped_rows_not_failures() {
        let mut config = BenchConfig::tiny();
        config.transports = vec!["nope".into()];
        config.references = false;
        let report = run(&config, &polyflight::default_registry(), &mut |_| {}).unwrap();
        assert_eq!(report.rows.len(), 1);
        assert!(report.rows[0]
            .skipped
            .as_deref()
            .unwrap()
            .contains("registered: grpc"));
    }
}
