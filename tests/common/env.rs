//! A server running the [`TestService`] on one transport, and a client connected to it. A
//! transport is named by its URI scheme and set up through its factory's loopback endpoint, so
//! adding a transport to the suite is one line in `tests/conformance.rs`; a few variants
//! (IPv6, …) are named here.

use super::mem::MemTransport;
use super::service::TestService;
use polyflight::{FlightClient, LoopbackEndpoint, Registry, Scheme, Server, ServerBuilder};

/// Every transport compiled into polyflight, and the suite's own in-process `mem://`.
pub fn registry() -> Registry {
    polyflight::default_registry().with(MemTransport::new())
}

/// A running test server and a client for it.
pub struct Env {
    pub server: Option<Server>,
    pub client: FlightClient,
    pub service: TestService,
    pub transport: &'static str,
    endpoint: LoopbackEndpoint,
}

/// The loopback endpoint for a test transport name.
pub fn endpoint_for(transport: &str) -> LoopbackEndpoint {
    let registry = registry();
    let (scheme, variant) = transport.split_once('/').unwrap_or((transport, ""));
    let scheme = Scheme::parse(scheme).unwrap_or_else(|| panic!("unknown scheme in {transport}"));
    let factory = registry.factory_for(scheme).expect("transport registered");
    let mut endpoint = factory
        .loopback_endpoint(scheme)
        .expect("loopback endpoint");
    match variant {
        "" => {}
        "ipv6" => endpoint.listen_uri = endpoint.listen_uri.replace("127.0.0.1", "[::1]"),
        // grpc+tls with a required client certificate (mutual TLS).
        "mtls" if scheme == Scheme::GrpcTls => {
            endpoint.cleanup();
            endpoint = polyflight_grpc::tls::loopback_mtls_endpoint().expect("mutual TLS endpoint");
        }
        // ucx with a receive budget far below the suite's largest frame (64 MiB), on both sides
        "small-budget" if scheme == Scheme::Ucx => {
            let options = polyflight::transports::UcxOptions {
                receive_budget: 1 << 20,
                ..Default::default()
            };
            endpoint.listen.extensions.insert(options);
            endpoint.connect.extensions.insert(options);
        }
        other => panic!("unknown variant {other} of {transport}"),
    }
    endpoint
}

impl Env {
    /// Starts the test service on `transport` (a scheme, optionally `/variant`) and connects a
    /// client.
    pub async fn start(transport: &'static str) -> Env {
        Self::start_with(transport, |builder| builder).await
    }

    /// [`Env::start`] with the server builder adjusted (authentication, middleware …).
    pub async fn start_with(
        transport: &'static str,
        configure: impl FnOnce(polyflight::ServerBuilder) -> polyflight::ServerBuilder,
    ) -> Env {
        let service = TestService::default();
        let endpoint = endpoint_for(transport);
        let builder = ServerBuilder::new(service.clone(), registry())
            .listen_with(endpoint.listen_uri.clone(), endpoint.listen.clone());
        let server = configure(builder).start().await.expect("server starts");
        let client = FlightClient::connect_with_options(
            registry(),
            server.location().uri(),
            endpoint.connect.clone(),
        )
        .await
        .expect("client connects");
        Env {
            server: Some(server),
            client,
            service,
            transport,
            endpoint,
        }
    }

    /// A second client of the server, with a connection (and cookies) of its own.
    pub async fn another_client(&self) -> FlightClient {
        let server = self.server.as_ref().expect("the server runs");
        FlightClient::connect_with_options(
            registry(),
            server.location().uri(),
            self.endpoint.connect.clone(),
        )
        .await
        .expect("client connects")
    }

    /// Shuts the server down (and checks it does so cleanly).
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        self.endpoint.cleanup();
    }
}
