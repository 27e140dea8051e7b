//! `FlightService`: the trait an application implements, once, to serve Flight over every
//! transport. Every RPC defaults to `UNIMPLEMENTED`, so a service writes only what it offers.
//!
//! Handlers get a [`CallContext`] (peer, headers, deadline, cancellation, identity, response
//! headers) and return messages or streams. Streams are `'static`: move a clone of the context or
//! of your state into them. Record-batch level helpers live in [`crate::codec`]:
//! `FlightDataEncoderBuilder` turns batches into a DoGet stream and `FlightRecordBatchStream`
//! reads a DoPut stream as batches.
//!
//! ```
//! use polyflight_core::{CallContext, FlightService, Result, FlightError};
//! use polyflight_core::proto::{FlightDescriptor, FlightInfo};
//!
//! struct Hello;
//!
//! #[polyflight_core::async_trait]
//! impl FlightService for Hello {
//!     async fn get_flight_info(&self, _ctx: CallContext, d: FlightDescriptor) -> Result<FlightInfo> {
//!         Err(FlightError::not_found(format!("no flight {:?}", d.path)))
//!     }
//! }
//! ```

use crate::call::FlightStream;
use crate::context::CallContext;
use crate::data::FlightData;
use crate::error::{FlightError, Result};
use crate::proto::{
    Action, ActionType, Criteria, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use async_trait::async_trait;

fn unimplemented<T>(method: &str) -> Result<T> {
    Err(FlightError::unimplemented(format!(
        "{method} is not implemented by this server"
    )))
}

/// A Flight service, written once and served over any transport.
#[async_trait]
pub trait FlightService: Send + Sync + 'static {
    /// `Handshake`: exchange any number of messages, e.g. to authenticate.
    async fn handshake(
        &self,
        ctx: CallContext,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<FlightStream<HandshakeResponse>> {
        let _ = (ctx, requests);
        unimplemented("Handshake")
    }

    /// `ListFlights`: the flights matching `criteria`.
    async fn list_flights(
        &self,
        ctx: CallContext,
        criteria: Criteria,
    ) -> Result<FlightStream<FlightInfo>> {
        let _ = (ctx, criteria);
        unimplemented("ListFlights")
    }

    /// `GetFlightInfo`: how to fetch the flight a descriptor names.
    async fn get_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        let _ = (ctx, descriptor);
        unimplemented("GetFlightInfo")
    }

    /// `PollFlightInfo`: progress of a long-running query.
    async fn poll_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<PollInfo> {
        let _ = (ctx, descriptor);
        unimplemented("PollFlightInfo")
    }

    /// `GetSchema`: the schema of the flight a descriptor names.
    async fn get_schema(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<SchemaResult> {
        let _ = (ctx, descriptor);
        unimplemented("GetSchema")
    }

    /// `DoGet`: the data for a ticket — a Schema message, then dictionaries and record batches.
    async fn do_get(&self, ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        let _ = (ctx, ticket);
        unimplemented("DoGet")
    }

    /// `DoPut`: receive an uploaded stream (the first message carries the descriptor) and answer
    /// with PutResults, which should be streamed as they are produced (clients may wait for them).
    async fn do_put(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        let _ = (ctx, data);
        unimplemented("DoPut")
    }

    /// `DoExchange`: FlightData in both directions.
    async fn do_exchange(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<FlightData>> {
        let _ = (ctx, data);
        unimplemented("DoExchange")
    }

    /// `DoAction`: run an action. The standard actions (CancelFlightInfo, RenewFlightEndpoint,
    /// session options) arrive here too; [`crate::actions`] decodes and encodes their messages.
    async fn do_action(
        &self,
        ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        let _ = ctx;
        unimplemented(&format!("DoAction {:?}", action.r#type))
    }

    /// `ListActions`: the actions this server offers.
    async fn list_actions(&self, ctx: CallContext) -> Result<FlightStream<ActionType>> {
        let _ = ctx;
        unimplemented("ListActions")
    }
}

#[async_trait]
impl<S: FlightService + ?Sized> FlightService for std::sync::Arc<S> {
    async fn handshake(
        &self,
        ctx: CallContext,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<FlightStream<HandshakeResponse>> {
        (**self).handshake(ctx, requests).await
    }
    async fn list_flights(
        &self,
        ctx: CallContext,
        criteria: Criteria,
    ) -> Result<FlightStream<FlightInfo>> {
        (**self).list_flights(ctx, criteria).await
    }
    async fn get_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        (**self).get_flight_info(ctx, descriptor).await
    }
    async fn poll_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<PollInfo> {
        (**self).poll_flight_info(ctx, descriptor).await
    }
    async fn get_schema(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<SchemaResult> {
        (**self).get_schema(ctx, descriptor).await
    }
    async fn do_get(&self, ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        (**self).do_get(ctx, ticket).await
    }
    async fn do_put(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        (**self).do_put(ctx, data).await
    }
    async fn do_exchange(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<FlightData>> {
        (**self).do_exchange(ctx, data).await
    }
    async fn do_action(
        &self,
        ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        (**self).do_action(ctx, action).await
    }
    async fn list_actions(&self, ctx: CallContext) -> Result<FlightStream<ActionType>> {
        (**self).list_actions(ctx).await
    }
}
