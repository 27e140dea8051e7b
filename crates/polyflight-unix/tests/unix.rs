//! `grpc+unix` end to end: the socket file's lifecycle (no clobbering a live server, stale files
//! replaced, other files left alone, removal on shutdown and on drop, permissions), peer
//! credentials in the `CallContext`, and a request carrying the percent-encoded socket path as
//! `:authority` — as gRPC C++ sends it — sent frame by frame. Every test works in a temporary
//! directory of its own, removed at the end.

use bytes::{BufMut, Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use polyflight_core::proto::{Action, ActionType, Result as ActionResult};
use polyflight_core::{
    CallContext, FlightClient, FlightCode, FlightService, FlightStream, ListenOptions, Location,
    Registry, Result, Scheme, Server, ServerBuilder, TransportFactory,
};
use polyflight_unix::hpack::{encode_literals, Decoder, HeaderField};
use polyflight_unix::{UnixListenOptions, UnixTransport};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers `peer` with what the transport reported about the caller.
struct PeerService;

#[polyflight_core::async_trait]
impl FlightService for PeerService {
    async fn do_action(
        &self,
        ctx: CallContext,
        _action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        let peer = ctx.peer();
        let credentials = peer
            .credentials
            .map(|c| format!("uid={} gid={} pid={:?}", c.uid, c.gid, c.pid))
            .unwrap_or_else(|| "none".into());
        let lines = vec![
            format!("scheme={}", peer.scheme.map(Scheme::as_str).unwrap_or("-")),
            format!("address={}", peer.address.as_deref().unwrap_or("-")),
            credentials,
        ];
        Ok(futures::stream::iter(
            lines
                .into_iter()
                .map(|l| Ok(ActionResult { body: l.into() })),
        )
        .boxed())
    }

    async fn list_actions(&self, _ctx: CallContext) -> Result<FlightStream<ActionType>> {
        Ok(futures::stream::iter([Ok(ActionType {
            r#type: "peer".into(),
            description: "who is calling".into(),
        })])
        .boxed())
    }
}

fn registry() -> Registry {
    Registry::new().with(UnixTransport)
}

fn uri(path: &Path) -> String {
    Location::for_unix_path(path).unwrap().uri().to_string()
}

async fn start_with(path: &Path, options: ListenOptions) -> Result<Server> {
    ServerBuilder::new(PeerService, registry())
        .listen_with(uri(path), options)
        .start()
        .await
}

async fn start(path: &Path) -> Server {
    start_with(path, ListenOptions::default())
        .await
        .expect("server starts")
}

async fn client(path: &Path) -> FlightClient {
    FlightClient::connect_with(registry(), &uri(path))
        .await
        .expect("client connects")
}

async fn peer_lines(client: &FlightClient) -> Vec<String> {
    client
        .do_action(Action {
            r#type: "peer".into(),
            body: Bytes::new(),
        })
        .await
        .unwrap()
        .map_ok(|b| String::from_utf8_lossy(&b).into_owned())
        .try_collect()
        .await
        .unwrap()
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("polyflight-unix-test-")
        .tempdir()
        .unwrap()
}

#[tokio::test]
async fn peer_credentials_and_address_reach_the_service() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let server = start(&path).await;
    let client = client(&path).await;
    let lines = peer_lines(&client).await;
    assert_eq!(lines[0], "scheme=grpc+unix");
    assert_eq!(lines[1], format!("address={}", path.display()));
    // The client is this process: its pid, and the uid/gid that own the files it creates.
    let probe = dir.path().join("owner-probe");
    std::fs::write(&probe, b"").unwrap();
    let owner = std::fs::metadata(&probe).unwrap();
    assert_eq!(
        lines[2],
        format!(
            "uid={} gid={} pid=Some({})",
            owner.uid(),
            owner.gid(),
            std::process::id()
        )
    );
    server.shutdown().await.unwrap();
    dir.close().unwrap();
}

#[tokio::test]
async fn a_live_socket_is_not_replaced() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let first = start(&path).await;
    let err = start_with(&path, ListenOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::AlreadyExists, "{err}");
    assert!(err.message().contains("already listening"), "{err}");
    // The first server still serves on its socket.
    assert_eq!(client(&path).await.list_actions().await.unwrap().len(), 1);
    first.shutdown().await.unwrap();
    dir.close().unwrap();
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    // A socket file nobody listens on, as a crashed server leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = start(&path).await;
    assert_eq!(client(&path).await.list_actions().await.unwrap().len(), 1);
    server.shutdown().await.unwrap();
    assert!(!path.exists());
    dir.close().unwrap();
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    std::fs::write(&path, b"precious").unwrap();
    let err = start_with(&path, ListenOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::AlreadyExists, "{err}");
    assert!(err.message().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    dir.close().unwrap();
}

#[tokio::test]
async fn the_socket_is_removed_on_shutdown_and_on_drop() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let server = start(&path).await;
    assert!(path.exists());
    server.shutdown().await.unwrap();
    assert!(!path.exists(), "removed on shutdown");

    let server = start(&path).await;
    assert!(path.exists());
    drop(server);
    assert!(!path.exists(), "removed on drop");
    let err = FlightClient::connect_with(registry(), &uri(&path))
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::Unavailable);
    assert!(err.message().contains("no socket at"), "{err}");
    dir.close().unwrap();
}

#[tokio::test]
async fn shutdown_leaves_a_newer_socket_on_the_same_path_alone() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let old = start(&path).await;
    // Someone removes the old socket file and another server takes the path.
    std::fs::remove_file(&path).unwrap();
    let new = start(&path).await;
    old.shutdown().await.unwrap();
    assert!(path.exists(), "the newer server's socket must survive");
    assert_eq!(client(&path).await.list_actions().await.unwrap().len(), 1);
    new.shutdown().await.unwrap();
    assert!(!path.exists());
    dir.close().unwrap();
}

#[tokio::test]
async fn permissions_are_owner_only_by_default_and_configurable() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let server = start(&path).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "default mode {mode:o}");
    server.shutdown().await.unwrap();

    let mut options = ListenOptions::default();
    options
        .extensions
        .insert(UnixListenOptions::with_mode(0o660));
    let server = start_with(&path, options).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "configured mode {mode:o}");
    assert_eq!(client(&path).await.list_actions().await.unwrap().len(), 1);
    server.shutdown().await.unwrap();
    dir.close().unwrap();
}

#[tokio::test]
async fn bad_paths_are_clear_errors() {
    let dir = temp_dir();
    let missing_dir = dir.path().join("no-such-dir").join("s.sock");
    let err = start_with(&missing_dir, ListenOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::InvalidArgument, "{err}");
    assert!(err.message().contains("directory does not exist"), "{err}");
    let long = dir.path().join("x".repeat(200));
    let err = start_with(&long, ListenOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::InvalidArgument, "{err}");
    assert!(
        err.message().contains("cannot be a socket address"),
        "{err}"
    );
    dir.close().unwrap();
}

#[tokio::test]
async fn loopback_endpoint_is_a_fresh_socket_and_cleans_up() {
    let endpoint = UnixTransport.loopback_endpoint(Scheme::GrpcUnix).unwrap();
    let location = Location::parse(&endpoint.listen_uri).unwrap();
    let path: PathBuf = location.unix_path().unwrap().to_path_buf();
    let dir = path.parent().unwrap().to_path_buf();
    assert_eq!(endpoint.cleanup, vec![dir.clone()]);
    assert!(dir.is_dir() && !path.exists());
    let server = start_with(&path, endpoint.listen.clone()).await.unwrap();
    let client = FlightClient::connect_with_options(
        registry(),
        server.location().uri(),
        endpoint.connect.clone(),
    )
    .await
    .unwrap();
    assert_eq!(client.list_actions().await.unwrap().len(), 1);
    server.shutdown().await.unwrap();
    endpoint.cleanup();
    assert!(!dir.exists());
}

// ---- a request as gRPC C++ sends it --------------------------------------------------------------

fn frame(out: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.put_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
    out.put_slice(payload);
}

/// Reads frames until the stream's response ends; returns the decoded header blocks and whether
/// a RST_STREAM came instead.
async fn read_response(stream: &mut tokio::net::UnixStream) -> (Vec<Vec<HeaderField>>, bool) {
    let mut decoder = Decoder::new(4096);
    let mut blocks = Vec::new();
    loop {
        let mut header = [0u8; 9];
        stream.read_exact(&mut header).await.unwrap();
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.unwrap();
        let (kind, flags) = (header[3], header[4]);
        match kind {
            0x1 => {
                // Our server sends neither padding nor priority, and small blocks.
                assert_ne!(flags & 0x4, 0, "headers in one frame");
                blocks.push(decoder.decode(&payload, 1 << 20).unwrap());
                if flags & 0x1 != 0 {
                    return (blocks, false);
                }
            }
            0x3 => return (blocks, true),
            0x0 if flags & 0x1 != 0 => return (blocks, false),
            0x4 if flags & 0x1 == 0 => {
                // Acknowledge the server's SETTINGS.
                let mut ack = BytesMut::new();
                frame(&mut ack, 0x4, 0x1, 0, &[]);
                stream.write_all(&ack).await.unwrap();
            }
            _ => {}
        }
    }
}

fn header<'a>(block: &'a [HeaderField], name: &str) -> Option<&'a [u8]> {
    block
        .iter()
        .find(|f| f.name == name.as_bytes())
        .map(|f| f.value.as_slice())
}

#[tokio::test]
async fn a_percent_encoded_socket_path_as_authority_is_accepted() {
    let dir = temp_dir();
    let path = dir.path().join("s.sock");
    let server = start(&path).await;
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    // What gRPC C++ sends for `unix:/tmp/…/s.sock`: the path, percent-encoded, as authority.
    let authority = path
        .display()
        .to_string()
        .trim_start_matches('/')
        .replace('/', "%2F");
    let fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/arrow.flight.protocol.FlightService/ListActions"),
        (":authority", authority.as_str()),
        ("te", "trailers"),
        ("content-type", "application/grpc"),
    ]
    .map(|(n, v)| HeaderField::new(n, v));
    let mut block = Vec::new();
    encode_literals(&fields, &mut block);
    let mut out = BytesMut::new();
    out.put_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    frame(&mut out, 0x4, 0, 0, &[]);
    frame(&mut out, 0x1, 0x4, 1, &block);
    // One empty gRPC message (`Empty`), ending the request.
    frame(&mut out, 0x0, 0x1, 1, &[0, 0, 0, 0, 0]);
    stream.write_all(&out).await.unwrap();
    let (blocks, reset) = tokio::time::timeout(Duration::from_secs(10), read_response(&mut stream))
        .await
        .expect("a response");
    assert!(!reset, "the server reset the stream");
    assert_eq!(header(&blocks[0], ":status"), Some(b"200".as_slice()));
    let trailers = blocks.last().unwrap();
    assert_eq!(
        header(trailers, "grpc-status"),
        Some(b"0".as_slice()),
        "{trailers:?}"
    );
    drop(stream);
    server.shutdown().await.unwrap();
    dir.close().unwrap();
}
