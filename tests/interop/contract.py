"""The interop test contract: what a test Flight service offers, shared by the pyarrow peers.

Two services implement this contract: `flight_server.py` (pyarrow) and the Rust test service in
`tests/interop_pyarrow.rs`. Two clients check it: `flight_client.py` (pyarrow) and the Rust
tests. Every dataset below is generated the same way on both sides, so a client compares what it
receives with what it computes itself, batch by batch.

Tickets (DoGet, UTF-8):
  many               MANY_BATCHES batches of MANY_ROWS rows of `numbers`
  large              one batch whose single int64 column is >= 64 MiB (sent as one message)
  dict               DICT_BATCHES batches with a dictionary-encoded column
  empty              the `numbers` schema and no batches
  error              one `numbers(0, 10)` batch, then UNAVAILABLE "midstream failure"
  error:<CODE>       the `numbers` schema, then the error the `error` action gives for CODE (so
                     the status travels in trailers after a response has started)
  slow               SLOW_BATCHES one-row batches, SLOW_INTERVAL_S apart
  <key>              a flight uploaded with DoPut: its key is the PATH segments joined by "/"
                     (or the CMD bytes); the data comes back in the uploaded order, possibly
                     split into smaller batches
  anything else      NOT_FOUND

Descriptors (GetFlightInfo / GetSchema):
  CMD <generated>    many, large, dict, empty: one endpoint whose ticket is the name
  uploaded key       one endpoint whose ticket is the key
  unknown            NOT_FOUND
  Every FlightInfo has the descriptor asked for, no endpoint location, total_records,
  ordered = true, app_metadata = INFO_APP_METADATA and endpoint app_metadata =
  ENDPOINT_APP_METADATA.

ListFlights: one FlightInfo per uploaded flight, sorted by key; a non-empty criteria expression
is a key prefix.

DoPut: stores the upload under its descriptor's key (replacing a previous one) and answers each
batch, as soon as it arrives, with a PutResult "<batches so far>:<rows so far>".

DoExchange (descriptor CMD):
  echo               sends back every message as received: batches with their app_metadata,
                     metadata-only messages as metadata-only messages (a first message that
                     carries only the descriptor is not echoed)
  anything else      INVALID_ARGUMENT

DoAction:
  echo               one result: the body
  stream             body = decimal N: N results "0" .. "N-1"
  sleep              body = decimal milliseconds: sleeps (ending early if cancelled), then "slept"
  header             body = a header name: one result per value the call carried under it
  error              body = a code name of ERROR_CODES: fails with that code, message
                     "requested <CODE>" and extra info b"detail:<CODE>" (where the
                     implementation can attach extra info to that code)
  whoami             one result: the caller's identity ("" when anonymous)
  drop               body = key: removes the uploaded flight (NOT_FOUND if absent)
  CancelFlightInfo   CancelFlightInfoResult{status: NOT_CANCELLABLE} (nothing is running)
  RenewFlightEndpoint  the request's endpoint with an expiration_time set
  CloseSession       CloseSessionResult{status: CLOSED}
  anything else      UNIMPLEMENTED
ListActions includes at least ACTION_TYPES, with these descriptions, and the standard actions.

Headers: a request header `x-echo` is sent back as the response header `x-echo` (initial
metadata), on every call.

Authentication (Handshake), the two conventions Flight clients use; tokens are opaque:
  - payload = serialized BasicAuth{AUTH_USER, AUTH_PASSWORD} (Arrow's auth:basic_proto): one
    response whose payload is a token, sent as soon as that message arrives (the client reads it
    before closing its side); later calls carrying the token in `auth-token-bin` are AUTH_USER;
  - header `authorization: Basic base64(AUTH_USER:AUTH_PASSWORD)` (padding optional) and no
    message: response header `authorization: Bearer <token>`; later calls carrying that header
    are AUTH_USER;
  - wrong credentials, or an unknown token on a later call: UNAUTHENTICATED;
  - calls without credentials are anonymous (`whoami` answers "").
"""

import array

import pyarrow as pa

MANY_BATCHES = 500
MANY_ROWS = 100
# 9 000 000 int64 values: 72 000 000 bytes in one buffer, above 64 MiB (67 108 864).
LARGE_ROWS = 9_000_000
DICT_BATCHES = 3
DICT_ROWS = 10
DICT_VALUES = ["red", "green", "blue"]
SLOW_BATCHES = 10
SLOW_INTERVAL_S = 0.2

INFO_APP_METADATA = b"info-metadata"
ENDPOINT_APP_METADATA = b"endpoint-metadata"

AUTH_USER = "alice"
AUTH_PASSWORD = "wonderland"

# The Flight codes a service can be asked to fail with (`error` action).
ERROR_CODES = [
    "UNKNOWN",
    "INTERNAL",
    "INVALID_ARGUMENT",
    "TIMED_OUT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "CANCELLED",
    "UNAUTHENTICATED",
    "UNAUTHORIZED",
    "UNIMPLEMENTED",
    "UNAVAILABLE",
]

# The contract's own actions, with their descriptions.
ACTION_TYPES = [
    ("echo", "Return the body"),
    ("stream", "Return N results"),
    ("sleep", "Sleep for N milliseconds"),
    ("header", "Return the values of a request header"),
    ("error", "Fail with the named code"),
    ("whoami", "Return the caller's identity"),
]
# Actions listed too, described as each implementation likes.
OTHER_ACTIONS = ["drop", "CancelFlightInfo", "RenewFlightEndpoint", "CloseSession"]

# Protobuf bodies of the standard action results (field 1, varint).
CANCEL_RESULT_NOT_CANCELLABLE = b"\x08\x03"
CLOSE_RESULT_CLOSED = b"\x08\x01"

NUMBERS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("value", pa.float64()),
        pa.field("name", pa.utf8()),
    ]
)
LARGE_SCHEMA = pa.schema([pa.field("id", pa.int64())])
DICT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("color", pa.dictionary(pa.int32(), pa.utf8())),
    ]
)


def numbers(start, count):
    """Rows start..start+count: id, value = id / 2 (null when id % 7 == 3), name = "row-<id>"."""
    ids = list(range(start, start + count))
    values = [None if i % 7 == 3 else i / 2 for i in ids]
    names = [f"row-{i}" for i in ids]
    return pa.record_batch(
        [pa.array(ids, pa.int64()), pa.array(values, pa.float64()), pa.array(names, pa.utf8())],
        schema=NUMBERS_SCHEMA,
    )


def many():
    return [numbers(i * MANY_ROWS, MANY_ROWS) for i in range(MANY_BATCHES)]


def large():
    values = pa.py_buffer(array.array("q", range(LARGE_ROWS)).tobytes())
    column = pa.Array.from_buffers(pa.int64(), LARGE_ROWS, [None, values])
    return [pa.record_batch([column], schema=LARGE_SCHEMA)]


def dict_batch(index, dictionary=DICT_VALUES):
    """Batch `index` of the dict dataset: id, color = dictionary[id % len] (null when
    id % 5 == 4); DICT_VALUES by default."""
    ids = list(range(index * DICT_ROWS, (index + 1) * DICT_ROWS))
    indices = pa.array([None if i % 5 == 4 else i % len(dictionary) for i in ids], pa.int32())
    colors = pa.DictionaryArray.from_arrays(indices, pa.array(dictionary, pa.utf8()))
    return pa.record_batch([pa.array(ids, pa.int64()), colors], schema=DICT_SCHEMA)


def dicts():
    return [dict_batch(i) for i in range(DICT_BATCHES)]


def slow_batch(index):
    return numbers(index, 1)


# Generated datasets by ticket: (schema, batches factory).
GENERATED = {
    "many": (NUMBERS_SCHEMA, many),
    "large": (LARGE_SCHEMA, large),
    "dict": (DICT_SCHEMA, dicts),
    "empty": (NUMBERS_SCHEMA, lambda: []),
}


def total_rows(batches):
    return sum(b.num_rows for b in batches)


def descriptor_key(descriptor):
    """The key an upload is stored under: PATH segments joined by "/", or the CMD bytes."""
    import pyarrow.flight as flight

    if descriptor.descriptor_type == flight.DescriptorType.PATH:
        return b"/".join(p if isinstance(p, bytes) else p.encode() for p in descriptor.path)
    return descriptor.command
