//! `location:reuse_connection`: the special location `arrow-flight-reuse-connection://?`,
//! which tells a client to fetch an endpoint over the connection it already has, must reach the
//! client exactly as written.

use super::{Scenario, ServerParts};
use crate::failure::{check, CallContext as _, Outcome};
use crate::peer::Connector;
use arrow_schema::Schema;
use async_trait::async_trait;
use polyflight::proto::{FlightDescriptor, FlightEndpoint, FlightInfo};
use polyflight::{CallContext, FlightService, Result};

const REUSE: &str = "arrow-flight-reuse-connection://?";

/// The scenario.
pub struct ReuseConnection;

struct ReuseService;

#[async_trait]
impl FlightService for ReuseService {
    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        Ok(FlightInfo::new()
            .with_schema(&Schema::empty())
            .with_descriptor(descriptor)
            .with_endpoint(FlightEndpoint::new("reuse").with_location_uri(REUSE)))
    }
}

#[async_trait]
impl Scenario for ReuseConnection {
    fn name(&self) -> &'static str {
        "location:reuse_connection"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(ReuseService)
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let info = client
            .get_flight_info(FlightDescriptor::new_cmd("reuse"))
            .await
            .call("GetFlightInfo(reuse)")?;
        check(info.endpoint.len() == 1, || {
            format!("expected 1 endpoint, got {}", info.endpoint.len())
        })?;
        let locations = &info.endpoint[0].location;
        check(locations.len() == 1, || {
            format!("expected 1 location, got {}", locations.len())
        })?;
        check(locations[0].uri == REUSE, || {
            format!("expected location {REUSE}, got {}", locations[0].uri)
        })
    }
}
