//! `ordered`: `FlightInfo.ordered` and endpoints read in their order.
//!
//! GetFlightInfo of the command `ordered` answers `ordered = true` with endpoints `1`, `2`, `3`
//! (no locations: read them from this server); any other descriptor answers unordered, `1`,
//! `3`, `2`. DoGet of `1`/`2`/`3` returns an int32 column `number` of [1,2,3] / [10,20,30] /
//! [100,200,300]. The client reads the endpoints in order and expects the nine values in order.

use super::{batch_stream, concat, read_ticket, Scenario, ServerParts};
use crate::failure::{check, ArrowContext, CallContext as _, Failure, Outcome};
use crate::peer::Connector;
use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use polyflight::proto::flight_descriptor::DescriptorType;
use polyflight::proto::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use polyflight::{CallContext, FlightData, FlightError, FlightService, FlightStream, Result};
use std::sync::Arc;

/// The scenario.
pub struct Ordered;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "number",
        DataType::Int32,
        false,
    )]))
}

fn numbers(values: Vec<i32>) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    RecordBatch::try_new(schema(), vec![Arc::new(Int32Array::from(values))])
}

struct OrderedService;

#[async_trait]
impl FlightService for OrderedService {
    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        let ordered = descriptor.r#type == DescriptorType::Cmd as i32
            && descriptor.cmd.as_ref() == b"ordered";
        let tickets: [&'static str; 3] = if ordered {
            ["1", "2", "3"]
        } else {
            ["1", "3", "2"]
        };
        let mut info = FlightInfo::new()
            .with_schema(&schema())
            .with_descriptor(descriptor)
            .with_ordered(ordered);
        for ticket in tickets {
            info = info.with_endpoint(FlightEndpoint::new(ticket));
        }
        Ok(info)
    }

    async fn do_get(&self, _ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        let values = match ticket.ticket.as_ref() {
            b"1" => vec![1, 2, 3],
            b"2" => vec![10, 20, 30],
            b"3" => vec![100, 200, 300],
            other => {
                return Err(FlightError::not_found(format!(
                    "Could not find flight: {}",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        let batch = numbers(values).map_err(|e| FlightError::internal(e.to_string()))?;
        Ok(batch_stream(batch))
    }
}

#[async_trait]
impl Scenario for Ordered {
    fn name(&self) -> &'static str {
        "ordered"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(OrderedService)
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let info = client
            .get_flight_info(FlightDescriptor::new_cmd("ordered"))
            .await
            .call("GetFlightInfo(ordered)")?;
        check(info.ordered, || {
            "the server must return FlightInfo.ordered = true".to_string()
        })?;
        let mut batches = Vec::new();
        for endpoint in &info.endpoint {
            if !endpoint.location.is_empty() {
                let uris: Vec<&str> = endpoint.location.iter().map(|l| l.uri.as_str()).collect();
                return Err(Failure::Check(format!(
                    "expected endpoints without locations (read from this server), got {uris:?}"
                )));
            }
            let ticket = endpoint.ticket.clone().unwrap_or_default();
            batches.extend(read_ticket(&client, ticket).await?);
        }
        let got = concat(&schema(), &batches)?;
        let expected = numbers(vec![1, 2, 3, 10, 20, 30, 100, 200, 300]).arrow("expected data")?;
        check(got == expected, || {
            format!("read data is not the expected data\nexpected: {expected:?}\nactual: {got:?}")
        })
    }
}
