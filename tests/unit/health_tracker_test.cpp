#include "health/health_tracker.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using failoverd::health::CheckPolicy;
using failoverd::health::CheckState;
using failoverd::health::CheckTracker;
using failoverd::health::HealthTracker;
using failoverd::health::ProbeResult;
using failoverd::health::Verdict;

namespace {

ProbeResult pass(std::string reason = "ok") {
    return ProbeResult{Verdict::Pass, std::move(reason), std::chrono::milliseconds(3)};
}

ProbeResult fail(std::string reason = "down") {
    return ProbeResult{Verdict::Fail, std::move(reason), std::chrono::milliseconds(3)};
}

// Feeds a sequence like "PPFFP" and returns the first letter of the state after each result.
std::string run(CheckTracker& t, const std::string& seq) {
    std::string states;
    for (const char c : seq) {
        t.record(c == 'P' ? pass() : fail());
        states += to_string(t.state())[0];
    }
    return states;
}

}  // namespace

TEST_CASE("HealthTracker: first result decides the state at once") {
    CheckTracker up(CheckPolicy{3, 3, 0});
    CHECK(up.state() == CheckState::Unknown);
    CHECK(up.record(pass()));
    CHECK(up.state() == CheckState::Passing);

    CheckTracker down(CheckPolicy{3, 3, 0});
    CHECK(down.record(fail()));
    CHECK(down.state() == CheckState::Failing);
    CHECK(down.failures_in_a_row() == 1);
    CHECK(down.results_seen() == 1);
}

TEST_CASE("HealthTracker: rise and fall sequences") {
    struct Row {
        int rise;
        int fall;
        const char* input;
        const char* states;  // first letter of the state after each result
    };
    const std::vector<Row> rows = {
        {2, 2, "PFPFPF", "pppppp"},        // alternating never reaches fall = 2
        {2, 2, "PFF", "ppf"},              // two failures in a row: failing
        {2, 3, "PFFF", "pppf"},            // fall = 3 needs three
        {2, 2, "FPFP", "ffff"},            // alternating never reaches rise = 2
        {2, 2, "FPP", "ffp"},              // two successes in a row: passing
        {3, 1, "PFPPPFPP", "pfffpfff"},    // fall = 1 flips at once, rise = 3 is slow
        {1, 1, "PFPF", "pfpf"},            // 1/1 follows every result
        {2, 2, "PFFPFFPPP", "ppfffffpp"},  // a lone pass does not recover
    };
    for (const auto& row : rows) {
        CAPTURE(row.input);
        CheckTracker t(CheckPolicy{row.rise, row.fall, 0});
        CHECK(run(t, row.input) == row.states);
    }
}

TEST_CASE("HealthTracker: record reports only state changes and keeps explicit counters") {
    CheckTracker t(CheckPolicy{2, 2, 0});
    CHECK(t.record(pass()));
    CHECK_FALSE(t.record(pass()));
    CHECK(t.successes_in_a_row() == 2);
    CHECK_FALSE(t.record(fail()));
    CHECK(t.successes_in_a_row() == 0);
    CHECK(t.failures_in_a_row() == 1);
    CHECK(t.record(fail()));
    CHECK(t.state() == CheckState::Failing);
    CHECK(t.results_seen() == 4);
}

TEST_CASE("HealthTracker: timeouts and errors count as failures") {
    CheckTracker t(CheckPolicy{2, 2, 0});
    t.record(pass());
    t.record(ProbeResult{Verdict::TimedOut, "timed out after 1 s", {}});
    t.record(ProbeResult{Verdict::Error, "docker socket /x: no such file", {}});
    CHECK(t.state() == CheckState::Failing);
    CHECK(t.last_failure().reason == "docker socket /x: no such file");
}

TEST_CASE("HealthTracker: weight 0 failing check puts the instance in fault and names it") {
    HealthTracker h;
    h.add_check("web", CheckPolicy{2, 2, 0});
    h.add_check("db", CheckPolicy{2, 2, 0});
    h.record("db", pass());
    h.record("web", fail("9/10 running; missing: web-3"));
    const auto health = h.evaluate({"web", "db"});
    CHECK(health.fault);
    CHECK(health.priority_delta == 0);
    CHECK(health.reason == "web failing: 9/10 running; missing: web-3");
}

TEST_CASE("HealthTracker: all passing is healthy") {
    HealthTracker h;
    h.add_check("web", CheckPolicy{2, 2, 0});
    h.add_check("ping", CheckPolicy{2, 2, -20});
    h.record("web", pass());
    h.record("ping", pass());
    const auto health = h.evaluate({"web", "ping"});
    CHECK_FALSE(health.fault);
    CHECK(health.priority_delta == 0);
    CHECK(health.reason == "all checks passing");
}

TEST_CASE("HealthTracker: negative weights of failing checks sum into priority_delta") {
    HealthTracker h;
    h.add_check("a", CheckPolicy{1, 1, -10});
    h.add_check("b", CheckPolicy{1, 1, -25});
    h.add_check("c", CheckPolicy{1, 1, -7});
    h.record("a", fail("HTTP 503"));
    h.record("b", fail("connection refused"));
    h.record("c", pass());
    const auto health = h.evaluate({"a", "b", "c"});
    CHECK_FALSE(health.fault);
    CHECK(health.priority_delta == -35);
    CHECK(health.reason ==
          "a failing: HTTP 503 (priority -10) | b failing: connection refused (priority -25)");
}

TEST_CASE("HealthTracker: only the instance's own checks are evaluated") {
    HealthTracker h;
    h.add_check("mine", CheckPolicy{2, 2, 0});
    h.add_check("theirs", CheckPolicy{2, 2, 0});
    h.record("mine", pass());
    h.record("theirs", fail());
    CHECK_FALSE(h.evaluate({"mine"}).fault);
    CHECK(h.evaluate({"theirs"}).fault);
}

TEST_CASE("HealthTracker: Unknown counts as fault while waiting for the first result") {
    HealthTracker h;
    h.add_check("web", CheckPolicy{2, 2, 0});
    auto health = h.evaluate({"web"});
    CHECK(health.fault);
    CHECK(health.reason == "web waiting for first result");

    h.add_check("ping", CheckPolicy{2, 2, -15});
    h.record("web", pass());
    health = h.evaluate({"web", "ping"});
    CHECK_FALSE(health.fault);
    CHECK(health.priority_delta == -15);
    CHECK(health.reason == "ping waiting for first result (priority -15)");
}

TEST_CASE("HealthTracker: a name without a tracker is a fault") {
    HealthTracker h;
    const auto health = h.evaluate({"ghost"});
    CHECK(health.fault);
    CHECK(health.reason == "ghost: no such check");
}

TEST_CASE("HealthTracker: a recovering check still says why it failed") {
    HealthTracker h;
    h.add_check("web", CheckPolicy{3, 2, 0});
    h.record("web", fail("9/10 running; missing: web-3"));
    h.record("web", pass("10/10 running"));
    const auto health = h.evaluate({"web"});
    CHECK(health.fault);
    CHECK(health.reason == "web failing (1/3 passes to recover): 9/10 running; missing: web-3");
}

TEST_CASE("HealthTracker: faults are listed before priority reductions") {
    HealthTracker h;
    h.add_check("ping", CheckPolicy{1, 1, -5});
    h.add_check("web", CheckPolicy{1, 1, 0});
    h.record("ping", fail("timed out after 1 s"));
    h.record("web", fail("0 containers match label app=minitwit"));
    const auto health = h.evaluate({"ping", "web"});
    CHECK(health.fault);
    CHECK(health.priority_delta == -5);
    CHECK(health.reason ==
          "web failing: 0 containers match label app=minitwit | ping failing: timed out after 1 s "
          "(priority -5)");
}

TEST_CASE("HealthTracker: add_check resets, remove_check forgets, unknown names are ignored") {
    HealthTracker h;
    h.add_check("web", CheckPolicy{2, 2, 0});
    h.record("web", fail());
    h.add_check("web", CheckPolicy{2, 2, 0});
    REQUIRE(h.find("web") != nullptr);
    CHECK(h.find("web")->state() == CheckState::Unknown);
    CHECK(h.find("web")->results_seen() == 0);
    CHECK_FALSE(h.record("nope", pass()));
    h.remove_check("web");
    CHECK(h.find("web") == nullptr);
    CHECK(h.checks().empty());
}

TEST_CASE("HealthTracker: an empty reason falls back to the verdict name") {
    HealthTracker h;
    h.add_check("x", CheckPolicy{1, 1, 0});
    h.record("x", ProbeResult{Verdict::TimedOut, "", {}});
    CHECK(h.evaluate({"x"}).reason == "x failing: timeout");
}
