//! A server running the [`TestService`] on one transport, and a client connected to it. The
//! transport is named by a short key; adding a transport to the suite is adding a key here and a
//! line in `tests/conformance.rs`.

use super::service::TestService;
use polyflight::{FlightClient, Server};

/// A running test server and a client for it.
pub struct Env {
    pub server: Option<Server>,
    pub client: FlightClient,
    pub service: TestService,
    pub transport: &'static str,
}

impl Env {
    /// Starts the test service on `transport` and connects a client.
    pub async fn start(transport: &'static str) -> Env {
        let service = TestService::default();
        let listen = match transport {
            "grpc" => "grpc://127.0.0.1:0".to_string(),
            "grpc+tcp" => "grpc+tcp://127.0.0.1:0".to_string(),
            "grpc-ipv6" => "grpc://[::1]:0".to_string(),
            other => panic!("unknown test transport {other}"),
        };
        let server = polyflight::server(service.clone())
            .listen(listen)
            .start()
            .await
            .expect("server starts");
        let client = polyflight::connect(server.location().uri())
            .await
            .expect("client connects");
        Env {
            server: Some(server),
            client,
            service,
            transport,
        }
    }

    /// Shuts the server down (and checks it does so cleanly).
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }
}
