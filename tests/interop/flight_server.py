#!/usr/bin/env python3
"""A pyarrow Flight server implementing the interop contract (see contract.py).

Usage:
  flight_server.py [--uri grpc://127.0.0.1:0] [--tls-cert CERT --tls-key KEY [--client-ca CA]]

The first line on stdout is `Server listening on <uri>`, the URI it serves (`--uri` with the port
it bound in place of port 0; a Unix socket's URI as given), written once the server is listening.
The server exits cleanly when its stdin closes or on SIGTERM/SIGINT.
"""

import argparse
import base64
import os
import signal
import sys
import threading
import time
import urllib.parse

import pyarrow as pa
import pyarrow.flight as flight

import contract


class Stop(Exception):
    """Raised in the main thread by the signal handler."""


def error_for(code):
    """The exception a pyarrow server raises to fail a call with the Flight code `code`."""
    message = f"requested {code}"
    detail = f"detail:{code}".encode()
    errors = {
        "UNKNOWN": lambda: flight.FlightServerError(message, detail),
        "INTERNAL": lambda: flight.FlightInternalError(message, detail),
        "INVALID_ARGUMENT": lambda: pa.ArrowInvalid(message),
        "TIMED_OUT": lambda: flight.FlightTimedOutError(message, detail),
        "NOT_FOUND": lambda: KeyError(message),
        # pyarrow has no exception that maps to ALREADY_EXISTS.
        "CANCELLED": lambda: flight.FlightCancelledError(message, detail),
        "UNAUTHENTICATED": lambda: flight.FlightUnauthenticatedError(message, detail),
        "UNAUTHORIZED": lambda: flight.FlightUnauthorizedError(message, detail),
        "UNIMPLEMENTED": lambda: NotImplementedError(message),
        "UNAVAILABLE": lambda: flight.FlightUnavailableError(message, detail),
    }
    make = errors.get(code)
    if make is None:
        return pa.ArrowInvalid(f"cannot fail with code {code!r}")
    return make()


class HeadersMiddleware(flight.ServerMiddleware):
    """Keeps a call's request headers for the handlers and echoes `x-echo` back."""

    def __init__(self, headers, identity, bearer):
        self.headers = headers
        self.identity = identity
        self.bearer = bearer

    def sending_headers(self):
        out = {}
        echo = self.headers.get("x-echo")
        if echo:
            out["x-echo"] = echo[0]
        if self.bearer:
            out["authorization"] = f"Bearer {self.bearer}"
        return out

    def values(self, name):
        """Every value of a request header, as bytes."""
        return [v if isinstance(v, bytes) else v.encode() for v in self.headers.get(name, [])]


class HeadersMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Basic → Bearer authentication on Handshake, Bearer tokens on later calls, header echo."""

    def start_call(self, info, headers):
        identity = None
        bearer = None
        authorization = headers.get("authorization", [])
        if authorization:
            scheme, _, credentials = authorization[0].partition(" ")
            if scheme.lower() == "basic" and info.method == flight.FlightMethod.HANDSHAKE:
                # Some clients leave out the base64 padding.
                padded = credentials + "=" * (-len(credentials) % 4)
                try:
                    user, _, password = base64.b64decode(padded).decode().partition(":")
                except ValueError as err:
                    raise flight.FlightUnauthenticatedError(f"bad basic credentials: {err}")
                if (user, password) != (contract.AUTH_USER, contract.AUTH_PASSWORD):
                    raise flight.FlightUnauthenticatedError("wrong user or password")
                identity = user
                bearer = BEARER_TOKEN
            elif scheme.lower() == "bearer":
                if credentials != BEARER_TOKEN:
                    raise flight.FlightUnauthenticatedError("invalid bearer token")
                identity = contract.AUTH_USER
        return HeadersMiddleware(headers, identity, bearer)


# The tokens this server issues (the contract only needs them to be opaque).
AUTH_TOKEN = b"token-alice"
BEARER_TOKEN = "bearer-alice"


class HandshakeAuthHandler(flight.ServerAuthHandler):
    """Handshake authentication: a serialized BasicAuth, answered with a token."""

    def authenticate(self, outgoing, incoming):
        try:
            payload = incoming.read()
        except Exception:
            # A basic-token handshake sends no message; the middleware checked its header.
            return
        if not payload:
            return
        try:
            basic = flight.BasicAuth.deserialize(payload)
        except pa.ArrowInvalid:
            raise flight.FlightUnauthenticatedError("handshake payload is not a BasicAuth")
        credentials = (basic.username, basic.password)
        if credentials != (contract.AUTH_USER.encode(), contract.AUTH_PASSWORD.encode()):
            raise flight.FlightUnauthenticatedError("wrong user or password")
        outgoing.write(AUTH_TOKEN)

    def is_valid(self, token):
        if not token:
            return b""
        if token == AUTH_TOKEN:
            return contract.AUTH_USER.encode()
        raise flight.FlightUnauthenticatedError("invalid token")


def read_varint(data, pos):
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise pa.ArrowInvalid("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def protobuf_varint_field(number, value):
    return varint(number << 3) + varint(value)


def protobuf_message_field(number, payload):
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def first_message_field(data):
    """The bytes of field 1 (length-delimited) of a protobuf message, or None."""
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = read_varint(data, pos)
        elif wire == 2:
            length, pos = read_varint(data, pos)
            if field == 1:
                return data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise pa.ArrowInvalid(f"unsupported protobuf wire type {wire}")
    return None


class InteropServer(flight.FlightServerBase):
    def __init__(self, location, **kwargs):
        super().__init__(
            location,
            auth_handler=HandshakeAuthHandler(),
            middleware={"headers": HeadersMiddlewareFactory()},
            **kwargs,
        )
        self._lock = threading.Lock()
        self._tables = {}

    # ---- helpers ---------------------------------------------------------------------------------

    def _stored(self, key):
        """(descriptor, table) of an upload."""
        with self._lock:
            stored = self._tables.get(key)
        if stored is None:
            raise KeyError(f"no flight {key!r}")
        return stored

    def _info(self, descriptor, ticket, schema, rows, nbytes):
        endpoint = flight.FlightEndpoint(
            ticket, [], app_metadata=contract.ENDPOINT_APP_METADATA
        )
        return flight.FlightInfo(
            schema,
            descriptor,
            [endpoint],
            total_records=rows,
            total_bytes=nbytes,
            ordered=True,
            app_metadata=contract.INFO_APP_METADATA,
        )

    def _resolve(self, descriptor):
        """(ticket, schema, rows, bytes) of the dataset a descriptor names."""
        if descriptor.descriptor_type == flight.DescriptorType.CMD:
            name = descriptor.command.decode(errors="replace")
            if name in contract.GENERATED:
                schema, batches = contract.GENERATED[name]
                data = batches()
                rows = contract.total_rows(data)
                return name.encode(), schema, rows, sum(b.nbytes for b in data)
        key = contract.descriptor_key(descriptor)
        _, table = self._stored(key)
        return key, table.schema, table.num_rows, table.nbytes

    @staticmethod
    def _middleware(context):
        return context.get_middleware("headers")

    # ---- RPCs ------------------------------------------------------------------------------------

    def list_flights(self, context, criteria):
        prefix = criteria or b""
        with self._lock:
            stored = sorted(self._tables.items())
        for key, (descriptor, table) in stored:
            if key.startswith(prefix):
                yield self._info(descriptor, key, table.schema, table.num_rows, table.nbytes)

    def get_flight_info(self, context, descriptor):
        ticket, schema, rows, nbytes = self._resolve(descriptor)
        return self._info(descriptor, ticket, schema, rows, nbytes)

    def get_schema(self, context, descriptor):
        _, schema, _, _ = self._resolve(descriptor)
        return flight.SchemaResult(schema)

    def do_get(self, context, ticket):
        name = ticket.ticket.decode(errors="replace")
        if name in contract.GENERATED:
            schema, batches = contract.GENERATED[name]
            return flight.RecordBatchStream(pa.Table.from_batches(batches(), schema=schema))
        if name == "error":

            def failing():
                yield contract.numbers(0, 10)
                raise flight.FlightUnavailableError("midstream failure")

            return flight.GeneratorStream(contract.NUMBERS_SCHEMA, failing())
        if name.startswith("error:"):

            def fail_at_once():
                raise error_for(name[len("error:") :])
                yield  # a generator that fails when the stream starts

            return flight.GeneratorStream(contract.NUMBERS_SCHEMA, fail_at_once())
        if name == "slow":

            def slow():
                for i in range(contract.SLOW_BATCHES):
                    if i > 0:
                        time.sleep(contract.SLOW_INTERVAL_S)
                    if context.is_cancelled():
                        return
                    yield contract.slow_batch(i)

            return flight.GeneratorStream(contract.NUMBERS_SCHEMA, slow())
        _, table = self._stored(ticket.ticket)
        return flight.RecordBatchStream(table)

    def do_put(self, context, descriptor, reader, writer):
        key = contract.descriptor_key(descriptor)
        if not key:
            raise pa.ArrowInvalid("descriptor must be a non-empty PATH or a CMD")
        batches = []
        rows = 0
        for chunk in reader:
            if chunk.data is None:
                continue
            batches.append(chunk.data)
            rows += chunk.data.num_rows
            # Acknowledge each batch as it arrives: clients may wait for it before sending more.
            writer.write(pa.py_buffer(f"{len(batches)}:{rows}".encode()))
        table = pa.Table.from_batches(batches, schema=reader.schema)
        with self._lock:
            self._tables[key] = (descriptor, table)

    def do_exchange(self, context, descriptor, reader, writer):
        command = descriptor.command if descriptor.command is not None else b""
        if command != b"echo":
            raise pa.ArrowInvalid(f"unknown exchange command {command!r}")
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
        if not started:
            try:
                schema = reader.schema
            except OSError:
                # Only metadata (or nothing) came: there is no schema to answer with.
                schema = None
            if schema is not None:
                # The client sent a schema and no batches: answer with the schema.
                writer.begin(schema)

    def do_action(self, context, action):
        kind = action.type
        body = action.body.to_pybytes() if action.body is not None else b""
        if kind == "echo":
            return [body]
        if kind == "stream":
            return [str(i).encode() for i in range(int(body.decode() or "0"))]
        if kind == "sleep":
            deadline = time.monotonic() + int(body.decode() or "0") / 1000
            while time.monotonic() < deadline:
                if context.is_cancelled():
                    raise flight.FlightCancelledError("sleep cancelled")
                time.sleep(0.01)
            return [b"slept"]
        if kind == "header":
            return self._middleware(context).values(body.decode().lower())
        if kind == "error":
            raise error_for(body.decode())
        if kind == "whoami":
            middleware = self._middleware(context)
            if middleware is not None and middleware.identity:
                return [middleware.identity.encode()]
            identity = context.peer_identity()
            return [identity if isinstance(identity, bytes) else identity.encode()]
        if kind == "drop":
            with self._lock:
                if self._tables.pop(body, None) is None:
                    raise KeyError(f"no flight {body!r}")
            return []
        if kind == "CancelFlightInfo":
            if first_message_field(body) is None:
                raise pa.ArrowInvalid("CancelFlightInfoRequest without info")
            return [contract.CANCEL_RESULT_NOT_CANCELLABLE]
        if kind == "RenewFlightEndpoint":
            endpoint = first_message_field(body)
            if endpoint is None:
                raise pa.ArrowInvalid("RenewFlightEndpointRequest without endpoint")
            # Protobuf merges a repeated message field: appending expiration_time (field 3) to
            # the endpoint's bytes sets it. One hour from now.
            expires = protobuf_varint_field(1, int(time.time()) + 3600)
            return [endpoint + protobuf_message_field(3, expires)]
        if kind == "CloseSession":
            return [contract.CLOSE_RESULT_CLOSED]
        raise NotImplementedError(f"unknown action {kind!r}")

    def list_actions(self, context):
        return list(contract.ACTION_TYPES) + [
            ("drop", "Remove an uploaded flight"),
            ("CancelFlightInfo", "Cancel the query behind a FlightInfo"),
            ("RenewFlightEndpoint", "Extend the expiration time of a FlightEndpoint"),
            ("CloseSession", "Close the session"),
        ]


def served_uri(uri, port):
    """The URI a server started on `uri` serves: a TCP URI with the port it bound, a Unix socket's
    URI as it is (pyarrow reports port -1 for those)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "grpc+unix":
        return uri
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default="grpc://127.0.0.1:0")
    parser.add_argument("--tls-cert", help="PEM server certificate chain (grpc+tls)")
    parser.add_argument("--tls-key", help="PEM server private key (grpc+tls)")
    parser.add_argument("--client-ca", help="PEM CA that client certificates must chain to (mTLS)")
    args = parser.parse_args()

    kwargs = {}
    if args.tls_cert:
        with open(args.tls_cert, "rb") as cert, open(args.tls_key, "rb") as key:
            kwargs["tls_certificates"] = [(cert.read(), key.read())]
    if args.client_ca:
        with open(args.client_ca, "rb") as ca:
            kwargs["root_certificates"] = ca.read()
        kwargs["verify_client"] = True

    server = InteropServer(args.uri, **kwargs)
    print(f"Server listening on {served_uri(args.uri, server.port)}", flush=True)

    def on_signal(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        # Serve until stdin closes (the parent went away or asked us to stop).
        while sys.stdin.buffer.read1(65536):
            pass
    except Stop:
        pass
    finally:
        # shutdown() waits for calls in flight; do not let a stuck call keep the process alive.
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(5)
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
