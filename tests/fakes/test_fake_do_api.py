#!/usr/bin/env python3
"""Self-test of fake_do_api.py over real HTTP: runs the fake as a subprocess on loopback."""

import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_do_api.py")

GOOD = "dop_v1_good"
READONLY = "dop_v1_readonly"
NO_ACTIONS = "dop_v1_noactions"
OTHER = "dop_v1_other"
TAG_READER = "dop_v1_tagreader"
TAGS_ONLY = "dop_v1_tagsonly"
D1, D2, D3, D4, D5 = 3000000001, 3000000002, 3000000003, 3000000004, 3000000005
IP1, IP2, IP3 = "203.0.113.10", "203.0.113.20", "203.0.113.30"
IP1_U32 = 3405803786
DEADLINE = 15.0

SETUP = {
    "tokens": {
        GOOD: {"name": "ci", "scopes": ["*"]},
        READONLY: {"name": "ro", "scopes": ["reserved_ip:read", "droplet:read", "account:read"]},
        NO_ACTIONS: {"name": "iponly", "scopes": ["reserved_ip:read", "reserved_ip:update"]},
        OTHER: {"name": "other", "scopes": ["*"]},
        TAG_READER: {"name": "peers", "scopes": ["droplet:read", "tag:read"]},
        TAGS_ONLY: {"name": "tags", "scopes": ["tag:read"]},
    },
    "droplets": [
        {"id": D1, "name": "n1", "region": "nyc3", "private_ip": "10.77.0.1",
         "public_ip": "198.51.100.1", "tags": ["failoverd"], "metadata_clients": ["127.0.0.1"]},
        {"id": D2, "name": "n2", "region": "nyc3", "private_ip": "10.77.0.2",
         "public_ip": "198.51.100.2", "tags": ["failoverd"]},
        {"id": D3, "name": "n3", "region": "nyc3", "private_ip": "10.77.0.3",
         "public_ip": "198.51.100.3", "tags": ["failoverd"], "has_anchor": False},
        {"id": D4, "name": "n4", "region": "sfo2", "private_ip": "10.78.0.4",
         "public_ip": "198.51.100.4", "tags": []},
        {"id": D5, "name": "n5", "region": "nyc3", "private_ip": "10.77.0.5",
         "public_ip": "198.51.100.5", "tags": ["other"]},
    ],
    "reserved_ips": [
        {"ip": IP1, "region": "nyc3", "droplet_id": D1},
        {"ip": IP2, "region": "nyc3", "droplet_id": D5},
        {"ip": IP3, "region": "nyc3", "droplet_id": None},
    ],
    "options": {"action_delay": 5},
}


def wait_for(condition, what, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode())


class Fake:
    def __init__(self, setup, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="fake_do_api_test.")
        self.setup_path = os.path.join(self.dir, "setup.json")
        with open(self.setup_path, "w") as f:
            json.dump(setup, f)
        self.ready = os.path.join(self.dir, "ready.json")
        self.holder_log = os.path.join(self.dir, "holders.jsonl")
        self.request_log = os.path.join(self.dir, "requests.jsonl")
        self.stderr = open(os.path.join(self.dir, "stderr.txt"), "w+")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--setup", self.setup_path, "--listen", "127.0.0.1:0",
             "--metadata-listen", "127.0.0.1:0", "--ready-file", self.ready,
             "--holder-log", self.holder_log, "--request-log", self.request_log]
            + [a.replace("{dir}", self.dir) for a in extra_args], stderr=self.stderr)
        wait_for(lambda: os.path.exists(self.ready) or self.proc.poll() is not None,
                 "the ready file")
        if self.proc.poll() is not None:
            self.stop()
            raise AssertionError("fake exited with %d" % self.proc.returncode)
        self.startup_seconds = time.monotonic() - started
        with open(self.ready) as f:
            self.info = json.load(f)
        self.port = self.info["api_port"]
        self.metadata_port = self.info["metadata_port"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=DEADLINE)
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, method, path, body=None, token=GOOD, headers=None, port=None,
                timeout=10.0):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if token is not None:
                hdrs["Authorization"] = "Bearer " + token
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            if body is not None:
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def assign(self, ip, droplet_id, token=GOOD, alias=False):
        kind = "floating_ips" if alias else "reserved_ips"
        return self.post("/v2/%s/%s/actions" % (kind, ip),
                         {"type": "assign", "droplet_id": droplet_id}, token=token)

    def control(self, name, body=None):
        if body is None:
            r = self.get("/_fake/" + name, token=None)
        else:
            r = self.post("/_fake/" + name, body, token=None)
        if r.status != 200:
            raise AssertionError("control %s: %d %s" % (name, r.status, r.body))
        return r.json()

    def metadata(self, path, timeout=5.0):
        return self.get(path, token=None, port=self.metadata_port, timeout=timeout)


def read_lines(path, offset):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        f.seek(offset)
        return [json.loads(line) for line in f.read().splitlines()]


def size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


class FakeApiTest(unittest.TestCase):
    """One manual-clock fake for the class; every test starts from /_fake/reset."""

    @classmethod
    def setUpClass(cls):
        cls.fake = Fake(SETUP, ["--manual-clock"])
        print("fake startup: %.3f s" % cls.fake.startup_seconds, file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.control("reset", {})
        self.holder_offset = size(self.fake.holder_log)
        self.request_offset = size(self.fake.request_log)

    def new_holder_lines(self):
        return read_lines(self.fake.holder_log, self.holder_offset)

    def new_request_lines(self):
        return read_lines(self.fake.request_log, self.request_offset)

    def holder(self, ip):
        return self.fake.control("state")["reserved_ips"][ip]["droplet_id"]

    def assert_error(self, r, status, error_id, message=None):
        self.assertEqual(r.status, status, r.body)
        body = r.json()
        self.assertEqual(body["id"], error_id)
        self.assertEqual(body["request_id"], r.headers["x-request-id"])
        if message is not None:
            self.assertEqual(body["message"], message)

    def assert_common_headers(self, r):
        uuid.UUID(r.headers["x-request-id"])
        for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
            self.assertTrue(r.headers[name].isdigit(), name)

    def test_account_and_headers(self):
        r = self.fake.get("/v2/account")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "application/json; charset=utf-8")
        self.assert_common_headers(r)
        self.assertEqual(r.json()["account"]["status"], "active")
        self.assertEqual(self.fake.info["pid"], self.fake.proc.pid)

    def test_token_errors(self):
        for token, headers in ((None, {}), (None, {"Authorization": "Token " + GOOD}),
                               (None, {"Authorization": "Bearer"}), ("dop_v1_unknown", {})):
            r = self.fake.get("/v2/reserved_ips/" + IP1, token=token, headers=headers)
            self.assert_error(r, 401, "Unauthorized", "Unable to authenticate you")
            self.assert_common_headers(r)
        self.fake.control("options", {"unauthorized_lowercase": True})
        self.assert_error(self.fake.get("/v2/account", token="nope"), 401, "unauthorized")
        lines = self.new_request_lines()
        self.assertEqual([l["status"] for l in lines], [401] * 5)
        self.assertTrue(all(l["token"] is None for l in lines))

    def test_scopes(self):
        r = self.fake.post("/v2/reserved_ips/%s/actions" % IP1, "{not json", token=READONLY)
        self.assert_error(r, 403, "forbidden")
        self.assert_error(self.fake.assign(IP1, D2, token=READONLY), 403, "forbidden")
        self.assertEqual(self.fake.get("/v2/reserved_ips/" + IP1, token=READONLY).status, 200)
        self.assertEqual(self.fake.get("/v2/droplets/%d" % D1, token=READONLY).status, 200)
        self.assert_error(self.fake.get("/v2/droplets/%d" % D1, token=NO_ACTIONS), 403,
                          "forbidden")
        self.assert_error(self.fake.get("/v2/account", token=NO_ACTIONS), 403, "forbidden")
        action = self.fake.assign(IP3, D2, token=NO_ACTIONS).json()["action"]
        self.assert_error(self.fake.get("/v2/actions/%d" % action["id"], token=NO_ACTIONS), 403,
                          "forbidden")
        r = self.fake.get("/v2/reserved_ips/%s/actions/%d" % (IP3, action["id"]),
                          token=NO_ACTIONS)
        self.assertEqual(r.status, 200)
        # Without droplet:read the droplet sub-object is left out, without project:read the id.
        ip = self.fake.get("/v2/reserved_ips/" + IP1, token=NO_ACTIONS).json()["reserved_ip"]
        self.assertNotIn("droplet", ip)
        self.assertNotIn("project_id", ip)
        # With droplet:read the key is there, null for an unassigned IP.
        ip = self.fake.get("/v2/reserved_ips/" + IP1, token=READONLY).json()["reserved_ip"]
        self.assertIn("droplet", ip)
        # Listing by tag needs tag:read besides droplet:read; listing all does not.
        self.assertEqual(self.fake.get("/v2/droplets", token=READONLY).status, 200)
        self.assert_error(self.fake.get("/v2/droplets?tag_name=failoverd", token=READONLY), 403,
                          "forbidden")
        self.assert_error(self.fake.get("/v2/droplets?tag_name=failoverd", token=TAGS_ONLY), 403,
                          "forbidden")
        r = self.fake.get("/v2/droplets?tag_name=failoverd", token=TAG_READER)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(sorted(d["id"] for d in r.json()["droplets"]), [D1, D2, D3])

    def test_request_validation(self):
        path = "/v2/reserved_ips/%s/actions" % IP3
        self.assert_error(self.fake.post(path, "{not json"), 400, "bad_request")
        self.assert_error(self.fake.post(path, {}), 422, "unprocessable_entity")
        self.assert_error(self.fake.post(path, {"type": "bogus"}), 422, "unprocessable_entity")
        self.assert_error(self.fake.post(path, {"type": "assign"}), 422, "unprocessable_entity")
        self.assert_error(self.fake.post(path, {"type": "assign", "droplet_id": "x1"}), 422,
                          "unprocessable_entity")
        self.assert_error(self.fake.post("/v2/reserved_ips/198.18.0.1/actions",
                                         {"type": "assign", "droplet_id": D2}), 404, "not_found")
        self.fake.control("options", {"strict_droplet_id": True})
        self.assert_error(self.fake.assign(IP3, str(D2)), 422, "unprocessable_entity")
        self.fake.control("options", {"strict_droplet_id": False})
        r = self.fake.assign(IP3, str(D2))
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(self.new_request_lines()[-1]["droplet_id"], D2)

    def test_assign_lifecycle(self):
        ip = self.fake.get("/v2/reserved_ips/" + IP1).json()["reserved_ip"]
        self.assertEqual(ip["droplet"]["id"], D1)
        self.assertFalse(ip["locked"])
        self.assertEqual(ip["region"]["slug"], "nyc3")
        self.assertIn("project_id", ip)
        v4 = ip["droplet"]["networks"]["v4"]
        self.assertEqual([(n["ip_address"], n["type"]) for n in v4],
                         [("198.51.100.1", "public"), (IP1, "public"), ("10.77.0.1", "private")])

        r = self.fake.assign(IP1, D2)
        self.assertEqual(r.status, 201, r.body)
        self.assert_common_headers(r)
        action = r.json()["action"]
        self.assertGreater(action["id"], 2**31)
        self.assertEqual(action["status"], "in-progress")
        self.assertEqual(action["type"], "assign_ip")
        self.assertIsNone(action["completed_at"])
        self.assertTrue(action["started_at"].endswith("Z"))
        self.assertEqual(action["resource_id"], IP1_U32)
        self.assertEqual(action["resource_type"], "reserved_ip")
        self.assertEqual(action["region"]["slug"], "nyc3")
        self.assertEqual(action["region_slug"], "nyc3")
        self.assertIn("project_id", action)

        ip = self.fake.get("/v2/reserved_ips/" + IP1).json()["reserved_ip"]
        self.assertTrue(ip["locked"])
        self.assertEqual(ip["droplet"]["id"], D1)
        self.assert_error(self.fake.assign(IP1, D3), 422, "unprocessable_entity",
                          "The floating IP already has a pending event.")
        self.assert_error(self.fake.post("/v2/reserved_ips/%s/actions" % IP1,
                                         {"type": "unassign"}), 422, "unprocessable_entity",
                          "The floating IP already has a pending event.")
        state = self.fake.control("state")["reserved_ips"][IP1]
        self.assertEqual(state["pending_action"], action["id"])
        self.assertTrue(state["locked"])

        self.fake.control("clock", {"advance": 4.9})
        polled = self.fake.get("/v2/reserved_ips/%s/actions/%d" % (IP1, action["id"]))
        self.assertEqual(polled.json()["action"]["status"], "in-progress")
        self.assertEqual(self.new_holder_lines(), [])
        before = time.time()
        self.fake.control("clock", {"advance": 0.2})
        after = time.time()
        polled = self.fake.get("/v2/reserved_ips/%s/actions/%d" % (IP1, action["id"]))
        self.assertEqual(polled.json()["action"]["status"], "completed")
        self.assertIsNotNone(polled.json()["action"]["completed_at"])
        ip = self.fake.get("/v2/reserved_ips/" + IP1).json()["reserved_ip"]
        self.assertEqual(ip["droplet"]["id"], D2)
        self.assertFalse(ip["locked"])
        old = self.fake.get("/v2/droplets/%d" % D1).json()["droplet"]
        self.assertNotIn(IP1, [n["ip_address"] for n in old["networks"]["v4"]])

        lines = self.new_holder_lines()
        self.assertEqual(len(lines), 1)
        line = lines[0]
        self.assertEqual((line["ip"], line["from"], line["to"], line["action_id"], line["by"]),
                         (IP1, D1, D2, action["id"], "ci"))
        self.assertTrue(before <= line["t"] <= after + 0.001)
        counters = self.fake.control("state")["counters"]
        self.assertEqual(counters["moves"], 1)
        self.assertEqual(counters["assign_posts"], 2)
        self.assertEqual(counters["by_status"]["201"], 1)
        requests = self.new_request_lines()
        post = [l for l in requests if l["method"] == "POST" and l["status"] == 201][0]
        self.assertEqual((post["token"], post["droplet_id"]), ("ci", D2))
        with open(self.fake.request_log) as f:
            self.assertNotIn(GOOD, f.read())
        with open(self.fake.holder_log) as f:
            self.assertNotIn(GOOD, f.read())

    def test_refusals(self):
        held_msg = "The Droplet already has a floating IP assigned."
        self.assert_error(self.fake.assign(IP1, D1), 422, "unprocessable_entity", held_msg)
        self.assert_error(self.fake.assign(IP1, D5), 422, "unprocessable_entity", held_msg)
        self.assert_error(self.fake.assign(IP1, D3), 422, "unprocessable_entity")
        self.assert_error(self.fake.assign(IP1, D4), 422, "unprocessable_entity")
        self.assert_error(self.fake.assign(IP1, 3999999999), 404, "not_found")
        self.fake.control("options", {"unknown_droplet_status": 422})
        self.assert_error(self.fake.assign(IP1, 3999999999), 422, "unprocessable_entity")
        self.assert_error(self.fake.post("/v2/reserved_ips/%s/actions" % IP3,
                                         {"type": "unassign"}), 422, "unprocessable_entity")
        self.assertFalse(self.fake.control("state")["reserved_ips"][IP1]["locked"])

        self.fake.control("droplet_busy", {"droplet_id": D2, "seconds": 30})
        self.assert_error(self.fake.assign(IP1, D2), 422, "unprocessable_entity",
                          "Droplet already has a pending event.")
        self.assertTrue(self.fake.get("/v2/droplets/%d" % D2).json()["droplet"]["locked"])
        self.fake.control("clock", {"advance": 31})
        self.assertEqual(self.fake.assign(IP1, D2).status, 201)

        self.fake.control("options", {"reassign_noop": True})
        r = self.fake.assign(IP2, D5)
        self.assertEqual(r.status, 201, r.body)
        self.fake.control("clock", {"advance": 6})
        self.assertEqual(self.holder(IP2), D5)
        self.assertEqual(self.holder(IP1), D2)

    def test_reassign_unassign_errored_and_external(self):
        self.fake.control("options", {"action_delay": [1, 2]})
        self.fake.assign(IP1, D2)
        self.fake.control("clock", {"advance": 2.01})
        self.assertEqual(self.holder(IP1), D2)
        self.assertIsNone(self.fake.control("state")["droplets"][str(D1)]["reserved_ip"])

        self.fake.control("options", {"action_result": "errored"})
        action = self.fake.assign(IP1, D1).json()["action"]
        self.fake.control("clock", {"advance": 2.01})
        polled = self.fake.get("/v2/actions/%d" % action["id"]).json()["action"]
        self.assertEqual(polled["status"], "errored")
        state = self.fake.control("state")["reserved_ips"][IP1]
        self.assertEqual((state["droplet_id"], state["locked"]), (D2, False))

        self.fake.control("options", {"action_result": "completed"})
        r = self.fake.post("/v2/reserved_ips/%s/actions" % IP1, {"type": "unassign"})
        self.assertEqual(r.json()["action"]["type"], "unassign_ip")
        self.fake.control("clock", {"advance": 2.01})
        self.assertIsNone(self.fake.get("/v2/reserved_ips/" + IP1).json()["reserved_ip"]["droplet"])

        self.fake.control("set_holder", {"ip": IP1, "droplet_id": D1})
        self.assertEqual(self.holder(IP1), D1)
        lines = self.new_holder_lines()
        self.assertEqual([(l["from"], l["to"], l["by"]) for l in lines],
                         [(D1, D2, "ci"), (D2, None, "ci"), (None, D1, "fake")])
        self.assertIsNone(lines[2]["action_id"])
        counters = self.fake.control("state")["counters"]
        self.assertEqual((counters["moves"], counters["external_moves"]), (2, 1))

    def test_holder_null_while_pending_and_never(self):
        self.fake.control("options", {"holder_null_while_pending": True,
                                      "action_result": "never"})
        self.fake.assign(IP1, D2)
        self.fake.control("clock", {"advance": 100})
        ip = self.fake.get("/v2/reserved_ips/" + IP1).json()["reserved_ip"]
        self.assertIsNone(ip["droplet"])
        self.assertTrue(ip["locked"])
        self.fake.control("options", {"action_result": "completed", "action_delay": 1})
        self.fake.control("clock", {"advance": 1})
        self.assertEqual(self.fake.get("/v2/reserved_ips/" + IP1)
                         .json()["reserved_ip"]["droplet"]["id"], D2)

    def test_action_polling_and_list(self):
        self.fake.control("options", {"action_delay": 1})
        ids = [self.fake.assign(IP3, D2).json()["action"]["id"]]
        self.fake.control("clock", {"advance": 1})
        ids.append(self.fake.post("/v2/reserved_ips/%s/actions" % IP3,
                                  {"type": "unassign"}).json()["action"]["id"])
        self.fake.control("clock", {"advance": 1})
        ids.append(self.fake.assign(IP3, D2).json()["action"]["id"])
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), 3)

        page1 = self.fake.get("/v2/reserved_ips/%s/actions?per_page=2&page=1" % IP3).json()
        self.assertEqual(page1["meta"]["total"], 3)
        self.assertEqual([a["id"] for a in page1["actions"]], [ids[2], ids[1]])
        self.assertEqual(page1["actions"][0]["status"], "in-progress")
        self.assertIn("page=2", page1["links"]["pages"]["next"])
        page2 = self.fake.get("/v2/reserved_ips/%s/actions?per_page=2&page=2" % IP3).json()
        self.assertEqual([a["id"] for a in page2["actions"]], [ids[0]])
        self.assertIn("prev", page2["links"]["pages"])

        generic = self.fake.get("/v2/actions/%d" % ids[0]).json()["action"]
        self.assertEqual(generic["resource_type"], "floating_ip")
        generic = self.fake.get("/v2/actions/%d" % ids[0], headers={
            "Accept": "application/vnd.digitalocean.reserveip+json"}).json()["action"]
        self.assertEqual(generic["resource_type"], "reserved_ip")
        self.assert_error(self.fake.get("/v2/actions/2147483000"), 404, "not_found")
        self.assert_error(self.fake.get("/v2/reserved_ips/%s/actions/%d" % (IP1, ids[0])), 404,
                          "not_found")

        self.fake.control("options", {"byoip_404": True})
        self.assert_error(self.fake.get("/v2/actions/%d" % ids[2]), 404, "not_found")
        self.assert_error(self.fake.get("/v2/reserved_ips/%s/actions/%d" % (IP3, ids[2])), 404,
                          "not_found")
        self.fake.control("clock", {"advance": 1})
        self.assertEqual(self.holder(IP3), D2)

    def test_floating_ip_aliases(self):
        r = self.fake.get("/v2/floating_ips/" + IP1)
        self.assertEqual(r.json()["floating_ip"]["droplet"]["id"], D1)
        listing = self.fake.get("/v2/floating_ips").json()
        self.assertEqual([i["ip"] for i in listing["floating_ips"]], [IP1, IP2, IP3])
        self.assertEqual(listing["meta"]["total"], 3)
        self.assertEqual(len(self.fake.get("/v2/reserved_ips").json()["reserved_ips"]), 3)
        self.assert_error(self.fake.get("/v2/floating_ips/198.18.0.1"), 404, "not_found")
        action = self.fake.assign(IP1, str(D2), alias=True).json()["action"]
        self.assertEqual(action["resource_type"], "floating_ip")
        polled = self.fake.get("/v2/floating_ips/%s/actions/%d" % (IP1, action["id"]))
        self.assertEqual(polled.json()["action"]["resource_type"], "floating_ip")

    def test_droplets(self):
        d = self.fake.get("/v2/droplets/%d" % D2).json()["droplet"]
        self.assertEqual((d["id"], d["name"], d["status"], d["region"]["slug"]),
                         (D2, "n2", "active", "nyc3"))
        self.assert_error(self.fake.get("/v2/droplets/42"), 404, "not_found")
        tagged = self.fake.get("/v2/droplets?tag_name=failoverd").json()
        self.assertEqual([x["id"] for x in tagged["droplets"]], [D1, D2, D3])
        self.assertEqual(tagged["meta"]["total"], 3)
        page = self.fake.get("/v2/droplets?tag_name=failoverd&page=2&per_page=1").json()
        self.assertEqual([x["id"] for x in page["droplets"]], [D2])
        self.assertIn("tag_name=failoverd", page["links"]["pages"]["next"])
        self.assertEqual(self.fake.get("/v2/droplets?tag_name=none").json()["droplets"], [])

    def test_hourly_rate_limit(self):
        self.fake.control("options", {"hourly_limit": 3})
        now = self.fake.control("state")["now"]
        remaining = [self.fake.get("/v2/account").headers["ratelimit-remaining"]
                     for _ in range(3)]
        self.assertEqual(remaining, ["2", "1", "0"])
        r = self.fake.get("/v2/account")
        self.assert_error(r, 429, "too_many_requests")
        self.assertEqual(r.headers["ratelimit-limit"], "3")
        self.assertEqual(r.headers["ratelimit-remaining"], "0")
        self.assertNotIn("retry-after", r.headers)
        self.assertEqual(int(r.headers["ratelimit-reset"]), math.ceil(now + 3600))
        self.assertEqual(self.fake.get("/v2/account", token=OTHER).status, 200)
        self.fake.control("clock", {"advance": 3601})
        r = self.fake.get("/v2/account")
        self.assertEqual((r.status, r.headers["ratelimit-remaining"]), (200, "2"))

    def test_burst_rate_limit(self):
        self.fake.control("options", {"burst_limit": 2, "hourly_limit": 100})
        self.assertEqual(self.fake.get("/v2/account").status, 200)
        self.fake.control("clock", {"advance": 10})
        self.assertEqual(self.fake.get("/v2/account").status, 200)
        r = self.fake.get("/v2/reserved_ips/" + IP1)
        self.assert_error(r, 429, "too_many_requests")
        self.assertEqual(r.headers["retry-after"], "50")
        self.assertEqual(r.headers["ratelimit-remaining"], "0")
        self.fake.control("clock", {"advance": 51})
        r = self.fake.get("/v2/account")
        self.assertEqual((r.status, r.headers["ratelimit-remaining"]), (200, "97"))

    def test_status_faults(self):
        self.fake.control("faults", {"route": "read_ip", "kind": "500"})
        self.assert_error(self.fake.get("/v2/reserved_ips/" + IP1), 500, "server_error")
        self.assertEqual(self.fake.get("/v2/reserved_ips/" + IP1).status, 200)
        for kind in ("502", "503", "504"):
            self.fake.control("faults", {"route": "any", "kind": kind})
            r = self.fake.get("/v2/account")
            self.assertEqual(r.status, int(kind))
            self.assertTrue(r.headers["content-type"].startswith("text/html"))
            self.assertIn(b"<html>", r.body)
            self.assert_common_headers(r)
        self.fake.control("faults", {"route": "assign", "kind": "429", "count": 2,
                                     "retry_after": 7})
        self.assertEqual(self.fake.get("/v2/reserved_ips/" + IP1).status, 200)
        for _ in range(2):
            r = self.fake.assign(IP1, D2)
            self.assert_error(r, 429, "too_many_requests")
            self.assertEqual((r.headers["retry-after"], r.headers["ratelimit-remaining"]),
                             ("7", "0"))
        self.assertFalse(self.fake.control("state")["reserved_ips"][IP1]["locked"])
        self.fake.control("faults", {"route": "droplets", "kind": "503", "count": -1})
        for _ in range(3):
            self.assertEqual(self.fake.get("/v2/droplets/%d" % D1).status, 503)
        self.fake.control("clear", {})
        self.assertEqual(self.fake.get("/v2/droplets/%d" % D1).status, 200)
        self.assertEqual(self.fake.assign(IP1, D2).status, 201)

    def expect_closed(self, method, path, body=None, timeout=10.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=timeout)
        try:
            headers = {"Authorization": "Bearer " + GOOD, "Content-Type": "application/json"}
            conn.request(method, path, body=json.dumps(body) if body else None,
                         headers=headers)
            with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
                conn.getresponse()
        finally:
            conn.close()

    def test_drop_and_commit_then_drop(self):
        path = "/v2/reserved_ips/%s/actions" % IP1
        body = {"type": "assign", "droplet_id": D2}
        self.fake.control("faults", {"route": "assign", "kind": "drop"})
        self.expect_closed("POST", path, body)
        state = self.fake.control("state")["reserved_ips"][IP1]
        self.assertEqual((state["locked"], state["pending_action"]), (False, None))

        self.fake.control("faults", {"route": "assign", "kind": "commit_then_drop"})
        self.expect_closed("POST", path, body)
        state = self.fake.control("state")["reserved_ips"][IP1]
        self.assertTrue(state["locked"])
        listed = self.fake.get("/v2/reserved_ips/%s/actions" % IP1).json()["actions"]
        self.assertEqual([a["id"] for a in listed], [state["pending_action"]])
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(self.holder(IP1), D2)
        faults = [l.get("fault") for l in self.new_request_lines()]
        self.assertEqual(faults[:2], ["drop", "commit_then_drop"])

        self.fake.control("faults", {"route": "read_ip", "kind": "drop"})
        self.expect_closed("GET", "/v2/reserved_ips/" + IP1)

    def test_hang_does_not_block_others(self):
        self.fake.control("faults", {"route": "read_ip", "kind": "hang", "hang_seconds": 1.0})
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=0.4)
        try:
            conn.request("GET", "/v2/reserved_ips/" + IP1,
                         headers={"Authorization": "Bearer " + GOOD})
            with self.assertRaises((socket.timeout, TimeoutError)):
                conn.getresponse()
        finally:
            conn.close()
        self.assertGreaterEqual(time.monotonic() - started, 0.35)
        # A second request on another connection is served while the first one still hangs.
        hung = {}

        def hang():
            try:
                hung["response"] = self.fake.get("/v2/reserved_ips/" + IP1, timeout=10)
            except (http.client.RemoteDisconnected, ConnectionError) as e:
                hung["error"] = e
            hung["ended"] = time.monotonic()

        self.fake.control("faults", {"route": "read_ip", "kind": "hang", "hang_seconds": 2.0})
        thread = threading.Thread(target=hang)
        thread.start()
        wait_for(lambda: self.fake.control("state")["faults"] == [], "the hang to start")
        self.assertEqual(self.fake.get("/v2/account").status, 200)
        answered = time.monotonic()
        thread.join(DEADLINE)
        self.assertIn("error", hung)
        self.assertLess(answered, hung["ended"])

    def test_truncate(self):
        self.fake.control("faults", {"route": "read_ip", "kind": "truncate"})
        r = self.fake.get("/v2/reserved_ips/" + IP1)
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.headers["content-length"]), len(r.body))
        with self.assertRaises(ValueError):
            r.json()
        self.fake.control("faults", {"route": "assign", "kind": "truncate"})
        r = self.fake.assign(IP1, D2)
        self.assertEqual(r.status, 201)
        with self.assertRaises(ValueError):
            r.json()
        self.assertTrue(self.fake.control("state")["reserved_ips"][IP1]["locked"])

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=10)
        try:
            for _ in range(3):
                conn.request("GET", "/v2/reserved_ips/" + IP1,
                             headers={"Authorization": "Bearer " + GOOD})
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 200)
                self.assertFalse(resp.will_close)
        finally:
            conn.close()

    def test_metadata(self):
        prefix = "/droplet/%d/metadata/v1" % D2
        self.assertEqual(self.fake.metadata(prefix + "/id").body, str(D2).encode())
        self.assertEqual(self.fake.metadata(prefix + "/hostname").body, b"n2")
        self.assertEqual(self.fake.metadata(prefix + "/region").body, b"nyc3")
        self.assertEqual(self.fake.metadata(prefix + "/tags").body, b"failoverd")
        self.assertEqual(self.fake.metadata(prefix + "/reserved_ip/ipv4/active").body, b"false")
        self.assertEqual(self.fake.metadata(prefix + "/interfaces/private/0/ipv4/address").body,
                         b"10.77.0.2")
        anchor = prefix + "/interfaces/public/0/anchor_ipv4/"
        self.assertEqual(self.fake.metadata(anchor + "address").body, b"10.17.0.6")
        self.assertEqual(self.fake.metadata(anchor + "netmask").body, b"255.255.0.0")
        self.assertEqual(self.fake.metadata(anchor + "gateway").body, b"10.17.0.1")
        self.assertEqual(self.fake.metadata("/droplet/%d/metadata/v1/interfaces/public/0/"
                                            "anchor_ipv4/address" % D3).status, 404)
        # Without a prefix, the droplet is chosen by the source address (127.0.0.1 is n1).
        r = self.fake.metadata("/metadata/v1/id")
        self.assertEqual((r.status, r.body), (200, str(D1).encode()))
        self.assertEqual(r.headers["content-type"], "text/plain; charset=utf-8")
        self.assertEqual(self.fake.metadata("/metadata/v1/reserved_ip/ipv4/active").body, b"true")
        self.assertEqual(self.fake.metadata("/metadata/v1/floating_ip/ipv4/ip_address").body,
                         IP1.encode())
        r = self.fake.metadata(prefix + "/interfaces")
        self.assertEqual((r.status, r.headers["location"]), (301, prefix + "/interfaces/"))
        index = self.fake.metadata(prefix + "/interfaces/").body.decode().split("\n")
        self.assertEqual(sorted(index), ["private/", "public/"])
        self.assertEqual(self.fake.metadata(prefix + "/nonexistent").status, 404)
        self.assertEqual(self.fake.metadata("/droplet/42/metadata/v1/id").status, 404)
        doc = self.fake.metadata(prefix + ".json").json()
        self.assertIsInstance(doc, dict)
        self.assertEqual(doc["droplet_id"], D2)
        self.assertEqual(doc["reserved_ip"]["ipv4"], {"active": False})
        self.assertEqual(doc["interfaces"]["public"][0]["anchor_ipv4"]["ip_address"],
                         "10.17.0.6")

    def test_metadata_lag_and_stale(self):
        self.fake.control("options", {"metadata_lag": 3, "action_delay": 1})
        self.fake.assign(IP1, D2)
        self.fake.control("clock", {"advance": 1})
        self.assertEqual(self.holder(IP1), D2)
        active = "/droplet/%d/metadata/v1/reserved_ip/ipv4/active"
        self.assertEqual(self.fake.metadata(active % D2).body, b"false")
        self.assertEqual(self.fake.metadata(active % D1).body, b"true")
        self.fake.control("clock", {"advance": 3})
        self.assertEqual(self.fake.metadata(active % D2).body, b"true")
        self.assertEqual(self.fake.metadata(active % D1).body, b"false")
        self.fake.control("options", {"metadata_stale": True})
        for did in (D1, D2, D3):
            self.assertEqual(self.fake.metadata(active % did).body, b"true")

    def test_metadata_modes(self):
        path = "/droplet/%d/metadata/v1/id" % D1
        self.fake.control("options", {"metadata_mode": "500"})
        self.assertEqual(self.fake.metadata(path).status, 500)
        self.fake.control("options", {"metadata_mode": "refuse"})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.fake.metadata(path)
        self.fake.control("options", {"metadata_mode": "hang", "metadata_hang_seconds": 1})
        with self.assertRaises((socket.timeout, TimeoutError)):
            self.fake.metadata(path, timeout=0.3)
        self.fake.control("options", {"metadata_mode": "ok"})
        self.assertEqual(self.fake.metadata(path).status, 200)

    def test_control_errors(self):
        self.assertEqual(self.fake.post("/_fake/options", {"no_such": 1}, token=None).status, 400)
        self.assertEqual(self.fake.post("/_fake/options", {"action_delay": [5, 1]},
                                        token=None).status, 400)
        self.assertEqual(self.fake.post("/_fake/faults", {"kind": "explode"},
                                        token=None).status, 400)
        self.assertEqual(self.fake.control("state")["counters"]["requests"], 0)


class WallClockTest(unittest.TestCase):
    def test_actions_complete_on_time_and_sigterm(self):
        setup = dict(SETUP, options={"action_delay": 0.3})
        fake = Fake(setup, ["--verbose"])
        try:
            posted = time.time()
            action = fake.assign(IP1, D2).json()["action"]
            wait_for(lambda: fake.get("/v2/reserved_ips/%s/actions/%d" % (IP1, action["id"]))
                     .json()["action"]["status"] == "completed", "the action to complete")
            self.assertEqual(fake.control("state")["reserved_ips"][IP1]["droplet_id"], D2)
            line = read_lines(fake.holder_log, 0)[0]
            self.assertGreaterEqual(line["t"], posted + 0.3)
            self.assertLess(line["t"], posted + 5.0)
            fake.proc.terminate()
            self.assertEqual(fake.proc.wait(timeout=DEADLINE), 0)
            fake.stderr.seek(0)
            log = fake.stderr.read()
            self.assertIn("POST /v2/reserved_ips/%s/actions 201" % IP1, log)
            self.assertNotIn(GOOD, log)
        finally:
            fake.stop()

    def test_bad_setup_exits(self):
        with self.assertRaises(AssertionError):
            Fake(dict(SETUP, options={"no_such_option": 1}))


class AppServer:
    """A droplet's app on ADDR:PORT: answers GET with "node=NAME container=CONTAINER"; a
    connection that starts with ECHO gets back everything it sent once it half-closes."""

    def __init__(self, address, port, name, container="web-1"):
        self.body = ("node=%s container=%s" % (name, container)).encode()
        self.sock = socket.create_server((address, port), backlog=256)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn:
            data = b""
            while not data.startswith(b"ECHO") and b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            if data.startswith(b"ECHO"):
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(data)
                return
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.body)
                         + self.body)

    def stop(self):
        # Closing the listener is enough: new connections are refused, accepted ones finish.
        # shutdown() first: close() alone does not wake a thread blocked in accept().
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(DEADLINE)


def free_port(addresses):
    """A port free on every address (the edge and the apps use the same port number)."""
    for _ in range(50):
        with socket.create_server((addresses[0], 0)) as probe:
            port = probe.getsockname()[1]
            others = []
            try:
                for address in addresses[1:]:
                    others.append(socket.create_server((address, port)))
                return port
            except OSError:
                continue
            finally:
                for sock in others:
                    sock.close()
    raise AssertionError("no port free on %s" % addresses)


def edge_get(port, address="127.0.0.1"):
    """GET / through the edge: the body, or "reset"/"closed"."""
    # The edge accepts, then resets when it has nowhere to forward: the reset can arrive
    # before connect() returns.
    try:
        with socket.create_connection((address, port), timeout=DEADLINE) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except ConnectionResetError:
        return "reset"
    if not data:
        return "closed"
    return data.partition(b"\r\n\r\n")[2].decode()


EDGE_SETUP = {
    "tokens": {GOOD: {"name": "ci", "scopes": ["*"]}},
    "droplets": [
        {"id": D1, "name": "n1", "region": "nyc3", "private_ip": "127.0.0.2"},
        {"id": D2, "name": "n2", "region": "nyc3", "private_ip": "127.0.0.3"},
        {"id": D3, "name": "n3", "region": "nyc3", "private_ip": "127.0.0.4"},
    ],
    "reserved_ips": [{"ip": IP1, "region": "nyc3", "droplet_id": D1},
                     {"ip": IP3, "region": "nyc3", "droplet_id": None}],
    "options": {"action_delay": 5},
}


class EdgeTest(unittest.TestCase):
    """The reserved-IP edge on 127.0.0.1, droplets n1/n2 as apps on 127.0.0.2/127.0.0.3 (n3 on
    127.0.0.4 has no app); manual clock, so actions complete only when the test says."""

    @classmethod
    def setUpClass(cls):
        addresses = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        cls.ports = [free_port(addresses), free_port(addresses)]
        cls.apps = [AppServer(address, port, name) for port in cls.ports
                    for address, name in (("127.0.0.2", "n1"), ("127.0.0.3", "n2"))]
        cls.fake = Fake(EDGE_SETUP, [
            "--manual-clock", "--edge-listen", "127.0.0.1",
            "--edge-ports", ",".join(str(p) for p in cls.ports), "--edge-ip", IP1,
            "--edge-log", "{dir}/edge.jsonl"])
        cls.edge_log = os.path.join(cls.fake.dir, "edge.jsonl")

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()
        for app in cls.apps:
            app.stop()

    def setUp(self):
        self.fake.control("reset", {})
        self.started = time.time()

    def edge(self):
        return self.fake.control("state")["edge"]

    def test_ready_file_and_ports(self):
        self.assertEqual(self.fake.info["edge"],
                         {"address": "127.0.0.1", "ports": self.ports, "ip": IP1})
        self.assertFalse(self.fake.info["tls"])
        sys.path.insert(0, HERE)
        import fake_do_api
        self.assertEqual(fake_do_api.parse_ports("8081-8083,9000,8082"), [8081, 8082, 8083, 9000])
        for bad in ("", "0", "9-8", "x", "70000"):
            with self.assertRaises(ValueError):
                fake_do_api.parse_ports(bad)
        r = self.fake.post("/_fake/options", {"edge_during_action": "sometimes"}, token=None)
        self.assertEqual(r.status, 400)

    def test_follows_the_holder_when_the_action_completes(self):
        p1, p2 = self.ports
        self.assertEqual(edge_get(p1), "node=n1 container=web-1")
        self.assertEqual(edge_get(p2), "node=n1 container=web-1")
        self.assertEqual(self.fake.assign(IP1, D2).status, 201)
        # Mid-action the old holder keeps the traffic (the default, "old").
        self.assertEqual(edge_get(p1), "node=n1 container=web-1")
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(edge_get(p2), "node=n2 container=web-1")
        edge = self.edge()
        self.assertEqual(edge["by_droplet"], {str(D1): 3, str(D2): 1})
        self.assertEqual(edge["by_port"], {str(p1): 2, str(p2): 2})
        self.assertEqual((edge["connections"], edge["refused"], edge["backend_failed"]),
                         (4, 0, 0))
        self.assertEqual(edge["during_action"], "old")
        lines = [l for l in read_lines(self.edge_log, 0) if l["t"] >= self.started]
        self.assertEqual([(l["port"], l["droplet"], l["backend"], l["result"]) for l in lines],
                         [(p1, D1, "127.0.0.2", "ok"), (p2, D1, "127.0.0.2", "ok"),
                          (p1, D1, "127.0.0.2", "ok"), (p2, D2, "127.0.0.3", "ok")])

    def test_during_action_new_and_drop(self):
        p1 = self.ports[0]
        self.fake.control("options", {"edge_during_action": "new"})
        self.fake.assign(IP1, D2)
        self.assertEqual(edge_get(p1), "node=n2 container=web-1")
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(edge_get(p1), "node=n2 container=web-1")
        self.fake.post("/v2/reserved_ips/%s/actions" % IP1, {"type": "unassign"})
        self.assertEqual(edge_get(p1), "reset")
        self.fake.control("clock", {"advance": 5})
        self.fake.control("set_holder", {"ip": IP1, "droplet_id": D1})
        self.fake.control("options", {"edge_during_action": "drop"})
        self.fake.assign(IP1, D2)
        self.assertEqual(edge_get(p1), "reset")
        self.fake.control("clock", {"advance": 5})
        self.assertEqual(edge_get(p1), "node=n2 container=web-1")
        edge = self.edge()
        self.assertEqual((edge["refused"], edge["refused_in_action"], edge["refused_no_holder"]),
                         (2, 1, 1))
        self.assertEqual(edge["by_droplet"], {str(D2): 3})

    def test_no_holder_and_dead_backend_reset_the_client(self):
        p1 = self.ports[0]
        self.fake.control("set_holder", {"ip": IP1, "droplet_id": None})
        self.assertEqual(edge_get(p1), "reset")
        self.fake.control("set_holder", {"ip": IP1, "droplet_id": D3})
        self.assertEqual(edge_get(p1), "reset")
        edge = self.edge()
        self.assertEqual((edge["refused"], edge["refused_no_holder"], edge["backend_failed"]),
                         (1, 1, 1))
        self.assertEqual(edge["backend_failed_by_droplet"], {str(D3): 1})
        results = [(l["result"], l.get("reason"), l.get("error"))
                   for l in read_lines(self.edge_log, 0) if l["t"] >= self.started]
        self.assertEqual(results, [("refused", "no_holder", None),
                                   ("backend_failed", None, "ECONNREFUSED")])

    def test_half_close_large_and_concurrent(self):
        p2 = self.ports[1]
        big = os.urandom(1 << 20)
        with socket.create_connection(("127.0.0.1", p2), timeout=DEADLINE) as sock:
            writer = threading.Thread(target=lambda: (sock.sendall(b"ECHO" + big),
                                                      sock.shutdown(socket.SHUT_WR)))
            writer.start()
            received = bytearray()
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                received += chunk
            writer.join(DEADLINE)
        self.assertEqual(bytes(received), b"ECHO" + big)

        socks = []
        try:
            for i in range(120):
                sock = socket.create_connection(("127.0.0.1", p2), timeout=DEADLINE)
                socks.append(sock)
                sock.sendall(b"ECHO %d" % i)
            # All 120 stay open at once, and the API still answers meanwhile.
            wait_for(lambda: self.edge()["active"] == 120, "120 spliced connections")
            self.assertEqual(self.fake.get("/v2/reserved_ips/" + IP1).status, 200)
            for i, sock in enumerate(socks):
                sock.shutdown(socket.SHUT_WR)
                data = b""
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.assertEqual(data, b"ECHO %d" % i)
        finally:
            for sock in socks:
                sock.close()
        wait_for(lambda: self.edge()["active"] == 0, "the spliced connections to end")
        self.assertEqual(self.edge()["by_droplet"], {str(D1): 121})


class TlsTest(unittest.TestCase):
    def test_https_with_the_test_ca(self):
        import ssl
        import urllib.error
        import urllib.request
        ca_dir = tempfile.mkdtemp(prefix="fake_do_api_ca.")
        try:
            subprocess.run(["bash", os.path.join(HERE, "make_test_ca.sh"), ca_dir], check=True)
            fake = Fake(SETUP, ["--tls-cert", os.path.join(ca_dir, "server.pem"),
                                "--tls-key", os.path.join(ca_dir, "server.key")])
            try:
                self.assertTrue(fake.info["tls"])
                context = ssl.create_default_context(cafile=os.path.join(ca_dir, "ca.pem"))
                for host in ("127.0.0.1", "localhost"):
                    request = urllib.request.Request(
                        "https://%s:%d/v2/droplets?per_page=1" % (host, fake.port),
                        headers={"Authorization": "Bearer " + GOOD})
                    with urllib.request.urlopen(request, context=context, timeout=DEADLINE) as r:
                        body = json.loads(r.read())
                    self.assertEqual(len(body["droplets"]), 1)
                    self.assertTrue(body["links"]["pages"]["next"].startswith("https://"))
                with self.assertRaises(urllib.error.URLError) as caught:
                    urllib.request.urlopen("https://127.0.0.1:%d/v2/account" % fake.port,
                                           context=ssl.create_default_context(),
                                           timeout=DEADLINE)
                self.assertIsInstance(caught.exception.reason, ssl.SSLCertVerificationError)
                # Still served after a refused handshake; metadata stays plain HTTP.
                with urllib.request.urlopen("https://127.0.0.1:%d/_fake/state" % fake.port,
                                            context=context, timeout=DEADLINE) as r:
                    self.assertEqual(r.status, 200)
                self.assertEqual(fake.metadata("/droplet/%d/metadata/v1/id" % D2).body,
                                 str(D2).encode())
            finally:
                fake.stop()
        finally:
            shutil.rmtree(ca_dir, ignore_errors=True)


TRAFFIC = os.path.join(os.path.dirname(HERE), "traffic")


def load_summarize():
    if TRAFFIC not in sys.path:
        sys.path.insert(0, TRAFFIC)
    import summarize
    return summarize


def record(seq, sent, ok, node=None, error=None):
    return {"seq": seq, "sent": sent, "port": 8081, "ok": ok, "status": 200 if ok else None,
            "error": None if ok else error, "node": node,
            "container": "web-1" if ok else None, "latency_ms": 1.0}


class TrafficTest(unittest.TestCase):
    def test_summarize_runs(self):
        s = load_summarize()
        records = [record(0, 100.0, True, "n1"), record(1, 100.1, False, error="reset"),
                   record(2, 100.2, False, error="timeout"), record(3, 100.3, True, "n2"),
                   record(4, 100.4, False, error="reset"), record(5, 100.5, True, "n2"),
                   record(6, 100.6, False, error="refused"),
                   record(7, 100.7, False, error="refused"),
                   record(8, 100.8, False, error="refused")]
        out = s.summarize(list(reversed(records)), rate=10.0, after=100.25)
        self.assertEqual((out["sent"], out["ok"], out["failed"]), (9, 3, 6))
        self.assertAlmostEqual(out["failed_pct"], 66.667, places=3)
        # The last run has no success after it: it ends one interval after its last request.
        self.assertEqual([(r["start"], round(r["seconds"], 6), r["count"])
                          for r in out["failure_runs"]],
                         [(100.1, 0.2, 2), (100.4, 0.1, 1), (100.6, 0.3, 3)])
        self.assertAlmostEqual(out["longest_failure_s"], 0.3)
        self.assertEqual(out["longest_failure_count"], 3)
        self.assertEqual(out["failures_by_error"], {"reset": 2, "timeout": 1, "refused": 3})
        self.assertEqual(out["by_node"], {"n1": 1, "n2": 2})
        self.assertEqual(out["nodes"], {"n1": {"first": 100.0, "last": 100.0},
                                        "n2": {"first": 100.3, "last": 100.5}})
        self.assertEqual((out["after"]["sent"], out["after"]["by_node"]), (6, {"n2": 2}))
        self.assertEqual(out["last_node"], "n2")
        window = s.summarize(records, t_from=100.3, t_to=100.6)
        self.assertEqual((window["sent"], window["failed"]), (3, 1))
        self.assertIn("longest failure run: 0.300 s (3 requests)", s.format_text(out))

    def test_client_through_an_outage(self):
        summarize = load_summarize()
        port = free_port(["127.0.0.2"])
        workdir = tempfile.mkdtemp(prefix="traffic_test.")
        out = os.path.join(workdir, "requests.jsonl")
        live = os.path.join(workdir, "live.json")
        app = AppServer("127.0.0.2", port, "n1", "web-1")
        client = subprocess.Popen(
            [sys.executable, os.path.join(TRAFFIC, "client.py"), "--target", "127.0.0.2",
             "--port", str(port), "--rate", "50", "--timeout", "2", "--out", out,
             "--live", live], stderr=subprocess.PIPE)
        try:
            def lines(keep):
                try:
                    return [r for r in summarize.load(out) if keep(r)]
                except OSError:
                    return []

            wait_for(lambda: len(lines(lambda r: r["node"] == "n1")) >= 10, "n1 answering")
            app.stop()
            stopped = time.time()
            wait_for(lambda: len(lines(lambda r: not r["ok"])) >= 10, "failures")
            restarted = time.time()
            app = AppServer("127.0.0.2", port, "n2", "web-2")
            wait_for(lambda: len(lines(lambda r: r["node"] == "n2")) >= 10, "n2 answering")
            wait_for(lambda: os.path.exists(live), "the live view")
            client.send_signal(signal.SIGTERM)
            self.assertEqual(client.wait(timeout=DEADLINE), 0)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
            client.stderr.close()
            app.stop()
        try:
            records = summarize.load(out)
            self.assertEqual(sorted(r["seq"] for r in records), list(range(len(records))))
            out_summary = summarize.summarize(records, after=restarted)
            self.assertGreaterEqual(out_summary["failed"], 10)
            self.assertIn("refused", out_summary["failures_by_error"])
            self.assertEqual(set(out_summary["by_node"]), {"n1", "n2"})
            self.assertEqual(set(out_summary["by_container"]), {"web-1", "web-2"})
            self.assertLess(out_summary["nodes"]["n1"]["last"], stopped)
            self.assertGreaterEqual(out_summary["nodes"]["n2"]["first"], restarted)
            self.assertEqual(set(out_summary["after"]["by_node"]), {"n2"})
            self.assertEqual(out_summary["last_node"], "n2")
            # The outage run: from the first refused request to the first one n2 answered.
            first_refused = min(r["sent"] for r in records if r["error"] == "refused")
            first_n2 = min(r["sent"] for r in records if r["node"] == "n2")
            outage = [r for r in out_summary["failure_runs"] if r["start"] == first_refused]
            self.assertEqual(len(outage), 1)
            self.assertAlmostEqual(outage[0]["seconds"], first_n2 - first_refused, places=5)
            self.assertGreaterEqual(out_summary["longest_failure_s"], outage[0]["seconds"])
            # Every request sent while nothing listened failed.
            self.assertGreaterEqual(outage[0]["seconds"], restarted - stopped - 0.1)
            # The last live view is written at exit and matches the log.
            with open(live) as f:
                live_view = json.load(f)
            self.assertEqual((live_view["sent"], live_view["in_flight"]), (len(records), 0))
            self.assertEqual(live_view["failed"], out_summary["failed"])
            self.assertEqual(live_view["last_node"], "n2")
            for key in ("ok", "rate_last_s", "failed_last_s", "last_node", "last_container",
                        "nodes_last_s", "in_flight"):
                self.assertIn(key, live_view)
            text = subprocess.run([sys.executable, os.path.join(TRAFFIC, "summarize.py"), out,
                                   "--json"], check=True, capture_output=True).stdout
            self.assertEqual(json.loads(text)["sent"], len(records))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    started = time.monotonic()
    result = unittest.main(exit=False, verbosity=1).result
    print("self-test took %.1f s" % (time.monotonic() - started), file=sys.stderr)
    sys.exit(0 if result.wasSuccessful() else 1)
