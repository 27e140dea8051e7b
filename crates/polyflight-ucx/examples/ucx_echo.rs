//! Record batches echoed over UCX between two processes with DoExchange; also the check that a
//! binary using this crate starts on its own (run it straight from `target/<profile>/examples/`,
//! no `LD_LIBRARY_PATH`).
//!
//! ```text
//! ucx_echo server [ADDR]                 # default 127.0.0.1:0; prints "listening on HOST:PORT",
//!                                        # serves one DoExchange, then exits
//! ucx_echo client ADDR [BYTES] [COUNT]   # echoes COUNT batches of BYTES and reports MB/s
//! ucx_echo probe                         # loads UCX, listens on a free port, exits
//! ```
//!
//! `UCX_LOG_LEVEL=info` shows the transports each endpoint uses; `POLYFLIGHT_UCX_PROGRESS=busy`
//! switches to busy-polling.

use arrow_array::{ArrayRef, RecordBatch, UInt8Array};
use futures::StreamExt;
use polyflight_core::codec::{EncodeOptions, FlightDataEncoder};
use polyflight_core::{
    CallContext, FlightClient, FlightData, FlightError, FlightService, FlightStream, Registry,
    ServerBuilder,
};
use polyflight_ucx::UcxTransport;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ucx_echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.first().map(String::as_str) {
            Some("server") => {
                server(args.get(1).map(String::as_str).unwrap_or("127.0.0.1:0")).await
            }
            Some("client") => match args.get(1) {
                Some(addr) => {
                    client(
                        addr,
                        args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1 << 20),
                        args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000),
                    )
                    .await
                }
                None => Err("client needs an address".into()),
            },
            Some("probe") => probe().await,
            _ => Err("usage: ucx_echo server [ADDR] | client ADDR [BYTES] [COUNT] | probe".into()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ucx_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyResult = Result<(), Box<dyn std::error::Error>>;

fn registry() -> Registry {
    Registry::new().with(UcxTransport)
}

/// Echoes every DoExchange message back; tells `done` when an exchange has ended.
struct Echo {
    done: Arc<Notify>,
}

#[polyflight_core::async_trait]
impl FlightService for Echo {
    async fn do_exchange(
        &self,
        _ctx: CallContext,
        requests: FlightStream<FlightData>,
    ) -> polyflight_core::Result<FlightStream<FlightData>> {
        let done = self.done.clone();
        let end = futures::stream::once(async move {
            done.notify_one();
            None
        });
        Ok(requests
            .map(Some)
            .chain(end)
            .filter_map(futures::future::ready)
            .boxed())
    }
}

async fn probe() -> AnyResult {
    let done = Arc::new(Notify::new());
    let server = ServerBuilder::new(Echo { done }, registry())
        .listen("ucx://127.0.0.1:0")
        .start()
        .await?;
    println!("UCX works: listened on {}", server.location());
    server.shutdown().await?;
    Ok(())
}

async fn server(addr: &str) -> AnyResult {
    let done = Arc::new(Notify::new());
    let server = ServerBuilder::new(Echo { done: done.clone() }, registry())
        .listen(format!("ucx://{addr}"))
        .shutdown_grace(Duration::from_secs(5))
        .start()
        .await?;
    let location = server.location();
    let host = location.host().unwrap_or("127.0.0.1");
    let port = location.port().unwrap_or(0);
    println!("listening on {host}:{port}");
    // serve one client, then exit: once the exchange has ended, give the client a moment to
    // read its last frames and status before the connection goes (a client under load was seen
    // to get the connection reset before it had read the end of the exchange)
    done.notified().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.shutdown().await?;
    Ok(())
}

/// A batch of one `UInt8` column of `bytes` rows: a FlightData whose body is `bytes` long (plus
/// padding), sent from the column's own buffer.
fn batch_messages(bytes: usize) -> Result<(FlightData, FlightData), FlightError> {
    let column: ArrayRef = Arc::new(UInt8Array::from(vec![7u8; bytes]));
    let batch = RecordBatch::try_from_iter([("data", column)])?;
    // one message per batch, however large: the echo measures bodies of exactly `bytes`
    let mut encoder = FlightDataEncoder::new(EncodeOptions {
        max_message_size: i32::MAX as usize,
        ..EncodeOptions::default()
    });
    let schema = encoder.encode_schema(&batch.schema())?;
    let mut messages = encoder.encode_batch(&batch)?;
    match (messages.pop(), messages.is_empty()) {
        (Some(message), true) => Ok((schema, message)),
        _ => Err(FlightError::internal(
            "the batch did not encode as one message",
        )),
    }
}

async fn client(addr: &str, bytes: usize, count: usize) -> AnyResult {
    let client = FlightClient::connect_with(registry(), &format!("ucx://{addr}")).await?;
    let (schema, batch) = batch_messages(bytes)?;
    let body = batch.data_body.len();
    let messages = std::iter::once(schema).chain(std::iter::repeat_n(batch, count));
    let requests = futures::stream::iter(messages.map(Ok)).boxed();
    let start = Instant::now();
    let response = client.do_exchange_data(requests).await?;
    let mut echoed = response.body;
    let mut received = 0;
    while let Some(message) = echoed.next().await {
        let message = message?;
        if message.data_body.is_empty() {
            continue; // the schema
        }
        if message.data_body.len() != body {
            return Err("echoed body has the wrong size".into());
        }
        received += 1;
    }
    if received != count {
        return Err(format!("{received} of {count} batches came back").into());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mb = (2 * body * count) as f64 / 1e6;
    println!(
        "{count} x {bytes} B echoed in {elapsed:.3} s: {:.0} MB/s both ways",
        mb / elapsed
    );
    Ok(())
}
