//! [`SqlFront`]: a `FlightSqlService` served by polyflight through
//! `polyflight_tonic::ArrowFlightAdapter`, with the two calls answered here that arrow-flight
//! 60's `FlightSqlService` dispatch leaves out and Arrow C++'s `FlightSqlServerBase` does:
//!
//! - GetSchema: its `FlightService::get_schema` answers UNIMPLEMENTED for every command, and
//!   the trait has no hook for it. The front answers GetSchema itself: the metadata commands
//!   with the schemas Flight SQL fixes for them, the statement commands through the service's
//!   [`StatementSchemas`].
//! - CreatePreparedSubstraitPlan: its dispatch calls the service and then drops the result,
//!   returning no result at all. The front calls the service's
//!   `do_action_create_prepared_substrait_plan` itself and sends the result, packed in an `Any`
//!   as for CreatePreparedStatement.
//!
//! Everything else goes through the adapter unchanged.

use super::contract;
use crate::scenarios::action_results;
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{ActionCreatePreparedSubstraitPlanRequest, Any, Command, ProstMessageExt};
use arrow_flight::Action;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use polyflight::proto::{
    Action as PfAction, ActionType, Criteria, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use polyflight::{CallContext, FlightData, FlightError, FlightService, FlightStream};
use polyflight_tonic::ArrowFlightAdapter;
use prost::Message;
use std::sync::Arc;
use tonic::{Request, Status};

/// The action arrow-flight's dispatch answers without its result.
const CREATE_PREPARED_SUBSTRAIT_PLAN: &str = "CreatePreparedSubstraitPlan";

/// The schemas GetSchema returns for a service's statement commands (CommandStatementQuery,
/// CommandStatementSubstraitPlan, CommandPreparedStatementQuery); the metadata commands' are
/// Flight SQL's own and answered by [`SqlFront`].
pub trait StatementSchemas {
    /// The schema of `command`'s result.
    fn statement_schema(&self, command: Command) -> Result<SchemaRef, Status> {
        Err(Status::unimplemented(format!(
            "GetSchema of {}",
            command.type_url()
        )))
    }
}

/// A `FlightSqlService` as a polyflight service: GetSchema and CreatePreparedSubstraitPlan
/// answered here (see the module documentation), the rest by `ArrowFlightAdapter`.
pub struct SqlFront<S> {
    service: Arc<S>,
    adapter: ArrowFlightAdapter<S>,
}

impl<S: FlightSqlService> SqlFront<S> {
    /// Serves `service`.
    pub fn new(service: S) -> SqlFront<S> {
        let service = Arc::new(service);
        SqlFront {
            adapter: ArrowFlightAdapter::from_arc(service.clone()),
            service,
        }
    }
}

/// The Flight SQL command a descriptor's or ticket's bytes carry.
pub fn decode_command(bytes: &Bytes) -> Result<Command, Status> {
    let any = Any::decode(bytes.clone())
        .map_err(|e| Status::invalid_argument(format!("not a Flight SQL command: {e}")))?;
    Command::try_from(any)
        .map_err(|e| Status::invalid_argument(format!("not a Flight SQL command: {e}")))
}

/// The schema Flight SQL fixes for a metadata command, `None` for any other command.
fn metadata_schema(command: &Command) -> Option<SchemaRef> {
    Some(match command {
        Command::CommandGetCatalogs(_) => contract::catalogs_schema(),
        Command::CommandGetDbSchemas(_) => contract::db_schemas_schema(),
        Command::CommandGetTables(tables) if tables.include_schema => {
            contract::tables_schema_with_schema()
        }
        Command::CommandGetTables(_) => contract::tables_schema(),
        Command::CommandGetTableTypes(_) => contract::table_types_schema(),
        Command::CommandGetPrimaryKeys(_) => contract::primary_keys_schema(),
        Command::CommandGetExportedKeys(_)
        | Command::CommandGetImportedKeys(_)
        | Command::CommandGetCrossReference(_) => contract::foreign_keys_schema(),
        Command::CommandGetXdbcTypeInfo(_) => contract::xdbc_type_info_schema(),
        Command::CommandGetSqlInfo(_) => contract::sql_info_schema(),
        _ => return None,
    })
}

impl<S: FlightSqlService + StatementSchemas> SqlFront<S> {
    async fn create_prepared_substrait_plan(&self, action: PfAction) -> Result<Bytes, Status> {
        let any = Any::decode(action.body.clone()).map_err(|e| {
            Status::invalid_argument(format!("{CREATE_PREPARED_SUBSTRAIT_PLAN}: {e}"))
        })?;
        let request: ActionCreatePreparedSubstraitPlanRequest =
            any.unpack().ok().flatten().ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{CREATE_PREPARED_SUBSTRAIT_PLAN}: the body is not an \
                     ActionCreatePreparedSubstraitPlanRequest"
                ))
            })?;
        let result = self
            .service
            .do_action_create_prepared_substrait_plan(request, Request::new(Action::from(action)))
            .await?;
        Ok(result.as_any().encode_to_vec().into())
    }
}

#[async_trait]
impl<S: FlightSqlService + StatementSchemas> FlightService for SqlFront<S> {
    async fn handshake(
        &self,
        ctx: CallContext,
        requests: FlightStream<HandshakeRequest>,
    ) -> polyflight::Result<FlightStream<HandshakeResponse>> {
        self.adapter.handshake(ctx, requests).await
    }

    async fn list_flights(
        &self,
        ctx: CallContext,
        criteria: Criteria,
    ) -> polyflight::Result<FlightStream<FlightInfo>> {
        self.adapter.list_flights(ctx, criteria).await
    }

    async fn get_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> polyflight::Result<FlightInfo> {
        self.adapter.get_flight_info(ctx, descriptor).await
    }

    async fn poll_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> polyflight::Result<PollInfo> {
        self.adapter.poll_flight_info(ctx, descriptor).await
    }

    async fn get_schema(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> polyflight::Result<SchemaResult> {
        let command = decode_command(&descriptor.cmd)?;
        let schema = match metadata_schema(&command) {
            Some(schema) => schema,
            None => self.service.statement_schema(command)?,
        };
        Ok(SchemaResult::from_schema(&schema))
    }

    async fn do_get(
        &self,
        ctx: CallContext,
        ticket: Ticket,
    ) -> polyflight::Result<FlightStream<FlightData>> {
        self.adapter.do_get(ctx, ticket).await
    }

    async fn do_put(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> polyflight::Result<FlightStream<PutResult>> {
        self.adapter.do_put(ctx, data).await
    }

    async fn do_exchange(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> polyflight::Result<FlightStream<FlightData>> {
        self.adapter.do_exchange(ctx, data).await
    }

    async fn do_action(
        &self,
        ctx: CallContext,
        action: PfAction,
    ) -> polyflight::Result<FlightStream<ActionResult>> {
        if action.r#type == CREATE_PREPARED_SUBSTRAIT_PLAN {
            let body = self
                .create_prepared_substrait_plan(action)
                .await
                .map_err(FlightError::from)?;
            return Ok(action_results(vec![body]));
        }
        self.adapter.do_action(ctx, action).await
    }

    async fn list_actions(&self, ctx: CallContext) -> polyflight::Result<FlightStream<ActionType>> {
        self.adapter.list_actions(ctx).await
    }
}
