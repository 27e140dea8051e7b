//! What the server and the client of the Flight SQL scenarios agree on, as Arrow C++'s
//! `test_integration.cc` fixes it: the statement texts and handles, the row counts, the
//! transaction and savepoint ids, the Substrait plan, the schemas of the query results, the
//! schemas Flight SQL prescribes for its metadata commands (as Arrow C++'s `SqlSchema` spells
//! them, field names and nullability included), and the SqlInfo values of the extension and
//! ingestion servers.
//!
//! The metadata schemas are written out here rather than taken from arrow-flight's builders:
//! Arrow C++'s client compares them with their metadata and nullability, and arrow-flight's
//! SqlInfo union marks `string_list` and `int32_to_int32_list_map` nullable where Arrow C++ does
//! not (a test below pins the ones that do agree).

use arrow_array::{
    new_empty_array, ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt32Array, UnionArray,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{
    ArrowError, DataType, Field, Fields, Schema, SchemaRef, UnionFields, UnionMode,
};
use std::collections::HashMap;
use std::sync::Arc;

/// The query of CommandStatementQuery.
pub const SELECT_STATEMENT: &str = "SELECT STATEMENT";
/// The query of CommandStatementUpdate.
pub const UPDATE_STATEMENT: &str = "UPDATE STATEMENT";
/// The query of the prepared statement that is read.
pub const SELECT_PREPARED_STATEMENT: &str = "SELECT PREPARED STATEMENT";
/// The query of the prepared statement that is executed as an update.
pub const UPDATE_PREPARED_STATEMENT: &str = "UPDATE PREPARED STATEMENT";
/// The Substrait plan's bytes.
pub const SUBSTRAIT_PLAN: &[u8] = b"plan";
/// The Substrait plan's version.
pub const SUBSTRAIT_VERSION: &str = "version";
/// What BeginTransaction returns.
pub const TRANSACTION_ID: &[u8] = b"transaction_id";
/// The savepoint name the client asks for.
pub const SAVEPOINT_NAME: &str = "savepoint_name";
/// What BeginSavepoint returns.
pub const SAVEPOINT_ID: &[u8] = b"savepoint_id";

/// `ActionEndSavepointRequest.action` RELEASE (arrow-flight does not export the enum).
pub const END_SAVEPOINT_RELEASE: i32 = 1;
/// `ActionEndSavepointRequest.action` ROLLBACK.
pub const END_SAVEPOINT_ROLLBACK: i32 = 2;

/// Rows "updated" by CommandStatementUpdate and CommandStatementSubstraitPlan.
pub const UPDATE_ROWS: i64 = 10_000;
/// The same, inside a transaction.
pub const UPDATE_ROWS_IN_TRANSACTION: i64 = 15_000;
/// Rows "updated" by a prepared statement.
pub const PREPARED_UPDATE_ROWS: i64 = 20_000;
/// The same, inside a transaction.
pub const PREPARED_UPDATE_ROWS_IN_TRANSACTION: i64 = 25_000;

/// The handle of a statement (or Substrait plan), with or without a transaction: what the
/// server puts in its TicketStatementQuery, and the prepared-statement handles it issues.
pub fn handle(what: &str, in_transaction: bool) -> String {
    if in_transaction {
        format!("{what} WITH TXN HANDLE")
    } else {
        format!("{what} HANDLE")
    }
}

/// The prefix of the handles of Substrait plans (`PLAN HANDLE`, `PLAN WITH TXN HANDLE`).
pub const PLAN: &str = "PLAN";

/// The field metadata key Arrow C++ 21 added to the query schemas (`ColumnMetadata::Remarks`).
pub const REMARKS_KEY: &str = "ARROW:FLIGHT:SQL:REMARKS";

/// The Flight SQL column metadata of the query schemas' one column, as Arrow C++'s
/// `ColumnMetadata::Builder` writes it (booleans as `"1"`/`"0"`).
fn column_metadata() -> HashMap<String, String> {
    [
        ("ARROW:FLIGHT:SQL:TABLE_NAME", "test"),
        ("ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT", "1"),
        ("ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE", "0"),
        ("ARROW:FLIGHT:SQL:TYPE_NAME", "type_test"),
        ("ARROW:FLIGHT:SQL:SCHEMA_NAME", "schema_test"),
        ("ARROW:FLIGHT:SQL:IS_SEARCHABLE", "1"),
        ("ARROW:FLIGHT:SQL:CATALOG_NAME", "catalog_test"),
        ("ARROW:FLIGHT:SQL:PRECISION", "100"),
        (REMARKS_KEY, "test column"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The schema of every query result outside a transaction: `id` int64 with column metadata.
pub fn query_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true).with_metadata(column_metadata())
    ]))
}

/// The schema of query results inside a transaction: `pkey` int32 with column metadata.
pub fn transaction_query_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pkey", DataType::Int32, true).with_metadata(column_metadata())
    ]))
}

/// `schema` as Arrow C++ before 21 wrote it: without [`REMARKS_KEY`] on any field.
pub fn without_remarks(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut metadata = f.metadata().clone();
            metadata.remove(REMARKS_KEY);
            f.as_ref().clone().with_metadata(metadata)
        })
        .collect();
    Schema::new(fields).with_metadata(schema.metadata().clone())
}

/// The parameters the client binds to a prepared statement: one row of [`query_schema`], `1`.
pub fn parameters() -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(query_schema(), vec![Arc::new(Int64Array::from(vec![1]))])
}

/// The schema of the rows the ingestion client uploads: `test_field` int64.
pub fn ingest_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "test_field",
        DataType::Int64,
        true,
    )]))
}

/// The rows the ingestion client uploads: three nulls.
pub fn ingest_rows() -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        ingest_schema(),
        vec![Arc::new(Int64Array::from(vec![None, None, None]))],
    )
}

/// What the ingestion server returns as the count of ingested rows (the rows it read).
pub const INGEST_ROWS: i64 = 3;
/// The table the ingestion client names.
pub const INGEST_TABLE: &str = "test_table";
/// The schema the ingestion client names.
pub const INGEST_SCHEMA: &str = "test_schema";
/// The catalog the ingestion client names.
pub const INGEST_CATALOG: &str = "test_catalog";
/// The transaction the ingestion client runs in.
pub const INGEST_TRANSACTION_ID: &[u8] = b"123";
/// The ingestion options the client passes.
pub fn ingest_options() -> HashMap<String, String> {
    [("key1", "val1"), ("key2", "val2")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- Flight SQL's metadata schemas, as Arrow C++'s SqlSchema defines them --------------------

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

/// CommandGetCatalogs.
pub fn catalogs_schema() -> SchemaRef {
    schema(vec![utf8("catalog_name", false)])
}

/// CommandGetDbSchemas.
pub fn db_schemas_schema() -> SchemaRef {
    schema(vec![
        utf8("catalog_name", true),
        utf8("db_schema_name", false),
    ])
}

/// CommandGetTables without `include_schema`.
pub fn tables_schema() -> SchemaRef {
    schema(vec![
        utf8("catalog_name", true),
        utf8("db_schema_name", true),
        utf8("table_name", false),
        utf8("table_type", false),
    ])
}

/// CommandGetTables with `include_schema`.
pub fn tables_schema_with_schema() -> SchemaRef {
    let mut fields: Vec<Field> = tables_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("table_schema", DataType::Binary, false));
    schema(fields)
}

/// CommandGetTableTypes.
pub fn table_types_schema() -> SchemaRef {
    schema(vec![utf8("table_type", false)])
}

/// CommandGetPrimaryKeys.
pub fn primary_keys_schema() -> SchemaRef {
    schema(vec![
        utf8("catalog_name", true),
        utf8("db_schema_name", true),
        utf8("table_name", false),
        utf8("column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        utf8("key_name", true),
    ])
}

/// CommandGetExportedKeys, CommandGetImportedKeys and CommandGetCrossReference (one schema).
pub fn foreign_keys_schema() -> SchemaRef {
    schema(vec![
        utf8("pk_catalog_name", true),
        utf8("pk_db_schema_name", true),
        utf8("pk_table_name", false),
        utf8("pk_column_name", false),
        utf8("fk_catalog_name", true),
        utf8("fk_db_schema_name", true),
        utf8("fk_table_name", false),
        utf8("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        utf8("fk_key_name", true),
        utf8("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ])
}

/// CommandGetXdbcTypeInfo.
pub fn xdbc_type_info_schema() -> SchemaRef {
    let int32 = |name: &str, nullable: bool| Field::new(name, DataType::Int32, nullable);
    let boolean = |name: &str, nullable: bool| Field::new(name, DataType::Boolean, nullable);
    schema(vec![
        utf8("type_name", false),
        int32("data_type", false),
        int32("column_size", true),
        utf8("literal_prefix", true),
        utf8("literal_suffix", true),
        Field::new(
            "create_params",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, false))),
            true,
        ),
        int32("nullable", false),
        boolean("case_sensitive", false),
        int32("searchable", false),
        boolean("unsigned_attribute", true),
        boolean("fixed_prec_scale", false),
        boolean("auto_increment", true),
        utf8("local_type_name", true),
        int32("minimum_scale", true),
        int32("maximum_scale", true),
        int32("sql_data_type", false),
        int32("datetime_subcode", true),
        int32("num_prec_radix", true),
        int32("interval_precision", true),
    ])
}

/// The type codes of the SqlInfo value union, in the order of its members (4, `string_list`,
/// and 5, `int32_to_int32_list_map`, carry no value in these scenarios).
pub mod info_type {
    /// `string_value`.
    pub const STRING: i8 = 0;
    /// `bool_value`.
    pub const BOOL: i8 = 1;
    /// `bigint_value`.
    pub const BIGINT: i8 = 2;
    /// `int32_bitmask`.
    pub const INT32: i8 = 3;
}

/// The dense union of SqlInfo values.
fn sql_info_union_fields() -> UnionFields {
    let map_entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Int32, false),
            Field::new(
                "value",
                DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
                true,
            ),
        ])),
        false,
    );
    let members = vec![
        utf8("string_value", false),
        Field::new("bool_value", DataType::Boolean, false),
        Field::new("bigint_value", DataType::Int64, false),
        Field::new("int32_bitmask", DataType::Int32, false),
        Field::new(
            "string_list",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            false,
        ),
        Field::new(
            "int32_to_int32_list_map",
            DataType::Map(Arc::new(map_entries), false),
            false,
        ),
    ];
    UnionFields::from_fields(members)
}

/// CommandGetSqlInfo: `info_name` uint32 and `value`, a dense union.
pub fn sql_info_schema() -> SchemaRef {
    schema(vec![
        Field::new("info_name", DataType::UInt32, false),
        Field::new(
            "value",
            DataType::Union(sql_info_union_fields(), UnionMode::Dense),
            false,
        ),
    ])
}

/// One SqlInfo value of the kinds these scenarios use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoValue {
    /// `string_value`.
    String(String),
    /// `bool_value`.
    Bool(bool),
    /// `bigint_value`.
    BigInt(i64),
    /// `int32_bitmask`: what Arrow C++ makes of an `int32_t` or an enum value.
    Int32(i32),
}

/// What the extension scenario's server reports, by SqlInfo id (FLIGHT_SQL_SERVER_SQL,
/// _SUBSTRAIT, _SUBSTRAIT_MIN_VERSION, _SUBSTRAIT_MAX_VERSION, _TRANSACTION (savepoints),
/// _CANCEL, _STATEMENT_TIMEOUT, _TRANSACTION_TIMEOUT).
pub fn extension_sql_info() -> Vec<(u32, InfoValue)> {
    use arrow_flight::sql::{SqlInfo, SqlSupportedTransaction};
    vec![
        (SqlInfo::FlightSqlServerSql as u32, InfoValue::Bool(false)),
        (
            SqlInfo::FlightSqlServerSubstrait as u32,
            InfoValue::Bool(true),
        ),
        (
            SqlInfo::FlightSqlServerSubstraitMinVersion as u32,
            InfoValue::String("min_version".to_string()),
        ),
        (
            SqlInfo::FlightSqlServerSubstraitMaxVersion as u32,
            InfoValue::String("max_version".to_string()),
        ),
        (
            SqlInfo::FlightSqlServerTransaction as u32,
            InfoValue::Int32(SqlSupportedTransaction::Savepoint as i32),
        ),
        (SqlInfo::FlightSqlServerCancel as u32, InfoValue::Bool(true)),
        (
            SqlInfo::FlightSqlServerStatementTimeout as u32,
            InfoValue::Int32(42),
        ),
        (
            SqlInfo::FlightSqlServerTransactionTimeout as u32,
            InfoValue::Int32(7),
        ),
    ]
}

/// What the ingestion scenario's server reports: bulk ingestion, in transactions too.
pub fn ingestion_sql_info() -> Vec<(u32, InfoValue)> {
    use arrow_flight::sql::SqlInfo;
    vec![
        (
            SqlInfo::FlightSqlServerBulkIngestion as u32,
            InfoValue::Bool(true),
        ),
        (
            SqlInfo::FlightSqlServerIngestTransactionsSupported as u32,
            InfoValue::Bool(true),
        ),
    ]
}

/// A batch of [`sql_info_schema`] with one row per entry of `values`, in their order.
pub fn sql_info_batch(values: &[(u32, InfoValue)]) -> Result<RecordBatch, ArrowError> {
    let mut type_ids = Vec::with_capacity(values.len());
    let mut offsets = Vec::with_capacity(values.len());
    let mut strings: Vec<&str> = Vec::new();
    let mut bools = Vec::new();
    let mut bigints = Vec::new();
    let mut int32s = Vec::new();
    for (_, value) in values {
        let (type_id, offset) = match value {
            InfoValue::String(s) => {
                strings.push(s.as_str());
                (info_type::STRING, strings.len() - 1)
            }
            InfoValue::Bool(b) => {
                bools.push(*b);
                (info_type::BOOL, bools.len() - 1)
            }
            InfoValue::BigInt(n) => {
                bigints.push(*n);
                (info_type::BIGINT, bigints.len() - 1)
            }
            InfoValue::Int32(n) => {
                int32s.push(*n);
                (info_type::INT32, int32s.len() - 1)
            }
        };
        type_ids.push(type_id);
        let offset = i32::try_from(offset)
            .map_err(|_| ArrowError::InvalidArgumentError("too many SqlInfo values".into()))?;
        offsets.push(offset);
    }
    let fields = sql_info_union_fields();
    let mut children: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(strings)),
        Arc::new(BooleanArray::from(bools)),
        Arc::new(Int64Array::from(bigints)),
        Arc::new(Int32Array::from(int32s)),
    ];
    for (_, field) in fields.iter().skip(children.len()) {
        children.push(new_empty_array(field.data_type()));
    }
    let union = UnionArray::try_new(
        fields,
        ScalarBuffer::from(type_ids),
        Some(ScalarBuffer::from(offsets)),
        children,
    )?;
    let names = UInt32Array::from(values.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    RecordBatch::try_new(sql_info_schema(), vec![Arc::new(names), Arc::new(union)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_flight::sql::metadata::{SqlInfoDataBuilder, XdbcTypeInfoDataBuilder};
    use arrow_flight::sql::{
        CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables,
    };

    #[test]
    fn agrees_with_arrow_flight_where_arrow_flight_agrees_with_arrow_cpp() {
        assert_eq!(
            CommandGetCatalogs {}.into_builder().schema(),
            catalogs_schema()
        );
        let db_schemas = CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        };
        assert_eq!(db_schemas.into_builder().schema(), db_schemas_schema());
        for (include_schema, expected) in [
            (false, tables_schema()),
            (true, tables_schema_with_schema()),
        ] {
            let tables = CommandGetTables {
                include_schema,
                ..Default::default()
            };
            assert_eq!(tables.into_builder().schema(), expected);
        }
        assert_eq!(
            CommandGetTableTypes {}.into_builder().schema(),
            table_types_schema()
        );
        let xdbc = XdbcTypeInfoDataBuilder::new().build().unwrap();
        assert_eq!(xdbc.schema(), xdbc_type_info_schema());
        // arrow-flight's SqlInfo union differs only in the nullability of its list members.
        let theirs = SqlInfoDataBuilder::schema();
        assert_ne!(*theirs, *sql_info_schema());
        assert_eq!(theirs.field(0), sql_info_schema().field(0));
    }

    #[test]
    fn sql_info_rows_keep_their_order_and_kinds() {
        let values = extension_sql_info();
        let batch = sql_info_batch(&values).unwrap();
        assert_eq!(batch.num_rows(), values.len());
        let names = batch
            .column(0)
            .as_primitive::<arrow_array::types::UInt32Type>();
        let union = batch.column(1).as_union();
        for (row, (id, value)) in values.iter().enumerate() {
            assert_eq!(names.value(row), *id);
            let expected = match value {
                InfoValue::String(_) => info_type::STRING,
                InfoValue::Bool(_) => info_type::BOOL,
                InfoValue::BigInt(_) => info_type::BIGINT,
                InfoValue::Int32(_) => info_type::INT32,
            };
            assert_eq!(union.type_id(row), expected);
        }
        assert!(sql_info_batch(&[]).unwrap().num_rows() == 0);
    }

    #[test]
    fn remarks_come_off_every_field() {
        let old = without_remarks(&query_schema());
        assert!(old.field(0).metadata().get(REMARKS_KEY).is_none());
        assert_eq!(old.field(0).metadata().len(), 8);
    }
}
