//! A Flight SQL server over polyflight's transports: a small read-only SQL database (see
//! `catalog.rs`) served on every URI given, at once, until Ctrl-C or the end of standard input.
//!
//! ```text
//! cargo run --example flight_sql_server -- grpc://127.0.0.1:31337 grpc+unix:///tmp/sql.sock
//! cargo run --example flight_sql_server -- --tls-cert server.pem --tls-key server.key grpc+tls://127.0.0.1:0
//! ```
//!
//! With no URI it listens on `grpc://127.0.0.1:31337`. `--tls-cert` and `--tls-key` (PEM files)
//! are the certificate chain and key of `grpc+tls://` listeners. It prints `listening on URI`
//! for each listener (with the port it bound in place of `0`). With `--stop-on-eof` the end of
//! standard input stops it as Ctrl-C does, so a supervising process (a test) can stop it cleanly
//! by closing the pipe.
//!
//! The service is an arrow-flight `FlightSqlService`, served through
//! `polyflight_tonic::ArrowFlightAdapter`; any Flight SQL client can query it, for example ADBC's
//! Flight SQL driver from Python:
//!
//! ```text
//! import adbc_driver_flightsql.dbapi as flight_sql
//! with flight_sql.connect("grpc://127.0.0.1:31337") as conn, conn.cursor() as cursor:
//!     cursor.execute("SELECT city, distance FROM trips WHERE passengers >= 4 LIMIT 10")
//!     print(cursor.fetch_arrow_table())
//! ```

mod catalog;

use polyflight::transport::ListenOptions;
use polyflight::transports::ServerTlsConfig;
use polyflight::FlightError;
use polyflight_tonic::ArrowFlightAdapter;
use std::io::Write;

/// Where the server listens when no URI is given.
const DEFAULT_URI: &str = "grpc://127.0.0.1:31337";

#[tokio::main]
async fn main() -> polyflight::Result<()> {
    let mut uris = Vec::new();
    let (mut cert, mut key, mut stop_on_eof) = (None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tls-cert" => cert = args.next(),
            "--tls-key" => key = args.next(),
            "--stop-on-eof" => stop_on_eof = true,
            _ => uris.push(arg),
        }
    }
    if uris.is_empty() {
        uris.push(DEFAULT_URI.to_string());
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

    let mut builder =
        polyflight::server(ArrowFlightAdapter::new(catalog::SqlCatalogService::new()));
    for uri in uris {
        builder = builder.listen_with(uri, options.clone());
    }
    let server = builder.start().await?;
    {
        let mut stdout = std::io::stdout().lock();
        for location in server.locations() {
            let _ = writeln!(stdout, "listening on {location}");
        }
        let _ = stdout.flush();
    }

    // A thread of its own reads standard input: a read blocked in tokio's blocking pool would
    // keep the runtime from shutting down after Ctrl-C.
    let (stdin_closed, stdin_closed_rx) = tokio::sync::oneshot::channel::<()>();
    if stop_on_eof {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = stdin_closed.send(());
        });
    }
    server
        .serve_until(async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                Ok(()) = stdin_closed_rx => {}
            }
        })
        .await
}
