#!/usr/bin/env python3
"""A small HTTP/1.1 (keep-alive) server for the CurlMulti and probe integration tests.

Listens on 127.0.0.1 port 0 (prints "PORT <n>") or on a unix socket (--unix PATH, prints
"UNIX <path>" once listening). Routes:
  GET  /status/<code>       that status, body "status <code>"
  GET  /body/<text>         200 with <text> as the body
  GET  /slow/<ms>           200 after <ms> milliseconds
  GET  /big/<bytes>         200 with <bytes> bytes of 'x'
  GET  /connections         200 with the number of connections accepted so far
  GET  /headers             200 echoing the request headers, one "name: value" per line
  any  /echo                200 with "<METHOD> <body>"
Exits on SIGTERM.
"""

import argparse
import http.server
import os
import signal
import socketserver
import sys
import threading
import time

connections = 0
connections_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global connections
        with connections_lock:
            connections += 1
        super().setup()

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Test-Server", "yes")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def route(self):
        parts = self.path.split("/", 2)
        name = parts[1] if len(parts) > 1 else ""
        arg = parts[2] if len(parts) > 2 else ""
        if name == "status":
            self.reply(int(arg), "status " + arg)
        elif name == "body":
            self.reply(200, arg)
        elif name == "slow":
            time.sleep(int(arg) / 1000.0)
            self.reply(200, "slow " + arg)
        elif name == "big":
            self.reply(200, b"x" * int(arg))
        elif name == "connections":
            with connections_lock:
                count = connections
            self.reply(200, str(count))
        elif name == "headers":
            self.reply(200, "".join("%s: %s\n" % (k.lower(), v) for k, v in self.headers.items()))
        elif name == "echo":
            self.reply(200, self.command + " " + self.read_body())
        else:
            self.reply(404, "no route " + self.path)

    do_GET = route
    do_POST = route
    do_PUT = route
    do_DELETE = route
    do_HEAD = route


class TcpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("unix", 0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--unix", help="listen on this unix socket path instead of TCP")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.unix:
        server = UnixServer(args.unix, Handler)
        print("UNIX " + args.unix, flush=True)
    else:
        server = TcpServer(("127.0.0.1", 0), Handler)
        print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
