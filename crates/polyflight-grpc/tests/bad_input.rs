//! Malformed input on the gRPC wire, sent with a raw HTTP/2 client: every case gets a gRPC
//! status with the right code (never a panic, never an allocation of a claimed size), and the
//! server keeps serving other clients afterwards.

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use polyflight_core::proto::{FlightDescriptor, Ticket};
use polyflight_core::{
    CallContext, FlightClient, FlightCode, FlightData, FlightService, FlightStream, Registry,
    Result, ServerBuilder,
};
use polyflight_grpc::{status_from_headers, to_grpc_code, GrpcTransport};
use prost::Message;

/// Counts what DoPut receives, and fails on the first bad message the way a real service's
/// decoder would.
struct Sink;

#[polyflight_core::async_trait]
impl FlightService for Sink {
    async fn do_put(
        &self,
        _ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<polyflight_core::proto::PutResult>> {
        let mut decoder = polyflight_core::codec::FlightDataDecoder::new();
        let mut data = data;
        while let Some(message) = data.next().await {
            decoder.decode(&message?)?;
        }
        Ok(futures::stream::empty().boxed())
    }

    async fn do_get(&self, _ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        Ok(futures::stream::iter([Ok(FlightData::metadata_only(ticket.ticket))]).boxed())
    }
}

fn grpc_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Sends one raw request body to `method` and returns (grpc-status, grpc-message).
async fn raw_call(addr: &str, method: &str, body: Vec<u8>) -> (u16, String) {
    let (status, response) = raw_request(addr, method, Some("application/grpc"), body).await;
    assert_eq!(status, http::StatusCode::OK, "{method}");
    response
}

/// Sends one raw request with the given content-type; returns the HTTP status and
/// (grpc-status, grpc-message).
async fn raw_request(
    addr: &str,
    method: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (http::StatusCode, (u16, String)) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = http::Request::post(format!(
        "http://{addr}/arrow.flight.protocol.FlightService/{method}"
    ))
    .header("te", "trailers");
    let request = match content_type {
        Some(content_type) => request.header("content-type", content_type),
        None => request,
    }
    .body(Full::new(Bytes::from(body)))
    .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let http_status = parts.status;
    let mut status = status_from_headers(&parts.headers);
    if status.is_some() {
        // Trailers-only: the HEADERS frame must end the stream, with no DATA frame after it.
        assert!(
            http_body::Body::is_end_stream(&body),
            "trailers-only response for {method} did not end the stream on its HEADERS frame"
        );
    }
    let collected = body.collect().await.unwrap();
    if let Some(trailers) = collected.trailers() {
        status = status.or_else(|| status_from_headers(trailers));
    }
    let status = match status.expect("every response carries a grpc-status") {
        Ok(()) => (0, String::new()),
        Err(err) => (to_grpc_code(err.code()), err.message().to_string()),
    };
    (http_status, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_errors_and_the_server_keeps_serving() {
    let registry = Registry::new().with(GrpcTransport);
    let server = ServerBuilder::new(Sink, registry.clone())
        .listen("grpc://127.0.0.1:0")
        .start()
        .await
        .unwrap();
    let addr = server.location().authority().unwrap();
    let invalid = to_grpc_code(FlightCode::InvalidArgument);

    let valid_descriptor = polyflight_core::proto::FlightData {
        flight_descriptor: Some(FlightDescriptor::new_path(["x"])),
        ..Default::default()
    }
    .encode_to_vec();
    let mut huge_body = vec![0xc2, 0x3e];
    prost::encoding::encode_varint(1 << 40, &mut huge_body);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "unknown method",
            "NoSuchMethod",
            grpc_frame(b""),
            to_grpc_code(FlightCode::Unimplemented),
            "unknown gRPC method",
        ),
        (
            "garbage protobuf",
            "DoPut",
            grpc_frame(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            invalid,
            "malformed",
        ),
        (
            "huge declared message",
            "DoPut",
            vec![0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            invalid,
            "exceeds",
        ),
        (
            "truncated message",
            "DoPut",
            vec![0, 0, 0, 0x10, 0, 1, 2, 3],
            invalid,
            "ended inside a gRPC message",
        ),
        (
            "body longer than the message",
            "DoPut",
            grpc_frame(&huge_body),
            invalid,
            "data_body declares",
        ),
        (
            "garbage IPC header",
            "DoPut",
            {
                let mut m = valid_descriptor.clone();
                m.extend(
                    polyflight_core::proto::FlightData {
                        data_header: Bytes::from_static(b"\x10\x00\x00\x00garbage!"),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                );
                grpc_frame(&m)
            },
            invalid,
            "",
        ),
        (
            "compressed flag without grpc-encoding",
            "DoPut",
            vec![1, 0, 0, 0, 0],
            to_grpc_code(FlightCode::Unimplemented),
            "compressed",
        ),
        (
            "bad ticket",
            "DoGet",
            grpc_frame(&[0x0a, 0x7f]),
            invalid,
            "malformed Ticket",
        ),
        ("no request message", "DoGet", vec![], invalid, "no Ticket"),
    ];
    for (name, method, body, code, needle) in cases {
        let (got, message) = raw_call(&addr, method, body).await;
        assert_eq!(got, code, "{name}: {message}");
        assert!(
            message.contains(needle),
            "{name}: {message:?} lacks {needle:?}"
        );
    }

    // Requests that are not gRPC are answered 415, as the gRPC spec asks.
    for content_type in [
        Some("application/json"),
        Some("text/plain"),
        Some("application/grpcx"),
        None,
    ] {
        let (http_status, (code, message)) =
            raw_request(&addr, "DoGet", content_type, grpc_frame(b"")).await;
        assert_eq!(
            http_status,
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(code, invalid, "{content_type:?}: {message}");
        assert!(message.contains("content-type"), "{message}");
    }
    // Every gRPC content-type form is served.
    for content_type in ["application/grpc+proto", "application/grpc; charset=utf-8"] {
        let (http_status, (code, message)) = raw_request(
            &addr,
            "DoGet",
            Some(content_type),
            grpc_frame(&Ticket::new(Bytes::from_static(b"t")).encode_to_vec()),
        )
        .await;
        assert_eq!(http_status, http::StatusCode::OK, "{content_type}");
        assert_eq!(code, 0, "{content_type}: {message}");
    }

    // A well-behaved client is still served.
    let client = FlightClient::connect_with(registry, server.location().uri())
        .await
        .unwrap();
    let mut stream = client
        .do_get_data(Ticket::new(Bytes::from_static(b"still here")))
        .await
        .unwrap()
        .body;
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.app_metadata.as_ref(), b"still here");
    server.shutdown().await.unwrap();
}

/// One piece of a request body fed by hand.
type Chunk = std::result::Result<http_body::Frame<Bytes>, std::convert::Infallible>;
/// Feeds a request body, chunk by chunk.
type ChunkSender = tokio::sync::mpsc::Sender<Chunk>;
/// A raw HTTP/2 connection whose request bodies are fed by hand.
type StreamingSender = hyper::client::conn::http2::SendRequest<
    http_body_util::StreamBody<tokio_stream::wrappers::ReceiverStream<Chunk>>,
>;

/// Starts a DoPut on `sender` whose body is fed through the returned channel; the response
/// resolves to (grpc-status, grpc-message).
fn streaming_put(
    sender: &mut StreamingSender,
    addr: &str,
) -> (ChunkSender, tokio::task::JoinHandle<(u16, String)>) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let request = http::Request::post(format!(
        "http://{addr}/arrow.flight.protocol.FlightService/DoPut"
    ))
    .header("te", "trailers")
    .header("content-type", "application/grpc")
    .body(body)
    .unwrap();
    let response = sender.send_request(request);
    let answer = tokio::spawn(async move {
        let response = response.await.unwrap();
        let (parts, body) = response.into_parts();
        let mut status = status_from_headers(&parts.headers);
        let collected = body.collect().await.unwrap();
        if let Some(trailers) = collected.trailers() {
            status = status.or_else(|| status_from_headers(trailers));
        }
        match status.expect("a grpc-status") {
            Ok(()) => (0, String::new()),
            Err(err) => (to_grpc_code(err.code()), err.message().to_string()),
        }
    });
    (tx, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_messages_are_bounded_by_the_request_budget() {
    use polyflight_core::transport::ListenOptions;
    // a connection may hold 4 MiB of unfinished messages; a stream waits 300 ms for room
    let mut options = ListenOptions::default();
    options.extensions.insert(polyflight_grpc::GrpcSettings {
        connection_request_budget: 4 << 20,
        request_budget_wait: std::time::Duration::from_millis(300),
        ..Default::default()
    });
    let registry = Registry::new().with(GrpcTransport);
    let server = ServerBuilder::new(Sink, registry.clone())
        .listen_with("grpc://127.0.0.1:0", options)
        .start()
        .await
        .unwrap();
    let addr = server.location().authority().unwrap().to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);

    let send = |tx: ChunkSender, bytes: Vec<u8>| async move {
        tx.send(Ok(http_body::Frame::data(Bytes::from(bytes))))
            .await
            .is_ok()
    };
    let declare = |len: u32| {
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&len.to_be_bytes());
        prefix
    };
    // A declares a message of 3 MiB and sends all but its last byte: it holds ~3 MiB
    let (a, a_answer) = streaming_put(&mut sender, &addr);
    assert!(send(a.clone(), declare(3 << 20)).await);
    for size in [1 << 20, 1 << 20, (1 << 20) - 1] {
        assert!(send(a.clone(), vec![0u8; size]).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // B's 3 MiB message does not fit next to it: B waits, then is refused UNAVAILABLE
    let (b, b_answer) = streaming_put(&mut sender, &addr);
    assert!(send(b.clone(), declare(3 << 20)).await);
    for _ in 0..3 {
        if !send(b.clone(), vec![0u8; 1 << 20]).await {
            break;
        }
    }
    let (code, message) = b_answer.await.unwrap();
    assert_eq!(code, to_grpc_code(FlightCode::Unavailable), "{message}");
    assert!(message.contains("memory budget"), "{message}");
    // a message larger than the connection may ever hold is refused at once
    let (c, c_answer) = streaming_put(&mut sender, &addr);
    assert!(send(c.clone(), declare(5 << 20)).await);
    drop(c);
    let (code, message) = c_answer.await.unwrap();
    assert_eq!(code, to_grpc_code(FlightCode::InvalidArgument), "{message}");
    assert!(message.contains("exceeds"), "{message}");
    // A was never refused; it ends with an error of its own (garbage FlightData), not the budget's
    drop(a);
    let (code, message) = a_answer.await.unwrap();
    assert!(!message.contains("memory budget"), "{code}: {message}");
    // and the server keeps serving
    let client = FlightClient::connect_with(registry, server.location().uri())
        .await
        .unwrap();
    let got: Vec<_> = client
        .do_get_data(Ticket::new(Bytes::from_static(b"ok")))
        .await
        .unwrap()
        .body
        .collect()
        .await;
    assert_eq!(got.len(), 1);
    server.shutdown().await.unwrap();
}
