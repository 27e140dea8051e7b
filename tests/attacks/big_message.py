#!/usr/bin/env python3
"""A hostile gRPC client for measuring a server's memory by hand (docs/reliability.md).

Opens CONNECTIONS HTTP/2 connections to HOST:PORT, and on each starts a DoPut whose gRPC prefix
declares DECLARED bytes, then sends SEND bytes of it (honouring HTTP/2 flow control, as a real
peer must) and stops, holding the stream open for HOLD seconds before closing everything.

    big_message.py HOST PORT [--connections 4] [--declared 268435450] [--send 209715200] [--hold 10]

Prints how much each connection got to send and what the server answered.
"""
import argparse
import socket
import struct
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    out = bytearray([0])
    for part in (name, value):
        part = part.encode()
        assert len(part) < 127
        out.append(len(part))
        out += part
    return bytes(out)


def read_frame(sock):
    head = b""
    while len(head) < 9:
        chunk = sock.recv(9 - len(head))
        if not chunk:
            return None
        head += chunk
    length = int.from_bytes(head[:3], "big")
    payload = b""
    while len(payload) < length:
        chunk = sock.recv(length - len(payload))
        if not chunk:
            return None
        payload += chunk
    return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, payload


def attack(host, port, declared, send, hold, report, index):
    sock = socket.create_connection((host, port))
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    block = b"".join(
        literal(n, v)
        for n, v in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/arrow.flight.protocol.FlightService/DoPut"),
            (":authority", f"{host}:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
    )
    sock.sendall(frame(HEADERS, 4, 1, block))
    # flow control: the peer's initial windows are 65535 until its SETTINGS say otherwise
    conn_window, stream_window, initial = 65535, 65535, 65535
    lock = threading.Condition()
    answer = []

    def reader():
        nonlocal conn_window, stream_window, initial
        while True:
            f = read_frame(sock)
            if f is None:
                break
            kind, flags, stream, payload = f
            with lock:
                if kind == SETTINGS and not flags & 1:
                    for i in range(0, len(payload), 6):
                        key, value = struct.unpack(">HI", payload[i : i + 6])
                        if key == 4:
                            stream_window += value - initial
                            initial = value
                    sock.sendall(frame(SETTINGS, 1, 0))
                elif kind == WINDOW_UPDATE:
                    increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
                    if stream == 0:
                        conn_window += increment
                    else:
                        stream_window += increment
                elif kind == PING and not flags & 1:
                    sock.sendall(frame(PING, 1, 0, payload))
                elif kind in (RST_STREAM, GOAWAY) or (kind == HEADERS and flags & 1):
                    # the call ended (trailers), or the stream or connection was refused
                    answer.append((kind, payload[:200]))
                lock.notify_all()

    threading.Thread(target=reader, daemon=True).start()
    prefix = b"\x00" + struct.pack(">I", declared)
    sent, chunk = 0, 16384
    sock.sendall(frame(DATA, 0, 1, prefix))
    deadline = time.time() + 60
    while sent < send and time.time() < deadline:
        with lock:
            while min(conn_window, stream_window) < chunk and time.time() < deadline and not answer:
                lock.wait(0.5)
            if answer or min(conn_window, stream_window) < chunk:
                break
            conn_window -= chunk
            stream_window -= chunk
        sock.sendall(frame(DATA, 0, 1, b"\x00" * chunk))
        sent += chunk
    report[index] = (sent, list(answer))
    time.sleep(hold)
    sock.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--declared", type=int, default=268435450)
    p.add_argument("--send", type=int, default=200 << 20)
    p.add_argument("--hold", type=float, default=10)
    a = p.parse_args()
    report = {}
    threads = [
        threading.Thread(target=attack, args=(a.host, a.port, a.declared, a.send, a.hold, report, i))
        for i in range(a.connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in sorted(report):
        sent, answer = report[i]
        print(f"connection {i}: sent {sent >> 20} MiB; server: {answer}")


if __name__ == "__main__":
    main()
