//! Serves the in-memory Flight service on one or more URIs until Ctrl-C.
//!
//! ```text
//! cargo run --example memory_server -- grpc://127.0.0.1:8815 grpc+tcp://[::1]:0
//! cargo run --example memory_server -- --tls-cert server.pem --tls-key server.key grpc+tls://127.0.0.1:0
//! ```
//!
//! `--tls-cert` and `--tls-key` (PEM files) are the certificate chain and key of `grpc+tls://`
//! listeners. With `--report-calls` it prints `ended METHOD: STATUS` when a call ends, and with
//! `--keepalive-ms N` gRPC connections are pinged after N ms of silence and closed when a ping
//! goes unanswered for N ms (the partition test uses both to see the server's side of a call
//! end).
//!
//! Then, from any Flight client: DoPut stores a stream under its descriptor, DoGet with the
//! path (joined by `/`) as ticket returns it, ListFlights / GetFlightInfo / GetSchema describe it,
//! DoExchange echoes, DoAction serves the standard actions plus `drop` and `clear`.

use polyflight::memory::MemoryService;
use polyflight::transport::ListenOptions;
use polyflight::transports::{GrpcSettings, ServerTlsConfig};
use polyflight::{CallContext, FlightError, ServerMiddleware};
use std::io::Write;
use std::time::Duration;

/// Prints the end of every call, with its status.
struct ReportCalls;

#[polyflight::async_trait]
impl ServerMiddleware for ReportCalls {
    fn call_ended(&self, ctx: &CallContext, status: &Result<(), FlightError>) {
        match status {
            Ok(()) => println!("ended {}: OK", ctx.method()),
            Err(error) => println!("ended {}: {error}", ctx.method()),
        }
        let _ = std::io::stdout().flush();
    }
}

#[tokio::main]
async fn main() -> polyflight::Result<()> {
    let mut uris = Vec::new();
    let (mut cert, mut key, mut report, mut keepalive) = (None, None, false, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tls-cert" => cert = args.next(),
            "--tls-key" => key = args.next(),
            "--report-calls" => report = true,
            "--keepalive-ms" => {
                let ms = args.next().and_then(|v| v.parse().ok()).ok_or_else(|| {
                    FlightError::invalid_argument("--keepalive-ms takes milliseconds")
                })?;
                keepalive = Some(Duration::from_millis(ms));
            }
            _ => uris.push(arg),
        }
    }
    if uris.is_empty() {
        uris.push("grpc://127.0.0.1:8815".to_string());
    }
    let mut options = ListenOptions::default();
    match (cert, key) {
        (Some(cert), Some(key)) => {
            options
                .extensions
                .insert(ServerTlsConfig::from_pem_files(cert, key)?);
        }
        (None, None) => {}
        _ => {
            return Err(FlightError::invalid_argument(
                "--tls-cert and --tls-key go together",
            ))
        }
    }
    if let Some(keepalive) = keepalive {
        options.extensions.insert(GrpcSettings {
            keepalive_interval: Some(keepalive),
            keepalive_timeout: keepalive,
            ..GrpcSettings::default()
        });
    }
    let mut builder = polyflight::server(MemoryService::new());
    if report {
        builder = builder.middleware(ReportCalls);
    }
    for uri in uris {
        builder = builder.listen_with(uri, options.clone());
    }
    let server = builder.start().await?;
    for location in server.locations() {
        println!("listening on {location}");
    }
    server
        .serve_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
