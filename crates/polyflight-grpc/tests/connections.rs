//! Connection hygiene of the gRPC server, tried with raw TCP and hand-written HTTP/2 frames:
//! silent and slow connections are closed by the handshake timeout, idle ones by the idle
//! timeout (and clients reconnect), connections over the cap are refused at once, and the
//! advertised header list size is the one enforced, at any frame size.

use futures::StreamExt;
use polyflight_core::transport::ListenOptions;
use polyflight_core::{
    CallContext, FlightClient, FlightService, FlightStream, Registry, Result, Server, ServerBuilder,
};
use polyflight_grpc::GrpcTransport;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Echo;

#[polyflight_core::async_trait]
impl FlightService for Echo {
    async fn list_actions(
        &self,
        _ctx: CallContext,
    ) -> Result<FlightStream<polyflight_core::proto::ActionType>> {
        Ok(futures::stream::empty().boxed())
    }

    /// Answers with a response header that HTTP/2 cannot carry.
    async fn list_flights(
        &self,
        ctx: CallContext,
        _criteria: polyflight_core::proto::Criteria,
    ) -> Result<FlightStream<polyflight_core::proto::FlightInfo>> {
        ctx.append_response_header("x-broken", "two\nlines");
        Ok(futures::stream::empty().boxed())
    }
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const ACK: u8 = 1;

/// An HPACK integer with an `n`-bit prefix.
fn hpack_int(first: u8, n: u32, mut value: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header block of literals without indexing (no Huffman).
fn header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.push(0);
        hpack_int(0, 7, name.len(), &mut out);
        out.extend_from_slice(name.as_bytes());
        hpack_int(0, 7, value.len(), &mut out);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The header block of a gRPC call of `method` (e.g. `ListActions`) to `addr`, then `extra`.
fn call_header_block(addr: &str, method: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let path = format!("/arrow.flight.protocol.FlightService/{method}");
    let mut headers = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path.as_str()),
        (":authority", addr),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    headers.extend_from_slice(extra);
    header_block(&headers)
}

async fn start(options: ListenOptions) -> (Server, String) {
    let server = ServerBuilder::new(Echo, Registry::new().with(GrpcTransport))
        .listen_with("grpc://127.0.0.1:0", options)
        .start()
        .await
        .unwrap();
    let addr = server.location().authority().unwrap().to_string();
    (server, addr)
}

/// Reads until the peer closes; returns everything read, or `None` if it stays open for `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    read_until_closed_answering(stream, limit, false).await
}

/// Like [`read_until_closed`], answering the server's PINGs as a live client does (a graceful
/// GOAWAY waits for one).
async fn answer_pings_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    read_until_closed_answering(stream, limit, true).await
}

/// One HTTP/2 frame read back: type, flags, stream id and payload.
struct Frame<'a> {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &'a [u8],
}

/// The complete frames at the start of `bytes`, and how many bytes they take.
fn parse_frames(bytes: &[u8]) -> (Vec<Frame<'_>>, usize) {
    let mut frames = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 9 {
        let head = &bytes[at..];
        let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
        if head.len() < 9 + len {
            break;
        }
        frames.push(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload: &head[9..9 + len],
        });
        at += 9 + len;
    }
    (frames, at)
}

async fn read_until_closed_answering(
    stream: &mut TcpStream,
    limit: Duration,
    answer_pings: bool,
) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut parsed = 0;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(all),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
        let (frames, used) = parse_frames(&all[parsed..]);
        let acks: Vec<Vec<u8>> = frames
            .iter()
            .filter(|f| answer_pings && f.kind == PING && f.flags & ACK == 0)
            .map(|f| frame(PING, ACK, 0, f.payload))
            .collect();
        parsed += used;
        for ack in acks {
            let _ = stream.write_all(&ack).await;
        }
    }
}

/// The types of the complete frames in a byte stream from the server.
fn frame_types(bytes: &[u8]) -> Vec<u8> {
    parse_frames(bytes).0.iter().map(|f| f.kind).collect()
}

async fn connect(addr: &str) -> FlightClient {
    FlightClient::connect_with(
        Registry::new().with(GrpcTransport),
        &format!("grpc://{addr}"),
    )
    .await
    .unwrap()
}

async fn call_works(addr: &str) {
    connect(addr).await.list_actions().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_connections_are_closed_by_the_handshake_timeout() {
    let (server, addr) = start(ListenOptions {
        handshake_timeout: Some(Duration::from_millis(300)),
        ..ListenOptions::default()
    })
    .await;
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(&PREFACE[..10]).await.unwrap();
    let started = Instant::now();
    assert!(read_until_closed(&mut silent, Duration::from_secs(3))
        .await
        .is_some());
    assert!(read_until_closed(&mut slow, Duration::from_secs(3))
        .await
        .is_some());
    assert!(started.elapsed() >= Duration::from_millis(250));
    // a real client is served meanwhile and after, and stays connected past the timeout
    call_works(&addr).await;
    let client = connect(&addr).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.list_actions().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_get_goaway_and_clients_reconnect() {
    let (server, addr) = start(ListenOptions {
        idle_timeout: Some(Duration::from_millis(300)),
        ..ListenOptions::default()
    })
    .await;
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(PREFACE).await.unwrap();
    idle.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let bytes = answer_pings_until_closed(&mut idle, Duration::from_secs(3))
        .await
        .expect("the idle connection is closed");
    assert!(
        frame_types(&bytes).contains(&GOAWAY),
        "GOAWAY before closing"
    );

    let client = connect(&addr).await;
    client.list_actions().await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // the server closed that connection meanwhile; the client opens a new one
    client.list_actions().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_at_once() {
    let (server, addr) = start(ListenOptions {
        max_connections: Some(2),
        ..ListenOptions::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(PREFACE).await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    let closed = read_until_closed(&mut third, Duration::from_secs(2))
        .await
        .expect("closed at once");
    assert!(closed.is_empty(), "refused without a byte of HTTP/2");
    // once the held connections go, there is room again
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    call_works(&addr).await;
    server.shutdown().await.unwrap();
}

/// Sends a ListActions request whose header block (with a large custom header) is split into
/// CONTINUATION frames of `frame_size` bytes; returns what the server sent back.
async fn headers_in_frames(addr: &str, padding: usize, frame_size: usize) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let big = "x".repeat(padding);
    let block = call_header_block(addr, "ListActions", &[("x-padding", &big)]);
    let chunks: Vec<&[u8]> = block.chunks(frame_size).collect();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let (kind, flags) = if i == 0 {
            (HEADERS, 0)
        } else {
            (CONTINUATION, 0)
        };
        out.extend(frame(
            kind,
            flags | if last { END_HEADERS } else { 0 },
            1,
            chunk,
        ));
    }
    // the request message: an Empty, then the end of the stream
    out.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]));
    stream.write_all(&out).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(3);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                response.extend_from_slice(&buf[..n]);
                // a HEADERS frame ending stream 1 is the end of the answer
                if response_ended(&response) {
                    break;
                }
            }
            _ => break,
        }
    }
    response
}

fn response_ended(bytes: &[u8]) -> bool {
    parse_frames(bytes).0.iter().any(|f| {
        (f.kind == HEADERS && f.stream == 1 && f.flags & END_STREAM != 0) || f.kind == GOAWAY
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_advertised_header_list_size_is_accepted_at_any_frame_size() {
    let (server, addr) = start(ListenOptions::default()).await;
    let advertised = polyflight_grpc::GrpcSettings::default().max_header_list_size as usize;
    // just under the advertised list size (HTTP/2 counts 32 bytes per header on top), sent in
    // the smallest frames HTTP/2 allows peers to use by default
    let padding = advertised - 7 * 32 - 200;
    let answer = headers_in_frames(&addr, padding, 16 * 1024).await;
    let types = frame_types(&answer);
    assert!(!types.contains(&GOAWAY), "refused: {types:?}");
    assert!(types.contains(&HEADERS), "answered: {types:?}");
    // and a list well over it is refused without taking the server down
    let refused = frame_types(&headers_in_frames(&addr, 4 * advertised, 16 * 1024).await);
    assert!(refused.contains(&GOAWAY), "{refused:?}");
    call_works(&addr).await;
    server.shutdown().await.unwrap();
}

/// Answers DoGet with one message carrying the caller's address, then keeps the stream open.
struct Peers;

#[polyflight_core::async_trait]
impl FlightService for Peers {
    async fn do_get(
        &self,
        ctx: CallContext,
        _ticket: polyflight_core::proto::Ticket,
    ) -> Result<FlightStream<polyflight_core::FlightData>> {
        let peer = ctx.peer().address.clone().unwrap_or_default();
        let first = polyflight_core::FlightData::metadata_only(peer.into_bytes());
        Ok(futures::stream::iter([Ok(first)])
            .chain(futures::stream::pending())
            .boxed())
    }
}

/// Opens a DoGet and reads its first message: the address the server saw. The call stays open
/// while the returned stream lives.
async fn open_call(client: &FlightClient) -> (String, FlightStream<polyflight_core::FlightData>) {
    let mut body = client
        .do_get_data(polyflight_core::proto::Ticket::new(bytes::Bytes::new()))
        .await
        .unwrap()
        .body;
    let first = body.next().await.unwrap().unwrap();
    (
        String::from_utf8(first.app_metadata.to_vec()).unwrap(),
        body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_spread_over_the_client_connections() {
    let server = ServerBuilder::new(Peers, Registry::new().with(GrpcTransport))
        .listen("grpc://127.0.0.1:0")
        .start()
        .await
        .unwrap();
    let uri = server.location().uri().to_string();
    let client_with = |connections: usize| {
        let uri = uri.clone();
        async move {
            let mut options = polyflight_core::ConnectOptions::default();
            options.extensions.insert(polyflight_grpc::GrpcSettings {
                client_connections: connections,
                ..Default::default()
            });
            FlightClient::connect_with_options(Registry::new().with(GrpcTransport), &uri, options)
                .await
                .unwrap()
        }
    };

    // Two connections: a second call while the first is busy opens the second connection; a
    // third shares one of the two; once all are done, a new call reuses one.
    let client = client_with(2).await;
    let (a, call_a) = open_call(&client).await;
    let (b, call_b) = open_call(&client).await;
    assert_ne!(a, b, "the second call opens a second connection");
    let (c, call_c) = open_call(&client).await;
    assert!(c == a || c == b, "no third connection: {c} ({a}, {b})");
    drop((call_a, call_b, call_c));
    let (d, call_d) = open_call(&client).await;
    assert!(
        d == a || d == b,
        "an idle connection is reused: {d} ({a}, {b})"
    );
    drop(call_d);

    // One connection: every call on it.
    let client = client_with(1).await;
    let (a, call_a) = open_call(&client).await;
    let (b, call_b) = open_call(&client).await;
    assert_eq!(a, b);
    drop((call_a, call_b));
    server.shutdown().await.unwrap();
}

const RST_STREAM: u8 = 3;

/// A client that ends each one-message request in a DATA frame of its own, sent only once the
/// response has begun (tonic's client sends the end separately, and on a busy machine it can
/// arrive after the response), keeps its connection through thousands of calls. A server that
/// answered and reset each such stream would have h2 count every late end against the
/// connection and close it (GOAWAY `ENHANCE_YOUR_CALM`) after 1024.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ends_that_follow_the_response_cost_no_connection() {
    let (server, addr) = start(ListenOptions::default()).await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let block = call_header_block(&addr, "ListActions", &[]);
    let mut received = Vec::new();
    let mut parsed = 0;
    let mut buf = vec![0u8; 65536];
    let calls = 1500u32;
    for call in 0..calls {
        let id = 2 * call + 1;
        let mut request = frame(HEADERS, END_HEADERS, id, &block);
        // the message (an Empty), without END_STREAM
        request.extend(frame(DATA, 0, id, &[0, 0, 0, 0, 0]));
        stream.write_all(&request).await.unwrap();
        let mut ended = false;
        let mut sent_end = false;
        while !ended {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("call {call}: no answer within 5 s"))
                .unwrap();
            assert!(n > 0, "call {call}: the server closed the connection");
            received.extend_from_slice(&buf[..n]);
            let (frames, used) = parse_frames(&received[parsed..]);
            let mut replies = Vec::new();
            for f in &frames {
                match f.kind {
                    GOAWAY => panic!("call {call}: GOAWAY {:?}", f.payload),
                    RST_STREAM if f.stream == id => panic!("call {call}: stream reset"),
                    PING if f.flags & ACK == 0 => replies.extend(frame(PING, ACK, 0, f.payload)),
                    SETTINGS if f.flags & ACK == 0 => replies.extend(frame(SETTINGS, ACK, 0, &[])),
                    HEADERS if f.stream == id => {
                        if !sent_end {
                            // the response has begun: now the request's end
                            replies.extend(frame(DATA, END_STREAM, id, &[]));
                            sent_end = true;
                        }
                        ended = f.flags & END_STREAM != 0;
                    }
                    _ => {}
                }
            }
            parsed += used;
            if !replies.is_empty() {
                stream.write_all(&replies).await.unwrap();
            }
        }
    }
    drop(stream);
    call_works(&addr).await;
    server.shutdown().await.unwrap();
}

/// A call the server fails before its response begins (here: the service set a header HTTP/2
/// cannot carry) is answered only once the request has ended, so the stream closes on both
/// sides without a reset, as for a call that succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_response_header_waits_for_the_request_end() {
    let (server, addr) = start(ListenOptions::default()).await;
    let client = connect(&addr).await;
    let err = client.list_flights("").await.err().expect("an error");
    assert_eq!(err.code(), polyflight_core::FlightCode::Internal, "{err}");
    assert!(err.message().contains("invalid response header"), "{err}");

    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let block = call_header_block(&addr, "ListFlights", &[]);
    let mut request = frame(HEADERS, END_HEADERS, 1, &block);
    request.extend(frame(DATA, 0, 1, &[0, 0, 0, 0, 0]));
    stream.write_all(&request).await.unwrap();
    // The request's end follows a little later, as from a client that sends it on its own.
    tokio::time::sleep(Duration::from_millis(30)).await;
    stream
        .write_all(&frame(DATA, END_STREAM, 1, &[]))
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut ended = false;
    while Instant::now() < deadline {
        let Ok(read) = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await else {
            break;
        };
        let n = read.unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        let (frames, _) = parse_frames(&received);
        for f in &frames {
            assert!(
                !(f.kind == RST_STREAM && f.stream == 1),
                "the stream was reset: the answer did not wait for the request's end"
            );
            ended |= f.kind == HEADERS && f.stream == 1 && f.flags & END_STREAM != 0;
        }
    }
    assert!(ended, "the call was answered");
    drop(stream);
    server.shutdown().await.unwrap();
}

/// An HTTP/2 server that refuses the first `refusals` calls it gets (RST_STREAM with
/// `reason`), then answers each with an empty gRPC response; counts the calls.
async fn refusing_server(
    refusals: usize,
    reason: h2::Reason,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let calls = counted.clone();
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    if calls.fetch_add(1, Ordering::SeqCst) < refusals {
                        respond.send_reset(reason);
                        continue;
                    }
                    let response = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(())
                        .unwrap();
                    let Ok(mut body) = respond.send_response(response, false) else {
                        continue;
                    };
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let _ = body.send_trailers(trailers);
                }
            });
        }
    });
    (addr, calls, task)
}

/// A call the server refused unprocessed (REFUSED_STREAM) is sent once more, on a new
/// connection; a refusal of that one too, or a reset for any other reason, fails the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_is_sent_once_more() {
    use std::sync::atomic::Ordering;
    let (addr, calls, server) = refusing_server(1, h2::Reason::REFUSED_STREAM).await;
    let client = connect(&addr).await;
    client.list_actions().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    server.abort();

    let (addr, calls, server) = refusing_server(usize::MAX, h2::Reason::REFUSED_STREAM).await;
    let error = connect(&addr).await.list_actions().await.unwrap_err();
    assert_eq!(
        error.code(),
        polyflight_core::FlightCode::Unavailable,
        "{error}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one retry only");
    server.abort();

    // INTERNAL_ERROR: the server may have acted on the call, so it is not sent again
    let (addr, calls, server) = refusing_server(1, h2::Reason::INTERNAL_ERROR).await;
    assert!(connect(&addr).await.list_actions().await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.abort();
}
