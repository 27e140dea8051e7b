//! Flight SQL across the tonic bridge: the example Flight SQL service
//! (`examples/flight_sql_server/catalog.rs`, an `arrow_flight::sql::server::FlightSqlService`)
//! served by polyflight through `ArrowFlightAdapter` on every transport, and read
//!
//! - by polyflight's `FlightSqlClient` over each transport: metadata commands, a query whose rows
//!   are checked against the catalog's generated data, a prepared statement, and errors that keep
//!   their code and message;
//! - by arrow-flight's own clients (`FlightClient`, `FlightSqlServiceClient`, on tonic channels:
//!   peers this project did not write) over grpc and grpc+tls.

#[path = "../examples/flight_sql_server/catalog.rs"]
mod catalog;
mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTables, CommandStatementQuery, ProstMessageExt, SqlInfo,
};
use arrow_schema::{DataType, Field, Schema};
use futures::TryStreamExt;
use polyflight::{FlightClient, FlightCode, LoopbackEndpoint, Server, ServerBuilder};
use polyflight_grpc::tls::LoopbackPki;
use polyflight_tonic::sql::FlightSqlClient;
use polyflight_tonic::ArrowFlightAdapter;
use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// The cities of the catalog's `trips`, in the order its rows cycle through them.
const CITIES: [&str; 6] = [
    "Amsterdam",
    "Berlin",
    "Lisbon",
    "Nairobi",
    "Osaka",
    "Toronto",
];

/// The query every client runs: a filter on two columns whose matches span several of the
/// table's batches, cut by a LIMIT.
const QUERY: &str =
    "SELECT id, city, distance FROM trips WHERE city = 'Lisbon' AND distance > 50.5 LIMIT 60";

/// The rows [`QUERY`] must return, from the rule the catalog generates `trips` by.
fn expected_rows() -> Vec<(i64, String, f64)> {
    (0..1000usize)
        .map(|i| {
            (
                i as i64 + 1,
                CITIES[i % CITIES.len()].to_string(),
                ((i * 37) % 1000) as f64 / 10.0,
            )
        })
        .filter(|(_, city, distance)| city == "Lisbon" && *distance > 50.5)
        .take(60)
        .collect()
}

/// The rows of `batches` with [`QUERY`]'s columns.
fn query_rows(batches: &[RecordBatch]) -> Vec<(i64, String, f64)> {
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "city", "distance"]);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let cities = batch.column(1).as_string::<i32>();
        let distances = batch.column(2).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            rows.push((
                ids.value(row),
                cities.value(row).to_string(),
                distances.value(row),
            ));
        }
    }
    rows
}

/// Every value of the utf8 column `name` of `batches`.
fn strings(batches: &[RecordBatch], name: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|batch| {
            let column = batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("column {name} in {:?}", batch.schema()));
            let column = column.as_string::<i32>();
            (0..column.len())
                .map(|row| column.value(row).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The catalog's `trips` schema, as GetTables must report it.
fn trips_schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("distance", DataType::Float64, false),
        Field::new("passengers", DataType::Int32, false),
    ])
}

/// The catalog service served by polyflight on one transport.
struct SqlServer {
    server: Option<Server>,
    endpoint: LoopbackEndpoint,
    /// The CA that signed the server's certificate, on grpc+tls.
    ca_pem: Option<String>,
}

impl SqlServer {
    async fn start(transport: &str) -> SqlServer {
        // grpc+tls gets certificates minted here, so that tonic can be told the CA too.
        let (endpoint, ca_pem) = if transport == "grpc+tls" {
            let pki = LoopbackPki::generate().expect("certificates minted");
            let endpoint = pki.endpoint(false).expect("grpc+tls endpoint");
            (endpoint, Some(pki.ca_pem))
        } else {
            (common::endpoint_for(transport), None)
        };
        let service = ArrowFlightAdapter::new(catalog::SqlCatalogService::new());
        let server = ServerBuilder::new(service, common::registry())
            .listen_with(endpoint.listen_uri.clone(), endpoint.listen.clone())
            .start()
            .await
            .expect("server starts");
        SqlServer {
            server: Some(server),
            endpoint,
            ca_pem,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("the server runs")
    }

    /// polyflight's Flight SQL client, over the server's transport.
    async fn client(&self) -> FlightSqlClient {
        let client = FlightClient::connect_with_options(
            common::registry(),
            self.server().location().uri(),
            self.endpoint.connect.clone(),
        )
        .await
        .expect("client connects");
        FlightSqlClient::new(client)
    }

    /// A tonic channel to the server (grpc and grpc+tls).
    async fn tonic_channel(&self) -> Channel {
        let authority = self
            .server()
            .location()
            .authority()
            .expect("a host:port location");
        let endpoint = match &self.ca_pem {
            None => Endpoint::from_shared(format!("http://{authority}")).expect("endpoint"),
            Some(ca_pem) => Endpoint::from_shared(format!("https://{authority}"))
                .expect("endpoint")
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(ca_pem))
                        .domain_name("localhost"),
                )
                .expect("tonic TLS configuration"),
        };
        endpoint.connect().await.expect("tonic connects")
    }

    /// Shuts the server down (cleanly) and removes what its endpoint made on disk.
    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        self.endpoint.cleanup();
    }
}

/// polyflight's `FlightSqlClient` against the catalog: every call it makes.
async fn flight_sql_client(sql: &FlightSqlClient) {
    // GetCatalogs
    let catalogs = sql
        .read_all(&sql.get_catalogs().await.expect("get_catalogs"))
        .await
        .expect("catalogs read");
    assert_eq!(strings(&catalogs, "catalog_name"), ["polyflight"]);

    // GetDbSchemas, with a filter that matches and one that does not
    let schemas = |catalog: &str| CommandGetDbSchemas {
        catalog: Some(catalog.to_string()),
        db_schema_filter_pattern: Some("pub%".to_string()),
    };
    let info = sql
        .get_db_schemas(schemas("polyflight"))
        .await
        .expect("get_db_schemas");
    let found = sql.read_all(&info).await.expect("schemas read");
    assert_eq!(strings(&found, "catalog_name"), ["polyflight"]);
    assert_eq!(strings(&found, "db_schema_name"), ["public"]);
    let info = sql
        .get_db_schemas(schemas("elsewhere"))
        .await
        .expect("get_db_schemas");
    let found = sql.read_all(&info).await.expect("schemas read");
    assert_eq!(found.iter().map(|b| b.num_rows()).sum::<usize>(), 0);

    // GetTables with the tables' schemas
    let info = sql
        .get_tables(CommandGetTables {
            catalog: Some("polyflight".into()),
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("%".into()),
            table_types: vec!["TABLE".into()],
            include_schema: true,
        })
        .await
        .expect("get_tables");
    let tables = sql.read_all(&info).await.expect("tables read");
    let names = strings(&tables, "table_name");
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"trips".to_string()), "{names:?}");
    assert!(names.contains(&"cities".to_string()), "{names:?}");
    assert!(strings(&tables, "table_type").iter().all(|t| t == "TABLE"));
    let mut trips = None;
    for batch in &tables {
        let schemas = batch
            .column_by_name("table_schema")
            .expect("table_schema column")
            .as_binary::<i32>();
        let names = batch
            .column_by_name("table_name")
            .expect("table_name column")
            .as_string::<i32>();
        for row in 0..batch.num_rows() {
            let schema =
                polyflight::codec::decode_schema(schemas.value(row)).expect("table schema decodes");
            if names.value(row) == "trips" {
                trips = Some(schema);
            }
        }
    }
    assert_eq!(trips.expect("trips listed"), trips_schema());

    // GetTableTypes
    let types = sql
        .read_all(&sql.get_table_types().await.expect("get_table_types"))
        .await
        .expect("table types read");
    assert_eq!(strings(&types, "table_type"), ["TABLE"]);

    // GetSqlInfo: the rows asked for, the server's name in the union's string member
    let info = sql
        .get_sql_info([
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .expect("get_sql_info");
    let answers = sql.read_all(&info).await.expect("sql info read");
    let mut server_name = None;
    let mut ids = Vec::new();
    for batch in &answers {
        let names = batch.column(0).as_primitive::<UInt32Type>();
        let values = batch.column(1).as_union();
        for row in 0..batch.num_rows() {
            ids.push(names.value(row));
            if names.value(row) == SqlInfo::FlightSqlServerName as u32 {
                let value = values.value(row);
                server_name = Some(value.as_string::<i32>().value(0).to_string());
            }
        }
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            SqlInfo::FlightSqlServerName as u32,
            SqlInfo::FlightSqlServerReadOnly as u32
        ]
    );
    assert_eq!(server_name.as_deref(), Some("polyflight flight_sql_server"));

    // a query with WHERE and LIMIT, checked row for row
    let info = sql.execute(QUERY, None).await.expect("execute");
    assert_eq!(info.total_records, 60);
    let batches = sql.read_all(&info).await.expect("query result read");
    assert_eq!(query_rows(&batches), expected_rows());
    // the same through do_get, endpoint by endpoint
    let mut rows = Vec::new();
    for endpoint in &info.endpoint {
        let ticket = endpoint.ticket.clone().expect("a ticket");
        let stream = sql.do_get(ticket).await.expect("do_get");
        let batches: Vec<RecordBatch> = stream.try_collect().await.expect("do_get read");
        rows.extend(query_rows(&batches));
    }
    assert_eq!(rows, expected_rows());

    // a prepared statement
    let prepared = sql
        .prepare("SELECT id, city FROM trips WHERE id <= 7", None)
        .await
        .expect("prepare");
    let names: Vec<&str> = prepared
        .dataset_schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", "city"]);
    assert!(prepared.parameter_schema().fields().is_empty());
    let batches = sql
        .read_all(&prepared.execute().await.expect("prepared statement runs"))
        .await
        .expect("prepared result read");
    let cities = strings(&batches, "city");
    let expected: Vec<String> = (0..7).map(|i| CITIES[i % 6].to_string()).collect();
    assert_eq!(cities, expected);
    prepared.close().await.expect("prepared statement closes");

    // errors keep the code and message the service chose
    let err = sql
        .execute("SELEC id FROM trips", None)
        .await
        .expect_err("a syntax error");
    assert_eq!(err.code(), FlightCode::InvalidArgument, "{err}");
    assert!(
        err.message().contains("expected SELECT, found SELEC"),
        "{err}"
    );
    let err = sql
        .execute("SELECT * FROM nowhere", None)
        .await
        .expect_err("an unknown table");
    assert_eq!(err.code(), FlightCode::NotFound, "{err}");
    assert!(err.message().contains("table nowhere not found"), "{err}");
    let err = sql
        .prepare("SELECT nothing FROM trips", None)
        .await
        .expect_err("an unknown column");
    assert_eq!(err.code(), FlightCode::NotFound, "{err}");
    assert!(err.message().contains("column nothing not found"), "{err}");
    // the catalog is read-only: updates are left to the trait's default, UNIMPLEMENTED
    let err = sql
        .execute_update("DELETE FROM trips", None)
        .await
        .expect_err("no updates");
    assert_eq!(err.code(), FlightCode::Unimplemented, "{err}");
}

/// arrow-flight's own clients, on a tonic channel, against the catalog served by polyflight.
async fn arrow_flight_clients(server: &SqlServer) {
    let channel = server.tonic_channel().await;

    // the plain Flight client: ListActions, then GetFlightInfo and DoGet of a query
    let mut flight = arrow_flight::FlightClient::new(channel.clone());
    let actions: Vec<arrow_flight::ActionType> = flight
        .list_actions()
        .await
        .expect("list_actions")
        .try_collect()
        .await
        .expect("actions read");
    assert!(
        actions
            .iter()
            .any(|a| a.r#type == "CreatePreparedStatement"),
        "{actions:?}"
    );
    let command = CommandStatementQuery {
        query: QUERY.to_string(),
        transaction_id: None,
    };
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    let info = flight
        .get_flight_info(descriptor)
        .await
        .expect("get_flight_info");
    let mut rows = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let batches: Vec<RecordBatch> = flight
            .do_get(ticket)
            .await
            .expect("do_get")
            .try_collect()
            .await
            .expect("do_get read");
        rows.extend(query_rows(&batches));
    }
    assert_eq!(rows, expected_rows());

    // the Flight SQL client
    let mut sql = FlightSqlServiceClient::new(channel);
    let info = sql.get_catalogs().await.expect("get_catalogs");
    let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
    let catalogs: Vec<RecordBatch> = sql
        .do_get(ticket)
        .await
        .expect("do_get")
        .try_collect()
        .await
        .expect("catalogs read");
    assert_eq!(strings(&catalogs, "catalog_name"), ["polyflight"]);

    let info = sql
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: Some("tri%".into()),
            table_types: vec![],
            include_schema: false,
        })
        .await
        .expect("get_tables");
    let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
    let tables: Vec<RecordBatch> = sql
        .do_get(ticket)
        .await
        .expect("do_get")
        .try_collect()
        .await
        .expect("tables read");
    assert_eq!(strings(&tables, "table_name"), ["trips"]);

    let info = sql.execute(QUERY.to_string(), None).await.expect("execute");
    let mut rows = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let batches: Vec<RecordBatch> = sql
            .do_get(ticket)
            .await
            .expect("do_get")
            .try_collect()
            .await
            .expect("query result read");
        rows.extend(query_rows(&batches));
    }
    assert_eq!(rows, expected_rows());

    let err = sql
        .execute("SELEC id FROM trips".to_string(), None)
        .await
        .expect_err("a syntax error");
    match err {
        arrow_flight::error::FlightError::Tonic(status) => {
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
            assert!(
                status.message().contains("expected SELECT, found SELEC"),
                "{status}"
            );
        }
        other => panic!("expected a gRPC status, got {other}"),
    }
}

/// One module per transport: polyflight's client on each, arrow-flight's clients where tonic
/// reaches (`arrow_flight` marks those).
macro_rules! transports {
    ($($module:ident => $transport:literal $(, $arrow_flight:ident)?;)*) => {
        $(
            mod $module {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn flight_sql_client() {
                    let server = super::SqlServer::start($transport).await;
                    super::flight_sql_client(&server.client().await).await;
                    server.stop().await;
                }

                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $arrow_flight() {
                        let server = super::SqlServer::start($transport).await;
                        super::arrow_flight_clients(&server).await;
                        server.stop().await;
                    }
                )?
            }
        )*
    };
}

transports! {
    grpc => "grpc", arrow_flight_clients;
    grpc_tls => "grpc+tls", arrow_flight_clients;
    grpc_unix => "grpc+unix";
    ucx => "ucx";
}
