#!/usr/bin/env python3
"""A pyarrow Flight client that checks a server against the interop contract (see contract.py).

Usage:
  flight_client.py URI [--tls-root CA] [--cert CERT --key KEY] [--override-hostname NAME]
                       [--only NAME,...] [--skip NAME,...] [--list]

Runs every check (each RPC pyarrow offers, with large and many batches, dictionaries, empty
streams, metadata-only exchange messages, error codes, headers, timeouts, authentication) and
prints one line per check: `ok <name>` or `FAIL <name>: <reason>`. Exits 1 if any check failed.
"""

import argparse
import base64
import sys
import threading
import time
import traceback
from decimal import Decimal

import pyarrow as pa
import pyarrow.flight as flight

import contract

CHECKS = []

# Generous bound for calls that should be quick, so a hanging server fails a check instead of the
# whole run.
CALL_TIMEOUT_S = 60.0


def check(fn):
    CHECKS.append(fn)
    return fn


def options(**kwargs):
    kwargs.setdefault("timeout", CALL_TIMEOUT_S)
    return flight.FlightCallOptions(**kwargs)


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def expect_equal(actual, expected, what):
    if actual != expected:
        raise Failure(f"{what}: expected {expected!r}, got {actual!r}")


def expect_batches(actual, expected, what):
    expect_equal(len(actual), len(expected), f"{what}: number of batches")
    for i, (a, e) in enumerate(zip(actual, expected)):
        if not a.schema.equals(e.schema):
            raise Failure(f"{what}: batch {i} schema\n  expected {e.schema}\n  got      {a.schema}")
        if not a.equals(e):
            raise Failure(f"{what}: batch {i} differs ({a.num_rows} rows, expected {e.num_rows})")


def expect_same_rows(actual, expected, what):
    """The same rows in the same order, however they are split into batches."""
    schema = expected[0].schema if expected else None
    if actual and not actual[0].schema.equals(schema):
        raise Failure(f"{what}: schema\n  expected {schema}\n  got      {actual[0].schema}")
    got = pa.Table.from_batches(actual, schema=schema)
    want = pa.Table.from_batches(expected, schema=schema)
    if not got.equals(want):
        raise Failure(f"{what}: rows differ ({got.num_rows} rows, expected {want.num_rows})")


def expect_raises(exc_type, fn, *, contains=None, what="call"):
    """Runs fn, expecting an exception of exc_type whose message contains `contains`."""
    try:
        fn()
    except exc_type as err:
        if contains is not None and contains not in str(err):
            raise Failure(f"{what}: {type(err).__name__} message {str(err)!r} lacks {contains!r}")
        return err
    except Exception as err:
        raise Failure(
            f"{what}: expected {exc_type.__name__}, got {type(err).__name__}: {err}"
        ) from err
    raise Failure(f"{what}: expected {exc_type.__name__}, but it succeeded")


def read_chunks(reader):
    """Every (batch or None, app_metadata bytes or None) of a stream, in order."""
    out = []
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            return out
        metadata = chunk.app_metadata.to_pybytes() if chunk.app_metadata is not None else None
        out.append((chunk.data, metadata))


def get_batches(client, ticket, call_options=None):
    reader = client.do_get(flight.Ticket(ticket), options=call_options or options())
    batches = [data for data, _ in read_chunks(reader)]
    return reader.schema, batches


def put_batches(client, path, schema, batches, app_metadata=None):
    """Uploads batches under a PATH descriptor, returning the PutResults' metadata."""
    descriptor = flight.FlightDescriptor.for_path(*path.split("/"))
    writer, reader = client.do_put(descriptor, schema, options=options())
    acks = []
    done = threading.Event()

    def read_acks():
        try:
            while True:
                buf = reader.read()
                if buf is None:
                    return
                acks.append(buf.to_pybytes())
        except Exception as err:  # surfaces through the writer's close below
            acks.append(err)
        finally:
            done.set()

    thread = threading.Thread(target=read_acks, daemon=True)
    thread.start()
    for i, batch in enumerate(batches):
        if app_metadata is not None:
            writer.write_with_metadata(batch, app_metadata(i))
        else:
            writer.write_batch(batch)
    writer.done_writing()
    done.wait(CALL_TIMEOUT_S)
    writer.close()
    thread.join(1)
    for ack in acks:
        if isinstance(ack, Exception):
            raise ack
    return acks


def exchange(client, command, messages, schema=None, call_options=None):
    """Sends `messages` ((batch|None, metadata|None) pairs) on a DoExchange and returns what comes
    back. Reads concurrently so that large echoes cannot stall on flow control."""
    descriptor = flight.FlightDescriptor.for_command(command)
    writer, reader = client.do_exchange(descriptor, options=call_options or options())
    received = []
    failure = []

    def read_all():
        try:
            received.extend(read_chunks(reader))
        except Exception as err:
            failure.append(err)

    thread = threading.Thread(target=read_all, daemon=True)
    thread.start()
    begun = False
    for batch, metadata in messages:
        if batch is not None and not begun:
            writer.begin(batch.schema)
            begun = True
        if batch is not None and metadata is not None:
            writer.write_with_metadata(batch, metadata)
        elif batch is not None:
            writer.write_batch(batch)
        else:
            writer.write_metadata(metadata)
    if schema is not None and not begun:
        writer.begin(schema)
    writer.done_writing()
    thread.join(CALL_TIMEOUT_S)
    writer.close()
    if failure:
        raise failure[0]
    expect(not thread.is_alive(), "exchange: reading the response did not finish")
    return received


def one_action(client, kind, body=b"", call_options=None):
    results = list(client.do_action(flight.Action(kind, body), options=call_options or options()))
    return [r.body.to_pybytes() for r in results]


def protobuf_field(number, payload):
    """A length-delimited protobuf field."""
    key = (number << 3) | 2
    length = len(payload)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            varint.append(byte | 0x80)
        else:
            varint.append(byte)
            break
    return bytes([key]) + bytes(varint) + payload


# ---- data types ---------------------------------------------------------------------------------


def basic_types_batch():
    n = 5
    cols = {
        "bool": pa.array([True, False, None, True, False], pa.bool_()),
        "int8": pa.array([-128, 0, None, 1, 127], pa.int8()),
        "int16": pa.array([-32768, 0, None, 2, 32767], pa.int16()),
        "int32": pa.array([-(2**31), 0, None, 3, 2**31 - 1], pa.int32()),
        "int64": pa.array([-(2**63), 0, None, 4, 2**63 - 1], pa.int64()),
        "uint8": pa.array([0, 1, None, 2, 255], pa.uint8()),
        "uint32": pa.array([0, 1, None, 2, 2**32 - 1], pa.uint32()),
        "uint64": pa.array([0, 1, None, 2, 2**64 - 1], pa.uint64()),
        "float32": pa.array([0.5, -1.25, None, float("inf"), 3.0], pa.float32()),
        "float64": pa.array([0.1, -2.5, None, float("-inf"), 1e300], pa.float64()),
        "utf8": pa.array(["a", "", None, "ünïcode", "x" * 100], pa.utf8()),
        "large_utf8": pa.array(["b", "", None, "δ", "y"], pa.large_utf8()),
        "binary": pa.array([b"\x00", b"", None, b"\xff\xfe", b"z"], pa.binary()),
        "large_binary": pa.array([b"\x01", b"", None, b"q", b"r"], pa.large_binary()),
        "fixed_binary": pa.array([b"abc", b"def", None, b"ghi", b"jkl"], pa.binary(3)),
        "date32": pa.array([0, 18000, None, -1, 20000], pa.date32()),
        "date64": pa.array([0, 86400000, None, -86400000, 172800000], pa.date64()),
        "time32": pa.array([0, 1000, None, 86399000, 5], pa.time32("ms")),
        "time64": pa.array([0, 1000000, None, 86399000000, 5], pa.time64("us")),
        "timestamp": pa.array([0, 1, None, -1, 1700000000000000000], pa.timestamp("ns")),
        "timestamp_tz": pa.array([0, 1, None, 2, 1700000000000000], pa.timestamp("us", tz="UTC")),
        "duration": pa.array([0, 1, None, -5, 1000], pa.duration("ms")),
        "decimal": pa.array(
            [Decimal("1.234"), Decimal("-9.999"), None, Decimal("0"), Decimal("123456789.123")],
            pa.decimal128(12, 3),
        ),
        "null": pa.nulls(n),
    }
    return pa.record_batch(list(cols.values()), names=list(cols.keys()))


def nested_types_batch():
    struct_type = pa.struct([pa.field("a", pa.int32()), pa.field("b", pa.utf8())])
    cols = {
        "list": pa.array([[1, 2], [], None, [3], [None, 4]], pa.list_(pa.int32())),
        "large_list": pa.array([["a"], None, [], ["b", "c"], ["d"]], pa.large_list(pa.utf8())),
        "fixed_list": pa.array(
            [[1.0, 2.0], [3.0, 4.0], None, [5.0, None], [0.0, 0.0]], pa.list_(pa.float32(), 2)
        ),
        "struct": pa.array(
            [{"a": 1, "b": "x"}, {"a": None, "b": "y"}, None, {"a": 3, "b": None}, {"a": 4, "b": "z"}],
            struct_type,
        ),
        "map": pa.array(
            [[("k", 1)], [], None, [("a", 2), ("b", None)], [("c", 3)]], pa.map_(pa.utf8(), pa.int32())
        ),
        "dict8": pa.DictionaryArray.from_arrays(
            pa.array([0, 1, None, 0, 2], pa.int8()), pa.array(["p", "q", "r"])
        ),
        "list_of_struct": pa.array(
            [[{"a": 1, "b": "x"}], None, [], [{"a": 2, "b": None}, None], [{"a": 5, "b": "w"}]],
            pa.list_(struct_type),
        ),
    }
    return pa.record_batch(list(cols.values()), names=list(cols.keys()))


def view_types_batch():
    cols = {
        "utf8_view": pa.array(["short", "", None, "a string longer than twelve bytes", "x"], pa.string_view()),
        "binary_view": pa.array([b"s", b"", None, b"a binary value longer than twelve", b"y"], pa.binary_view()),
        "run_end": pa.RunEndEncodedArray.from_arrays(
            pa.array([2, 4, 5], pa.int32()), pa.array([7, None, 9], pa.int64())
        ),
    }
    return pa.record_batch(list(cols.values()), names=list(cols.keys()))


# ---- checks -------------------------------------------------------------------------------------


@check
def list_actions(client, ctx):
    actions = {a.type: a.description for a in client.list_actions(options=options())}
    for kind, description in contract.ACTION_TYPES:
        expect_equal(actions.get(kind), description, f"description of {kind}")
    for kind in contract.OTHER_ACTIONS:
        expect(kind in actions, f"{kind} missing from {sorted(actions)}")


@check
def do_get_many(client, ctx):
    schema, batches = get_batches(client, b"many")
    expect(schema.equals(contract.NUMBERS_SCHEMA), f"schema {schema}")
    expect_batches(batches, contract.many(), "many")


@check
def do_get_large(client, ctx):
    _, batches = get_batches(client, b"large")
    expect_batches(batches, contract.large(), "large")
    expect(batches[0].column(0).buffers()[1].size >= 64 * 1024 * 1024, "large batch under 64 MiB")


@check
def do_get_dict(client, ctx):
    schema, batches = get_batches(client, b"dict")
    expect(schema.equals(contract.DICT_SCHEMA), f"schema {schema}")
    expect_batches(batches, contract.dicts(), "dict")


@check
def do_get_empty(client, ctx):
    schema, batches = get_batches(client, b"empty")
    expect(schema.equals(contract.NUMBERS_SCHEMA), f"schema {schema}")
    expect_equal(len(batches), 0, "batches of an empty stream")


@check
def do_get_error_midstream(client, ctx):
    reader = client.do_get(flight.Ticket(b"error"), options=options())
    first = reader.read_chunk()
    expect(first.data.equals(contract.numbers(0, 10)), "first batch before the error")
    expect_raises(
        flight.FlightUnavailableError,
        lambda: read_chunks(reader),
        contains="midstream failure",
        what="second read",
    )


@check
def do_get_not_found(client, ctx):
    expect_raises(KeyError, lambda: get_batches(client, b"no-such-ticket"), what="DoGet")


@check
def do_get_cancel(client, ctx):
    reader = client.do_get(flight.Ticket(b"many"), options=options())
    for _ in range(3):
        reader.read_chunk()
    reader.cancel()
    # The server keeps serving after a client walked away from a stream.
    expect_equal(one_action(client, "echo", b"still here"), [b"still here"], "echo after cancel")


@check
def do_get_concurrent(client, ctx):
    results = [None] * 4
    errors = []

    def fetch(i):
        try:
            results[i] = get_batches(client, b"many")[1]
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CALL_TIMEOUT_S)
    if errors:
        raise errors[0]
    expected = contract.many()
    for batches in results:
        expect_batches(batches, expected, "concurrent many")


@check
def get_flight_info_cmd(client, ctx):
    for name, (schema, make) in contract.GENERATED.items():
        info = client.get_flight_info(flight.FlightDescriptor.for_command(name), options=options())
        expect(info.schema.equals(schema), f"{name}: schema {info.schema}")
        expect_equal(info.descriptor.command, name.encode(), f"{name}: descriptor")
        expect_equal(info.total_records, contract.total_rows(make()), f"{name}: total_records")
        expect_equal(info.ordered, True, f"{name}: ordered")
        expect_equal(info.app_metadata, contract.INFO_APP_METADATA, f"{name}: app_metadata")
        expect_equal(len(info.endpoints), 1, f"{name}: endpoints")
        endpoint = info.endpoints[0]
        expect_equal(endpoint.ticket.ticket, name.encode(), f"{name}: ticket")
        expect_equal(list(endpoint.locations), [], f"{name}: locations")
        expect_equal(endpoint.app_metadata, contract.ENDPOINT_APP_METADATA, f"{name}: endpoint app_metadata")


@check
def get_flight_info_not_found(client, ctx):
    expect_raises(
        KeyError,
        lambda: client.get_flight_info(flight.FlightDescriptor.for_path("no", "such"), options=options()),
        what="GetFlightInfo",
    )


@check
def get_schema(client, ctx):
    for name, (schema, _) in contract.GENERATED.items():
        result = client.get_schema(flight.FlightDescriptor.for_command(name), options=options())
        expect(result.schema.equals(schema), f"{name}: schema {result.schema}")
    expect_raises(
        KeyError,
        lambda: client.get_schema(flight.FlightDescriptor.for_command("nope"), options=options()),
        what="GetSchema of an unknown dataset",
    )


@check
def do_put_round_trip(client, ctx):
    path = "interop/numbers"
    batches = [contract.numbers(i * 50, 50) for i in range(20)]
    acks = put_batches(
        client, path, contract.NUMBERS_SCHEMA, batches, app_metadata=lambda i: f"put-{i}".encode()
    )
    expect_equal(acks, [f"{i + 1}:{(i + 1) * 50}".encode() for i in range(20)], "PutResults")
    info = client.get_flight_info(flight.FlightDescriptor.for_path("interop", "numbers"), options=options())
    expect(info.schema.equals(contract.NUMBERS_SCHEMA), f"schema {info.schema}")
    expect_equal(info.total_records, 1000, "total_records")
    expect_equal(info.descriptor.path, [b"interop", b"numbers"], "descriptor path")
    expect_equal(info.ordered, True, "ordered")
    expect_equal(info.app_metadata, contract.INFO_APP_METADATA, "app_metadata")
    ticket = info.endpoints[0].ticket.ticket
    expect_equal(ticket, b"interop/numbers", "ticket")
    expect_equal(info.endpoints[0].app_metadata, contract.ENDPOINT_APP_METADATA, "endpoint app_metadata")
    schema = client.get_schema(flight.FlightDescriptor.for_path("interop", "numbers"), options=options())
    expect(schema.schema.equals(contract.NUMBERS_SCHEMA), "GetSchema of the uploaded table")
    _, back = get_batches(client, ticket)
    expect_same_rows(back, batches, "uploaded numbers")


@check
def do_put_lockstep(client, ctx):
    """Sends a batch, waits for its PutResult, sends the next: a server that holds PutResults
    back until the upload ends deadlocks here (and the timeout fails the check)."""
    descriptor = flight.FlightDescriptor.for_path("interop", "lockstep")
    writer, reader = client.do_put(descriptor, contract.NUMBERS_SCHEMA, options=options(timeout=20))
    for i in range(5):
        writer.write_batch(contract.numbers(i, 3))
        ack = reader.read()
        expect(ack is not None, f"no PutResult for batch {i}")
        expect_equal(ack.to_pybytes(), f"{i + 1}:{(i + 1) * 3}".encode(), f"PutResult {i}")
    writer.done_writing()
    expect(reader.read() is None, "PutResults after the last batch")
    writer.close()


@check
def do_put_large(client, ctx):
    batches = contract.large()
    acks = put_batches(client, "interop/large", contract.LARGE_SCHEMA, batches)
    expect_equal(acks, [f"1:{contract.LARGE_ROWS}".encode()], "PutResults")
    _, back = get_batches(client, b"interop/large")
    expect_same_rows(back, batches, "uploaded large")


@check
def do_put_many(client, ctx):
    batches = contract.many()
    acks = put_batches(client, "interop/many", contract.NUMBERS_SCHEMA, batches)
    expect_equal(len(acks), len(batches), "number of PutResults")
    _, back = get_batches(client, b"interop/many")
    expect_same_rows(back, batches, "uploaded many")


@check
def do_put_dict(client, ctx):
    batches = contract.dicts()
    put_batches(client, "interop/dict", contract.DICT_SCHEMA, batches)
    _, back = get_batches(client, b"interop/dict")
    expect_same_rows(back, batches, "uploaded dict")


@check
def do_put_dict_changes(client, ctx):
    """Dictionaries that change between batches: replaced, then extended."""
    batches = [
        contract.dict_batch(0, ["red", "green", "blue"]),
        contract.dict_batch(1, ["cyan", "magenta"]),
        contract.dict_batch(2, ["cyan", "magenta", "yellow", "black"]),
    ]
    put_batches(client, "interop/dict-changes", contract.DICT_SCHEMA, batches)
    _, back = get_batches(client, b"interop/dict-changes")
    expect_same_rows(back, batches, "uploaded changing dictionaries")


@check
def do_put_empty(client, ctx):
    acks = put_batches(client, "interop/empty", contract.NUMBERS_SCHEMA, [])
    expect_equal(acks, [], "PutResults of an empty upload")
    info = client.get_flight_info(flight.FlightDescriptor.for_path("interop", "empty"), options=options())
    expect_equal(info.total_records, 0, "total_records")
    schema, back = get_batches(client, b"interop/empty")
    expect(schema.equals(contract.NUMBERS_SCHEMA), f"schema {schema}")
    expect_equal(len(back), 0, "batches")


def type_round_trip(client, name, batch):
    put_batches(client, f"interop/{name}", batch.schema, [batch, batch.slice(1, 3)])
    schema, back = get_batches(client, f"interop/{name}".encode())
    expect(schema.equals(batch.schema), f"schema\n  expected {batch.schema}\n  got      {schema}")
    # A sliced batch comes back compacted, with equal values.
    expect_same_rows(back, [batch, batch.slice(1, 3)], name)


@check
def do_put_basic_types(client, ctx):
    type_round_trip(client, "basic_types", basic_types_batch())


@check
def do_put_nested_types(client, ctx):
    type_round_trip(client, "nested_types", nested_types_batch())


@check
def do_put_view_types(client, ctx):
    type_round_trip(client, "view_types", view_types_batch())


@check
def list_flights(client, ctx):
    put_batches(client, "listed/b", contract.NUMBERS_SCHEMA, [contract.numbers(0, 2)])
    put_batches(client, "listed/a", contract.NUMBERS_SCHEMA, [contract.numbers(0, 3)])
    infos = list(client.list_flights(b"listed/", options=options()))
    expect_equal([i.descriptor.path for i in infos], [[b"listed", b"a"], [b"listed", b"b"]], "paths")
    expect_equal([i.total_records for i in infos], [3, 2], "total_records")
    expect(all(i.schema.equals(contract.NUMBERS_SCHEMA) for i in infos), "schemas")
    everything = list(client.list_flights(options=options()))
    expect(len(everything) >= 2, f"unfiltered ListFlights returned {len(everything)} flights")
    expect_equal(one_action(client, "drop", b"listed/a"), [], "drop")
    infos = list(client.list_flights(b"listed/", options=options()))
    expect_equal([i.descriptor.path for i in infos], [[b"listed", b"b"]], "paths after drop")
    expect_raises(KeyError, lambda: one_action(client, "drop", b"listed/a"), what="second drop")


@check
def do_exchange_echo(client, ctx):
    messages = [
        (None, b"first: metadata only"),
        (contract.numbers(0, 10), b"with batch"),
        (contract.numbers(10, 5), None),
        (None, b"between"),
        (contract.numbers(15, 0), b"zero rows"),
        (contract.numbers(15, 7), None),
        (None, b"last"),
    ]
    received = exchange(client, b"echo", messages)
    expected = [(b, m) for b, m in messages]
    expect_equal(len(received), len(expected), "number of echoed messages")
    for i, ((batch, meta), (want_batch, want_meta)) in enumerate(zip(received, expected)):
        if want_batch is None:
            expect(batch is None, f"message {i}: expected metadata only, got a batch")
        else:
            expect(batch is not None and batch.equals(want_batch), f"message {i}: batch differs")
        expect_equal(meta, want_meta if want_meta is not None else None, f"message {i}: metadata")


@check
def do_exchange_metadata_only(client, ctx):
    messages = [(None, f"m{i}".encode()) for i in range(50)]
    received = exchange(client, b"echo", messages)
    expect_equal(received, messages, "echoed metadata")


@check
def do_exchange_descriptor_only(client, ctx):
    received = exchange(client, b"echo", [])
    expect_equal(received, [], "answer to a descriptor-only exchange")


@check
def do_exchange_schema_only(client, ctx):
    received = exchange(client, b"echo", [], schema=contract.NUMBERS_SCHEMA)
    expect_equal(received, [], "answer to a schema-only exchange")


@check
def do_exchange_large_and_many(client, ctx):
    large = contract.large()
    received = exchange(client, b"echo", [(b, None) for b in large])
    expect_batches([b for b, _ in received], large, "echoed large")
    many = contract.many()
    received = exchange(client, b"echo", [(b, str(i).encode()) for i, b in enumerate(many)])
    expect_batches([b for b, _ in received], many, "echoed many")
    expect_equal([m for _, m in received], [str(i).encode() for i in range(len(many))], "metadata")


@check
def do_exchange_dict(client, ctx):
    batches = contract.dicts()
    received = exchange(client, b"echo", [(b, None) for b in batches])
    expect_batches([b for b, _ in received], batches, "echoed dict")


def exchange_in_turn(client, command, batch):
    """Sends one batch on a DoExchange, then reads the response, all on this thread.

    For a call the server fails while the client may still be writing: Arrow C++ finishes the
    call from whichever side sees the failure, without excluding the other side, so a reader
    thread finishing it while this thread writes makes gRPC abort the process
    (GRPC_CALL_ERROR_TOO_MANY_OPERATIONS), whatever the server. `exchange` reads on a thread of
    its own, which streams that do not fail need.
    """
    descriptor = flight.FlightDescriptor.for_command(command)
    writer, reader = client.do_exchange(descriptor, options=options())
    try:
        writer.begin(batch.schema)
        writer.write_batch(batch)
        writer.done_writing()
        return read_chunks(reader)
    finally:
        writer.close()


@check
def do_exchange_bad_command(client, ctx):
    expect_raises(
        pa.ArrowInvalid,
        lambda: exchange_in_turn(client, b"no-such-command", contract.numbers(0, 1)),
        what="DoExchange with an unknown command",
    )


@check
def do_action_echo_and_stream(client, ctx):
    expect_equal(one_action(client, "echo", b"\x00hello\xff"), [b"\x00hello\xff"], "echo")
    expect_equal(one_action(client, "echo", b""), [b""], "empty echo")
    expect_equal(one_action(client, "stream", b"5"), [str(i).encode() for i in range(5)], "stream")
    expect_equal(one_action(client, "stream", b"0"), [], "empty stream")


@check
def do_action_unimplemented(client, ctx):
    expect_raises(
        NotImplementedError, lambda: one_action(client, "no-such-action"), what="unknown action"
    )


@check
def do_action_standard(client, ctx):
    info = flight.FlightInfo(
        contract.NUMBERS_SCHEMA,
        flight.FlightDescriptor.for_command(b"many"),
        [flight.FlightEndpoint(b"many", [])],
    )
    cancel = one_action(client, "CancelFlightInfo", protobuf_field(1, info.serialize()))
    expect_equal(cancel, [contract.CANCEL_RESULT_NOT_CANCELLABLE], "CancelFlightInfo")
    endpoint = flight.FlightEndpoint(b"ticket-1", [], app_metadata=b"renew-me")
    renewed = one_action(client, "RenewFlightEndpoint", protobuf_field(1, endpoint.serialize()))
    expect_equal(len(renewed), 1, "RenewFlightEndpoint results")
    renewed = flight.FlightEndpoint.deserialize(renewed[0])
    expect_equal(renewed.ticket, endpoint.ticket, "renewed endpoint ticket")
    expect_equal(renewed.app_metadata, endpoint.app_metadata, "renewed endpoint app_metadata")
    expect(renewed.expiration_time is not None, "renewed endpoint has no expiration_time")
    expires_ns = renewed.expiration_time.cast(pa.timestamp("ns", tz="UTC")).value
    expect(
        expires_ns > time.time_ns(),
        f"renewed endpoint expires in the past: {expires_ns} ns since the epoch",
    )
    expect_equal(one_action(client, "CloseSession"), [contract.CLOSE_RESULT_CLOSED], "CloseSession")


# What pyarrow raises for each Flight code a server fails with, and whether the extra-info bytes
# travel with it (only pyarrow's FlightError subclasses carry them).
ERROR_EXPECTATIONS = {
    "UNKNOWN": (flight.FlightServerError, True),
    "INTERNAL": (flight.FlightInternalError, True),
    "INVALID_ARGUMENT": (pa.ArrowInvalid, False),
    "TIMED_OUT": (flight.FlightTimedOutError, True),
    "NOT_FOUND": (KeyError, False),
    "ALREADY_EXISTS": (pa.ArrowException, False),
    "CANCELLED": (flight.FlightCancelledError, True),
    "UNAUTHENTICATED": (flight.FlightUnauthenticatedError, True),
    "UNAUTHORIZED": (flight.FlightUnauthorizedError, True),
    "UNIMPLEMENTED": (NotImplementedError, False),
    "UNAVAILABLE": (flight.FlightUnavailableError, True),
}


def error_check(code):
    exc_type, has_detail = ERROR_EXPECTATIONS[code]

    def run(client, ctx):
        err = expect_raises(
            exc_type,
            lambda: one_action(client, "error", code.encode()),
            contains=f"requested {code}",
            what=f"error {code}",
        )
        if has_detail:
            expect_equal(getattr(err, "extra_info", None), f"detail:{code}".encode(), "extra_info")

    run.__name__ = f"error_{code.lower()}"
    return run


for _code in contract.ERROR_CODES:
    check(error_check(_code))


@check
def do_get_stream_errors(client, ctx):
    """The same codes as the `error_*` checks, failing a DoGet after its response started (the
    status travels in trailers, not in a trailers-only response)."""
    for code in contract.ERROR_CODES:
        if code == "ALREADY_EXISTS":
            continue  # pyarrow servers cannot raise it; error_already_exists covers it
        exc_type, has_detail = ERROR_EXPECTATIONS[code]
        err = expect_raises(
            exc_type,
            lambda: get_batches(client, f"error:{code}".encode()),
            contains=f"requested {code}",
            what=f"DoGet error:{code}",
        )
        if has_detail:
            expect_equal(getattr(err, "extra_info", None), f"detail:{code}".encode(), f"{code} extra_info")


class RecordingMiddlewareFactory(flight.ClientMiddlewareFactory):
    """Records the response headers (and trailers) of the calls made with it."""

    def __init__(self):
        self.received = {}

    def start_call(self, info):
        return RecordingMiddleware(self)


class RecordingMiddleware(flight.ClientMiddleware):
    def __init__(self, factory):
        self.factory = factory

    def received_headers(self, headers):
        # Called once for the initial metadata and once for the trailers.
        for key, values in headers.items():
            self.factory.received.setdefault(key, []).extend(values)


def expect_echo(recorder, what):
    # gRPC C++ may report the initial metadata of a unary call more than once; the value matters.
    values = recorder.received.get("x-echo")
    expect(values and set(values) == {"echo-value"}, f"{what}: x-echo response header {values!r}")


@check
def headers(client, ctx):
    recorder = RecordingMiddlewareFactory()
    with ctx.connect(middleware=[recorder]) as c:
        call = options(
            headers=[
                (b"x-echo", b"echo-value"),
                (b"x-custom", b"one"),
                (b"x-custom", b"two"),
                (b"x-data-bin", b"\x00\x01\xfe\xff"),
            ]
        )
        expect_equal(one_action(c, "header", b"x-data-bin", call), [b"\x00\x01\xfe\xff"], "binary header")
        recorder.received = {}
        expect_equal(one_action(c, "header", b"x-custom", call), [b"one", b"two"], "x-custom values")
        expect_echo(recorder, "echoed header on DoAction")
        recorder.received = {}
        get_batches(c, b"empty", call)
        expect_echo(recorder, "echoed header on DoGet")
        recorder.received = {}
        c.get_flight_info(flight.FlightDescriptor.for_command("many"), options=call)
        expect_echo(recorder, "echoed header on GetFlightInfo")
        recorder.received = {}
        get_batches(c, b"empty")
        expect(
            "x-echo" not in recorder.received, f"x-echo sent back unasked: {recorder.received}"
        )


@check
def timeout_unary(client, ctx):
    start = time.monotonic()
    expect_raises(
        flight.FlightTimedOutError,
        lambda: one_action(client, "sleep", b"10000", flight.FlightCallOptions(timeout=0.3)),
        what="DoAction sleep with a 0.3 s timeout",
    )
    elapsed = time.monotonic() - start
    expect(elapsed < 5, f"timed out only after {elapsed:.1f} s")


@check
def timeout_stream(client, ctx):
    start = time.monotonic()
    expect_raises(
        flight.FlightTimedOutError,
        lambda: get_batches(client, b"slow", flight.FlightCallOptions(timeout=0.5)),
        what="DoGet slow with a 0.5 s timeout",
    )
    elapsed = time.monotonic() - start
    expect(elapsed < 1.9, f"timed out only after {elapsed:.1f} s")


class PasswordAuthHandler(flight.ClientAuthHandler):
    """Sends a BasicAuth and reads the token before closing its side, as Arrow C++ clients do."""

    def __init__(self, user, password):
        super().__init__()
        self.payload = flight.BasicAuth(user, password).serialize()
        self.token = b""

    def authenticate(self, outgoing, incoming):
        outgoing.write(self.payload)
        self.token = incoming.read()

    def get_token(self):
        return self.token


# Authentication calls should be quick; a server that waits for the client to close its side
# before answering a Handshake deadlocks with Arrow C++ clients, and this turns that into a failure.
AUTH_TIMEOUT_S = 10.0


@check
def handshake_auth(client, ctx):
    with ctx.connect() as c:
        expect_equal(one_action(c, "whoami"), [b""], "identity before authenticating")
        handler = PasswordAuthHandler(contract.AUTH_USER, contract.AUTH_PASSWORD)
        c.authenticate(handler, options=options(timeout=AUTH_TIMEOUT_S))
        expect(len(handler.token) > 0, "empty token")
        expect_equal(one_action(c, "whoami"), [contract.AUTH_USER.encode()], "identity")
    with ctx.connect() as c:
        expect_raises(
            flight.FlightUnauthenticatedError,
            lambda: c.authenticate(
                PasswordAuthHandler(contract.AUTH_USER, "wrong"), options=options(timeout=AUTH_TIMEOUT_S)
            ),
            what="handshake with a wrong password",
        )
    with ctx.connect() as c:
        c.authenticate(PasswordAuthHandler(contract.AUTH_USER, contract.AUTH_PASSWORD), options=options(timeout=AUTH_TIMEOUT_S))
        forged = options(headers=[(b"auth-token-bin", b"forged-token")])
        expect_raises(
            flight.FlightUnauthenticatedError,
            lambda: one_action(client, "whoami", call_options=forged),
            what="call with a forged token",
        )


@check
def basic_token_auth(client, ctx):
    with ctx.connect() as c:
        key, value = c.authenticate_basic_token(
            contract.AUTH_USER, contract.AUTH_PASSWORD, options=options(timeout=AUTH_TIMEOUT_S)
        )
        expect_equal(key, b"authorization", "bearer header name")
        expect(value.startswith(b"Bearer ") and len(value) > 7, f"bearer header value {value!r}")
        identity = one_action(c, "whoami", call_options=options(headers=[(key, value)]))
        expect_equal(identity, [contract.AUTH_USER.encode()], "identity with the bearer token")
        expect_raises(
            flight.FlightUnauthenticatedError,
            lambda: one_action(c, "whoami", call_options=options(headers=[(b"authorization", b"Bearer nope")])),
            what="call with a wrong bearer token",
        )
        expect_raises(
            flight.FlightUnauthenticatedError,
            lambda: c.authenticate_basic_token(
                contract.AUTH_USER, "wrong", options=options(timeout=AUTH_TIMEOUT_S)
            ),
            what="basic auth with a wrong password",
        )


class SilentAuthHandler(flight.ClientAuthHandler):
    """A handshake that sends no message: the credentials travel in headers."""

    def authenticate(self, outgoing, incoming):
        pass

    def get_token(self):
        return b""


@check
def basic_token_unpadded(client, ctx):
    """Some clients send base64 without padding: the server must decode it leniently."""
    # "alice:wonderland" is 16 bytes, so its base64 ends in "==", which we strip.
    credentials = base64.b64encode(f"{contract.AUTH_USER}:{contract.AUTH_PASSWORD}".encode())
    unpadded = credentials.rstrip(b"=")
    expect(unpadded != credentials, "test credentials need padding")
    recorder = RecordingMiddlewareFactory()
    with ctx.connect(middleware=[recorder]) as c:
        call = options(timeout=AUTH_TIMEOUT_S, headers=[(b"authorization", b"Basic " + unpadded)])
        c.authenticate(SilentAuthHandler(), options=call)
        bearer = recorder.received.get("authorization") or [""]
        expect(bearer[0].startswith("Bearer "), f"bearer header in the Handshake response: {bearer}")
    # A fresh connection: `c` now sends its handler's (empty) token with every call.
    with ctx.connect() as c:
        authed = options(headers=[(b"authorization", bearer[0].encode())])
        expect_equal(one_action(c, "whoami", call_options=authed), [contract.AUTH_USER.encode()], "identity")


# ---- driver -------------------------------------------------------------------------------------


class Context:
    """How to reach the server under test, for checks that need their own connection."""

    def __init__(self, args):
        self.args = args

    def connect(self, middleware=None):
        kwargs = {}
        if self.args.tls_root:
            with open(self.args.tls_root, "rb") as f:
                kwargs["tls_root_certs"] = f.read()
        if self.args.cert:
            with open(self.args.cert, "rb") as f:
                kwargs["cert_chain"] = f.read()
            with open(self.args.key, "rb") as f:
                kwargs["private_key"] = f.read()
        if self.args.override_hostname:
            kwargs["override_hostname"] = self.args.override_hostname
        if middleware:
            kwargs["middleware"] = middleware
        return flight.FlightClient(self.args.uri, **kwargs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri", nargs="?")
    parser.add_argument("--tls-root", help="PEM CA to verify the server with (grpc+tls)")
    parser.add_argument("--cert", help="PEM client certificate chain (mutual TLS)")
    parser.add_argument("--key", help="PEM client private key (mutual TLS)")
    parser.add_argument("--override-hostname", help="TLS server name to verify")
    parser.add_argument("--only", default="", help="comma-separated checks to run")
    parser.add_argument("--skip", default="", help="comma-separated checks to skip")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    args = parser.parse_args()

    names = [fn.__name__ for fn in CHECKS]
    if args.list:
        print("\n".join(names))
        return 0
    if not args.uri:
        parser.error("URI is required")
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - set(names)
    if unknown:
        parser.error(f"unknown checks: {', '.join(sorted(unknown))}")

    ctx = Context(args)
    failed = 0
    with ctx.connect() as client:
        client.wait_for_available(timeout=10)
        for fn in CHECKS:
            name = fn.__name__
            if (only and name not in only) or name in skip:
                continue
            start = time.monotonic()
            try:
                fn(client, ctx)
            except Exception as err:
                failed += 1
                reason = f"{type(err).__name__}: {err}".replace("\n", "\n    ")
                print(f"FAIL {name}: {reason}", flush=True)
                if not isinstance(err, Failure):
                    traceback.print_exc(file=sys.stderr)
            else:
                print(f"ok {name}", flush=True)
                print(f"{name}: {time.monotonic() - start:.2f}s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
