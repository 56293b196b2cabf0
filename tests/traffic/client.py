#!/usr/bin/env python3
"""A steady-rate HTTP client for the traffic tests, the demo and bench/traffic.

  client.py --target ADDR [--port P ...] [--rate 50] [--timeout 0.5] --out FILE
            [--live FILE] [--duration S] [--path /]

Sends numbered `GET PATH` requests (HTTP/1.0, Connection: close, a new TCP connection each) to
ADDR, round-robin over the --port values (default 8081), at --rate per second on a fixed
schedule: request n is due at start + n/rate, whether or not earlier ones have answered, so a
hanging backend never slows the rate. Each request has --timeout seconds for connect + answer.
Runs until SIGTERM/SIGINT or --duration, then waits for the requests in flight and exits 0.

The apps answer a body like "node=n1 container=web-1". One JSON line per request goes to --out,
written (and flushed) when the request ends, so lines are in completion order, not seq order:

  {"seq": 17, "sent": 1764250000.123456, "port": 8081, "ok": true, "status": 200,
   "error": null, "node": "n1", "container": "web-1", "latency_ms": 1.9}

ok is true for HTTP 200 with a body naming a node. error is null when ok, else one of:
timeout (no full answer within --timeout), refused (connection refused), reset (connection
reset, e.g. the edge had no holder or the backend died), closed (closed with no answer),
http_NNN (any other status, e.g. http_503), bad_response (not HTTP), bad_body (200 without
node=), unreachable (no route), or the lower-case errno name.

--live FILE is rewritten atomically every 0.5 s for a live view:

  {"t": ..., "sent": 1200, "ok": 1180, "failed": 20, "in_flight": 1, "rate_last_s": 50,
   "failed_last_s": 0, "errors_last_s": {}, "last_node": "n2", "last_container": "web-3",
   "nodes_last_s": {"n2": 50}}

"_last_s" counts cover the last second: requests sent in it (rate), and requests that ended
in it (failed, errors, nodes).
"""

import argparse
import asyncio
import collections
import errno
import json
import os
import signal
import socket
import sys
import time

MAX_ANSWER = 1 << 20


def parse_body(body):
    """"node=n1 container=web-1" -> {"node": "n1", "container": "web-1"}."""
    fields = {}
    for word in body.split():
        key, eq, value = word.partition("=")
        if eq and key:
            fields[key] = value
    return fields


def classify_os_error(e):
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return "reset"
    if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    name = errno.errorcode.get(e.errno) if e.errno else None
    return name.lower() if name else type(e).__name__.lower()


def interpret(data):
    """(status, error, fields) for a complete answer read until EOF."""
    if not data:
        return None, "closed", {}
    head, sep, body = data.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].split()
    if not sep or len(line) < 2 or not line[0].startswith(b"HTTP/") or not line[1].isdigit():
        return None, "bad_response", {}
    status = int(line[1])
    if status != 200:
        return status, "http_%d" % status, {}
    fields = parse_body(body.decode("utf-8", "replace"))
    if not fields.get("node"):
        return status, "bad_body", fields
    return status, None, fields


class Request:
    """One request on a non-blocking socket driven by loop callbacks: cheaper than a task and a
    stream pair per request, which matters beside benchmarks on a small machine."""

    def __init__(self, client, seq, port):
        self.client = client
        self.loop = client.loop
        self.seq = seq
        self.port = port
        self.sent = time.time()
        self.started = self.loop.time()
        self.data = bytearray()
        self.sock = socket.socket(client.family, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.timer = self.loop.call_later(client.args.timeout, self.fail, "timeout")
        self.watching = None
        code = self.sock.connect_ex((client.args.target, port))
        if code in (0, errno.EINPROGRESS):
            self.watch("w", self.connected)
        else:
            self.fail(error_name(code))

    def watch(self, kind, callback):
        self.unwatch()
        fd = self.sock.fileno()
        if kind == "w":
            self.loop.add_writer(fd, callback)
        else:
            self.loop.add_reader(fd, callback)
        self.watching = kind

    def unwatch(self):
        if self.watching == "w":
            self.loop.remove_writer(self.sock.fileno())
        elif self.watching == "r":
            self.loop.remove_reader(self.sock.fileno())
        self.watching = None

    def connected(self):
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.fail(error_name(code))
            return
        try:
            # A few hundred bytes always fit an empty send buffer.
            self.sock.send(self.client.request_bytes[self.port] % self.seq)
        except OSError as e:
            self.fail(classify_os_error(e))
            return
        self.watch("r", self.readable)

    def readable(self):
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self.fail(classify_os_error(e))
            return
        if chunk and len(self.data) + len(chunk) < MAX_ANSWER:
            self.data += chunk
            return
        status, error, fields = interpret(bytes(self.data))
        self.end(status, error, fields)

    def fail(self, error):
        self.end(None, error, {})

    def end(self, status, error, fields):
        if self.sock is None:
            return
        self.timer.cancel()
        self.unwatch()
        self.sock.close()
        self.sock = None
        latency = (self.loop.time() - self.started) * 1000.0
        self.client.finish(self, {
            "seq": self.seq, "sent": round(self.sent, 6), "port": self.port,
            "ok": error is None, "status": status, "error": error,
            "node": fields.get("node"), "container": fields.get("container"),
            "latency_ms": round(latency, 2)})


def error_name(code):
    return classify_os_error(OSError(code, os.strerror(code)))


class Client:
    def __init__(self, args):
        self.args = args
        self.out = open(args.out, "w")
        self.sent = 0
        self.ok = 0
        self.failed = 0
        self.in_flight = set()
        self.all_done = None
        self.recent_sent = collections.deque()
        self.recent_done = collections.deque()
        self.last_node = None
        self.last_container = None
        self.family = socket.AF_INET6 if ":" in args.target else socket.AF_INET
        self.request_bytes = {
            port: ("GET %s HTTP/1.0\r\nHost: %s:%d\r\nConnection: close\r\n"
                   "X-Request-Seq: %%d\r\n\r\n" % (args.path, args.target, port)).encode()
            for port in set(args.port)}

    def finish(self, request, record):
        self.in_flight.discard(request)
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()
        if record["ok"]:
            self.ok += 1
            self.last_node = record["node"]
            self.last_container = record["container"]
        else:
            self.failed += 1
        self.recent_done.append((self.loop.time(), record["ok"], record["node"],
                                 record["error"]))
        if not self.in_flight and self.all_done is not None:
            self.all_done.set()

    async def send_loop(self):
        ports = self.args.port
        interval = 1.0 / self.args.rate
        start = self.loop.time()
        end = start + self.args.duration if self.args.duration else None
        seq = 0
        while True:
            due = start + seq * interval
            if end is not None and due >= end:
                return
            delay = due - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sent += 1
            self.recent_sent.append(self.loop.time())
            request = Request(self, seq, ports[seq % len(ports)])
            if request.sock is not None:
                self.in_flight.add(request)
            seq += 1

    def live_snapshot(self, now):
        while self.recent_sent and self.recent_sent[0] < now - 1.0:
            self.recent_sent.popleft()
        while self.recent_done and self.recent_done[0][0] < now - 1.0:
            self.recent_done.popleft()
        nodes = collections.Counter(n for _, ok, n, _ in self.recent_done if ok)
        errors = collections.Counter(e for _, ok, _, e in self.recent_done if not ok)
        return {"t": round(time.time(), 3), "sent": self.sent, "ok": self.ok,
                "failed": self.failed, "in_flight": len(self.in_flight),
                "rate_last_s": len(self.recent_sent), "failed_last_s": sum(errors.values()),
                "errors_last_s": dict(errors), "last_node": self.last_node,
                "last_container": self.last_container, "nodes_last_s": dict(nodes)}

    def write_live(self):
        if not self.args.live:
            return
        snapshot = self.live_snapshot(self.loop.time())
        temp = "%s.%d.tmp" % (self.args.live, os.getpid())
        with open(temp, "w") as f:
            json.dump(snapshot, f)
        os.replace(temp, self.args.live)

    async def live_loop(self):
        while True:
            self.write_live()
            await asyncio.sleep(0.5)

    async def run(self):
        self.loop = asyncio.get_running_loop()
        sender = self.loop.create_task(self.send_loop())
        for signo in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signo, sender.cancel)
        live = self.loop.create_task(self.live_loop())
        try:
            await sender
        except asyncio.CancelledError:
            pass
        if self.in_flight:
            self.all_done = asyncio.Event()
            await self.all_done.wait()
        live.cancel()
        self.write_live()
        self.out.close()
        print("client: sent %d, ok %d, failed %d" % (self.sent, self.ok, self.failed),
              file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="address to send to (the edge)")
    parser.add_argument("--port", type=int, action="append",
                        help="port; repeat for round-robin (default 8081)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--timeout", type=float, default=0.5,
                        help="seconds per request, connect + answer")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--path", default="/", help="request path")
    parser.add_argument("--out", required=True, help="JSON lines, one per request")
    parser.add_argument("--live", help="JSON snapshot rewritten every 0.5 s")
    args = parser.parse_args()
    args.port = args.port or [8081]
    if args.rate <= 0 or args.timeout <= 0:
        parser.error("--rate and --timeout must be positive")
    asyncio.run(Client(args).run())


if __name__ == "__main__":
    main()
