#!/usr/bin/env python3
"""Arrow's Flight integration scenarios played by pyarrow (Arrow C++ Flight underneath).

The other side of polyflight's integration binaries: the same command lines, the same scenarios
and the same JSON round trip, written against pyarrow.flight so that every case runs between
polyflight and an implementation it did not write.

Usage:
  pyarrow_peer.py server [-port=0 | -uri URI] [-scenario NAME] [-tls_cert F -tls_key F]
  pyarrow_peer.py client (-host H -port=P | -uri URI) (-scenario NAME | -path FILE.json)
                         [-tls_root_ca F]

Flags are gflags-style, as Arrow's binaries take them (`-port=0`, `-port 0`, `--port 0`).

The server prints `Server listening on localhost:<port>` and then `Server location: <uri>`, and
serves until SIGTERM or SIGINT. The client exits 0 when the case passed, 1 with what differed
when it did not, 2 on a bad command line.

Where pyarrow has no API for an RPC the scenario needs, the peer speaks it with grpcio and
protobuf messages generated at start-up from the repository's flight.proto:
- `poll_flight_info`: pyarrow has no PollFlightInfo, client or server, so both sides of that
  scenario are grpcio;
- the bodies of CancelFlightInfo, RenewFlightEndpoint and the session actions, which pyarrow
  carries as plain DoAction bytes.

The JSON round trip reads the data from the Arrow IPC file written beside each JSON file
(`NAME.arrow_file`, as `flight-test-integration-datagen --ipc` writes it): pyarrow cannot read
Arrow's integration JSON format. The DoPut descriptor is still the JSON file's path.

The Flight SQL scenarios (`flight_sql`, `flight_sql:extension`, `flight_sql:ingestion`) are not
played on either side: pyarrow has no Flight SQL API. Asked for one, the peer says so and exits 2.
"""

import datetime
import importlib
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.parse

import pyarrow as pa
import pyarrow.flight as flight

# Exit codes.
PASS, FAIL, USAGE = 0, 1, 2

FLAGS = ("host", "port", "scenario", "path", "uri", "tls_cert", "tls_key", "tls_root_ca")

SCENARIOS = (
    "auth:basic_proto",
    "middleware",
    "ordered",
    "expiration_time:do_get",
    "expiration_time:list_actions",
    "expiration_time:cancel_flight_info",
    "expiration_time:renew_flight_endpoint",
    "location:reuse_connection",
    "session_options",
    "poll_flight_info",
    "app_metadata_flight_info_endpoint",
    "do_exchange:echo",
)

# Scenarios archery lists that pyarrow cannot play on either side: pyarrow has no Flight SQL API
# (Arrow C++'s FlightSqlServerBase and FlightSqlClient are not in its wheels). The matrix skips
# them for pyarrow; run by hand, they are a usage error that says why.
UNPLAYABLE = {
    name: "pyarrow has no Flight SQL API (no FlightSqlServerBase, no FlightSqlClient)"
    for name in ("flight_sql", "flight_sql:extension", "flight_sql:ingestion")
}


def known_scenario(scenario):
    """Raises Usage unless the peer plays `scenario`."""
    if scenario in UNPLAYABLE:
        raise Usage(f"cannot play scenario {scenario!r}: {UNPLAYABLE[scenario]}")
    if scenario not in SCENARIOS:
        raise Usage(f"unknown scenario {scenario!r}")


class Usage(Exception):
    """A bad command line."""


class CheckFailed(Exception):
    """The peer did something the scenario does not allow."""


def check(condition, message):
    """Fails with `message` (a string, or a function that makes it) unless `condition` holds."""
    if not condition:
        raise CheckFailed(message() if callable(message) else message)


def describe(data):
    """A readable form of a batch or table; pyarrow cannot print some types (day-time
    intervals), and then the schema and the row count stand in for the values."""
    try:
        return str(data)
    except Exception:  # noqa: BLE001 - any failure to render falls back to the summary
        return f"{data.num_rows} rows of {data.schema}"


def parse_flags(argv):
    """gflags-style flags into a dict; unknown flags are an error that names them."""
    flags = {}
    args = iter(argv)
    for arg in args:
        if arg.startswith("--"):
            flag = arg[2:]
        elif arg.startswith("-"):
            flag = arg[1:]
        else:
            raise Usage(f"unexpected argument {arg!r}")
        if "=" in flag:
            name, value = flag.split("=", 1)
        else:
            name = flag
            try:
                value = next(args)
            except StopIteration:
                raise Usage(f"flag -{flag} needs a value") from None
        name = name.replace("-", "_")
        if name not in FLAGS:
            raise Usage(f"unknown flag -{name}; known: -{', -'.join(FLAGS)}")
        flags[name] = value
    return flags


# --- protobuf messages of flight.proto --------------------------------------------------------


def load_flight_pb2():
    """Generates flight_pb2 from the repository's flight.proto with grpcio-tools and imports it."""
    from grpc_tools import protoc

    here = os.path.dirname(os.path.abspath(__file__))
    proto_dir = os.path.normpath(os.path.join(here, "..", "..", "..", "proto"))
    proto = os.path.join("arrow", "flight", "protocol", "flight.proto")
    if not os.path.exists(os.path.join(proto_dir, proto)):
        raise RuntimeError(f"flight.proto not found under {proto_dir}")
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    out = tempfile.mkdtemp(prefix="polyflight-pb2-")
    try:
        status = protoc.main(
            ["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out}", proto]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed on {proto} with status {status}")
        sys.path.insert(0, out)
        try:
            return importlib.import_module("arrow.flight.protocol.flight_pb2")
        finally:
            sys.path.remove(out)
    finally:
        # The module is loaded; its source is no longer needed.
        for root, dirs, files in os.walk(out, topdown=False):
            for name in files:
                os.remove(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        os.rmdir(out)


_PB2 = None


def pb2():
    global _PB2
    if _PB2 is None:
        _PB2 = load_flight_pb2()
    return _PB2


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def timestamp_scalar(when):
    return pa.scalar(when, type=pa.timestamp("ns", tz="UTC"))


# --- locations --------------------------------------------------------------------------------


def listen_location(flags):
    """The URI to serve on, from -uri or -port (Arrow's binaries bind every interface)."""
    if "uri" in flags:
        return flags["uri"]
    port = flags.get("port", "0")
    return f"grpc+tcp://0.0.0.0:{port}"


def served_location(uri, port):
    """The location clients use: the bound port in place of 0, a wildcard host as loopback."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "grpc+unix":
        return uri
    host = parts.hostname or "localhost"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


def client_location(flags):
    if "uri" in flags:
        return flags["uri"]
    if "port" not in flags:
        raise Usage("the client needs -port or -uri")
    return f"grpc+tcp://{flags.get('host', 'localhost')}:{flags['port']}"


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


class Peer:
    """How a client reaches servers: the TLS roots it trusts, and its middleware."""

    def __init__(self, flags):
        self.location = client_location(flags)
        self.root_ca = read_file(flags["tls_root_ca"]) if "tls_root_ca" in flags else None

    def connect(self, location=None, **kwargs):
        if self.root_ca is not None:
            kwargs["tls_root_certs"] = self.root_ca
        return flight.connect(location or self.location, **kwargs)


def batch_stream(batch):
    return flight.RecordBatchStream(pa.Table.from_batches([batch]))


def read_all(client, ticket):
    return client.do_get(ticket).read_all()


# --- auth:basic_proto -------------------------------------------------------------------------

AUTH_USER, AUTH_PASSWORD, AUTH_TOKEN = "arrow", "flight", b"arrow"


class BasicProtoServerAuth(flight.ServerAuthHandler):
    """The handshake payload is a serialized BasicAuth; the token `arrow` is its reply."""

    def authenticate(self, outgoing, incoming):
        auth = pb2().BasicAuth.FromString(incoming.read())
        if auth.username != AUTH_USER or auth.password != AUTH_PASSWORD:
            raise flight.FlightUnauthenticatedError("invalid username/password")
        outgoing.write(AUTH_TOKEN)

    def is_valid(self, token):
        if token != AUTH_TOKEN:
            raise flight.FlightUnauthenticatedError("invalid token")
        return AUTH_USER


class BasicProtoClientAuth(flight.ClientAuthHandler):
    def __init__(self):
        super().__init__()
        self.token = None

    def authenticate(self, outgoing, incoming):
        outgoing.write(pb2().BasicAuth(username=AUTH_USER, password=AUTH_PASSWORD).SerializeToString())
        self.token = incoming.read()

    def get_token(self):
        return self.token


class AuthServer(flight.FlightServerBase):
    def do_action(self, context, action):
        return [context.peer_identity()]


def auth_client(peer):
    client = peer.connect()
    try:
        list(client.do_action(flight.Action("", b"")))
    except flight.FlightUnauthenticatedError:
        pass
    else:
        raise CheckFailed("expected UNAUTHENTICATED from DoAction before the handshake")
    client.authenticate(BasicProtoClientAuth())
    results = [r.body.to_pybytes() for r in client.do_action(flight.Action("", b""))]
    check(results == [AUTH_USER.encode()], f"expected the peer identity ['arrow'], got {results}")


# --- middleware -------------------------------------------------------------------------------

MIDDLEWARE_HEADER, MIDDLEWARE_VALUE = "x-middleware", "expected value"


class EchoHeaderMiddleware(flight.ServerMiddleware):
    def __init__(self, value):
        self.value = value

    def sending_headers(self):
        return {MIDDLEWARE_HEADER: self.value}


class EchoHeaderFactory(flight.ServerMiddlewareFactory):
    def start_call(self, info, headers):
        values = headers.get(MIDDLEWARE_HEADER, [""])
        value = values[0]
        return EchoHeaderMiddleware(value.decode() if isinstance(value, bytes) else value)


class MiddlewareServer(flight.FlightServerBase):
    def get_flight_info(self, context, descriptor):
        if descriptor.descriptor_type == flight.DescriptorType.CMD and descriptor.command == b"success":
            endpoint = flight.FlightEndpoint(b"foo", ["grpc+tcp://localhost:10010"])
            return flight.FlightInfo(pa.schema([]), descriptor, [endpoint], -1, -1)
        raise flight.FlightServerError("Unknown")


class RecordHeaderMiddleware(flight.ClientMiddleware):
    def __init__(self, factory):
        self.factory = factory

    def sending_headers(self):
        return {MIDDLEWARE_HEADER: MIDDLEWARE_VALUE}

    def received_headers(self, headers):
        values = headers.get(MIDDLEWARE_HEADER)
        if values:
            value = values[0]
            self.factory.received = value.decode() if isinstance(value, bytes) else value


class RecordHeaderFactory(flight.ClientMiddlewareFactory):
    def __init__(self):
        self.received = None

    def start_call(self, info):
        self.received = None
        return RecordHeaderMiddleware(self)


def middleware_client(peer):
    factory = RecordHeaderFactory()
    client = peer.connect(middleware=[factory])
    try:
        client.get_flight_info(flight.FlightDescriptor.for_command(b""))
    except flight.FlightError:
        pass
    else:
        raise CheckFailed("GetFlightInfo of the empty command must fail")
    check(
        factory.received == MIDDLEWARE_VALUE,
        f"expected {MIDDLEWARE_VALUE!r} in the headers of the failed call, got {factory.received!r}",
    )
    client.get_flight_info(flight.FlightDescriptor.for_command(b"success"))
    check(
        factory.received == MIDDLEWARE_VALUE,
        f"expected {MIDDLEWARE_VALUE!r} in the headers of the successful call, got {factory.received!r}",
    )


# --- ordered ----------------------------------------------------------------------------------

ORDERED_SCHEMA = pa.schema([pa.field("number", pa.int32(), nullable=False)])
ORDERED_DATA = {b"1": [1, 2, 3], b"2": [10, 20, 30], b"3": [100, 200, 300]}


def ordered_batch(values):
    return pa.record_batch([pa.array(values, pa.int32())], schema=ORDERED_SCHEMA)


class OrderedServer(flight.FlightServerBase):
    def get_flight_info(self, context, descriptor):
        ordered = descriptor.descriptor_type == flight.DescriptorType.CMD and descriptor.command == b"ordered"
        tickets = [b"1", b"2", b"3"] if ordered else [b"1", b"3", b"2"]
        endpoints = [flight.FlightEndpoint(t, []) for t in tickets]
        return flight.FlightInfo(ORDERED_SCHEMA, descriptor, endpoints, -1, -1, ordered=ordered)

    def do_get(self, context, ticket):
        values = ORDERED_DATA.get(ticket.ticket)
        if values is None:
            raise KeyError(f"Could not find flight: {ticket.ticket!r}")
        return batch_stream(ordered_batch(values))


def ordered_client(peer):
    client = peer.connect()
    info = client.get_flight_info(flight.FlightDescriptor.for_command(b"ordered"))
    check(info.ordered, "the FlightInfo must be ordered")
    batches = []
    for endpoint in info.endpoints:
        check(not endpoint.locations, f"the endpoints must have no locations: {endpoint}")
        batches.extend(read_all(client, endpoint.ticket).to_batches())
    got = pa.Table.from_batches(batches, schema=ORDERED_SCHEMA).combine_chunks()
    expected = pa.Table.from_batches([ordered_batch([1, 2, 3, 10, 20, 30, 100, 200, 300])])
    check(
        got.equals(expected),
        lambda: f"read data is not the expected data\nexpected: {describe(expected)}\nactual: {describe(got)}",
    )


# --- expiration_time:* ------------------------------------------------------------------------

EXPIRING_SCHEMA = pa.schema([pa.field("number", pa.uint32(), nullable=False)])


class ExpiringServer(flight.FlightServerBase):
    """GetFlightInfo hands out three endpoints: one readable once, two that expire."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.statuses = []

    def get_flight_info(self, context, descriptor):
        endpoints = []
        with self.lock:
            self.statuses = []
            for name, seconds in (("No expiration time", None), ("5 seconds", 5), ("6 seconds", 6)):
                expiration = None if seconds is None else utc_now() + datetime.timedelta(seconds=seconds)
                ticket = f"{len(self.statuses)}: {name}".encode()
                scalar = None if expiration is None else timestamp_scalar(expiration)
                endpoints.append(flight.FlightEndpoint(ticket, [], expiration_time=scalar))
                self.statuses.append({"expiration": expiration, "gets": 0, "cancelled": False})
        return flight.FlightInfo(EXPIRING_SCHEMA, descriptor, endpoints, -1, -1)

    def index_of(self, ticket):
        text = ticket.decode(errors="replace")
        head = text.split(":", 1)[0]
        try:
            index = int(head)
        except ValueError:
            raise KeyError(f"Invalid flight: no index: {text}") from None
        if not 0 <= index < len(self.statuses):
            raise KeyError(f"Invalid flight: out of index: {text}")
        return index

    def do_get(self, context, ticket):
        text = ticket.ticket.decode(errors="replace")
        with self.lock:
            index = self.index_of(ticket.ticket)
            status = self.statuses[index]
            if status["cancelled"]:
                raise KeyError(f"Invalid flight: canceled: {text}")
            if status["expiration"] is not None:
                if status["expiration"] < utc_now():
                    raise KeyError(f"Invalid flight: expired: {text}")
            elif status["gets"] > 0:
                raise KeyError(f"Invalid flight: can't read multiple times: {text}")
            status["gets"] += 1
        batch = pa.record_batch([pa.array([index], pa.uint32())], schema=EXPIRING_SCHEMA)
        return batch_stream(batch)

    def do_action(self, context, action):
        messages = pb2()
        body = action.body.to_pybytes()
        if action.type == "CancelFlightInfo":
            request = messages.CancelFlightInfoRequest.FromString(body)
            status = messages.CANCEL_STATUS_UNSPECIFIED
            with self.lock:
                for endpoint in request.info.endpoint:
                    try:
                        index = self.index_of(endpoint.ticket.ticket)
                    except KeyError:
                        status = messages.CANCEL_STATUS_NOT_CANCELLABLE
                        continue
                    if self.statuses[index]["cancelled"]:
                        status = messages.CANCEL_STATUS_NOT_CANCELLABLE
                    else:
                        self.statuses[index]["cancelled"] = True
                        if status == messages.CANCEL_STATUS_UNSPECIFIED:
                            status = messages.CANCEL_STATUS_CANCELLED
            return [messages.CancelFlightInfoResult(status=status).SerializeToString()]
        if action.type == "RenewFlightEndpoint":
            request = messages.RenewFlightEndpointRequest.FromString(body)
            endpoint = request.endpoint
            with self.lock:
                index = self.index_of(endpoint.ticket.ticket)
                if self.statuses[index]["cancelled"]:
                    raise pa.ArrowInvalid(f"Invalid flight: canceled: {endpoint.ticket.ticket!r}")
                expiration = utc_now() + datetime.timedelta(seconds=10)
                self.statuses[index]["expiration"] = expiration
            endpoint.ticket.ticket = endpoint.ticket.ticket + b": renewed (+ 10 seconds)"
            endpoint.expiration_time.FromDatetime(expiration)
            return [endpoint.SerializeToString()]
        raise pa.ArrowInvalid(f"Unknown action: {action.type}")

    def list_actions(self, context):
        return [
            ("CancelFlightInfo", "Explicitly cancel a running FlightInfo."),
            ("RenewFlightEndpoint", "Extend expiration time of the given FlightEndpoint."),
        ]


def expiration_do_get_client(peer):
    client = peer.connect()
    info = client.get_flight_info(flight.FlightDescriptor.for_command(b"expiration_time"))
    batches = []
    for i, endpoint in enumerate(info.endpoints):
        if i == 0:
            check(endpoint.expiration_time is None, "endpoints[0] must not have an expiration time")
        else:
            check(endpoint.expiration_time is not None, f"endpoints[{i}] must have an expiration time")
        batches.extend(read_all(client, endpoint.ticket).to_batches())
    got = pa.Table.from_batches(batches, schema=EXPIRING_SCHEMA).combine_chunks()
    expected = pa.Table.from_batches(
        [pa.record_batch([pa.array([0, 1, 2], pa.uint32())], schema=EXPIRING_SCHEMA)]
    )
    check(
        got.equals(expected),
        lambda: f"read data is not the expected data\nexpected: {describe(expected)}\nactual: {describe(got)}",
    )


def expiration_list_actions_client(peer):
    client = peer.connect()
    types = sorted(a.type for a in client.list_actions())
    expected = ["CancelFlightInfo", "RenewFlightEndpoint"]
    check(types == expected, f"invalid ListActions response: expected {expected}, got {types}")


def single_action_result(client, kind, body):
    results = [r.body.to_pybytes() for r in client.do_action(flight.Action(kind, body))]
    check(len(results) == 1, f"{kind} must return one result, got {len(results)}")
    return results[0]


def expiration_cancel_client(peer):
    messages = pb2()
    client = peer.connect()
    info = client.get_flight_info(flight.FlightDescriptor.for_command(b"expiration"))
    request = messages.CancelFlightInfoRequest(info=messages.FlightInfo.FromString(info.serialize()))
    result = messages.CancelFlightInfoResult.FromString(
        single_action_result(client, "CancelFlightInfo", request.SerializeToString())
    )
    check(
        result.status == messages.CANCEL_STATUS_CANCELLED,
        f"CancelFlightInfo must return CANCEL_STATUS_CANCELLED, got {result}",
    )
    for endpoint in info.endpoints:
        try:
            table = read_all(client, endpoint.ticket)
        except flight.FlightError:
            continue
        except pa.ArrowException:
            continue
        raise CheckFailed(
            f"DoGet {endpoint.ticket.ticket!r} after CancelFlightInfo must fail, got {table.num_rows} rows"
        )


def expiration_renew_client(peer):
    messages = pb2()
    client = peer.connect()
    info = client.get_flight_info(flight.FlightDescriptor.for_command(b"expiration"))
    for endpoint in info.endpoints:
        if endpoint.expiration_time is None:
            continue
        original = messages.FlightEndpoint.FromString(endpoint.serialize())
        request = messages.RenewFlightEndpointRequest(endpoint=original)
        renewed = messages.FlightEndpoint.FromString(
            single_action_result(client, "RenewFlightEndpoint", request.SerializeToString())
        )
        check(renewed.HasField("expiration_time"), f"the renewed endpoint must have an expiration time: {renewed}")
        before = (original.expiration_time.seconds, original.expiration_time.nanos)
        after = (renewed.expiration_time.seconds, renewed.expiration_time.nanos)
        check(after > before, f"the renewed endpoint must expire later\noriginal: {original}\nrenewed: {renewed}")


# --- location:reuse_connection ----------------------------------------------------------------

REUSE_URI = "arrow-flight-reuse-connection://?"


class ReuseConnectionServer(flight.FlightServerBase):
    def get_flight_info(self, context, descriptor):
        endpoint = flight.FlightEndpoint(b"reuse", [REUSE_URI])
        return flight.FlightInfo(pa.schema([]), descriptor, [endpoint], -1, -1)


def reuse_connection_client(peer):
    client = peer.connect()
    info = client.get_flight_info(flight.FlightDescriptor.for_command(b"reuse"))
    check(len(info.endpoints) == 1, f"expected one endpoint, got {len(info.endpoints)}")
    locations = [l.uri for l in info.endpoints[0].locations]
    check(locations == [REUSE_URI.encode()], f"expected the location {REUSE_URI!r}, got {locations}")


# --- session_options --------------------------------------------------------------------------

SESSION_COOKIE = "arrow_flight_session_id"
INVALID = "lol_invalid"
STRING_LIST = ["a", "b", "sea", "dee", " ", "  ", "geee", "(づ｡◕‿‿◕｡)づ"]


class SessionStore:
    """Sessions by id, as Arrow C++'s ServerSessionMiddleware keeps them (ids from 1000)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.next_id = 1000
        self.sessions = {}

    def open(self):
        with self.lock:
            session_id = str(self.next_id)
            self.next_id += 1
            self.sessions[session_id] = {}
            return session_id

    def get(self, session_id):
        with self.lock:
            return self.sessions.get(session_id)

    def close(self, session_id):
        with self.lock:
            return self.sessions.pop(session_id, None) is not None


def cookies_of(headers):
    """The name → value pairs of every `cookie` request header."""
    cookies = {}
    for header in headers.get("cookie", []):
        text = header.decode() if isinstance(header, bytes) else header
        for part in text.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                cookies[name.strip()] = value.strip()
    return cookies


class SessionMiddleware(flight.ServerMiddleware):
    def __init__(self, store, session_id, created):
        self.store = store
        self.session_id = session_id
        self.created = created
        self.closed = False

    def sending_headers(self):
        if self.closed:
            return {"set-cookie": f"{SESSION_COOKIE}={self.session_id}; Max-Age=0"}
        if self.created:
            return {"set-cookie": f"{SESSION_COOKIE}={self.session_id}"}
        return {}


class SessionMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Finds the caller's session by cookie; a call without one gets a new session at once,
    because headers leave before the handler runs (as Arrow C++ does, GH-39791)."""

    def __init__(self, store):
        self.store = store

    def start_call(self, info, headers):
        session_id = cookies_of(headers).get(SESSION_COOKIE)
        if session_id is not None:
            if self.store.get(session_id) is None:
                raise flight.FlightServerError(f"invalid or expired {SESSION_COOKIE} cookie")
            return SessionMiddleware(self.store, session_id, created=False)
        return SessionMiddleware(self.store, self.store.open(), created=True)


class SessionServer(flight.FlightServerBase):
    def __init__(self, *args, store, **kwargs):
        super().__init__(*args, **kwargs)
        self.store = store

    def do_action(self, context, action):
        messages = pb2()
        middleware = context.get_middleware("session")
        session = self.store.get(middleware.session_id)
        body = action.body.to_pybytes()
        if action.type == "SetSessionOptions":
            request = messages.SetSessionOptionsRequest.FromString(body)
            result = messages.SetSessionOptionsResult()
            for name, value in request.session_options.items():
                if name == INVALID:
                    result.errors[name].value = messages.SetSessionOptionsResult.INVALID_NAME
                    continue
                if value.WhichOneof("option_value") == "string_value" and value.string_value == INVALID:
                    result.errors[name].value = messages.SetSessionOptionsResult.INVALID_VALUE
                    continue
                if value.WhichOneof("option_value") is None:
                    session.pop(name, None)
                else:
                    session[name] = value.SerializeToString()
            return [result.SerializeToString()]
        if action.type == "GetSessionOptions":
            result = messages.GetSessionOptionsResult()
            for name, value in session.items():
                result.session_options[name].CopyFrom(messages.SessionOptionValue.FromString(value))
            return [result.SerializeToString()]
        if action.type == "CloseSession":
            closed = self.store.close(middleware.session_id)
            middleware.closed = True
            status = messages.CloseSessionResult.CLOSED if closed else messages.CloseSessionResult.NOT_CLOSEABLE
            return [messages.CloseSessionResult(status=status).SerializeToString()]
        raise pa.ArrowInvalid(f"Unknown action: {action.type}")


class CookieMiddleware(flight.ClientMiddleware):
    def __init__(self, jar):
        self.jar = jar

    def sending_headers(self):
        if not self.jar.cookies:
            return {}
        return {"cookie": "; ".join(f"{k}={v}" for k, v in sorted(self.jar.cookies.items()))}

    def received_headers(self, headers):
        for header in headers.get("set-cookie", []):
            text = header.decode() if isinstance(header, bytes) else header
            first, *attributes = [p.strip() for p in text.split(";")]
            name, sep, value = first.partition("=")
            if not sep:
                continue
            expired = any(a.lower().replace(" ", "") == "max-age=0" for a in attributes)
            if expired:
                self.jar.cookies.pop(name, None)
            else:
                self.jar.cookies[name] = value


class CookieJar(flight.ClientMiddlewareFactory):
    """A client's cookies: kept from `set-cookie`, sent back as `cookie`."""

    def __init__(self):
        self.cookies = {}

    def start_call(self, info):
        return CookieMiddleware(self)


def session_value(**kwargs):
    messages = pb2()
    if "string_list" in kwargs:
        return messages.SessionOptionValue(
            string_list_value=messages.SessionOptionValue.StringListValue(values=kwargs["string_list"])
        )
    return messages.SessionOptionValue(**kwargs)


def options_of(result):
    return {name: value.SerializeToString(deterministic=True) for name, value in result.session_options.items()}


def encoded(options):
    return {name: value.SerializeToString(deterministic=True) for name, value in options.items()}


def session_options_client(peer):
    messages = pb2()
    jar = CookieJar()
    client = peer.connect(middleware=[jar])

    def set_options(options):
        request = messages.SetSessionOptionsRequest()
        for name, value in options.items():
            request.session_options[name].CopyFrom(value)
        body = single_action_result(client, "SetSessionOptions", request.SerializeToString())
        return messages.SetSessionOptionsResult.FromString(body)

    def get_options():
        body = single_action_result(
            client, "GetSessionOptions", messages.GetSessionOptionsRequest().SerializeToString()
        )
        return messages.GetSessionOptionsResult.FromString(body)

    res1 = set_options(
        {
            "foolong": session_value(int64_value=123),
            "bardouble": session_value(double_value=456.0),
            INVALID: session_value(string_value="this won't get set"),
            "key_with_invalid_value": session_value(string_value=INVALID),
            "big_ol_string_list": session_value(string_list=STRING_LIST),
        }
    )
    errors = {name: error.value for name, error in res1.errors.items()}
    expected_errors = {
        INVALID: messages.SetSessionOptionsResult.INVALID_NAME,
        "key_with_invalid_value": messages.SetSessionOptionsResult.INVALID_VALUE,
    }
    check(errors == expected_errors, f"res1 incorrect: expected errors {expected_errors}, got {errors}")
    expected = encoded(
        {
            "foolong": session_value(int64_value=123),
            "bardouble": session_value(double_value=456.0),
            "big_ol_string_list": session_value(string_list=STRING_LIST),
        }
    )
    res2 = get_options()
    check(options_of(res2) == expected, f"res2 incorrect: expected {expected}, got {res2}")
    joined = ",".join(STRING_LIST)
    res3 = set_options({"foolong": messages.SessionOptionValue(), "big_ol_string_list": session_value(string_value=joined)})
    check(len(res3.errors) == 0, f"res3 incorrect: expected no errors, got {res3}")
    res4 = get_options()
    expected = encoded(
        {"bardouble": session_value(double_value=456.0), "big_ol_string_list": session_value(string_value=joined)}
    )
    check(options_of(res4) == expected, f"res4 incorrect: expected {expected}, got {res4}")


# --- poll_flight_info (grpcio: pyarrow has no PollFlightInfo) ----------------------------------

POLL_METHOD = "/arrow.flight.protocol.FlightService/PollFlightInfo"


def poll_info_for(descriptor):
    messages = pb2()
    schema = pa.schema([pa.field("number", pa.uint32(), nullable=False)])
    info = flight.FlightInfo(
        schema,
        flight.FlightDescriptor.deserialize(descriptor.SerializeToString()),
        [flight.FlightEndpoint(b"long-running query", [])],
        -1,
        -1,
    )
    poll = messages.PollInfo(info=messages.FlightInfo.FromString(info.serialize()))
    finished = descriptor.type == messages.FlightDescriptor.CMD and descriptor.cmd == b"poll"
    if finished:
        poll.progress = 1.0
    else:
        poll.flight_descriptor.CopyFrom(messages.FlightDescriptor(type=messages.FlightDescriptor.CMD, cmd=b"poll"))
        poll.progress = 0.1
        poll.expiration_time.FromDatetime(utc_now() + datetime.timedelta(seconds=10))
    return poll


def grpc_target(location):
    """A grpcio target and whether it needs TLS, from a Flight location."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme == "grpc+unix":
        return f"unix:{parts.path}", False
    if parts.scheme not in ("grpc", "grpc+tcp", "grpc+tls"):
        raise Usage(f"grpcio cannot reach {location!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}", parts.scheme == "grpc+tls"


class PollServer:
    """A grpcio server with only PollFlightInfo: the pyarrow side of `poll_flight_info`."""

    def __init__(self, uri, tls):
        import grpc
        from concurrent import futures

        messages = pb2()

        def poll(request, context):
            return poll_info_for(request)

        handler = grpc.method_handlers_generic_handler(
            "arrow.flight.protocol.FlightService",
            {
                "PollFlightInfo": grpc.unary_unary_rpc_method_handler(
                    poll,
                    request_deserializer=messages.FlightDescriptor.FromString,
                    response_serializer=messages.PollInfo.SerializeToString,
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme == "grpc+unix":
            address = f"unix:{parts.path}"
        else:
            host = parts.hostname or "0.0.0.0"
            if ":" in host:
                host = f"[{host}]"
            address = f"{host}:{parts.port or 0}"
        if tls is not None:
            credentials = grpc.ssl_server_credentials([(tls[1], tls[0])])
            bound = self.server.add_secure_port(address, credentials)
        else:
            bound = self.server.add_insecure_port(address)
        if parts.scheme != "grpc+unix" and bound == 0:
            raise RuntimeError(f"grpcio could not bind {address}")
        self.port = bound if parts.scheme != "grpc+unix" else 0
        self.server.start()

    def shutdown(self):
        self.server.stop(grace=1).wait(5)


def poll_client(peer):
    import grpc

    messages = pb2()
    target, tls = grpc_target(peer.location)
    if tls:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=peer.root_ca))
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        poll = channel.unary_unary(
            POLL_METHOD,
            request_serializer=messages.FlightDescriptor.SerializeToString,
            response_deserializer=messages.PollInfo.FromString,
        )
        first = poll(messages.FlightDescriptor(type=messages.FlightDescriptor.CMD, cmd=b"heavy query"), timeout=30)
        check(first.HasField("flight_descriptor"), f"descriptor is missing: {first}")
        check(first.HasField("progress"), f"progress is missing: {first}")
        check(0.0 <= first.progress <= 1.0, f"invalid progress: {first}")
        check(first.HasField("expiration_time"), f"expiration time is missing: {first}")
        done = poll(first.flight_descriptor, timeout=30)
        check(not done.HasField("flight_descriptor"), f"polled again but not finished yet: {done}")
        check(done.HasField("progress"), f"progress is missing in finished query: {done}")
        check(abs(done.progress - 1.0) <= 1e-5, f"progress for finished query isn't 1.0: {done}")
        check(not done.HasField("expiration_time"), f"expiration time must not be set for finished query: {done}")


# --- app_metadata_flight_info_endpoint --------------------------------------------------------


class AppMetadataServer(flight.FlightServerBase):
    def get_flight_info(self, context, descriptor):
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise pa.ArrowInvalid("Invalid descriptor type: a command is required")
        schema = pa.schema([pa.field("number", pa.uint32(), nullable=False)])
        endpoint = flight.FlightEndpoint(b"", [], app_metadata=descriptor.command)
        return flight.FlightInfo(schema, descriptor, [endpoint], -1, -1, app_metadata=descriptor.command)


def app_metadata_client(peer):
    client = peer.connect()
    info = client.get_flight_info(flight.FlightDescriptor.for_command(b"foobar"))
    check(info.app_metadata == b"foobar", f"invalid FlightInfo.app_metadata: {info.app_metadata!r}")
    check(len(info.endpoints) == 1, f"expected one endpoint, got {len(info.endpoints)}")
    metadata = info.endpoints[0].app_metadata
    check(metadata == b"foobar", f"invalid FlightEndpoint.app_metadata: {metadata!r}")


# --- do_exchange:echo -------------------------------------------------------------------------


class EchoServer(flight.FlightServerBase):
    def do_exchange(self, context, descriptor, reader, writer):
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise pa.ArrowInvalid("Must provide a command descriptor")
        if descriptor.command != b"echo":
            raise pa.ArrowInvalid(f"Unknown command: {descriptor.command!r}")
        started = False
        for chunk in reader:
            if chunk.data is not None:
                if not started:
                    writer.begin(chunk.data.schema)
                    started = True
                if chunk.app_metadata is not None:
                    writer.write_with_metadata(chunk.data, chunk.app_metadata)
                else:
                    writer.write_batch(chunk.data)
            elif chunk.app_metadata is not None:
                writer.write_metadata(chunk.app_metadata)


def exchange_echo_client(peer):
    client = peer.connect()
    schema = pa.schema([pa.field("x", pa.int32(), nullable=False)])
    writer, reader = client.do_exchange(flight.FlightDescriptor.for_command(b"echo"))
    with writer:
        writer.begin(schema)
        for i in range(4):
            batch = pa.record_batch([pa.array(range(i, i + 10), pa.int32())], schema=schema)
            metadata = str(i).encode() if i % 2 == 0 else None
            if metadata is None:
                writer.write_batch(batch)
            else:
                writer.write_with_metadata(batch, metadata)
            chunk = reader.read_chunk()
            check(chunk.data is not None, f"echo {i}: no batch came back")
            check(
                chunk.data.equals(batch),
                lambda: f"echo {i}: batch differs\nexpected: {describe(batch)}\nactual: {describe(chunk.data)}",
            )
            got = None if chunk.app_metadata is None else chunk.app_metadata.to_pybytes()
            if metadata is None:
                check(got is None, f"echo {i}: expected no app metadata, got {got!r}")
            else:
                check(got == metadata, f"echo {i}: expected app metadata {metadata!r}, got {got!r}")
        writer.done_writing()


# --- the JSON round trip ----------------------------------------------------------------------


class StoreServer(flight.FlightServerBase):
    """Stores each upload under path[0], echoing each batch's app metadata as it arrives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.datasets = {}
        self.location = None

    @staticmethod
    def key_of(descriptor):
        if descriptor.descriptor_type != flight.DescriptorType.PATH or not descriptor.path:
            raise pa.ArrowInvalid("Must specify a path")
        path = descriptor.path[0]
        return path.decode() if isinstance(path, bytes) else path

    def do_put(self, context, descriptor, reader, writer):
        key = self.key_of(descriptor)
        batches = []
        for chunk in reader:
            if chunk.data is not None:
                chunk.data.validate(full=True)
                batches.append(chunk.data)
            if chunk.app_metadata is not None:
                writer.write(chunk.app_metadata)
        with self.lock:
            self.datasets[key] = (reader.schema, batches)

    def get_flight_info(self, context, descriptor):
        key = self.key_of(descriptor)
        with self.lock:
            stored = self.datasets.get(key)
        if stored is None:
            raise KeyError(f"Could not find flight: {key}")
        schema, batches = stored
        endpoint = flight.FlightEndpoint(key.encode(), [self.location])
        rows = sum(b.num_rows for b in batches)
        return flight.FlightInfo(schema, descriptor, [endpoint], rows, -1)

    def do_get(self, context, ticket):
        key = ticket.ticket.decode(errors="replace")
        with self.lock:
            stored = self.datasets.get(key)
        if stored is None:
            raise KeyError(f"Could not find flight: {key}")
        schema, batches = stored
        if has_dictionaries(schema):
            # pyarrow's GeneratorStream (the only stream with per-batch metadata) sends no
            # dictionary batches, so a reader could not decode these batches.
            raise NotImplementedError(
                "pyarrow cannot serve dictionary-encoded batches with per-batch app_metadata"
            )
        return flight.GeneratorStream(schema, ((b, str(i).encode()) for i, b in enumerate(batches)))


def has_dictionaries(schema):
    def walk(type_):
        if pa.types.is_dictionary(type_):
            return True
        return any(walk(type_.field(i).type) for i in range(type_.num_fields))

    return any(walk(field.type) for field in schema)


def ipc_twin(json_path):
    root, _ = os.path.splitext(json_path)
    return root + ".arrow_file"


def json_client(peer, json_path):
    twin = ipc_twin(json_path)
    if not os.path.exists(twin):
        raise Usage(f"{twin} is missing: pyarrow reads the data of {json_path} from its IPC copy")
    with pa.ipc.open_file(twin) as f:
        schema = f.schema
        expected = [f.get_batch(i) for i in range(f.num_record_batches)]
    client = peer.connect()
    descriptor = flight.FlightDescriptor.for_path(json_path)
    writer, acks = client.do_put(descriptor, schema)
    with writer:
        for i, batch in enumerate(expected):
            metadata = str(i).encode()
            writer.write_with_metadata(batch, metadata)
            ack = acks.read()
            got = None if ack is None else ack.to_pybytes()
            check(got == metadata, f"expected metadata value {metadata!r} but got {got!r}")
        writer.done_writing()
    info = client.get_flight_info(descriptor)
    check(
        info.schema.equals(schema),
        lambda: f"FlightInfo schema differs\nexpected: {schema}\nactual: {info.schema}",
    )
    check(len(info.endpoints) > 0, "no endpoints returned from the Flight server")
    for endpoint in info.endpoints:
        if not endpoint.locations:
            consume(client, endpoint.ticket, expected)
            continue
        for location in endpoint.locations:
            reader = peer.connect(location.uri.decode())
            try:
                consume(reader, endpoint.ticket, expected)
            except CheckFailed as e:
                raise CheckFailed(f"from {location.uri.decode()}: {e}") from None
            finally:
                reader.close()


def consume(client, ticket, expected):
    reader = client.do_get(ticket)
    counter = 0
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        if chunk.data is None:
            continue
        check(counter < len(expected), f"got more batches than the expected {len(expected)}")
        original = expected[counter]
        chunk.data.validate(full=True)
        check(
            original.equals(chunk.data),
            lambda: f"batch {counter} does not match\nexpected: {describe(original)}\nactual: {describe(chunk.data)}",
        )
        got = None if chunk.app_metadata is None else chunk.app_metadata.to_pybytes()
        want = str(counter).encode()
        check(got == want, f"expected metadata value {want!r} but got {got!r}")
        counter += 1
    check(
        counter == len(expected),
        f"got fewer batches than expected: received {counter}, expected {len(expected)}",
    )


# --- the two roles ----------------------------------------------------------------------------

CLIENTS = {
    "auth:basic_proto": auth_client,
    "middleware": middleware_client,
    "ordered": ordered_client,
    "expiration_time:do_get": expiration_do_get_client,
    "expiration_time:list_actions": expiration_list_actions_client,
    "expiration_time:cancel_flight_info": expiration_cancel_client,
    "expiration_time:renew_flight_endpoint": expiration_renew_client,
    "location:reuse_connection": reuse_connection_client,
    "session_options": session_options_client,
    "poll_flight_info": poll_client,
    "app_metadata_flight_info_endpoint": app_metadata_client,
    "do_exchange:echo": exchange_echo_client,
}


def make_server(scenario, location, tls):
    """The pyarrow server of `scenario` (None: the JSON round trip) listening on `location`."""
    kwargs = {}
    if tls is not None:
        kwargs["tls_certificates"] = [tls]
    if scenario == "poll_flight_info":
        return PollServer(location, tls)
    if scenario == "auth:basic_proto":
        return AuthServer(location, auth_handler=BasicProtoServerAuth(), **kwargs)
    if scenario == "middleware":
        return MiddlewareServer(location, middleware={"echo": EchoHeaderFactory()}, **kwargs)
    if scenario == "session_options":
        store = SessionStore()
        return SessionServer(location, middleware={"session": SessionMiddlewareFactory(store)}, store=store, **kwargs)
    servers = {
        None: StoreServer,
        "ordered": OrderedServer,
        "expiration_time:do_get": ExpiringServer,
        "expiration_time:list_actions": ExpiringServer,
        "expiration_time:cancel_flight_info": ExpiringServer,
        "expiration_time:renew_flight_endpoint": ExpiringServer,
        "location:reuse_connection": ReuseConnectionServer,
        "app_metadata_flight_info_endpoint": AppMetadataServer,
        "do_exchange:echo": EchoServer,
    }
    return servers[scenario](location, **kwargs)


class Stop(Exception):
    """Raised in the main thread by the signal handler."""


def run_server(flags):
    scenario = flags.get("scenario") or None
    if scenario is not None:
        known_scenario(scenario)
    tls = None
    if "tls_cert" in flags or "tls_key" in flags:
        if "tls_cert" not in flags or "tls_key" not in flags:
            raise Usage("-tls_cert and -tls_key go together")
        tls = (read_file(flags["tls_cert"]), read_file(flags["tls_key"]))
    uri = listen_location(flags)
    pb2()  # generated before serving, so that no call waits for it
    server = make_server(scenario, uri, tls)
    port = server.port if urllib.parse.urlsplit(uri).scheme != "grpc+unix" else 0
    location = served_location(uri, port)
    if isinstance(server, StoreServer):
        server.location = location
    print(f"Server listening on localhost:{port}", flush=True)
    print(f"Server location: {location}", flush=True)

    def on_signal(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while True:
            time.sleep(3600)
    except Stop:
        pass
    # shutdown() waits for calls in flight; a stuck call must not keep the process alive.
    stopper = threading.Thread(target=server.shutdown, daemon=True)
    stopper.start()
    stopper.join(5)
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "grpc+unix" and os.path.exists(parts.path):
        # gRPC leaves its socket file behind; a stopped server removes what it made.
        os.remove(parts.path)
    sys.stdout.flush()
    os._exit(PASS)


def run_client(flags):
    peer = Peer(flags)
    scenario = flags.get("scenario") or None
    if scenario is None:
        if "path" not in flags:
            raise Usage("the client needs -scenario or -path")
        json_client(peer, flags["path"])
        return
    known_scenario(scenario)
    CLIENTS[scenario](peer)


def main(argv):
    if not argv or argv[0] not in ("server", "client"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: pyarrow_peer.py (server|client) FLAGS…", file=sys.stderr)
        return USAGE
    role, rest = argv[0], argv[1:]
    try:
        flags = parse_flags(rest)
        if role == "server":
            run_server(flags)
        else:
            run_client(flags)
    except Usage as e:
        print(f"pyarrow_peer {role}: {e}", file=sys.stderr)
        return USAGE
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return FAIL
    except (flight.FlightError, pa.ArrowException, OSError) as e:
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return FAIL
    print("PASS", file=sys.stderr)
    return PASS


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
