// HttpProbe over CurlMulti against tests/fakes/http_test_server.py.
#include "health/http_probe.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "http_test_server.hpp"

using namespace std::chrono_literals;
using failoverd::CurlMulti;
using failoverd::EventLoop;
using failoverd::health::HttpProbe;
using failoverd::health::HttpProbeParams;
using failoverd::health::Probe;
using failoverd::health::ProbeResult;
using failoverd::health::Verdict;
using failoverd::testing::HttpTestServer;
using failoverd::testing::kDeadline;
using failoverd::testing::LoopbackSocket;

namespace {

ProbeResult run_probe(EventLoop& loop, Probe& probe) {
    std::optional<ProbeResult> result;
    probe.start([&](ProbeResult r) { result = std::move(r); });
    CHECK_FALSE(result.has_value());
    REQUIRE(loop.run_until([&] { return result.has_value(); }, kDeadline));
    return *result;
}

HttpProbeParams params(const std::string& url) {
    HttpProbeParams p;
    p.url = url;
    p.timeout = 10s;
    return p;
}

}  // namespace

TEST_CASE("HttpProbe: expected status passes, and a probe can run again") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpProbe probe(curl, params(server.url("/status/200")));
    const ProbeResult first = run_probe(loop, probe);
    CHECK(first.verdict == Verdict::Pass);
    CHECK(first.reason == "HTTP 200");
    CHECK(run_probe(loop, probe).verdict == Verdict::Pass);
}

TEST_CASE("HttpProbe: an unexpected status fails with both numbers in the reason") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpProbe probe(curl, params(server.url("/status/503")));
    const ProbeResult r = run_probe(loop, probe);
    CHECK(r.verdict == Verdict::Fail);
    CHECK(r.reason == "HTTP 503 (expected 200)");

    HttpProbeParams several = params(server.url("/status/503"));
    several.expected_status = {200, 204};
    HttpProbe other(curl, several);
    CHECK(run_probe(loop, other).reason == "HTTP 503 (expected 200, 204)");

    HttpProbeParams accepts = params(server.url("/status/503"));
    accepts.expected_status = {503};
    HttpProbe maintenance(curl, accepts);
    CHECK(run_probe(loop, maintenance).verdict == Verdict::Pass);
}

TEST_CASE("HttpProbe: body substring") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpProbeParams has = params(server.url("/body/status:ok"));
    has.body_contains = "ok";
    HttpProbe good(curl, has);
    CHECK(run_probe(loop, good).verdict == Verdict::Pass);

    HttpProbeParams lacks = params(server.url("/body/status:degraded"));
    lacks.body_contains = "ok";
    HttpProbe bad(curl, lacks);
    const ProbeResult r = run_probe(loop, bad);
    CHECK(r.verdict == Verdict::Fail);
    CHECK(r.reason == "body lacks 'ok'");
}

TEST_CASE("HttpProbe: connection refused") {
    EventLoop loop;
    CurlMulti curl(loop);
    LoopbackSocket closed(LoopbackSocket::Kind::BoundOnly);
    HttpProbe probe(curl, params("http://127.0.0.1:" + std::to_string(closed.port()) + "/"));
    const ProbeResult r = run_probe(loop, probe);
    CHECK(r.verdict == Verdict::Fail);
    CHECK(r.reason == "connect failed: Connection refused");
}

TEST_CASE("HttpProbe: a slow server times out") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpProbeParams slow = params(server.url("/slow/20000"));
    slow.timeout = 300ms;
    HttpProbe probe(curl, slow);
    const ProbeResult r = run_probe(loop, probe);
    CHECK(r.verdict == Verdict::TimedOut);
    CHECK(r.reason == "timed out after 300 ms");
}

TEST_CASE("HttpProbe: cancel stops the request and no result follows") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpProbe probe(curl, params(server.url("/slow/20000")));
    bool called = false;
    probe.start([&](ProbeResult) { called = true; });
    CHECK(curl.active() == 1);
    probe.cancel();
    CHECK(curl.active() == 0);
    probe.cancel();
    HttpProbe after(curl, params(server.url("/status/200")));
    CHECK(run_probe(loop, after).verdict == Verdict::Pass);
    CHECK_FALSE(called);
}

TEST_CASE("HttpProbe: verdict from a transfer, without I/O") {
    HttpProbeParams p = params("http://x/");
    failoverd::HttpResponse r;
    r.error = "Could not resolve host: x";
    r.curl_code = CURLE_COULDNT_RESOLVE_HOST;
    CHECK(http_verdict(p, r).verdict == Verdict::Fail);
    CHECK(http_verdict(p, r).reason == "Could not resolve host: x");
    r.curl_code = CURLE_URL_MALFORMAT;
    r.error = "URL using bad/illegal format or missing URL";
    CHECK(http_verdict(p, r).verdict == Verdict::Error);
}
