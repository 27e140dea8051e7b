//! The tonic / arrow-flight bridge (`polyflight-tonic`), both ways, through real transports:
//!
//! - an unmodified arrow-flight service (written against arrow-flight's tonic trait, below)
//!   served by polyflight over grpc, grpc+tls, grpc+unix and ucx, called by polyflight's client on
//!   every one of them and by arrow-flight's own tonic client over grpc: every RPC, headers in
//!   and out, the peer, errors with their details and trailers, deadlines, authentication;
//! - a polyflight service inside a tonic router beside tonic-health, called by polyflight's
//!   client and by arrow-flight's.

mod common;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::FlightService as ArrowFlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use bytes::Bytes;
use common::*;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use polyflight::{CallOptions, FlightClient, FlightCode, PeerInfo, ServerBuilder};
use polyflight_tonic::{ArrowFlightAdapter, TonicFlightService};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status, Streaming};

type TonicStream<T> = BoxStream<'static, Result<T, Status>>;

/// An arrow-flight service as anyone using the arrow-flight crate writes one: it stores what is
/// put, serves it back, echoes exchanges, and reports what it saw of the call through actions.
#[derive(Clone, Default)]
struct Store {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
    /// Endless DoGet streams alive now (one is dropped when its call is cancelled).
    endless: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts itself in `Store::endless` while alive.
struct Alive(Arc<std::sync::atomic::AtomicUsize>);

impl Alive {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Alive {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Alive(count.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn who(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("x-who")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("nobody")
        .to_string()
}

fn batch(start: i64, rows: usize) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(start..start + rows as i64));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| format!("row {}", start + i as i64)),
    ));
    RecordBatch::try_from_iter([("id", ids), ("name", names)]).expect("batch")
}

impl Store {
    fn stored(&self) -> Vec<RecordBatch> {
        self.batches.lock().expect("lock").clone()
    }

    fn info(&self, descriptor: FlightDescriptor, remark: String) -> Result<FlightInfo, Status> {
        let batches = self.stored();
        let Some(first) = batches.first() else {
            return Err(Status::not_found("nothing stored"));
        };
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let info = FlightInfo::new()
            .try_with_schema(&first.schema())
            .map_err(|e| Status::internal(e.to_string()))?
            .with_descriptor(descriptor)
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new("stored")))
            .with_total_records(rows as i64)
            .with_app_metadata(remark);
        Ok(info)
    }
}

#[tonic::async_trait]
impl ArrowFlightService for Store {
    type HandshakeStream = TonicStream<HandshakeResponse>;
    type ListFlightsStream = TonicStream<FlightInfo>;
    type DoGetStream = TonicStream<FlightData>;
    type DoPutStream = TonicStream<PutResult>;
    type DoExchangeStream = TonicStream<FlightData>;
    type DoActionStream = TonicStream<arrow_flight::Result>;
    type ListActionsStream = TonicStream<ActionType>;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        let answers = request.into_inner().map_ok(|r| HandshakeResponse {
            protocol_version: r.protocol_version,
            payload: r.payload,
        });
        Ok(Response::new(answers.boxed()))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let info = self.info(
            FlightDescriptor::new_path(vec!["stored".into()]),
            String::new(),
        );
        Ok(Response::new(futures::stream::iter([info]).boxed()))
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let remark = format!(
            "who={} remote={:?}",
            who(request.metadata()),
            request.remote_addr().map(|a| a.ip())
        );
        let descriptor = request.into_inner();
        if descriptor.path == ["missing"] {
            let mut status = Status::with_details(
                tonic::Code::NotFound,
                "no flight at missing",
                Bytes::from_static(b"\x01detail"),
            );
            status
                .metadata_mut()
                .insert("x-why", "because".parse().expect("ascii"));
            return Err(status);
        }
        let mut response = Response::new(self.info(descriptor, remark)?);
        response
            .metadata_mut()
            .insert("x-answer", "yes".parse().expect("ascii"));
        Ok(response)
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let info = self.info(request.into_inner(), String::new())?;
        Ok(Response::new(PollInfo {
            info: Some(info),
            flight_descriptor: None,
            progress: Some(1.0),
            expiration_time: None,
        }))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let batches = self.stored();
        let first = batches
            .first()
            .ok_or_else(|| Status::not_found("nothing stored"))?;
        let options = arrow_ipc::writer::IpcWriteOptions::default();
        let schema = SchemaAsIpc::new(&first.schema(), &options)
            .try_into()
            .map_err(|e: arrow_schema::ArrowError| Status::internal(e.to_string()))?;
        Ok(Response::new(schema))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        if request.get_ref().ticket.as_ref() == b"endless" {
            // one small batch after another until the call is cancelled
            let alive = Alive::new(&self.endless);
            let batches = futures::stream::repeat_with(move || {
                let _alive = &alive;
                Ok(batch(0, 10))
            });
            let stream = FlightDataEncoderBuilder::new()
                .build(batches)
                .map_err(|e| Status::internal(e.to_string()));
            return Ok(Response::new(stream.boxed()));
        }
        if request.get_ref().ticket.as_ref() != b"stored" {
            return Err(Status::not_found("unknown ticket"));
        }
        let batches = self.stored();
        let stream = FlightDataEncoderBuilder::new()
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(|e| Status::internal(e.to_string()));
        Ok(Response::new(stream.boxed()))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let stream = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(Into::into),
        );
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        *self.batches.lock().expect("lock") = batches;
        let ack = PutResult {
            app_metadata: Bytes::from(rows.to_string()),
        };
        Ok(Response::new(futures::stream::iter([Ok(ack)]).boxed()))
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Ok(Response::new(request.into_inner().boxed()))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let body = match request.get_ref().r#type.as_str() {
            "who" => who(request.metadata()),
            "timeout" => format!(
                "{:?}",
                request
                    .metadata()
                    .get("grpc-timeout")
                    .and_then(|v| v.to_str().ok())
            ),
            "peer" => match request.extensions().get::<PeerInfo>() {
                Some(peer) => peer.scheme.map(|s| s.as_str()).unwrap_or("-").to_string(),
                None => "no peer".to_string(),
            },
            "sleep" => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "woke".to_string()
            }
            other => return Err(Status::unimplemented(format!("no action {other}"))),
        };
        let result = arrow_flight::Result {
            body: Bytes::from(body),
        };
        Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()))
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = ["who", "timeout", "peer", "sleep"].map(|name| {
            Ok(ActionType {
                r#type: name.to_string(),
                description: String::new(),
            })
        });
        Ok(Response::new(futures::stream::iter(actions).boxed()))
    }
}

/// All rows of `batches` as one batch (message boundaries differ between encoders).
fn rows(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).expect("one schema")
}

/// DoPut of `batches` to `descriptor` through polyflight's client; the acknowledgements.
async fn put(
    client: &FlightClient,
    descriptor: &polyflight::proto::FlightDescriptor,
    batches: &[RecordBatch],
) -> Vec<polyflight::proto::PutResult> {
    let batches = futures::stream::iter(batches.to_vec()).map(Ok);
    client
        .do_put(descriptor.clone(), batches)
        .await
        .expect("DoPut")
        .try_collect()
        .await
        .expect("acks")
}

async fn action(client: &FlightClient, name: &str) -> polyflight::Result<String> {
    let bodies: Vec<Bytes> = client
        .do_action(polyflight::proto::Action {
            r#type: name.to_string(),
            body: Bytes::new(),
        })
        .await?
        .try_collect()
        .await?;
    Ok(bodies
        .first()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default())
}

/// Every RPC of the adapted service through polyflight's client on `transport`.
async fn adapted_service_over(transport: &'static str) {
    let endpoint = endpoint_for(transport);
    let store = Store::default();
    let server = ServerBuilder::new(ArrowFlightAdapter::new(store.clone()), registry())
        .listen_with(endpoint.listen_uri.clone(), endpoint.listen.clone())
        .start()
        .await
        .expect("server starts");
    let client = FlightClient::connect_with_options(
        registry(),
        server.location().uri(),
        endpoint.connect.clone(),
    )
    .await
    .expect("client connects");

    // Handshake: echoed
    let answers = client.handshake(&b"hello"[..]).await.expect("handshake");
    assert_eq!(answers.body, vec![Bytes::from_static(b"hello")]);

    // DoPut, then the rest reads it back
    let sent = vec![batch(0, 100), batch(100, 50_000), batch(50_100, 1)];
    let descriptor = polyflight::proto::FlightDescriptor::new_path(["stored"]);
    let acks = put(&client, &descriptor, &sent).await;
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].app_metadata, Bytes::from("50101"));

    let got: Vec<RecordBatch> = client
        .do_get(polyflight::proto::Ticket::new("stored"))
        .await
        .expect("DoGet")
        .try_collect()
        .await
        .expect("batches");
    // arrow-flight's encoder splits batches into messages of at most ~2 MiB
    assert_eq!(
        rows(&got),
        rows(&sent),
        "{transport}: DoGet returns what was put"
    );

    // GetFlightInfo with a header the service reads; ListFlights; PollFlightInfo; GetSchema
    let headers = CallOptions {
        headers: polyflight::Headers::new().with("x-who", "tester"),
        ..CallOptions::default()
    };
    let info = client
        .with_call_options(headers.clone())
        .get_flight_info(descriptor.clone())
        .await
        .expect("GetFlightInfo");
    let remark = String::from_utf8_lossy(&info.app_metadata).into_owned();
    assert!(remark.starts_with("who=tester"), "{remark}");
    if transport != "grpc+unix" {
        assert!(remark.contains("remote=Some("), "{transport}: {remark}");
    }
    assert_eq!(info.total_records, 50_101);
    let flights: Vec<_> = client
        .list_flights(Bytes::new())
        .await
        .expect("ListFlights")
        .try_collect()
        .await
        .expect("flights");
    assert_eq!(flights.len(), 1);
    let poll = client
        .poll_flight_info(descriptor.clone())
        .await
        .expect("PollFlightInfo");
    assert_eq!(poll.progress, Some(1.0));
    let schema = client.get_schema(descriptor).await.expect("GetSchema");
    assert_eq!(schema.as_ref(), sent[0].schema().as_ref());

    // DoExchange: echoed
    let echoed: Vec<RecordBatch> = client
        .do_exchange(
            polyflight::proto::FlightDescriptor::new_path(["echo"]),
            futures::stream::iter(sent.clone()).map(Ok),
        )
        .await
        .expect("DoExchange")
        .try_collect()
        .await
        .expect("echo");
    assert_eq!(rows(&echoed), rows(&sent));

    // ListActions, DoAction with headers and the peer
    let actions = client.list_actions().await.expect("ListActions");
    assert_eq!(actions.len(), 4);
    let seen = action(&client.with_call_options(headers), "who")
        .await
        .expect("who");
    assert_eq!(seen, "tester");
    let scheme = transport.split('/').next().unwrap_or(transport);
    let expected_scheme = if scheme == "grpc+tcp" {
        "grpc+tcp"
    } else {
        scheme
    };
    assert_eq!(
        action(&client, "peer").await.expect("peer"),
        expected_scheme
    );

    // an error keeps its code, message and details
    let error = client
        .get_flight_info(polyflight::proto::FlightDescriptor::new_path(["missing"]))
        .await
        .expect_err("missing flight");
    assert_eq!(error.code(), FlightCode::NotFound, "{error}");
    assert_eq!(error.message(), "no flight at missing");
    assert_eq!(error.extra_info().as_ref(), b"\x01detail");

    // the deadline reaches the service as grpc-timeout, and polyflight enforces it
    let timed = client.with_call_options(CallOptions {
        timeout: Some(Duration::from_secs(30)),
        ..CallOptions::default()
    });
    let timeout = action(&timed, "timeout").await.expect("timeout");
    assert!(timeout.starts_with("Some("), "{transport}: {timeout}");
    let short = client.with_call_options(CallOptions {
        timeout: Some(Duration::from_millis(300)),
        ..CallOptions::default()
    });
    let started = Instant::now();
    let error = action(&short, "sleep").await.expect_err("deadline");
    assert_eq!(error.code(), FlightCode::TimedOut, "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // cancellation: dropping a DoGet mid-stream drops the tonic service's stream
    let mut endless = client
        .do_get(polyflight::proto::Ticket::new("endless"))
        .await
        .expect("endless DoGet");
    endless.try_next().await.expect("a batch").expect("some");
    assert_eq!(store.endless.load(std::sync::atomic::Ordering::SeqCst), 1);
    drop(endless);
    let dropped = Instant::now();
    while store.endless.load(std::sync::atomic::Ordering::SeqCst) != 0 {
        assert!(
            dropped.elapsed() < Duration::from_secs(2),
            "{transport}: the service's stream outlived the cancelled call"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "{transport}: the service's stream dropped {:?} after the call",
        dropped.elapsed()
    );

    drop(client);
    server.shutdown().await.expect("clean shutdown");
    endpoint.cleanup();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_flight_service_over_grpc() {
    adapted_service_over("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_flight_service_over_grpc_tls() {
    adapted_service_over("grpc+tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_flight_service_over_grpc_unix() {
    adapted_service_over("grpc+unix").await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_flight_service_over_ucx() {
    adapted_service_over("ucx").await;
}

/// arrow-flight's own tonic client against the adapted service served by polyflight, with
/// polyflight's authentication in front of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_flight_client_calls_the_adapted_service_behind_polyflight_auth() {
    let auth = polyflight::BasicAuthenticator::with_users([("ada", "lovelace")]);
    let server = ServerBuilder::new(ArrowFlightAdapter::new(Store::default()), registry())
        .auth(auth)
        .listen("grpc://127.0.0.1:0")
        .start()
        .await
        .expect("server starts");
    let address = server.location().uri().replace("grpc://", "http://");
    let channel = tonic::transport::Endpoint::from_shared(address)
        .expect("endpoint")
        .connect()
        .await
        .expect("channel");

    // without credentials: refused by polyflight before the service runs
    let mut anonymous = arrow_flight::FlightClient::new(channel.clone());
    let error = match anonymous.list_actions().await {
        Ok(_) => panic!("served without credentials"),
        Err(error) => error,
    };
    let status = match error {
        arrow_flight::error::FlightError::Tonic(status) => status,
        other => panic!("unexpected error {other}"),
    };
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    // Basic → Bearer, as pyarrow and polyflight do it
    let polyflight_client = polyflight::connect(server.location().uri())
        .await
        .expect("polyflight client");
    let token = polyflight_client
        .authenticate_basic("ada", "lovelace")
        .await
        .expect("authenticated");
    drop(token);
    let mut handshake = FlightServiceClient::new(channel.clone());
    let mut request = Request::new(futures::stream::iter([HandshakeRequest::default()]));
    request.metadata_mut().insert(
        "authorization",
        format!("Basic {}", base64_encode(b"ada:lovelace"))
            .parse()
            .expect("ascii"),
    );
    let response = handshake.handshake(request).await.expect("handshake");
    let bearer = response
        .metadata()
        .get("authorization")
        .expect("bearer token")
        .clone();

    let mut client = arrow_flight::FlightClient::new(channel.clone());
    client.metadata_mut().insert(
        "authorization",
        bearer.to_str().expect("ascii").parse().expect("ascii"),
    );
    client.add_header("x-who", "arrow-flight").expect("header");
    let sent = vec![batch(0, 1000), batch(1000, 10)];
    let acks: Vec<PutResult> = client
        .do_put(
            FlightDataEncoderBuilder::new()
                .with_flight_descriptor(Some(FlightDescriptor::new_path(vec!["stored".into()])))
                .build(futures::stream::iter(sent.clone()).map(Ok)),
        )
        .await
        .expect("DoPut")
        .try_collect()
        .await
        .expect("acks");
    assert_eq!(acks[0].app_metadata, Bytes::from("1010"));
    let info = client
        .get_flight_info(FlightDescriptor::new_path(vec!["stored".into()]))
        .await
        .expect("GetFlightInfo");
    let remark = String::from_utf8_lossy(&info.app_metadata).into_owned();
    assert!(remark.starts_with("who=arrow-flight"), "{remark}");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let got: Vec<RecordBatch> = client
        .do_get(ticket)
        .await
        .expect("DoGet")
        .try_collect()
        .await
        .expect("batches");
    assert_eq!(rows(&got), rows(&sent));

    // response metadata and error details reach the tonic client
    let mut raw = FlightServiceClient::new(channel);
    let mut request = Request::new(FlightDescriptor::new_path(vec!["stored".into()]));
    request.metadata_mut().insert(
        "authorization",
        bearer.to_str().expect("ascii").parse().expect("ascii"),
    );
    let response = raw.get_flight_info(request).await.expect("GetFlightInfo");
    assert_eq!(
        response
            .metadata()
            .get("x-answer")
            .and_then(|v| v.to_str().ok()),
        Some("yes")
    );
    let mut request = Request::new(FlightDescriptor::new_path(vec!["missing".into()]));
    request.metadata_mut().insert(
        "authorization",
        bearer.to_str().expect("ascii").parse().expect("ascii"),
    );
    let status = raw.get_flight_info(request).await.expect_err("missing");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "no flight at missing");
    assert_eq!(status.details(), b"\x01detail");
    assert_eq!(
        status.metadata().get("x-why").and_then(|v| v.to_str().ok()),
        Some("because")
    );

    drop(polyflight_client);
    server.shutdown().await.expect("clean shutdown");
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A polyflight service (the in-memory store) in a tonic router beside tonic-health, called by
/// polyflight's client and arrow-flight's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polyflight_service_in_a_tonic_router_beside_health() {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(
            "arrow.flight.protocol.FlightService",
            tonic_health::ServingStatus::Serving,
        )
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(
            TonicFlightService::new(polyflight::memory::MemoryService::new()).into_server(),
        );
    let serving = tokio::spawn(router.serve_with_incoming_shutdown(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        async {
            let _ = stop_rx.await;
        },
    ));

    // polyflight's client over grpc: a round trip, an error, a deadline
    let client = polyflight::connect(&format!("grpc://{address}"))
        .await
        .expect("polyflight client");
    let sent = vec![batch(0, 10_000), batch(10_000, 3)];
    let descriptor = polyflight::proto::FlightDescriptor::new_path(["in", "router"]);
    put(&client, &descriptor, &sent).await;
    let info = client
        .get_flight_info(descriptor.clone())
        .await
        .expect("GetFlightInfo");
    assert_eq!(info.total_records, 10_003);
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let got: Vec<RecordBatch> = client
        .do_get(ticket.clone())
        .await
        .expect("DoGet")
        .try_collect()
        .await
        .expect("batches");
    assert_eq!(got, sent);
    let error = client
        .get_flight_info(polyflight::proto::FlightDescriptor::new_path(["nowhere"]))
        .await
        .expect_err("missing");
    assert_eq!(error.code(), FlightCode::NotFound, "{error}");
    assert!(!client.list_actions().await.expect("ListActions").is_empty());

    // arrow-flight's client reads the same flight
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("channel");
    let mut arrow_client = arrow_flight::FlightClient::new(channel.clone());
    let got: Vec<RecordBatch> = arrow_client
        .do_get(Ticket::new(ticket.ticket))
        .await
        .expect("DoGet")
        .try_collect()
        .await
        .expect("batches");
    assert_eq!(got, sent);

    // and the health service answers beside it
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "arrow.flight.protocol.FlightService".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    drop(client);
    let _ = stop_tx.send(());
    serving
        .await
        .expect("router task")
        .expect("router ends cleanly");
}
