// DockerProbe against tests/fakes/fake_docker_engine.py on a real unix socket in a temp dir,
// driven by ProbeRunner in one EventLoop, as the daemon and `failoverctl check` use it.
#include "health/docker_probe.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/core/rng.hpp"
#include "daemon/shell/child_process.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"
#include "health/check_runner.hpp"
#include "health/probe_runner.hpp"

#include "fake_docker_engine.hpp"

using namespace std::chrono_literals;
using failoverd::CurlMulti;
using failoverd::Duration;
using failoverd::EventLoop;
using failoverd::health::DockerProbe;
using failoverd::health::DockerProbeParams;
using failoverd::health::DockerSelector;
using failoverd::health::ProbeResult;
using failoverd::health::ProbeRunner;
using failoverd::health::ProbeSchedule;
using failoverd::health::Verdict;

namespace {

// The machine running the tests may be loaded: deadlines are generous, never sleeps.
constexpr Duration kRunDeadline = 30s;

std::string read_fixture(const std::string& name) {
    std::ifstream in(std::string(FAILOVERD_FIXTURES) + "/docker/" + name);
    REQUIRE_MESSAGE(in.good(), "missing fixture " << name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

using FakeEngine = failoverd::testing::FakeDockerEngine;

std::string with_fault(const std::string& fixture, const std::string& fault, double delay = 0) {
    nlohmann::json state;
    state["containers"] = nlohmann::json::parse(read_fixture(fixture));
    state["fault"] = fault;
    if (delay > 0) {
        state["delay"] = delay;
    }
    return state.dump();
}

DockerProbeParams params_for(const std::string& socket, int expect) {
    DockerProbeParams p;
    p.socket_path = socket;
    p.labels = {"app=minitwit"};
    p.expectation.expect = expect;
    p.timeout = 5s;
    return p;
}

// One probe under a ProbeRunner, run round by round like `failoverctl check` does.
class Harness {
  public:
    Harness()
        : curl_(loop_),
          runner_(loop_, failoverd::Rng(7),
                  [this](const std::string&, const ProbeResult& r) { last_ = r; }) {}

    EventLoop& loop() { return loop_; }

    void add(std::unique_ptr<failoverd::health::Probe> probe, Duration timeout) {
        runner_.add("docker", std::move(probe), ProbeSchedule{10s, timeout});
    }

    void add(const DockerProbeParams& params) {
        add(std::make_unique<DockerProbe>(curl_, params), params.timeout);
    }

    ProbeResult round() {
        bool done = false;
        last_.reset();
        runner_.run_once_all([&done] { done = true; });
        REQUIRE(loop_.run_until([&done] { return done; }, kRunDeadline));
        REQUIRE(last_.has_value());
        return *last_;
    }

    CurlMulti& curl() { return curl_; }

  private:
    EventLoop loop_;
    CurlMulti curl_;
    ProbeRunner runner_;
    std::optional<ProbeResult> last_;
};

}  // namespace

TEST_CASE("DockerProbe: all containers up passes") {
    Harness h;
    FakeEngine engine(h.loop(), read_fixture("all_up.json"));
    h.add(params_for(engine.socket(), 10));
    const auto r = h.round();
    CHECK(r.verdict == Verdict::Pass);
    CHECK(r.reason == "10/10 running");
    CHECK(r.latency > Duration::zero());
}

TEST_CASE("DockerProbe: one stopped container fails and is named") {
    Harness h;
    FakeEngine engine(h.loop(), read_fixture("one_missing.json"));
    h.add(params_for(engine.socket(), 10));
    const auto r = h.round();
    CHECK(r.verdict == Verdict::Fail);
    CHECK(r.reason == "9/10 running; missing: web-3");
}

TEST_CASE("DockerProbe: one unhealthy container fails") {
    Harness h;
    FakeEngine engine(h.loop(), read_fixture("one_unhealthy.json"));
    h.add(params_for(engine.socket(), 10));
    const auto r = h.round();
    CHECK(r.verdict == Verdict::Fail);
    CHECK(r.reason == "10/10 running; api-1 unhealthy");
}

TEST_CASE("DockerProbe: the engine applies the label filter and the name regex still holds") {
    Harness h;
    FakeEngine engine(h.loop(), read_fixture("all_up.json"));
    auto p = params_for(engine.socket(), 1);
    p.labels = {"app=other"};
    h.add(p);
    CHECK(h.round().reason == "1/1 running");

    Harness names;
    auto q = params_for(engine.socket(), 3);
    q.labels = {};
    q.name_pattern = "^web-";
    names.add(q);
    CHECK(names.round().reason == "3/3 running");
}

TEST_CASE("DockerProbe: a container that disappears between runs is named as missing") {
    Harness h;
    FakeEngine engine(h.loop(), read_fixture("all_up.json"));
    h.add(params_for(engine.socket(), 10));
    REQUIRE(h.round().verdict == Verdict::Pass);

    auto state = nlohmann::json::parse(read_fixture("all_up.json"));
    state.erase(state.begin() + 5);  // db-1
    engine.set_state(state.dump());
    const auto r = h.round();
    CHECK(r.verdict == Verdict::Fail);
    CHECK(r.reason == "9/10 running; missing: db-1");

    engine.set_state(read_fixture("all_up.json"));
    CHECK(h.round().verdict == Verdict::Pass);
}

TEST_CASE("DockerProbe: an absent socket is a clear error, not a crash") {
    Harness h;
    char tmpl[] = "/tmp/failoverd-docker-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    h.add(params_for(dir + "/docker.sock", 10));
    const auto r = h.round();
    CHECK(r.verdict == Verdict::Error);
    CHECK(r.reason == "docker socket " + dir + "/docker.sock: no such file");
    // And again: the probe is reusable after a failed connect.
    CHECK(h.round().reason == r.reason);
    std::filesystem::remove_all(dir);
}

TEST_CASE("DockerProbe: a socket nobody listens on is refused") {
    Harness h;
    FakeEngine engine(h.loop(), std::string("[]"));
    const std::string stale = engine.dir() + "/stale.sock";
    { std::ofstream touch(stale); }
    h.add(params_for(stale, 10));
    const auto r = h.round();
    CHECK(r.verdict == Verdict::Error);
    CHECK(r.reason.rfind("docker socket " + stale + ": ", 0) == 0);
}

TEST_CASE("DockerProbe: a slow engine times out and the next run recovers") {
    Harness h;
    FakeEngine engine(h.loop(), with_fault("all_up.json", "slow", 20));
    auto p = params_for(engine.socket(), 10);
    p.timeout = 300ms;
    h.add(p);
    const auto r = h.round();
    CHECK(r.verdict == Verdict::TimedOut);
    CHECK(r.latency < 10s);

    engine.set_state(read_fixture("all_up.json"));
    // A loaded machine may need more than 300 ms for a fresh connection; the point here is
    // that the cancelled request left the probe usable.
    Harness again;
    again.add(params_for(engine.socket(), 10));
    CHECK(again.round().verdict == Verdict::Pass);
}

TEST_CASE("DockerProbe: an engine that never answers times out") {
    Harness h;
    FakeEngine engine(h.loop(), with_fault("all_up.json", "hang"));
    auto p = params_for(engine.socket(), 10);
    p.timeout = 300ms;
    h.add(p);
    CHECK(h.round().verdict == Verdict::TimedOut);
}

TEST_CASE("DockerProbe: garbage JSON is reported as such") {
    Harness h;
    FakeEngine engine(h.loop(), with_fault("all_up.json", "garbage"));
    h.add(params_for(engine.socket(), 10));
    const auto r = h.round();
    CHECK(r.verdict == Verdict::Error);
    CHECK(r.reason == "engine sent invalid JSON");
}

TEST_CASE("DockerProbe: HTTP 500 carries the engine's message") {
    Harness h;
    FakeEngine engine(h.loop(), with_fault("all_up.json", "500"));
    h.add(params_for(engine.socket(), 10));
    const auto r = h.round();
    CHECK(r.verdict == Verdict::Error);
    CHECK(r.reason == "engine returned HTTP 500: fake engine: injected server error");
}

TEST_CASE("DockerProbe: a connection closed without an answer is reported") {
    Harness h;
    FakeEngine engine(h.loop(), with_fault("all_up.json", "close"));
    h.add(params_for(engine.socket(), 10));
    const auto r = h.round();
    CHECK(r.verdict == Verdict::Error);
    CHECK(r.reason == "engine closed the connection without answering");
}

TEST_CASE("DockerProbe: make_probe builds a docker check from its config") {
    Harness h;
    FakeEngine engine(h.loop(), read_fixture("health_starting.json"));
    failoverd::CheckConfig check;
    check.name = "stack";
    check.type = failoverd::CheckType::Docker;
    check.docker_socket = engine.socket();
    check.docker_labels = {"app=minitwit"};
    check.expect = 10;
    check.timeout = 5s;
    h.add(failoverd::health::make_probe(check, h.loop(), h.curl()), check.timeout);
    CHECK(h.round().reason == "10/10 running; api-2 health: starting");

    check.docker_name_pattern = "web-([";
    CHECK_THROWS_AS(failoverd::health::make_probe(check, h.loop(), h.curl()),
                    std::invalid_argument);
}

TEST_CASE("DockerProbe: the request asks for all containers with the label filter") {
    CHECK(failoverd::health::docker_containers_url(DockerSelector({"app=minitwit"}, "")) ==
          "http://localhost/v1.41/containers/json?all=1&filters="
          "%7B%22label%22%3A%5B%22app%3Dminitwit%22%5D%7D");
    CHECK(failoverd::health::docker_containers_url(DockerSelector({}, "^web")) ==
          "http://localhost/v1.41/containers/json?all=1");
}
