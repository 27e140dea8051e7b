//! `polyflight serve`: a directory of Arrow and Parquet files (the dataset service), or the
//! in-memory or perf service, on any number of URIs at once, with TLS (mutual when a client CA
//! is given) on the `grpc+tls` ones and logins from a password file. Prints one
//! `listening on URI` line per location, with the real port when 0 was asked for, then serves
//! until Ctrl-C or SIGTERM and shuts down gracefully.

use crate::args::{IoChoice, ServeArgs, ServiceKind};
use crate::connect::{parse_uri, read_pem};
use crate::fail::{Failure, Outcome};
use crate::passwords::PasswordFile;
use polyflight::cluster::{Coordinator, Node};
use polyflight::memory::MemoryService;
use polyflight::transport::ListenOptions;
use polyflight::transports::ServerTlsConfig;
use polyflight::{FlightCode, Scheme, ServerBuilder};
use polyflight_bench::PerfService;
use polyflight_dataset::{DatasetOptions, DatasetService, IoMode};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub async fn serve(args: ServeArgs) -> Outcome {
    if !args.nodes.is_empty() && args.service != ServiceKind::Coordinator {
        return Err(Failure::usage("--node is for --service coordinator"));
    }
    let (dir, uris) = split_targets(&args)?;
    let mut any_tls = false;
    for uri in &uris {
        let location = parse_uri(uri)?;
        if location.scheme() == Scheme::GrpcTls {
            any_tls = true;
            if args.tls_cert.is_none() {
                return Err(Failure::usage(format!(
                    "grpc+tls needs --tls-cert and --tls-key (to serve {uri})"
                )));
            }
        }
    }
    if !any_tls && args.tls_cert.is_some() {
        return Err(Failure::usage(
            "--tls-cert is for grpc+tls:// URIs, and none is listed",
        ));
    }
    let mut options = listen_options(&args)?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        options.extensions.insert(server_tls(&args, cert, key)?);
    }
    let passwords = args
        .auth_basic
        .as_deref()
        .map(PasswordFile::load)
        .transpose()?;
    let mut note = None;
    let mut builder = match (args.service, dir) {
        (ServiceKind::Dataset, Some(dir)) => {
            let service = dataset(&args, dir.clone())?;
            note = Some(dataset_note(&dir, &service));
            polyflight::server(service)
        }
        (ServiceKind::Memory, _) => polyflight::server(MemoryService::new()),
        (ServiceKind::Perf, _) => polyflight::server(PerfService::new()),
        (ServiceKind::Coordinator, _) => polyflight::server(coordinator(&args)?),
        (ServiceKind::Dataset, None) => {
            return Err(Failure::usage("serve needs a directory before the URIs"))
        }
    };
    if let Some(passwords) = passwords {
        builder = builder.auth(passwords.authenticator());
    }
    for uri in &uris {
        builder = builder.listen_with(uri.clone(), options.clone());
    }
    start(builder, args.json, note).await
}

/// The directory (for the dataset service) and the URIs, from the positional arguments.
fn split_targets(args: &ServeArgs) -> Outcome<(Option<PathBuf>, Vec<String>)> {
    let looks_like_uri = |t: &String| t.contains("://");
    match args.service {
        ServiceKind::Dataset => {
            let Some((dir, uris)) = args.targets.split_first() else {
                return Err(Failure::usage(
                    "serve needs a directory and a URI to listen on",
                ));
            };
            if looks_like_uri(dir) {
                return Err(Failure::usage(format!(
                    "serve needs the directory to serve before the URIs (polyflight serve DIR \
                     {dir}), or --service memory|perf to serve no directory"
                )));
            }
            if uris.is_empty() {
                return Err(Failure::usage(format!(
                    "serve {dir}: give at least one URI to listen on, e.g. grpc://0.0.0.0:8815"
                )));
            }
            Ok((Some(PathBuf::from(dir)), uris.to_vec()))
        }
        ServiceKind::Memory | ServiceKind::Perf | ServiceKind::Coordinator => {
            let dataset_flags = args.read_only
                || args.read_ahead.is_some()
                || args.endpoint_rows.is_some()
                || args.io != IoChoice::Auto;
            if dataset_flags {
                return Err(Failure::usage(
                    "--io, --read-ahead, --endpoint-rows and --read-only are for a directory \
                     (the dataset service), not --service memory or perf",
                ));
            }
            if let Some(dir) = args.targets.iter().find(|t| !looks_like_uri(t)) {
                return Err(Failure::usage(format!(
                    "{dir:?} is not a URI; --service memory, perf and coordinator serve no \
                     directory"
                )));
            }
            Ok((None, args.targets.clone()))
        }
    }
}

fn coordinator(args: &ServeArgs) -> Outcome<Coordinator> {
    if args.nodes.is_empty() {
        return Err(Failure::usage(
            "--service coordinator needs its data nodes: --node URI[,URI…] for each",
        ));
    }
    let nodes = args
        .nodes
        .iter()
        .map(|list| {
            Node::parse(list)
                .map_err(|err| Failure::usage(format!("--node {list}: {}", err.message())))
        })
        .collect::<Outcome<Vec<_>>>()?;
    let timeout = seconds(args.node_timeout, "node-timeout")?
        .unwrap_or(polyflight::cluster::DEFAULT_NODE_TIMEOUT);
    Coordinator::new(nodes)
        .map(|c| c.node_timeout(timeout))
        .map_err(|err| Failure::usage(err.message().to_string()))
}

fn dataset(args: &ServeArgs, dir: PathBuf) -> Outcome<DatasetService> {
    if !dir.is_dir() {
        return Err(Failure::bad_input(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let mut options = DatasetOptions {
        io: match args.io {
            IoChoice::Auto => IoMode::Auto,
            IoChoice::Uring => IoMode::Uring,
            IoChoice::Plain => IoMode::Plain,
            IoChoice::Mmap => IoMode::Mmap,
        },
        allow_put: !args.read_only,
        put_idle_timeout: seconds(args.put_idle_timeout, "put-idle-timeout")?,
        ..DatasetOptions::default()
    };
    if let Some(bytes) = args.read_ahead {
        options.read_ahead = bytes;
    }
    if let Some(rows) = args.endpoint_rows {
        options.endpoint_rows = Some(rows);
    }
    let service = DatasetService::new(&dir, options).map_err(|err| {
        let what = format!("cannot serve {}: {}", dir.display(), err.message());
        match err.code() {
            FlightCode::InvalidArgument | FlightCode::NotFound => Failure::bad_input(what),
            _ => Failure::other(what),
        }
    })?;
    Ok(service)
}

/// What `serve` says on stderr about a dataset once it listens: the directory and how files are
/// read.
fn dataset_note(dir: &Path, service: &DatasetService) -> String {
    let backend = service.io_backend();
    match backend.reason() {
        Some(reason) => format!(
            "serving {} (file I/O: {}; {reason})",
            dir.display(),
            backend.name()
        ),
        None => format!("serving {} (file I/O: {})", dir.display(), backend.name()),
    }
}

fn server_tls(args: &ServeArgs, cert: &Path, key: &Path) -> Outcome<ServerTlsConfig> {
    let identity =
        ServerTlsConfig::from_pem(read_pem(cert, "--tls-cert")?, read_pem(key, "--tls-key")?)
            .map_err(|err| {
                Failure::bad_input(format!("--tls-cert/--tls-key: {}", err.message()))
            })?;
    match &args.tls_client_ca {
        None => Ok(identity),
        Some(ca) => identity
            .require_client_cert(read_pem(ca, "--tls-client-ca")?)
            .map_err(|err| {
                Failure::bad_input(format!(
                    "--tls-client-ca {}: {}",
                    ca.display(),
                    err.message()
                ))
            }),
    }
}

/// A `--…-timeout` flag in seconds; 0 is no limit.
fn seconds(value: f64, what: &str) -> Outcome<Option<Duration>> {
    if value == 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(value)
        .map(Some)
        .map_err(|_| Failure::usage(format!("--{what} must be a number of seconds, not {value}")))
}

fn listen_options(args: &ServeArgs) -> Outcome<ListenOptions> {
    Ok(ListenOptions {
        handshake_timeout: seconds(args.handshake_timeout, "handshake-timeout")?,
        idle_timeout: seconds(args.idle_timeout, "idle-timeout")?,
        max_connections: (args.max_connections > 0).then_some(args.max_connections),
        ..ListenOptions::default()
    })
}

async fn start(builder: ServerBuilder, json: bool, note: Option<String>) -> Outcome {
    let server = builder.start().await.map_err(|err| {
        let message = err.message();
        match err.code() {
            FlightCode::InvalidArgument => Failure::usage(message.to_string()),
            _ => Failure::connection(message.to_string()),
        }
    })?;
    if let Some(note) = note {
        eprintln!("{note}");
    }
    for location in server.locations() {
        if json {
            println!(
                "{}",
                serde_json::json!({ "listening": location.to_string() })
            );
        } else {
            println!("listening on {location}");
        }
    }
    shutdown_signal().await;
    eprintln!("shutting down");
    server
        .shutdown()
        .await
        .map_err(|err| Failure::other(format!("shutting down: {}", err.message())))
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
