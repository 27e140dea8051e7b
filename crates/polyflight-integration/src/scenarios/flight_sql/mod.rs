//! `flight_sql`, `flight_sql:extension` and `flight_sql:ingestion`: Flight SQL's messages
//! built and read the same way on both sides, following Arrow C++'s `FlightSqlScenario`,
//! `FlightSqlExtensionScenario` and `FlightSqlIngestionScenario`.
//!
//! - `flight_sql`: every metadata command (catalogs, schemas, tables with and without their
//!   schemas, table types, primary, exported and imported keys, cross reference, XDBC type info,
//!   SqlInfo) as GetFlightInfo + DoGet and as GetSchema, each answered with the schema Flight SQL
//!   fixes for it and no rows; a statement query and its schema; a statement update; a prepared
//!   statement read with bound parameters, and one executed as an update.
//! - `flight_sql:extension`: the SqlInfo values of a server with Substrait and transactions; a
//!   Substrait plan executed, described, cancelled (the deprecated CancelQuery action) and run
//!   as an update; prepared Substrait plans; and everything again inside a transaction with
//!   savepoints (rolled back, released), committed, then a second transaction rolled back.
//! - `flight_sql:ingestion`: CommandStatementIngest with every option set, uploading three rows.
//!
//! The servers ([`server`]) are arrow-flight `FlightSqlService`s served by polyflight in a
//! [`front`] that fills in what arrow-flight's dispatch leaves out; the clients ([`client`]) are
//! polyflight's `FlightClient` with the commands encoded by arrow-flight's protobuf types. What
//! both sides agree on is in [`contract`].

mod client;
mod contract;
mod front;
mod server;

use super::{Scenario, ServerParts};
use crate::failure::{check, ArrowContext, Failure, Outcome};
use crate::peer::Connector;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt32Type};
use arrow_array::{Array, RecordBatch, UnionArray};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionCancelQueryRequest, ActionCancelQueryResult,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedSubstraitPlanRequest,
    ActionEndSavepointRequest, ActionEndTransactionRequest, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandStatementIngest, CommandStatementQuery,
    CommandStatementSubstraitPlan, CommandStatementUpdate, EndTransaction, ProstMessageExt,
    SqlInfo, SubstraitPlan, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use arrow_flight::CancelStatus;
use async_trait::async_trait;
use bytes::Bytes;
use client::{check_schema, SqlClient};
use contract::InfoValue;
use prost::Message;
use std::collections::HashMap;
use std::future::Future;

/// The scenario `flight_sql`.
pub struct FlightSql;

/// The scenario `flight_sql:extension`.
pub struct FlightSqlExtension;

/// The scenario `flight_sql:ingestion`.
pub struct FlightSqlIngestion;

#[async_trait]
impl Scenario for FlightSql {
    fn name(&self) -> &'static str {
        "flight_sql"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(front::SqlFront::new(server::ScenarioSqlService))
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let sql = SqlClient::new(connector.connect().await?);
        metadata_retrieval(&sql).await?;
        statement_execution(&sql).await?;
        prepared_statement_execution(&sql).await
    }
}

#[async_trait]
impl Scenario for FlightSqlExtension {
    fn name(&self) -> &'static str {
        "flight_sql:extension"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(front::SqlFront::new(server::ScenarioSqlService))
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let sql = SqlClient::new(connector.connect().await?);
        stage("MetadataRetrieval", extension_sql_info(&sql)).await?;
        stage("StatementExecution", substrait_execution(&sql)).await?;
        stage(
            "PreparedStatementExecution",
            prepared_substrait_execution(&sql),
        )
        .await?;
        stage("Transactions", transactions(&sql)).await
    }
}

#[async_trait]
impl Scenario for FlightSqlIngestion {
    fn name(&self) -> &'static str {
        "flight_sql:ingestion"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(front::SqlFront::new(server::IngestionSqlService))
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let sql = SqlClient::new(connector.connect().await?);
        ingestion(&sql).await
    }
}

/// Names the part of the extension scenario that failed, as Arrow C++'s client does.
async fn stage(name: &str, part: impl Future<Output = Outcome>) -> Outcome {
    part.await
        .map_err(|failure| Failure::Check(format!("{name} failed: {failure}")))
}

/// Fails unless an update reports `expected` rows.
fn expect_rows(expected: i64, actual: i64, what: &str) -> Outcome {
    check(expected == actual, || {
        format!("wrong number of updated rows for {what}: expected {expected}, got {actual}")
    })
}

fn some(text: &str) -> Option<String> {
    Some(text.to_string())
}

// ---- flight_sql ------------------------------------------------------------------------------

/// Every metadata command, as GetFlightInfo + DoGet and as GetSchema.
async fn metadata_retrieval(sql: &SqlClient) -> Outcome {
    sql.metadata(
        "GetCatalogs",
        CommandGetCatalogs {}.as_any(),
        CommandGetCatalogs {}.as_any(),
        &contract::catalogs_schema(),
    )
    .await?;
    let db_schemas = CommandGetDbSchemas {
        catalog: some("catalog"),
        db_schema_filter_pattern: some("db_schema_filter_pattern"),
    };
    sql.metadata(
        "GetDbSchemas",
        db_schemas.as_any(),
        CommandGetDbSchemas::default().as_any(),
        &contract::db_schemas_schema(),
    )
    .await?;
    let tables = CommandGetTables {
        catalog: some("catalog"),
        db_schema_filter_pattern: some("db_schema_filter_pattern"),
        table_name_filter_pattern: some("table_filter_pattern"),
        table_types: vec!["table".to_string(), "view".to_string()],
        include_schema: true,
    };
    let tables_with_schema = CommandGetTables {
        include_schema: true,
        ..Default::default()
    };
    sql.metadata(
        "GetTables",
        tables.as_any(),
        tables_with_schema.as_any(),
        &contract::tables_schema_with_schema(),
    )
    .await?;
    let schema = sql
        .schema(CommandGetTables::default().as_any(), "GetTablesSchema")
        .await?;
    check_schema(&contract::tables_schema(), &schema, "GetTablesSchema")?;
    sql.metadata(
        "GetTableTypes",
        CommandGetTableTypes {}.as_any(),
        CommandGetTableTypes {}.as_any(),
        &contract::table_types_schema(),
    )
    .await?;
    let primary_keys = CommandGetPrimaryKeys {
        catalog: some("catalog"),
        db_schema: some("db_schema"),
        table: "table".to_string(),
    };
    sql.metadata(
        "GetPrimaryKeys",
        primary_keys.as_any(),
        CommandGetPrimaryKeys::default().as_any(),
        &contract::primary_keys_schema(),
    )
    .await?;
    let exported = CommandGetExportedKeys {
        catalog: some("catalog"),
        db_schema: some("db_schema"),
        table: "table".to_string(),
    };
    sql.metadata(
        "GetExportedKeys",
        exported.as_any(),
        CommandGetExportedKeys::default().as_any(),
        &contract::foreign_keys_schema(),
    )
    .await?;
    let imported = CommandGetImportedKeys {
        catalog: some("catalog"),
        db_schema: some("db_schema"),
        table: "table".to_string(),
    };
    sql.metadata(
        "GetImportedKeys",
        imported.as_any(),
        CommandGetImportedKeys::default().as_any(),
        &contract::foreign_keys_schema(),
    )
    .await?;
    let cross_reference = CommandGetCrossReference {
        pk_catalog: some("pk_catalog"),
        pk_db_schema: some("pk_db_schema"),
        pk_table: "pk_table".to_string(),
        fk_catalog: some("fk_catalog"),
        fk_db_schema: some("fk_db_schema"),
        fk_table: "fk_table".to_string(),
    };
    sql.metadata(
        "GetCrossReference",
        cross_reference.as_any(),
        CommandGetCrossReference::default().as_any(),
        &contract::foreign_keys_schema(),
    )
    .await?;
    sql.metadata(
        "GetXdbcTypeInfo",
        CommandGetXdbcTypeInfo::default().as_any(),
        CommandGetXdbcTypeInfo::default().as_any(),
        &contract::xdbc_type_info_schema(),
    )
    .await?;
    let sql_info = CommandGetSqlInfo {
        info: vec![
            SqlInfo::FlightSqlServerName as u32,
            SqlInfo::FlightSqlServerReadOnly as u32,
        ],
    };
    sql.metadata(
        "GetSqlInfo",
        sql_info.as_any(),
        CommandGetSqlInfo::default().as_any(),
        &contract::sql_info_schema(),
    )
    .await
}

fn statement(transaction: Option<&Bytes>) -> CommandStatementQuery {
    CommandStatementQuery {
        query: contract::SELECT_STATEMENT.to_string(),
        transaction_id: transaction.cloned(),
    }
}

fn update_statement(transaction: Option<&Bytes>) -> CommandStatementUpdate {
    CommandStatementUpdate {
        query: contract::UPDATE_STATEMENT.to_string(),
        transaction_id: transaction.cloned(),
    }
}

fn prepare_statement(
    query: &str,
    transaction: Option<&Bytes>,
) -> ActionCreatePreparedStatementRequest {
    ActionCreatePreparedStatementRequest {
        query: query.to_string(),
        transaction_id: transaction.cloned(),
    }
}

/// A statement query, its schema, and a statement update.
async fn statement_execution(sql: &SqlClient) -> Outcome {
    let info = sql.flight_info(statement(None).as_any(), "Execute").await?;
    sql.validate(&info, &contract::query_schema(), "Execute")
        .await?;
    let schema = sql
        .schema(statement(None).as_any(), "GetExecuteSchema")
        .await?;
    check_schema(&contract::query_schema(), &schema, "GetExecuteSchema")?;
    let rows = sql
        .update(update_statement(None).as_any(), None, "ExecuteUpdate")
        .await?;
    expect_rows(contract::UPDATE_ROWS, rows, "ExecuteUpdate")
}

/// A prepared statement read with bound parameters, and one executed as an update.
async fn prepared_statement_execution(sql: &SqlClient) -> Outcome {
    let parameters = contract::parameters().arrow("making the parameters")?;
    let request = prepare_statement(contract::SELECT_PREPARED_STATEMENT, None);
    let mut select = sql
        .prepare("CreatePreparedStatement", request.as_any())
        .await?;
    select.set_parameters(parameters);
    let info = select.execute("prepared statement Execute").await?;
    sql.validate(
        &info,
        &contract::query_schema(),
        "prepared statement Execute",
    )
    .await?;
    let schema = select.schema("prepared statement GetSchema").await?;
    check_schema(
        &contract::query_schema(),
        &schema,
        "prepared statement GetSchema",
    )?;
    select.close().await?;

    let request = prepare_statement(contract::UPDATE_PREPARED_STATEMENT, None);
    let update = sql
        .prepare("CreatePreparedStatement", request.as_any())
        .await?;
    let rows = update
        .execute_update("prepared statement ExecuteUpdate")
        .await?;
    expect_rows(
        contract::PREPARED_UPDATE_ROWS,
        rows,
        "prepared statement ExecuteUpdate",
    )?;
    update.close().await
}

// ---- flight_sql:extension --------------------------------------------------------------------

/// The rows of SqlInfo batches by id; an id twice, or a value of a kind the scenario does not
/// use, fails.
fn read_sql_info(batches: &[RecordBatch]) -> Outcome<HashMap<u32, InfoValue>> {
    let mut values = HashMap::new();
    for batch in batches {
        let [names, union] = batch.columns() else {
            return Err(Failure::Check(format!(
                "a SqlInfo batch has {} columns, not 2",
                batch.num_columns()
            )));
        };
        let (Some(names), Some(union)) =
            (names.as_primitive_opt::<UInt32Type>(), union.as_union_opt())
        else {
            return Err(Failure::Check(format!(
                "SqlInfo columns are {} and {}, not uint32 and a union",
                names.data_type(),
                union.data_type()
            )));
        };
        for row in 0..batch.num_rows() {
            let code = names.value(row);
            if values.contains_key(&code) {
                return Err(Failure::Check(format!("duplicate SqlInfo value {code}")));
            }
            values.insert(code, info_value(code, union, row)?);
        }
    }
    Ok(values)
}

/// The SqlInfo value in `row` of the value union, of one of the kinds these scenarios use.
fn info_value(code: u32, union: &UnionArray, row: usize) -> Outcome<InfoValue> {
    let type_id = union.type_id(row);
    let known = [
        contract::info_type::STRING,
        contract::info_type::BOOL,
        contract::info_type::BIGINT,
        contract::info_type::INT32,
    ];
    if !known.contains(&type_id) {
        return Err(Failure::Check(format!(
            "SqlInfo {code}: decoding SqlInfoResult of type code {type_id} is not implemented"
        )));
    }
    let child = union.child(type_id);
    let at = union.value_offset(row);
    let wrong = || {
        Failure::Check(format!(
            "SqlInfo {code}: type code {type_id} holds a {} of {} values, read at {at}",
            child.data_type(),
            child.len()
        ))
    };
    if at >= child.len() {
        return Err(wrong());
    }
    Ok(match type_id {
        contract::info_type::STRING => {
            let strings = child.as_string_opt::<i32>().ok_or_else(wrong)?;
            InfoValue::String(strings.value(at).to_string())
        }
        contract::info_type::BOOL => {
            InfoValue::Bool(child.as_boolean_opt().ok_or_else(wrong)?.value(at))
        }
        contract::info_type::BIGINT => InfoValue::BigInt(
            child
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(wrong)?
                .value(at),
        ),
        _ => InfoValue::Int32(
            child
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(wrong)?
                .value(at),
        ),
    })
}

/// The SqlInfo values of a server with Substrait and transactions.
async fn extension_sql_info(sql: &SqlClient) -> Outcome {
    let expected = contract::extension_sql_info();
    let command = CommandGetSqlInfo {
        info: expected.iter().map(|(id, _)| *id).collect(),
    };
    let info = sql.flight_info(command.as_any(), "GetSqlInfo").await?;
    let (schema, batches) = sql.read(&info, "GetSqlInfo").await?;
    check_schema(&contract::sql_info_schema(), &schema, "DoGet of GetSqlInfo")?;
    let values = read_sql_info(&batches)?;
    for (id, value) in &expected {
        let got = values.get(id);
        check(got == Some(value), || {
            format!("SqlInfo {id} did not match: expected {value:?}, got {got:?}")
        })?;
    }
    Ok(())
}

fn plan() -> SubstraitPlan {
    SubstraitPlan {
        plan: Bytes::from_static(contract::SUBSTRAIT_PLAN),
        version: contract::SUBSTRAIT_VERSION.to_string(),
    }
}

fn substrait(transaction: Option<&Bytes>) -> CommandStatementSubstraitPlan {
    CommandStatementSubstraitPlan {
        plan: Some(plan()),
        transaction_id: transaction.cloned(),
    }
}

fn prepare_substrait(transaction: Option<&Bytes>) -> ActionCreatePreparedSubstraitPlanRequest {
    ActionCreatePreparedSubstraitPlanRequest {
        plan: Some(plan()),
        transaction_id: transaction.cloned(),
    }
}

/// A Substrait plan executed, described, cancelled and run as an update.
async fn substrait_execution(sql: &SqlClient) -> Outcome {
    let info = sql
        .flight_info(substrait(None).as_any(), "ExecuteSubstrait")
        .await?;
    sql.validate(&info, &contract::query_schema(), "ExecuteSubstrait")
        .await?;
    let schema = sql
        .schema(substrait(None).as_any(), "GetExecuteSubstraitSchema")
        .await?;
    check_schema(
        &contract::query_schema(),
        &schema,
        "GetExecuteSubstraitSchema",
    )?;

    // Cancelled with CancelQuery, as Arrow C++'s client still does: not every Flight SQL
    // server takes CancelFlightInfo yet.
    let info = sql
        .flight_info(substrait(None).as_any(), "ExecuteSubstrait")
        .await?;
    let cancel = ActionCancelQueryRequest {
        info: info.encode_to_vec().into(),
    };
    let result: ActionCancelQueryResult = sql.action_result("CancelQuery", cancel.as_any()).await?;
    // CancelResult numbers its values as CancelStatus does.
    check(result.result == CancelStatus::Cancelled as i32, || {
        format!(
            "wrong cancel result: expected CANCEL_RESULT_CANCELLED, got {}",
            result.result
        )
    })?;

    let rows = sql
        .update(substrait(None).as_any(), None, "ExecuteSubstraitUpdate")
        .await?;
    expect_rows(contract::UPDATE_ROWS, rows, "ExecuteSubstraitUpdate")
}

/// Prepared Substrait plans: read with bound parameters, and run as an update.
async fn prepared_substrait_execution(sql: &SqlClient) -> Outcome {
    let parameters = contract::parameters().arrow("making the parameters")?;
    let mut select = sql
        .prepare(
            "CreatePreparedSubstraitPlan",
            prepare_substrait(None).as_any(),
        )
        .await?;
    select.set_parameters(parameters);
    let info = select.execute("prepared Substrait plan Execute").await?;
    sql.validate(
        &info,
        &contract::query_schema(),
        "prepared Substrait plan Execute",
    )
    .await?;
    let schema = select.schema("prepared Substrait plan GetSchema").await?;
    check_schema(
        &contract::query_schema(),
        &schema,
        "prepared Substrait plan GetSchema",
    )?;
    select.close().await?;

    let update = sql
        .prepare(
            "CreatePreparedSubstraitPlan",
            prepare_substrait(None).as_any(),
        )
        .await?;
    let rows = update
        .execute_update("prepared Substrait plan ExecuteUpdate")
        .await?;
    expect_rows(
        contract::PREPARED_UPDATE_ROWS,
        rows,
        "prepared Substrait plan ExecuteUpdate",
    )?;
    update.close().await
}

async fn begin_transaction(sql: &SqlClient) -> Outcome<Bytes> {
    let result: ActionBeginTransactionResult = sql
        .action_result(
            "BeginTransaction",
            ActionBeginTransactionRequest {}.as_any(),
        )
        .await?;
    check(
        result.transaction_id.as_ref() == contract::TRANSACTION_ID,
        || {
            format!(
                "wrong transaction ID: expected {:?}, got {:?}",
                String::from_utf8_lossy(contract::TRANSACTION_ID),
                String::from_utf8_lossy(&result.transaction_id)
            )
        },
    )?;
    Ok(result.transaction_id)
}

async fn begin_savepoint(sql: &SqlClient, transaction: &Bytes) -> Outcome<Bytes> {
    let request = ActionBeginSavepointRequest {
        transaction_id: transaction.clone(),
        name: contract::SAVEPOINT_NAME.to_string(),
    };
    let result: ActionBeginSavepointResult = sql
        .action_result("BeginSavepoint", request.as_any())
        .await?;
    check(
        result.savepoint_id.as_ref() == contract::SAVEPOINT_ID,
        || {
            format!(
                "wrong savepoint ID: expected {:?}, got {:?}",
                String::from_utf8_lossy(contract::SAVEPOINT_ID),
                String::from_utf8_lossy(&result.savepoint_id)
            )
        },
    )?;
    Ok(result.savepoint_id)
}

async fn end_savepoint(sql: &SqlClient, savepoint: &Bytes, action: i32) -> Outcome {
    let request = ActionEndSavepointRequest {
        savepoint_id: savepoint.clone(),
        action,
    };
    sql.action("EndSavepoint", request.as_any())
        .await
        .map(|_| ())
}

async fn end_transaction(sql: &SqlClient, transaction: &Bytes, action: EndTransaction) -> Outcome {
    let request = ActionEndTransactionRequest {
        transaction_id: transaction.clone(),
        action: action as i32,
    };
    sql.action("EndTransaction", request.as_any())
        .await
        .map(|_| ())
}

/// Everything again inside a transaction, with savepoints; then a commit, and a second
/// transaction rolled back.
async fn transactions(sql: &SqlClient) -> Outcome {
    let transaction = begin_transaction(sql).await?;
    let savepoint = begin_savepoint(sql, &transaction).await?;
    let txn = Some(&transaction);
    let txn_schema = contract::transaction_query_schema();

    let info = sql
        .flight_info(statement(txn).as_any(), "Execute in a transaction")
        .await?;
    sql.validate(&info, &txn_schema, "Execute in a transaction")
        .await?;
    let info = sql
        .flight_info(substrait(txn).as_any(), "ExecuteSubstrait in a transaction")
        .await?;
    sql.validate(&info, &txn_schema, "ExecuteSubstrait in a transaction")
        .await?;
    let schema = sql
        .schema(statement(txn).as_any(), "GetExecuteSchema in a transaction")
        .await?;
    check_schema(&txn_schema, &schema, "GetExecuteSchema in a transaction")?;
    let schema = sql
        .schema(
            substrait(txn).as_any(),
            "GetExecuteSubstraitSchema in a transaction",
        )
        .await?;
    check_schema(
        &txn_schema,
        &schema,
        "GetExecuteSubstraitSchema in a transaction",
    )?;
    let rows = sql
        .update(
            update_statement(txn).as_any(),
            None,
            "ExecuteUpdate in a transaction",
        )
        .await?;
    expect_rows(
        contract::UPDATE_ROWS_IN_TRANSACTION,
        rows,
        "ExecuteUpdate with transaction",
    )?;
    let rows = sql
        .update(
            substrait(txn).as_any(),
            None,
            "ExecuteSubstraitUpdate in a transaction",
        )
        .await?;
    expect_rows(
        contract::UPDATE_ROWS_IN_TRANSACTION,
        rows,
        "ExecuteSubstraitUpdate with transaction",
    )?;

    let parameters = contract::parameters().arrow("making the parameters")?;
    let prepared = [
        (
            "CreatePreparedStatement",
            prepare_statement(contract::SELECT_PREPARED_STATEMENT, txn).as_any(),
        ),
        (
            "CreatePreparedSubstraitPlan",
            prepare_substrait(txn).as_any(),
        ),
    ];
    for (kind, request) in prepared {
        let what = format!("{kind} in a transaction");
        let mut select = sql.prepare(kind, request).await?;
        select.set_parameters(parameters.clone());
        let info = select.execute(&format!("Execute of {what}")).await?;
        sql.validate(&info, &txn_schema, &format!("Execute of {what}"))
            .await?;
        let schema = select.schema(&format!("GetSchema of {what}")).await?;
        check_schema(&txn_schema, &schema, &format!("GetSchema of {what}"))?;
        select.close().await?;
    }
    let updates = [
        (
            "CreatePreparedStatement",
            prepare_statement(contract::UPDATE_PREPARED_STATEMENT, txn).as_any(),
        ),
        (
            "CreatePreparedSubstraitPlan",
            prepare_substrait(txn).as_any(),
        ),
    ];
    for (kind, request) in updates {
        let what = format!("ExecuteUpdate of {kind} in a transaction");
        let update = sql.prepare(kind, request).await?;
        let rows = update.execute_update(&what).await?;
        expect_rows(contract::PREPARED_UPDATE_ROWS_IN_TRANSACTION, rows, &what)?;
        update.close().await?;
    }

    end_savepoint(sql, &savepoint, contract::END_SAVEPOINT_ROLLBACK).await?;
    let savepoint = begin_savepoint(sql, &transaction).await?;
    end_savepoint(sql, &savepoint, contract::END_SAVEPOINT_RELEASE).await?;
    end_transaction(sql, &transaction, EndTransaction::Commit).await?;

    let second = begin_transaction(sql).await?;
    end_transaction(sql, &second, EndTransaction::Rollback).await
}

// ---- flight_sql:ingestion --------------------------------------------------------------------

/// CommandStatementIngest with every option set, uploading three rows.
async fn ingestion(sql: &SqlClient) -> Outcome {
    let rows = contract::ingest_rows().arrow("making the rows to ingest")?;
    let command = CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: TableNotExistOption::Create as i32,
            if_exists: TableExistsOption::Replace as i32,
        }),
        table: contract::INGEST_TABLE.to_string(),
        schema: some(contract::INGEST_SCHEMA),
        catalog: some(contract::INGEST_CATALOG),
        temporary: true,
        transaction_id: Some(Bytes::from_static(contract::INGEST_TRANSACTION_ID)),
        options: contract::ingest_options(),
    };
    let ingested = sql
        .update(
            command.as_any(),
            Some((rows.schema(), vec![rows])),
            "ExecuteIngest",
        )
        .await?;
    expect_rows(contract::INGEST_ROWS, ingested, "ExecuteIngest")
}
