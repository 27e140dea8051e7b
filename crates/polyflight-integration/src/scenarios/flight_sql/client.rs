//! Flight SQL spoken with polyflight's `FlightClient`, as the scenarios' clients need it: each
//! call sends the protobuf messages Arrow C++'s `FlightSqlClient` sends for it (commands packed
//! in an `Any` as descriptors and action bodies, DoPut uploads that always begin with a schema),
//! and each check compares what came back the way Arrow C++'s scenario client does.

use super::contract;
use crate::failure::{check, CallContext as _, Failure, Outcome};
use arrow_array::RecordBatch;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, DoPutUpdateResult,
    ProstMessageExt,
};
use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;
use futures::TryStreamExt;
use polyflight::codec::FlightDataEncoderBuilder;
use polyflight::proto::{Action, FlightDescriptor, FlightInfo, PutResult};
use polyflight::FlightClient;
use prost::Message;
use std::sync::Arc;

/// Whether `actual` is `expected`, metadata included; a query schema may also be missing the
/// column remarks, as Arrow C++ before 21 sends it.
pub fn same_schema(expected: &Schema, actual: &Schema) -> bool {
    expected == actual || contract::without_remarks(expected) == *actual
}

/// Fails unless [`same_schema`].
pub fn check_schema(expected: &Schema, actual: &Schema, what: &str) -> Outcome {
    check(same_schema(expected, actual), || {
        format!("{what}: schemas did not match.\nexpected: {expected:#?}\nactual: {actual:#?}")
    })
}

/// A descriptor of a Flight SQL command.
fn descriptor(command: &Any) -> FlightDescriptor {
    FlightDescriptor::new_cmd(command.encode_to_vec())
}

/// A Flight client that speaks Flight SQL.
pub struct SqlClient {
    client: FlightClient,
}

impl SqlClient {
    /// Speaks Flight SQL over `client`.
    pub fn new(client: FlightClient) -> SqlClient {
        SqlClient { client }
    }

    /// GetFlightInfo of a command.
    pub async fn flight_info(&self, command: Any, what: &str) -> Outcome<FlightInfo> {
        self.client
            .get_flight_info(descriptor(&command))
            .await
            .call(what)
    }

    /// GetSchema of a command.
    pub async fn schema(&self, command: Any, what: &str) -> Outcome<SchemaRef> {
        self.client
            .get_schema(descriptor(&command))
            .await
            .call(what)
    }

    /// DoGet of the first endpoint of `info`: the stream's schema and its batches.
    pub async fn read(
        &self,
        info: &FlightInfo,
        what: &str,
    ) -> Outcome<(SchemaRef, Vec<RecordBatch>)> {
        let endpoint = info
            .endpoint
            .first()
            .ok_or_else(|| Failure::Check(format!("{what}: the FlightInfo has no endpoint")))?;
        let ticket = endpoint.ticket.clone().unwrap_or_default();
        let label = format!("DoGet of {what}");
        let mut stream = self.client.do_get(ticket).await.call(&label)?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.try_next().await.call(&label)? {
            batches.push(batch);
        }
        let schema = stream
            .schema()
            .cloned()
            .ok_or_else(|| Failure::Check(format!("{label}: the stream ended without a schema")))?;
        Ok((schema, batches))
    }

    /// Arrow C++'s `Validate`: DoGet of the first endpoint returns `expected` and reads to its
    /// end.
    pub async fn validate(&self, info: &FlightInfo, expected: &Schema, what: &str) -> Outcome {
        let (schema, _) = self.read(info, what).await?;
        check_schema(expected, &schema, &format!("DoGet of {what}"))
    }

    /// GetFlightInfo and GetSchema of a metadata command, then the checks of both.
    pub async fn metadata(
        &self,
        what: &str,
        command: Any,
        schema_command: Any,
        expected: &Schema,
    ) -> Outcome {
        let info = self.flight_info(command, what).await?;
        let schema_what = format!("{what}Schema");
        let schema = self.schema(schema_command, &schema_what).await?;
        self.validate(&info, expected, what).await?;
        check_schema(expected, &schema, &schema_what)
    }

    /// DoPut of `command` with `batches` of `schema`; returns every PutResult's metadata.
    async fn upload(
        &self,
        command: Any,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        what: &str,
    ) -> Outcome<Vec<Bytes>> {
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_flight_descriptor(descriptor(&command))
            .build(futures::stream::iter(batches.into_iter().map(Ok)));
        let response = self.client.do_put_data(Box::pin(data)).await.call(what)?;
        let results: Vec<PutResult> = response.body.try_collect().await.call(what)?;
        Ok(results.into_iter().map(|r| r.app_metadata).collect())
    }

    /// An update: DoPut of `command` with `batches` (none: an empty schema, as Arrow C++
    /// sends), read back as a DoPutUpdateResult.
    pub async fn update(
        &self,
        command: Any,
        batches: Option<(SchemaRef, Vec<RecordBatch>)>,
        what: &str,
    ) -> Outcome<i64> {
        let (schema, batches) = batches.unwrap_or_else(|| (Arc::new(Schema::empty()), Vec::new()));
        let metadata = self.upload(command, schema, batches, what).await?;
        let first = metadata
            .first()
            .ok_or_else(|| Failure::Check(format!("{what}: the server did not send a response")))?;
        let result = DoPutUpdateResult::decode(first.clone()).map_err(|e| {
            Failure::Check(format!("{what}: unable to parse DoPutUpdateResult: {e}"))
        })?;
        Ok(result.record_count)
    }

    /// A Flight SQL action: `request` packed in an `Any`; returns the result bodies.
    pub async fn action(&self, kind: &str, request: Any) -> Outcome<Vec<Bytes>> {
        let action = Action {
            r#type: kind.to_string(),
            body: request.encode_to_vec().into(),
        };
        self.client
            .do_action(action)
            .await
            .call(kind)?
            .try_collect()
            .await
            .call(kind)
    }

    /// A Flight SQL action whose first result is an `M` packed in an `Any`.
    pub async fn action_result<M: ProstMessageExt>(&self, kind: &str, request: Any) -> Outcome<M> {
        let results = self.action(kind, request).await?;
        let first = results
            .first()
            .ok_or_else(|| Failure::Check(format!("{kind}: the server did not return a result")))?;
        let any = Any::decode(first.clone())
            .map_err(|e| Failure::Check(format!("{kind}: unable to parse Any: {e}")))?;
        any.unpack::<M>().ok().flatten().ok_or_else(|| {
            Failure::Check(format!(
                "{kind}: unable to unpack Any (expecting {}, got {})",
                M::type_url(),
                any.type_url
            ))
        })
    }

    /// A prepared statement from CreatePreparedStatement or CreatePreparedSubstraitPlan.
    pub async fn prepare(&self, kind: &str, request: Any) -> Outcome<Prepared<'_>> {
        let result: ActionCreatePreparedStatementResult = self.action_result(kind, request).await?;
        Ok(Prepared {
            client: self,
            handle: result.prepared_statement_handle,
            parameters: None,
        })
    }
}

/// A prepared statement, as Arrow C++'s `PreparedStatement` uses it.
pub struct Prepared<'a> {
    client: &'a SqlClient,
    handle: Bytes,
    parameters: Option<RecordBatch>,
}

impl Prepared<'_> {
    /// Binds parameters, sent with the next execution.
    pub fn set_parameters(&mut self, parameters: RecordBatch) {
        self.parameters = Some(parameters);
    }

    fn query(&self) -> Any {
        CommandPreparedStatementQuery {
            prepared_statement_handle: self.handle.clone(),
        }
        .as_any()
    }

    fn bound(&self) -> Option<(SchemaRef, Vec<RecordBatch>)> {
        self.parameters
            .as_ref()
            .map(|batch| (batch.schema(), vec![batch.clone()]))
    }

    /// Executes the query: binds the parameters (DoPut of CommandPreparedStatementQuery),
    /// then GetFlightInfo.
    pub async fn execute(&self, what: &str) -> Outcome<FlightInfo> {
        if let Some((schema, batches)) = self.bound() {
            let label = format!("binding the parameters of {what}");
            self.client
                .upload(self.query(), schema, batches, &label)
                .await?;
        }
        self.client.flight_info(self.query(), what).await
    }

    /// Executes the statement as an update (DoPut of CommandPreparedStatementUpdate).
    pub async fn execute_update(&self, what: &str) -> Outcome<i64> {
        let command = CommandPreparedStatementUpdate {
            prepared_statement_handle: self.handle.clone(),
        }
        .as_any();
        self.client.update(command, self.bound(), what).await
    }

    /// GetSchema of the query.
    pub async fn schema(&self, what: &str) -> Outcome<SchemaRef> {
        self.client.schema(self.query(), what).await
    }

    /// ClosePreparedStatement.
    pub async fn close(self) -> Outcome {
        let request = ActionClosePreparedStatementRequest {
            prepared_statement_handle: self.handle.clone(),
        };
        self.client
            .action("ClosePreparedStatement", request.as_any())
            .await
            .map(|_| ())
    }
}
