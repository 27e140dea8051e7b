//! `middleware`: headers set by middleware on both sides, on failing calls as well.
//!
//! The server's middleware echoes the request header `x-middleware` back as a response header.
//! GetFlightInfo of the command `success` returns a FlightInfo (endpoint ticket `foo` at
//! `grpc+tcp://localhost:10010`); any other descriptor fails with `UNKNOWN`. The client's
//! middleware sends `x-middleware: expected value` on every call and records what comes back,
//! in the response headers or (for an error with no response) the trailers. A GetFlightInfo of
//! the empty command must fail and still bring the header back; one of `success` must succeed
//! with it.

use super::{Scenario, ServerParts};
use crate::failure::{check, CallContext as _, Failure, Outcome};
use crate::peer::Connector;
use arrow_schema::Schema;
use async_trait::async_trait;
use polyflight::proto::flight_descriptor::DescriptorType;
use polyflight::proto::{FlightDescriptor, FlightEndpoint, FlightInfo};
use polyflight::{
    CallContext, ClientMiddleware, FlightError, FlightMethod, FlightService, Headers, Result,
    ServerMiddleware,
};
use std::sync::{Arc, Mutex};

const HEADER: &str = "x-middleware";
const EXPECTED: &str = "expected value";

/// The scenario.
pub struct Middleware;

/// Echoes the incoming `x-middleware` header (empty when absent) as a response header.
struct EchoHeader;

#[async_trait]
impl ServerMiddleware for EchoHeader {
    async fn call_started(&self, ctx: &CallContext) -> Result<()> {
        let received = ctx.headers().get(HEADER).cloned().unwrap_or_default();
        ctx.append_response_header(HEADER, received);
        Ok(())
    }
}

struct SuccessOnly;

#[async_trait]
impl FlightService for SuccessOnly {
    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        if descriptor.r#type == DescriptorType::Cmd as i32 && descriptor.cmd.as_ref() == b"success"
        {
            let endpoint =
                FlightEndpoint::new("foo").with_location_uri("grpc+tcp://localhost:10010");
            return Ok(FlightInfo::new()
                .with_schema(&Schema::empty())
                .with_descriptor(descriptor)
                .with_endpoint(endpoint));
        }
        Err(FlightError::unknown("Unknown"))
    }
}

/// Sends the header and records the value the server sends back.
#[derive(Clone, Default)]
struct RecordHeader {
    received: Arc<Mutex<Option<String>>>,
}

impl RecordHeader {
    fn record(&self, headers: &Headers) {
        if let Some(value) = headers.get_str(HEADER) {
            if let Ok(mut slot) = self.received.lock() {
                *slot = Some(value.to_string());
            }
        }
    }

    fn take(&self) -> Option<String> {
        self.received.lock().ok().and_then(|mut slot| slot.take())
    }
}

impl ClientMiddleware for RecordHeader {
    fn call_started(&self, _method: FlightMethod, headers: &mut Headers) {
        headers.append(HEADER, EXPECTED);
    }

    fn received_headers(&self, _method: FlightMethod, headers: &Headers) {
        self.record(headers);
    }

    fn call_ended(
        &self,
        _method: FlightMethod,
        _status: &std::result::Result<(), FlightError>,
        trailers: &Headers,
    ) {
        self.record(trailers);
    }
}

#[async_trait]
impl Scenario for Middleware {
    fn name(&self) -> &'static str {
        "middleware"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(SuccessOnly).configure(|b| b.middleware(EchoHeader))
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let recorder = RecordHeader::default();
        let client = connector.connect().await?.with_middleware(recorder.clone());
        if let Ok(info) = client.get_flight_info(FlightDescriptor::new_cmd("")).await {
            return Err(Failure::Check(format!(
                "GetFlightInfo of the empty command must fail, got {info:?}"
            )));
        }
        let received = recorder.take();
        check(received.as_deref() == Some(EXPECTED), || {
            format!("failing call: expected header '{HEADER}: {EXPECTED}', got {received:?}")
        })?;
        client
            .get_flight_info(FlightDescriptor::new_cmd("success"))
            .await
            .call("GetFlightInfo(success)")?;
        let received = recorder.take();
        check(received.as_deref() == Some(EXPECTED), || {
            format!("passing call: expected header '{HEADER}: {EXPECTED}', got {received:?}")
        })
    }
}
