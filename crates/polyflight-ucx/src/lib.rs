//! Arrow Flight over UCX for polyflight: the `ucx://host:port` transport.
//!
//! The wire is the one Arrow C++ 8–19 shipped as its `ucx:` transport (see `spec/ucx-wire.md`),
//! extended compatibly to every Flight RPC, call headers, timeouts and cancellation. Layers:
//!
//! - [`frame`]: the framing as pure functions over bytes (frame header, Headers, PayloadHeader,
//!   status frames, the reorder buffer), tested byte for byte;
//! - [`ucp`]: our own small async layer over the UCX C API (`ucx1-sys` types, library loaded at
//!   run time): context, single-threaded workers driven on current-thread runtimes, listener,
//!   endpoints, active message send (scatter-gather) and receive (eager, data and rendezvous);
//! - [`conn`]: a frame connection on one worker: counters, the empty-body rule, in-order delivery,
//!   rendezvous bodies received into 64-byte aligned buffers;
//! - [`wire`]: Flight messages ⇄ frames; [`client`] and [`server`]: the core transport traits;
//! - [`UcxTransport`]: the factory the registry uses for `ucx:` locations.
//!
//! `docs/ucx.md` explains the choices (why not `async-ucx`, linking, progress modes, tuning).

pub mod client;
pub mod conn;
pub mod error;
pub mod frame;
pub mod server;
pub mod ucp;
pub mod wire;

pub use client::UcxClient;
pub use error::{ErrorCode, Result, UcxError};
pub use server::UcxListener;
pub use ucp::ProgressMode;

use async_trait::async_trait;
use polyflight_core::transport::{ConnectOptions, ListenOptions};
use polyflight_core::{
    ClientTransport, Dispatcher, FlightError, Listener, Location, Scheme, TransportFactory,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

/// UCX settings, passed in [`ConnectOptions::extensions`] / [`ListenOptions::extensions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UcxOptions {
    /// How worker threads wait for work (default: from `POLYFLIGHT_UCX_PROGRESS`, else event).
    pub progress: ProgressMode,
    /// Idle client connections kept for later calls (Arrow C++ keeps 3).
    pub max_idle_connections: usize,
}

impl Default for UcxOptions {
    fn default() -> Self {
        UcxOptions {
            progress: ProgressMode::from_env(),
            max_idle_connections: 3,
        }
    }
}

/// The `ucx:` transport factory.
#[derive(Debug, Clone, Copy, Default)]
pub struct UcxTransport;

/// One UCX context for the process while anything uses it; cleaned up after the last user.
fn shared_context() -> polyflight_core::Result<Arc<ucp::Context>> {
    static CONTEXT: Mutex<Weak<ucp::Context>> = Mutex::new(Weak::new());
    let mut slot = CONTEXT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(context) = slot.upgrade() {
        return Ok(context);
    }
    let context = ucp::Context::new().map_err(FlightError::from)?;
    *slot = Arc::downgrade(&context);
    Ok(context)
}

/// The host of a `ucx://` location, without IPv6 brackets.
fn host_of(location: &Location) -> polyflight_core::Result<(String, u16)> {
    let host = location
        .host()
        .ok_or_else(|| FlightError::invalid_argument(format!("{location} has no host")))?;
    let port = location
        .port()
        .ok_or_else(|| FlightError::invalid_argument(format!("{location} has no port")))?;
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

async fn resolve(location: &Location) -> polyflight_core::Result<(String, SocketAddr)> {
    let (host, port) = host_of(location)?;
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| FlightError::unavailable(format!("cannot resolve {location}: {e}")))?
        .next()
        .ok_or_else(|| FlightError::unavailable(format!("{location} resolves to no address")))?;
    Ok((host, addr))
}

#[async_trait]
impl TransportFactory for UcxTransport {
    fn name(&self) -> &str {
        "ucx"
    }

    fn schemes(&self) -> &[Scheme] {
        &[Scheme::Ucx]
    }

    async fn connect(
        &self,
        location: &Location,
        options: &ConnectOptions,
    ) -> polyflight_core::Result<Arc<dyn ClientTransport>> {
        let (_, addr) = resolve(location).await?;
        let ucx = options
            .extensions
            .get::<UcxOptions>()
            .copied()
            .unwrap_or_default();
        let client = UcxClient::connect(
            location.clone(),
            addr,
            shared_context()?,
            ucx,
            options.connect_timeout,
        )
        .await?;
        Ok(Arc::new(client))
    }

    async fn listen(
        &self,
        location: &Location,
        dispatcher: Dispatcher,
        options: &ListenOptions,
    ) -> polyflight_core::Result<Box<dyn Listener>> {
        let (host, addr) = resolve(location).await?;
        let ucx = options
            .extensions
            .get::<UcxOptions>()
            .copied()
            .unwrap_or_default();
        let listener = UcxListener::bind(
            addr,
            &host,
            shared_context()?,
            dispatcher,
            ucx,
            tokio::runtime::Handle::current(),
        )
        .await?;
        Ok(Box::new(listener))
    }
}
