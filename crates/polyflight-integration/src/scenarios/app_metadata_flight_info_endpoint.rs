//! `app_metadata_flight_info_endpoint`: `FlightInfo.app_metadata` and
//! `FlightEndpoint.app_metadata` travel. GetFlightInfo of a command sets both to the command;
//! any other descriptor is an error. The client asks for `foobar` and expects it in both places.

use super::{Scenario, ServerParts};
use crate::failure::{check, CallContext as _, Outcome};
use crate::peer::Connector;
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use polyflight::proto::flight_descriptor::DescriptorType;
use polyflight::proto::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use polyflight::{CallContext, FlightError, FlightService, Result};

/// The scenario.
pub struct AppMetadataFlightInfoEndpoint;

struct EchoCommand;

#[async_trait]
impl FlightService for EchoCommand {
    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        if descriptor.r#type != DescriptorType::Cmd as i32 {
            return Err(FlightError::invalid_argument(
                "request descriptor should be of type CMD",
            ));
        }
        let schema = Schema::new(vec![Field::new("number", DataType::UInt32, false)]);
        let cmd = descriptor.cmd.clone();
        Ok(FlightInfo::new()
            .with_schema(&schema)
            .with_descriptor(descriptor)
            .with_endpoint(FlightEndpoint::new(Ticket::default()).with_app_metadata(cmd.clone()))
            .with_app_metadata(cmd))
    }
}

#[async_trait]
impl Scenario for AppMetadataFlightInfoEndpoint {
    fn name(&self) -> &'static str {
        "app_metadata_flight_info_endpoint"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(EchoCommand)
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let info = client
            .get_flight_info(FlightDescriptor::new_cmd("foobar"))
            .await
            .call("GetFlightInfo(foobar)")?;
        check(info.app_metadata.as_ref() == b"foobar", || {
            format!(
                "FlightInfo.app_metadata should be 'foobar', got {:?}",
                String::from_utf8_lossy(&info.app_metadata)
            )
        })?;
        check(info.endpoint.len() == 1, || {
            format!(
                "expected exactly one FlightEndpoint, got {}",
                info.endpoint.len()
            )
        })?;
        let metadata = &info.endpoint[0].app_metadata;
        check(metadata.as_ref() == b"foobar", || {
            format!(
                "FlightEndpoint.app_metadata should be 'foobar', got {:?}",
                String::from_utf8_lossy(metadata)
            )
        })
    }
}
