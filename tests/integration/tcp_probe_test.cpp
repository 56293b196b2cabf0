// TcpProbe: real connects on loopback.
#include "health/tcp_probe.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <string>
#include <vector>

#include "http_test_server.hpp"

using namespace std::chrono_literals;
using failoverd::CurlMulti;
using failoverd::EventLoop;
using failoverd::health::Probe;
using failoverd::health::ProbeResult;
using failoverd::health::TcpProbe;
using failoverd::health::TcpProbeParams;
using failoverd::health::Verdict;
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

TcpProbeParams params(const std::string& host, std::uint16_t port) {
    TcpProbeParams p;
    p.host = host;
    p.port = port;
    p.timeout = 10s;
    return p;
}

}  // namespace

TEST_CASE("TcpProbe: a listening port passes, every time with a fresh connection") {
    EventLoop loop;
    CurlMulti curl(loop);
    LoopbackSocket listening(LoopbackSocket::Kind::Listening);
    TcpProbe probe(curl, params("127.0.0.1", listening.port()));
    const ProbeResult r = run_probe(loop, probe);
    CHECK(r.verdict == Verdict::Pass);
    CHECK(r.reason == "connected to 127.0.0.1:" + std::to_string(listening.port()));
    CHECK(run_probe(loop, probe).verdict == Verdict::Pass);
    // Two probes, two connections waiting in the backlog: nothing was reused.
    int accepted = 0;
    REQUIRE(::fcntl(listening.fd(), F_SETFL, O_NONBLOCK) == 0);
    while (::accept4(listening.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC) >= 0) {
        ++accepted;
    }
    CHECK(accepted == 2);
}

TEST_CASE("TcpProbe: a closed port is refused") {
    EventLoop loop;
    CurlMulti curl(loop);
    LoopbackSocket closed(LoopbackSocket::Kind::BoundOnly);
    TcpProbe probe(curl, params("127.0.0.1", closed.port()));
    const ProbeResult r = run_probe(loop, probe);
    CHECK(r.verdict == Verdict::Fail);
    CHECK(r.reason == "connect to 127.0.0.1:" + std::to_string(closed.port()) + " refused");
}

TEST_CASE("TcpProbe: a name is resolved without blocking, IPv6 literals get brackets") {
    EventLoop loop;
    CurlMulti curl(loop);
    LoopbackSocket listening(LoopbackSocket::Kind::Listening);
    TcpProbe by_name(curl, params("localhost", listening.port()));
    CHECK(run_probe(loop, by_name).verdict == Verdict::Pass);
    CHECK(params("::1", 8080).target() == "[::1]:8080");
}

TEST_CASE("TcpProbe: a full accept queue makes the connect time out") {
    EventLoop loop;
    CurlMulti curl(loop);
    // backlog 0 holds one pending connection; the kernel then drops further SYNs.
    LoopbackSocket listening(LoopbackSocket::Kind::Listening, 0);
    TcpProbeParams p = params("127.0.0.1", listening.port());
    std::vector<std::unique_ptr<TcpProbe>> fillers;
    bool timed_out = false;
    std::string reason;
    // Fill the queue, then one more must time out.
    for (int i = 0; i < 3 && !timed_out; ++i) {
        p.timeout = 500ms;
        auto probe = std::make_unique<TcpProbe>(curl, p);
        const ProbeResult r = run_probe(loop, *probe);
        timed_out = r.verdict == Verdict::TimedOut;
        reason = r.reason;
        fillers.push_back(std::move(probe));
    }
    CHECK(timed_out);
    CHECK(reason ==
          "connect to 127.0.0.1:" + std::to_string(listening.port()) + " timed out after 500 ms");
}
