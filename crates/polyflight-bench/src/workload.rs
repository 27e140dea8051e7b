//! The workloads, written once against [`PerfClient`] — the calls a benchmark makes — so the
//! same code drives a polyflight client over any transport and the arrow-flight reference
//! client.
//!
//! Throughput workloads open N streams at once, each as its own task on the client runtime, and
//! count the IPC bytes (`data_header` + `data_body`) of every FlightData message the client
//! receives (DoGet, DoExchange) or hands to its transport (DoPut). Nothing is copied to count:
//! the lengths are read off the messages. With `decode` the client also decodes every batch,
//! which is what an application pays on top.

use crate::command::{PerfCommand, PutSummary};
use crate::cpu::{CpuSnapshot, CpuUsage};
use crate::data::{encode_options, PreparedData};
use crate::BenchError;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use polyflight::codec::{FlightDataEncoderBuilder, FlightRecordBatchStream};
use polyflight::proto::{Action, FlightDescriptor, Ticket};
use polyflight::FlightClient;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one call (or one workload) moved, as the client counted it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    /// IPC bytes the client sent (DoPut, DoExchange).
    pub sent_bytes: u64,
    /// IPC bytes the client received (DoGet, DoExchange).
    pub received_bytes: u64,
    /// FlightData messages received (or sent, for DoPut).
    pub messages: u64,
    /// Rows decoded (only with `decode`) or acknowledged by the server (DoPut).
    pub rows: u64,
}

impl Transfer {
    fn add(&mut self, other: Transfer) {
        self.sent_bytes += other.sent_bytes;
        self.received_bytes += other.received_bytes;
        self.messages += other.messages;
        self.rows += other.rows;
    }
}

/// Where a DoPut uploads to.
#[derive(Debug, Clone, PartialEq)]
pub enum PutDescriptor {
    /// A CMD descriptor (for a perf server: a [`PerfCommand`]).
    Cmd(Bytes),
    /// A PATH descriptor (for any other server).
    Path(Vec<String>),
}

/// The calls a benchmark makes, implemented by each client under test.
#[async_trait::async_trait]
pub trait PerfClient: Send + Sync + 'static {
    /// GetFlightInfo for a perf command; returns its endpoints.
    async fn flight_endpoints(
        &self,
        command: &PerfCommand,
    ) -> Result<Vec<PerfEndpoint>, BenchError>;

    /// DoGet of an endpoint's ticket, read to the end: from the endpoint's location where the
    /// client follows locations (a coordinator's endpoints are on its data nodes), else over
    /// this client's connection.
    async fn do_get(&self, endpoint: PerfEndpoint, decode: bool) -> Result<Transfer, BenchError>;

    /// DoPut of `rows` rows of `data`, read to the last PutResult. A perf server's summary is
    /// returned when it sent one.
    async fn do_put(
        &self,
        descriptor: PutDescriptor,
        data: Arc<PreparedData>,
        rows: u64,
    ) -> Result<(Transfer, Option<PutSummary>), BenchError>;

    /// DoExchange of `rows` rows of `data`, reading the echo to its end.
    async fn do_exchange(
        &self,
        descriptor: PutDescriptor,
        data: Arc<PreparedData>,
        rows: u64,
        decode: bool,
    ) -> Result<Transfer, BenchError>;

    /// GetFlightInfo of a PATH descriptor (for servers that do not speak the perf protocol).
    async fn path_info(&self, path: &[String]) -> Result<(), BenchError>;

    /// DoAction, reading every result.
    async fn do_action(&self, action_type: &str) -> Result<(), BenchError>;
}

/// An endpoint of a perf flight: its ticket and where to read it (empty: the server asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfEndpoint {
    /// The ticket.
    pub ticket: Bytes,
    /// The endpoint's location URIs.
    pub locations: Vec<String>,
}

impl PerfEndpoint {
    /// An endpoint of the server asked, with `ticket`.
    pub fn here(ticket: Bytes) -> Self {
        PerfEndpoint {
            ticket,
            locations: Vec::new(),
        }
    }

    /// The endpoints of a FlightInfo (those without a ticket left out).
    pub fn from_info(info: polyflight::proto::FlightInfo) -> Vec<PerfEndpoint> {
        info.endpoint
            .into_iter()
            .filter_map(|e| {
                let locations = e.location.into_iter().map(|l| l.uri).collect();
                e.ticket.map(|t| PerfEndpoint {
                    ticket: t.ticket,
                    locations,
                })
            })
            .collect()
    }
}

/// [`PerfClient`] over a polyflight [`FlightClient`] (any transport).
#[derive(Debug, Clone)]
pub struct PolyflightPerfClient {
    client: FlightClient,
}

impl PolyflightPerfClient {
    /// Wraps a connected client.
    pub fn new(client: FlightClient) -> Self {
        PolyflightPerfClient { client }
    }
}

fn descriptor(put: PutDescriptor) -> FlightDescriptor {
    match put {
        PutDescriptor::Cmd(cmd) => FlightDescriptor::new_cmd(cmd),
        PutDescriptor::Path(path) => FlightDescriptor::new_path(path),
    }
}

/// The upload of a DoPut/DoExchange: `rows` rows of `data` encoded as the perf server encodes
/// (one message per batch), counting the bytes the transport takes.
fn upload(
    put: PutDescriptor,
    data: &Arc<PreparedData>,
    rows: u64,
    sent: Arc<AtomicU64>,
) -> polyflight::FlightStream<polyflight::FlightData> {
    let batches = futures::stream::iter(data.batches(rows).map(Ok));
    FlightDataEncoderBuilder::new()
        .with_options(encode_options())
        .with_schema(Arc::clone(&data.schema))
        .with_flight_descriptor(descriptor(put))
        .build(batches)
        .inspect_ok(move |m| {
            sent.fetch_add(m.data_len() as u64, Ordering::Relaxed);
        })
        .boxed()
}

/// Reads a FlightData stream to its end, counting (and with `decode`, decoding) it.
async fn drain(
    stream: polyflight::FlightStream<polyflight::FlightData>,
    decode: bool,
) -> Result<Transfer, BenchError> {
    let mut transfer = Transfer::default();
    if decode {
        let received = Arc::new(AtomicU64::new(0));
        let messages = Arc::new(AtomicU64::new(0));
        let (r, m) = (Arc::clone(&received), Arc::clone(&messages));
        let counted = stream
            .inspect_ok(move |d| {
                r.fetch_add(d.data_len() as u64, Ordering::Relaxed);
                m.fetch_add(1, Ordering::Relaxed);
            })
            .boxed();
        let mut batches = FlightRecordBatchStream::new(counted);
        while let Some(batch) = batches.try_next().await? {
            transfer.rows += batch.num_rows() as u64;
        }
        transfer.received_bytes = received.load(Ordering::Relaxed);
        transfer.messages = messages.load(Ordering::Relaxed);
    } else {
        let mut stream = stream;
        while let Some(message) = stream.try_next().await? {
            transfer.received_bytes += message.data_len() as u64;
            transfer.messages += 1;
        }
    }
    Ok(transfer)
}

#[async_trait::async_trait]
impl PerfClient for PolyflightPerfClient {
    async fn flight_endpoints(
        &self,
        command: &PerfCommand,
    ) -> Result<Vec<PerfEndpoint>, BenchError> {
        let info = self
            .client
            .get_flight_info(FlightDescriptor::new_cmd(command.encode_bytes()))
            .await?;
        Ok(PerfEndpoint::from_info(info))
    }

    async fn do_get(&self, endpoint: PerfEndpoint, decode: bool) -> Result<Transfer, BenchError> {
        let client = if endpoint.locations.is_empty() {
            self.client.clone()
        } else {
            let flight_endpoint = polyflight::proto::FlightEndpoint {
                location: endpoint
                    .locations
                    .iter()
                    .map(|uri| polyflight::proto::Location { uri: uri.clone() })
                    .collect(),
                ..Default::default()
            };
            self.client.client_for_endpoint(&flight_endpoint).await?
        };
        let response = client.do_get_data(Ticket::new(endpoint.ticket)).await?;
        drain(response.body, decode).await
    }

    async fn do_put(
        &self,
        descriptor: PutDescriptor,
        data: Arc<PreparedData>,
        rows: u64,
    ) -> Result<(Transfer, Option<PutSummary>), BenchError> {
        let sent = Arc::new(AtomicU64::new(0));
        let response = self
            .client
            .do_put_data(upload(descriptor, &data, rows, Arc::clone(&sent)))
            .await?;
        let results: Vec<_> = response.body.try_collect().await?;
        let summary = results
            .last()
            .and_then(|r| PutSummary::decode_bytes(&r.app_metadata).ok());
        let transfer = Transfer {
            sent_bytes: sent.load(Ordering::Relaxed),
            rows: summary.as_ref().map(|s| s.records).unwrap_or(0),
            messages: summary.as_ref().map(|s| s.messages).unwrap_or(0),
            ..Transfer::default()
        };
        Ok((transfer, summary))
    }

    async fn do_exchange(
        &self,
        descriptor: PutDescriptor,
        data: Arc<PreparedData>,
        rows: u64,
        decode: bool,
    ) -> Result<Transfer, BenchError> {
        let sent = Arc::new(AtomicU64::new(0));
        let response = self
            .client
            .do_exchange_data(upload(descriptor, &data, rows, Arc::clone(&sent)))
            .await?;
        let mut transfer = drain(response.body, decode).await?;
        transfer.sent_bytes = sent.load(Ordering::Relaxed);
        Ok(transfer)
    }

    async fn path_info(&self, path: &[String]) -> Result<(), BenchError> {
        self.client
            .get_flight_info(FlightDescriptor::new_path(path.iter().cloned()))
            .await?;
        Ok(())
    }

    async fn do_action(&self, action_type: &str) -> Result<(), BenchError> {
        let mut results = self
            .client
            .do_action(Action {
                r#type: action_type.to_string(),
                body: Bytes::new(),
            })
            .await?;
        while results.try_next().await?.is_some() {}
        Ok(())
    }
}

/// A measured run: what moved, how long it took, what CPU it used.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// What moved.
    pub transfer: Transfer,
    /// Wall-clock time from the first call to the end of the last stream.
    pub elapsed: Duration,
    /// CPU used meanwhile.
    pub cpu: CpuUsage,
}

/// Runs `calls` (futures already created, not yet polled) as concurrent tasks on the current
/// runtime and measures them together. The first error fails the run.
pub async fn measure_concurrent<F>(driver: i64, calls: Vec<F>) -> Result<Measured, BenchError>
where
    F: Future<Output = Result<Transfer, BenchError>> + Send + 'static,
{
    let before = CpuSnapshot::take(driver);
    let start = Instant::now();
    let tasks: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut transfer = Transfer::default();
    let mut failure = None;
    for task in tasks {
        match task.await {
            Ok(Ok(t)) => transfer.add(t),
            Ok(Err(err)) => {
                failure.get_or_insert(err);
            }
            Err(join) => {
                failure.get_or_insert(BenchError::Other(format!("a stream task failed: {join}")));
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = before.until(&CpuSnapshot::take(driver));
    match failure {
        Some(err) => Err(err),
        None => Ok(Measured {
            transfer,
            elapsed,
            cpu,
        }),
    }
}

/// Round-trip times of `calls` sequential calls of `call` (one in flight at a time), after
/// `warmup` unmeasured ones, in nanoseconds.
pub async fn round_trips<F, Fut>(
    calls: usize,
    warmup: usize,
    call: F,
) -> Result<Vec<u64>, BenchError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), BenchError>>,
{
    for _ in 0..warmup {
        call().await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        call().await?;
        samples.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(samples)
}
