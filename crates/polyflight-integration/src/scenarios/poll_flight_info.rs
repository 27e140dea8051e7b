//! `poll_flight_info`: PollFlightInfo of a long-running query. A first poll (any descriptor but
//! the command `poll`) answers progress 0.1, a descriptor to poll again (`poll`) and an
//! expiration time; polling `poll` answers the finished query: progress 1.0, no descriptor, no
//! expiration. The client checks both answers.

use super::{timestamp_in, Scenario, ServerParts};
use crate::failure::{check, CallContext as _, Failure, Outcome};
use crate::peer::Connector;
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use polyflight::proto::{FlightDescriptor, FlightEndpoint, FlightInfo, PollInfo};
use polyflight::{CallContext, FlightService, Result};
use std::time::Duration;

/// The scenario.
pub struct PollFlightInfo;

struct LongQuery;

#[async_trait]
impl FlightService for LongQuery {
    async fn poll_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<PollInfo> {
        let schema = Schema::new(vec![Field::new("number", DataType::UInt32, false)]);
        let finished = descriptor == FlightDescriptor::new_cmd("poll");
        let info = FlightInfo::new()
            .with_schema(&schema)
            .with_descriptor(descriptor)
            .with_endpoint(FlightEndpoint::new("long-running query"));
        Ok(if finished {
            PollInfo::finished(info)
        } else {
            PollInfo {
                info: Some(info),
                flight_descriptor: Some(FlightDescriptor::new_cmd("poll")),
                progress: Some(0.1),
                expiration_time: Some(timestamp_in(Duration::from_secs(10))),
            }
        })
    }
}

#[async_trait]
impl Scenario for PollFlightInfo {
    fn name(&self) -> &'static str {
        "poll_flight_info"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(LongQuery)
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let first = client
            .poll_flight_info(FlightDescriptor::new_cmd("heavy query"))
            .await
            .call("PollFlightInfo(heavy query)")?;
        let descriptor = first
            .flight_descriptor
            .clone()
            .ok_or_else(|| Failure::Check(format!("descriptor is missing: {first:?}")))?;
        let progress = first
            .progress
            .ok_or_else(|| Failure::Check(format!("progress is missing: {first:?}")))?;
        check((0.0..=1.0).contains(&progress), || {
            format!("invalid progress: {first:?}")
        })?;
        check(first.expiration_time.is_some(), || {
            format!("expiration time is missing: {first:?}")
        })?;
        let done = client
            .poll_flight_info(descriptor)
            .await
            .call("PollFlightInfo(poll)")?;
        check(done.flight_descriptor.is_none(), || {
            format!("polled again but not finished yet: {done:?}")
        })?;
        let progress = done.progress.ok_or_else(|| {
            Failure::Check(format!("progress is missing in finished query: {done:?}"))
        })?;
        check((progress - 1.0).abs() <= 1e-5, || {
            format!("progress for finished query isn't 1.0: {done:?}")
        })?;
        check(done.expiration_time.is_none(), || {
            format!("expiration time must not be set for finished query: {done:?}")
        })
    }
}
