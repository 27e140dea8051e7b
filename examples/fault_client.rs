//! A Flight client that starts a long call and keeps it going, for the fault tests
//! (`tests/faults.rs`), which kill it mid-call:
//!
//! ```text
//! fault_client get URI TICKET   # DoGet, reading a batch every 100 ms
//! fault_client put URI PATH     # DoPut of a batch every 50 ms, forever
//! ```
//!
//! It prints `started` once the call is under way (the first batch read, or acknowledged). With
//! `FAULT_PROGRESS_TIMEOUT_MS=N` its calls fail when no response arrives for N ms; it then exits
//! with status 1, printing the error. For `grpc+tls://` servers whose certificate a private CA
//! issued, `FAULT_TLS_CA=FILE` names that CA's certificate (PEM) to trust instead of the
//! system's roots.

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use futures::{StreamExt, TryStreamExt};
use polyflight::proto::{FlightDescriptor, Ticket};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

fn started() {
    println!("started");
    let _ = std::io::stdout().flush();
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("fault_client: {error}");
        std::process::exit(1);
    }
}

async fn run() -> polyflight::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, uri, name] = args.as_slice() else {
        eprintln!("usage: fault_client get|put URI TICKET_OR_PATH");
        std::process::exit(2);
    };
    let mut options = polyflight::ConnectOptions::default();
    if let Some(ca) = std::env::var_os("FAULT_TLS_CA") {
        let pem = polyflight::transports::read_pem_file(ca)?;
        options
            .extensions
            .insert(polyflight::transports::ClientTlsConfig::new().with_root_ca_pem(pem)?);
    }
    let mut client = polyflight::connect_with_options(uri, options).await?;
    if let Some(ms) = std::env::var("FAULT_PROGRESS_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        client = client.with_call_options(
            polyflight::CallOptions::new().progress_timeout(Duration::from_millis(ms)),
        );
    }
    match mode.as_str() {
        "get" => {
            let mut stream = client
                .do_get(Ticket::new(name.clone().into_bytes()))
                .await?;
            let mut first = true;
            while let Some(batch) = stream.try_next().await? {
                let _ = batch.num_rows();
                if first {
                    started();
                    first = false;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        "put" => {
            let batches = futures::stream::unfold(0i64, |i| async move {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let column: ArrayRef = Arc::new(Int64Array::from(vec![i; 1024]));
                let batch = RecordBatch::try_from_iter([("n", column)]);
                Some((batch.map_err(polyflight::FlightError::from), i + 1))
            });
            let mut acks = client
                .do_put(FlightDescriptor::new_path([name.clone()]), batches.boxed())
                .await?;
            if acks.try_next().await?.is_some() {
                started();
            }
            while acks.try_next().await?.is_some() {}
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
    Ok(())
}
