//! The server: [`ServerBuilder`] binds a service to one or more listen URIs, each served by the
//! transport its scheme picks, all handing their calls to one [`Dispatcher`].

use crate::auth::ServerAuthHandler;
use crate::dispatcher::Dispatcher;
use crate::error::{FlightError, Result};
use crate::location::Location;
use crate::middleware::ServerMiddleware;
use crate::registry::Registry;
use crate::service::FlightService;
use crate::session::SessionMiddleware;
use crate::transport::{CallHandler, ListenOptions, Listener};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Builds a [`Server`]: a service, the registry of transports to serve it with, and the URIs to
/// listen on.
pub struct ServerBuilder {
    service: Arc<dyn FlightService>,
    auth: Option<Arc<dyn ServerAuthHandler>>,
    middleware: Vec<Arc<dyn ServerMiddleware>>,
    sessions: Option<SessionMiddleware>,
    registry: Registry,
    listens: Vec<(String, ListenOptions)>,
    grace: Duration,
}

impl ServerBuilder {
    /// A server for `service`, binding with the transports of `registry`.
    pub fn new(service: impl FlightService, registry: Registry) -> Self {
        Self::from_arc(Arc::new(service), registry)
    }

    /// [`ServerBuilder::new`] for a shared service.
    pub fn from_arc(service: Arc<dyn FlightService>, registry: Registry) -> Self {
        ServerBuilder {
            service,
            auth: None,
            middleware: Vec::new(),
            sessions: Some(SessionMiddleware::new()),
            registry,
            listens: Vec::new(),
            grace: Duration::from_secs(5),
        }
    }

    /// Authenticates every call with `auth` (Handshake goes to it instead of the service).
    pub fn auth(mut self, auth: Arc<dyn ServerAuthHandler>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Adds server middleware; several run in the order added.
    pub fn middleware(mut self, middleware: impl ServerMiddleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Keeps client sessions with `sessions` (its limits) instead of the default
    /// [`SessionMiddleware::new`]. Sessions run before the other middleware.
    pub fn sessions(mut self, sessions: SessionMiddleware) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// Keeps no client sessions: the session actions of [`crate::session`] answer
    /// UNIMPLEMENTED and `arrow_flight_session_id` cookies are ignored.
    pub fn without_sessions(mut self) -> Self {
        self.sessions = None;
        self
    }

    /// Listens on a URI (`grpc://0.0.0.0:8815`, `grpc+unix:///run/f.sock`, `ucx://host:0` …).
    pub fn listen(self, uri: impl Into<String>) -> Self {
        self.listen_with(uri, ListenOptions::default())
    }

    /// Listens on a URI with transport options.
    pub fn listen_with(mut self, uri: impl Into<String>, options: ListenOptions) -> Self {
        self.listens.push((uri.into(), options));
        self
    }

    /// How long [`Server::shutdown`] lets in-flight calls finish (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Binds every listen URI and starts serving. If one fails, those already bound are shut
    /// down and the error says which URI failed.
    pub async fn start(self) -> Result<Server> {
        if self.listens.is_empty() {
            return Err(FlightError::invalid_argument(
                "server has no listen URI: call listen(…) at least once",
            ));
        }
        let mut middleware: Vec<Arc<dyn ServerMiddleware>> = Vec::new();
        if let Some(sessions) = self.sessions {
            middleware.push(Arc::new(sessions));
        }
        middleware.extend(self.middleware);
        let handler: Arc<dyn CallHandler> =
            Arc::new(Dispatcher::with_config(self.service, self.auth, middleware));
        let mut listeners: Vec<Box<dyn Listener>> = Vec::new();
        for (uri, options) in &self.listens {
            let bound = async {
                let location = Location::parse(uri)?;
                let factory = self.registry.factory_for(location.scheme())?;
                factory.listen(&location, handler.clone(), options).await
            }
            .await;
            match bound {
                Ok(listener) => {
                    tracing::info!(location = %listener.location(), "listening");
                    listeners.push(listener)
                }
                Err(err) => {
                    for listener in listeners {
                        let _ = listener.shutdown(Duration::ZERO).await;
                    }
                    return Err(err.context(format!("cannot listen on {uri}")));
                }
            }
        }
        let locations = listeners.iter().map(|l| l.location().clone()).collect();
        Ok(Server {
            listeners,
            locations,
            grace: self.grace,
        })
    }
}

/// A running server. Dropping it without [`Server::shutdown`] stops the listeners abruptly
/// (each backend releases its resources on drop); prefer an explicit graceful shutdown.
pub struct Server {
    listeners: Vec<Box<dyn Listener>>,
    locations: Vec<Location>,
    grace: Duration,
}

impl Server {
    /// Where the server listens, in the order of the `listen` calls, with real ports.
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }

    /// The first listen location.
    pub fn location(&self) -> &Location {
        // `start` refuses to build a server without listeners.
        &self.locations[0]
    }

    /// Stops accepting calls, lets in-flight ones finish within the grace period, and releases
    /// every listener's resources.
    pub async fn shutdown(self) -> Result<()> {
        let grace = self.grace;
        let results =
            futures::future::join_all(self.listeners.into_iter().map(|l| l.shutdown(grace))).await;
        results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
    }

    /// Serves until `signal` completes (e.g. `tokio::signal::ctrl_c()`), then shuts down.
    pub async fn serve_until(self, signal: impl Future<Output = ()>) -> Result<()> {
        signal.await;
        self.shutdown().await
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("locations", &self.locations)
            .finish()
    }
}
