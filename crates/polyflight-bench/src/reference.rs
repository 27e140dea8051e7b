//! The comparison row: the Rust `arrow-flight` crate (tonic) serving and reading the same perf
//! protocol over TCP, with the same prepared data as the polyflight rows.
//!
//! Settings are arrow-flight's and tonic's defaults with one exception: the decode limit of
//! both the client and the server is raised from tonic's 4 MiB to 2 GiB − 1 (polyflight's
//! default), because a stock limit rejects any batch message above 4 MiB and the comparison
//! would fail rather than measure. arrow-flight's encoder keeps its default of splitting
//! batches into messages of at most ~2 MiB; batch sizes below that travel as one message on
//! both sides. The server accepts with `TCP_NODELAY`, as `tonic::transport::Server::serve` does.

use crate::command::{PerfCommand, PutSummary, PING_ACTION};
use crate::data::PreparedData;
use crate::service::{wants_decode_cmd, PerfData, PutCounter};
use crate::workload::{PerfClient, PerfEndpoint, PutDescriptor, Transfer};
use crate::BenchError;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

/// The decode limit given to arrow-flight's client and server (polyflight's default).
pub const DECODE_LIMIT: usize = i32::MAX as usize;

type TonicStream<T> = BoxStream<'static, Result<T, Status>>;

fn status(err: BenchError) -> Status {
    match err {
        BenchError::Protocol(message) => Status::invalid_argument(message),
        other => Status::internal(other.to_string()),
    }
}

fn arrow_status(err: arrow_flight::error::FlightError) -> Status {
    match err {
        arrow_flight::error::FlightError::Tonic(status) => *status,
        other => Status::internal(other.to_string()),
    }
}

/// The perf service as an arrow-flight `FlightService`.
#[derive(Debug, Clone, Default)]
pub struct ArrowFlightPerfService {
    data: PerfData,
}

impl ArrowFlightPerfService {
    fn flight_info(&self, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        if descriptor.r#type != arrow_flight::flight_descriptor::DescriptorType::Cmd as i32 {
            return Err(Status::invalid_argument(
                "a perf flight is named by a CMD descriptor holding a PerfCommand",
            ));
        }
        let command = PerfCommand::decode_bytes(&descriptor.cmd).map_err(status)?;
        let flight = self.data.flight(&command).map_err(status)?;
        let mut info = FlightInfo::new()
            .try_with_schema(&flight.data.schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_descriptor(descriptor)
            .with_total_records(flight.total_records)
            .with_total_bytes(flight.total_bytes);
        for ticket in &flight.tickets {
            info = info.with_endpoint(FlightEndpoint::new().with_ticket(Ticket {
                ticket: ticket.encode_bytes(),
            }));
        }
        Ok(info)
    }
}

#[tonic::async_trait]
impl FlightService for ArrowFlightPerfService {
    type HandshakeStream = TonicStream<HandshakeResponse>;
    type ListFlightsStream = TonicStream<FlightInfo>;
    type DoGetStream = TonicStream<FlightData>;
    type DoPutStream = TonicStream<PutResult>;
    type DoExchangeStream = TonicStream<FlightData>;
    type DoActionStream = TonicStream<arrow_flight::Result>;
    type ListActionsStream = TonicStream<ActionType>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("Handshake"))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("ListFlights"))
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.flight_info(request.into_inner()).map(Response::new)
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("PollFlightInfo"))
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let command = PerfCommand::decode_bytes(&request.into_inner().cmd).map_err(status)?;
        let flight = self.data.flight(&command).map_err(status)?;
        let options = arrow_ipc::writer::IpcWriteOptions::default();
        SchemaAsIpc::new(&flight.data.schema, &options)
            .try_into()
            .map(Response::new)
            .map_err(|e: arrow_schema::ArrowError| Status::internal(e.to_string()))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let (schema, batches) = self
            .data
            .stream(&request.into_inner().ticket)
            .map_err(status)?;
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(batches.map(Ok)))
            .map_err(arrow_status);
        Ok(Response::new(stream.boxed()))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let mut data = request.into_inner();
        let consume = async move {
            let mut counter = PutCounter::new();
            let Some(first) = data.message().await? else {
                return Ok(PutResult {
                    app_metadata: counter.summary().encode_bytes(),
                });
            };
            let decode = first
                .flight_descriptor
                .as_ref()
                .is_some_and(|d| wants_decode_cmd(d.r#type, &d.cmd));
            if decode {
                // Decode with arrow-flight's own decoder, counting bytes as they pass.
                let bytes = Arc::new(AtomicU64::new(0));
                let messages = Arc::new(AtomicU64::new(0));
                let (b, m) = (Arc::clone(&bytes), Arc::clone(&messages));
                let upload = futures::stream::iter([Ok(first)])
                    .chain(data)
                    .inspect_ok(move |d| {
                        b.fetch_add(
                            (d.data_header.len() + d.data_body.len()) as u64,
                            Ordering::Relaxed,
                        );
                        m.fetch_add(1, Ordering::Relaxed);
                    })
                    .map_err(|s| arrow_flight::error::FlightError::Tonic(Box::new(s)));
                let mut batches = FlightRecordBatchStream::new_from_flight_data(upload);
                let mut records = 0;
                while let Some(batch) = batches.try_next().await.map_err(arrow_status)? {
                    records += batch.num_rows() as u64;
                }
                let summary = PutSummary {
                    messages: messages.load(Ordering::Relaxed),
                    records,
                    data_bytes: bytes.load(Ordering::Relaxed),
                };
                return Ok(PutResult {
                    app_metadata: summary.encode_bytes(),
                });
            }
            counter.count(&first.data_header, first.data_body.len());
            while let Some(message) = data.message().await? {
                counter.count(&message.data_header, message.data_body.len());
            }
            Ok::<_, Status>(PutResult {
                app_metadata: counter.summary().encode_bytes(),
            })
        };
        Ok(Response::new(futures::stream::once(consume).boxed()))
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let echo = request
            .into_inner()
            .try_filter_map(|mut message| async move {
                message.flight_descriptor = None;
                let empty = message.data_header.is_empty()
                    && message.app_metadata.is_empty()
                    && message.data_body.is_empty();
                Ok((!empty).then_some(message))
            });
        Ok(Response::new(echo.boxed()))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        if request.get_ref().r#type != PING_ACTION {
            return Err(Status::unimplemented("unknown action"));
        }
        let result = arrow_flight::Result { body: Bytes::new() };
        Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let ping = ActionType {
            r#type: PING_ACTION.into(),
            description: "Answers with one empty result".into(),
        };
        Ok(Response::new(futures::stream::iter([Ok(ping)]).boxed()))
    }
}

/// A running arrow-flight perf server.
#[derive(Debug)]
pub struct ArrowFlightServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ArrowFlightServer {
    /// Binds 127.0.0.1 on a free port and serves on the current runtime.
    pub async fn start() -> Result<ArrowFlightServer, BenchError> {
        let incoming = tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into())?
            .with_nodelay(Some(true));
        let addr = incoming.local_addr()?;
        let service = FlightServiceServer::new(ArrowFlightPerfService::default())
            .max_decoding_message_size(DECODE_LIMIT);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = result {
                tracing::warn!(error = %err, "arrow-flight perf server failed");
            }
        });
        Ok(ArrowFlightServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The `grpc://` URI of the server.
    pub fn uri(&self) -> String {
        format!("grpc://{}", self.addr)
    }

    /// The address of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// [`PerfClient`] over arrow-flight's generated tonic client (one HTTP/2 connection, shared by
/// concurrent calls as tonic channels are).
#[derive(Debug, Clone)]
pub struct ArrowFlightPerfClient {
    client: FlightServiceClient<Channel>,
}

impl ArrowFlightPerfClient {
    /// Connects to `addr` with tonic's default endpoint settings.
    pub async fn connect(addr: SocketAddr) -> Result<Self, BenchError> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| BenchError::ArrowFlight(e.to_string()))?
            .connect()
            .await
            .map_err(|e| BenchError::ArrowFlight(format!("cannot connect to {addr}: {e}")))?;
        let client = FlightServiceClient::new(channel).max_decoding_message_size(DECODE_LIMIT);
        Ok(ArrowFlightPerfClient { client })
    }
}

fn tonic_error(status: Status) -> BenchError {
    BenchError::ArrowFlight(format!("{:?}: {}", status.code(), status.message()))
}

fn arrow_descriptor(put: PutDescriptor) -> FlightDescriptor {
    match put {
        PutDescriptor::Cmd(cmd) => FlightDescriptor::new_cmd(cmd),
        PutDescriptor::Path(path) => FlightDescriptor::new_path(path),
    }
}

/// An upload encoded by arrow-flight's encoder (default options), counting bytes sent. An
/// encoding error ends the upload and is kept in `failed`.
fn arrow_upload(
    put: PutDescriptor,
    data: &Arc<PreparedData>,
    rows: u64,
    sent: Arc<AtomicU64>,
    failed: Arc<Mutex<Option<String>>>,
) -> Upload {
    let batches = futures::stream::iter(data.batches(rows).map(Ok));
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(Arc::clone(&data.schema))
        .with_flight_descriptor(Some(arrow_descriptor(put)))
        .build(batches);
    // tonic takes a stream of messages, not of results: stop at the first error and keep it.
    let upload = futures::stream::unfold(encoded, move |mut encoded| {
        let (sent, failed) = (Arc::clone(&sent), Arc::clone(&failed));
        async move {
            match encoded.next().await? {
                Ok(message) => {
                    sent.fetch_add(
                        (message.data_header.len() + message.data_body.len()) as u64,
                        Ordering::Relaxed,
                    );
                    Some((message, encoded))
                }
                Err(err) => {
                    if let Ok(mut slot) = failed.lock() {
                        slot.get_or_insert(err.to_string());
                    }
                    None
                }
            }
        }
    })
    .boxed();
    Upload(upload)
}

async fn arrow_drain(stream: Streaming<FlightData>, decode: bool) -> Result<Transfer, BenchError> {
    let mut transfer = Transfer::default();
    if decode {
        let received = Arc::new(AtomicU64::new(0));
        let messages = Arc::new(AtomicU64::new(0));
        let (r, m) = (Arc::clone(&received), Arc::clone(&messages));
        let counted = stream
            .inspect_ok(move |d| {
                r.fetch_add(
                    (d.data_header.len() + d.data_body.len()) as u64,
                    Ordering::Relaxed,
                );
                m.fetch_add(1, Ordering::Relaxed);
            })
            .map_err(|s| arrow_flight::error::FlightError::Tonic(Box::new(s)));
        let mut batches = FlightRecordBatchStream::new_from_flight_data(counted);
        while let Some(batch) = batches
            .try_next()
            .await
            .map_err(|e| BenchError::ArrowFlight(e.to_string()))?
        {
            transfer.rows += batch.num_rows() as u64;
        }
        transfer.received_bytes = received.load(Ordering::Relaxed);
        transfer.messages = messages.load(Ordering::Relaxed);
    } else {
        let mut stream = stream;
        while let Some(message) = stream.message().await.map_err(tonic_error)? {
            transfer.received_bytes += (message.data_header.len() + message.data_body.len()) as u64;
            transfer.messages += 1;
        }
    }
    Ok(transfer)
}

#[async_trait::async_trait]
impl PerfClient for ArrowFlightPerfClient {
    async fn flight_endpoints(
        &self,
        command: &PerfCommand,
    ) -> Result<Vec<PerfEndpoint>, BenchError> {
        let info = self
            .client
            .clone()
            .get_flight_info(FlightDescriptor::new_cmd(command.encode_bytes()))
            .await
            .map_err(tonic_error)?
            .into_inner();
        // Read over this connection, whatever the locations say: the reference row measures
        // one tonic client against one server.
        Ok(info
            .endpoint
            .into_iter()
            .filter_map(|e| e.ticket.map(|t| PerfEndpoint::here(t.ticket)))
            .collect())
    }

    async fn do_get(&self, endpoint: PerfEndpoint, decode: bool) -> Result<Transfer, BenchError> {
        let stream = self
            .client
            .clone()
            .do_get(Ticket {
                ticket: endpoint.ticket,
            })
            .await
            .map_err(tonic_error)?
            .into_inner();
        arrow_drain(stream, decode).await
    }

    async fn do_put(
        &self,
        descriptor: PutDescriptor,
        data: Arc<PreparedData>,
        rows: u64,
    ) -> Result<(Transfer, Option<PutSummary>), BenchError> {
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(None));
        let upload = arrow_upload(
            descriptor,
            &data,
            rows,
            Arc::clone(&sent),
            Arc::clone(&failed),
        );
        let mut client = self.client.clone();
        let mut results = client
            .do_put(upload)
            .await
            .map_err(tonic_error)?
            .into_inner();
        let mut last = None;
        while let Some(result) = results.message().await.map_err(tonic_error)? {
            last = Some(result);
        }
        if let Some(err) = failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(BenchError::ArrowFlight(format!(
                "encoding the upload: {err}"
            )));
        }
        let summary = last.and_then(|r| PutSummary::decode_bytes(&r.app_metadata).ok());
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
        let failed = Arc::new(Mutex::new(None));
        let upload = arrow_upload(
            descriptor,
            &data,
            rows,
            Arc::clone(&sent),
            Arc::clone(&failed),
        );
        let mut client = self.client.clone();
        let stream = client
            .do_exchange(upload)
            .await
            .map_err(tonic_error)?
            .into_inner();
        let mut transfer = arrow_drain(stream, decode).await?;
        if let Some(err) = failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(BenchError::ArrowFlight(format!(
                "encoding the upload: {err}"
            )));
        }
        transfer.sent_bytes = sent.load(Ordering::Relaxed);
        Ok(transfer)
    }

    async fn path_info(&self, path: &[String]) -> Result<(), BenchError> {
        self.client
            .clone()
            .get_flight_info(FlightDescriptor::new_path(path.to_vec()))
            .await
            .map_err(tonic_error)?;
        Ok(())
    }

    async fn do_action(&self, action_type: &str) -> Result<(), BenchError> {
        let mut results = self
            .client
            .clone()
            .do_action(Action {
                r#type: action_type.to_string(),
                body: Bytes::new(),
            })
            .await
            .map_err(tonic_error)?
            .into_inner();
        while results.message().await.map_err(tonic_error)?.is_some() {}
        Ok(())
    }
}

/// An upload as tonic takes it. A named type rather than a boxed `dyn Stream`: with the latter,
/// rustc cannot prove tonic's client-streaming future `Send` (a higher-ranked lifetime error).
struct Upload(BoxStream<'static, FlightData>);

impl futures::Stream for Upload {
    type Item = FlightData;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<FlightData>> {
        self.0.poll_next_unpin(cx)
    }
}
