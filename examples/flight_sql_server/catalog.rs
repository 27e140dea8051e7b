//! A small read-only SQL database served over Flight SQL: [`SqlCatalogService`].
//!
//! The database is one catalog, `polyflight`, with one schema, `public`, holding two tables made
//! up when the service is created:
//!
//! - `trips` (`id` int64, `city` utf8, `distance` float64, `passengers` int32): 1,000 rows, row
//!   `i` (0-based) being `id = i + 1`, `city = CITIES[i % 6]`, `distance = ((i * 37) % 1000) / 10`
//!   and `passengers = 1 + (i * 5) % 6`, held in batches of 256 rows;
//! - `cities` (`name` utf8, `country` utf8, `population` int64): six rows, the cities the trips
//!   go to.
//!
//! The metadata commands (GetCatalogs, GetDbSchemas, GetTables, GetTableTypes, GetSqlInfo) answer
//! from that catalog in the schemas Flight SQL prescribes, built with arrow-flight's builders,
//! which also apply the clients' filters and `LIKE` patterns. Queries — CommandStatementQuery, or
//! the same text as a prepared statement — are a small subset of SQL read by the parser below:
//!
//! ```text
//! SELECT * | column [, column ...] FROM [[polyflight.]public.]table
//!     [WHERE column OP literal [AND column OP literal ...]] [LIMIT n] [;]
//! ```
//!
//! where `OP` is one of `= != <> < <= > >=` and a literal is an integer, a decimal number or a
//! `'string'` (`''` inside it stands for one quote). Keywords and unquoted names are
//! case-insensitive; `"double-quoted"` names match exactly. Conditions are evaluated with Arrow's
//! comparison kernels, batch by batch, before `LIMIT` and the projection.
//!
//! Both ways of running a query are served: CommandStatementQuery (GetFlightInfo, then DoGet
//! with a TicketStatementQuery) and prepared statements (the CreatePreparedStatement action,
//! GetFlightInfo and DoGet with a CommandPreparedStatementQuery, ClosePreparedStatement), which is
//! how ADBC's driver runs every query. The service keeps no per-query state: a statement's ticket
//! and a prepared statement's handle are the query text itself, so closing a prepared statement
//! has nothing to free and any server can answer any ticket. For the same reason Flight's
//! `CloseSession` action, which clients send when they disconnect, always succeeds. Everything
//! else in Flight SQL (updates, transactions, Substrait, keys, parameters) answers UNIMPLEMENTED.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Datum, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, ProstMessageExt, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity,
    SqlSupportedTransaction, SupportedSqlGrammar, TicketStatementQuery,
};
use arrow_flight::{Action, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use std::fmt;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The one catalog.
const CATALOG: &str = "polyflight";
/// The one schema in it.
const DB_SCHEMA: &str = "public";
/// The type of every table (GetTableTypes lists only this one).
const TABLE_TYPE: &str = "TABLE";
/// What GetSqlInfo reports as the server's name.
const SERVER_NAME: &str = "polyflight flight_sql_server";
/// The arrow-rs release the server is built with, reported as its Arrow version.
const ARROW_VERSION: &str = "60";
/// Rows in `trips`.
const TRIP_ROWS: usize = 1000;
/// Rows per batch of `trips` (several batches, so that filters and `LIMIT` cross batches).
const TRIP_BATCH_ROWS: usize = 256;
/// The rows of `cities`: name, country, population (rounded).
const CITIES: [(&str, &str, i64); 6] = [
    ("Amsterdam", "Netherlands", 920_000),
    ("Berlin", "Germany", 3_780_000),
    ("Lisbon", "Portugal", 550_000),
    ("Nairobi", "Kenya", 4_400_000),
    ("Osaka", "Japan", 2_750_000),
    ("Toronto", "Canada", 2_790_000),
];
/// Flight's action that ends a client's session (see [`CloseSessionResult`]).
const CLOSE_SESSION: &str = "CloseSession";
/// `CloseSessionResult.Status.CLOSED`.
const SESSION_CLOSED: i32 = 1;
/// The words the query grammar reserves.
const KEYWORDS: [&str; 5] = ["SELECT", "FROM", "WHERE", "AND", "LIMIT"];

/// The Flight SQL service over the in-memory catalog described in the module documentation.
///
/// Cloning is cheap (the tables are shared); every clone serves the same data.
#[derive(Clone)]
pub struct SqlCatalogService {
    tables: Arc<[Table]>,
    sql_info: Arc<SqlInfoData>,
}

/// One table: its name, schema and rows.
struct Table {
    name: &'static str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

/// A query's answer: the schema of its rows (sent even when there are none) and the rows.
struct QueryResult {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl QueryResult {
    fn num_rows(&self) -> i64 {
        self.batches.iter().map(|b| b.num_rows() as i64).sum()
    }
}

impl Default for SqlCatalogService {
    fn default() -> Self {
        Self::new()
    }
}

impl SqlCatalogService {
    /// The service with its tables generated (the same rows every time).
    pub fn new() -> Self {
        Self {
            tables: Arc::from(vec![trips_table(), cities_table()]),
            sql_info: Arc::new(sql_info()),
        }
    }

    /// The table a query names, by its unqualified name.
    fn table(&self, name: &Ident) -> Result<&Table, Status> {
        self.tables
            .iter()
            .find(|table| name.matches(table.name))
            .ok_or_else(|| {
                let known: Vec<&str> = self.tables.iter().map(|t| t.name).collect();
                Status::not_found(format!(
                    "table {name} not found in {CATALOG}.{DB_SCHEMA} (tables: {})",
                    known.join(", ")
                ))
            })
    }

    /// Parses and checks `sql` against the catalog, without reading any rows.
    fn plan(&self, sql: &str) -> Result<Plan<'_>, Status> {
        let query = Parser::parse(sql)?;
        let table = self.resolve_table(&query.table)?;
        let projection = match &query.columns {
            Projection::All => (0..table.schema.fields().len()).collect(),
            Projection::Columns(columns) => columns
                .iter()
                .map(|column| column_index(table, column))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let filters = query
            .conditions
            .iter()
            .map(|condition| Filter::resolve(table, condition))
            .collect::<Result<Vec<_>, _>>()?;
        let schema = table.schema.project(&projection).map_err(internal)?;
        Ok(Plan {
            table,
            projection,
            filters,
            limit: query.limit,
            schema: Arc::new(schema),
        })
    }

    /// Checks a (possibly qualified) table name against the catalog.
    fn resolve_table(&self, parts: &[Ident]) -> Result<&Table, Status> {
        let (qualifiers, name) = match parts.split_last() {
            Some((name, qualifiers)) if qualifiers.len() <= 2 => (qualifiers, name),
            _ => {
                return Err(Status::invalid_argument(
                    "a table name is [catalog.][schema.]table",
                ))
            }
        };
        let expected = [CATALOG, DB_SCHEMA];
        let expected = &expected[expected.len() - qualifiers.len()..];
        for (given, wanted) in qualifiers.iter().zip(expected) {
            if !given.matches(wanted) {
                return Err(Status::not_found(format!(
                    "{given} is not a catalog or schema here: the tables are in \
                     {CATALOG}.{DB_SCHEMA}"
                )));
            }
        }
        self.table(name)
    }

    /// Runs `sql`, collecting its rows.
    fn run(&self, sql: &str) -> Result<QueryResult, Status> {
        self.plan(sql)?.execute()
    }

    /// The FlightInfo of a result: its schema and size, and one endpoint whose ticket is
    /// `ticket` (no locations: fetch it from this server).
    fn flight_info(
        descriptor: FlightDescriptor,
        schema: &Schema,
        total_records: i64,
        ticket: Any,
    ) -> Result<Response<FlightInfo>, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(internal)?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_total_records(total_records)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    /// The FlightInfo of a metadata command, whose ticket is the command itself.
    fn metadata_info(
        batch: &RecordBatch,
        request: Request<FlightDescriptor>,
        command: Any,
    ) -> Result<Response<FlightInfo>, Status> {
        Self::flight_info(
            request.into_inner(),
            &batch.schema(),
            batch.num_rows() as i64,
            command,
        )
    }

    fn catalogs(&self, query: CommandGetCatalogs) -> Result<RecordBatch, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        builder.build().map_err(Status::from)
    }

    fn db_schemas(&self, query: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG, DB_SCHEMA);
        builder.build().map_err(Status::from)
    }

    fn tables(&self, query: CommandGetTables) -> Result<RecordBatch, Status> {
        let mut builder = query.into_builder();
        for table in self.tables.iter() {
            builder
                .append(CATALOG, DB_SCHEMA, table.name, TABLE_TYPE, &table.schema)
                .map_err(Status::from)?;
        }
        builder.build().map_err(Status::from)
    }

    fn table_types(&self, query: CommandGetTableTypes) -> Result<RecordBatch, Status> {
        let mut builder = query.into_builder();
        builder.append(TABLE_TYPE);
        builder.build().map_err(Status::from)
    }

    fn sql_info_batch(&self, query: CommandGetSqlInfo) -> Result<RecordBatch, Status> {
        query
            .into_builder(&self.sql_info)
            .build()
            .map_err(Status::from)
    }
}

/// Flight's `CloseSessionResult`, the answer to [`CLOSE_SESSION`] (arrow-flight generates no
/// types for Flight's session messages).
#[derive(Clone, PartialEq, prost::Message)]
struct CloseSessionResult {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// A DoGet response streaming `batches` (the schema first, even with no rows).
fn stream_batches(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Response<<SqlCatalogService as FlightService>::DoGetStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter(batches.into_iter().map(Ok)))
        .map_err(Status::from);
    Response::new(stream.boxed())
}

/// The query text a ticket or prepared-statement handle carries.
fn handle_text(handle: &Bytes) -> Result<&str, Status> {
    std::str::from_utf8(handle)
        .map_err(|_| Status::invalid_argument("the statement handle is not one this server issued"))
}

/// An error that is the server's fault, not the query's.
fn internal(error: ArrowError) -> Status {
    Status::internal(error.to_string())
}

#[async_trait::async_trait]
impl FlightSqlService for SqlCatalogService {
    type FlightService = SqlCatalogService;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let result = self.run(&query.query)?;
        let ticket = TicketStatementQuery {
            statement_handle: Bytes::from(query.query.into_bytes()),
        };
        Self::flight_info(
            request.into_inner(),
            &result.schema,
            result.num_rows(),
            ticket.as_any(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let result = self.run(handle_text(&ticket.statement_handle)?)?;
        Ok(stream_batches(result.schema, result.batches))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let plan = self.plan(&query.query)?;
        // FlightInfo carries its schema IPC-encapsulated, the form `dataset_schema` takes too.
        let dataset_schema = FlightInfo::new()
            .try_with_schema(&plan.schema)
            .map_err(internal)?
            .schema;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: Bytes::from(query.query.into_bytes()),
            dataset_schema,
            // The grammar has no parameters.
            parameter_schema: Bytes::new(),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let result = self.run(handle_text(&query.prepared_statement_handle)?)?;
        Self::flight_info(
            request.into_inner(),
            &result.schema,
            result.num_rows(),
            query.as_any(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let result = self.run(handle_text(&query.prepared_statement_handle)?)?;
        Ok(stream_batches(result.schema, result.batches))
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // A handle is the query text: there is nothing to free.
        Ok(())
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let action = request.into_inner();
        if action.r#type == CLOSE_SESSION {
            // Clients close their session when they disconnect (ADBC's driver does); the
            // server keeps none, so it is closed already.
            let result = CloseSessionResult {
                status: SESSION_CLOSED,
            };
            let result = arrow_flight::Result::new(result.encode_to_vec());
            return Ok(Response::new(futures::stream::iter([Ok(result)]).boxed()));
        }
        Err(Status::unimplemented(format!(
            "action {:?} is not supported: this server answers Flight SQL's prepared statement \
             actions and {CLOSE_SESSION}",
            action.r#type
        )))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let batch = self.catalogs(query)?;
        Self::metadata_info(&batch, request, query.as_any())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = self.catalogs(query)?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let batch = self.db_schemas(query.clone())?;
        Self::metadata_info(&batch, request, query.as_any())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = self.db_schemas(query)?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let batch = self.tables(query.clone())?;
        Self::metadata_info(&batch, request, query.as_any())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = self.tables(query)?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let batch = self.table_types(query)?;
        Self::metadata_info(&batch, request, query.as_any())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = self.table_types(query)?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let batch = self.sql_info_batch(query.clone())?;
        Self::metadata_info(&batch, request, query.as_any())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = self.sql_info_batch(query)?;
        Ok(stream_batches(batch.schema(), vec![batch]))
    }
}

// --- the tables --------------------------------------------------------------------------------

/// `trips`, by the rule in the module documentation.
fn trips_table() -> Table {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("distance", DataType::Float64, false),
        Field::new("passengers", DataType::Int32, false),
    ]));
    let batches = (0..TRIP_ROWS)
        .step_by(TRIP_BATCH_ROWS)
        .map(|start| {
            let rows = start..(start + TRIP_BATCH_ROWS).min(TRIP_ROWS);
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter_values(
                    rows.clone().map(|i| i as i64 + 1),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.clone().map(|i| CITIES[i % CITIES.len()].0),
                )),
                Arc::new(Float64Array::from_iter_values(
                    rows.clone().map(|i| ((i * 37) % 1000) as f64 / 10.0),
                )),
                Arc::new(Int32Array::from_iter_values(
                    rows.map(|i| 1 + ((i * 5) % 6) as i32),
                )),
            ];
            batch(&schema, columns)
        })
        .collect();
    Table {
        name: "trips",
        schema,
        batches,
    }
}

/// `cities`, from [`CITIES`].
fn cities_table() -> Table {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("population", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(CITIES.iter().map(|c| c.0))),
        Arc::new(StringArray::from_iter_values(CITIES.iter().map(|c| c.1))),
        Arc::new(Int64Array::from_iter_values(CITIES.iter().map(|c| c.2))),
    ];
    Table {
        name: "cities",
        batches: vec![batch(&schema, columns)],
        schema,
    }
}

/// A batch of the built-in tables, whose columns are made to match their schema.
fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema.clone(), columns)
        .expect("the built-in tables' columns match their schemas")
}

/// What GetSqlInfo answers: enough for generic clients (ADBC, JDBC) to know what they talk to.
fn sql_info() -> SqlInfoData {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, SERVER_NAME);
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, ARROW_VERSION);
    info.append(SqlInfo::FlightSqlServerReadOnly, true);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    info.append(SqlInfo::FlightSqlServerCancel, false);
    info.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    info.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    info.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, false);
    info.append(SqlInfo::SqlDdlTable, false);
    info.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    info.append(SqlInfo::SqlAllTablesAreSelectable, true);
    info.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedAtEnd as i32,
    );
    info.append(SqlInfo::SqlKeywords, &KEYWORDS[..]);
    // A bit mask of the ODBC grammar levels: the minimum one only.
    info.append(
        SqlInfo::SqlSupportedGrammar,
        1i32 << SupportedSqlGrammar::SqlMinimumGrammar as i32,
    );
    info.append(SqlInfo::SqlTransactionsSupported, false);
    info.append(SqlInfo::SqlSelectForUpdateSupported, false);
    info.append(SqlInfo::SqlStoredProceduresSupported, false);
    info.append(SqlInfo::SqlMaxColumnsInSelect, 0i64);
    info.build()
        .expect("the server's SqlInfo values have the types Flight SQL gives them")
}

// --- queries ------------------------------------------------------------------------------------

/// A query checked against the catalog: which table, which columns, which rows.
struct Plan<'a> {
    table: &'a Table,
    projection: Vec<usize>,
    filters: Vec<Filter>,
    limit: Option<usize>,
    schema: SchemaRef,
}

impl Plan<'_> {
    /// Reads the table batch by batch: conditions, then `LIMIT`, then the projection.
    fn execute(self) -> Result<QueryResult, Status> {
        let mut remaining = self.limit.unwrap_or(usize::MAX);
        let mut batches = Vec::new();
        for batch in &self.table.batches {
            if remaining == 0 {
                break;
            }
            let mut rows = batch.clone();
            for filter in &self.filters {
                let mask = filter.evaluate(&rows).map_err(internal)?;
                rows = arrow_select::filter::filter_record_batch(&rows, &mask).map_err(internal)?;
            }
            let rows = rows.slice(0, rows.num_rows().min(remaining));
            remaining -= rows.num_rows();
            if rows.num_rows() > 0 {
                batches.push(rows.project(&self.projection).map_err(internal)?);
            }
        }
        Ok(QueryResult {
            schema: self.schema,
            batches,
        })
    }
}

/// A condition resolved against a table: the column's index and the value, in the type both
/// sides are compared in.
struct Filter {
    column: usize,
    op: CmpOp,
    value: Operand,
}

/// The common type of a comparison: integers compare as int64, a decimal literal or a float
/// column makes both sides float64, strings compare as utf8.
enum Operand {
    Int64(i64),
    Float64(f64),
    Utf8(String),
}

impl Filter {
    fn resolve(table: &Table, condition: &Condition) -> Result<Filter, Status> {
        let column = column_index(table, &condition.column)?;
        let data_type = table.schema.field(column).data_type();
        let value = match (data_type, &condition.literal) {
            (DataType::Utf8, Literal::Str(s)) => Operand::Utf8(s.clone()),
            (DataType::Int32 | DataType::Int64, Literal::Int(v)) => Operand::Int64(*v),
            (DataType::Float64, Literal::Int(v)) => Operand::Float64(*v as f64),
            (DataType::Int32 | DataType::Int64 | DataType::Float64, Literal::Float(v)) => {
                Operand::Float64(*v)
            }
            (data_type, literal) => {
                return Err(Status::invalid_argument(format!(
                    "cannot compare column {} ({data_type}) with {literal}",
                    condition.column
                )))
            }
        };
        Ok(Filter {
            column,
            op: condition.op,
            value,
        })
    }

    /// The rows of `batch` the condition holds for.
    fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, ArrowError> {
        let column = batch.column(self.column);
        match &self.value {
            Operand::Utf8(v) => self.op.apply(column, &StringArray::new_scalar(v)),
            Operand::Int64(v) => self
                .op
                .apply(&widen_to_i64(column)?, &Int64Array::new_scalar(*v)),
            Operand::Float64(v) => self
                .op
                .apply(&widen_to_f64(column)?, &Float64Array::new_scalar(*v)),
        }
    }
}

/// An integer column as int64.
fn widen_to_i64(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    if let Some(values) = column.as_primitive_opt::<Int64Type>() {
        return Ok(Arc::new(values.clone()));
    }
    if let Some(values) = column.as_primitive_opt::<Int32Type>() {
        return Ok(Arc::new(values.unary::<_, Int64Type>(i64::from)));
    }
    Err(ArrowError::InvalidArgumentError(format!(
        "{} is not an integer type",
        column.data_type()
    )))
}

/// A numeric column as float64.
fn widen_to_f64(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    if let Some(values) = column.as_primitive_opt::<arrow_array::types::Float64Type>() {
        return Ok(Arc::new(values.clone()));
    }
    if let Some(values) = column.as_primitive_opt::<Int64Type>() {
        return Ok(Arc::new(
            values.unary::<_, arrow_array::types::Float64Type>(|v| v as f64),
        ));
    }
    if let Some(values) = column.as_primitive_opt::<Int32Type>() {
        return Ok(Arc::new(
            values.unary::<_, arrow_array::types::Float64Type>(f64::from),
        ));
    }
    Err(ArrowError::InvalidArgumentError(format!(
        "{} is not a numeric type",
        column.data_type()
    )))
}

/// The index of a column a query names.
fn column_index(table: &Table, name: &Ident) -> Result<usize, Status> {
    table
        .schema
        .fields()
        .iter()
        .position(|field| name.matches(field.name()))
        .ok_or_else(|| {
            let known: Vec<&str> = table
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            Status::not_found(format!(
                "column {name} not found in table {} (columns: {})",
                table.name,
                known.join(", ")
            ))
        })
}

/// A parsed query, before it is checked against the catalog.
struct Query {
    columns: Projection,
    table: Vec<Ident>,
    conditions: Vec<Condition>,
    limit: Option<usize>,
}

enum Projection {
    All,
    Columns(Vec<Ident>),
}

/// `column OP literal`.
struct Condition {
    column: Ident,
    op: CmpOp,
    literal: Literal,
}

/// A name in a query: unquoted names match case-insensitively, quoted ones exactly.
struct Ident {
    text: String,
    quoted: bool,
}

impl Ident {
    fn matches(&self, name: &str) -> bool {
        if self.quoted {
            self.text == name
        } else {
            self.text.eq_ignore_ascii_case(name)
        }
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted {
            write!(f, "\"{}\"", self.text.replace('"', "\"\""))
        } else {
            f.write_str(&self.text)
        }
    }
}

#[derive(Clone, Copy)]
enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    fn from_symbol(symbol: &str) -> Option<CmpOp> {
        Some(match symbol {
            "=" => CmpOp::Eq,
            "!=" | "<>" => CmpOp::NotEq,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::LtEq,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::GtEq,
            _ => return None,
        })
    }

    fn apply(self, lhs: &dyn Datum, rhs: &dyn Datum) -> Result<BooleanArray, ArrowError> {
        use arrow_ord::cmp;
        match self {
            CmpOp::Eq => cmp::eq(lhs, rhs),
            CmpOp::NotEq => cmp::neq(lhs, rhs),
            CmpOp::Lt => cmp::lt(lhs, rhs),
            CmpOp::LtEq => cmp::lt_eq(lhs, rhs),
            CmpOp::Gt => cmp::gt(lhs, rhs),
            CmpOp::GtEq => cmp::gt_eq(lhs, rhs),
        }
    }
}

enum Literal {
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(v) => write!(f, "the integer {v}"),
            Literal::Float(v) => write!(f, "the number {v}"),
            Literal::Str(s) => write!(f, "the string '{}'", s.replace('\'', "''")),
        }
    }
}

/// A lexical token of the query grammar.
#[derive(Clone, PartialEq)]
enum Token {
    /// A keyword or an unquoted name.
    Word(String),
    /// A `"double-quoted"` name.
    Quoted(String),
    /// A `'single-quoted'` string.
    Str(String),
    /// Digits, with at most one `.`.
    Number(String),
    /// `,` `*` `.` `;` `-` or a comparison operator.
    Symbol(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w}"),
            Token::Quoted(q) => write!(f, "\"{q}\""),
            Token::Str(s) => write!(f, "'{s}'"),
            Token::Number(n) => f.write_str(n),
            Token::Symbol(s) => write!(f, "'{s}'"),
        }
    }
}

/// Splits a query into tokens.
fn tokenize(sql: &str) -> Result<Vec<Token>, Status> {
    const SYMBOLS: [&str; 13] = [
        "<=", ">=", "<>", "!=", "=", "<", ">", ",", "*", ".", ";", "-", "(",
    ];
    let mut tokens = Vec::new();
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            tokens.push(Token::Word(rest[..end].to_string()));
            rest = &rest[end..];
        } else if c.is_ascii_digit() {
            let mut end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if rest[end..].starts_with('.') {
                let fraction = &rest[end + 1..];
                end += 1 + fraction
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(fraction.len());
            }
            tokens.push(Token::Number(rest[..end].to_string()));
            rest = &rest[end..];
        } else if c == '\'' || c == '"' {
            let (text, after) = quoted(rest, c)?;
            tokens.push(if c == '\'' {
                Token::Str(text)
            } else {
                Token::Quoted(text)
            });
            rest = after;
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            if *symbol == "(" {
                return Err(Status::invalid_argument(
                    "functions and parentheses are not supported: the grammar is \
                     SELECT * | column, ... FROM table [WHERE column OP literal [AND ...]] \
                     [LIMIT n]",
                ));
            }
            tokens.push(Token::Symbol(symbol));
            rest = &rest[symbol.len()..];
        } else {
            return Err(Status::invalid_argument(format!(
                "unexpected character {c:?} at byte {} of the query",
                sql.len() - rest.len()
            )));
        }
    }
    Ok(tokens)
}

/// Reads a `quote`-delimited token at the start of `input` (a doubled quote stands for one);
/// returns its text and what follows it.
fn quoted(input: &str, quote: char) -> Result<(String, &str), Status> {
    let mut text = String::new();
    let mut chars = input.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c != quote {
            text.push(c);
        } else if chars.peek().is_some_and(|(_, next)| *next == quote) {
            text.push(quote);
            chars.next();
        } else {
            return Ok((text, &input[i + 1..]));
        }
    }
    let what = if quote == '\'' { "string" } else { "name" };
    Err(Status::invalid_argument(format!(
        "unterminated {what}: {quote} without its closing {quote}"
    )))
}

/// A recursive-descent parser over the tokens of one query.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn parse(sql: &str) -> Result<Query, Status> {
        let mut parser = Parser {
            tokens: tokenize(sql)?,
            pos: 0,
        };
        let query = parser.query()?;
        parser.eat_symbol(";");
        match parser.peek() {
            None => Ok(query),
            Some(token) => Err(parser.unexpected(token.clone(), "the end of the query")),
        }
    }

    fn query(&mut self) -> Result<Query, Status> {
        self.expect_keyword("SELECT")?;
        let columns = if self.eat_symbol("*") {
            Projection::All
        } else {
            let mut columns = vec![self.ident("a column name or *")?];
            while self.eat_symbol(",") {
                columns.push(self.ident("a column name")?);
            }
            Projection::Columns(columns)
        };
        self.expect_keyword("FROM")?;
        let mut table = vec![self.ident("a table name")?];
        while self.eat_symbol(".") {
            table.push(self.ident("a table name")?);
        }
        let mut conditions = Vec::new();
        if self.eat_keyword("WHERE") {
            conditions.push(self.condition()?);
            while self.eat_keyword("AND") {
                conditions.push(self.condition()?);
            }
        }
        let limit = if self.eat_keyword("LIMIT") {
            match self.next() {
                Some(Token::Number(n)) => Some(n.parse::<usize>().map_err(|_| {
                    Status::invalid_argument(format!("LIMIT takes a whole number of rows, not {n}"))
                })?),
                other => return Err(self.unexpected_opt(other, "a row count after LIMIT")),
            }
        } else {
            None
        };
        Ok(Query {
            columns,
            table,
            conditions,
            limit,
        })
    }

    fn condition(&mut self) -> Result<Condition, Status> {
        let column = self.ident("a column name")?;
        let found = self.next();
        let Some(op) = found.as_ref().and_then(|token| match token {
            Token::Symbol(s) => CmpOp::from_symbol(s),
            _ => None,
        }) else {
            return Err(self.unexpected_opt(
                found,
                "a comparison operator (= != <> < <= > >=) after the column",
            ));
        };
        let negative = self.eat_symbol("-");
        let literal =
            match self.next() {
                Some(Token::Str(s)) if !negative => Literal::Str(s),
                Some(Token::Number(n)) => {
                    let n = if negative { format!("-{n}") } else { n };
                    if n.contains('.') {
                        Literal::Float(n.parse().map_err(|_| {
                            Status::invalid_argument(format!("{n} is not a number"))
                        })?)
                    } else {
                        Literal::Int(n.parse().map_err(|_| {
                            Status::invalid_argument(format!("integer {n} is out of range"))
                        })?)
                    }
                }
                other => {
                    return Err(self.unexpected_opt(
                        other,
                        "a literal (integer, number or 'string') after the operator",
                    ))
                }
            };
        Ok(Condition {
            column,
            op,
            literal,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        if token.is_some() {
            self.pos += 1;
        }
        token
    }

    fn is_keyword(token: &Token, keyword: &str) -> bool {
        matches!(token, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek().is_some_and(|t| Self::is_keyword(t, keyword));
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), Status> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            let found = self.peek().cloned();
            Err(self.unexpected_opt(found, keyword))
        }
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol);
        if found {
            self.pos += 1;
        }
        found
    }

    fn ident(&mut self, what: &str) -> Result<Ident, Status> {
        match self.next() {
            Some(Token::Word(w)) if !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(&w)) => {
                Ok(Ident {
                    text: w,
                    quoted: false,
                })
            }
            Some(Token::Quoted(q)) => Ok(Ident {
                text: q,
                quoted: true,
            }),
            other => Err(self.unexpected_opt(other, what)),
        }
    }

    fn unexpected(&self, found: Token, wanted: &str) -> Status {
        Status::invalid_argument(format!("expected {wanted}, found {found}"))
    }

    fn unexpected_opt(&self, found: Option<Token>, wanted: &str) -> Status {
        match found {
            Some(token) => self.unexpected(token, wanted),
            None => {
                Status::invalid_argument(format!("expected {wanted}, found the end of the query"))
            }
        }
    }
}
