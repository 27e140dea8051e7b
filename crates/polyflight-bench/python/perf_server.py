"""The benchmark's perf protocol served by pyarrow's Flight server (docs/benchmarks.md).

    python perf_server.py grpc://127.0.0.1:0

Prints {"listening": URI} once it listens, then serves until SIGTERM or SIGINT. The protocol's
messages are protobuf; the few fields it needs are read and written here by hand, so that
nothing beyond pyarrow is needed. Only the int64 kind is generated (the benchmark's default);
other kinds are refused with INVALID_ARGUMENT.
"""

import json
import signal
import sys
import threading
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.flight as flight


def read_varint(buf, i):
    value, shift = 0, 0
    while True:
        if i >= len(buf) or shift > 63:
            raise flight.FlightServerError("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def fields(buf):
    """{field number: last value}; varints as ints, length-delimited as bytes."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], i = read_varint(buf, i)
        elif wire == 2:
            length, i = read_varint(buf, i)
            if i + length > len(buf):
                raise flight.FlightServerError("truncated field")
            out[number] = bytes(buf[i : i + length])
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise flight.FlightServerError(f"wire type {wire}")
    return out


def varint(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_bytes(number, data):
    return varint((number << 3) | 2) + varint(len(data)) + data


def signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


class Command:
    def __init__(self, raw):
        f = fields(raw)
        self.raw = raw
        self.streams = signed(f.get(2, 1))
        self.records_per_stream = signed(f.get(3, 0))
        self.records_per_batch = signed(f.get(4, 0))
        self.kind = f.get(16, 0)
        self.columns = f.get(17, 0) or 4
        if not 1 <= self.streams <= 1024 or not 1 <= self.records_per_batch <= 1 << 24:
            raise flight.FlightServerError("stream_count or records_per_batch out of range")
        if self.records_per_stream < 0 or not 1 <= self.columns <= 1024:
            raise flight.FlightServerError("records_per_stream or columns out of range")
        if self.kind != 0:
            raise flight.FlightServerError("this server generates the int64 kind only")

    def schema(self):
        return pa.schema([(f"c{i}", pa.int64()) for i in range(self.columns)])


class PerfServer(flight.FlightServerBase):
    def get_flight_info(self, context, descriptor):
        command = Command(descriptor.command)
        endpoints = []
        for i in range(command.streams):
            start = i * command.records_per_stream
            ticket = (
                field_bytes(1, command.raw)
                + field_varint(2, start)
                + field_varint(3, start + command.records_per_stream)
            )
            endpoints.append(flight.FlightEndpoint(ticket, []))
        return flight.FlightInfo(
            command.schema(),
            descriptor,
            endpoints,
            command.streams * command.records_per_stream,
            -1,
        )

    def do_get(self, context, ticket):
        f = fields(ticket.ticket)
        command = Command(f.get(1, b""))
        start, end = signed(f.get(2, 0)), signed(f.get(3, 0))
        rows = max(0, end - start)
        size = command.records_per_batch
        values = pa.array(range(size), type=pa.int64())
        full = pa.record_batch([values] * command.columns, schema=command.schema())

        def batches():
            left = rows
            while left > 0:
                take = min(left, size)
                yield full if take == size else full.slice(0, take)
                left -= take

        return flight.GeneratorStream(command.schema(), batches())

    def do_put(self, context, descriptor, reader, writer):
        # Read everything; no PutSummary (pyarrow does not show the bytes of each message).
        for _ in reader:
            pass

    def do_exchange(self, context, descriptor, reader, writer):
        started = False
        for chunk in reader:
            if chunk.data is None:
                continue
            if not started:
                writer.begin(reader.schema)
                started = True
            writer.write_batch(chunk.data)

    def do_action(self, context, action):
        if action.type == "ping":
            return iter([flight.Result(b"")])
        raise flight.FlightServerError(f"unknown action {action.type!r}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: perf_server.py grpc://HOST:PORT")
    server = PerfServer(sys.argv[1])
    host = urlparse(sys.argv[1]).hostname or "127.0.0.1"
    print(json.dumps({"listening": f"grpc://{host}:{server.port}"}), flush=True)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve()


if __name__ == "__main__":
    main()
