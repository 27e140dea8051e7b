//! Connection limits on every real transport: a connection that stays silent after connecting
//! is closed by the handshake timeout, one without calls by the idle timeout, and clients carry
//! on by reconnecting; on UCX, connection requests over the cap are rejected. (The gRPC wire
//! details are tried with raw frames in `crates/polyflight-grpc/tests/connections.rs`.)

mod common;

use common::*;
use polyflight::transport::ListenOptions;
use polyflight::{FlightClient, FlightCode, LoopbackEndpoint, Server, ServerBuilder};
use std::time::Duration;

const TRANSPORTS: &[&str] = &["grpc", "grpc+tls", "grpc+unix", "ucx"];

async fn serve(
    transport: &str,
    adjust: impl FnOnce(&mut ListenOptions),
) -> (Server, LoopbackEndpoint) {
    let mut endpoint = endpoint_for(transport);
    adjust(&mut endpoint.listen);
    let server = ServerBuilder::new(TestService::default(), registry())
        .listen_with(endpoint.listen_uri.clone(), endpoint.listen.clone())
        .start()
        .await
        .expect("server starts");
    (server, endpoint)
}

async fn client(server: &Server, endpoint: &LoopbackEndpoint) -> polyflight::Result<FlightClient> {
    FlightClient::connect_with_options(
        registry(),
        server.location().uri(),
        endpoint.connect.clone(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_silent_connections_are_closed_and_clients_reconnect() {
    for transport in TRANSPORTS {
        let (server, endpoint) = serve(transport, |options| {
            options.handshake_timeout = Some(Duration::from_millis(300));
            options.idle_timeout = Some(Duration::from_millis(300));
        })
        .await;
        // connected, but no call yet: past the handshake timeout (a UCX client has said nothing)
        let client = client(&server, &endpoint).await.expect("client connects");
        tokio::time::sleep(Duration::from_millis(800)).await;
        client
            .list_actions()
            .await
            .unwrap_or_else(|e| panic!("{transport}: first call: {e}"));
        // idle past the idle timeout
        tokio::time::sleep(Duration::from_millis(800)).await;
        client
            .list_actions()
            .await
            .unwrap_or_else(|e| panic!("{transport}: call after idling: {e}"));
        // a call longer than the idle timeout is not cut: the timeout counts from the last call
        let slow = client.do_action(polyflight::proto::Action {
            r#type: "sleep".into(),
            body: bytes::Bytes::from_static(b"600"),
        });
        if let Err(e) = futures::TryStreamExt::try_collect::<Vec<_>>(slow.await.unwrap()).await {
            panic!("{transport}: a long call: {e}");
        }
        server.shutdown().await.expect("clean shutdown");
        endpoint.cleanup();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucx_connection_requests_over_the_cap_are_rejected() {
    let (server, endpoint) = serve("ucx", |options| options.max_connections = Some(1)).await;
    let first = client(&server, &endpoint).await.expect("first client");
    first.list_actions().await.expect("first client's call");
    let refused = match client(&server, &endpoint).await {
        Ok(second) => second.list_actions().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let error = refused.expect_err("a second connection is over the cap");
    assert_eq!(error.code(), FlightCode::Unavailable, "{error}");
    // the first is still served, and once it is gone there is room again
    first.list_actions().await.expect("first client again");
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = client(&server, &endpoint).await.expect("room again");
    third.list_actions().await.expect("third client's call");
    server.shutdown().await.expect("clean shutdown");
    endpoint.cleanup();
}
