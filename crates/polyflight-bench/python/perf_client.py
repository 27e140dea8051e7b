"""One workload of the benchmark's perf protocol, driven by pyarrow's Flight client.

    python perf_client.py URI WORKLOAD COMMAND_HEX STREAMS

WORKLOAD is doget, doput or doexchange; COMMAND_HEX the PerfCommand (protobuf, hex) that the
benchmark built for it. DoGet asks GetFlightInfo for the command and reads every endpoint at
once, a thread each; DoPut and DoExchange run STREAMS uploads (echoes) of the command's rows at
once, with the command as the descriptor. Prints one JSON line:

    {"sent_bytes": …, "received_bytes": …, "messages": …, "seconds": …, "cpu_s": …}

Bytes are IPC bytes of the batches (metadata and body, as `pyarrow.ipc.get_record_batch_size`
gives them), seconds the wall time of the whole workload, cpu_s this process's CPU time in it.
"""

import json
import sys
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight


def read_varint(buf, i):
    value, shift = 0, 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def command_fields(buf):
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], i = read_varint(buf, i)
        elif wire == 2:
            length, i = read_varint(buf, i)
            i += length
        else:
            raise ValueError(f"wire type {wire} in a PerfCommand")
    return out


class Sizes:
    """IPC size of a batch of the workload's layout, by row count (all but the last are full)."""

    def __init__(self):
        self.known = {}
        self.lock = threading.Lock()

    def of(self, batch):
        rows = batch.num_rows
        size = self.known.get(rows)
        if size is None:
            size = pa.ipc.get_record_batch_size(batch)
            with self.lock:
                self.known[rows] = size
        return size


def run_threads(work, count):
    results, errors = [None] * count, []

    def run(i):
        try:
            results[i] = work(i)
        except Exception as err:  # reported to the benchmark, which fails the row
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def main():
    uri, workload, command_hex, streams = sys.argv[1:5]
    command = bytes.fromhex(command_hex)
    streams = int(streams)
    fields = command_fields(command)
    records_per_stream = fields.get(3, 0)
    records_per_batch = fields.get(4, 1)
    columns = fields.get(17, 0) or 4
    client = flight.FlightClient(uri)
    sizes = Sizes()
    descriptor = flight.FlightDescriptor.for_command(command)
    schema = pa.schema([(f"c{i}", pa.int64()) for i in range(columns)])
    values = pa.array(range(records_per_batch), type=pa.int64())
    full = pa.record_batch([values] * columns, schema=schema)

    def batches():
        left = records_per_stream
        while left > 0:
            take = min(left, records_per_batch)
            yield full if take == records_per_batch else full.slice(0, take)
            left -= take

    def read(reader):
        received = messages = 0
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                return received, messages
            if chunk.data is not None:
                received += sizes.of(chunk.data)
                messages += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    sent = 0
    if workload == "doget":
        info = client.get_flight_info(descriptor)
        tickets = [e.ticket for e in info.endpoints]
        results = run_threads(lambda i: read(client.do_get(tickets[i])), len(tickets))
    elif workload == "doput":

        def put(_):
            writer, metadata = client.do_put(descriptor, schema)
            count = 0
            for batch in batches():
                writer.write_batch(batch)
                count += sizes.of(batch)
            writer.done_writing()
            metadata.read()
            writer.close()
            return count, 0

        results = run_threads(put, streams)
        sent = sum(r[0] for r in results)
        results = [(0, 0)]
    elif workload == "doexchange":

        def exchange(_):
            writer, reader = client.do_exchange(descriptor)
            writer.begin(schema)
            counted = {}

            def drain():
                counted["got"] = read(reader)

            reading = threading.Thread(target=drain)
            reading.start()
            count = 0
            for batch in batches():
                writer.write_batch(batch)
                count += sizes.of(batch)
            writer.done_writing()
            reading.join()
            writer.close()
            received, messages = counted.get("got", (0, 0))
            return count, received, messages

        outcome = run_threads(exchange, streams)
        sent = sum(r[0] for r in outcome)
        results = [(r[1], r[2]) for r in outcome]
    else:
        sys.exit(f"unknown workload {workload}")
    seconds = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    print(
        json.dumps(
            {
                "sent_bytes": sent,
                "received_bytes": sum(r[0] for r in results),
                "messages": sum(r[1] for r in results),
                "seconds": seconds,
                "cpu_s": cpu,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
