#!/usr/bin/env python3
"""ADBC's Flight SQL driver against the example Flight SQL server (examples/flight_sql_server).

Usage:
  adbc_flightsql.py URI [--tls-root CA]

Connects with `adbc_driver_flightsql.dbapi.connect(URI)` (the Go driver, through the ADBC driver
manager), then checks what a generic SQL client sees: the server's info, the table types, the
catalog tree from `adbc_get_objects` (catalog `polyflight`, schema `public`, tables `trips` and
`cities` with their columns), a table's schema, query results compared row for row with the
rule the server generates its data by, and an error from a bad query.

Prints `ok NAME` per check and, last, a one-line JSON summary. Exits 1 with `FAIL NAME: reason`
on the first mismatch.
"""

import argparse
import json
import sys

import pyarrow as pa

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager

# What examples/flight_sql_server/catalog.rs serves.
CATALOG = "polyflight"
DB_SCHEMA = "public"
SERVER_NAME = "polyflight flight_sql_server"
CITIES = [
    ("Amsterdam", "Netherlands", 920_000),
    ("Berlin", "Germany", 3_780_000),
    ("Lisbon", "Portugal", 550_000),
    ("Nairobi", "Kenya", 4_400_000),
    ("Osaka", "Japan", 2_750_000),
    ("Toronto", "Canada", 2_790_000),
]
TRIP_ROWS = 1000
TRIPS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("city", pa.utf8(), nullable=False),
        pa.field("distance", pa.float64(), nullable=False),
        pa.field("passengers", pa.int32(), nullable=False),
    ]
)
CITIES_SCHEMA = pa.schema(
    [
        pa.field("name", pa.utf8(), nullable=False),
        pa.field("country", pa.utf8(), nullable=False),
        pa.field("population", pa.int64(), nullable=False),
    ]
)


def trip(i):
    """Row i (0-based) of `trips`, by the server's generation rule."""
    return {
        "id": i + 1,
        "city": CITIES[i % len(CITIES)][0],
        "distance": ((i * 37) % 1000) / 10.0,
        "passengers": 1 + (i * 5) % 6,
    }


class Failure(Exception):
    pass


def expect_equal(actual, expected, what):
    if actual != expected:
        raise Failure(f"{what}: expected {expected!r}, got {actual!r}")


def same_columns(actual, expected):
    """Field names and types (ADBC reports result columns as nullable whatever the server says)."""
    return [(f.name, f.type) for f in actual] == [(f.name, f.type) for f in expected]


def check_info(conn, summary):
    info = conn.adbc_get_info()
    expect_equal(info.get("vendor_name"), SERVER_NAME, "vendor_name")
    summary["vendor_name"] = info.get("vendor_name")
    summary["vendor_version"] = info.get("vendor_version")
    summary["driver_version"] = info.get("driver_version")


def check_table_types(conn, summary):
    expect_equal(conn.adbc_get_table_types(), ["TABLE"], "table types")


def objects(conn, **filters):
    """`adbc_get_objects` as {catalog: {schema: {table: [column names]}}}."""
    tree = {}
    for catalog in conn.adbc_get_objects(**filters).read_all().to_pylist():
        schemas = tree.setdefault(catalog["catalog_name"], {})
        for db_schema in catalog["catalog_db_schemas"] or []:
            tables = schemas.setdefault(db_schema["db_schema_name"], {})
            for table in db_schema["db_schema_tables"] or []:
                columns = table["table_columns"] or []
                tables[table["table_name"]] = [c["column_name"] for c in columns]
    return tree


def check_objects(conn, summary):
    tree = objects(conn, depth="all")
    expected = {
        CATALOG: {
            DB_SCHEMA: {
                "cities": [f.name for f in CITIES_SCHEMA],
                "trips": [f.name for f in TRIPS_SCHEMA],
            }
        }
    }
    expect_equal(tree, expected, "adbc_get_objects(depth='all')")
    summary["tables"] = sorted(tree[CATALOG][DB_SCHEMA])


def check_filtered_objects(conn, summary):
    tree = objects(conn, depth="tables", table_name_filter="tri%")
    expect_equal(tree, {CATALOG: {DB_SCHEMA: {"trips": []}}}, "tables named like 'tri%'")
    tree = objects(conn, depth="db_schemas", db_schema_filter="nothing%")
    expect_equal(tree, {CATALOG: {}}, "schemas named like 'nothing%'")


def check_table_schema(conn, summary):
    schema = conn.adbc_get_table_schema("trips", catalog_filter=CATALOG, db_schema_filter=DB_SCHEMA)
    if not same_columns(schema, TRIPS_SCHEMA):
        raise Failure(f"schema of trips: expected {TRIPS_SCHEMA}, got {schema}")


def check_query(conn, summary):
    with conn.cursor() as cursor:
        cursor.execute("SELECT * FROM trips WHERE passengers > 2 LIMIT 50")
        table = cursor.fetch_arrow_table()
    if not isinstance(table, pa.Table):
        raise Failure(f"fetch_arrow_table returned {type(table).__name__}")
    if not same_columns(table.schema, TRIPS_SCHEMA):
        raise Failure(f"result columns: expected {TRIPS_SCHEMA}, got {table.schema}")
    expected = [row for row in map(trip, range(TRIP_ROWS)) if row["passengers"] > 2][:50]
    expect_equal(table.num_rows, len(expected), "rows of the trips query")
    expect_equal(table.to_pylist(), expected, "rows of the trips query")
    summary["query_rows"] = table.num_rows
    summary["query_batches"] = len(table.to_batches())


def check_projection_query(conn, summary):
    query = (
        "select city, distance from polyflight.public.trips "
        "where city = 'Osaka' and distance >= 50 and id <> 5;"
    )
    with conn.cursor() as cursor:
        cursor.execute(query)
        rows = cursor.fetch_arrow_table().to_pylist()
    expected = [
        {"city": r["city"], "distance": r["distance"]}
        for r in map(trip, range(TRIP_ROWS))
        if r["city"] == "Osaka" and r["distance"] >= 50 and r["id"] != 5
    ]
    expect_equal(rows, expected, "rows of the projection query")
    with conn.cursor() as cursor:
        cursor.execute("SELECT name FROM cities WHERE population > 2500000")
        rows = cursor.fetchall()
    expect_equal(rows, [(c[0],) for c in CITIES if c[2] > 2_500_000], "fetchall of cities")
    summary["projection_rows"] = len(expected)


def check_error(conn, summary):
    with conn.cursor() as cursor:
        try:
            cursor.execute("SELECT * FROM nowhere")
            cursor.fetch_arrow_table()
        except adbc_driver_manager.Error as error:
            message = str(error)
            if "table nowhere not found" not in message:
                raise Failure(f"error for an unknown table does not say why: {message}")
            summary["error"] = type(error).__name__
            return
    raise Failure("a query of an unknown table succeeded")


CHECKS = [
    check_info,
    check_table_types,
    check_objects,
    check_filtered_objects,
    check_table_schema,
    check_query,
    check_projection_query,
    check_error,
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri")
    parser.add_argument("--tls-root", help="PEM file of the CA that signed the server certificate")
    args = parser.parse_args()

    db_kwargs = {}
    if args.tls_root:
        with open(args.tls_root) as f:
            db_kwargs[adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value] = f.read()
    summary = {"uri": args.uri, "adbc_driver_flightsql": adbc_driver_flightsql.__version__}
    # autocommit: the server is read-only and has no transactions to turn it off for.
    with flight_sql.connect(args.uri, db_kwargs=db_kwargs, autocommit=True) as conn:
        for check in CHECKS:
            name = check.__name__.removeprefix("check_")
            try:
                check(conn, summary)
            except Failure as failure:
                print(f"FAIL {name}: {failure}", flush=True)
                sys.exit(1)
            print(f"ok {name}", flush=True)
    summary["checks"] = len(CHECKS)
    print(json.dumps(summary, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
