//! The servers of the Flight SQL scenarios: arrow-flight `FlightSqlService`s that check every
//! command the way Arrow C++'s `FlightSqlScenarioServer` and `FlightSqlIngestionServer` do and
//! answer with the schemas and values of [`contract`](super::contract). They are served in a
//! [`SqlFront`](super::front::SqlFront), which fills in what arrow-flight's dispatch leaves out.
//!
//! The servers hold no state: every handle is a fixed string the client must send back, as
//! in Arrow C++. Where Arrow C++ reads an optional field with `.value()` (an absent field would
//! abort it), these answer INVALID_ARGUMENT naming the field.

use super::contract::{self, InfoValue, PLAN};
use super::front::{decode_command, StatementSchemas};
use arrow_array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService as ArrowFlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionCancelQueryRequest, ActionCancelQueryResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionCreatePreparedSubstraitPlanRequest,
    ActionEndSavepointRequest, ActionEndTransactionRequest, Command, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementQuery, CommandStatementSubstraitPlan,
    CommandStatementUpdate, DoPutPreparedStatementResult, EndTransaction, ProstMessageExt,
    SubstraitPlan, TableExistsOption, TableNotExistOption, TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, Ticket,
};
use arrow_schema::{Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use std::collections::HashMap;
use std::fmt::Debug;
use std::pin::Pin;
use tonic::{Request, Response, Status};

/// The DoGet stream of a `FlightSqlService`.
type DataStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// Flight's CancelFlightInfo action, which Flight SQL servers also take.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

// ---- helpers shared by both servers ----------------------------------------------------------

/// INVALID_ARGUMENT unless `actual == expected`, in Arrow C++'s words.
fn expect_eq<T: PartialEq + Debug + ?Sized>(
    expected: &T,
    actual: &T,
    what: &str,
) -> Result<(), Status> {
    if expected == actual {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{what}: expected {expected:?}, got {actual:?}"
        )))
    }
}

/// An optional field that must be present.
fn present<'a, T: ?Sized>(value: Option<&'a T>, field: &str) -> Result<&'a T, Status> {
    value.ok_or_else(|| Status::invalid_argument(format!("{field} is missing")))
}

/// Whether a command carries a transaction (an empty id is none, as in Arrow C++).
fn in_transaction(transaction_id: &Option<Bytes>) -> bool {
    transaction_id.as_ref().is_some_and(|id| !id.is_empty())
}

/// A handle as text.
fn text(handle: &Bytes) -> Result<&str, Status> {
    std::str::from_utf8(handle)
        .map_err(|_| Status::invalid_argument("the handle is not one this server issued"))
}

/// The substrait plan a command carries, checked.
fn check_plan(plan: Option<&SubstraitPlan>, what: &str) -> Result<(), Status> {
    let plan = present(plan, "plan")?;
    expect_eq(contract::SUBSTRAIT_PLAN, plan.plan.as_ref(), what)?;
    expect_eq(contract::SUBSTRAIT_VERSION, plan.version.as_str(), what)
}

/// A FlightInfo of `schema` with one endpoint whose ticket is the descriptor's command, as
/// Arrow C++'s `GetFlightInfoForCommand` makes them (totals unknown, unordered).
fn info_for_command(
    request: Request<FlightDescriptor>,
    schema: &Schema,
) -> Result<Response<FlightInfo>, Status> {
    let descriptor = request.into_inner();
    let ticket = Ticket::new(descriptor.cmd.clone());
    info(descriptor, schema, ticket)
}

/// A FlightInfo of `schema` whose one endpoint's ticket is a TicketStatementQuery of `handle`.
fn info_for_statement(
    request: Request<FlightDescriptor>,
    schema: &Schema,
    handle: String,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = TicketStatementQuery {
        statement_handle: handle.into(),
    };
    let ticket = Ticket::new(ticket.as_any().encode_to_vec());
    info(request.into_inner(), schema, ticket)
}

fn info(
    descriptor: FlightDescriptor,
    schema: &Schema,
    ticket: Ticket,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_descriptor(descriptor)
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket));
    Ok(Response::new(info))
}

/// A DoGet stream of `batches` (the schema message first, also when there are none).
fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> Response<DataStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter(batches.into_iter().map(Ok)))
        .map_err(Status::from);
    Response::new(stream.boxed())
}

/// A result set with no rows.
fn empty(schema: SchemaRef) -> Response<DataStream> {
    stream(schema, Vec::new())
}

/// The SqlInfo rows `requested` asks for (all when it asks for none), in its order; an id
/// without a value is NOT_FOUND, as in Arrow C++.
fn sql_info_stream(
    values: &[(u32, InfoValue)],
    requested: &[u32],
) -> Result<Response<DataStream>, Status> {
    let rows = if requested.is_empty() {
        values.to_vec()
    } else {
        requested
            .iter()
            .map(|id| {
                values
                    .iter()
                    .find(|(known, _)| known == id)
                    .cloned()
                    .ok_or_else(|| {
                        Status::not_found(format!("No information for SQL info number {id}"))
                    })
            })
            .collect::<Result<Vec<_>, Status>>()?
    };
    let batch = contract::sql_info_batch(&rows).map_err(|e| Status::internal(e.to_string()))?;
    Ok(stream(batch.schema(), vec![batch]))
}

/// Reads an upload to its end: its schema (`None` if it sent none) and its batches.
async fn read_upload(
    request: Request<PeekableFlightDataStream>,
) -> Result<(Option<SchemaRef>, Vec<RecordBatch>), Status> {
    let data = request
        .into_inner()
        .map_err(arrow_flight::error::FlightError::from);
    let mut batches = FlightRecordBatchStream::new_from_flight_data(data);
    let mut read = Vec::new();
    while let Some(batch) = batches.try_next().await? {
        read.push(batch);
    }
    Ok((batches.schema().cloned(), read))
}

/// `schema` without field or schema metadata: what Arrow C++'s `Schema::operator==` compares.
fn plain(schema: &Schema) -> Schema {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_metadata(HashMap::new()))
        .collect();
    Schema::new(fields)
}

// ---- flight_sql and flight_sql:extension ---------------------------------------------------

/// The server of `flight_sql` and `flight_sql:extension`: Arrow C++'s
/// `FlightSqlScenarioServer`. Metadata commands answer empty results of their schemas once
/// their fields check out; statements and Substrait plans answer [`contract::query_schema`]
/// (or [`contract::transaction_query_schema`] in a transaction) with the handles of
/// [`contract::handle`]; updates answer the row counts of the contract; transactions and
/// savepoints have the contract's fixed ids.
///
/// One difference: Arrow C++ describes CommandGetCrossReference's FlightInfo with the
/// table-types schema (its DoGet has the right one); this server uses the cross-reference
/// schema in both. No client reads the FlightInfo's schema.
pub struct ScenarioSqlService;

impl ScenarioSqlService {
    /// The schema of the result of the statement with this handle, one of those `statements`
    /// (with and without a transaction) have.
    fn schema_of_handle(
        handle: &str,
        statements: [&str; 2],
        what: &str,
    ) -> Result<SchemaRef, Status> {
        if statements
            .iter()
            .any(|s| handle == contract::handle(s, false))
        {
            Ok(contract::query_schema())
        } else if statements
            .iter()
            .any(|s| handle == contract::handle(s, true))
        {
            Ok(contract::transaction_query_schema())
        } else {
            Err(Status::invalid_argument(format!(
                "{what}: unknown handle {handle:?}"
            )))
        }
    }

    /// The schema of a statement's result by the handle of its TicketStatementQuery.
    fn statement_schema_of(handle: &Bytes, what: &str) -> Result<SchemaRef, Status> {
        Self::schema_of_handle(text(handle)?, [contract::SELECT_STATEMENT, PLAN], what)
    }

    /// The schema of a prepared statement's result by its handle.
    fn prepared_schema_of(handle: &Bytes, what: &str) -> Result<SchemaRef, Status> {
        Self::schema_of_handle(
            text(handle)?,
            [contract::SELECT_PREPARED_STATEMENT, PLAN],
            what,
        )
    }

    fn query_schema(in_transaction: bool) -> SchemaRef {
        if in_transaction {
            contract::transaction_query_schema()
        } else {
            contract::query_schema()
        }
    }

    fn check_statement(query: &CommandStatementQuery, what: &str) -> Result<(), Status> {
        expect_eq(contract::SELECT_STATEMENT, query.query.as_str(), what)
    }

    /// Checks the table reference of the key commands.
    fn check_table(
        catalog: Option<&String>,
        db_schema: Option<&String>,
        table: &str,
        prefix: &str,
    ) -> Result<(), Status> {
        let catalog = present(catalog, &format!("{prefix}catalog"))?;
        expect_eq(
            format!("{prefix}catalog").as_str(),
            catalog.as_str(),
            &format!("wrong {prefix}catalog"),
        )?;
        let db_schema = present(db_schema, &format!("{prefix}db_schema"))?;
        expect_eq(
            format!("{prefix}db_schema").as_str(),
            db_schema.as_str(),
            &format!("wrong {prefix}db_schema"),
        )?;
        expect_eq(
            format!("{prefix}table").as_str(),
            table,
            &format!("wrong {prefix}table"),
        )
    }

    /// The update row count of a statement or plan.
    fn update_rows(in_transaction: bool) -> i64 {
        if in_transaction {
            contract::UPDATE_ROWS_IN_TRANSACTION
        } else {
            contract::UPDATE_ROWS
        }
    }

    /// Checks a CancelQuery or CancelFlightInfo: one endpoint, whose ticket is the Substrait
    /// plan's statement.
    fn check_cancel(info: &FlightInfo) -> Result<(), Status> {
        expect_eq(
            &1,
            &info.endpoint.len(),
            "expected 1 endpoint for CancelFlightInfo",
        )?;
        let ticket = info.endpoint[0]
            .ticket
            .as_ref()
            .map(|t| t.ticket.clone())
            .unwrap_or_default();
        let handle = match decode_command(&ticket)? {
            Command::TicketStatementQuery(ticket) => ticket.statement_handle,
            other => {
                return Err(Status::invalid_argument(format!(
                    "the ticket to cancel is a {}, not a TicketStatementQuery",
                    other.type_url()
                )))
            }
        };
        expect_eq(
            contract::handle(PLAN, false).as_bytes(),
            handle.as_ref(),
            "unexpected ticket in CancelFlightInfo",
        )
    }
}

impl StatementSchemas for ScenarioSqlService {
    fn statement_schema(&self, command: Command) -> Result<SchemaRef, Status> {
        match command {
            Command::CommandStatementQuery(query) => {
                Self::check_statement(&query, "unexpected statement in GetSchemaStatement")?;
                Ok(Self::query_schema(in_transaction(&query.transaction_id)))
            }
            Command::CommandStatementSubstraitPlan(plan) => {
                check_plan(
                    plan.plan.as_ref(),
                    "unexpected plan in GetSchemaSubstraitPlan",
                )?;
                Ok(Self::query_schema(in_transaction(&plan.transaction_id)))
            }
            Command::CommandPreparedStatementQuery(prepared) => Self::prepared_schema_of(
                &prepared.prepared_statement_handle,
                "GetSchemaPreparedStatement",
            ),
            other => Err(Status::unimplemented(format!(
                "GetSchema of {}",
                other.type_url()
            ))),
        }
    }
}

#[async_trait]
impl FlightSqlService for ScenarioSqlService {
    type FlightService = ScenarioSqlService;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Self::check_statement(&query, "unexpected statement in GetFlightInfoStatement")?;
        let transaction = in_transaction(&query.transaction_id);
        let handle = contract::handle(contract::SELECT_STATEMENT, transaction);
        info_for_statement(request, &Self::query_schema(transaction), handle)
    }

    async fn get_flight_info_substrait_plan(
        &self,
        query: CommandStatementSubstraitPlan,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        check_plan(
            query.plan.as_ref(),
            "unexpected plan in GetFlightInfoSubstraitPlan",
        )?;
        let transaction = in_transaction(&query.transaction_id);
        let handle = contract::handle(PLAN, transaction);
        info_for_statement(request, &Self::query_schema(transaction), handle)
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = Self::prepared_schema_of(
            &query.prepared_statement_handle,
            "GetFlightInfoPreparedStatement",
        )?;
        info_for_command(request, &schema)
    }

    async fn get_flight_info_catalogs(
        &self,
        _query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for_command(request, &contract::catalogs_schema())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let catalog = present(query.catalog.as_ref(), "catalog")?;
        expect_eq("catalog", catalog.as_str(), "wrong catalog")?;
        let pattern = present(
            query.db_schema_filter_pattern.as_ref(),
            "db_schema_filter_pattern",
        )?;
        expect_eq(
            "db_schema_filter_pattern",
            pattern.as_str(),
            "wrong db_schema_filter_pattern",
        )?;
        info_for_command(request, &contract::db_schemas_schema())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let catalog = present(query.catalog.as_ref(), "catalog")?;
        expect_eq("catalog", catalog.as_str(), "wrong catalog")?;
        let pattern = present(
            query.db_schema_filter_pattern.as_ref(),
            "db_schema_filter_pattern",
        )?;
        expect_eq(
            "db_schema_filter_pattern",
            pattern.as_str(),
            "wrong db_schema_filter_pattern",
        )?;
        let tables = present(
            query.table_name_filter_pattern.as_ref(),
            "table_name_filter_pattern",
        )?;
        expect_eq(
            "table_filter_pattern",
            tables.as_str(),
            "wrong table_name_filter_pattern",
        )?;
        expect_eq(
            &["table", "view"][..],
            &query
                .table_types
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()[..],
            "wrong table_types",
        )?;
        expect_eq(
            &true,
            &query.include_schema,
            "include_schema should be true",
        )?;
        info_for_command(request, &contract::tables_schema_with_schema())
    }

    async fn get_flight_info_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for_command(request, &contract::table_types_schema())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        if query.info.len() == 2 {
            // The protocol check of flight_sql: the two ids it sends, in order.
            use arrow_flight::sql::SqlInfo;
            let expected = [
                SqlInfo::FlightSqlServerName as u32,
                SqlInfo::FlightSqlServerReadOnly as u32,
            ];
            expect_eq(&expected[..], &query.info[..], "unexpected SqlInfo passed")?;
        }
        info_for_command(request, &contract::sql_info_schema())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Self::check_table(
            query.catalog.as_ref(),
            query.db_schema.as_ref(),
            &query.table,
            "",
        )?;
        info_for_command(request, &contract::primary_keys_schema())
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Self::check_table(
            query.catalog.as_ref(),
            query.db_schema.as_ref(),
            &query.table,
            "",
        )?;
        info_for_command(request, &contract::foreign_keys_schema())
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Self::check_table(
            query.catalog.as_ref(),
            query.db_schema.as_ref(),
            &query.table,
            "",
        )?;
        info_for_command(request, &contract::foreign_keys_schema())
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Self::check_table(
            query.pk_catalog.as_ref(),
            query.pk_db_schema.as_ref(),
            &query.pk_table,
            "pk_",
        )?;
        Self::check_table(
            query.fk_catalog.as_ref(),
            query.fk_db_schema.as_ref(),
            &query.fk_table,
            "fk_",
        )?;
        info_for_command(request, &contract::foreign_keys_schema())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        _query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for_command(request, &contract::xdbc_type_info_schema())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        let schema = Self::statement_schema_of(&ticket.statement_handle, "DoGetStatement")?;
        Ok(empty(schema))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        let schema =
            Self::prepared_schema_of(&query.prepared_statement_handle, "DoGetPreparedStatement")?;
        Ok(empty(schema))
    }

    async fn do_get_catalogs(
        &self,
        _query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        Ok(empty(contract::catalogs_schema()))
    }

    async fn do_get_schemas(
        &self,
        _query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        Ok(empty(contract::db_schemas_schema()))
    }

    async fn do_get_tables(
        &self,
        _query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        Ok(empty(contract::tables_schema_with_schema()))
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        Ok(empty(contract::table_types_schema()))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        if query.info.len() == 2 {
            return Ok(empty(contract::sql_info_schema()));
        }
        sql_info_stream(&contract::extension_sql_info(), &query.info)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        Ok(empty(contract::primary_keys_schema()))
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        Ok(empty(contract::foreign_keys_schema()))
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        Ok(empty(contract::foreign_keys_schema()))
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        Ok(empty(contract::foreign_keys_schema()))
    }

    async fn do_get_xdbc_type_info(
        &self,
        _query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        Ok(empty(contract::xdbc_type_info_schema()))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        expect_eq(
            contract::UPDATE_STATEMENT,
            command.query.as_str(),
            "wrong query for DoPutCommandStatementUpdate",
        )?;
        Ok(Self::update_rows(in_transaction(&command.transaction_id)))
    }

    async fn do_put_substrait_plan(
        &self,
        command: CommandStatementSubstraitPlan,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        check_plan(
            command.plan.as_ref(),
            "wrong plan for DoPutCommandSubstraitPlan",
        )?;
        Ok(Self::update_rows(in_transaction(&command.transaction_id)))
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let handle = text(&query.prepared_statement_handle)?;
        let select = contract::SELECT_PREPARED_STATEMENT;
        let known = [select, PLAN]
            .iter()
            .any(|s| handle == contract::handle(s, false) || handle == contract::handle(s, true));
        if !known {
            return Err(Status::invalid_argument(format!(
                "invalid handle for DoPutPreparedStatementQuery: {handle:?}"
            )));
        }
        let (schema, _) = read_upload(request).await?;
        let schema = schema.ok_or_else(|| {
            Status::invalid_argument("the parameters of DoPutPreparedStatementQuery have no schema")
        })?;
        expect_eq(
            &plain(&contract::query_schema()),
            &plain(&schema),
            "wrong schema for DoPutPreparedStatementQuery",
        )?;
        // The handle stays as it is.
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: None,
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let handle = text(&query.prepared_statement_handle)?;
        let update = contract::UPDATE_PREPARED_STATEMENT;
        if [update, PLAN]
            .iter()
            .any(|s| handle == contract::handle(s, false))
        {
            Ok(contract::PREPARED_UPDATE_ROWS)
        } else if [update, PLAN]
            .iter()
            .any(|s| handle == contract::handle(s, true))
        {
            Ok(contract::PREPARED_UPDATE_ROWS_IN_TRANSACTION)
        } else {
            Err(Status::invalid_argument(format!(
                "invalid handle for DoPutPreparedStatementUpdate: {handle:?}"
            )))
        }
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        if query.query != contract::SELECT_PREPARED_STATEMENT
            && query.query != contract::UPDATE_PREPARED_STATEMENT
        {
            return Err(Status::invalid_argument(format!(
                "unexpected query: {:?}",
                query.query
            )));
        }
        let handle = contract::handle(&query.query, in_transaction(&query.transaction_id));
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            ..Default::default()
        })
    }

    async fn do_action_create_prepared_substrait_plan(
        &self,
        query: ActionCreatePreparedSubstraitPlanRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        check_plan(
            query.plan.as_ref(),
            "wrong plan for CreatePreparedSubstraitPlan",
        )?;
        let handle = contract::handle(PLAN, in_transaction(&query.transaction_id));
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            ..Default::default()
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        let handle = text(&query.prepared_statement_handle)?;
        let statements = [
            contract::SELECT_PREPARED_STATEMENT,
            contract::UPDATE_PREPARED_STATEMENT,
            PLAN,
        ];
        let known = statements
            .iter()
            .any(|s| handle == contract::handle(s, false) || handle == contract::handle(s, true));
        if known {
            Ok(())
        } else {
            Err(Status::invalid_argument(format!(
                "invalid handle for ClosePreparedStatement: {handle:?}"
            )))
        }
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        Ok(ActionBeginTransactionResult {
            transaction_id: Bytes::from_static(contract::TRANSACTION_ID),
        })
    }

    async fn do_action_end_transaction(
        &self,
        query: ActionEndTransactionRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        let commit = EndTransaction::Commit as i32;
        let rollback = EndTransaction::Rollback as i32;
        if query.action != commit && query.action != rollback {
            return Err(Status::invalid_argument(format!(
                "unknown EndTransaction action {}",
                query.action
            )));
        }
        expect_eq(
            contract::TRANSACTION_ID,
            query.transaction_id.as_ref(),
            "unexpected transaction ID in EndTransaction",
        )
    }

    async fn do_action_begin_savepoint(
        &self,
        query: ActionBeginSavepointRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginSavepointResult, Status> {
        expect_eq(
            contract::SAVEPOINT_NAME,
            query.name.as_str(),
            "unexpected savepoint name in BeginSavepoint",
        )?;
        expect_eq(
            contract::TRANSACTION_ID,
            query.transaction_id.as_ref(),
            "unexpected transaction ID in BeginSavepoint",
        )?;
        Ok(ActionBeginSavepointResult {
            savepoint_id: Bytes::from_static(contract::SAVEPOINT_ID),
        })
    }

    async fn do_action_end_savepoint(
        &self,
        query: ActionEndSavepointRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        if query.action != contract::END_SAVEPOINT_RELEASE
            && query.action != contract::END_SAVEPOINT_ROLLBACK
        {
            return Err(Status::invalid_argument(format!(
                "unknown EndSavepoint action {}",
                query.action
            )));
        }
        expect_eq(
            contract::SAVEPOINT_ID,
            query.savepoint_id.as_ref(),
            "unexpected savepoint ID in EndSavepoint",
        )
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        _request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("CancelQuery: bad FlightInfo: {e}")))?;
        Self::check_cancel(&info)?;
        // CancelResult numbers its values as CancelStatus does (Arrow C++ casts one to the other).
        Ok(ActionCancelQueryResult {
            result: CancelStatus::Cancelled as i32,
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as ArrowFlightService>::DoActionStream>, Status> {
        let action = request.into_inner();
        if action.r#type != CANCEL_FLIGHT_INFO {
            return Err(Status::invalid_argument(format!(
                "action not implemented: {:?}",
                action.r#type
            )));
        }
        let cancel = CancelFlightInfoRequest::decode(action.body)
            .map_err(|e| Status::invalid_argument(format!("CancelFlightInfo: {e}")))?;
        Self::check_cancel(present(cancel.info.as_ref(), "info")?)?;
        let result = CancelFlightInfoResult {
            status: CancelStatus::Cancelled as i32,
        };
        let body = arrow_flight::Result {
            body: result.encode_to_vec().into(),
        };
        Ok(Response::new(futures::stream::iter([Ok(body)]).boxed()))
    }
}

// ---- flight_sql:ingestion ------------------------------------------------------------------

/// The server of `flight_sql:ingestion`: Arrow C++'s `FlightSqlIngestionServer`. It takes
/// CommandStatementIngest whose every field is the contract's, reads the upload (every batch
/// of [`contract::ingest_schema`]) and answers the number of rows it read; its SqlInfo says it
/// ingests, in transactions too.
pub struct IngestionSqlService;

impl StatementSchemas for IngestionSqlService {}

#[async_trait]
impl FlightSqlService for IngestionSqlService {
    type FlightService = IngestionSqlService;

    async fn get_flight_info_sql_info(
        &self,
        _query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for_command(request, &contract::sql_info_schema())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DataStream>, Status> {
        sql_info_stream(&contract::ingestion_sql_info(), &query.info)
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let options = present(
            command.table_definition_options.as_ref(),
            "table_definition_options",
        )?;
        expect_eq(
            &(TableNotExistOption::Create as i32),
            &options.if_not_exist,
            "wrong TableDefinitionOptionsTableNotExistOption for ExecuteIngest",
        )?;
        expect_eq(
            &(TableExistsOption::Replace as i32),
            &options.if_exists,
            "wrong TableDefinitionOptionsTableExistsOption for ExecuteIngest",
        )?;
        expect_eq(
            contract::INGEST_TABLE,
            command.table.as_str(),
            "wrong table for ExecuteIngest",
        )?;
        let schema = present(command.schema.as_ref(), "schema")?;
        expect_eq(
            contract::INGEST_SCHEMA,
            schema.as_str(),
            "wrong schema for ExecuteIngest",
        )?;
        let catalog = present(command.catalog.as_ref(), "catalog")?;
        expect_eq(
            contract::INGEST_CATALOG,
            catalog.as_str(),
            "wrong catalog for ExecuteIngest",
        )?;
        expect_eq(
            &true,
            &command.temporary,
            "wrong temporary setting for ExecuteIngest",
        )?;
        let transaction = present(command.transaction_id.as_ref(), "transaction_id")?;
        expect_eq(
            contract::INGEST_TRANSACTION_ID,
            transaction.as_ref(),
            "wrong transaction_id for ExecuteIngest",
        )?;
        expect_eq(
            &contract::ingest_options(),
            &command.options,
            "wrong options for ExecuteIngest",
        )?;
        let (_, batches) = read_upload(request).await?;
        let expected = plain(&contract::ingest_schema());
        let mut rows = 0;
        for batch in &batches {
            expect_eq(
                &expected,
                &plain(&batch.schema()),
                "chunk schema does not match expected schema for ExecuteIngest",
            )?;
            rows += batch.num_rows();
        }
        i64::try_from(rows).map_err(|_| Status::internal("too many rows"))
    }
}
