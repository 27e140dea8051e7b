//! The named scenarios of Arrow's Flight integration suite. Each module holds one scenario's
//! server (a `FlightService`, plus any authentication or middleware it is served with) and its
//! client (the checks Arrow C++'s client makes), so the two halves of a contract read side by
//! side. [`find`] looks a scenario up by the name archery passes in `-scenario`.

mod app_metadata_flight_info_endpoint;
mod auth_basic_proto;
mod do_exchange_echo;
mod expiration_time;
mod flight_sql;
mod middleware;
mod ordered;
mod poll_flight_info;
mod reuse_connection;
mod session_options;

use crate::failure::{ArrowContext, CallContext as _, Outcome};
use crate::peer::{Connector, ListenSpec};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use polyflight::codec::FlightDataEncoderBuilder;
use polyflight::proto::Result as ActionResult;
use polyflight::proto::Ticket;
use polyflight::ServerBuilder;
use polyflight::{FlightClient, FlightData, FlightService, FlightStream, Location, Server};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One named scenario: how its server is built and what its client checks.
#[async_trait]
pub trait Scenario: Send + Sync {
    /// The name archery passes in `-scenario`.
    fn name(&self) -> &'static str;

    /// The scenario's server.
    fn server(&self) -> ServerParts;

    /// Runs the client against the server `connector` reaches; `Ok` means the scenario passed.
    async fn run_client(&self, connector: &Connector) -> Outcome;
}

/// A hook that adds to a server builder.
pub type Configure = Box<dyn FnOnce(ServerBuilder) -> ServerBuilder + Send>;
/// A hook told the listen locations of a started server.
pub type Started = Box<dyn FnOnce(&[Location]) + Send>;

/// What a scenario's server is made of: the service and a hook that adds authentication or
/// middleware to the builder, and one told where the server listens once it runs.
pub struct ServerParts {
    /// The service.
    pub service: Arc<dyn FlightService>,
    /// Adds what the scenario needs besides the service (authentication, middleware).
    pub configure: Configure,
    /// Told the listen locations (with real ports) once the server runs.
    pub started: Started,
}

impl ServerParts {
    /// A plain service, served as it is.
    pub fn new(service: impl FlightService) -> ServerParts {
        ServerParts {
            service: Arc::new(service),
            configure: Box::new(|builder| builder),
            started: Box::new(|_| {}),
        }
    }

    /// Adds a builder hook.
    pub fn configure(
        mut self,
        configure: impl FnOnce(ServerBuilder) -> ServerBuilder + Send + 'static,
    ) -> ServerParts {
        self.configure = Box::new(configure);
        self
    }

    /// Adds a hook told the listen locations.
    pub fn on_started(mut self, started: impl FnOnce(&[Location]) + Send + 'static) -> Self {
        self.started = Box::new(started);
        self
    }

    /// Builds and starts the server on `spec`.
    pub async fn start(self, spec: &ListenSpec) -> Outcome<Server> {
        let builder = ServerBuilder::from_arc(self.service, polyflight::default_registry())
            .listen_with(spec.uri.clone(), spec.options.clone())
            .shutdown_grace(Duration::from_secs(1));
        let server = (self.configure)(builder)
            .start()
            .await
            .call("starting the server")?;
        (self.started)(server.locations());
        Ok(server)
    }
}

/// Every named scenario, in the order Arrow's archery lists them.
pub fn all() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(auth_basic_proto::AuthBasicProto),
        Box::new(middleware::Middleware),
        Box::new(ordered::Ordered),
        Box::new(expiration_time::ExpirationTime::DoGet),
        Box::new(expiration_time::ExpirationTime::ListActions),
        Box::new(expiration_time::ExpirationTime::CancelFlightInfo),
        Box::new(expiration_time::ExpirationTime::RenewFlightEndpoint),
        Box::new(reuse_connection::ReuseConnection),
        Box::new(session_options::SessionOptions),
        Box::new(poll_flight_info::PollFlightInfo),
        Box::new(app_metadata_flight_info_endpoint::AppMetadataFlightInfoEndpoint),
        Box::new(do_exchange_echo::DoExchangeEcho),
        Box::new(flight_sql::FlightSql),
        Box::new(flight_sql::FlightSqlExtension),
        Box::new(flight_sql::FlightSqlIngestion),
    ]
}

/// The scenario named `name`.
pub fn find(name: &str) -> Option<Box<dyn Scenario>> {
    all().into_iter().find(|s| s.name() == name)
}

/// The names of every scenario.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name()).collect()
}

// ---- helpers shared by the scenarios --------------------------------------------------------

/// A DoGet stream of `batch` (schema first).
pub(crate) fn batch_stream(batch: RecordBatch) -> FlightStream<FlightData> {
    let schema = batch.schema();
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter([Ok(batch)])),
    )
}

/// A DoAction response of these result bodies.
pub(crate) fn action_results(bodies: Vec<Bytes>) -> FlightStream<ActionResult> {
    Box::pin(futures::stream::iter(
        bodies.into_iter().map(|body| Ok(ActionResult { body })),
    ))
}

/// A protobuf timestamp `after` from now.
pub(crate) fn timestamp_in(after: Duration) -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now() + after)
}

/// Every batch of a DoGet.
pub(crate) async fn read_ticket(
    client: &FlightClient,
    ticket: Ticket,
) -> Outcome<Vec<RecordBatch>> {
    let label = format!("DoGet {:?}", String::from_utf8_lossy(&ticket.ticket));
    client
        .do_get(ticket)
        .await
        .call(&label)?
        .try_collect()
        .await
        .call(&label)
}

/// The rows of `batches` as one batch of `schema`.
pub(crate) fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Outcome<RecordBatch> {
    arrow_select::concat::concat_batches(schema, batches).arrow("concatenating the batches")
}
