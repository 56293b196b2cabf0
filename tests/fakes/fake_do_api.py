#!/usr/bin/env python3
"""A fake DigitalOcean API and metadata service for integration, e2e, demo and benchmarks.

Behaves like the live API as described in shared/reference/provider-apis.md §1 and §5.1:
bearer tokens with scopes, reserved IPs whose assign/unassign actions complete after a
configurable delay while the IP is locked, the known 422 refusals, per-token rate limits
with headers and 429, injectable faults, and a metadata listener per droplet. Every holder
change is appended to --holder-log as one JSON line. With --edge-listen it also stands in for
DigitalOcean's network: an edge that forwards each TCP connection to the droplet holding the
reserved IP at that moment. With --tls-cert/--tls-key the API port serves HTTPS.
See tests/fakes/README.md for usage.
"""

import argparse
import asyncio
import bisect
import collections
import errno
import http.server
import ipaddress
import json
import math
import os
import random
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid

FIRST_ACTION_ID = 2**31 + 1
DEFAULT_PROJECT = "4d7a3b5e-0000-4000-8000-00000000f00d"
ALL_SCOPES = ["*"]
REGION_NAMES = {"nyc1": "New York 1", "nyc2": "New York 2", "nyc3": "New York 3",
                "ams3": "Amsterdam 3", "sfo2": "San Francisco 2", "sfo3": "San Francisco 3",
                "sgp1": "Singapore 1", "lon1": "London 1", "fra1": "Frankfurt 1",
                "tor1": "Toronto 1", "blr1": "Bangalore 1", "syd1": "Sydney 1"}
HTML_BODIES = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}

DEFAULT_OPTIONS = {
    "action_delay": [3.0, 11.0],
    "action_result": "completed",
    "byoip_404": False,
    "holder_null_while_pending": False,
    "reassign_noop": False,
    "strict_droplet_id": False,
    "unauthorized_lowercase": False,
    "unknown_droplet_status": 404,
    "unassign_unassigned_status": 422,
    "hourly_limit": 5000,
    "burst_limit": 250,
    "metadata_lag": 0.0,
    "metadata_stale": False,
    "metadata_mode": "ok",
    "metadata_hang_seconds": 60.0,
    "metadata_unassigned_ip": "empty",
    "edge_during_action": "old",
}
FAULT_ROUTES = ("assign", "read_ip", "read_action", "droplets", "account", "any")
FAULT_KINDS = ("500", "502", "503", "504", "hang", "drop", "commit_then_drop", "truncate", "429")

MSG_IP_PENDING = "The floating IP already has a pending event."
MSG_DROPLET_PENDING = "Droplet already has a pending event."
MSG_ALREADY_HOLDS = "The Droplet already has a floating IP assigned."
MSG_REGION = "The floating IP and the Droplet must be in the same region."
MSG_NO_ANCHOR = "The Droplet does not have an anchor IP; it must be enabled before assigning."
MSG_NOT_ASSIGNED = "The floating IP is not assigned to a Droplet."
MSG_NOT_FOUND = "The resource you were accessing could not be found."


class OptionError(Exception):
    pass


def validate_options(changes, current):
    """Returns current merged with changes; raises OptionError on an unknown key or bad value."""
    merged = dict(current)
    for key, value in changes.items():
        if key not in DEFAULT_OPTIONS:
            raise OptionError("unknown option %r" % key)
        if key == "action_delay":
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                value = float(value)
            elif (isinstance(value, list) and len(value) == 2
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                  and 0 <= value[0] <= value[1]):
                value = [float(value[0]), float(value[1])]
            else:
                raise OptionError("action_delay must be seconds or [min, max]")
        elif key == "action_result":
            if value not in ("completed", "errored", "never"):
                raise OptionError("action_result must be completed, errored or never")
        elif key in ("byoip_404", "holder_null_while_pending", "reassign_noop",
                     "strict_droplet_id", "unauthorized_lowercase", "metadata_stale"):
            if not isinstance(value, bool):
                raise OptionError("%s must be a boolean" % key)
        elif key == "unknown_droplet_status":
            if value not in (404, 422):
                raise OptionError("unknown_droplet_status must be 404 or 422")
        elif key == "unassign_unassigned_status":
            if value not in (201, 404, 422):
                raise OptionError("unassign_unassigned_status must be 201, 404 or 422")
        elif key in ("hourly_limit", "burst_limit"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise OptionError("%s must be a positive integer" % key)
        elif key in ("metadata_lag", "metadata_hang_seconds"):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise OptionError("%s must be seconds >= 0" % key)
            value = float(value)
        elif key == "metadata_mode":
            if value not in ("ok", "hang", "refuse", "500"):
                raise OptionError("metadata_mode must be ok, hang, refuse or 500")
        elif key == "metadata_unassigned_ip":
            if value not in ("empty", "404"):
                raise OptionError("metadata_unassigned_ip must be empty or 404")
        elif key == "edge_during_action":
            if value not in ("old", "new", "drop"):
                raise OptionError("edge_during_action must be old, new or drop")
        merged[key] = value
    return merged


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def region_object(slug):
    return {"name": REGION_NAMES.get(slug, slug.upper()), "slug": slug,
            "features": ["backups", "ipv6", "metadata", "install_agent", "storage",
                         "image_transfer"],
            "available": True,
            "sizes": ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-2gb", "s-2vcpu-4gb"]}


def gateway_of(ip):
    parts = ip.split(".")
    return ".".join(parts[:3] + ["1"]) if len(parts) == 4 else ""


class Clock:
    """Wall clock, or a manual clock that moves only through /_fake/clock."""

    def __init__(self, manual):
        self.manual = manual
        self.value = time.time()

    def now(self):
        return self.value if self.manual else time.time()

    def advance(self, seconds):
        self.value += seconds


class State:
    """Everything the fake knows. One lock guards all of it."""

    def __init__(self, setup, clock, holder_log, request_log, seed):
        self.lock = threading.Lock()
        self.wakeup = threading.Condition(self.lock)
        self.clock = clock
        self.rng = random.Random(seed)
        self.holder_log = holder_log
        self.request_log = request_log
        self.stopping = False
        self.setup = setup
        self.next_action_id = FIRST_ACTION_ID
        self.edge = None
        self.load(setup)

    def load(self, setup):
        """(Re)builds the state from the setup; action ids keep increasing across reloads."""
        self.options = validate_options(setup.get("options", {}), DEFAULT_OPTIONS)
        tokens = setup.get("tokens")
        self.tokens = self.parse_tokens(tokens) if tokens is not None else {
            "dop_v1_test": {"name": "test", "scopes": list(ALL_SCOPES)}}
        now = self.clock.now()
        self.droplets = collections.OrderedDict()
        for index, d in enumerate(setup["droplets"]):
            did = int(d["id"])
            private_ip = d.get("private_ip", "10.10.0.%d" % (index + 2))
            self.droplets[did] = {
                "id": did,
                "name": d.get("name", "droplet-%d" % did),
                "region": d.get("region", "nyc3"),
                "private_ip": private_ip,
                "public_ip": d.get("public_ip", "192.0.2.%d" % (index + 10)),
                "anchor_ip": d.get("anchor_ip", "10.17.0.%d" % (index + 5)),
                "tags": list(d.get("tags", [])),
                "has_anchor": bool(d.get("has_anchor", True)),
                "status": d.get("status", "active"),
                "metadata_clients": list(d.get("metadata_clients", [private_ip])),
                "busy_until": now + float(d.get("busy_seconds", 0)),
            }
        self.metadata_clients = {}
        for did, d in self.droplets.items():
            for client in d["metadata_clients"]:
                self.metadata_clients[client] = did
        self.ips = collections.OrderedDict()
        for r in setup["reserved_ips"]:
            ip = str(ipaddress.IPv4Address(r["ip"]))
            holder = r.get("droplet_id")
            holder = int(holder) if holder is not None else None
            if holder is not None and holder not in self.droplets:
                raise ValueError("reserved IP %s: unknown droplet %s" % (ip, holder))
            self.ips[ip] = {
                "ip": ip,
                "region": r.get("region", self.droplets[holder]["region"] if holder else "nyc3"),
                "holder": holder,
                "project_id": r.get("project_id", DEFAULT_PROJECT),
                "pending": None,
                "history": [(-math.inf, holder)],
                "moves": 0,
                "actions": [],
            }
        self.actions = {}
        self.faults = []
        self.rate_log = {}
        self.counters = {"requests": 0, "assign_posts": 0, "unassign_posts": 0, "moves": 0,
                         "external_moves": 0, "by_status": {}, "faults": {}}
        self.edge_counters = new_edge_counters()

    @staticmethod
    def parse_tokens(tokens):
        out = {}
        for token, info in tokens.items():
            out[token] = {"name": info.get("name", "token-%d" % (len(out) + 1)),
                          "scopes": list(info.get("scopes", ALL_SCOPES))}
        return out

    def holder_of(self, did):
        for ip, r in self.ips.items():
            if r["holder"] == did:
                return ip
        return None

    def new_action_delay(self):
        delay = self.options["action_delay"]
        if isinstance(delay, list):
            return self.rng.uniform(delay[0], delay[1])
        return delay

    def create_action(self, ip, kind, target, by):
        r = self.ips[ip]
        now = self.clock.now()
        action_id = self.next_action_id
        self.next_action_id += 1
        due = now + self.new_action_delay()
        if self.options["action_result"] == "never":
            due = math.inf
        action = {"id": action_id, "ip": ip, "type": kind, "status": "in-progress",
                  "started_at": now, "completed_at": None, "due": due, "target": target,
                  "by": by}
        self.actions[action_id] = action
        r["pending"] = action_id
        r["actions"].append(action_id)
        self.wakeup.notify_all()
        return action

    def set_holder(self, ip, holder, action_id, by):
        r = self.ips[ip]
        previous = r["holder"]
        if previous == holder:
            return
        r["holder"] = holder
        r["history"].append((self.clock.now(), holder))
        if len(r["history"]) > 10000:
            del r["history"][1:5000]
        if self.holder_log:
            line = {"t": round(time.time(), 6), "ip": ip, "from": previous, "to": holder,
                    "action_id": action_id, "by": by}
            self.holder_log.write(json.dumps(line) + "\n")
            self.holder_log.flush()

    def complete_due(self):
        """Completes every pending action whose time has come. Called with the lock held."""
        now = self.clock.now()
        for r in self.ips.values():
            action_id = r["pending"]
            if action_id is None:
                continue
            action = self.actions[action_id]
            if action["due"] > now:
                continue
            result = self.options["action_result"]
            if result == "never":
                continue
            target = action["target"] if action["type"] == "assign_ip" else None
            # One reserved IP per droplet: if the target got another IP meanwhile, this fails.
            if target is not None and self.holder_of(target) not in (None, r["ip"]):
                result = "errored"
            action["status"] = result
            action["completed_at"] = max(now, action["started_at"])
            r["pending"] = None
            if result == "completed" and r["holder"] != target:
                r["moves"] += 1
                self.counters["moves"] += 1
                self.set_holder(r["ip"], target, action_id, action["by"])

    def next_due(self):
        dues = [self.actions[r["pending"]]["due"] for r in self.ips.values()
                if r["pending"] is not None]
        return min(dues) if dues else math.inf

    def reschedule_never(self):
        now = self.clock.now()
        for r in self.ips.values():
            if r["pending"] is not None and self.actions[r["pending"]]["due"] == math.inf:
                self.actions[r["pending"]]["due"] = now + self.new_action_delay()
        self.wakeup.notify_all()

    def rate_check(self, bucket):
        """Counts one request for bucket; returns (allowed, headers)."""
        now = self.clock.now()
        log = self.rate_log.setdefault(bucket, [])
        cut = bisect.bisect_right(log, now - 3600.0)
        if cut:
            del log[:cut]
        hourly = self.options["hourly_limit"]
        burst = self.options["burst_limit"]
        headers = {"ratelimit-limit": str(hourly)}
        if len(log) >= hourly:
            headers["ratelimit-remaining"] = "0"
            headers["ratelimit-reset"] = str(int(math.ceil(log[0] + 3600.0)))
            return False, headers
        minute = bisect.bisect_right(log, now - 60.0)
        if len(log) - minute >= burst:
            headers["ratelimit-remaining"] = "0"
            headers["ratelimit-reset"] = str(int(math.ceil(log[0] + 3600.0)))
            headers["retry-after"] = str(max(1, int(math.ceil(log[minute] + 60.0 - now - 0.001))))
            return False, headers
        log.append(now)
        headers["ratelimit-remaining"] = str(hourly - len(log))
        headers["ratelimit-reset"] = str(int(math.ceil(log[0] + 3600.0)))
        return True, headers

    def take_fault(self, route):
        for fault in self.faults:
            if fault["route"] in (route, "any") and fault["count"] != 0:
                if fault["count"] > 0:
                    fault["count"] -= 1
                self.faults = [f for f in self.faults if f["count"] != 0]
                self.counters["faults"][fault["kind"]] = \
                    self.counters["faults"].get(fault["kind"], 0) + 1
                return dict(fault)
        return None

    def log_request(self, entry):
        self.counters["requests"] += 1
        key = str(entry["status"]) if entry["status"] is not None else "none"
        self.counters["by_status"][key] = self.counters["by_status"].get(key, 0) + 1
        if self.request_log:
            self.request_log.write(json.dumps(entry) + "\n")
            self.request_log.flush()

    def holder_at(self, r, t):
        history = r["history"]
        index = bisect.bisect_right([h[0] for h in history], t) - 1
        return history[max(index, 0)][1]

    def snapshot(self):
        now = self.clock.now()
        return {
            "reserved_ips": {ip: {"droplet_id": r["holder"], "locked": r["pending"] is not None,
                                  "pending_action": r["pending"], "region": r["region"],
                                  "moves": r["moves"],
                                  "last_action": r["actions"][-1] if r["actions"] else None}
                             for ip, r in self.ips.items()},
            "droplets": {str(did): {"name": d["name"], "region": d["region"],
                                    "status": d["status"], "has_anchor": d["has_anchor"],
                                    "busy": d["busy_until"] > now,
                                    "busy_until": d["busy_until"] if d["busy_until"] > now
                                    else None,
                                    "reserved_ip": self.holder_of(did)}
                         for did, d in self.droplets.items()},
            "counters": json.loads(json.dumps(self.counters)),
            "options": dict(self.options),
            "faults": [dict(f) for f in self.faults],
            "actions_total": len(self.actions),
            "now": now,
            "edge": self.edge.snapshot() if self.edge else None,
        }


def completion_loop(state):
    """Completes actions on time with the wall clock, so the holder log time is the real one."""
    with state.lock:
        while not state.stopping:
            state.complete_due()
            due = state.next_due()
            if state.clock.manual or due == math.inf:
                state.wakeup.wait(1.0)
            else:
                state.wakeup.wait(max(0.0, min(due - state.clock.now(), 1.0)) + 0.0005)


def new_edge_counters():
    return {"connections": 0, "by_droplet": {}, "by_port": {}, "refused": 0,
            "refused_no_holder": 0, "refused_in_action": 0, "backend_failed": 0,
            "backend_failed_by_droplet": {}}


def parse_ports(spec):
    """"8081-8090,9000" -> [8081, ..., 8090, 9000]; raises ValueError on a bad spec."""
    ports = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        first = int(low)
        last = int(high) if dash else first
        if not 1 <= first <= last <= 65535:
            raise ValueError("bad port range %r" % part)
        ports.extend(p for p in range(first, last + 1) if p not in ports)
    if not ports:
        raise ValueError("no ports in %r" % spec)
    return ports


def reset_and_close(writer):
    """Closes with an RST (SO_LINGER 0), as a network with nobody behind an address would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class Edge:
    """Stands in for the reserved IP on the network: every TCP connection to ADDR:P is spliced
    to P on the private address of the droplet that holds the IP when the connection arrives,
    as DigitalOcean delivers reserved-IP traffic to the holder's anchor IP. It runs its own
    asyncio loop in one thread, so hundreds of connections never block the API threads."""

    def __init__(self, state, address, ports, ip, log_file, connect_timeout):
        self.state = state
        self.address = address
        self.ports = ports
        self.ip = ip
        self.log_file = log_file
        self.connect_timeout = connect_timeout
        self.active = 0
        self.loop = asyncio.new_event_loop()
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        # Bound here, in the caller's thread, so a taken port fails start-up at once.
        self.sockets = [socket.create_server((address, port), family=family, backlog=1024)
                        for port in ports]

    def start(self):
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            for sock, port in zip(self.sockets, self.ports):
                self.loop.run_until_complete(asyncio.start_server(
                    lambda r, w, port=port: self.handle(r, w, port), sock=sock))
            started.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        started.wait()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)

    def snapshot(self):
        """Called with the state lock held."""
        out = json.loads(json.dumps(self.state.edge_counters))
        out.update({"address": self.address, "ports": list(self.ports), "ip": self.ip,
                    "during_action": self.state.options["edge_during_action"],
                    "active": self.active})
        return out

    def target(self, port):
        """(droplet id, backend address) or (None, reason); counts the connection."""
        state = self.state
        with state.lock:
            state.complete_due()
            counters = state.edge_counters
            r = state.ips[self.ip]
            holder = r["holder"]
            if r["pending"] is not None:
                mode = state.options["edge_during_action"]
                if mode == "drop":
                    counters["refused"] += 1
                    counters["refused_in_action"] += 1
                    return None, "action_in_progress"
                if mode == "new":
                    action = state.actions[r["pending"]]
                    holder = action["target"] if action["type"] == "assign_ip" else None
            if holder is None:
                counters["refused"] += 1
                counters["refused_no_holder"] += 1
                return None, "no_holder"
            counters["connections"] += 1
            key = str(holder)
            counters["by_droplet"][key] = counters["by_droplet"].get(key, 0) + 1
            counters["by_port"][str(port)] = counters["by_port"].get(str(port), 0) + 1
            return holder, state.droplets[holder]["private_ip"]

    def count_backend_failure(self, droplet):
        with self.state.lock:
            counters = self.state.edge_counters
            counters["backend_failed"] += 1
            key = str(droplet)
            counters["backend_failed_by_droplet"][key] = \
                counters["backend_failed_by_droplet"].get(key, 0) + 1

    def log(self, entry):
        log_file = self.log_file
        if log_file:
            try:
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
            except ValueError:
                pass  # closed at shutdown

    async def handle(self, client_reader, client_writer, port):
        accepted = time.time()
        droplet, backend = self.target(port)
        entry = {"t": round(accepted, 6), "port": port, "droplet": droplet,
                 "backend": backend if droplet is not None else None}
        if droplet is None:
            reset_and_close(client_writer)
            entry["result"] = "refused"
            entry["reason"] = backend
            self.log(entry)
            return
        try:
            backend_reader, backend_writer = await asyncio.wait_for(
                asyncio.open_connection(backend, port), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:
            self.count_backend_failure(droplet)
            reset_and_close(client_writer)
            entry["result"] = "backend_failed"
            entry["error"] = "timeout" if isinstance(e, asyncio.TimeoutError) else \
                errno.errorcode.get(e.errno, type(e).__name__)
            entry["ms"] = round((time.time() - accepted) * 1000.0, 1)
            self.log(entry)
            return
        self.active += 1
        try:
            up, down = await asyncio.gather(
                self.pipe(client_reader, backend_writer, client_writer),
                self.pipe(backend_reader, client_writer, backend_writer))
        finally:
            self.active -= 1
            for writer in (client_writer, backend_writer):
                writer.close()
        entry["result"] = "ok" if up[1] is None and down[1] is None else "reset"
        entry["bytes_up"] = up[0]
        entry["bytes_down"] = down[0]
        entry["ms"] = round((time.time() - accepted) * 1000.0, 1)
        self.log(entry)

    async def pipe(self, reader, writer, source_writer):
        """Copies reader to writer until EOF, then half-closes writer. A reset on either side
        is passed on as a reset of the other, so the client sees what the backend did."""
        total = 0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                total += len(data)
                await writer.drain()
            if not writer.is_closing() and writer.can_write_eof():
                writer.write_eof()
            return total, None
        except (ConnectionError, OSError) as e:
            reset_and_close(writer)
            reset_and_close(source_writer)
            return total, type(e).__name__


class Reply:
    def __init__(self, status, body, content_type="application/json; charset=utf-8",
                 headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


class Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-do"
    sys_version = ""
    # Longer than curl's 118 s idle-connection age, so the client is the side that closes.
    timeout = 300
    # Headers and body go out in separate writes; without this, Nagle plus the client's
    # delayed ACK adds 40 ms to every response.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        # The handshake runs here, in the connection's own thread, so a client that stalls
        # in it cannot hold up the accept loop.
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        pass

    def log_request(self, code="-", size="-"):
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, reply, request_id=None, extra=None, truncate=False):
        body = reply.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        if truncate:
            body = body[:max(1, len(body) // 2)]
            self.close_connection = True
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        if request_id:
            self.send_header("x-request-id", request_id)
        for name, value in list((extra or {}).items()) + list(reply.headers.items()):
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def verbose(self, status):
        if self.server.verbose:
            sys.stderr.write("%s %s %s %s\n" % (self.server.label, self.command, self.path,
                                               status if status is not None else "-"))
            sys.stderr.flush()

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def error_body(status, error_id, message, request_id):
    return Reply(status, {"id": error_id, "message": message, "request_id": request_id})


class ApiHandler(Base):
    def do_GET(self):
        self.handle_api()

    def do_POST(self):
        self.handle_api()

    def do_PUT(self):
        self.handle_api()

    def do_DELETE(self):
        self.handle_api()

    def handle_api(self):
        state = self.server.state
        arrived = time.time()
        body = self.read_body()
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path.startswith("/_fake/"):
            reply = self.control(state, path, body)
            self.send(reply)
            self.verbose(reply.status)
            return
        query = urllib.parse.parse_qs(url.query)
        request_id = str(uuid.uuid4())
        route = fault_route(self.command, path)
        token = self.bearer_token()
        entry = {"t": round(arrived, 6), "method": self.command, "path": self.path,
                 "status": None, "request_id": request_id, "token": None, "droplet_id": None}
        if route == "assign":
            entry["droplet_id"] = droplet_id_of(body)
        with state.lock:
            state.complete_due()
            info = state.tokens.get(token) if token is not None else None
            entry["token"] = info["name"] if info else None
            fault = state.take_fault(route) if route else None
            if fault:
                entry["fault"] = fault["kind"]
            if fault and fault["kind"] in ("drop", "hang"):
                state.log_request(entry)
            else:
                allowed, rate_headers = state.rate_check(info["name"] if info else "")
        if fault and fault["kind"] == "drop":
            self.drop()
            self.verbose(None)
            return
        if fault and fault["kind"] == "hang":
            self.server.stop_event.wait(fault.get("hang_seconds", 60.0))
            self.drop()
            self.verbose(None)
            return

        reply = None
        if not allowed:
            reply = error_body(429, "too_many_requests", "API Rate limit exceeded.", request_id)
        elif fault and fault["kind"] in ("500", "502", "503", "504", "429"):
            reply = injected_reply(fault, request_id, rate_headers)
        if reply is None:
            with state.lock:
                state.complete_due()
                if info is None:
                    unauthorized = "unauthorized" if state.options["unauthorized_lowercase"] \
                        else "Unauthorized"
                    reply = error_body(401, unauthorized, "Unable to authenticate you",
                                       request_id)
                else:
                    reply = self.route(state, info, path, query, body, request_id)
        if fault and fault["kind"] == "commit_then_drop":
            entry["status"] = None
            entry["would_status"] = reply.status
            with state.lock:
                state.log_request(entry)
            self.drop()
            self.verbose(None)
            return
        entry["status"] = reply.status
        with state.lock:
            state.log_request(entry)
        truncate = bool(fault and fault["kind"] == "truncate")
        self.send(reply, request_id, rate_headers, truncate=truncate)
        self.verbose(reply.status)

    def bearer_token(self):
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return None
        return token

    def route(self, state, info, path, query, body, request_id):
        method = self.command
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "v2":
            return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
        resource = parts[1]
        rest = parts[2:]
        if resource == "account" and not rest and method == "GET":
            if not has_scope(info, "account:read"):
                return forbidden(request_id)
            return Reply(200, {"account": account_object(info)})
        if resource in ("reserved_ips", "floating_ips"):
            kind = resource[:-1]
            return self.reserved_ip_routes(state, info, kind, rest, query, body, request_id)
        if resource == "actions" and method == "GET":
            if not has_scope(info, "actions:read"):
                return forbidden(request_id)
            accept = self.headers.get("Accept", "")
            kind = "reserved_ip" if "vnd.digitalocean.reserveip" in accept else "floating_ip"
            if not rest:
                ids = sorted(state.actions, reverse=True)
                return self.paginated(path, query, "actions",
                                      [action_object(state, state.actions[i], kind) for i in ids])
            if len(rest) == 1 and rest[0].isdigit():
                action = state.actions.get(int(rest[0]))
                if action is None or state.options["byoip_404"]:
                    return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
                return Reply(200, {"action": action_object(state, action, kind)})
        if resource == "droplets" and method == "GET":
            if not has_scope(info, "droplet:read"):
                return forbidden(request_id)
            if not rest:
                tag = query.get("tag_name", [None])[-1]
                # The specification: listing by tag_name "Requires tag:read scope" as well.
                if tag is not None and not has_scope(info, "tag:read"):
                    return forbidden(request_id)
                items = [droplet_object(state, d) for d in state.droplets.values()
                         if tag is None or tag in d["tags"]]
                return self.paginated(path, query, "droplets", items)
            if len(rest) == 1 and rest[0].isdigit():
                d = state.droplets.get(int(rest[0]))
                if d is None:
                    return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
                return Reply(200, {"droplet": droplet_object(state, d)})
        return error_body(404, "not_found", MSG_NOT_FOUND, request_id)

    def reserved_ip_routes(self, state, info, kind, rest, query, body, request_id):
        method = self.command
        scope_names = ("reserved_ip", kind)
        if method == "POST":
            if len(rest) != 2 or rest[1] != "actions":
                return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
            if not any(has_scope(info, s + ":update") for s in scope_names):
                return forbidden(request_id)
            r = state.ips.get(rest[0])
            if r is None:
                return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
            return self.post_action(state, info, kind, r, body, request_id)
        if method != "GET":
            return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
        if not any(has_scope(info, s + ":read") for s in scope_names):
            return forbidden(request_id)
        if not rest:
            items = [reserved_ip_object(state, info, r) for r in state.ips.values()]
            return self.paginated("/v2/%ss" % kind, query, kind + "s", items)
        r = state.ips.get(rest[0])
        if r is None:
            return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
        if len(rest) == 1:
            return Reply(200, {kind: reserved_ip_object(state, info, r)})
        if rest[1] != "actions" or len(rest) > 3:
            return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
        if len(rest) == 2:
            items = [action_object(state, state.actions[i], kind)
                     for i in reversed(r["actions"])]
            return self.paginated("/v2/%ss/%s/actions" % (kind, r["ip"]), query, "actions", items)
        action = state.actions.get(int(rest[2])) if rest[2].isdigit() else None
        if action is None or action["ip"] != r["ip"] or state.options["byoip_404"]:
            return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
        return Reply(200, {"action": action_object(state, action, kind)})

    def post_action(self, state, info, kind, r, body, request_id):
        def refuse(message):
            return error_body(422, "unprocessable_entity", message, request_id)

        try:
            request = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return error_body(400, "bad_request", "Unable to parse the request body as JSON.",
                              request_id)
        if not isinstance(request, dict):
            return refuse("The request body must be a JSON object.")
        action_type = request.get("type")
        if action_type not in ("assign", "unassign"):
            return refuse("type must be one of: assign, unassign.")
        if action_type == "assign":
            counter = "assign_posts"
        else:
            counter = "unassign_posts"
        state.counters[counter] += 1
        if action_type == "assign":
            raw = request.get("droplet_id")
            if raw is None:
                return refuse("droplet_id is required to assign a floating IP.")
            did = parse_droplet_id(raw, state.options["strict_droplet_id"])
            if did is None:
                return refuse("droplet_id must be an integer.")
        if r["pending"] is not None:
            return refuse(MSG_IP_PENDING)
        if action_type == "unassign":
            if r["holder"] is None:
                status = state.options["unassign_unassigned_status"]
                if status == 422:
                    return refuse(MSG_NOT_ASSIGNED)
                if status == 404:
                    return error_body(404, "not_found", MSG_NOT_ASSIGNED, request_id)
            action = state.create_action(r["ip"], "unassign_ip", None, info["name"])
            return Reply(201, {"action": action_object(state, action, kind)})
        d = state.droplets.get(did)
        if d is None:
            if state.options["unknown_droplet_status"] == 422:
                return refuse("The Droplet does not exist.")
            return error_body(404, "not_found", MSG_NOT_FOUND, request_id)
        if d["busy_until"] > state.clock.now():
            return refuse(MSG_DROPLET_PENDING)
        held = state.holder_of(did)
        if held is not None and not (held == r["ip"] and state.options["reassign_noop"]):
            return refuse(MSG_ALREADY_HOLDS)
        if d["region"] != r["region"]:
            return refuse(MSG_REGION)
        if not d["has_anchor"]:
            return refuse(MSG_NO_ANCHOR)
        action = state.create_action(r["ip"], "assign_ip", did, info["name"])
        return Reply(201, {"action": action_object(state, action, kind)})

    def paginated(self, path, query, key, items):
        try:
            page = max(1, int(query.get("page", ["1"])[-1]))
            per_page = min(200, max(1, int(query.get("per_page", ["20"])[-1])))
        except ValueError:
            page, per_page = 1, 20
        total = len(items)
        last = max(1, (total + per_page - 1) // per_page)
        chunk = items[(page - 1) * per_page:page * per_page]
        host = self.headers.get("Host", "%s:%d" % self.server.server_address[:2])
        base_query = {k: v[-1] for k, v in query.items() if k not in ("page", "per_page")}

        def link(p):
            q = dict(base_query, page=p, per_page=per_page)
            return "%s://%s%s?%s" % ("https" if self.server.tls else "http", host, path,
                                     urllib.parse.urlencode(q))

        pages = {}
        if page > 1:
            pages["first"] = link(1)
            pages["prev"] = link(min(page - 1, last))
        if page < last:
            pages["next"] = link(page + 1)
            pages["last"] = link(last)
        return Reply(200, {key: chunk, "links": {"pages": pages} if pages else {},
                           "meta": {"total": total}})

    def control(self, state, path, body):
        try:
            request = json.loads(body.decode("utf-8")) if body.strip() else {}
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError) as e:
            return Reply(400, {"error": "bad JSON: %s" % e})
        name = path[len("/_fake/"):]
        with state.lock:
            state.complete_due()
            if name == "state" and self.command == "GET":
                return Reply(200, state.snapshot())
            if self.command != "POST":
                return Reply(404, {"error": "unknown control route %s %s" % (self.command, path)})
            try:
                return self.control_post(state, name, request)
            except (OptionError, KeyError, TypeError, ValueError) as e:
                return Reply(400, {"error": str(e) or repr(e)})

    def control_post(self, state, name, request):
        if name == "options":
            before = state.options["action_result"]
            state.options = validate_options(request, state.options)
            if before == "never" and state.options["action_result"] != "never":
                state.reschedule_never()
            return Reply(200, {"options": dict(state.options)})
        if name == "faults":
            route = request.get("route", "any")
            kind = str(request["kind"])
            if route not in FAULT_ROUTES:
                raise ValueError("route must be one of %s" % ", ".join(FAULT_ROUTES))
            if kind not in FAULT_KINDS:
                raise ValueError("kind must be one of %s" % ", ".join(FAULT_KINDS))
            count = int(request.get("count", 1))
            fault = {"route": route, "kind": kind, "count": count,
                     "hang_seconds": float(request.get("hang_seconds", 60.0))}
            if "retry_after" in request:
                fault["retry_after"] = int(request["retry_after"])
            if count != 0:
                state.faults.append(fault)
            return Reply(200, {"faults": [dict(f) for f in state.faults]})
        if name == "clear":
            state.faults = []
            return Reply(200, {"faults": []})
        if name == "droplet_busy":
            did = int(request["droplet_id"])
            if did not in state.droplets:
                raise ValueError("unknown droplet %d" % did)
            state.droplets[did]["busy_until"] = state.clock.now() + float(request["seconds"])
            return Reply(200, {"droplet_id": did,
                               "busy_until": state.droplets[did]["busy_until"]})
        if name == "set_holder":
            ip = request["ip"]
            if ip not in state.ips:
                raise ValueError("unknown reserved IP %s" % ip)
            did = request.get("droplet_id")
            did = int(did) if did is not None else None
            if did is not None and did not in state.droplets:
                raise ValueError("unknown droplet %d" % did)
            if did is not None and state.holder_of(did) not in (None, ip):
                raise ValueError("droplet %d already holds %s" % (did, state.holder_of(did)))
            if state.ips[ip]["holder"] != did:
                state.counters["external_moves"] += 1
            state.set_holder(ip, did, None, "fake")
            return Reply(200, {"ip": ip, "droplet_id": did})
        if name == "clock":
            if not state.clock.manual:
                raise ValueError("the fake runs on the wall clock; start it with --manual-clock")
            advance = float(request.get("advance", 0))
            if advance < 0:
                raise ValueError("advance must be >= 0")
            state.clock.advance(advance)
            state.complete_due()
            state.wakeup.notify_all()
            return Reply(200, {"now": state.clock.now()})
        if name == "tokens":
            state.tokens = State.parse_tokens(request["tokens"])
            return Reply(200, {"tokens": sorted(t["name"] for t in state.tokens.values())})
        if name == "reset":
            state.load(state.setup)
            state.wakeup.notify_all()
            return Reply(200, {"now": state.clock.now()})
        if name == "reset_rate_limits":
            state.rate_log = {}
            return Reply(200, {})
        raise ValueError("unknown control route /_fake/%s" % name)


def fault_route(method, path):
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "v2":
        return "other"
    resource = parts[1]
    if resource in ("reserved_ips", "floating_ips"):
        if len(parts) >= 4 and parts[3] == "actions":
            return "assign" if method == "POST" else "read_action"
        return "read_ip"
    if resource == "actions":
        return "read_action"
    if resource == "droplets":
        return "droplets"
    if resource == "account":
        return "account"
    return "other"


def droplet_id_of(body):
    try:
        request = json.loads(body.decode("utf-8"))
        return parse_droplet_id(request.get("droplet_id"), False)
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None


def parse_droplet_id(raw, strict):
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and not strict and re.fullmatch(r"[0-9]{1,19}", raw.strip()):
        return int(raw.strip())
    return None


def has_scope(info, scope):
    resource = scope.split(":")[0]
    scopes = info["scopes"]
    return "*" in scopes or scope in scopes or (resource + ":*") in scopes


def forbidden(request_id):
    return error_body(403, "forbidden", "You are not authorized to perform this operation",
                      request_id)


def injected_reply(fault, request_id, rate_headers):
    kind = fault["kind"]
    if kind == "500":
        return error_body(500, "server_error", "Server was unable to give you a response.",
                          request_id)
    if kind == "429":
        rate_headers["ratelimit-remaining"] = "0"
        headers = {}
        if "retry_after" in fault:
            headers["retry-after"] = str(fault["retry_after"])
        reply = error_body(429, "too_many_requests", "API Rate limit exceeded.", request_id)
        reply.headers = headers
        return reply
    status = int(kind)
    title = "%d %s" % (status, HTML_BODIES[status])
    html = ("<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>"
            "\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n" % (title, title))
    return Reply(status, html, "text/html")


def account_object(info):
    return {"droplet_limit": 25, "floating_ip_limit": 5, "reserved_ip_limit": 5,
            "volume_limit": 100, "email": "%s@example.com" % info["name"],
            "email_verified": True, "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            "status": "active", "status_message": "",
            "team": {"uuid": "5df3e3004a17e242b7c20ca6c9fc25b701a47ece", "name": "failoverd"}}


def droplet_object(state, d):
    v4 = [{"ip_address": d["public_ip"], "netmask": "255.255.240.0",
           "gateway": gateway_of(d["public_ip"]), "type": "public"}]
    held = state.holder_of(d["id"])
    if held is not None:
        v4.append({"ip_address": held, "netmask": "255.255.255.255",
                   "gateway": gateway_of(held), "type": "public"})
    v4.append({"ip_address": d["private_ip"], "netmask": "255.255.0.0", "gateway": "",
               "type": "private"})
    return {
        "id": d["id"], "name": d["name"], "memory": 1024, "vcpus": 1, "disk": 25,
        "locked": d["busy_until"] > state.clock.now(), "status": d["status"],
        "kernel": None, "created_at": "2026-01-05T10:00:00Z",
        "features": ["monitoring", "droplet_agent", "private_networking"],
        "backup_ids": [], "next_backup_window": None, "snapshot_ids": [],
        "image": {"id": 129211873, "name": "12 x64", "distribution": "Debian",
                  "slug": "debian-12-x64", "public": True, "regions": [d["region"]],
                  "type": "base", "min_disk_size": 15, "size_gigabytes": 0.85,
                  "status": "available"},
        "volume_ids": [],
        "size": {"slug": "s-1vcpu-1gb", "memory": 1024, "vcpus": 1, "disk": 25,
                 "transfer": 1.0, "price_monthly": 6.0, "price_hourly": 0.00893,
                 "regions": [d["region"]], "available": True},
        "size_slug": "s-1vcpu-1gb",
        "networks": {"v4": v4, "v6": []},
        "region": region_object(d["region"]),
        "tags": list(d["tags"]),
        "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
    }


def reserved_ip_object(state, info, r):
    obj = {"ip": r["ip"], "region": region_object(r["region"])}
    if has_scope(info, "droplet:read"):
        holder = r["holder"]
        if r["pending"] is not None and state.options["holder_null_while_pending"]:
            holder = None
        obj["droplet"] = droplet_object(state, state.droplets[holder]) if holder else None
    obj["locked"] = r["pending"] is not None
    if has_scope(info, "project:read"):
        obj["project_id"] = r["project_id"]
    return obj


def action_object(state, action, kind):
    r = state.ips[action["ip"]]
    return {"id": action["id"], "status": action["status"], "type": action["type"],
            "started_at": iso(action["started_at"]),
            "completed_at": iso(action["completed_at"]) if action["completed_at"] else None,
            "resource_id": int(ipaddress.IPv4Address(action["ip"])),
            "resource_type": kind, "region": region_object(r["region"]),
            "region_slug": r["region"], "project_id": r["project_id"]}


class MetadataHandler(Base):
    def do_GET(self):
        state = self.server.state
        self.read_body()
        with state.lock:
            state.complete_due()
            mode = state.options["metadata_mode"]
            hang = state.options["metadata_hang_seconds"]
        if mode == "refuse":
            self.drop()
            self.verbose(None)
            return
        if mode == "hang":
            self.server.stop_event.wait(hang)
            self.drop()
            self.verbose(None)
            return
        if mode == "500":
            reply = Reply(500, "Internal Server Error", "text/plain; charset=utf-8")
        else:
            with state.lock:
                reply = self.metadata(state)
        self.send(reply)
        self.verbose(reply.status)

    def metadata(self, state):
        path = urllib.parse.urlsplit(self.path).path
        match = re.match(r"^/droplet/(\d+)(/.*)$", path)
        if match:
            did = int(match.group(1))
            prefix = "/droplet/%d" % did
            path = match.group(2)
        else:
            client = self.client_address[0]
            if client.startswith("::ffff:"):
                client = client[len("::ffff:"):]
            did = state.metadata_clients.get(client)
            prefix = ""
        d = state.droplets.get(did) if did is not None else None
        if d is None:
            return text(404, "not found")
        doc = metadata_document(state, d)
        if path == "/metadata/v1.json":
            return Reply(200, doc)
        tree = metadata_tree(doc, state.options["metadata_unassigned_ip"])
        if not path.startswith("/metadata/v1"):
            return text(404, "not found")
        rel = path[len("/metadata/v1"):]
        node = tree
        segments = [s for s in rel.split("/") if s]
        for segment in segments:
            if not isinstance(node, dict) or segment not in node:
                return text(404, "not found")
            node = node[segment]
        if isinstance(node, dict):
            if not path.endswith("/"):
                location = prefix + path + "/"
                return Reply(301, "", "text/plain; charset=utf-8", {"Location": location})
            names = [k + "/" if isinstance(v, dict) else k for k, v in node.items()]
            return text(200, "\n".join(names))
        if path.endswith("/"):
            return text(404, "not found")
        if node is None:
            return text(404, "not found")
        return text(200, node)


def text(status, body):
    return Reply(status, body, "text/plain; charset=utf-8")


def metadata_document(state, d):
    now = state.clock.now()
    seen = now - state.options["metadata_lag"]
    held = None
    for ip, r in state.ips.items():
        if state.holder_at(r, seen) == d["id"]:
            held = ip
            break
    active = held is not None
    if state.options["metadata_stale"]:
        active = True
        if held is None:
            held = next((ip for ip, r in state.ips.items() if r["region"] == d["region"]), None)
    reserved = {"active": active}
    if held is not None:
        reserved["ip_address"] = held
    public = {"ipv4": {"ip_address": d["public_ip"], "netmask": "255.255.240.0",
                       "gateway": gateway_of(d["public_ip"])},
              "mac": "02:00:%s" % mac_suffix(d["id"], 1), "type": "public"}
    if d["has_anchor"]:
        public["anchor_ipv4"] = {"ip_address": d["anchor_ip"], "netmask": "255.255.0.0",
                                 "gateway": gateway_of(d["anchor_ip"])}
    private = {"ipv4": {"ip_address": d["private_ip"], "netmask": "255.255.0.0",
                        "gateway": "0.0.0.0"},
               "mac": "02:00:%s" % mac_suffix(d["id"], 2), "type": "private"}
    return {"droplet_id": d["id"], "hostname": d["name"], "user_data": "", "vendor_data": "",
            "public_keys": [], "auth_key": "fake-auth-key-do-not-log", "region": d["region"],
            "interfaces": {"public": [public], "private": [private]},
            "floating_ip": {"ipv4": dict(reserved)}, "reserved_ip": {"ipv4": dict(reserved),
                                                                     "ipv6": {"active": False}},
            "dns": {"nameservers": ["67.207.67.2", "67.207.67.3"]},
            "tags": list(d["tags"]), "features": {"dhcp_enabled": False},
            "modify_index": 42}


def mac_suffix(did, n):
    return ":".join("%02x" % b for b in ((did >> 16) & 255, (did >> 8) & 255, did & 255, n))


def metadata_tree(doc, unassigned):
    """The text view of the metadata document, as the /metadata/v1/... paths show it."""
    def address_block(block, address_key="address"):
        return {address_key: block["ip_address"], "netmask": block["netmask"],
                "gateway": block["gateway"]}

    def interface(entry):
        node = {"mac": entry["mac"], "type": entry["type"], "ipv4": address_block(entry["ipv4"])}
        if "anchor_ipv4" in entry:
            node["anchor_ipv4"] = address_block(entry["anchor_ipv4"])
        return {"0": node}

    def reserved(block, unassigned):
        node = {"active": "true" if block["active"] else "false"}
        if "ip_address" in block:
            node["ip_address"] = block["ip_address"]
        elif unassigned == "empty":
            node["ip_address"] = ""
        return node

    return {
        "id": str(doc["droplet_id"]),
        "hostname": doc["hostname"],
        "user-data": doc["user_data"],
        "vendor-data": doc["vendor_data"],
        "public-keys": "",
        "region": doc["region"],
        "tags": "\n".join(doc["tags"]),
        "interfaces": {"public": interface(doc["interfaces"]["public"][0]),
                       "private": interface(doc["interfaces"]["private"][0])},
        "reserved_ip": {"ipv4": reserved(doc["reserved_ip"]["ipv4"], unassigned),
                        "ipv6": {"active": "false"}},
        "floating_ip": {"ipv4": reserved(doc["floating_ip"]["ipv4"], unassigned)},
        "dns": {"nameservers": "\n".join(doc["dns"]["nameservers"])},
        "features": {"dhcp_enabled": "false"},
    }


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        # Clients that give up (timeouts, dropped connections, refused certificates) are
        # normal here.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError,
                                          ConnectionAbortedError, socket.timeout,
                                          ssl.SSLError)):
            return
        super().handle_error(request, client_address)


def make_server(spec, handler, state, stop_event, verbose, label):
    host, _, port = spec.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    server_class = Server
    if ":" in host:
        server_class = type("Server6", (Server,), {"address_family": socket.AF_INET6})
    server = server_class((host, int(port)), handler)
    server.state = state
    server.stop_event = stop_event
    server.verbose = verbose
    server.label = label
    server.tls = False
    return server


def main():
    parser = argparse.ArgumentParser(description="Fake DigitalOcean API and metadata service.")
    parser.add_argument("--setup", required=True, help="setup JSON (droplets, reserved_ips, ...)")
    parser.add_argument("--listen", default="127.0.0.1:0", help="API address, ADDR:PORT")
    parser.add_argument("--metadata-listen", help="metadata address, ADDR:PORT")
    parser.add_argument("--holder-log", help="JSON lines, one per holder change")
    parser.add_argument("--request-log", help="JSON lines, one per API request")
    parser.add_argument("--ready-file", help="written (atomically) once listening")
    parser.add_argument("--manual-clock", action="store_true",
                        help="time moves only through POST /_fake/clock")
    parser.add_argument("--seed", type=int, help="seed for the action delay draws")
    parser.add_argument("--verbose", action="store_true", help="one stderr line per request")
    parser.add_argument("--tls-cert", help="PEM certificate (chain): the API port serves HTTPS")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument("--edge-listen", help="address the reserved-IP edge listens on")
    parser.add_argument("--edge-ports", help="edge ports: 8081,8082 or 8081-8090 (or both)")
    parser.add_argument("--edge-ip", help="the reserved IP the edge stands for "
                                          "(default: the only one in the setup)")
    parser.add_argument("--edge-log", help="JSON lines, one per edge connection")
    parser.add_argument("--edge-connect-timeout", type=float, default=3.0,
                        help="seconds to reach the holder before resetting the client")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if bool(args.edge_listen) != bool(args.edge_ports):
        parser.error("--edge-listen and --edge-ports go together")
    edge_ports = None
    if args.edge_ports:
        try:
            edge_ports = parse_ports(args.edge_ports)
        except ValueError as e:
            parser.error("--edge-ports: %s" % e)

    with open(args.setup) as f:
        setup = json.load(f)
    holder_log = open(args.holder_log, "a") if args.holder_log else None
    request_log = open(args.request_log, "a") if args.request_log else None
    try:
        state = State(setup, Clock(args.manual_clock), holder_log, request_log, args.seed)
    except (OptionError, KeyError, ValueError) as e:
        sys.exit("fake_do_api: bad setup %s: %s" % (args.setup, e))
    edge = None
    if args.edge_listen:
        edge_ip = args.edge_ip
        if edge_ip is None:
            if len(state.ips) != 1:
                sys.exit("fake_do_api: --edge-ip is needed with %d reserved IPs" % len(state.ips))
            edge_ip = next(iter(state.ips))
        if edge_ip not in state.ips:
            sys.exit("fake_do_api: --edge-ip %s is not a reserved IP of the setup" % edge_ip)
        edge_log = open(args.edge_log, "a") if args.edge_log else None
        try:
            edge = Edge(state, args.edge_listen.strip("[]"), edge_ports, edge_ip, edge_log,
                        args.edge_connect_timeout)
        except OSError as e:
            sys.exit("fake_do_api: edge on %s: %s" % (args.edge_listen, e))
        state.edge = edge
    stop_event = threading.Event()
    servers = [make_server(args.listen, ApiHandler, state, stop_event, args.verbose, "api")]
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as e:
            sys.exit("fake_do_api: TLS certificate %s: %s" % (args.tls_cert, e))
        context.set_alpn_protocols(["http/1.1"])
        servers[0].socket = context.wrap_socket(servers[0].socket, server_side=True,
                                                do_handshake_on_connect=False)
        servers[0].tls = True
    if args.metadata_listen:
        servers.append(make_server(args.metadata_listen, MetadataHandler, state, stop_event,
                                   args.verbose, "metadata"))
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
    completer = threading.Thread(target=completion_loop, args=(state,), daemon=True)
    completer.start()
    if edge:
        edge.start()

    def stop(signo, frame):
        stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready_file:
        ready = {"api_port": servers[0].server_address[1],
                 "metadata_port": servers[1].server_address[1] if len(servers) > 1 else None,
                 "pid": os.getpid(), "tls": servers[0].tls,
                 "edge": {"address": edge.address, "ports": edge.ports, "ip": edge.ip}
                 if edge else None}
        temp = "%s.%d.tmp" % (args.ready_file, os.getpid())
        with open(temp, "w") as f:
            json.dump(ready, f)
        os.replace(temp, args.ready_file)
    while not stop_event.wait(1.0):
        pass
    with state.lock:
        state.stopping = True
        state.wakeup.notify_all()
    stoppers = [threading.Thread(target=server.shutdown) for server in servers]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
    for server in servers:
        server.server_close()
    edge_log = None
    if edge:
        edge.stop()
        edge_log, edge.log_file = edge.log_file, None
    with state.lock:
        for log in (holder_log, request_log, edge_log):
            if log:
                log.close()
        state.holder_log = state.request_log = None


if __name__ == "__main__":
    main()
