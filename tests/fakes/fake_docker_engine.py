#!/usr/bin/env python3
"""A fake Docker Engine on a unix socket, for tests and bench/probe_cost.

Serves HTTP/1.1 (keep-alive) like dockerd does:
  GET  /containers/json and /v1.NN/containers/json   with `all` and `filters` (label, name, status)
  GET  /_ping, HEAD /_ping, GET /version             so the real docker CLI works (`docker ps`)

The containers come from a JSON state file, re-read on every request so a test can change it
while a check is running. The file is either a list of containers or an object:
  {"containers": [...], "fault": "hang|slow|garbage|500|close", "delay": 2.5}
A container is either an Engine object (with "Names", as in tests/fixtures/docker/) or short:
  {"name": "web-1", "state": "running", "health": "healthy", "labels": {"app": "minitwit"}}
GET /events and /v1.NN/events stream the Engine's newline-delimited JSON events (chunked, as
dockerd does) for the state changes the fake sees in its state file, polled every 50 ms: start,
die, destroy, pause, unpause and "health_status: healthy|unhealthy", honouring an "event" filter.
The state file key "listing_lag" (seconds) makes the listing show the containers as they were
that long ago, as dockerd 20.10 does for a moment after `die` (its events come first).
The state file key "events_fault" breaks the stream instead (listing faults are separate):
  hang     read the request, never send the response head
  garbage  200, then a line that is not JSON (also on a stream already open)
  close    200, then half an event, then close (also on a stream already open)
  500      HTTP 500 with an Engine-style {"message": ...}
Faults apply to the container listing only (/_ping and /version always answer):
  hang     read the request, never answer (the connection stays open)
  slow     answer after `delay` seconds (default 5)
  garbage  200 with a body that is not JSON
  500      HTTP 500 with an Engine-style {"message": ...}
  close    close the connection without answering
Flags --fault and --delay set the same from the command line; the state file wins.

The socket appears only once it is listening (bound under a temporary name, then renamed), so
a test may wait for the path to exist. SIGTERM or SIGINT removes it and exits.
"""

import argparse
import hashlib
import http.server
import json
import os
import re
import select as io_select
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

API_VERSION = "1.41"
ENGINE_VERSION = "20.10.24-fake"


def expand(item, index):
    """Turns a short container description into what /containers/json returns."""
    if "Names" in item:
        return item
    name = item["name"]
    state = item.get("state", "running")
    health = item.get("health")
    if state == "running":
        status = "Up 5 minutes"
        if health == "starting":
            status += " (health: starting)"
        elif health in ("healthy", "unhealthy"):
            status += " (%s)" % health
    elif state == "paused":
        status = "Up 5 minutes (Paused)"
    elif state == "exited":
        status = "Exited (%d) 2 minutes ago" % item.get("exit_code", 137)
    else:
        status = state.capitalize()
    image = item.get("image", "minitwit/web:latest")
    return {
        "Id": item.get("id", hashlib.sha256(name.encode()).hexdigest()),
        "Names": ["/" + name],
        "Image": image,
        "ImageID": "sha256:" + hashlib.sha256(image.encode()).hexdigest(),
        "Command": item.get("command", "/bin/sh -c 'httpd -f -p 8080'"),
        "Created": 1717000000 + index,
        "Ports": [],
        "Labels": item.get("labels", {}),
        "State": state,
        "Status": item.get("status", status),
        "HostConfig": {"NetworkMode": "default"},
        "NetworkSettings": {"Networks": {}},
        "Mounts": [],
    }


def filter_values(filters, key):
    """Engine filters come as {"label": ["a=b"]} or, from old clients, {"label": {"a=b": true}}."""
    value = filters.get(key, [])
    if isinstance(value, dict):
        return [k for k, v in value.items() if v]
    if isinstance(value, str):
        return [value]
    return list(value)


def label_matches(labels, wanted):
    key, sep, value = wanted.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def container_state(c):
    if "State" in c:
        return c["State"]
    return "running" if c.get("Status", "").startswith("Up") else "exited"


def select(containers, query):
    show_all = query.get("all", ["0"])[-1] not in ("0", "false", "")
    try:
        filters = json.loads(query.get("filters", ["{}"])[-1] or "{}")
    except json.JSONDecodeError:
        return None, "invalid filter: " + query.get("filters", [""])[-1]
    if not isinstance(filters, dict):
        return None, "invalid filter: not an object"
    labels = filter_values(filters, "label")
    names = filter_values(filters, "name")
    statuses = filter_values(filters, "status")
    out = []
    for c in containers:
        state = container_state(c)
        # As dockerd: without all=1 only running containers, unless a status filter is given.
        if not show_all and not statuses and state != "running":
            continue
        if statuses and state not in statuses:
            continue
        if any(not label_matches(c.get("Labels") or {}, l) for l in labels):
            continue
        if names and not any(re.search(p, n) for p in names for n in c.get("Names", [])):
            continue
        out.append(c)
    return out, None


class Engine:
    def __init__(self, state_path, fault, delay):
        self.state_path = state_path
        self.default_fault = fault
        self.default_delay = delay
        self.requests = 0
        self.event_streams = 0
        self.events_sent = 0
        self.lock = threading.Lock()
        self.history = []  # (first seen, containers), for listing_lag

    def remember(self, containers):
        """Notes when the fake first saw this state; the listing may show an older one."""
        now = time.monotonic()
        with self.lock:
            if not self.history or self.history[-1][1] != containers:
                self.history.append((now, containers))
                del self.history[:-100]

    def lagging(self, containers, lag):
        """The state as it was `lag` seconds ago (the oldest one remembered if none is that old)."""
        self.remember(containers)
        if lag <= 0:
            return containers
        cutoff = time.monotonic() - lag
        with self.lock:
            shown = self.history[0][1]
            for seen, state in self.history:
                if seen <= cutoff:
                    shown = state
            return shown

    def load(self):
        """Returns (containers, fault, delay); a missing or broken state file is an empty engine."""
        containers, fault, delay, _ = self.load_all()
        return containers, fault, delay

    def load_all(self):
        """As load(), plus the events fault."""
        containers, fault, delay, events_fault, _ = self.load_lag()
        return containers, fault, delay, events_fault

    def load_lag(self):
        """As load_all(), plus the listing lag in seconds."""
        containers, fault, delay, events_fault = [], self.default_fault, self.default_delay, None
        lag = 0.0
        if self.state_path:
            try:
                with open(self.state_path) as f:
                    state = json.load(f)
            except (OSError, json.JSONDecodeError) as e:
                print("fake_docker_engine: cannot read state %s: %s" % (self.state_path, e),
                      file=sys.stderr)
                state = []
            if isinstance(state, dict):
                containers = state.get("containers", [])
                fault = state.get("fault", fault)
                delay = float(state.get("delay", delay))
                events_fault = state.get("events_fault")
                lag = float(state.get("listing_lag", 0))
            else:
                containers = state
        expanded = [expand(c, i) for i, c in enumerate(containers)]
        self.remember(expanded)
        return expanded, fault, delay, events_fault, lag


def health_of(c):
    status = c.get("Status", "")
    if "(healthy)" in status:
        return "healthy"
    if "(unhealthy)" in status:
        return "unhealthy"
    if "(health: starting)" in status:
        return "starting"
    return None


def snapshot(containers):
    """name -> (container, state, health), the part of the state events are made from."""
    out = {}
    for c in containers:
        name = (c.get("Names") or ["/?"])[0].lstrip("/")
        out[name] = (c, container_state(c), health_of(c))
    return out


def changes(before, after):
    """The (action, container) events that turn `before` into `after`, as dockerd would send."""
    out = []
    for name, (c, state, health) in after.items():
        old = before.get(name)
        old_state = old[1] if old else None
        if state != old_state:
            if state == "running" and old_state == "paused":
                out.append(("unpause", c))
            elif state == "running":
                out.append(("start", c))
            elif state == "paused":
                out.append(("pause", c))
            elif old_state in ("running", "paused", "restarting"):
                out.append(("die", c))
        if state == "running" and health in ("healthy", "unhealthy") and (
                not old or old[2] != health):
            out.append(("health_status: " + health, c))
    for name, (c, state, _) in before.items():
        if name not in after:
            if state in ("running", "paused"):
                out.append(("die", c))
            out.append(("destroy", c))
    return out


def event_json(action, c):
    now = time.time()
    attributes = dict(c.get("Labels") or {})
    attributes["image"] = c.get("Image", "")
    attributes["name"] = (c.get("Names") or ["/?"])[0].lstrip("/")
    if action == "die":
        attributes["exitCode"] = "137"
    return json.dumps({
        "status": action, "id": c["Id"], "from": c.get("Image", ""),
        "Type": "container", "Action": action,
        "Actor": {"ID": c["Id"], "Attributes": attributes},
        "scope": "local", "time": int(now), "timeNano": int(now * 1e9),
    }) + "\n"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Docker/" + ENGINE_VERSION
    sys_version = ""

    def version_string(self):
        return self.server_version

    def address_string(self):
        return "unix"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake_docker_engine: %s\n" % (fmt % args))

    def send_body(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        engine = self.server.engine
        with engine.lock:
            engine.requests += 1
        url = urllib.parse.urlsplit(self.path)
        path = re.sub(r"^/v1\.\d+", "", url.path)
        if path == "/_ping":
            self.send_body(200, "OK", "text/plain; charset=utf-8")
            return
        if path == "/version":
            self.send_body(200, json.dumps({
                "Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": "1.12",
                "Os": "linux", "Arch": "amd64", "KernelVersion": os.uname().release,
                "GitCommit": "fake", "GoVersion": "go1.19", "BuildTime": "",
                "Components": [{"Name": "Engine", "Version": ENGINE_VERSION,
                                "Details": {"ApiVersion": API_VERSION}}],
            }))
            return
        if path == "/events":
            self.stream_events(urllib.parse.parse_qs(url.query))
            return
        if path != "/containers/json":
            self.send_body(404, json.dumps({"message": "page not found"}))
            return

        containers, fault, delay, _, lag = engine.load_lag()
        containers = engine.lagging(containers, lag)
        if fault == "hang":
            # Keep the connection open without answering until the client gives up.
            while not self.server.stopping.wait(0.2):
                pass
            self.close_connection = True
            return
        if fault == "close":
            self.close_connection = True
            return
        if fault == "slow":
            self.server.stopping.wait(delay if delay > 0 else 5.0)
        if fault == "garbage":
            self.send_body(200, '[{"Id": "abc", "Names": ["/web-1"], "State": "runn')
            return
        if fault == "500":
            self.send_body(500, json.dumps({"message": "fake engine: injected server error"}))
            return
        selected, error = select(containers, urllib.parse.parse_qs(url.query))
        if error:
            self.send_body(400, json.dumps({"message": error}))
            return
        self.send_body(200, json.dumps(selected))


    def client_gone(self, timeout):
        """Waits up to `timeout` seconds; True once the client has closed its end."""
        readable, _, _ = io_select.select([self.connection], [], [], timeout)
        if not readable:
            return False
        try:
            return self.connection.recv(4096, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def send_chunk(self, text):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def stream_events(self, query):
        engine = self.server.engine
        self.close_connection = True
        containers, _, _, fault = engine.load_all()
        with engine.lock:
            engine.event_streams += 1
        if fault == "hang":
            while not self.server.stopping.is_set() and not self.client_gone(0.2):
                pass
            return
        if fault == "500":
            self.send_body(500, json.dumps({"message": "fake engine: injected events error"}))
            return
        try:
            filters = json.loads(query.get("filters", ["{}"])[-1] or "{}")
        except json.JSONDecodeError:
            filters = {}
        wanted = filter_values(filters, "event") if isinstance(filters, dict) else []
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        before = snapshot(containers)
        while not self.server.stopping.is_set():
            if fault == "garbage":
                self.send_chunk("this is not an event\n")
                return
            if fault == "close":
                self.send_chunk('{"Type":"container","Action":"di')
                return
            if self.client_gone(0.05):
                return
            containers, _, _, fault = engine.load_all()
            after = snapshot(containers)
            for action, c in changes(before, after):
                if wanted and action.split(":")[0] not in wanted:
                    continue
                self.send_chunk(event_json(action, c))
                with engine.lock:
                    engine.events_sent += 1
            before = after


class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (probe timeout) is normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description="Fake Docker Engine on a unix socket.")
    parser.add_argument("socket", help="unix socket path to serve on")
    parser.add_argument("--state", help="JSON state file, re-read on every request")
    parser.add_argument("--fault", choices=["hang", "slow", "garbage", "500", "close"])
    parser.add_argument("--delay", type=float, default=5.0, help="seconds, for --fault slow")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()

    temp = "%s.%d.tmp" % (args.socket, os.getpid())
    for p in (args.socket, temp):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    server = Server(temp, Handler)
    server.engine = Engine(args.state, args.fault, args.delay)
    server.verbose = args.verbose
    server.stopping = threading.Event()
    os.rename(temp, args.socket)

    def stop(signo, frame):
        server.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    main()
