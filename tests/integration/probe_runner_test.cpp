// ProbeRunner with real probes: rounds, periodic runs, the single timeout path, and a hung
// probe that must not hold up anything else in the loop.
#include "health/probe_runner.hpp"

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "health/exec_probe.hpp"
#include "health/http_probe.hpp"
#include "http_test_server.hpp"

using namespace std::chrono_literals;
using failoverd::CurlMulti;
using failoverd::Duration;
using failoverd::EventLoop;
using failoverd::Instant;
using failoverd::Rng;
using failoverd::Timer;
using failoverd::health::ExecProbe;
using failoverd::health::ExecProbeParams;
using failoverd::health::HttpProbe;
using failoverd::health::HttpProbeParams;
using failoverd::health::ProbeResult;
using failoverd::health::ProbeRunner;
using failoverd::health::ProbeSchedule;
using failoverd::health::Verdict;
using failoverd::testing::HttpTestServer;
using failoverd::testing::kDeadline;

namespace {

std::unique_ptr<ExecProbe> exec(EventLoop& loop, const std::string& script) {
    ExecProbeParams p;
    p.command = {"sh", "-c", script};
    p.timeout = 60s;  // the runner's timeout is the one under test
    p.kill_grace = 200ms;
    return std::make_unique<ExecProbe>(loop, p);
}

struct Seen {
    std::string name;
    ProbeResult result;
    Instant at;
};

}  // namespace

TEST_CASE("ProbeRunner: one round runs every probe once and reports a hang as TimedOut") {
    EventLoop loop;
    std::vector<Seen> seen;
    ProbeRunner runner(loop, Rng(1), [&](const std::string& name, const ProbeResult& r) {
        seen.push_back({name, r, loop.now()});
    });
    runner.add("up", exec(loop, "echo fine"), {1s, 10s});
    runner.add("down", exec(loop, "echo broken; exit 2"), {1s, 10s});
    runner.add("hung", exec(loop, "sleep 60"), {1s, 300ms});
    int rounds = 0;
    runner.run_once_all([&] { ++rounds; });
    CHECK(runner.round_running());
    REQUIRE(loop.run_until([&] { return rounds == 1; }, kDeadline));
    CHECK_FALSE(runner.round_running());
    REQUIRE(seen.size() == 3);
    std::map<std::string, ProbeResult> by_name;
    for (const auto& s : seen) {
        by_name[s.name] = s.result;
    }
    CHECK(by_name["up"].verdict == Verdict::Pass);
    CHECK(by_name["up"].reason == "exit 0: fine");
    CHECK(by_name["up"].latency > 0ms);
    CHECK(by_name["down"].verdict == Verdict::Fail);
    CHECK(by_name["down"].reason == "exit 2: broken");
    CHECK(by_name["hung"].verdict == Verdict::TimedOut);
    CHECK(by_name["hung"].reason == "timed out after 300 ms");
    CHECK(by_name["hung"].latency >= 300ms);
    REQUIRE(runner.last_result("down") != nullptr);
    CHECK(runner.last_result("down")->reason == "exit 2: broken");
    CHECK(runner.last_result("nope") == nullptr);

    // The round can be repeated (failoverctl check --wait).
    runner.run_once_all([&] { ++rounds; });
    REQUIRE(loop.run_until([&] { return rounds == 2; }, kDeadline));
    CHECK(seen.size() == 6);
}

TEST_CASE("ProbeRunner: the timeout cancels a hung HTTP probe with the runner's reason") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpProbeParams p;
    p.url = server.url("/slow/20000");
    p.timeout = 30s;  // curl's own limit stays out of the way
    std::optional<ProbeResult> result;
    ProbeRunner runner(loop, Rng(2), [&](const std::string&, const ProbeResult& r) { result = r; });
    runner.add("web", std::make_unique<HttpProbe>(curl, p), {5s, 1s});
    bool done = false;
    runner.run_once_all([&] { done = true; });
    REQUIRE(loop.run_until([&] { return done; }, kDeadline));
    REQUIRE(result.has_value());
    CHECK(result->verdict == Verdict::TimedOut);
    CHECK(result->reason == "timed out after 1.00 s");
    CHECK(result->latency >= 1s);
    CHECK(curl.active() == 0);  // the transfer was cancelled, not left running
}

TEST_CASE("ProbeRunner: a hung probe does not delay timers that fire meanwhile") {
    EventLoop loop;
    HttpTestServer server(loop);
    CurlMulti curl(loop);
    HttpProbeParams p;
    p.url = server.url("/slow/20000");
    p.timeout = 30s;
    bool round_done = false;
    ProbeRunner runner(loop, Rng(3), [](const std::string&, const ProbeResult&) {});
    runner.add("hung-http", std::make_unique<HttpProbe>(curl, p), {5s, 1500ms});
    runner.add("hung-exec", exec(loop, "sleep 60"), {5s, 1500ms});

    const Instant t0 = loop.now();
    std::optional<Duration> one_shot_late;
    failoverd::EventSource one_shot = loop.add_timer(t0 + 100ms, [&] {
        if (!round_done) {
            one_shot_late = loop.now() - (t0 + 100ms);
        }
    });
    int ticks = 0;
    Timer ticker;
    ticker = Timer(loop, [&] {
        ++ticks;
        ticker.arm_after(20ms);
    });
    ticker.arm_after(20ms);

    runner.run_once_all([&] { round_done = true; });
    REQUIRE(loop.run_until([&] { return round_done; }, kDeadline));
    const Duration elapsed = loop.now() - t0;
    REQUIRE(one_shot_late.has_value());  // fired while both probes hung
    CHECK(*one_shot_late < 1s);          // generous: correctness, not speed
    CHECK(elapsed >= 1500ms);
    // A 20 ms ticker over >= 1.5 s: expect ~75 ticks; 15 proves the loop kept turning.
    CHECK(ticks >= 15);
}

TEST_CASE("ProbeRunner: periodic runs keep their interval until stop()") {
    EventLoop loop;
    std::map<std::string, std::vector<Instant>> starts;
    ProbeRunner runner(loop, Rng(4), [&](const std::string& name, const ProbeResult& r) {
        CHECK(r.verdict == Verdict::Pass);
        starts[name].push_back(loop.now() - r.latency);
    });
    runner.add("a", exec(loop, "true"), {150ms, 10s});
    runner.add("b", exec(loop, "exit 0"), {150ms, 10s});
    runner.start();
    CHECK(runner.started());
    REQUIRE(loop.run_until([&] { return starts["a"].size() >= 4 && starts["b"].size() >= 4; },
                           kDeadline));
    runner.stop();
    CHECK_FALSE(runner.started());
    const auto counted = starts["a"].size() + starts["b"].size();
    for (const auto& [name, at] : starts) {
        for (std::size_t i = 1; i < at.size(); ++i) {
            // interval minus 5 % jitter, minus the timer accuracy
            CHECK(at[i] - at[i - 1] >= 150ms * 0.95 - 2ms);
        }
    }
    // No run starts after stop(); one in flight was cancelled without a result.
    loop.run_until([] { return false; }, 400ms);
    CHECK(starts["a"].size() + starts["b"].size() == counted);
}

TEST_CASE("ProbeRunner: add while started, remove while running, bad arguments") {
    EventLoop loop;
    std::vector<std::string> names;
    ProbeRunner runner(loop, Rng(5),
                       [&](const std::string& name, const ProbeResult&) { names.push_back(name); });
    CHECK_THROWS_AS(runner.add("x", exec(loop, "true"), {0ms, 1s}), std::invalid_argument);
    CHECK_THROWS_AS(runner.add("x", nullptr, {1s, 1s}), std::invalid_argument);
    runner.add("slow", exec(loop, "sleep 60"), {100ms, 30s});
    CHECK_THROWS_AS(runner.add("slow", exec(loop, "true"), {1s, 1s}), std::invalid_argument);
    runner.start();
    runner.add("late", exec(loop, "true"), {10s, 10s});
    CHECK(runner.contains("late"));
    CHECK(runner.names() == std::vector<std::string>{"late", "slow"});
    REQUIRE(loop.run_until([&] { return !names.empty(); }, kDeadline));
    CHECK(names == std::vector<std::string>{"late"});
    runner.remove("slow");  // running (sleep 60): cancelled, never reported
    runner.remove("unknown");
    CHECK(runner.size() == 1);
    loop.run_until([] { return false; }, 300ms);
    CHECK(names == std::vector<std::string>{"late"});
    CHECK_THROWS_AS(runner.run_once_all([] {}), std::logic_error);
}

TEST_CASE("ProbeRunner: a round with no probes still completes, on a later turn") {
    EventLoop loop;
    ProbeRunner runner(loop, Rng(6), [](const std::string&, const ProbeResult&) {});
    bool done = false;
    runner.run_once_all([&] { done = true; });
    CHECK_FALSE(done);
    REQUIRE(loop.run_until([&] { return done; }, kDeadline));
}

TEST_CASE("ProbeRunner: the result callback may stop the runner") {
    EventLoop loop;
    int results = 0;
    std::unique_ptr<ProbeRunner> runner;
    runner =
        std::make_unique<ProbeRunner>(loop, Rng(7), [&](const std::string&, const ProbeResult&) {
            ++results;
            runner->stop();
        });
    runner->add("a", exec(loop, "true"), {50ms, 10s});
    runner->add("b", exec(loop, "true"), {50ms, 10s});
    runner->start();
    REQUIRE(loop.run_until([&] { return results >= 1; }, kDeadline));
    loop.run_until([] { return false; }, 300ms);
    CHECK(results == 1);
    CHECK_FALSE(runner->started());
}
