//! # polyflight
//!
//! Arrow Flight RPC with pluggable transports. Write a [`FlightService`] once and serve it over
//! gRPC (`grpc://`, `grpc+tcp://`), gRPC over TLS (`grpc+tls://`), gRPC over Unix sockets
//! (`grpc+unix://`) and UCX (`ucx://`); connect a [`FlightClient`] to any of them by URI.
//!
//! ```no_run
//! # async fn demo() -> polyflight::Result<()> {
//! use polyflight::{FlightService, Server};
//!
//! struct Empty;
//! impl FlightService for Empty {}
//!
//! let server = polyflight::server(Empty).listen("grpc://127.0.0.1:0").start().await?;
//! let client = polyflight::connect(server.location().uri()).await?;
//! let actions = client.list_actions().await;
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

pub use polyflight_core::*;

pub mod cluster;
pub mod memory;

/// The transports compiled into this build.
pub mod transports {
    #[cfg(feature = "loopback-pki")]
    pub use polyflight_grpc::tls::LoopbackPki;
    pub use polyflight_grpc::tls::{
        read_pem_file, ClientTlsConfig, GrpcTlsTransport, ServerTlsConfig,
    };
    pub use polyflight_grpc::{GrpcSettings, GrpcTransport};
    #[cfg(target_os = "linux")]
    pub use polyflight_ucx::{
        context_defaults as ucx_context_defaults, ProgressMode, UcxOptions, UcxTransport,
    };
    #[cfg(unix)]
    pub use polyflight_unix::{UnixListenOptions, UnixSocketOptions, UnixTransport};
}

/// A registry with every transport compiled into this build.
pub fn default_registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(polyflight_grpc::GrpcTransport);
    registry.register(polyflight_grpc::GrpcTlsTransport);
    #[cfg(unix)]
    registry.register(polyflight_unix::UnixTransport);
    #[cfg(target_os = "linux")]
    registry.register(polyflight_ucx::UcxTransport);
    registry
}

/// Connects to a Flight service; the URI scheme picks the transport.
pub async fn connect(uri: &str) -> Result<FlightClient> {
    FlightClient::connect_with(default_registry(), uri).await
}

/// Connects with connection options (timeouts, message limits, transport settings).
pub async fn connect_with_options(uri: &str, options: ConnectOptions) -> Result<FlightClient> {
    FlightClient::connect_with_options(default_registry(), uri, options).await
}

/// Starts building a server for `service` with every compiled-in transport.
pub fn server(service: impl FlightService) -> ServerBuilder {
    ServerBuilder::new(service, default_registry())
}
