//! `Registry`: which transport serves which URI scheme. The facade crate builds the default one
//! with every backend compiled in; applications may build their own (e.g. with a TLS-configured
//! gRPC factory, or a transport of their own).

use crate::error::{FlightError, Result};
use crate::location::{Location, Scheme};
use crate::transport::{ClientTransport, ConnectOptions, TransportFactory};
use std::sync::Arc;

/// Maps URI schemes to transport factories. Cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    factories: Vec<Arc<dyn TransportFactory>>,
}

impl Registry {
    /// A registry with no transports.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a factory. For a scheme served by several factories the latest one wins, so an
    /// application can replace a default (say, `grpc+tls` with its own certificates).
    pub fn register(&mut self, factory: impl TransportFactory) -> &mut Self {
        self.register_arc(Arc::new(factory))
    }

    /// [`Registry::register`] for a shared factory.
    pub fn register_arc(&mut self, factory: Arc<dyn TransportFactory>) -> &mut Self {
        self.factories.push(factory);
        self
    }

    /// Builder form of [`Registry::register`].
    pub fn with(mut self, factory: impl TransportFactory) -> Self {
        self.register(factory);
        self
    }

    /// The factory serving `scheme`. A scheme nobody serves is an `INVALID_ARGUMENT` error that
    /// lists the schemes that are served (distinct from a failure to connect, `UNAVAILABLE`).
    pub fn factory_for(&self, scheme: Scheme) -> Result<Arc<dyn TransportFactory>> {
        self.factories
            .iter()
            .rev()
            .find(|f| f.schemes().contains(&scheme))
            .cloned()
            .ok_or_else(|| {
                let served: Vec<&str> = self.schemes().into_iter().map(Scheme::as_str).collect();
                FlightError::invalid_argument(format!(
                    "no transport registered for scheme `{scheme}` (registered: {})",
                    if served.is_empty() {
                        "none".to_string()
                    } else {
                        served.join(", ")
                    }
                ))
            })
    }

    /// Every scheme some factory serves, without duplicates, in registration order.
    pub fn schemes(&self) -> Vec<Scheme> {
        let mut out = Vec::new();
        for scheme in self
            .factories
            .iter()
            .flat_map(|f| f.schemes().iter().copied())
        {
            if !out.contains(&scheme) {
                out.push(scheme);
            }
        }
        out
    }

    /// The registered factories, in registration order.
    pub fn factories(&self) -> &[Arc<dyn TransportFactory>] {
        &self.factories
    }

    /// Connects to `location` with the factory for its scheme.
    pub async fn connect(
        &self,
        location: &Location,
        options: &ConnectOptions,
    ) -> Result<Arc<dyn ClientTransport>> {
        if location.is_reuse_connection() {
            return Err(FlightError::invalid_argument(
                "arrow-flight-reuse-connection:// names the connection a FlightInfo came over; \
                 it cannot be connected to on its own",
            ));
        }
        self.factory_for(location.scheme())?
            .connect(location, options)
            .await
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.factories.iter().map(|f| f.name()))
            .finish()
    }
}
