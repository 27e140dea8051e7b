//! [`UcxTransport`]: the factory the registry uses for `ucx://host:port` locations.

use async_trait::async_trait;
use polyflight_core::transport::{ConnectOptions, ListenOptions};
use polyflight_core::{
    CallHandler, ClientTransport, FlightError, Listener, Location, Result, Scheme, TransportFactory,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use crate::client::UcxClient;
use crate::options::UcxOptions;
use crate::server::{Limits, UcxListener};
use crate::ucp::Context;

/// The `ucx:` transport: Flight over UCX, on the wire of Arrow C++ 8–19's `ucx:` transport.
///
/// Register it with a `Registry` to serve and call `ucx://host:port` locations (port 0 picks a
/// free port when listening). It reads [`UcxOptions`] from the connect and listen options'
/// extensions. A client opens a UCX connection per concurrent call and pools idle ones; a
/// listener serves each connection on its own thread, one call at a time, and runs the handlers
/// on the runtime `listen` was called on. Where the UCX library cannot be loaded, connecting and
/// listening fail with UNAVAILABLE, naming the paths tried.
///
/// ```no_run
/// # async fn serve(service: impl polyflight_core::FlightService) -> polyflight_core::Result<()> {
/// use polyflight_core::{Registry, ServerBuilder};
///
/// let registry = Registry::new().with(polyflight_ucx::UcxTransport);
/// let server = ServerBuilder::new(service, registry)
///     .listen("ucx://127.0.0.1:0")
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct UcxTransport;

/// One UCX context for the process while anything uses it; cleaned up after the last user.
fn shared_context() -> Result<Arc<Context>> {
    static CONTEXT: Mutex<Weak<Context>> = Mutex::new(Weak::new());
    let mut slot = CONTEXT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(context) = slot.upgrade() {
        return Ok(context);
    }
    let context = Context::new()?;
    *slot = Arc::downgrade(&context);
    Ok(context)
}

/// The host and port of a `ucx://` location, the host without IPv6 brackets.
fn host_of(location: &Location) -> Result<(String, u16)> {
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

async fn resolve(location: &Location) -> Result<(String, SocketAddr)> {
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
    ) -> Result<Arc<dyn ClientTransport>> {
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
            options.max_decoding_message_size,
        )
        .await?;
        Ok(Arc::new(client))
    }

    async fn listen(
        &self,
        location: &Location,
        handler: Arc<dyn CallHandler>,
        options: &ListenOptions,
    ) -> Result<Box<dyn Listener>> {
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
            handler,
            ucx,
            Limits {
                handshake_timeout: options.handshake_timeout,
                idle_timeout: options.idle_timeout,
                max_connections: options.max_connections,
                max_message: options.max_decoding_message_size,
                receive_budget: ucx.receive_budget,
                receive_budget_wait: ucx.receive_budget_wait,
            },
            tokio::runtime::Handle::current(),
        )
        .await?;
        Ok(Box::new(listener))
    }
}
