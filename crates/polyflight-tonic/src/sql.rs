//! Flight SQL over any polyflight transport.
//!
//! arrow-flight's `FlightSqlServiceClient` runs over a tonic channel only; [`FlightSqlClient`]
//! speaks the same protocol through a polyflight [`FlightClient`], so a Flight SQL server is
//! reachable over `grpc`, `grpc+tls`, `grpc+unix` and `ucx` alike. The commands are arrow-flight's
//! own prost messages, packed the way its client packs them: a `google.protobuf.Any` of the
//! command, encoded as the `cmd` of a CMD [`FlightDescriptor`] (queries and metadata), as the
//! descriptor of a DoPut's first message (updates), or as the body of an [`Action`] (prepared
//! statements).
//!
//! Errors the server returns reach the caller as the [`FlightError`] the transport reported, code
//! and message intact; a reply the client cannot decode is `INTERNAL`.
//!
//! ```no_run
//! # async fn demo(client: polyflight_core::FlightClient) -> polyflight_core::Result<()> {
//! use polyflight_tonic::sql::FlightSqlClient;
//!
//! let sql = FlightSqlClient::new(client);
//! let info = sql.execute("SELECT id, city FROM trips LIMIT 10", None).await?;
//! let batches = sql.read_all(&info).await?;
//! # Ok(()) }
//! ```

use arrow_array::RecordBatch;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate,
    DoPutUpdateResult, ProstMessageExt, SqlInfo,
};
use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use polyflight_core::codec::{decode_schema, FlightRecordBatchStream};
use polyflight_core::proto::{Action, FlightDescriptor, FlightInfo, Ticket};
use polyflight_core::{FlightClient, FlightData, FlightError, Result};
use prost::Message;
use std::sync::Arc;

/// The action type that creates a prepared statement (Flight SQL's `CreatePreparedStatement`).
pub const CREATE_PREPARED_STATEMENT: &str = "CreatePreparedStatement";
/// The action type that closes a prepared statement (Flight SQL's `ClosePreparedStatement`).
pub const CLOSE_PREPARED_STATEMENT: &str = "ClosePreparedStatement";

/// The descriptor that asks for the result of a Flight SQL command: a CMD descriptor whose
/// `cmd` is the command packed in an `Any`.
pub fn command_descriptor<C: ProstMessageExt>(command: &C) -> FlightDescriptor {
    FlightDescriptor::new_cmd(command.as_any().encode_to_vec())
}

/// The DoAction request of a Flight SQL action: `action_type` with the request packed in an
/// `Any` as its body.
pub fn command_action<C: ProstMessageExt>(action_type: &str, request: &C) -> Action {
    Action {
        r#type: action_type.to_string(),
        body: request.as_any().encode_to_vec().into(),
    }
}

/// A Flight SQL client over a polyflight [`FlightClient`], so over every transport polyflight
/// serves.
///
/// Methods take `&self` and the client is cheap to clone: calls may run concurrently over the
/// one connection. Headers, timeouts and cancellation come from the wrapped client's
/// [`CallOptions`](polyflight_core::CallOptions); wrap a client made with
/// [`FlightClient::with_call_options`] to change them.
///
/// Metadata requests (`get_catalogs`, `get_tables`, …) and queries return the server's
/// [`FlightInfo`]; read its data with [`FlightSqlClient::read_all`] or, endpoint by endpoint,
/// [`FlightSqlClient::do_get`].
#[derive(Clone, Debug)]
pub struct FlightSqlClient {
    client: FlightClient,
}

impl FlightSqlClient {
    /// A Flight SQL client speaking through `client`.
    pub fn new(client: FlightClient) -> Self {
        FlightSqlClient { client }
    }

    /// The Flight client underneath.
    pub fn inner(&self) -> &FlightClient {
        &self.client
    }

    /// Gives back the Flight client underneath.
    pub fn into_inner(self) -> FlightClient {
        self.client
    }

    /// `GetFlightInfo` for any Flight SQL command (also those without a method of their own:
    /// primary keys, cross references, XDBC type info, `CommandGetSqlInfo` with numeric ids …).
    pub async fn get_flight_info_for<C: ProstMessageExt>(&self, command: &C) -> Result<FlightInfo> {
        self.client
            .get_flight_info(command_descriptor(command))
            .await
    }

    /// Runs a query (`CommandStatementQuery`), optionally inside a transaction; returns where
    /// to fetch its result.
    pub async fn execute(
        &self,
        query: impl Into<String>,
        transaction_id: Option<Bytes>,
    ) -> Result<FlightInfo> {
        self.get_flight_info_for(&CommandStatementQuery {
            query: query.into(),
            transaction_id,
        })
        .await
    }

    /// Runs an update (`CommandStatementUpdate` by DoPut), optionally inside a transaction;
    /// returns the number of rows it affected as the server reports it (`-1`: unknown).
    pub async fn execute_update(
        &self,
        query: impl Into<String>,
        transaction_id: Option<Bytes>,
    ) -> Result<i64> {
        let command = CommandStatementUpdate {
            query: query.into(),
            transaction_id,
        };
        self.put_command(command_descriptor(&command)).await
    }

    /// The catalogs (`CommandGetCatalogs`).
    pub async fn get_catalogs(&self) -> Result<FlightInfo> {
        self.get_flight_info_for(&CommandGetCatalogs {}).await
    }

    /// The database schemas that match `request` (`CommandGetDbSchemas`).
    pub async fn get_db_schemas(&self, request: CommandGetDbSchemas) -> Result<FlightInfo> {
        self.get_flight_info_for(&request).await
    }

    /// The tables that match `request` (`CommandGetTables`); with `include_schema` each row
    /// carries the table's IPC-encoded schema, which [`decode_schema`] reads.
    pub async fn get_tables(&self, request: CommandGetTables) -> Result<FlightInfo> {
        self.get_flight_info_for(&request).await
    }

    /// The table types (`CommandGetTableTypes`).
    pub async fn get_table_types(&self) -> Result<FlightInfo> {
        self.get_flight_info_for(&CommandGetTableTypes {}).await
    }

    /// The server's answers to `info` (`CommandGetSqlInfo`); an empty list asks for all it
    /// knows. Ids outside [`SqlInfo`] go through [`FlightSqlClient::get_flight_info_for`] with a
    /// `CommandGetSqlInfo` of your own.
    pub async fn get_sql_info(
        &self,
        info: impl IntoIterator<Item = SqlInfo>,
    ) -> Result<FlightInfo> {
        let info = info.into_iter().map(|id| id as u32).collect();
        self.get_flight_info_for(&CommandGetSqlInfo { info }).await
    }

    /// `DoGet` of one endpoint's ticket, decoded into record batches.
    pub async fn do_get(&self, ticket: impl Into<Ticket>) -> Result<FlightRecordBatchStream> {
        self.client.do_get(ticket).await
    }

    /// Every batch of every endpoint of `info`, in endpoint order.
    ///
    /// Endpoints are fetched in parallel (each by a task of its own). An endpoint without a
    /// location, or naming this client's own location or `arrow-flight-reuse-connection://`,
    /// is read over this client's connection; an endpoint at another location is read from
    /// there, over a connection pooled per location that uses this client's transports and
    /// connection options, trying its locations in order (see
    /// [`FlightClient::read_flight`]). The first error ends the read.
    pub async fn read_all(&self, info: &FlightInfo) -> Result<Vec<RecordBatch>> {
        self.client.read_flight(info).await?.try_collect().await
    }

    /// Creates a prepared statement for `query` (action `CreatePreparedStatement`), optionally
    /// inside a transaction.
    pub async fn prepare(
        &self,
        query: impl Into<String>,
        transaction_id: Option<Bytes>,
    ) -> Result<PreparedStatement> {
        let request = ActionCreatePreparedStatementRequest {
            query: query.into(),
            transaction_id,
        };
        let mut results = self
            .client
            .do_action(command_action(CREATE_PREPARED_STATEMENT, &request))
            .await?;
        let body = results.try_next().await?.ok_or_else(|| {
            FlightError::internal(format!(
                "server answered {CREATE_PREPARED_STATEMENT} with no result"
            ))
        })?;
        // Drain the rest so the call ends cleanly (and a late error surfaces).
        while results.try_next().await?.is_some() {}
        let created: ActionCreatePreparedStatementResult = unpack_any(&body)?;
        Ok(PreparedStatement {
            client: self.clone(),
            dataset_schema: optional_schema(&created.dataset_schema, "dataset")?,
            parameter_schema: optional_schema(&created.parameter_schema, "parameter")?,
            handle: created.prepared_statement_handle,
        })
    }

    /// DoPut of one descriptor-only message (an update command); reads the `DoPutUpdateResult`
    /// the server puts in its first `PutResult`'s app metadata.
    async fn put_command(&self, descriptor: FlightDescriptor) -> Result<i64> {
        let message = FlightData {
            flight_descriptor: Some(descriptor),
            ..Default::default()
        };
        let response = self
            .client
            .do_put_data(futures::stream::iter([Ok(message)]).boxed())
            .await?;
        let mut results = response.body;
        let result = results.try_next().await?.ok_or_else(|| {
            FlightError::internal("server closed the update's DoPut without a result")
        })?;
        while results.try_next().await?.is_some() {}
        let update = DoPutUpdateResult::decode(&*result.app_metadata).map_err(|e| {
            FlightError::internal(format!("server sent a malformed DoPutUpdateResult: {e}"))
        })?;
        Ok(update.record_count)
    }
}

/// A prepared statement on the server, from [`FlightSqlClient::prepare`]. Close it with
/// [`PreparedStatement::close`] so the server can free it; dropping it does not.
///
/// Parameters cannot be bound yet: statements without parameters only.
#[derive(Clone, Debug)]
pub struct PreparedStatement {
    client: FlightSqlClient,
    handle: Bytes,
    dataset_schema: SchemaRef,
    parameter_schema: SchemaRef,
}

impl PreparedStatement {
    /// The server's opaque handle for the statement.
    pub fn handle(&self) -> &Bytes {
        &self.handle
    }

    /// The schema of the statement's result (empty when the server did not say).
    pub fn dataset_schema(&self) -> &SchemaRef {
        &self.dataset_schema
    }

    /// The schema of the statement's parameters (empty when it has none or the server did not
    /// say).
    pub fn parameter_schema(&self) -> &SchemaRef {
        &self.parameter_schema
    }

    /// Runs the statement as a query (`CommandPreparedStatementQuery`); returns where to fetch
    /// its result.
    pub async fn execute(&self) -> Result<FlightInfo> {
        self.client
            .get_flight_info_for(&CommandPreparedStatementQuery {
                prepared_statement_handle: self.handle.clone(),
            })
            .await
    }

    /// Runs the statement as an update (`CommandPreparedStatementUpdate` by DoPut); returns the
    /// number of rows it affected as the server reports it.
    pub async fn execute_update(&self) -> Result<i64> {
        let command = CommandPreparedStatementUpdate {
            prepared_statement_handle: self.handle.clone(),
        };
        self.client.put_command(command_descriptor(&command)).await
    }

    /// Closes the statement on the server (action `ClosePreparedStatement`).
    pub async fn close(self) -> Result<()> {
        let request = ActionClosePreparedStatementRequest {
            prepared_statement_handle: self.handle,
        };
        let mut results = self
            .client
            .client
            .do_action(command_action(CLOSE_PREPARED_STATEMENT, &request))
            .await?;
        while results.try_next().await?.is_some() {}
        Ok(())
    }
}

/// Reads an action result: an `Any` holding an `M`.
fn unpack_any<M: ProstMessageExt>(body: &[u8]) -> Result<M> {
    let malformed = |why: String| {
        FlightError::internal(format!("server sent a malformed action result: {why}"))
    };
    let any = Any::decode(body).map_err(|e| malformed(e.to_string()))?;
    any.unpack::<M>()
        .map_err(|e| malformed(e.to_string()))?
        .ok_or_else(|| malformed(format!("expected {}, got {}", M::type_url(), any.type_url)))
}

/// A schema a server may leave empty (a prepared statement's dataset or parameters).
fn optional_schema(bytes: &[u8], which: &str) -> Result<SchemaRef> {
    if bytes.is_empty() {
        return Ok(Arc::new(Schema::empty()));
    }
    decode_schema(bytes).map(Arc::new).map_err(|e| {
        FlightError::internal(format!(
            "server sent a malformed {which} schema for a prepared statement: {}",
            e.message()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field};
    use polyflight_core::proto::flight_descriptor::DescriptorType;

    /// The `cmd` of a descriptor, read back as arrow-flight's server reads it.
    fn command_of<C: ProstMessageExt>(descriptor: &FlightDescriptor) -> C {
        assert_eq!(descriptor.r#type, DescriptorType::Cmd as i32);
        Any::decode(&*descriptor.cmd)
            .expect("an Any")
            .unpack::<C>()
            .expect("unpacks")
            .expect("of the expected type")
    }

    #[test]
    fn commands_travel_as_any_in_a_cmd_descriptor() {
        let query = CommandStatementQuery {
            query: "SELECT 1".into(),
            transaction_id: Some(Bytes::from_static(b"tx")),
        };
        let descriptor = command_descriptor(&query);
        assert_eq!(command_of::<CommandStatementQuery>(&descriptor), query);
        let any = Any::decode(&*descriptor.cmd).expect("an Any");
        assert_eq!(
            any.type_url,
            "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
        );
        // the same bytes arrow-flight's own client sends
        let theirs = arrow_flight::FlightDescriptor::new_cmd(query.as_any().encode_to_vec());
        assert_eq!(arrow_flight::FlightDescriptor::from(descriptor), theirs);
    }

    #[test]
    fn sql_info_ids_are_the_enum_values() {
        let info = CommandGetSqlInfo {
            info: [SqlInfo::FlightSqlServerName, SqlInfo::SqlKeywords]
                .into_iter()
                .map(|id| id as u32)
                .collect(),
        };
        let back = command_of::<CommandGetSqlInfo>(&command_descriptor(&info));
        assert_eq!(back.info, vec![0, 508]);
    }

    #[test]
    fn actions_carry_the_request_as_any() {
        let request = ActionClosePreparedStatementRequest {
            prepared_statement_handle: Bytes::from_static(b"h1"),
        };
        let action = command_action(CLOSE_PREPARED_STATEMENT, &request);
        assert_eq!(action.r#type, "ClosePreparedStatement");
        let any = Any::decode(&*action.body).expect("an Any");
        assert_eq!(
            any.unpack::<ActionClosePreparedStatementRequest>()
                .expect("unpacks"),
            Some(request)
        );
    }

    #[test]
    fn action_results_of_the_wrong_type_or_shape_are_internal_errors() {
        let created = ActionCreatePreparedStatementResult {
            prepared_statement_handle: Bytes::from_static(b"h"),
            ..Default::default()
        };
        let body = created.as_any().encode_to_vec();
        let back: ActionCreatePreparedStatementResult = unpack_any(&body).expect("unpacks");
        assert_eq!(back, created);

        let other = CommandGetCatalogs {}.as_any().encode_to_vec();
        let err = unpack_any::<ActionCreatePreparedStatementResult>(&other).unwrap_err();
        assert_eq!(err.code(), polyflight_core::FlightCode::Internal);
        assert!(err.message().contains("CommandGetCatalogs"), "{err}");

        let err = unpack_any::<ActionCreatePreparedStatementResult>(b"\xff\xff").unwrap_err();
        assert_eq!(err.code(), polyflight_core::FlightCode::Internal);
    }

    #[test]
    fn prepared_statement_schemas_may_be_absent() {
        assert!(optional_schema(b"", "dataset").unwrap().fields().is_empty());
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let bytes = polyflight_core::codec::encode_schema(&schema);
        assert_eq!(*optional_schema(&bytes, "dataset").unwrap(), schema);
        let err = optional_schema(b"\x01\x02", "parameter").unwrap_err();
        assert_eq!(err.code(), polyflight_core::FlightCode::Internal);
        assert!(err.message().contains("parameter schema"), "{err}");
    }
}
