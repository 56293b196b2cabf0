#!/usr/bin/env python3
"""Traffic for the rollout tests: an app server per node and a client that follows the IP.

  traffic.py app --listen ADDR:PORT --name NODE --docker-state FILE
      Answers GET / with 200 and "NODE" while every container in the fake Docker engine's
      state FILE is running (the node's service is up), else 503: what a load balancer in
      front of the node's containers would do.

  traffic.py client --api URL --ip IP --map DROPLET=ADDR:PORT [...] --out FILE [--rate 50]
      Sends numbered requests at a steady rate to whichever node the fake DigitalOcean API says
      holds IP at that moment (as the cloud routes reserved-IP traffic), until SIGTERM. Writes
      a JSON summary to FILE: sent, answered by node, and failures by kind. "unhealthy" (503,
      refused, reset) means the IP pointed at a node with no healthy service; "timeout" means
      no answer within --timeout (on a loaded machine this can be the client's own lateness).
"""
import argparse
import concurrent.futures
import http.client
import http.server
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.request


def containers_running(path):
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return False
    containers = state.get("containers", [])
    return bool(containers) and all(c.get("state") == "running" for c in containers)


def run_app(args):
    host, port = args.listen.rsplit(":", 1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            healthy = containers_running(args.docker_state)
            body = (args.name if healthy else "unhealthy").encode()
            self.send_response(200 if healthy else 503)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server((host, int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


def holder_of(api, ip):
    with urllib.request.urlopen(api + "/_fake/state", timeout=2) as r:
        state = json.load(r)
    return state["reserved_ips"][ip]["droplet_id"]


def one_request(target, timeout):
    host, port = target.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        if response.status == 200:
            return "ok", body
        return "unhealthy", "HTTP %d" % response.status
    except socket.timeout:
        return "timeout", "no answer"
    except (ConnectionRefusedError, ConnectionResetError, OSError) as e:
        return "unhealthy", type(e).__name__
    finally:
        conn.close()


def run_client(args):
    targets = dict(m.split("=", 1) for m in args.map)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lock = threading.Lock()
    summary = {"sent": 0, "ok": 0, "by_node": {}, "failed": {"unhealthy": 0, "timeout": 0,
                                                             "no_holder": 0, "api": 0},
               "failures": [], "rate": args.rate}

    def record(seq, sent_at, holder, kind, detail):
        with lock:
            if kind == "ok":
                summary["ok"] += 1
                summary["by_node"][detail] = summary["by_node"].get(detail, 0) + 1
                return
            summary["failed"][kind] += 1
            if len(summary["failures"]) < 200:
                summary["failures"].append({"seq": seq, "t": round(sent_at, 3),
                                            "holder": holder, "kind": kind, "detail": detail})

    def attempt(seq, sent_at):
        try:
            holder = holder_of(args.api, args.ip)
        except Exception as e:  # the fake is test infrastructure; count, don't guess
            record(seq, sent_at, None, "api", type(e).__name__)
            return
        if holder is None or str(holder) not in targets:
            record(seq, sent_at, holder, "no_holder", "IP unassigned")
            return
        kind, detail = one_request(targets[str(holder)], args.timeout)
        record(seq, sent_at, holder, kind, detail)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=64)
    started = time.monotonic()
    seq = 0
    while not stop.is_set():
        due = started + seq / args.rate
        delay = due - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        seq += 1
        summary["sent"] = seq
        pool.submit(attempt, seq, time.time())
    pool.shutdown(wait=True)
    summary["seconds"] = round(time.monotonic() - started, 3)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, args.out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    app = sub.add_parser("app")
    app.add_argument("--listen", required=True)
    app.add_argument("--name", required=True)
    app.add_argument("--docker-state", required=True)
    client = sub.add_parser("client")
    client.add_argument("--api", required=True)
    client.add_argument("--ip", required=True)
    client.add_argument("--map", action="append", required=True)
    client.add_argument("--out", required=True)
    client.add_argument("--rate", type=float, default=50.0)
    client.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    if args.command == "app":
        run_app(args)
    else:
        run_client(args)


if __name__ == "__main__":
    sys.exit(main())
