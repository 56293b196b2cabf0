// Docker checks driven by the Engine's event stream: against tests/fakes/fake_docker_engine.py
// for broken streams, and against a real dockerd (tests/docker/engine.sh) for the normal path.
// The check interval is 30 s wherever a test claims "the event did it", so only the event can
// explain a run within the wait; the runs also say so themselves (reason and confirms_event).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "daemon/core/rng.hpp"
#include "daemon/shell/child_process.hpp"
#include "daemon/shell/curl_multi.hpp"
#include "daemon/shell/event_loop.hpp"
#include "health/docker_event_probe.hpp"
#include "health/docker_probe.hpp"
#include "health/health_tracker.hpp"
#include "health/probe_runner.hpp"

#include "fake_docker_engine.hpp"

using namespace std::chrono_literals;
using failoverd::ChildProcess;
using failoverd::ChildSpec;
using failoverd::CurlMulti;
using failoverd::Duration;
using failoverd::EventLoop;
using failoverd::Instant;
using failoverd::Timer;
using failoverd::health::CheckPolicy;
using failoverd::health::CheckState;
using failoverd::health::CheckTracker;
using failoverd::health::DockerEventStream;
using failoverd::health::DockerProbe;
using failoverd::health::DockerProbeParams;
using failoverd::health::ProbeResult;
using failoverd::health::ProbeRunner;
using failoverd::health::ProbeSchedule;
using failoverd::health::Verdict;

namespace {

constexpr Duration kStartDeadline = 30s;
// Below the 30 s interval (minus its 5 % jitter): a result within this wait after the first
// periodic run cannot be the next periodic run.
constexpr Duration kEventDeadline = 25s;
// Fault handling includes the 5 s head timeout and up to 5 s of backoff.
constexpr Duration kFaultDeadline = 40s;

using FakeEngine = failoverd::testing::FakeDockerEngine;

nlohmann::json containers(const std::string& web2_state,
                          const std::string& events_fault = std::string()) {
    nlohmann::json state;
    state["containers"] = nlohmann::json::array(
        {{{"name", "web-1"}, {"state", "running"}, {"labels", {{"app", "minitwit"}}}},
         {{"name", "web-2"}, {"state", web2_state}, {"labels", {{"app", "minitwit"}}}},
         {{"name", "db"}, {"state", "running"}, {"labels", {{"app", "postgres"}}}}});
    if (!events_fault.empty()) {
        state["events_fault"] = events_fault;
    }
    return state;
}

struct Observed {
    ProbeResult result;
    Instant at{};
    CheckState state = CheckState::Unknown;
};

// One docker check as the daemon wires it: a DockerProbe under a ProbeRunner, watching the
// shared event stream, its results fed to a CheckTracker; plus a loop timer that proves the
// loop keeps turning whatever the engine does.
class Watch {
  public:
    Watch(EventLoop& loop, DockerProbeParams params, Duration interval, CheckPolicy policy)
        : loop_(loop),
          curl_(loop),
          tracker_(policy),
          runner_(loop, failoverd::Rng(11),
                  [this](const std::string&, const ProbeResult& r) {
                      tracker_.record(r);
                      results_.push_back(Observed{r, loop_.now(), tracker_.state()});
                  }),
          tick_(loop, [this] {
              ++ticks_;
              tick_.arm_after(50ms);
          }) {
        params.interval = interval;
        auto probe = std::make_unique<DockerProbe>(curl_, params);
        probe_ = probe.get();
        probe_->watch_events(loop_, [this] { runner_.run_now("web"); });
        runner_.add("web", std::move(probe), ProbeSchedule{interval, params.timeout});
        runner_.start();
        tick_.arm_after(50ms);
    }

    const DockerEventStream& stream() const { return *probe_->event_stream(); }
    const DockerProbe& probe() const { return *probe_; }
    const std::vector<Observed>& results() const { return results_; }
    std::uint64_t ticks() const { return ticks_; }
    std::uint64_t on_demand() const { return runner_.runs_on_demand("web"); }

    // Connected, the resync after the connect done, no run in progress: what follows can
    // only be explained by a new event (or by the interval, 30 s away).
    bool settle(Duration max_wait) {
        return wait(
            [this] {
                const auto next = runner_.next_run("web");
                return stream().connected() && on_demand() >= 1 && !results_.empty() && next &&
                       *next > loop_.now() + 10s;
            },
            max_wait);
    }
    CheckState state() const { return tracker_.state(); }

    bool wait(const std::function<bool()>& done, Duration max_wait) {
        return loop_.run_until(done, max_wait);
    }

    // Waits for a result after index `from` that satisfies `pred`.
    const Observed* wait_result(std::size_t from, const std::function<bool(const Observed&)>& pred,
                                Duration max_wait) {
        const Observed* found = nullptr;
        loop_.run_until(
            [&] {
                for (std::size_t i = from; i < results_.size(); ++i) {
                    if (pred(results_[i])) {
                        found = &results_[i];
                        return true;
                    }
                }
                return false;
            },
            max_wait);
        return found;
    }

  private:
    EventLoop& loop_;
    CurlMulti curl_;
    CheckTracker tracker_;
    ProbeRunner runner_;
    Timer tick_;
    DockerProbe* probe_ = nullptr;
    std::vector<Observed> results_;
    std::uint64_t ticks_ = 0;
};

DockerProbeParams minitwit(const std::string& socket, int expect) {
    DockerProbeParams p;
    p.socket_path = socket;
    p.labels = {"app=minitwit"};
    p.expectation.expect = expect;
    p.timeout = 5s;
    return p;
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("docker events: a die event re-runs the check before its interval, fall at once") {
    EventLoop loop;
    FakeEngine engine(loop, containers("running"));
    Watch w(loop, minitwit(engine.socket(), 2), 30s, CheckPolicy{2, 3, 0});

    REQUIRE(w.settle(kStartDeadline));
    REQUIRE(w.results().back().result.verdict == Verdict::Pass);
    CHECK(w.state() == CheckState::Passing);
    const std::size_t before = w.results().size();
    const Instant last_run = w.results().back().at;

    engine.set_state(containers("exited"));
    const Observed* failed = w.wait_result(
        before, [](const Observed& o) { return !o.result.passed(); }, kEventDeadline);
    REQUIRE_MESSAGE(failed != nullptr, "no failing result within the wait");
    CHECK(failed->result.verdict == Verdict::Fail);
    CHECK(failed->result.confirms_event);
    CHECK_MESSAGE(has(failed->result.reason, "missing: web-2"), failed->result.reason);
    // From the event and the last listing, or from a listing the event triggered.
    CHECK_MESSAGE((has(failed->result.reason, "(event: die web-2, before the engine's list") ||
                   has(failed->result.reason, "(after event: die web-2)")),
                  failed->result.reason);
    // fall = 3, yet one confirmed failure turns the check Failing.
    CHECK(failed->state == CheckState::Failing);
    CHECK(failed->at - last_run < 28s);  // the 30 s interval, minus its jitter
    CHECK(w.probe().event_runs() >= 1);
    CHECK(w.stream().events_received() >= 1);

    // The way back: a start event re-runs the check; rise (2) still applies.
    const std::size_t after_fail = w.results().size();
    engine.set_state(containers("running"));
    const Observed* passed = w.wait_result(
        after_fail, [](const Observed& o) { return o.result.passed(); }, kEventDeadline);
    REQUIRE(passed != nullptr);
    CHECK(passed->state == CheckState::Failing);
    // On a loaded machine a follow-up of the die event can list the container running again
    // before the start event arrives; the start event must still re-run the check.
    const Observed* by_start = w.wait_result(
        after_fail,
        [](const Observed& o) {
            return o.result.passed() && has(o.result.reason, "(after event: start web-2)");
        },
        kEventDeadline);
    CHECK(by_start != nullptr);
}

TEST_CASE("docker events: events for containers outside the selector do not re-run the check") {
    EventLoop loop;
    FakeEngine engine(loop, containers("running"));
    Watch w(loop, minitwit(engine.socket(), 2), 30s, CheckPolicy{2, 2, 0});
    REQUIRE(w.settle(kStartDeadline));
    const std::uint64_t received = w.stream().events_received();
    const std::uint64_t matched = w.probe().events_matched();

    auto state = containers("running");
    state["containers"][2]["state"] = "exited";  // db, app=postgres
    engine.set_state(state);
    REQUIRE(w.wait([&] { return w.stream().events_received() > received; }, kEventDeadline));
    CHECK(w.probe().events_matched() == matched);
    // Then one that matches: both arrive in order, only the second re-runs the check.
    state["containers"][1]["state"] = "exited";
    engine.set_state(state);
    REQUIRE(w.wait([&] { return w.probe().events_matched() > matched; }, kEventDeadline));
}

namespace {

// The listing shows the state as it was `lag` ago, as dockerd 20.10 does right after `die`.
nlohmann::json lagging(nlohmann::json state, Duration lag) {
    state["listing_lag"] = std::chrono::duration<double>(lag).count();
    return state;
}

std::size_t passes_between(const std::vector<Observed>& results, std::size_t from, std::size_t to) {
    std::size_t n = 0;
    for (std::size_t i = from; i < to && i < results.size(); ++i) {
        n += results[i].result.passed() ? 1 : 0;
    }
    return n;
}

}  // namespace

TEST_CASE("docker events: with a lagging listing the die event fails the check at once") {
    EventLoop loop;
    // 3 s of lag: far more than the real engine's 140-330 ms, so "before the listing shows
    // it" is not a race, and below the 5 s bound, so the listing agrees before it ends.
    FakeEngine engine(loop, lagging(containers("running"), 3s));
    Watch w(loop, minitwit(engine.socket(), 2), 30s, CheckPolicy{2, 3, 0});
    REQUIRE(w.settle(kStartDeadline));
    REQUIRE(w.results().back().result.passed());
    const std::size_t before = w.results().size();

    engine.set_state(lagging(containers("exited"), 3s));
    const Observed* failed = w.wait_result(
        before, [](const Observed& o) { return !o.result.passed(); }, kEventDeadline);
    REQUIRE_MESSAGE(failed != nullptr, "no failing result within the wait");
    CHECK(failed->result.verdict == Verdict::Fail);
    CHECK(failed->result.confirms_event);
    CHECK_MESSAGE(has(failed->result.reason,
                      "1/2 running; missing: web-2 (event: die web-2, before the engine's list "
                      "shows it)"),
                  failed->result.reason);
    CHECK(failed->state == CheckState::Failing);  // fall = 3: the event counts as the full fall
    CHECK(w.probe().event_verdicts() >= 1);
    CHECK(passes_between(w.results(), before, w.results().size()) == 0);

    // Listings follow while the override holds: they still show web-2 running, and yet fail.
    const std::size_t first_fail = static_cast<std::size_t>(failed - w.results().data());
    const Observed* held = w.wait_result(
        first_fail + 1,
        [](const Observed& o) { return has(o.result.reason, "before the engine's list"); },
        kEventDeadline);
    REQUIRE(held != nullptr);
    CHECK(held->result.verdict == Verdict::Fail);
    // Then the listing agrees (3 s later): the override ends, the listing alone says it.
    const Observed* agreed = w.wait_result(
        first_fail + 1,
        [](const Observed& o) {
            return !o.result.passed() && !has(o.result.reason, "before the engine's list");
        },
        kEventDeadline);
    REQUIRE(agreed != nullptr);
    CHECK_MESSAGE(has(agreed->result.reason, "1/2 running; missing: web-2"), agreed->result.reason);
    REQUIRE(w.wait([&] { return w.probe().overrides().empty(); }, kEventDeadline));
    CHECK(passes_between(w.results(), before, w.results().size()) == 0);
    CHECK(w.state() == CheckState::Failing);
}

TEST_CASE("docker events: a restarted container (die, then start) ends up passing") {
    EventLoop loop;
    FakeEngine engine(loop, lagging(containers("running"), 1s));
    Watch w(loop, minitwit(engine.socket(), 2), 30s, CheckPolicy{1, 3, 0});
    REQUIRE(w.settle(kStartDeadline));
    const std::size_t before = w.results().size();

    engine.set_state(lagging(containers("exited"), 1s));
    const Observed* failed = w.wait_result(
        before, [](const Observed& o) { return !o.result.passed(); }, kEventDeadline);
    REQUIRE(failed != nullptr);
    CHECK(failed->result.confirms_event);
    const std::size_t after_fail = w.results().size();
    // Started again before the listing ever showed it stopped: the start event drops the
    // override and the listing (lagging too, then caught up) decides.
    engine.set_state(lagging(containers("running"), 1s));
    const Observed* passed = w.wait_result(
        after_fail, [](const Observed& o) { return o.result.passed(); }, kEventDeadline);
    REQUIRE_MESSAGE(passed != nullptr, "the check did not come back after the start event");
    CHECK_MESSAGE(has(passed->result.reason, "2/2 running"), passed->result.reason);
    CHECK(passed->state == CheckState::Passing);
    CHECK(w.probe().overrides().empty());
    // And it stays passing once the lagging listing has caught up (1 s): no failure after it.
    const std::size_t pass_index = static_cast<std::size_t>(passed - w.results().data());
    const Observed* flapped = w.wait_result(
        pass_index + 1, [](const Observed& o) { return !o.result.passed(); }, 3s);
    CHECK_MESSAGE(flapped == nullptr, (flapped ? flapped->result.reason : std::string()));
    CHECK(w.state() == CheckState::Passing);
}

TEST_CASE("docker events: an override the listing never confirms ends at its bound") {
    EventLoop loop;
    // The listing lags by far more than the 5 s bound: as if the event was wrong.
    FakeEngine engine(loop, lagging(containers("running"), 60s));
    Watch w(loop, minitwit(engine.socket(), 2), 30s, CheckPolicy{1, 3, 0});
    REQUIRE(w.settle(kStartDeadline));
    const std::size_t before = w.results().size();

    engine.set_state(lagging(containers("exited"), 60s));
    const Observed* failed = w.wait_result(
        before, [](const Observed& o) { return !o.result.passed(); }, kEventDeadline);
    REQUIRE(failed != nullptr);
    CHECK(has(failed->result.reason, "(event: die web-2, before the engine's list shows it)"));
    const std::size_t first_fail = static_cast<std::size_t>(failed - w.results().data());
    const Instant failed_at = failed->at;
    // Past the bound the listing wins, without waiting for the 30 s interval.
    const Observed* passed = w.wait_result(
        first_fail, [](const Observed& o) { return o.result.passed(); }, kEventDeadline);
    REQUIRE_MESSAGE(passed != nullptr, "the override did not end at its bound");
    // The override was noted just before the first failing result; it holds for the bound.
    CHECK(passed->at - failed_at > failoverd::health::kDockerOverrideBound - 500ms);
    CHECK(passed->at - failed_at < 20s);  // the follow-up at expiry, not the 30 s interval
    CHECK(w.probe().overrides().empty());
}

namespace {

struct Fault {
    const char* name;
    const char* reason;
};

void broken_from_the_start(const Fault& fault) {
    CAPTURE(fault.name);
    EventLoop loop;
    FakeEngine engine(loop, containers("running", fault.name));
    // A 1 s interval here: the point is that polling goes on while the stream is down.
    Watch w(loop, minitwit(engine.socket(), 2), 1s, CheckPolicy{2, 2, 0});

    const std::uint64_t ticks_before = w.ticks();
    const Observed* down = w.wait_result(
        0, [](const Observed& o) { return has(o.result.reason, "(event stream down: "); },
        kFaultDeadline);
    REQUIRE_MESSAGE(down != nullptr, "no result saying the stream is down");
    CHECK(down->result.verdict == Verdict::Pass);  // the listing still decides
    CHECK_MESSAGE(has(down->result.reason, fault.reason), down->result.reason);
    CHECK(has(down->result.reason, "; polling every 1 s)"));
    CHECK(w.stream().state() == DockerEventStream::State::Down);
    CHECK(has(w.stream().down_reason(), fault.reason));
    // Polling continues and the loop kept turning (a timer every 50 ms).
    const std::size_t polled = w.results().size();
    // (Reconnects re-run the check too, so two results may come quickly: wait for the ticks.)
    REQUIRE(
        w.wait([&] { return w.results().size() >= polled + 2 && w.ticks() > ticks_before + 10; },
               kFaultDeadline));

    engine.set_state(containers("running"));
    REQUIRE(w.wait([&] { return w.stream().connected(); }, kFaultDeadline));
    CHECK(w.stream().connects() >= 2);
    // Back up: a change arrives as an event and re-runs the check.
    const std::uint64_t event_runs = w.probe().event_runs();
    engine.set_state(containers("exited"));
    REQUIRE(w.wait([&] { return w.probe().event_runs() > event_runs; }, kEventDeadline));
}

void broken_while_open(const std::string& fault) {
    CAPTURE(fault);
    EventLoop loop;
    FakeEngine engine(loop, containers("running"));
    Watch w(loop, minitwit(engine.socket(), 2), 30s, CheckPolicy{2, 2, 0});
    REQUIRE(w.wait([&] { return w.stream().connected() && w.on_demand() >= 1; }, kStartDeadline));

    engine.set_state(containers("running", fault));
    REQUIRE(w.wait([&] { return w.stream().state() == DockerEventStream::State::Down; },
                   kFaultDeadline));
    const std::uint64_t on_demand = w.on_demand();
    const std::size_t results = w.results().size();
    engine.set_state(containers("running"));
    REQUIRE(w.wait([&] { return w.stream().connected() && w.stream().reconnects() >= 1; },
                   kFaultDeadline));
    // The resync: one run on demand after the reconnect, well before the 30 s interval.
    REQUIRE(w.wait([&] { return w.on_demand() > on_demand && w.results().size() > results; },
                   kEventDeadline));
    CHECK(w.results().back().result.passed());
}

}  // namespace

TEST_CASE("docker events: broken streams go down, polling goes on, and they reconnect") {
    SUBCASE("hang") {
        broken_from_the_start(Fault{"hang", "no response to GET /events within 5 s"});
    }
    SUBCASE("garbage") {
        broken_from_the_start(Fault{"garbage", "not a JSON event: 'this is not an event'"});
    }
    SUBCASE("close") {
        broken_from_the_start(Fault{"close", "mid-event"});
    }
    SUBCASE("500") {
        broken_from_the_start(Fault{"500", "engine returned HTTP 500"});
    }
}

TEST_CASE("docker events: a stream that breaks while open reconnects and resyncs") {
    SUBCASE("close") {
        broken_while_open("close");
    }
    SUBCASE("garbage") {
        broken_while_open("garbage");
    }
}

namespace {

// tests/docker/engine.sh: a real dockerd for this test, removed again by the destructor.
class RealEngine {
  public:
    RealEngine() {
        script_ = std::string(FAILOVERD_SOURCE_DIR) + "/tests/docker/engine.sh";
        char tmpl[] = "/tmp/failoverd-events-real-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        work_ = tmpl;
        if (::access(script_.c_str(), X_OK) != 0) {
            skip_ = script_ + " is missing";
            return;
        }
        std::string out;
        const int rc = run({"start", work_}, out);
        if (rc == 77) {
            skip_ = out;
            return;
        }
        REQUIRE_MESSAGE(rc == 0, "engine.sh start failed (" << rc << "): " << out);
        socket_ = out.substr(0, out.find('\n'));
        started_ = true;
    }

    ~RealEngine() {
        if (started_) {
            std::string out;
            run({"stop", work_}, out);
        }
        std::error_code ec;
        std::filesystem::remove_all(work_, ec);
    }

    // Blocking, with stderr folded into `out`: fine in a test, never in the daemon.
    int run(const std::vector<std::string>& args, std::string& out) const {
        std::string command = "'" + script_ + "'";
        for (const auto& a : args) {
            command += " '" + a + "'";
        }
        return shell(command, out);
    }

    static int shell(const std::string& command, std::string& out) {
        out.clear();
        FILE* p = ::popen((command + " 2>&1").c_str(), "r");
        REQUIRE(p != nullptr);
        char buf[4096];
        std::size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
            out.append(buf, n);
        }
        const int status = ::pclose(p);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    }

    const std::string& skipped() const { return skip_; }
    const std::string& work() const { return work_; }
    const std::string& socket() const { return socket_; }

  private:
    std::string script_;
    std::string work_;
    std::string socket_;
    std::string skip_;
    bool started_ = false;
};

}  // namespace

TEST_CASE("docker events, real engine: docker kill flips the check through the event path") {
    RealEngine engine;
    if (!engine.skipped().empty()) {
        MESSAGE("skipping the real-engine events test: " << engine.skipped());
        return;
    }
    std::string out;
    REQUIRE_MESSAGE(engine.run({"run", engine.work(), "evweb", "18931"}, out) == 0, out);

    EventLoop loop;
    DockerProbeParams p;
    p.socket_path = engine.socket();
    p.name_pattern = "^evweb$";
    p.expectation.expect = 1;
    p.timeout = 5s;
    Watch w(loop, p, 30s, CheckPolicy{2, 3, 0});
    REQUIRE(w.settle(kStartDeadline));
    REQUIRE_MESSAGE(w.results().back().result.passed(), w.results().back().result.reason);
    CHECK(w.state() == CheckState::Passing);

    // docker kill: the engine sends kill and die. The CLI runs as a child while the loop
    // turns, so events are read as they come; dockerd sends `die` before its list says so,
    // and the die counts at once (laid over the last listing) instead of waiting for it.
    const std::size_t before = w.results().size();
    const Instant last_run = w.results().back().at;
    ChildSpec kill;
    kill.argv = {"/usr/bin/docker", "kill", "evweb"};
    kill.env = {{"DOCKER_HOST", "unix://" + engine.socket()}};
    std::optional<int> kill_exit;
    // When the engine's kill and die reach the loop, beside the results (for the numbers).
    std::optional<Instant> kill_seen;
    std::optional<Instant> die_seen;
    auto stream = DockerEventStream::shared(loop, engine.socket());
    DockerEventStream::Subscriber seen;
    seen.on_event = [&](const failoverd::health::DockerEvent& e) {
        if (e.action == "kill" && !kill_seen) {
            kill_seen = loop.now();
        }
        if (e.action == "die" && !die_seen) {
            die_seen = loop.now();
        }
    };
    const std::uint64_t seen_id = stream->subscribe(std::move(seen));
    ChildProcess killer(loop, std::move(kill));
    const Instant kill_started = loop.now();
    killer.start([&](const failoverd::ChildExit& e) { kill_exit = e.exit_code.value_or(-1); });
    const Observed* found = w.wait_result(
        before, [](const Observed& o) { return !o.result.passed(); }, kEventDeadline);
    REQUIRE_MESSAGE(found != nullptr, "no failing result within the wait");
    const Observed failed = *found;  // results_ grows below
    const std::size_t failed_index = static_cast<std::size_t>(found - w.results().data());
    CHECK(failed.result.verdict == Verdict::Fail);
    CHECK(failed.result.confirms_event);
    CHECK_MESSAGE(has(failed.result.reason, "event: "), failed.result.reason);
    CHECK(failed.state == CheckState::Failing);  // fall = 3, one confirmed failure
    CHECK(failed.at - last_run < 28s);
    REQUIRE(w.wait([&] { return kill_exit.has_value(); }, kStartDeadline));
    CHECK(*kill_exit == 0);
    REQUIRE(die_seen.has_value());
    const std::string source = has(failed.result.reason, "before the engine's list shows it")
                                   ? "from the die event, before the engine's list"
                                   : "from a listing";
    MESSAGE("docker kill started -> check failing: "
            << failoverd::format_duration(failed.at - kill_started) << "; kill event -> die event: "
            << (kill_seen ? failoverd::format_duration(*die_seen - *kill_seen) : std::string("-"))
            << "; die event -> failing result: "
            << failoverd::format_duration(failed.at - *die_seen) << " (" << source
            << "): " << failed.result.reason);
    stream->unsubscribe(seen_id);
    // The passes before it (a run on `kill` may still see it running) came from events too.
    for (std::size_t i = before; i < w.results().size(); ++i) {
        CHECK_MESSAGE(has(w.results()[i].result.reason, "event: "), w.results()[i].result.reason);
    }
    // The listings that follow confirm it; none of them passes while the engine's list lags.
    REQUIRE(w.wait([&] { return w.probe().overrides().empty(); }, kEventDeadline));
    MESSAGE("die event -> the engine's list agrees (within a follow-up's period): "
            << failoverd::format_duration(loop.now() - *die_seen));
    CHECK(passes_between(w.results(), failed_index, w.results().size()) == 0);
    CHECK(w.state() == CheckState::Failing);

    // Start it again, then restart the engine: the stream reconnects and resyncs the check.
    const std::size_t before_start = w.results().size();
    REQUIRE_MESSAGE(
        RealEngine::shell(
            "DOCKER_HOST='unix://" + engine.socket() + "' /usr/bin/docker start evweb", out) == 0,
        out);
    REQUIRE(w.wait_result(
                before_start, [](const Observed& o) { return o.result.passed(); },
                kEventDeadline) != nullptr);
    const std::uint64_t reconnects = w.stream().reconnects();
    const std::uint64_t on_demand = w.on_demand();
    REQUIRE_MESSAGE(engine.run({"restart-engine", engine.work()}, out) == 0, out);
    const std::size_t after_restart = w.results().size();
    REQUIRE(w.wait([&] { return w.stream().reconnects() > reconnects; }, kFaultDeadline));
    REQUIRE(w.wait([&] { return w.on_demand() > on_demand && w.results().size() > after_restart; },
                   kEventDeadline));
    // The engine's exit stopped the container; the resync says so without waiting 30 s.
    const Observed* resynced = w.wait_result(
        after_restart,
        [](const Observed& o) {
            return !o.result.passed() && !has(o.result.reason, "event stream down");
        },
        kEventDeadline);
    REQUIRE(resynced != nullptr);
    CHECK_MESSAGE(has(resynced->result.reason, "0/1 running"), resynced->result.reason);
}

namespace {

// A probe that answers `run_for` after it starts, from a loop timer.
class TimedProbe : public failoverd::health::Probe {
  public:
    TimedProbe(EventLoop& loop, Duration run_for, int& starts)
        : timer_(loop, [this] { finish(); }), run_for_(run_for), starts_(starts) {}

    void start(std::function<void(ProbeResult)> done) override {
        ++starts_;
        done_ = std::move(done);
        timer_.arm_after(run_for_);
    }
    void cancel() override {
        timer_.disarm();
        done_ = nullptr;
    }

  private:
    void finish() {
        auto done = std::move(done_);
        done_ = nullptr;
        if (done) {
            done(ProbeResult{Verdict::Pass, "ok", {}});
        }
    }

    Timer timer_;
    Duration run_for_;
    int& starts_;
    std::function<void(ProbeResult)> done_;
};

}  // namespace

TEST_CASE("ProbeRunner::run_now: runs at once, once more after a run in progress, interval after") {
    EventLoop loop;
    int starts = 0;
    std::vector<Instant> results;
    ProbeRunner runner(loop, failoverd::Rng(3), [&](const std::string&, const ProbeResult&) {
        results.push_back(loop.now());
    });
    runner.add("p", std::make_unique<TimedProbe>(loop, 300ms, starts), ProbeSchedule{30s, 5s});
    runner.run_now("p");  // not started: ignored
    CHECK(runner.runs_on_demand("p") == 0);
    runner.start();
    REQUIRE(loop.run_until([&] { return results.size() == 1; }, kStartDeadline));
    REQUIRE(starts == 1);
    const auto next = runner.next_run("p");
    REQUIRE(next.has_value());
    CHECK(*next - results[0] > 20s);

    // Idle: the run starts on the next loop turn.
    runner.run_now("p");
    REQUIRE(loop.run_until([&] { return runner.running("p"); }, kStartDeadline));
    CHECK(starts == 2);
    // In progress: three requests make one more run, right after this one.
    runner.run_now("p");
    runner.run_now("p");
    runner.run_now("p");
    CHECK(starts == 2);
    REQUIRE(loop.run_until([&] { return results.size() == 3; }, kStartDeadline));
    CHECK(starts == 3);
    CHECK(runner.runs_on_demand("p") == 4);
    // The backstop: the next periodic run counts from the last run, 30 s (+-5 %) away.
    const auto after = runner.next_run("p");
    REQUIRE(after.has_value());
    CHECK(*after - results[2] > 20s);
    runner.stop();
    runner.run_now("p");
    CHECK_FALSE(runner.running("p"));
}
